"""Snakemake entry point of rule simulate_pool."""
from promptscape import logs
from promptscape.pipeline.stages import datasets

logs.setup(snakemake.log[0])
datasets.simulate_pool(output=snakemake.output.data, **snakemake.params.args)
