"""Stage entry points, one module per workflow stage.

Each stage reads its inputs, calls the science modules and writes one artifact through
`tables.write`. Snakemake scripts call exactly one function here with the rule's named
inputs, outputs and params, so everything is reachable from tests without Snakemake. A
stage's module and everything it imports from promptscape form the stage's code
fingerprint (`promptscape.provenance`), which the workflow passes as a param: a logic
change reruns that stage and what depends on it; a comment or docstring change does not.
"""
