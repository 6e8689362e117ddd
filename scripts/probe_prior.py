"""Snakemake entry point of rule probe_prior."""
from promptscape.study import identity
from promptscape.pipeline.stages.common import training_device
from promptscape.pipeline.stages import prior_stage

with identity.job(snakemake):
    prior_stage.probe_prior(
        output=snakemake.output.prior,
        model=snakemake.input.get("model"),
        device=training_device(snakemake.config),
        **snakemake.params.args,
    )
