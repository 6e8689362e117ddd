"""Snakemake entry point of rule tune_network."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import tuning_stage

with identity.job(snakemake):
    tuning_stage.tune_network(
        datasets=snakemake.input.datasets,
        search_file=snakemake.input.search,
        evaluation=snakemake.input.get("evaluation"),
        landscape_file=snakemake.input.get("landscape"),
        model=snakemake.input.model,
        output=snakemake.output.runs,
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
