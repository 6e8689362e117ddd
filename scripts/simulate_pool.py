"""Snakemake entry point of rule simulate_pool."""
from promptscape.study import identity
from promptscape.pipeline.stages import datasets_stage

with identity.job(snakemake):
    datasets_stage.simulate_pool(output=snakemake.output.data, **snakemake.params.args)
