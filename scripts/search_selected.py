"""Snakemake entry point of rule search_selected."""
from promptscape import logs
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import search

logs.setup(snakemake.log[0])
search.search_selected(
    datasets=snakemake.input.pool,
    output=snakemake.output.search,
    selected=snakemake.output.selected,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
