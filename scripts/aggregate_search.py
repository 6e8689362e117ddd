"""Snakemake entry point of rule aggregate_search."""
from promptscape.study import identity
from promptscape.pipeline.stages import aggregate_stage

with identity.job(snakemake) as args:
    aggregate_stage.aggregate_search(
        searches=list(snakemake.input.searches),
        landscapes=list(snakemake.input.landscapes),
        predictions=list(snakemake.input.predictions),
        selections=snakemake.output.selections,
        reliability=snakemake.output.reliability,
        choices=snakemake.output.choices,
        reliability_prediction=snakemake.output.prediction,
        in_meta_distribution=args["in_meta_distribution"],
        expected=args["expected"],
        within_epsilon=args["within_epsilon"],
    )
