"""Reliability of the search: which prompts it picks, how often they are optimal, at what cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

from promptscape import landscape as landscape_lib
from promptscape.neural.tuners import HARD_OPTIMUM, HARD_SEARCH
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
