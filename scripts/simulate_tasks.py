"""Snakemake entry point of rule simulate_tasks."""
from promptscape import logs
from promptscape.pipeline.stages import datasets

logs.setup(snakemake.log[0])
datasets.simulate_tasks(output=snakemake.output.data, **snakemake.params.args)
