"""Where every artifact of a study lives: one function per kind of path, read by the
workflow's rules and by `promptscape.report.summary`, so both list exactly the same files.

Path patterns come from the artifacts' declarations (`tables.ARTIFACTS[...].path`), under
the config's `results_dir`. Trained networks live at
``{results_dir}/models/{source}/{model}-{identity}/``, where the identity hashes the
model's complete config and its pretraining source's parameters
(`config.Study.model_identity`): a config with another sequence length or another source
under the same name trains its own network beside, never over, another config's.
"""

from __future__ import annotations

import os
import re
import string

from promptscape.study import tables
from promptscape.study.config import Experiment, Study

AGGREGATE_TABLES = ("selections", "reliability", "choices", "token_efficiency",
                    "reliability_prediction", "edits", "local_optima", "transfer")
# The aggregates of an experiment that runs a strategy besides exhaustive.
STRATEGY_TABLES = ("strategies", "edit_effects", "hill_climb_optima")


def pattern(study: Study, artifact: str) -> str:
    """The path pattern of `artifact` (Snakemake wildcards in braces) under results_dir."""
    return f"{study.results_dir}/{tables.ARTIFACTS[artifact].path}"


def wildcards_of(study: Study, artifact: str, path: str) -> dict[str, str]:
    """The wildcards of a file of `artifact` (the inverse of formatting its `pattern`); a
    path that is not one is a ValueError naming both."""
    regex, names = "", []
    for literal, field, _, _ in string.Formatter().parse(pattern(study, artifact)):
        regex += re.escape(literal)
        if field is not None:
            regex += f"(?P<{field}>[^/]+)" if field not in names else f"(?P={field})"
            names.append(field)
    match = re.fullmatch(regex, os.fspath(path))
    if match is None:
        raise ValueError(f"{path} is not a path of artifact {artifact} "
                         f"({pattern(study, artifact)})")
    return match.groupdict()


def model_dir_pattern(study: Study) -> str:
    """The folder pattern of a trained network (its checkpoint and its tables)."""
    return f"{study.results_dir}/models/{{source}}/{{predictor}}-{{identity}}"


def model_dir(study: Study, exp: Experiment, predictor: str, replicate: int = 0) -> str:
    """The folder of replicate `replicate` of the network `predictor` trained on `exp`'s
    pretraining source (each replicate has its own identity, so its own folder)."""
    return source_model_dir(study, exp.pretraining_name, predictor, replicate)


def source_model_dir(study: Study, source: str, predictor: str, replicate: int = 0) -> str:
    """`model_dir` by pretraining source name (a post-trained network's base is found here)."""
    identity = study.model_identity(predictor, source, replicate)
    return f"{study.results_dir}/models/{source}/{predictor}-{identity}"


def checkpoint(study: Study, exp: Experiment, predictor: str, replicate: int = 0) -> str:
    """The trained checkpoint of a network replicate (`model_dir`'s model.pt)."""
    return f"{model_dir(study, exp, predictor, replicate)}/model.pt"


def search_outputs(study: Study, exp: Experiment) -> list[str]:
    """Every search artifact of an experiment: one per selection and seed block, each
    holding every predictor, replicate, task and N."""
    return [pattern(study, "search").format(experiment=exp.name, selection=selection,
                                            first=a, last=b)
            for selection in exp.selections for a, b in exp.seed_blocks()]


def search_grid(study: Study, exp: Experiment) -> dict:
    """What an experiment's search files must hold between them: every (predictor,
    replicate, task, N, seed) once, in the experiment's seed blocks (read by the
    aggregate_search stage; the blocks, not seeds_per_job, so a setting that leaves the
    blocks as they are reruns nothing)."""
    return {"experiment": exp.name, "predictors": list(exp.predictors),
            "replicates": {p: study.replicates(p) for p in exp.predictors},
            "tasks": [task.name for task in exp.tasks],
            "selections": list(exp.selections),
            "dataset_sizes": list(exp.dataset_sizes), "num_seeds": exp.num_seeds,
            "seed_blocks": [list(block) for block in exp.seed_blocks()]}


def per_task(study: Study, exp: Experiment, artifact: str) -> list[str]:
    """One artifact per (predictor, replicate, task) of an experiment (landscape,
    efficiency)."""
    return [pattern(study, artifact).format(experiment=exp.name, predictor=predictor,
                                            replicate=r, task=task.name)
            for predictor, r in study.predictor_replicates(exp) for task in exp.tasks]


def prior_fit(study: Study, exp: Experiment, predictor: str, replicate: int = 0) -> str:
    """The prior read back from one (predictor, replicate) of an experiment."""
    return pattern(study, "prior_fit").format(experiment=exp.name, predictor=predictor,
                                              replicate=replicate)


def prior_fits(study: Study, exp: Experiment) -> list[str]:
    """Every prior_fit of an experiment: one per (predictor, replicate), where its
    pretraining source is exchangeable (none otherwise)."""
    if not exp.probes_prior:
        return []
    return [prior_fit(study, exp, predictor, r)
            for predictor, r in study.predictor_replicates(exp)]


def aggregate(study: Study, exp: Experiment, table: str) -> str:
    return pattern(study, table).format(experiment=exp.name)


def aggregates(study: Study) -> list[str]:
    """Every experiment's aggregate tables (`STRATEGY_TABLES` only where a strategy
    besides exhaustive runs, `tuning` only where the experiment tunes)."""
    return [aggregate(study, exp, table) for exp in study.experiments.values()
            for table in AGGREGATE_TABLES + (STRATEGY_TABLES if exp.runs_strategies else ())
            + (("tuning",) if exp.tuning else ())]


def transfer_sources(study: Study, exp: Experiment) -> list[str]:
    """The landscapes of other experiments that `exp`'s transfer table reads (across
    pretraining): every (predictor, replicate) of each other experiment with the same prompt
    space (L_max and alphabet) and task length T, on the tasks it shares with `exp` (same
    task name). The experiments that share a task but not these are `transfer_left_out`."""
    tasks = {task.name for task in exp.tasks}
    return [pattern(study, "landscape").format(experiment=other.name, predictor=predictor,
                                               replicate=r, task=task.name)
            for other in study.experiments.values()
            if other.name != exp.name and not _transfer_differences(exp, other)
            for predictor, r in study.predictor_replicates(other)
            for task in other.tasks if task.name in tasks]


def _transfer_differences(exp: Experiment, other: Experiment) -> list[str]:
    """What keeps `other`'s landscapes out of `exp`'s transfer across pretraining: a KL of
    the same prompt is only comparable over one prompt space and one task length."""
    out = []
    for name, key in (("L_max", "max_prompt_length"), ("V", "vocab_size"),
                      ("T", "task_length")):
        if getattr(other, key) != getattr(exp, key):
            out.append(f"{name} = {getattr(other, key)}, not {getattr(exp, key)}")
    return out


def transfer_left_out(study: Study, exp: Experiment) -> list[dict]:
    """Every other experiment that shares a task with `exp` but whose landscapes its
    transfer across pretraining leaves out: its name, the shared tasks, the number of
    (source landscape, target landscape) pairs left out and why."""
    tasks = [task.name for task in exp.tasks]
    units = len(study.predictor_replicates(exp))
    out = []
    for other in study.experiments.values():
        shared = [t.name for t in other.tasks if t.name in tasks]
        why = _transfer_differences(exp, other)
        if other.name == exp.name or not shared or not why:
            continue
        out.append({"experiment": other.name, "tasks": shared,
                    "pairs": len(shared) * len(study.predictor_replicates(other)) * units,
                    "reason": "; ".join(why)})
    return out


def tuning_blocks(exp: Experiment) -> dict[tuple[int, int], tuple[int, int]]:
    """{tuned seeds (first, last): the experiment's seed block holding them}: the experiment's
    blocks cut to tuning.num_seeds, so a tuning job reads one datasets file and one search
    file."""
    n = exp.tuning.num_seeds
    return {(a, min(b, n - 1)): (a, b) for a, b in exp.seed_blocks() if a < n}


def tuning_jobs(study: Study, exp: Experiment) -> list[dict]:
    """The wildcards of every tune_network job of an experiment: network x replicate x task
    x N x tuned seed block (none without a tuning section)."""
    if not exp.tuning:
        return []
    return [dict(experiment=exp.name, predictor=network, replicate=r, task=task, N=N,
                 first=a, last=b)
            for network in exp.tuning.networks
            for r in range(study.replicates(network))
            for task in exp.tuning.tasks
            for N in exp.tuning.dataset_sizes
            for a, b in tuning_blocks(exp)]


def tuning_outputs(study: Study, exp: Experiment) -> list[str]:
    """Every tuning_runs artifact of an experiment (`tuning_jobs`)."""
    return [pattern(study, "tuning_runs").format(**w) for w in tuning_jobs(study, exp)]


def optimum_jobs(study: Study, exp: Experiment) -> list[dict]:
    """The wildcards of every tune_optimum job of an experiment: tuned network x replicate
    x task (none without a tuning section)."""
    if not exp.tuning:
        return []
    return [dict(experiment=exp.name, predictor=network, replicate=r, task=task)
            for network in exp.tuning.networks
            for r in range(study.replicates(network))
            for task in exp.tuning.tasks]


def optimum_outputs(study: Study, exp: Experiment) -> list[str]:
    """Every tuner_optima artifact of an experiment (`optimum_jobs`)."""
    return [pattern(study, "tuner_optima").format(**w) for w in optimum_jobs(study, exp)]


def experiment_files(study: Study, exp: Experiment, artifact: str) -> list[str]:
    """Every file of `artifact` an experiment has, by the wildcards of its path: one per
    experiment (the aggregates, efficiency), per (predictor, replicate, task) (landscape,
    prediction), or per trained network replicate (training_curve, predictor_regret). What
    a figure reads (`report.catalog.Figure.artifacts`) is found here."""
    wildcards = set(tables.ARTIFACTS[artifact].wildcards)
    if wildcards == {"experiment"}:
        return [aggregate(study, exp, artifact)]
    if wildcards == {"experiment", "predictor", "replicate", "task"}:
        return per_task(study, exp, artifact)
    if wildcards == {"source", "predictor", "identity"}:
        return [network_tables(study, exp, predictor, r)[artifact]
                for predictor, r in study.predictor_replicates(exp)
                if study.is_neural(predictor)]
    raise ValueError(f"artifact {artifact!r} ({tables.ARTIFACTS[artifact].path}) is not "
                     "one an experiment's figure can read")


def strategy_outputs(study: Study, exp: Experiment,
                     artifact: str = "strategy_runs") -> list[str]:
    """Every strategy_runs artifact of an experiment (or another the search_strategies
    jobs write: strategy_steps, hill_climb_ends): predictor x task x N x seed block
    (replicate 0 of a network; none unless a strategy besides exhaustive runs)."""
    if not exp.runs_strategies:
        return []
    return [
        pattern(study, artifact).format(experiment=exp.name, predictor=predictor,
                                               task=task.name, N=N, first=a, last=b)
        for predictor in exp.predictors
        for task in exp.tasks
        for N in exp.dataset_sizes
        for a, b in exp.seed_blocks()
    ]


def strategy_landscapes(study: Study, exp: Experiment) -> dict[str, dict[str, str]]:
    """{predictor: {task: landscape}} of replicate 0, the landscapes the strategies ran on
    (read by the edit_effects stage)."""
    return {predictor: {task.name: pattern(study, "landscape").format(
                experiment=exp.name, predictor=predictor, replicate=0, task=task.name)
                        for task in exp.tasks}
            for predictor in exp.predictors}


def strategy_grid(study: Study, exp: Experiment) -> dict:
    """What an experiment's strategy_runs files must hold between them (read by the
    aggregate_strategies stage): `search_grid`'s keys, and per predictor every (strategy,
    budget) run of each seed (gradient none for bayes)."""
    from promptscape import prompts as prompts_lib
    from promptscape.strategies import STRATEGIES

    plan = exp.search_strategies
    P = prompts_lib.num_prompts(exp.max_prompt_length, exp.vocab_size)
    runs = {p: [[name, b] for name in plan.names
                if study.is_neural(p) or not STRATEGIES[name].needs_gradient
                for b in plan.budgets_of(name, P)]
            for p in exp.predictors}
    return {**search_grid(study, exp), "runs": runs}


def training_tables(study: Study, exp: Experiment) -> list[str]:
    """Training curves and regret tables of an experiment's networks (every replicate)."""
    return [f"{model_dir(study, exp, predictor, r)}/{name}.parquet"
            for predictor, r in study.predictor_replicates(exp) if study.is_neural(predictor)
            for name in ("training_curve", "regret")]


def network_tables(study: Study, exp: Experiment, predictor: str,
                   replicate: int = 0) -> dict[str, str]:
    """The training curve and the regret table of replicate `replicate` of the network
    `predictor` trained on `exp`'s pretraining source, by artifact name
    (``training_curve``, ``predictor_regret``); the same files as `training_tables` lists."""
    source = exp.pretraining_name
    identity = study.model_identity(predictor, source, replicate)
    return {artifact: pattern(study, artifact).format(source=source, predictor=predictor,
                                                      identity=identity)
            for artifact in ("training_curve", "predictor_regret")}


def prompt_losses(study: Study, exp: Experiment, predictor: str, replicate: int = 0) -> str:
    return pattern(study, "prompt_losses").format(experiment=exp.name, predictor=predictor,
                                                  replicate=replicate)
