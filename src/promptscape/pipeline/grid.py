"""The job grid: the wildcards of every job of each rule that the default target (`all`)
runs, from the config alone, as the workflow's own listings lay them out
(`promptscape.study.layout`: the seed blocks, `per_task`, `tuning_jobs`, `optimum_jobs`,
`prior_fits`, the networks' identities).

One function per rule (or per pair of rules that share a grid), ``(study) -> list of
wildcard dicts`` with the workflow's wildcard names, each named by its rule's record
(`promptscape.pipeline.rules.Rule.jobs`). Values are strings where the workflow's are
(replicate); the test of the grid holds it to a dry run's jobs on every config of the
repository.
"""

from __future__ import annotations

from promptscape.pipeline import costs
from promptscape.study import layout


def _blocks(exp) -> list[dict]:
    return [{"experiment": exp.name, "first": a, "last": b} for a, b in exp.seed_blocks()]


def task_data(study) -> list[dict]:
    """simulate_tasks: one per experiment and seed block."""
    return [w for exp in study.experiments.values() for w in _blocks(exp)]


def pools(study) -> list[dict]:
    """simulate_pool: one per experiment and seed block where a pooled selection runs."""
    return [w for exp in study.experiments.values() if exp.dataset_selection.pooled
            for w in _blocks(exp)]


def evaluation_sets(study) -> list[dict]:
    """simulate_evaluation: one per experiment and task."""
    return [{"experiment": exp.name, "task": task.name}
            for exp in study.experiments.values() for task in exp.tasks]


def _networks(study, post_trained: bool) -> list[dict]:
    return [{"source": source, "predictor": predictor,
             "identity": study.model_identity(predictor, source, r)}
            for source, predictor, r in study.networks()
            if (study.post_training(predictor) is not None) == post_trained]


def trained_networks(study) -> list[dict]:
    """train_predictor: one per network replicate (pretraining source, model) not
    post-trained."""
    return _networks(study, False)


def post_trained_networks(study) -> list[dict]:
    """post_train_predictor: one per post-trained network replicate."""
    return _networks(study, True)


def networks(study) -> list[dict]:
    """evaluate_predictor: every network replicate the config trains or post-trains."""
    return [{"source": source, "predictor": predictor,
             "identity": study.model_identity(predictor, source, r)}
            for source, predictor, r in study.networks()]


def _searches(study, pooled: bool) -> list[dict]:
    """The search files of every experiment (`layout.search_outputs`, what the aggregate
    reads), of a pooled selection or not."""
    out = []
    for exp in study.experiments.values():
        for path in layout.search_outputs(study, exp):
            w = layout.wildcards_of(study, "search", path)
            if (w["selection"] in exp.dataset_selection.pooled) == pooled:
                out.append(w)
    return out


def searches(study) -> list[dict]:
    """search_prompts: one per experiment, random selection and seed block."""
    return _searches(study, False)


def selected_searches(study) -> list[dict]:
    """search_selected: one per experiment, pooled selection and seed block."""
    return _searches(study, True)


def prompt_loss_tables(study) -> list[dict]:
    """score_prompts: one per (experiment, network replicate) where T is enumerated."""
    return [{"experiment": exp.name, "predictor": predictor, "replicate": str(r)}
            for exp in study.experiments.values()
            for predictor, r in study.predictor_replicates(exp)
            if study.is_neural(predictor) and costs.enumerates(study, exp)]


def strategy_runs(study) -> list[dict]:
    """search_strategies: predictor x task x N x seed block of every experiment that runs a
    strategy besides exhaustive (`layout.strategy_outputs`)."""
    return [layout.wildcards_of(study, "strategy_runs", path)
            for exp in study.experiments.values()
            for path in layout.strategy_outputs(study, exp)]


def per_task(study) -> list[dict]:
    """compute_landscape, predict_reliability: one per (predictor, replicate, task) of
    each experiment (`layout.per_task`)."""
    return [layout.wildcards_of(study, "landscape", path)
            for exp in study.experiments.values()
            for path in layout.per_task(study, exp, "landscape")]


def experiments(study) -> list[dict]:
    """One per experiment (its efficiency, aggregates, edit analysis and figures)."""
    return [{"experiment": name} for name in study.experiments]


def strategy_experiments(study) -> list[dict]:
    """One per experiment that runs a strategy besides exhaustive."""
    return [{"experiment": exp.name} for exp in study.experiments.values()
            if exp.runs_strategies]


def tuning_experiments(study) -> list[dict]:
    """One per experiment with a tuning section."""
    return [{"experiment": exp.name} for exp in study.experiments.values() if exp.tuning]


def _strings(w: dict) -> dict:
    return {k: str(v) if k == "replicate" else v for k, v in w.items()}


def tuning_runs(study) -> list[dict]:
    """tune_network: `layout.tuning_jobs` of every experiment."""
    return [_strings(w) for exp in study.experiments.values()
            for w in layout.tuning_jobs(study, exp)]


def tuner_optima(study) -> list[dict]:
    """tune_optimum: `layout.optimum_jobs` of every experiment."""
    return [_strings(w) for exp in study.experiments.values()
            for w in layout.optimum_jobs(study, exp)]


def prior_fits(study) -> list[dict]:
    """probe_prior: every prior_fit of each experiment (`layout.prior_fits`: where its
    pretraining source is exchangeable)."""
    return [layout.wildcards_of(study, "prior_fit", path)
            for exp in study.experiments.values()
            for path in layout.prior_fits(study, exp)]


def study_figures(study) -> list[dict]:
    """plot_study_figures: one job, no wildcards."""
    return [{}]
