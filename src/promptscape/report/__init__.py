"""The report: aggregates of the search artifacts, the figures and the summary; it reads
artifacts only."""
