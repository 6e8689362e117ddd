"""Snakemake entry point of rule search_strategies."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import strategies_stage

with identity.job(snakemake):
    strategies_stage.search_strategies(
        landscape=snakemake.input.landscape,
        model=snakemake.input.get("model"),
        table=snakemake.input.get("table"),
        prior_fit=snakemake.input.get("prior_fit"),
        evaluation=snakemake.input.get("evaluation"),
        output=snakemake.output.runs,
        steps=snakemake.output.steps,
        hill_climb_ends=snakemake.output.hill_climb_ends,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
