"""Snakemake entry point of rule simulate_evaluation."""
from promptscape.study import identity
from promptscape.pipeline.stages import datasets

with identity.job(snakemake):
    datasets.simulate_evaluation(output=snakemake.output.data, **snakemake.params.args)
