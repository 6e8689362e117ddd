"""Snakemake entry point of rule search_selected."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import search_stage

with identity.job(snakemake):
    search_stage.search_selected(
        datasets=snakemake.input.pool,
        output=snakemake.output.search,
        selected=snakemake.output.selected,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
