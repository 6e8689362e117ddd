"""Snakemake entry point of rule search_prompts."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import search_stage

with identity.job(snakemake):
    search_stage.search_prompts(
        datasets=snakemake.input.datasets,
        output=snakemake.output.search,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
