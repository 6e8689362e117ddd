"""Snakemake entry point of rule aggregate_tuning."""
from promptscape import logs
from promptscape.pipeline.stages import aggregate

logs.setup(snakemake.log[0])
aggregate.aggregate_tuning(
    runs=list(snakemake.input.runs),
    landscapes=list(snakemake.input.landscapes),
    output=snakemake.output.tuning,
    in_meta_distribution=snakemake.params.imd,
)
