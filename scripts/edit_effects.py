"""Snakemake entry point of rule edit_effects."""
from promptscape.study import identity
from promptscape.pipeline.stages import edit_effects_stage

with identity.job(snakemake):
    edit_effects_stage.edit_effects(
        steps=list(snakemake.input.steps),
        hill_climb_ends=list(snakemake.input.hill_climb_ends),
        output=snakemake.output.edit_effects,
        hill_climb_optima=snakemake.output.hill_climb_optima,
        **snakemake.params.args,
    )
