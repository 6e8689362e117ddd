"""Snakemake entry point of rule post_train_predictor."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training

with identity.job(snakemake):
    training.post_train_predictor(
        base_model=snakemake.input.base,
        model=snakemake.output.model,
        curve=snakemake.output.curve,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
