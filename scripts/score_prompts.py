"""Snakemake entry point of rule score_prompts."""
from promptscape import logs
from promptscape.stages import training

logs.setup(snakemake.log[0])
training.score_prompts(
    model=snakemake.input.model, output=snakemake.output.table, **snakemake.params.args
)
