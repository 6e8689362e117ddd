"""Stage `aggregate_search`: selections, reliability, choices and the reliability
prediction of one experiment; stage `aggregate_strategies`: its strategies table."""

from __future__ import annotations

import logging

import pandas as pd

from promptscape.neural import tuners
from promptscape.study import checks, tables
from promptscape.report import aggregate

log = logging.getLogger("promptscape")


def aggregate_search(*, searches: list[str], landscapes: list[str], predictions: list[str],
                     selections: str, reliability: str, choices: str,
                     reliability_prediction: str, in_meta_distribution: dict,
                     expected: dict,
                     within_epsilon: float = aggregate.DEFAULT_WITHIN_EPSILON) -> None:
    """Aggregate one experiment's searches against its landscapes, and its predicted
    proportions correct (`predictions`, one file per (predictor, replicate, task)) beside
    the measured ones (`aggregate_prediction`).

    `expected` is the experiment's grid (`layout.search_grid`): ``experiment``,
    ``predictors``, ``replicates``, ``tasks``, ``selections``, ``dataset_sizes``,
    ``num_seeds`` and ``seed_blocks``.
    Every file read is verified against its own path and the grid first
    (`checks.verify_search_file`, `checks.verify_landscape_file`), and the files
    together must cover every (predictor, replicate, task, selection, N, seed) exactly once:
    anything else is a ValueError naming the file. `within_epsilon`:
    `landscape.within_epsilon` (nats).
    """
    found = _in_grid_order(
        _read_verified(searches, "search", checks.verify_search_file, expected), expected)
    checks.verify_search_coverage(searches, expected)
    land = _read_verified(landscapes, "landscape", checks.verify_landscape_file, expected)
    checks.verify_landscape_coverage(landscapes, expected)
    unlabelled = sorted(set(found["task"]) - set(in_meta_distribution))
    if unlabelled:
        raise ValueError(f"tasks without an IMD/OOMD label: {unlabelled}")
    sel = aggregate.selections(found, land)
    rel = aggregate.reliability(sel, within_epsilon)
    cho = aggregate.choices(sel, land)
    for frame in (rel, cho):
        frame["in_meta_distribution"] = frame["task"].map(in_meta_distribution).astype(bool)
    tables.write(sel, "selections", selections)
    tables.write(rel, "reliability", reliability)
    tables.write(cho, "choices", choices)
    top = rel[rel["N"] == rel["N"].max()]
    for row in top.itertuples():
        log.info("%s %s %s N=%d: proportion correct %.2f [%.2f, %.2f], within %.0e nats "
                 "of the optimum %.2f [%.2f, %.2f], mean regret %.2e nats", row.predictor,
                 row.task, row.selection, row.N, row.proportion_correct, row.ci_low,
                 row.ci_high, row.epsilon, row.within_epsilon, row.within_epsilon_ci_low,
                 row.within_epsilon_ci_high, row.regret_mean)
    aggregate_prediction(predictions=predictions, reliability=reliability,
                         output=reliability_prediction, expected=expected)


def _in_grid_order(frame: pd.DataFrame, expected: dict) -> pd.DataFrame:
    """The search rows in the grid's order (predictors, tasks, selections and N as the
    config lists them, then seed and the file's row key), whatever files they came in: the
    float sums of the aggregates depend on the order they add in."""
    order = [(column, {v: i for i, v in enumerate(expected[plural])})
             for column, plural in (("predictor", "predictors"), ("task", "tasks"),
                                    ("selection", "selections"), ("N", "dataset_sizes"))]
    keys = {f"_{column}": frame[column].map(rank) for column, rank in order}
    by = ["_predictor", "replicate", "_task", "_selection", "_N", "seed", "prompt_length",
          "prompt"]
    return (frame.assign(**keys).sort_values(by, kind="stable").drop(columns=list(keys))
            .reset_index(drop=True))


def _read_verified(paths: list[str], artifact: str, verify, expected: dict):
    if not paths:
        raise ValueError(f"no {artifact} files to aggregate")
    frames = []
    for path in paths:
        frame = tables.read(path, artifact)
        verify(frame, path, expected)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def aggregate_strategies(*, runs: list[str], output: str, in_meta_distribution: dict,
                         expected: dict,
                         within_epsilon: float = aggregate.DEFAULT_WITHIN_EPSILON) -> None:
    """The strategies table of one experiment from its strategy_runs files, each verified
    against its path and the grid (`layout.strategy_grid`), which together must cover every
    (predictor, task, N, seed) once."""
    found = _read_verified(runs, "strategy_runs", checks.verify_strategy_file, expected)
    checks.verify_strategy_coverage(runs, expected)
    table = aggregate.strategy_table(found, within_epsilon)
    table["in_meta_distribution"] = table["task"].map(in_meta_distribution).astype(bool)
    tables.write(table, "strategies", output)
    top = table[(table["N"] == table["N"].max())
                & (table["budget"] == table.groupby("strategy")["budget"].transform("max"))]
    for row in top.itertuples():
        log.info("%s %s N=%d %s at %d evaluations: proportion correct %.2f [%.2f, %.2f], "
                 "found the empirical optimum %.2f, mean regret %.2e nats", row.predictor,
                 row.task, row.N, row.strategy, row.budget, row.proportion_correct,
                 row.ci_low, row.ci_high, row.proportion_found_best, row.regret_mean)


MEASURED = {"proportion_correct": "measured_proportion_correct"}
KEY = ["predictor", "replicate", "experiment", "task", "N"]


def aggregate_prediction(*, predictions: list[str], reliability: str, output: str,
                         expected: dict) -> None:
    """An experiment's predictions (one file per (predictor, replicate, task), each verified
    against its path and the experiment's grid, together covering the grid once) beside its
    measured reliability."""
    if not predictions:
        raise ValueError("no predicted_reliability files to aggregate")
    frames = []
    for path in predictions:
        frame = tables.read(path, "predicted_reliability")
        checks.verify_prediction_file(frame, path, expected)
        frames.append(frame)
    checks.verify_prediction_coverage(predictions, expected)
    predicted = pd.concat(frames, ignore_index=True)
    measured = tables.random_selection(tables.read(reliability, "reliability"))
    merged = predicted.merge(
        measured[KEY + ["in_meta_distribution", "seeds", "proportion_correct", "ci_low",
                        "ci_high"]].rename(columns=MEASURED),
        on=KEY, how="outer", indicator=True, validate="one_to_one")
    unmatched = merged[merged["_merge"] != "both"]
    if len(unmatched):
        row = unmatched.iloc[0]
        side = "prediction" if row["_merge"] == "left_only" else "reliability"
        raise ValueError(f"{len(unmatched)} (predictor, replicate, task, N) cells only in the "
                         f"{side} ({reliability} against the predictions), e.g. "
                         f"{row['predictor']} r{row['replicate']} {row['task']} N={row['N']}")
    merged = merged.drop(columns="_merge")
    merged["in_meta_distribution"] = merged["in_meta_distribution"].astype(bool)
    merged["inside_interval"] = ((merged["ci_low"] <= merged["predicted_proportion_correct"])
                                 & (merged["predicted_proportion_correct"] <= merged["ci_high"]))
    tables.write(merged, "reliability_prediction", output)
    for line in agreement_lines(merged):
        log.info("%s", line)


def agreement_lines(frame: pd.DataFrame) -> list[str]:
    """Per predictor: how many cells' prediction is inside the measured Wilson interval,
    over all cells and over the informative ones (measured between 0.05 and 0.95), and by
    method."""
    out = []
    for predictor, part in frame.groupby("predictor", sort=False):
        informative = part[(part["measured_proportion_correct"] > 0.05)
                           & (part["measured_proportion_correct"] < 0.95)]
        by_method = ", ".join(f"{m} {int(g['inside_interval'].sum())}/{len(g)}"
                              for m, g in part.groupby("method"))
        out.append(f"{predictor}: prediction inside the measured 95% interval in "
                   f"{int(part['inside_interval'].sum())}/{len(part)} cells ({by_method}); "
                   f"{int(informative['inside_interval'].sum())}/{len(informative)} of the "
                   f"cells measured between 0.05 and 0.95")
    return out


def aggregate_tuning(*, runs: list[str], landscapes: list[str], optima: list[str],
                     output: str, in_meta_distribution: dict) -> None:
    """The `tuning` table of one experiment from its tuning_runs files, the landscapes of
    its tuned networks (the hard optimum) and their tuner_optima (each tuner's own)."""
    if not runs:
        raise ValueError("no tuning_runs files to aggregate")
    found = pd.concat([tables.read(p, "tuning_runs") for p in runs], ignore_index=True)
    land = pd.concat([tables.read(p, "landscape") for p in landscapes], ignore_index=True)
    best = pd.concat([tables.read(p, "tuner_optima") for p in optima], ignore_index=True)
    out = aggregate.tuning(found, land, tuners.FLOAT32_RESOLUTION, best)
    out["in_meta_distribution"] = out["task"].map(in_meta_distribution).astype(bool)
    tables.write(out, "tuning", output)
    last = out[out["tuning_steps"] == out.groupby("tuner")["tuning_steps"].transform("max")]
    for row in last.itertuples():
        log.info("%s r%d %s N=%d %s (%d steps): median KL %.4g [%.4g, %.4g]; below the hard "
                 "optimum in %d/%d seeds, below the searched prompt in %d/%d; overfit %.2f",
                 row.predictor, row.replicate, row.task, row.N, row.tuner, row.tuning_steps,
                 row.kl_median, row.kl_q25, row.kl_q75, row.below_optimum, row.seeds,
                 row.below_search, row.seeds, row.proportion_overfit)
