"""Snakemake entry point of rule aggregate_strategies."""
from promptscape import logs
from promptscape.pipeline.stages import aggregate

logs.setup(snakemake.log[0])
aggregate.aggregate_strategies(
    runs=list(snakemake.input.runs),
    output=snakemake.output.strategies,
    in_meta_distribution=snakemake.params.imd,
    expected=snakemake.params.expected,
    within_epsilon=snakemake.params.within_epsilon,
)
