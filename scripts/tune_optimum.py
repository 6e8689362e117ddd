"""Snakemake entry point of rule tune_optimum."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import tuning_stage

with identity.job(snakemake):
    tuning_stage.tune_optimum(
        model=snakemake.input.model,
        landscape_file=snakemake.input.landscape,
        evaluation=snakemake.input.get("evaluation"),
        output=snakemake.output.optimum,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
