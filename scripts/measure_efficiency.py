"""Snakemake entry point of rule measure_efficiency."""
from promptscape import logs
from promptscape.stages.common import training_device
from promptscape.stages import efficiency

logs.setup(snakemake.log[0])
efficiency.measure_efficiency(
    landscape=snakemake.input.landscape,
    evaluation=snakemake.input.evaluation,
    model=snakemake.input.get("model") or None,
    output=snakemake.output.efficiency,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
