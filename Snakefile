# promptscape: prompts on sequence predictors (binary and larger alphabets), as a Snakemake
# workflow.
#
# Every table is a Parquet file under the config's results_dir (default results/), written by
# its job; docs/artifacts.md lists them with their paths and schemas (generated from
# promptscape.study.tables). Figures are in each experiment's figures/ folder and the
# study's in <results_dir>/figures/ (docs/figures.md). The rules, one file per stage, are in
# workflow/rules/ (shared helpers in common.smk); each rule runs scripts/<rule>.py, which
# calls its stage function in promptscape.pipeline.stages. <results_dir>/logs/<rule>/...
# holds one log per job, and <results_dir>/benchmarks/<rule>/... the run time and memory of
# each job of the rules that declare a benchmark.
#
# Targets: all (default: every aggregate table, prior fit and figure), aggregates (the
# aggregate tables only), figures.


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
include: "workflow/rules/prediction.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/edits.smk"
include: "workflow/rules/prior.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        get_aggregates(),
        get_prior_fits(),
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


# Last, after every rule: each job's existing artifacts are checked against the stamp the
# workflow would write now while the DAG is built (stale ones are rebuilt;
# docs/caching.md, "Artifact identities").
guard_outputs()
