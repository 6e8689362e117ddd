# Shared by every rules file: config validation, the experiment grid, wildcard constraints
# and the get_* helpers. Light at parse time: promptscape.config imports numpy, scipy.special
# and yaml, nothing heavier.
import re

from promptscape import config as config_lib
from promptscape import provenance
from promptscape.stages.figures import FIGURES

STUDY = config_lib.load(config, workflow.source_path("../schemas/config.schema.yaml"))
EXPERIMENTS = STUDY.experiments


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted(set(values)))


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    task=_alternatives(t.name for e in EXPERIMENTS.values() for t in e.tasks),
    predictor=_alternatives(p for e in EXPERIMENTS.values() for p in e.predictors),
    figure=_alternatives(FIGURES),
    N=r"\d+",
    first=r"\d+",
    last=r"\d+",


def code(stage):
    """The code fingerprint of a stage (promptscape.provenance), passed as a param."""
    return provenance.fingerprint(f"promptscape.stages.{stage}")


def get_experiment(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def get_task(wildcards):
    return get_experiment(wildcards).task(wildcards.task)


def block_name(first, last):
    return f"seeds{first}-{last}"


def get_search_outputs(exp):
    """Every search artifact of an experiment: predictor x task x N x seed block."""
    return [
        f"results/{exp.name}/search/{predictor}/{task.name}/N{N}/{block_name(a, b)}.parquet"
        for predictor in exp.predictors
        for task in exp.tasks
        for N in exp.dataset_sizes
        for a, b in exp.seed_blocks()
    ]


def get_landscape_outputs(exp):
    return [
        f"results/{exp.name}/landscape/{predictor}/{task.name}.parquet"
        for predictor in exp.predictors
        for task in exp.tasks
    ]


def get_aggregates():
    return [
        f"results/{name}/aggregate/{table}.parquet"
        for name in EXPERIMENTS
        for table in ("selections", "reliability", "choices")
    ]


def get_figures():
    return [
        f"results/{name}/figures/{figure}.{ext}"
        for name in EXPERIMENTS
        for figure in FIGURES
        for ext in ("svg", "png", "html")
    ]


def get_search_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task_length=exp.task_length,
        N=int(wildcards.N),
        max_prompt_length=exp.max_prompt_length,
        max_enumeration_length=STUDY.max_enumeration_length,
    )


def get_landscape_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        max_prompt_length=exp.max_prompt_length,
        max_enumeration_length=STUDY.max_enumeration_length,
    )


def get_figure_args(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        figure=wildcards.figure,
        experiment=exp.name,
        pretraining=f"{exp.pretraining_name} = {exp.pretraining.describe()}",
        tasks=[t.name for t in exp.tasks],
        imd={t.name: t.in_meta_distribution for t in exp.tasks},
        predictors=list(exp.predictors),
        style=STUDY.figures,
    )


def get_figure_tables(wildcards):
    exp = get_experiment(wildcards)
    if wildcards.figure == "landscape":
        return get_landscape_outputs(exp)
    return [f"results/{exp.name}/aggregate/{wildcards.figure}.parquet"]
