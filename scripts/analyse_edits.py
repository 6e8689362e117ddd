"""Snakemake entry point of rule analyse_edits."""
from promptscape.study import identity
from promptscape.pipeline.stages import edits_stage

with identity.job(snakemake):
    edits_stage.analyse_edits(
        landscapes=list(snakemake.input.landscapes),
        others=list(snakemake.input.others),
        selections=snakemake.input.selections,
        edits=snakemake.output.edits,
        local_optima=snakemake.output.local_optima,
        transfer=snakemake.output.transfer,
        **snakemake.params.args,
    )
