"""Snakemake entry point of rule compute_landscape."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import landscape_stage

with identity.job(snakemake):
    landscape_stage.compute_landscape(
        evaluation=snakemake.input.evaluation,
        model=snakemake.input.get("model"),
        table=snakemake.input.get("table"),
        output=snakemake.output.landscape,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
