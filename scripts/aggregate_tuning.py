"""Snakemake entry point of rule aggregate_tuning."""
from promptscape.study import identity
from promptscape.pipeline.stages import aggregate_stage

with identity.job(snakemake) as args:
    aggregate_stage.aggregate_tuning(
        runs=list(snakemake.input.runs),
        landscapes=list(snakemake.input.landscapes),
        optima=list(snakemake.input.optima),
        output=snakemake.output.tuning,
        in_meta_distribution=args["in_meta_distribution"],
    )
