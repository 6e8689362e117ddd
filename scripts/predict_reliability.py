"""Snakemake entry point of rule predict_reliability."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import prediction_stage

with identity.job(snakemake):
    prediction_stage.predict_reliability(
        landscape_path=snakemake.input.landscape,
        evaluation=snakemake.input.evaluation,
        model=snakemake.input.get("model"),
        table=snakemake.input.get("table"),
        output=snakemake.output.prediction,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
