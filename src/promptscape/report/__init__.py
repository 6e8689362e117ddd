"""The report: aggregates of the search artifacts, the figure registry, the figures and the
summary; it reads artifacts only."""
