"""Snakemake entry point of rule score_prompts."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training_stage

with identity.job(snakemake):
    training_stage.score_prompts(
        model=snakemake.input.model,
        output=snakemake.output.table,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
