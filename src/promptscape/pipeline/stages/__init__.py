"""Stage entry points, one module per workflow stage, `<stage>_stage.py` (named apart from
the science module the stage calls, so that neither import needs an alias).

Each stage reads its inputs, calls the science modules and writes one artifact through
`tables.write`. Snakemake scripts call exactly one function here with the rule's named
inputs, outputs and params, so everything is reachable from tests without Snakemake. The
functions and classes a stage function reaches, plus the source kinds and predictor family
of the job, form the job's code identity (`promptscape.pipeline.provenance`, `provenance.JOBS`,
docs/caching.md), which the workflow passes as a param: a change to code the job runs
reruns it and what depends on it; other code, comments and docstrings do not.
"""
