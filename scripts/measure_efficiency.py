"""Snakemake entry point of rule measure_efficiency."""
from promptscape import logs
from promptscape.stages import efficiency

logs.setup(snakemake.log[0])
efficiency.measure_efficiency(
    landscape=snakemake.input.landscape,
    evaluation=snakemake.input.evaluation,
    model=snakemake.input.get("model") or None,
    output=snakemake.output.efficiency,
    **snakemake.params.args,
)
