"""Reliability of the search: which prompts it picks, how often they are optimal, at what cost."""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def selections(search: pd.DataFrame, landscape: pd.DataFrame) -> pd.DataFrame:
    """One row per (predictor, task, N, seed): the chosen prompt, its KL, regret and rank."""
    chosen = search[search["chosen"]]
    land = landscape[["predictor", "task", "prompt", "kl", "rank", "optimal"]]
    best = landscape.loc[landscape["rank"] == 0].groupby(["predictor", "task"])["kl"].min()
    out = chosen.merge(land, on=["predictor", "task", "prompt"], how="left", validate="m:1")
    if out["kl"].isna().any():
        missing = out.loc[out["kl"].isna(), ["predictor", "task", "prompt"]].drop_duplicates()
        raise ValueError(f"chosen prompts missing from the landscape: {missing.to_dict('records')}")
    out["regret"] = out["kl"] - best.reindex(pd.MultiIndex.from_frame(out[["predictor", "task"]])).to_numpy()
    out = out.rename(columns={"optimal": "correct"})
    return out[["predictor", "experiment", "task", "N", "seed", "prompt", "prompt_length",
                "empirical_loss", "kl", "regret", "rank", "correct"]]


def reliability(sel: pd.DataFrame) -> pd.DataFrame:
    """Per (predictor, task, N): proportion correct with a Wilson 95% interval, regret and
    rank of s_hat."""
    g = sel.groupby(["predictor", "experiment", "task", "N"], sort=True)
    out = g.agg(
        seeds=("seed", "size"),
        correct=("correct", "sum"),
        regret_mean=("regret", "mean"),
        regret_median=("regret", "median"),
        regret_q25=("regret", lambda r: float(np.quantile(r, 0.25))),
        regret_q75=("regret", lambda r: float(np.quantile(r, 0.75))),
        rank_mean=("rank", "mean"),
        rank_median=("rank", "median"),
    ).reset_index()
    out["proportion_correct"] = out["correct"] / out["seeds"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["correct"], out["seeds"])
    return out


def choices(sel: pd.DataFrame, landscape: pd.DataFrame) -> pd.DataFrame:
    """Per (predictor, task, N, prompt): how often the search picked it."""
    counts = (sel.groupby(["predictor", "experiment", "task", "N", "prompt"], sort=True)
              .size().rename("count").reset_index())
    totals = sel.groupby(["predictor", "task", "N"]).size().rename("total").reset_index()
    counts = counts.merge(totals, on=["predictor", "task", "N"])
    counts["frequency"] = counts["count"] / counts["total"]
    land = landscape[["predictor", "task", "prompt", "prompt_length", "kl", "rank", "optimal"]]
    out = counts.merge(land, on=["predictor", "task", "prompt"], how="left", validate="m:1")
    return out.drop(columns="total")
