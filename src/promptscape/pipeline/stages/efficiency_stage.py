"""Stage `measure_efficiency`: typical against optimal prompts per length for every
predictor and task of an experiment (each predictor loaded once), and the experiment's
token efficiency."""

from __future__ import annotations

import logging

import numpy as np

from promptscape import efficiency
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape.sources import build_source
from promptscape.pipeline.stages.common import load_predictor

log = logging.getLogger("promptscape")


def measure_efficiency(*, output: str, token_efficiency: str, predictors: list[dict],
                       tasks: dict[str, dict], evaluations: dict[str, str],
                       in_meta_distribution: dict, pretraining: dict, experiment: str,
                       task_length: int, enumeration_budget: int, max_length: int,
                       num_typical: int, device: str = "auto") -> None:
    """The efficiency table of an experiment (`output`) and its token efficiency
    (`token_efficiency`). `predictors`: one mapping per (predictor, replicate) with
    ``predictor``, ``replicate``, ``family``, its checkpoint ``model`` (networks) and its
    ``landscapes`` (task name -> landscape path); `tasks`: name -> source config;
    `evaluations`: name -> evaluation-set path."""
    frames, landscapes = [], []
    for unit in predictors:
        pred = load_predictor(unit["family"], pretraining, unit.get("model"), device=device)
        for task_name, task in tasks.items():
            landscapes.append(unit["landscapes"][task_name])
            frames.append(_efficiency(
                pred, unit["landscapes"][task_name], evaluations[task_name],
                predictor=unit["predictor"], replicate=unit["replicate"],
                experiment=experiment, task_name=task_name, task=task,
                task_length=task_length, enumeration_budget=enumeration_budget,
                max_length=max_length, num_typical=num_typical))
    eff = {key: [v for f in frames for v in f[key]] for key in frames[0]}
    tables.write(eff, "efficiency", output)
    _summarize(tables.read(output, "efficiency"), tables.read(landscapes, "landscape"),
               token_efficiency, experiment, in_meta_distribution)


def _efficiency(pred, landscape: str, evaluation: str, *, predictor: str, replicate: int,
                experiment: str, task_name: str, task: dict, task_length: int,
                enumeration_budget: int, max_length: int, num_typical: int) -> dict:
    """Typical prompts of every length 0..max_length against the optimal prompts, for one
    (predictor, experiment, task): the efficiency rows as columns."""
    task_source = build_source(task, where=f"task {task_name}")
    land = tables.read(landscape, "landscape")
    eval_frame = tables.read_table(evaluation, "evaluation_set")
    eval_seqs = prompts_lib.to_arrays(eval_frame["sequence"].to_pylist(), task_length)
    lengths, skipped = efficiency.measured_lengths(
        range(max_length + 1), task_length, getattr(pred, "max_context", None))
    # Enumeration is decided on the prompts scored here: K typical prompts per length.
    scorer = efficiency.KLScorer(pred, task_source, task_length, num_typical * len(lengths),
                                 enumeration_budget, eval_seqs, eval_frame["weight"].to_numpy())

    if skipped:
        log.info("%s conditions on at most %d symbols: lengths %d..%d do not fit with T = %d "
                 "and are skipped", predictor, pred.max_context, skipped[0], skipped[-1],
                 task_length)
    if not lengths:
        raise ValueError(f"no prompt length fits the context of predictor {predictor!r}")
    curve = efficiency.typical_curve(scorer, task_source, lengths, num_typical)

    classes = None
    l_max = int(land["prompt_length"].max())
    if scorer.classes_apply:
        classes = efficiency.class_optima(scorer, max(lengths[-1], l_max))
        exhaustive = efficiency.landscape_optima(land)["exact_kl"]
        gap = np.abs(classes["exact_kl"].loc[exhaustive.index] - exhaustive).max()
        log.info("prompt-class cross-check of the landscape optima, lengths 0..%d: "
                 "max |difference| = %.2e nats", l_max, gap)
    optimal = efficiency.optimal_by_length(land, lengths, classes)

    sampled = curve["typical_method"][0] == "sampled"
    log.info("%s %s %s: typical-prompt quantiles %s, KL by %s", predictor, experiment,
             task_name, f"of {num_typical} prompts drawn per length (95% intervals from order "
             "statistics)" if sampled else "exact (count classes)", scorer.method)
    for i, length in enumerate(lengths):
        if length in (0, l_max, lengths[-1]) or length % 16 == 0:
            best = optimal["optimal_upto_kl"][i]
            below = optimal["optimal_below_resolution"][i]
            low, high = curve["typical_kl_median_low"][i], curve["typical_kl_median_high"][i]
            interval = (f" (95% CI {'-inf' if low is None else f'{low:.3e}'} .. "
                        f"{'inf' if high is None else f'{high:.3e}'})" if sampled else "")
            log.info("  length %3d: typical median KL %.3e%s, quartiles [%.3e, %.3e]; optimal "
                     "(length <= l) %s", length, curve["typical_kl_median"][i], interval,
                     curve["typical_kl_q25"][i], curve["typical_kl_q75"][i],
                     "unknown" if best is None else "below resolution" if below
                     else f"{best:.3e}")
    columns = {**curve, **optimal}
    n = len(next(iter(columns.values())))
    return {"predictor": [predictor] * n, "replicate": [replicate] * n,
            "experiment": [experiment] * n, "task": [task_name] * n,
            **{k: list(v) for k, v in columns.items()}, "method": [scorer.method] * n}


def _summarize(eff, land, output: str, experiment: str, in_meta_distribution: dict) -> None:
    """The token-efficiency table of one experiment, also logged as text."""
    unlabelled = sorted(set(land["task"]) - set(in_meta_distribution))
    if unlabelled:
        raise ValueError(f"tasks without an IMD/OOMD label: {unlabelled}")
    columns = efficiency.token_efficiency(eff, land, in_meta_distribution)
    tables.write(columns, "token_efficiency", output)
    log.info("token efficiency of %s (typical len: shortest typical-prompt length whose lower "
             "median KL is at most that of the optimal prompt, exact or sampled as the "
             "method column says; ratio = typical / optimal length):\n%s",
             experiment, efficiency.format_token_efficiency(columns))
