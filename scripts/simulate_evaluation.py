"""Snakemake entry point of rule simulate_evaluation."""
from promptscape.study import identity
from promptscape.pipeline.stages import datasets_stage

with identity.job(snakemake):
    datasets_stage.simulate_evaluation(output=snakemake.output.data, **snakemake.params.args)
