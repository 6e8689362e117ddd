"""Snakemake entry point of rule post_train_predictor."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training_stage

with identity.job(snakemake):
    training_stage.post_train_predictor(
        base_model=snakemake.input.base,
        model=snakemake.output.model,
        curve=snakemake.output.curve,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
