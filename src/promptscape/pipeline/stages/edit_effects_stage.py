"""Stage `edit_effects`: the observational estimate of edit effects from the strategies'
steps, judged against the exact landscape; and how often hill climbing ends on
local optima.

An observational study of prompt optimisation sees the edits its optimisers made and the
change of the score they measured. Here the optimisers are the search strategies, the
score is L_N on their D_N, and every step that is one edit of its parent
(`strategy_steps`, operation not null) is one observed edge. Per (predictor, replicate,
task, N) and edit kind (`edits.EDIT_KINDS`, relative to the task; a step of several kinds
counts for each), pooled over seeds and strategies:

- the estimates `observational.observational_estimates` fits, naive and propensity-weighted, of
  ΔL_N on the kind with the covariates an observer has: the parent's length, its count of
  each symbol but 0 (the length fixes the last), and the parent's rank among the prompts
  its run evaluated (the share with lower L_N, 0..1);
- the truth from the landscape: the mean ΔKL over the visited edges and over all edges of
  the kind, and the error of the raw mean split into D_N noise and selection
  (`observational.error_decomposition`).

A steps file whose edit does not match the edge of its two prompts is an error naming the
file. Kinds a task has no edges of (its most or least probable symbol tied) are logged.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from promptscape import edits, observational
from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.sources import build_source

log = logging.getLogger("promptscape")

STEP_COLUMNS = ["predictor", "replicate", "task", "N", "seed", "strategy", "parent_prompt",
                "prompt", "operation", "parent_loss", "loss"]
# Quantile bins of each covariate for the propensity (observational.observational_estimates).
PROPENSITY_BINS = 4


def edit_effects(*, steps: list[str], landscapes: dict, hill_climb_ends: list[str],
                 output: str, hill_climb_optima: str, experiment: str, tasks: dict,
                 task_length: int, max_prompt_length: int, vocab_size: int,
                 in_meta_distribution: dict) -> None:
    """The `edit_effects` table of one experiment from its `steps` files (strategy_steps)
    and `landscapes` ({predictor: {task: path}}, replicate 0, the one the strategies ran
    on); the `hill_climb_optima` table from its `hill_climb_ends` files. `tasks`: {name:
    source mapping}."""
    if not steps:
        raise ValueError(f"experiment {experiment!r}: no strategy_steps files")
    edges = edits.edit_edges(max_prompt_length, vocab_size)
    prompts = prompts_lib.all_prompts(max_prompt_length, vocab_size)
    index = pd.Series(np.arange(len(prompts)), index=prompts)
    masks = {}
    for name, spec in tasks.items():
        marginals = edits.symbol_marginals(build_source(spec, where="task"), task_length)
        for kind, reason in edits.unavailable_kinds(marginals).items():
            log.info("%s %s: no %s edits, %s", experiment, name, kind, reason)
        masks[name] = edits.kind_masks(edges, marginals)
    visited = defaultdict(list)  # (predictor, replicate, task, N) -> [visited edge rows]
    for path in steps:
        for key, part in _single_edits(path, edges, index, vocab_size):
            visited[key].append(part)
    rows = []
    for (predictor, replicate, task, N), parts in sorted(visited.items()):
        if predictor not in landscapes or task not in landscapes[predictor]:
            raise ValueError(f"steps of {predictor} on {task} but no landscape of them")
        kl = _landscape_kl(landscapes[predictor][task], prompts)
        # An edge with an impossible end (KL inf: a word source's leading _ or __) has no
        # finite change of KL (inf, or inf - inf): it is left out of the visited edges and
        # of all edges alike, so every mean is over edges between possible prompts.
        finite = np.isfinite(kl[edges.child]) & np.isfinite(kl[edges.parent])
        with np.errstate(invalid="ignore"):
            delta_kl = edits.delta_kl(edges, kl)
        part = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        kept = finite[part["edge"]]
        if not finite.all():
            log.info("%s %s %s N=%d: %d of %d edges and %d of %d visited steps have an "
                     "impossible end (KL inf) and are left out", experiment, predictor, task,
                     N, int((~finite).sum()), len(finite), int((~kept).sum()), len(kept))
        part = {k: v[kept] for k, v in part.items()}
        for row in judge(part, delta_kl, {name: mask & finite
                                          for name, mask in masks[task].items()}):
            rows.append({"predictor": predictor, "replicate": replicate,
                         "experiment": experiment, "task": task, "N": N,
                         "in_meta_distribution": bool(in_meta_distribution[task]), **row})
    columns = tables.ARTIFACTS["edit_effects"].schema.names
    frame = pd.DataFrame(rows, columns=columns)
    tables.write(frame, "edit_effects", output)
    for row in frame.itertuples():
        log.info("%s %s N=%d %s: %d visits; naive %.4f, weighted %.4f, truth %.4f nats "
                 "(noise %.4f, selection %.4f)", row.predictor, row.task, row.N,
                 row.edit_kind, row.visits, row.naive, row.weighted, row.all_kl, row.noise_error,
                 row.selection_error)
    summary = hill_climb_summary(hill_climb_ends)
    tables.write(summary, "hill_climb_optima", hill_climb_optima)
    for row in summary.itertuples():
        log.info("%s %s N=%d: hill_climb missed the empirical optimum in %d/%d runs at %d "
                 "evaluations; of those, %d ended on a local optimum of L_N and %d on one "
                 "of the exact landscape", row.predictor, row.task, row.N, row.missed,
                 row.runs, row.budget, row.missed_empirical_local_optimum,
                 row.missed_exact_local_optimum)


def judge(part: dict, delta_kl: np.ndarray, masks: dict[str, np.ndarray]) -> list[dict]:
    """The rows of one (predictor, replicate, task, N): `part` holds the visited edges
    (``edge``, ``delta_loss``, ``covariates``); `delta_kl` the exact ΔKL of every edge;
    `masks` the task's kinds (`edits.kind_masks`). One row per visited kind."""
    edge = part["edge"]
    kinds, delta_loss, visited_kl, covariates = [], [], [], []
    for name, mask in masks.items():
        mine = mask[edge]
        kinds += [name] * int(mine.sum())
        delta_loss.append(part["delta_loss"][mine])
        visited_kl.append(delta_kl[edge[mine]])
        covariates.append(part["covariates"][mine])
    if not kinds:
        return []
    kinds = np.asarray(kinds)
    delta_loss, visited_kl = np.concatenate(delta_loss), np.concatenate(visited_kl)
    estimates = {r["kind"]: r for r in observational.observational_estimates(
        kinds, delta_loss, np.concatenate(covariates), bins=PROPENSITY_BINS)}
    rows = []
    for name in sorted(set(kinds.tolist())):
        mine = kinds == name
        truth = delta_kl[masks[name]]
        (split,) = observational.error_decomposition(
            kinds[mine], delta_loss[mine], visited_kl[mine], np.full(len(truth), name), truth)
        estimate = estimates[name]
        rows.append({"edit_kind": name, "visits": split["visits"], "edges": split["edges"],
                     "naive": estimate["naive"], "weighted": estimate["weighted"],
                     "overlap": estimate["overlap"], "visited_loss": split["visited_loss"],
                     "visited_kl": split["visited_kl"], "all_kl": split["all_kl"],
                     "noise_error": split["noise"],
                     "selection_error": split["selection"], "raw_error": split["error"],
                     "naive_error": estimate["naive"] - split["all_kl"],
                     "weighted_error": estimate["weighted"] - split["all_kl"]})
    return rows


def _single_edits(path: str, edges: edits.Edges, index: pd.Series, vocab_size: int):
    """Per (predictor, replicate, task, N) of one strategy_steps file: its single-edit
    steps as ``edge`` (index into `edges`), ``delta_loss`` and ``covariates``, each
    checked against the edge of its two prompts."""
    table = tables.read_table(path, "strategy_steps").select(STEP_COLUMNS)
    frame = table.filter(pc.is_valid(table["parent_prompt"])).to_pandas()
    if not len(frame):
        return
    # The parent's rank among the prompts its run evaluated: the share with lower L_N.
    runs = frame.groupby(["seed", "strategy"], sort=False)
    all_losses = table.select(["seed", "strategy", "loss"]).to_pandas()
    seen = {key: np.sort(g["loss"].to_numpy())
            for key, g in all_losses.groupby(["seed", "strategy"], sort=False)}
    rank = np.empty(len(frame))
    for key, rows in runs.indices.items():
        lost = seen[key]
        rank[rows] = np.searchsorted(lost, frame["parent_loss"].to_numpy()[rows]) / len(lost)
    # Strategies that search beyond the landscape's L_max (strategy_max_prompt_length) step
    # to prompts it does not hold, whose ΔKL it does not know: those steps are left out.
    longest = len(index.index[-1]) if len(index) else 0
    inside = ((frame["parent_prompt"].str.len() <= longest)
              & (frame["prompt"].str.len() <= longest)).to_numpy()
    if not inside.all():
        log.info("%s: %d of %d steps with a parent reach beyond the landscape's prompts (length "
                 "> %d) and are left out", path, int((~inside).sum()), len(frame), longest)
        frame, rank = frame[inside].reset_index(drop=True), rank[inside]
        if not len(frame):
            return
    parent = index.reindex(frame["parent_prompt"]).to_numpy()
    child = index.reindex(frame["prompt"]).to_numpy()
    if np.isnan(parent.astype(float)).any() or np.isnan(child.astype(float)).any():
        raise ValueError(f"{path}: prompts outside the landscape's length or vocabulary")
    edge = edits.edge_index(edges, parent.astype(np.int64), child.astype(np.int64))
    recorded = frame["operation"].notna().to_numpy()
    wrong = recorded != (edge >= 0)
    ops = np.asarray(edits.OPERATIONS)[edges.operation[np.maximum(edge, 0)]]
    wrong |= recorded & (ops != frame["operation"].fillna("").to_numpy())
    if wrong.any():
        i = int(np.argmax(wrong))
        raise ValueError(f"{path}: step {frame['parent_prompt'].iat[i]!r} -> "
                         f"{frame['prompt'].iat[i]!r} records operation "
                         f"{frame['operation'].iat[i]!r}, not the edge between them")
    lengths = frame["parent_prompt"].str.len().to_numpy()
    characters = prompts_lib.alphabet(vocab_size)
    counts = np.stack([frame["parent_prompt"].str.count(re.escape(characters[v])).to_numpy()
                       for v in range(1, vocab_size)], axis=1)
    covariates = np.column_stack([lengths, counts, rank]).astype(np.float64)
    delta_loss = (frame["loss"] - frame["parent_loss"]).to_numpy()
    keys = frame[["predictor", "replicate", "task", "N"]]
    for key, rows in keys.groupby(list(keys.columns), sort=True).indices.items():
        rows = rows[recorded[rows]]
        if len(rows):
            yield ((key[0], int(key[1]), key[2], int(key[3])),
                   {"edge": edge[rows], "delta_loss": delta_loss[rows],
                    "covariates": covariates[rows]})


def _landscape_kl(path: str, prompts: list[str]) -> np.ndarray:
    frame = tables.read(path, "landscape")
    if frame["prompt"].tolist() != prompts:
        raise ValueError(f"{path}: the landscape does not hold the {len(prompts)} prompts of "
                         "the strategies, in canonical order")
    return frame["kl"].to_numpy()


def hill_climb_summary(paths: list[str]) -> pd.DataFrame:
    """Per (predictor, replicate, experiment, task, N, budget) of the hill_climb_ends
    files: runs, those that missed the empirical optimum, and how many of those ended on a
    local optimum of L_N and of the exact landscape."""
    columns = tables.ARTIFACTS["hill_climb_optima"].schema.names
    ends = tables.read(paths, "hill_climb_ends") if paths else None
    if ends is None or not len(ends):
        return pd.DataFrame(columns=columns)
    missed = ends[~ends["found_best"]]
    key = ["predictor", "replicate", "experiment", "task", "N", "strategy", "budget"]
    out = ends.groupby(key).size().rename("runs").to_frame()
    out["missed"] = missed.groupby(key).size()
    out["missed_empirical_local_optimum"] = missed.groupby(key)["local_optimum_empirical"].sum()
    out["missed_exact_local_optimum"] = missed.groupby(key)["local_optimum_exact"].sum()
    out["missed_both_local_optimum"] = (
        missed.assign(both=missed["local_optimum_empirical"] & missed["local_optimum_exact"])
        .groupby(key)["both"].sum())
    out = out.fillna(0).astype(int).reset_index()
    return out[columns]
