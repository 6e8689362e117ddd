"""Snakemake entry point of rule search_prompts."""
from promptscape import logs
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import search

logs.setup(snakemake.log[0])
search.search_prompts(
    datasets=snakemake.input.datasets,
    output=snakemake.output.search,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
