"""Snakemake entry point of rule measure_efficiency."""
from promptscape import logs
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import efficiency

logs.setup(snakemake.log[0])
efficiency.measure_efficiency(
    output=snakemake.output.efficiency,
    token_efficiency=snakemake.output.token_efficiency,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
