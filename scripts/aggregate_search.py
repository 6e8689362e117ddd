"""Snakemake entry point of rule aggregate_search."""
from promptscape import logs
from promptscape.pipeline.stages import aggregate

logs.setup(snakemake.log[0])
aggregate.aggregate_search(
    searches=list(snakemake.input.searches),
    landscapes=list(snakemake.input.landscapes),
    predictions=list(snakemake.input.predictions),
    selections=snakemake.output.selections,
    reliability=snakemake.output.reliability,
    choices=snakemake.output.choices,
    reliability_prediction=snakemake.output.prediction,
    in_meta_distribution=snakemake.params.imd,
    expected=snakemake.params.expected,
    within_epsilon=snakemake.params.within_epsilon,
)
