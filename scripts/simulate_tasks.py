"""Snakemake entry point of rule simulate_tasks."""
from promptscape.study import identity
from promptscape.pipeline.stages import datasets_stage

with identity.job(snakemake):
    datasets_stage.simulate_tasks(output=snakemake.output.data, **snakemake.params.args)
