"""Snakemake entry point of rule analyse_edits."""
from promptscape import logs
from promptscape.pipeline.stages import edits

logs.setup(snakemake.log[0])
edits.analyse_edits(
    landscapes=list(snakemake.input.landscapes),
    others=list(snakemake.input.others),
    selections=snakemake.input.selections,
    edits=snakemake.output.edits,
    local_optima=snakemake.output.local_optima,
    transfer=snakemake.output.transfer,
    **snakemake.params.args,
)
