"""Snakemake entry point of rule train_predictor."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training_stage

with identity.job(snakemake):
    training_stage.train_predictor(
        model=snakemake.output.model,
        curve=snakemake.output.curve,
        checkpoint=snakemake.params.checkpoint,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
