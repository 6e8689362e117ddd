# Shared by every rules file: config validation, the experiment grid, wildcard constraints
# and the get_* helpers. Light at parse time: promptscape.config imports numpy, scipy.special
# and yaml, nothing heavier.
import re

from promptscape import config as config_lib
from promptscape import provenance
from promptscape.stages.figures import FIGURES, NEURAL_FIGURES

STUDY = config_lib.load(config, workflow.source_path("../schemas/config.schema.yaml"))
EXPERIMENTS = STUDY.experiments


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted(set(values)))


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    task=_alternatives(t.name for e in EXPERIMENTS.values() for t in e.tasks),
    predictor=_alternatives(p for e in EXPERIMENTS.values() for p in e.predictors),
    figure=_alternatives(FIGURES),
    source=_alternatives(STUDY.sources),
    N=r"\d+",
    first=r"\d+",
    last=r"\d+",


def code(rule_name):
    """The code identity of a job of rule `rule_name` (promptscape.provenance,
    docs/caching.md), as a params function: the rule's stage function plus the source
    kinds and predictor family the job's wildcards name, of those `provenance.JOBS`
    declares for the rule."""

    def identity(wildcards):
        names = wildcards.keys()
        if "source" in names:
            pretraining = STUDY.sources[wildcards.source]
        elif "experiment" in names:
            pretraining = get_experiment(wildcards).pretraining
        else:
            pretraining = None
        return provenance.job_identity(
            rule_name,
            pretraining=pretraining and pretraining.kind,
            task=get_task(wildcards).source.kind if "task" in names else None,
            family=wildcards.predictor if "predictor" in names else None,
        )

    return identity


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
        for table in ("selections", "reliability", "choices", "token_efficiency")
    ]


def get_figures():
    return [
        f"results/{name}/figures/{figure}.{ext}"
        for name, exp in EXPERIMENTS.items()
        for figure in FIGURES
        if figure not in NEURAL_FIGURES or any(map(is_neural, exp.predictors))
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
    if wildcards.figure == "efficiency":
        return get_efficiency_outputs(exp)
    if wildcards.figure == "training":
        return get_training_tables(exp)
    if wildcards.figure == "neural_vs_bayes":
        return get_landscape_outputs(exp)
    return [f"results/{exp.name}/aggregate/{wildcards.figure}.parquet"]


# The efficiency rules' helpers (here, not in efficiency.smk: the linter wants rules files
# free of functions). Only these pass the `efficiency` config on, so changing it reruns the
# efficiency stage and its figure alone.


def get_efficiency_outputs(exp):
    return [
        f"results/{exp.name}/efficiency/{predictor}/{task.name}.parquet"
        for predictor in exp.predictors
        for task in exp.tasks
    ]


def get_efficiency_model(wildcards):
    """A neural predictor's trained checkpoint; the Bayes predictor needs none. Never the
    prompt-loss table: typical prompts are random and longer than L_max."""
    return get_model(wildcards) if is_neural(wildcards.predictor) else []


def get_efficiency_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        max_enumeration_length=STUDY.max_enumeration_length,
        **STUDY.efficiency,  # max_length, num_typical
    )


def get_efficiency_summary_args(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        experiment=exp.name,
        in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
    )


# Neural predictors: one trained network per (pretraining source, family), shared by every
# experiment that uses the source. Only the training rules see `models` and `training`.


def is_neural(predictor):
    return predictor in ("lstm", "transformer")


def get_model(wildcards):
    """The trained checkpoint a neural predictor of this experiment uses."""
    exp = get_experiment(wildcards)
    return f"results/models/{exp.pretraining_name}/{wildcards.predictor}/model.pt"


def is_tabulated(exp):
    """Neural losses of every prompt on all 2^T sequences are computed once, then looked up."""
    return exp.task_length <= STUDY.max_enumeration_length


def get_prediction_inputs(wildcards):
    """Extra inputs of searches and landscapes: nothing for Bayes; for a neural predictor
    its prompt-loss table when T is enumerable, else its checkpoint."""
    if not is_neural(wildcards.predictor):
        return {}
    exp = get_experiment(wildcards)
    if is_tabulated(exp):
        return {"table": f"results/{exp.name}/prompt_losses/{wildcards.predictor}.parquet"}
    return {"model": get_model(wildcards)}


def get_training_args(wildcards):
    return dict(
        family=wildcards.predictor,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        settings=STUDY.model_settings(wildcards.predictor, wildcards.source),
        threads=STUDY.training["threads"],
    )


def get_evaluation_args(wildcards):
    return dict(
        family=wildcards.predictor,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        size=STUDY.training["heldout_size"],
        threads=STUDY.training["threads"],
    )


def get_scoring_args(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        family=wildcards.predictor,
        experiment=exp.name,
        task_length=exp.task_length,
        max_prompt_length=exp.max_prompt_length,
        threads=STUDY.training["threads"],
    )


def get_training_tables(exp):
    """Training curves and regret tables of an experiment's networks."""
    return [
        f"results/models/{exp.pretraining_name}/{predictor}/{table}.parquet"
        for predictor in exp.predictors
        if is_neural(predictor)
        for table in ("training_curve", "regret")
    ]
