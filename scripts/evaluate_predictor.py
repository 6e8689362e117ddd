"""Snakemake entry point of rule evaluate_predictor."""
from promptscape import logs
from promptscape.stages import training

logs.setup(snakemake.log[0])
training.evaluate_predictor(
    model=snakemake.input.model, output=snakemake.output.regret, **snakemake.params.args
)
