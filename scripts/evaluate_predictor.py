"""Snakemake entry point of rule evaluate_predictor."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training_stage

with identity.job(snakemake):
    training_stage.evaluate_predictor(
        model=snakemake.input.model,
        output=snakemake.output.regret,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
