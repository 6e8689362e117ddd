"""Snakemake entry point of rule evaluate_predictor."""
from promptscape import logs
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training

logs.setup(snakemake.log[0])
training.evaluate_predictor(
    model=snakemake.input.model,
    output=snakemake.output.regret,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
