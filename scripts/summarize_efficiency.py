"""Snakemake entry point of rule summarize_efficiency."""
from promptscape import logs
from promptscape.stages import efficiency

logs.setup(snakemake.log[0])
efficiency.summarize_efficiency(
    efficiencies=list(snakemake.input.efficiencies),
    landscapes=list(snakemake.input.landscapes),
    output=snakemake.output.token_efficiency,
    **snakemake.params.args,
)
