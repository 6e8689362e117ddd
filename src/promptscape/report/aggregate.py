"""Reliability of the search: which prompts it picks, how often they are optimal, at what cost."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

from promptscape import landscape as landscape_lib
from promptscape.neural.tuners import HARD_OPTIMUM, HARD_SEARCH
from promptscape.pipeline import tables
from promptscape.strategies import expected_found_best

WILSON_Z = 1.959963984540054  # two-sided 95%


def wilson_interval(successes, trials, z: float = WILSON_Z):
    """Wilson score interval for a binomial proportion (vectorised).

    >>> [round(float(v), 4) for v in wilson_interval(0, 10)]
    [0.0, 0.2775]
    """
    successes = np.asarray(successes, dtype=np.float64)
    trials = np.asarray(trials, dtype=np.float64)
    p = successes / trials
    denom = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denom
    # At k = 0 and k = n the bound is exactly 0 or 1; rounding in centre -/+ half would
    # otherwise leave the interval just short of the observed proportion (1 - 1e-16).
    low = np.where(successes == 0, 0.0, np.clip(centre - half, 0, 1))[()]
    high = np.where(successes == trials, 1.0, np.clip(centre + half, 0, 1))[()]
    return low, high


def newcombe_difference(k1, n1, k2, n2, z: float = WILSON_Z):
    """95% interval of p1 - p2 for two independent binomial proportions k1/n1 and k2/n2:
    Newcombe's hybrid score interval (method 10 of Newcombe 1998, Stat. Med. 17:873), built
    from the two Wilson intervals (vectorised).

    >>> [round(float(v), 4) for v in newcombe_difference(56, 70, 48, 80)]
    [0.0524, 0.3339]
    """
    k1, n1, k2, n2 = (np.asarray(v, dtype=np.float64) for v in (k1, n1, k2, n2))
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low[()], high[()]


# What one searched predictor is: a predictor name and which trained replicate of it.
UNIT = ["predictor", "replicate"]


def selections(search: pd.DataFrame, landscape: pd.DataFrame) -> pd.DataFrame:
    """One row per (predictor, replicate, task, selection, N, seed): the chosen prompt, its
    KL, regret and rank (each replicate against its own landscape)."""
    chosen = search[search["chosen"]]
    land = landscape[[*UNIT, "task", "prompt", "kl", "rank", "optimal"]]
    # KL(s*): the least KL of the optimal class (rank 0), which holds the best estimate, so
    # regret >= 0; an unresolved member of the class is correct with a small positive regret.
    best = landscape.loc[landscape["rank"] == 0].groupby([*UNIT, "task"])["kl"].min()
    out = chosen.merge(land, on=[*UNIT, "task", "prompt"], how="left", validate="m:1")
    if out["kl"].isna().any():
        missing = out.loc[out["kl"].isna(), [*UNIT, "task", "prompt"]].drop_duplicates()
        raise ValueError(f"chosen prompts missing from the landscape: {missing.to_dict('records')}")
    keys = pd.MultiIndex.from_frame(out[[*UNIT, "task"]])
    out["regret"] = out["kl"] - best.reindex(keys).to_numpy()
    out = out.rename(columns={"optimal": "correct"})
    return out[[*UNIT, "experiment", "task", "selection", "N", "seed", "prompt",
                "prompt_length", "empirical_loss", "kl", "regret", "rank", "correct"]]


# Regret over the seeds of a cell, as named aggregations: shared by the reliability and
# strategies tables, whose regret columns mean the same.
def _q25(values) -> float:
    return float(np.quantile(values, 0.25))


def _q75(values) -> float:
    return float(np.quantile(values, 0.75))


REGRET_STATS = {
    "regret_mean": ("regret", "mean"),
    "regret_median": ("regret", "median"),
    "regret_q25": ("regret", _q25),
    "regret_q75": ("regret", _q75),
}


# `landscape.within_epsilon`'s default (nats): the schema states it, a test holds them equal.
DEFAULT_WITHIN_EPSILON = 1e-6


def _with_proportion_correct(out: pd.DataFrame) -> None:
    """proportion_correct with its Wilson 95% interval, from the correct and seeds columns."""
    out["proportion_correct"] = out["correct"] / out["seeds"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["correct"], out["seeds"])


def _with_within_epsilon(out: pd.DataFrame, epsilon: float) -> None:
    """within_epsilon (the proportion of seeds whose chosen prompt has KL - KL* <= epsilon,
    from the within_epsilon_seeds and seeds columns) with its Wilson 95% interval, as the
    proportion correct has, and the epsilon it used."""
    out["epsilon"] = float(epsilon)
    out["within_epsilon"] = out["within_epsilon_seeds"] / out["seeds"]
    out["within_epsilon_ci_low"], out["within_epsilon_ci_high"] = wilson_interval(
        out["within_epsilon_seeds"], out["seeds"])


def within(regret, epsilon: float, correct=None):
    """Whether each chosen prompt is within `epsilon` nats of the optimum: regret =
    KL(s_hat) - KL(s*) <= epsilon, or the prompt is `correct` (in the optimal class: tied
    with the optimum within the landscape's resolution, which for a network's float32
    losses, about 3e-5 nats, is wider than the default epsilon; a tie is never counted
    outside epsilon, so within_epsilon >= proportion correct)."""
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"within_epsilon == {epsilon}, must be a finite number of nats > 0")
    out = np.asarray(regret, dtype=np.float64) <= epsilon
    return out if correct is None else out | np.asarray(correct, dtype=bool)


def reliability(sel: pd.DataFrame, epsilon: float = DEFAULT_WITHIN_EPSILON) -> pd.DataFrame:
    """Per (predictor, replicate, task, selection, N): proportion correct and within_epsilon
    (regret <= `epsilon` nats), each with a Wilson 95% interval, regret and rank of s_hat."""
    sel = sel.assign(_within=within(sel["regret"], epsilon, sel["correct"]))
    g = sel.groupby([*UNIT, "experiment", "task", "selection", "N"], sort=True)
    out = g.agg(
        seeds=("seed", "size"),
        correct=("correct", "sum"),
        within_epsilon_seeds=("_within", "sum"),
        **REGRET_STATS,
        rank_mean=("rank", "mean"),
        rank_median=("rank", "median"),
    ).reset_index()
    _with_proportion_correct(out)
    _with_within_epsilon(out, epsilon)
    return out


def choices(sel: pd.DataFrame, landscape: pd.DataFrame) -> pd.DataFrame:
    """Per (predictor, replicate, task, selection, N, prompt): how often the search picked
    it."""
    cell = [*UNIT, "task", "selection", "N"]
    counts = (sel.groupby([*UNIT, "experiment", "task", "selection", "N", "prompt"], sort=True)
              .size().rename("count").reset_index())
    totals = sel.groupby(cell).size().rename("total").reset_index()
    counts = counts.merge(totals, on=cell)
    counts["frequency"] = counts["count"] / counts["total"]
    land = landscape[[*UNIT, "task", "prompt", "prompt_length", "kl", "rank", "optimal",
                      "resolved"]]
    out = counts.merge(land, on=[*UNIT, "task", "prompt"], how="left", validate="m:1")
    return out.drop(columns="total")


def strategy_table(runs: pd.DataFrame, epsilon: float = DEFAULT_WITHIN_EPSILON) -> pd.DataFrame:
    """Per (predictor, replicate, task, N, strategy, budget) of the strategy_runs: proportion
    correct, within_epsilon (regret <= `epsilon` nats) and found-best with Wilson 95%
    intervals, random's exact expectation of found-best, the four cells of found-best x
    exhaustive-correct, and regret."""
    data = runs.copy()
    data["_within"] = within(data["regret"], epsilon, data["correct"])
    # Random search's exact law needs the true empirical-optimum class: not where the
    # strategies search beyond the landscape (ground_truth best_known).
    data["expected"] = [
        expected_found_best(P, m, used) if name == "random" and truth == "exhaustive"
        else np.nan
        for name, P, m, used, truth in zip(data["strategy"], data["num_prompts"],
                                           data["optimum_class_size"], data["evaluations"],
                                           data["ground_truth"])]
    found, right = data["found_best"], data["exhaustive_correct"]
    data["cell_ok"] = found & right
    data["cell_estimation"] = found & ~right
    data["cell_search"] = ~found & right
    data["cell_both"] = ~found & ~right
    g = data.groupby([*UNIT, "experiment", "task", "N", "strategy", "budget"], sort=True)
    out = g.agg(
        seeds=("seed", "size"),
        correct=("correct", "sum"),
        within_epsilon_seeds=("_within", "sum"),
        found_best=("found_best", "sum"),
        expected_found_best=("expected", "mean"),
        found_best_exhaustive_correct=("cell_ok", "sum"),
        estimation_error=("cell_estimation", "sum"),
        search_error=("cell_search", "sum"),
        both_errors=("cell_both", "sum"),
        **REGRET_STATS,
        evaluations_mean=("evaluations", "mean"),
        ground_truth=("ground_truth", "first"),
        _truths=("ground_truth", "nunique"),
    ).reset_index()
    if (out["_truths"] > 1).any():
        raise ValueError("strategy_runs of one (predictor, task, N, strategy, budget) mix "
                         "ground truths (exhaustive and best_known)")
    out = out.drop(columns="_truths")
    _with_proportion_correct(out)
    _with_within_epsilon(out, epsilon)
    out["proportion_found_best"] = out["found_best"] / out["seeds"]
    out["found_best_ci_low"], out["found_best_ci_high"] = wilson_interval(out["found_best"],
                                                                          out["seeds"])
    return out


# ------------------------------------------------------------------ what aggregation reads
_NUMERIC_WILDCARDS = ("N", "first", "last", "replicate")


def path_fields(artifact: str, path) -> dict | None:
    """The wildcards of an artifact file's path, parsed with the artifact's path pattern
    (`tables.ARTIFACTS[artifact].path`, matched at the end of the path, whatever folder it
    lies under); None when the path does not fit the pattern.

    >>> path_fields("search", "results/x/search/random/seeds0-3.parquet")
    {'experiment': 'x', 'selection': 'random', 'first': 0, 'last': 3}
    """
    regex = _path_regex(artifact)
    match = regex.search(os.fspath(path))
    if match is None:
        return None
    return {k: int(v) if k in _NUMERIC_WILDCARDS else v for k, v in match.groupdict().items()}


def _path_regex(artifact: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", tables.ARTIFACTS[artifact].path)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        else:
            regex += fr"(?P<{part}>\d+)" if part in _NUMERIC_WILDCARDS else fr"(?P<{part}>[^/]+)"
    return re.compile(fr"(?:^|/){regex}$")


def _column_mismatches(frame: pd.DataFrame, fields: dict, columns) -> list[str]:
    """What the file's columns hold where its path says otherwise."""
    problems = []
    for column in columns:
        held = sorted(pd.unique(frame[column]).tolist())
        if held != [fields[column]]:
            shown = ", ".join(f"{column}={v}" for v in held) or "no"
            problems.append(f"holds {shown} rows, its path says {column}={fields[column]}")
    return problems


def verify_search_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one search file against its path and the experiment's grid.

    `expected` is `layout.search_grid`. The file must lie at a search path of that grid
    (experiment, selection, seed block) and hold exactly what the path says: its experiment
    and selection, and for every (predictor, replicate, task, N) of the grid every seed of
    its block and no other, each seed with distinct prompts and exactly one chosen prompt.
    Raises a ValueError naming the file and every problem found.
    """
    fields = path_fields("search", path)
    if fields is None:
        raise ValueError(f"{path}: not a search file path (expected .../"
                         f"{tables.ARTIFACTS['search'].path})")
    problems = _grid_problems(fields, expected)
    problems += _column_mismatches(frame, fields, ("experiment", "selection"))
    cell = ["predictor", "replicate", "task", "N"]
    block = list(range(fields["first"], fields["last"] + 1))
    held = frame.groupby(cell)["seed"].unique() if len(frame) else pd.Series(dtype=object)
    grid = {(p, r, t, N) for p, r in _units(expected) for t in expected["tasks"]
            for N in expected["dataset_sizes"]}
    for key in sorted(grid - set(held.index)):
        problems.append("no rows of predictor {} replicate {} task {} N={}".format(*key))
    for key in sorted(set(held.index) - grid):
        problems.append("rows of predictor {} replicate {} task {} N={}, outside the "
                        "experiment's grid".format(*key))
    for key, seeds in held.items():
        if sorted(seeds.tolist()) != block:
            missing = sorted(set(block) - set(seeds.tolist()))
            extra = sorted(set(seeds.tolist()) - set(block))
            problems.append("predictor {} replicate {} task {} N={}: ".format(*key) + "; ".join(
                part for part in (missing and f"seeds {_ranges(missing)} missing",
                                  extra and f"seeds {_ranges(extra)} outside its block seeds "
                                            f"{fields['first']}-{fields['last']}") if part))
    unit = cell + ["seed"]
    sizes = frame.groupby(unit)["prompt"].nunique().groupby(level=cell).nunique()
    for key in sorted(sizes[sizes > 1].index):
        problems.append("predictor {} replicate {} task {} N={}: its seeds hold different "
                        "numbers of prompts".format(*key))
    repeated = frame.duplicated(unit + ["prompt"], keep=False)
    for key in sorted(set(map(tuple, frame.loc[repeated, unit].to_numpy().tolist()))):
        problems.append("predictor {} replicate {} task {} N={} seed {} repeats a "
                        "prompt".format(*key))
    chosen = frame.groupby(unit)["chosen"].sum()
    for key, count in chosen.items():
        if count != 1:
            problems.append("predictor {} replicate {} task {} N={} seed {} has {} chosen "
                            "prompts, not exactly one".format(*key, int(count)))
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:20])
                         + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))


def verify_strategy_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one strategy_runs file against its path and the experiment's grid: its
    experiment, predictor, task and N, replicate 0, every seed of its block and no other,
    and for each seed every (strategy, budget) of the grid once (`expected["runs"]`:
    [strategy, budget] pairs; gradient has none for bayes)."""
    fields = path_fields("strategy_runs", path)
    if fields is None:
        raise ValueError(f"{path}: not a strategy_runs file path (expected .../"
                         f"{tables.ARTIFACTS['strategy_runs'].path})")
    problems = _grid_problems(fields, expected)
    problems += _column_mismatches(frame, fields, ("experiment", "predictor", "task", "N"))
    if set(frame["replicate"].tolist()) - {0}:
        problems.append("holds a replicate other than 0 (strategies run on replicate 0)")
    block = range(fields["first"], fields["last"] + 1)
    runs = {tuple(r) for r in expected["runs"].get(fields["predictor"], [])}
    held = frame.groupby("seed")[["strategy", "budget"]].apply(
        lambda f: sorted(zip(f["strategy"], f["budget"].astype(int))))
    for seed in block:
        have = held.get(seed, [])
        if sorted(have) != sorted(runs):
            missing = sorted(runs - set(have))
            extra = sorted(set(have) - runs)
            repeated = len(have) != len(set(have))
            problems.append(f"seed {seed}: " + "; ".join(
                part for part in (missing and f"missing runs {missing[:4]}",
                                  extra and f"runs outside the grid {extra[:4]}",
                                  repeated and "a run appears twice") if part))
    for seed in sorted(set(held.index) - set(block)):
        problems.append(f"holds seed {seed}, outside its block seeds "
                        f"{fields['first']}-{fields['last']}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_strategy_coverage(paths, expected: dict) -> None:
    """Every (predictor, task, N, seed) of the grid is covered by exactly one strategy_runs
    file (replicate 0)."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields("strategy_runs", path)
        for seed in range(f["first"], f["last"] + 1):
            key = (f["predictor"], f["task"], f["N"], seed)
            if key in owner:
                problems.append(f"{path}: seed {seed} appears twice: {owner[key]} covers it too")
            owner[key] = str(path)
    for predictor in expected["predictors"]:
        for task in expected["tasks"]:
            for N in expected["dataset_sizes"]:
                missing = [s for s in range(expected["num_seeds"])
                           if (predictor, task, N, s) not in owner]
                if missing:
                    problems.append(f"no strategy_runs file of experiment "
                                    f"{expected['experiment']} holds seeds {_ranges(missing)} "
                                    f"of predictor {predictor}, task {task}, N={N}")
    if problems:
        raise ValueError("strategy_runs files do not cover the experiment's seeds exactly "
                         "once: " + "; ".join(problems))


def verify_search_coverage(paths, expected: dict) -> None:
    """Every (selection, seed) of the grid is covered by exactly one of the search files (by
    their paths' seed blocks); each file holds every (predictor, replicate, task, N) of its
    block (`verify_search_file`)."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields("search", path)
        for seed in range(f["first"], f["last"] + 1):
            key = (f["selection"], seed)
            if key in owner:
                problems.append(f"{path}: seed {seed} appears twice: {owner[key]} covers it too")
            else:
                owner[key] = str(path)
    for selection in expected["selections"]:
        missing = [s for s in range(expected["num_seeds"]) if (selection, s) not in owner]
        if missing:
            problems.append(f"no search file of experiment {expected['experiment']} holds "
                            f"seeds {_ranges(missing)} of selection {selection}")
    if problems:
        raise ValueError("search files do not cover the experiment's seeds exactly once: "
                         + "; ".join(problems))


def _per_task_file_problems(artifact: str, frame: pd.DataFrame, path, expected: dict) -> list[str]:
    """What a file of a per-(predictor, replicate, task) artifact holds against its path and
    the experiment's grid (a path that is not the artifact's is an error at once)."""
    fields = path_fields(artifact, path)
    if fields is None:
        raise ValueError(f"{path}: not a {artifact} file path (expected .../"
                         f"{tables.ARTIFACTS[artifact].path})")
    return _grid_problems(fields, expected) + _column_mismatches(
        frame, fields, ("experiment", "predictor", "replicate", "task"))


def verify_landscape_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one landscape file against its path and the experiment's grid: its experiment,
    predictor and task, each prompt once."""
    problems = _per_task_file_problems("landscape", frame, path, expected)
    repeated = sorted(set(frame.loc[frame.duplicated("prompt"), "prompt"].tolist()))
    if repeated:
        problems.append(f"prompts appear more than once: {repeated[:5]}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_landscape_coverage(paths, expected: dict) -> None:
    """Exactly one landscape per (predictor, replicate, task) of the grid."""
    _verify_per_task_coverage("landscape", "landscape", paths, expected)


def _verify_per_task_coverage(artifact: str, noun: str, paths, expected: dict) -> None:
    """Exactly one file of a per-(predictor, replicate, task) artifact per unit and task."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields(artifact, path)
        key = (f["predictor"], f["replicate"], f["task"])
        if key in owner:
            problems.append(f"{path}: the {noun} of {key[0]} (replicate {key[1]}) on "
                            f"{key[2]} appears twice: {owner[key]} holds it too")
        owner[key] = str(path)
    for predictor, r in _units(expected):
        for task in expected["tasks"]:
            if (predictor, r, task) not in owner:
                problems.append(f"no {noun} file of predictor {predictor} (replicate {r}), "
                                f"task {task}")
    if problems:
        raise ValueError(f"{noun} files do not cover the experiment exactly once: "
                         + "; ".join(problems))


def verify_prediction_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one predicted_reliability file against its path and the experiment's grid:
    its experiment, predictor, replicate and task, and every N of the grid exactly once."""
    problems = _per_task_file_problems("predicted_reliability", frame, path, expected)
    held = sorted(int(N) for N in frame["N"])
    if held != sorted(int(N) for N in expected["dataset_sizes"]):
        problems.append(f"holds N = {held}, the experiment's dataset_sizes are "
                        f"{sorted(expected['dataset_sizes'])}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_prediction_coverage(paths, expected: dict) -> None:
    """Exactly one prediction per (predictor, replicate, task) of the grid."""
    _verify_per_task_coverage("predicted_reliability", "prediction", paths, expected)


def _grid_problems(fields: dict, expected: dict) -> list[str]:
    problems = []
    if fields["experiment"] != expected["experiment"]:
        problems.append(f"its path names experiment {fields['experiment']}, this aggregation "
                        f"is of {expected['experiment']}")
    for key, plural in (("predictor", "predictors"), ("task", "tasks"),
                        ("selection", "selections"), ("N", "dataset_sizes")):
        if key in fields and fields[key] not in expected[plural]:
            problems.append(f"its path names {key}={fields[key]}, not one of the experiment's "
                            f"{plural} {list(expected[plural])}")
    if fields.get("predictor") in expected["predictors"] and "replicate" in fields:
        k = expected["replicates"][fields["predictor"]]
        if not 0 <= fields["replicate"] < k:
            problems.append(f"its path names replicate {fields['replicate']} of predictor "
                            f"{fields['predictor']}, which has replicates 0..{k - 1}")
    if "first" in fields:
        first, last = fields["first"], fields["last"]
        if not 0 <= first <= last < expected["num_seeds"]:
            problems.append(f"its path's seed block {first}-{last} is not within seeds "
                            f"0-{expected['num_seeds'] - 1}")
        elif "seed_blocks" in expected and [first, last] not in expected["seed_blocks"]:
            blocks = ", ".join(f"{a}-{b}" for a, b in expected["seed_blocks"])
            problems.append(f"its path's seed block {first}-{last} is not one of the "
                            f"experiment's seed blocks ({blocks})")
    return problems


def _units(expected: dict) -> list[tuple[str, int]]:
    """Every (predictor, replicate) of the grid."""
    return [(p, r) for p in expected["predictors"] for r in range(expected["replicates"][p])]


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)


# ------------------------------------------------------------------ tuning
TUNING_KEY = ["predictor", "replicate", "experiment", "task", "N", "tuner", "settings",
              "tuning_steps"]


def tuning(runs: pd.DataFrame, landscape: pd.DataFrame, resolution: float,
           optima: pd.DataFrame) -> pd.DataFrame:
    """The `tuning` table of an experiment: per (network, replicate, task, N, tuner, step
    budget) over seeds, from its tuning_runs rows, its landscapes (the hard optimum) and its
    tuner_optima (each tuner's own optimum, `tuner_optimum_kl`; the hard optimum for the
    hard-prompt references), with a hard_optimum row per (network, replicate, task, N).

    "Below" means by more than `resolution` times the loss (kl + entropy): float32 scores do
    not resolve less (`decided_by` float32_resolution). On an estimated landscape it means
    shown below as well (`landscape.SE_BOUND`): a seed is below the optimum when its KL is
    below every member m of the optimal class by z (se + se_m), and below its searched
    prompt when below it by z (se + se_search), z the landscape's Bonferroni critical value
    (`landscape.estimate_critical_z` of its P prompts). The tuned network is no prompt of
    the landscape, so no paired error exists; se(a) + se(b) bounds the error of the
    difference whatever the correlation (docs/science.md, "Ties")."""
    keys = UNIT + ["experiment", "task"]
    estimated = landscape["method"] == "monte_carlo"
    z = landscape.groupby(keys, sort=False)["kl"].transform("size").map(
        landscape_lib.estimate_critical_z)
    bar = landscape.assign(
        _bar=np.where(landscape["optimal"] & estimated,
                      landscape["kl"] - z * landscape["kl_se"], np.inf),
        _z=np.where(estimated, z, 0.0), _estimated=estimated)
    optimum = bar.groupby(keys, sort=False).agg(
        optimum_kl=("kl", "min"), _optimum_bar=("_bar", "min"), _z=("_z", "first"),
        _estimated=("_estimated", "first")).reset_index()
    runs = runs.merge(optimum, on=keys, how="left", validate="m:1")
    if runs["optimum_kl"].isna().any():
        bad = runs.loc[runs["optimum_kl"].isna(), UNIT + ["task"]].drop_duplicates()
        raise ValueError(f"tuning runs without a landscape: {bad.to_dict('records')}")
    searched = landscape[keys + ["prompt", "kl_se"]].rename(
        columns={"prompt": "search_prompt", "kl_se": "_search_se"})
    runs = runs.merge(searched, on=keys + ["search_prompt"], how="left", validate="m:1")
    if runs["_search_se"].isna().any():
        bad = runs.loc[runs["_search_se"].isna(), UNIT + ["task", "search_prompt"]]
        raise ValueError(f"searched prompts missing from their landscape: "
                         f"{bad.drop_duplicates().to_dict('records')}")
    margin = resolution * (runs["kl"] + runs["entropy"]).abs()
    upper = runs["kl"] + runs["_z"] * runs["kl_se"]  # the tuned KL plus z standard errors
    runs = runs.assign(
        _below_optimum=(runs["kl"] < runs["optimum_kl"] - margin)
        & (~runs["_estimated"] | (upper < runs["_optimum_bar"])),
        _below_search=(runs["kl"] < runs["search_kl"] - margin)
        & (~runs["_estimated"] | (upper < runs["search_kl"] - runs["_z"] * runs["_search_se"])),
        decided_by=np.where(runs["_estimated"], landscape_lib.SE_BOUND,
                            landscape_lib.FLOAT32_RESOLUTION))
    # The hard optimum as a tuner of its own: the same KL for every seed.
    reference = runs[runs["tuner"] == "hard_search"].assign(
        tuner=HARD_OPTIMUM, kl=lambda f: f["optimum_kl"], overfit=False, overfit_path=False,
        worse_than_none=False,
        trainable_parameters=0, sequence_evaluations=0, _below_optimum=False)
    # The hard optimum's own standard error: that of the landscape's best estimate.
    best = landscape.loc[landscape.groupby(keys, sort=False)["kl"].idxmin(), keys + ["kl_se"]]
    reference = reference.drop(columns="kl_se").merge(best, on=keys, how="left",
                                                      validate="m:1")
    margin = resolution * (reference["kl"] + reference["entropy"]).abs()
    upper = reference["kl"] + reference["_z"] * reference["kl_se"]
    reference["_below_search"] = (reference["kl"] < reference["search_kl"] - margin) & (
        ~reference["_estimated"]
        | (upper < reference["search_kl"] - reference["_z"] * reference["_search_se"]))
    reference["kl_minus_search"] = reference["kl"] - reference["search_kl"]
    both = pd.concat([runs, reference], ignore_index=True)
    grouped = both.groupby(TUNING_KEY, sort=True)
    out = grouped.agg(
        seeds=("seed", "size"), kl_median=("kl", "median"),
        kl_q25=("kl", lambda v: v.quantile(0.25)), kl_q75=("kl", lambda v: v.quantile(0.75)),
        optimum_kl=("optimum_kl", "first"), below_optimum=("_below_optimum", "sum"),
        decided_by=("decided_by", "first"),
        below_search=("_below_search", "sum"),
        kl_minus_search_median=("kl_minus_search", "median"),
        proportion_overfit=("overfit", "mean"),
        proportion_overfit_path=("overfit_path", "mean"),
        proportion_worse_than_none=("worse_than_none", "mean"),
        chosen_learning_rate_median=("chosen_learning_rate", "median"),
        chosen_steps_median=("chosen_steps", "median"),
        trainable_parameters=("trainable_parameters", "max"),
        sequence_evaluations=("sequence_evaluations", "mean")).reset_index()
    for name in ("below_optimum", "below_search"):
        out[name] = out[name].astype(np.int64)
        out[f"proportion_{name}"] = out[name] / out["seeds"]
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = wilson_interval(out[name], out["seeds"])
    for name in ("overfit", "overfit_path", "worse_than_none"):
        out[f"proportion_{name}"] = out[f"proportion_{name}"].astype(float)
    own = optima.loc[optima["at_tuning_length"],
                     UNIT + ["experiment", "task", "tuner", "kl"]].rename(
        columns={"kl": "tuner_optimum_kl"})
    out = out.merge(own, on=UNIT + ["experiment", "task", "tuner"], how="left",
                    validate="m:1")
    hard = out["tuner"].isin([HARD_OPTIMUM, HARD_SEARCH])
    out.loc[hard, "tuner_optimum_kl"] = out.loc[hard, "optimum_kl"]
    if out["tuner_optimum_kl"].isna().any():
        bad = out.loc[out["tuner_optimum_kl"].isna(), UNIT + ["task", "tuner"]]
        raise ValueError(f"tuned rows without their tuner's optimum (tuner_optima): "
                         f"{bad.drop_duplicates().to_dict('records')}")
    return out


def transfer_lines(frame: pd.DataFrame) -> list[str]:
    """Whether the networks' optima transfer to the Bayes predictor and back: over the
    (network, task) pairs of replicate 0 (`transfer` rows across predictors, optimal class),
    the mean and largest regret each way, and in how many pairs it is zero (not told from 0
    by the target's rule, `regret_shown`)."""
    rows = frame[(frame["comparison"] == "predictors")
                 & (frame["source_prompts"] == "optimal_class")
                 & (frame["source_replicate"] == 0) & (frame["target_replicate"] == 0)]
    source_bayes = rows["source_predictor"] == "bayes"
    target_bayes = rows["target_predictor"] == "bayes"
    out = []
    for direction, pick in (("networks' optima under bayes", ~source_bayes & target_bayes),
                            ("bayes's optimum under the networks", source_bayes & ~target_bayes)):
        part = rows[pick]
        if not len(part):
            continue
        worst = part.loc[part["regret"].idxmax()]
        out.append(f"{direction}: regret {part['regret'].mean():.3g} nats on average, at "
                   f"most {worst['regret']:.3g} ({worst['source_predictor']} -> "
                   f"{worst['target_predictor']}, task {worst['target_task']}); zero in "
                   f"{int((~part['regret_shown'].astype(bool)).sum())} of {len(part)} "
                   "(network, task) pairs")
    return out
