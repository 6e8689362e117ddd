# Shared by every rules file: config validation, the experiment grid, wildcard constraints
# and the get_* helpers. Light at parse time: promptscape.config imports numpy, scipy.special
# and yaml, nothing heavier.
import re

from promptscape import config as config_lib
from promptscape import layout
from promptscape import plan
from promptscape import provenance
from promptscape import selection as selection_lib
from promptscape.stages.figures import FIGURES, STUDY_FIGURES, experiment_figures

# Each config file once more, strictly (a key given twice is an error naming file and line),
# then the schema and semantic checks. The defaults are written back into `config`, so jobs
# read the settings that are no identity (training.device) from snakemake.config.
config_lib.check_config_files(workflow.configfiles)
STUDY = config_lib.load(config, workflow.source_path("../schemas/config.schema.yaml"))
config.update(STUDY.raw)
# Every job's estimated peak memory against resources.max_mem_mb, before any work: an
# oversized config is a MemoryEstimateError naming the stage, experiment and keys (docs/plan.md).
plan.check(STUDY)
EXPERIMENTS = STUDY.experiments
RESULTS = STUDY.results_dir
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
MODEL_DIR = layout.model_dir_pattern(STUDY)


def out(artifact):
    """The output pattern of an artifact (tables.ARTIFACTS) under results_dir."""
    return layout.pattern(STUDY, artifact)


def results(path):
    """A path pattern under results_dir."""
    return f"{RESULTS}/{path}"


def logged(path):
    """A job's log under results_dir/logs."""
    return f"{LOGS}/{path}"


def benchmarked(path):
    """A job's benchmark record under results_dir/benchmarks."""
    return f"{BENCHMARKS}/{path}"


def in_model_dir(name):
    """A file of a trained network's folder (layout.model_dir_pattern)."""
    return f"{MODEL_DIR}/{name}"


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted(set(values)))


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    task=_alternatives(t.name for e in EXPERIMENTS.values() for t in e.tasks),
    predictor=_alternatives(p for e in EXPERIMENTS.values() for p in e.predictors),
    figure=_alternatives([*FIGURES, *STUDY_FIGURES]),
    source=_alternatives(STUDY.sources),
    identity=r"[0-9a-f]{10}",
    replicate=r"\d+",
    selection=_alternatives(selection_lib.METHODS),
    N=r"\d+",
    first=r"\d+",
    last=r"\d+",


# The pooled dataset-selection methods: searched by rule search_selected, the rest (random)
# by search_prompts.
POOLED_SELECTIONS = _alternatives(
    name for name, method in selection_lib.METHODS.items() if method.pooled
)


def mem_mb(rule_name):
    """The `mem_mb` resource of a heavy rule: the job's estimated peak memory
    (promptscape.plan) with a margin, at most resources.max_mem_mb."""

    def estimate(wildcards):
        return plan.mem_mb(STUDY, rule_name, dict(wildcards.items()))

    return estimate


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
            family=STUDY.family(wildcards.predictor) if "predictor" in names else None,
            figure=wildcards.figure if "figure" in names else None,
        )

    return identity


def get_experiment(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def get_task(wildcards):
    return get_experiment(wildcards).task(wildcards.task)


def get_search_outputs(exp):
    return layout.search_outputs(STUDY, exp)


def get_landscape_outputs(exp):
    return layout.per_task(STUDY, exp, "landscape")


def get_aggregates():
    return layout.aggregates(STUDY)


def get_figures():
    return [
        f"{RESULTS}/{name}/figures/{figure}.{ext}"
        for name, exp in EXPERIMENTS.items()
        for figure in experiment_figures(
            neural=any(map(is_neural, exp.predictors)),
            replicated=is_replicated(exp),
            bayes="bayes" in exp.predictors,
            selections=len(exp.selections) > 1,
            strategies=exp.runs_strategies,
        )
        for ext in ("svg", "png", "html")
    ] + [
        f"{RESULTS}/figures/{figure}.{ext}"
        for figure in STUDY_FIGURES
        for ext in ("svg", "png", "html")
    ]


def is_replicated(exp):
    """Whether a model of the experiment has more than one trained replicate."""
    return any(STUDY.replicates(p) > 1 for p in exp.predictors)


def get_search_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=get_replicate(wildcards),
        family=STUDY.family(wildcards.predictor),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task_length=exp.task_length,
        N=int(wildcards.N),
        max_prompt_length=exp.max_prompt_length,
        enumeration_budget=STUDY.enumeration_budget,
    )


def get_selection(wildcards):
    """The job's dataset-selection method, checked against the experiment's: a path of a
    method the config does not run is refused by name."""
    exp = get_experiment(wildcards)
    if wildcards.selection not in exp.selections:
        raise ValueError(
            f"experiment {exp.name!r} runs dataset_selection {list(exp.selections)}, "
            f"not {wildcards.selection!r}"
        )
    return wildcards.selection


def get_selected_search_args(wildcards):
    """A pooled selection's search: the search's arguments, its method's settings and the
    task (the design's seed)."""
    exp, name = get_experiment(wildcards), get_selection(wildcards)
    return dict(
        get_search_args(wildcards),
        selection=name,
        selection_settings=exp.dataset_selection.settings(name),
        task=get_task(wildcards).source.to_dict(),
    )


def get_pool_args(wildcards):
    exp = get_experiment(wildcards)
    if exp.dataset_selection.pool_size is None:
        raise ValueError(
            f"experiment {exp.name!r} runs no pooled dataset selection, so has no pools"
        )
    return dict(
        experiment=exp.name,
        task_name=wildcards.task,
        task=get_task(wildcards).source.to_dict(),
        task_length=exp.task_length,
        N=int(wildcards.N),
        pool_size=exp.dataset_selection.pool_size,
        first=int(wildcards.first),
        last=int(wildcards.last),
    )


def get_landscape_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=get_replicate(wildcards),
        family=STUDY.family(wildcards.predictor),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        max_prompt_length=exp.max_prompt_length,
        enumeration_budget=STUDY.enumeration_budget,
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
        style={**STUDY.figures, "predictor_colors": STUDY.predictor_colors()},
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
    if wildcards.figure == "posterior":
        return get_landscape_outputs(exp) + get_efficiency_outputs(exp)
    artifacts = FIGURES[wildcards.figure].artifacts
    names = artifacts if isinstance(artifacts, tuple) else (artifacts,)
    return [layout.aggregate(STUDY, exp, name) for name in names]


def get_study_figure_tables(wildcards):
    """Every experiment's table of a study figure."""
    artifact = STUDY_FIGURES[wildcards.figure].artifacts
    return [layout.aggregate(STUDY, exp, artifact) for exp in EXPERIMENTS.values()]


def get_prediction_outputs(exp):
    return layout.per_task(STUDY, exp, "predicted_reliability")


def get_reliability_prediction_args(wildcards):
    """The predict_reliability rule's arguments: the landscape's, the experiment's grid of
    dataset sizes and the `prediction` settings (draws, exact_max_outcomes, reference_N).
    """
    return dict(
        get_landscape_args(wildcards),
        dataset_sizes=list(get_experiment(wildcards).dataset_sizes),
        **STUDY.prediction,
    )


# The efficiency rules' helpers (here, not in efficiency.smk: the linter wants rules files
# free of functions). Only these pass the `efficiency` config on, so changing it reruns the
# efficiency stage and its figure alone.


def get_efficiency_outputs(exp):
    return layout.per_task(STUDY, exp, "efficiency")


def get_efficiency_model(wildcards):
    """A neural predictor's trained checkpoint; the Bayes predictor needs none. Never the
    prompt-loss table: typical prompts are random and longer than L_max."""
    return get_model(wildcards) if is_neural(wildcards.predictor) else []


def get_efficiency_args(wildcards):
    exp, task = get_experiment(wildcards), get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=get_replicate(wildcards),
        family=STUDY.family(wildcards.predictor),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        enumeration_budget=STUDY.enumeration_budget,
        **STUDY.efficiency,  # max_length, num_typical
    )


def get_efficiency_summary_args(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        experiment=exp.name,
        in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
    )


# Neural predictors: one trained network per (pretraining source, model), shared by every
# experiment that uses the model on the source; its folder carries the model's identity.
# Only the training rules see `models` and `training`.


def is_neural(predictor):
    return STUDY.is_neural(predictor)


def get_replicate(wildcards):
    """The job's replicate, checked against its predictor's `replicates`: a path of a
    replicate the config does not have is refused by name."""
    replicate = int(wildcards.replicate)
    if replicate >= STUDY.replicates(wildcards.predictor):
        raise ValueError(
            f"predictor {wildcards.predictor!r} has replicates "
            f"0..{STUDY.replicates(wildcards.predictor) - 1} in this config, not {replicate}"
        )
    return replicate


def get_model(wildcards):
    """The trained checkpoint the job's neural predictor and replicate use."""
    exp = get_experiment(wildcards)
    folder = layout.model_dir(STUDY, exp, wildcards.predictor, get_replicate(wildcards))
    return f"{folder}/model.pt"


def is_tabulated(exp):
    """Neural losses of every prompt on all 2^T sequences are computed once, then looked up."""
    return plan.enumerates(STUDY, exp)


def get_prediction_inputs(wildcards):
    """Extra inputs of searches and landscapes: nothing for Bayes; for a neural predictor
    its prompt-loss table when T is enumerable, else its checkpoint."""
    if not is_neural(wildcards.predictor):
        return {}
    exp = get_experiment(wildcards)
    if is_tabulated(exp):
        return {
            "table": layout.prompt_losses(
                STUDY, exp, wildcards.predictor, get_replicate(wildcards)
            )
        }
    return {"model": get_model(wildcards)}


def get_network_replicate(wildcards):
    """The replicate of the model whose identity a training-rule job's path carries; the
    identity must be one of the model's (a stale path of an older config is refused, never
    trained)."""
    predictor, source = wildcards.predictor, wildcards.source
    identities = [
        STUDY.model_identity(predictor, source, r)
        for r in range(STUDY.replicates(predictor))
    ]
    if wildcards.identity not in identities:
        raise ValueError(
            f"{predictor}-{wildcards.identity} is not the identity of model {predictor!r} "
            f"on {source!r} in this config ({', '.join(identities)})"
        )
    return identities.index(wildcards.identity)


def get_network(wildcards):
    """The complete config of the network a training-rule job builds."""
    return STUDY.network(
        wildcards.predictor, wildcards.source, get_network_replicate(wildcards)
    )


def get_training_args(wildcards):
    return dict(
        name=wildcards.predictor,
        replicate=get_network_replicate(wildcards),
        identity=wildcards.identity,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        settings=get_network(wildcards).to_dict(),
        threads=STUDY.training["threads"],
    )


def get_evaluation_args(wildcards):
    return dict(
        name=wildcards.predictor,
        replicate=get_network_replicate(wildcards),
        identity=wildcards.identity,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        size=STUDY.training["heldout_size"],
        threads=STUDY.training["threads"],
    )


def get_scoring_args(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        name=wildcards.predictor,
        replicate=get_replicate(wildcards),
        experiment=exp.name,
        task_length=exp.task_length,
        max_prompt_length=exp.max_prompt_length,
        threads=STUDY.training["threads"],
    )


def get_training_tables(exp):
    return layout.training_tables(STUDY, exp)


# The search_strategies rule's helpers: replicate 0 of a network (the strategy_runs path
# has no replicate), on the task's D_N (selection random), scored as the search scores.


def get_strategy_outputs(exp):
    return layout.strategy_outputs(STUDY, exp)


def _strategy_experiment(wildcards):
    exp = get_experiment(wildcards)
    if not exp.runs_strategies:
        raise ValueError(
            f"experiment {exp.name!r} runs no search strategy besides exhaustive "
            "(experiments.<name>.strategies)"
        )
    return exp


def get_strategy_landscape(wildcards):
    exp = _strategy_experiment(wildcards)
    return layout.pattern(STUDY, "landscape").format(
        experiment=exp.name,
        predictor=wildcards.predictor,
        replicate=0,
        task=wildcards.task,
    )


def get_strategy_inputs(wildcards):
    """A network's prompt-loss table when T is enumerable (else its checkpoint), as the
    search reads; and its checkpoint where a strategy needs gradients. Nothing for Bayes.
    """
    exp = _strategy_experiment(wildcards)
    if not is_neural(wildcards.predictor):
        return {}
    folder = layout.model_dir(STUDY, exp, wildcards.predictor, 0)
    inputs = {}
    if is_tabulated(exp):
        inputs["table"] = layout.prompt_losses(STUDY, exp, wildcards.predictor, 0)
    if exp.search_strategies.needs_gradient or not is_tabulated(exp):
        inputs["model"] = f"{folder}/model.pt"
    return inputs


def get_strategy_args(wildcards):
    exp = _strategy_experiment(wildcards)
    task = get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=0,
        family=STUDY.family(wildcards.predictor),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        N=int(wildcards.N),
        max_prompt_length=exp.max_prompt_length,
        enumeration_budget=STUDY.enumeration_budget,
        strategies=exp.search_strategies.to_dict(),
        budgets=list(exp.search_strategies.budgets),
    )
