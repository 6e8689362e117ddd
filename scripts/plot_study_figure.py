"""Snakemake entry point of rule plot_study_figure."""
from promptscape.pipeline import identity
from promptscape.pipeline.stages import figures

with identity.job(snakemake):
    figures.plot_study_figure(
        tables_in=list(snakemake.input.tables),
        svg=snakemake.output.svg,
        png=snakemake.output.png,
        html=snakemake.output.html,
        configfiles=snakemake.params.configfiles,
        **snakemake.params.args,
    )
