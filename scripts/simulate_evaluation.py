"""Snakemake entry point of rule simulate_evaluation."""
from promptscape import logs
from promptscape.pipeline.stages import datasets

logs.setup(snakemake.log[0])
datasets.simulate_evaluation(output=snakemake.output.data, **snakemake.params.args)
