"""Snakemake entry point of rule score_prompts."""
from promptscape import logs
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import training

logs.setup(snakemake.log[0])
training.score_prompts(
    model=snakemake.input.model,
    output=snakemake.output.table,
    device=training_device(snakemake.config),
    **snakemake.params.args,
)
