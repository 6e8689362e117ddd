# promptscape: prompts on binary sequence predictors, as a Snakemake workflow.
#
# results/ layout (every artifact is a Parquet file with a schema in docs/artifacts.md):
#   results/{experiment}/datasets/{task}/N{N}/seeds{first}-{last}.parquet    task datasets D_N
#   results/{experiment}/evaluation/{task}.parquet                           evaluation set
#   results/{experiment}/search/{predictor}/{task}/N{N}/seeds{first}-{last}.parquet
#   results/{experiment}/landscape/{predictor}/{task}.parquet
#   results/{experiment}/efficiency/{predictor}/{task}.parquet
#   results/{experiment}/aggregate/{selections,reliability,choices,token_efficiency}.parquet
#   results/{experiment}/figures/{reliability,landscape,choices,efficiency}.{svg,png,html}
# logs/{rule}/... holds one log per job.
#
# Targets: all (default), aggregates (tables only), figures.


from snakemake.utils import min_version

min_version("9.0")


# The default config. A --configfile given on the command line replaces it rather than
# being merged into it (a merge would silently mix the default experiments into yours);
# --config KEY=VALUE still overrides single keys of whichever config is in use.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/landscape.smk"
include: "workflow/rules/efficiency.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        get_aggregates(),
        get_figures(),
    localrule: True


rule aggregates:
    input:
        get_aggregates(),
    localrule: True


rule figures:
    input:
        get_figures(),
    localrule: True
