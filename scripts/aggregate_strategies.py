"""Snakemake entry point of rule aggregate_strategies."""
from promptscape.study import identity
from promptscape.pipeline.stages import aggregate_stage

with identity.job(snakemake) as args:
    aggregate_stage.aggregate_strategies(
        runs=list(snakemake.input.runs),
        output=snakemake.output.strategies,
        in_meta_distribution=args["in_meta_distribution"],
        expected=args["expected"],
        within_epsilon=args["within_epsilon"],
    )
