"""Snakemake entry point of rule measure_efficiency."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import efficiency_stage

with identity.job(snakemake):
    efficiency_stage.measure_efficiency(
        output=snakemake.output.efficiency,
        token_efficiency=snakemake.output.token_efficiency,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
