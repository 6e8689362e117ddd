"""Snakemake entry point of rule score_prompts."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training

with identity.job(snakemake):
    training.score_prompts(
        model=snakemake.input.model,
        output=snakemake.output.table,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
