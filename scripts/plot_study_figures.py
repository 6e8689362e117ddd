"""Snakemake entry point of rule plot_study_figures."""
from promptscape.study import identity
from promptscape.pipeline.stages import figures_stage

with identity.job(snakemake):
    figures_stage.plot_study_figures(
        tables_in=list(snakemake.input.tables),
        directory=snakemake.output.figures,
        configfiles=snakemake.params.configfiles,
        **snakemake.params.args,
    )
