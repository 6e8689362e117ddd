"""Search strategies through the Snakemake CLI (tests/data/strategies): exhaustive equals
the reliability table, random search follows its exact law, the runs are reproducible, and a
strategy's setting reruns only the strategy jobs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from promptscape import strategies as strategies_lib
from promptscape.report import summary
from workflow_helpers import REPO, copy_run, digests, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.slow

CONFIG = REPO / "tests" / "data" / "strategies" / "config.yaml"


@pytest.fixture(scope="module")
def run(strategies_run):
    """The complete run of CONFIG (tests/workflow/conftest.py)."""
    return strategies_run


def _results(workdir):
    return workdir / "results" / "bernmix"


def _runs(workdir):
    files = sorted((_results(workdir) / "strategies").rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_exhaustive_rows_equal_the_reliability_table(run):
    table = pd.read_parquet(_results(run) / "aggregate" / "strategies.parquet")
    rel = pd.read_parquet(_results(run) / "aggregate" / "reliability.parquet")
    rel = rel[rel["selection"] == "random"]
    exhaustive = table[table["strategy"] == "exhaustive"]
    assert (exhaustive["budget"] == 31).all()  # every prompt of length 0..4
    keys = ["predictor", "task", "N"]
    merged = exhaustive.merge(rel, on=keys, suffixes=("", "_rel"), validate="1:1")
    assert len(merged) == len(rel) == 2 * 2 * 1
    for column in ("seeds", "correct", "proportion_correct", "ci_low", "ci_high",
                   "regret_mean", "regret_median", "regret_q25", "regret_q75"):
        assert (merged[column] == merged[f"{column}_rel"]).all(), column
    assert (exhaustive["proportion_found_best"] == 1).all()
    assert (exhaustive["search_error"] == 0).all() and (exhaustive["both_errors"] == 0).all()
    # Every strategy at every budget on every (predictor, task, N); gradient for the
    # network only.
    per_cell = table.groupby(["predictor", "strategy"]).size()
    assert "gradient" not in table.loc[table["predictor"] == "bayes", "strategy"].tolist()
    assert per_cell[("lstm", "gradient")] == 2 * 1 * 3
    assert per_cell[("bayes", "random")] == 2 * 1 * 3
    for ext in ("svg", "png", "html"):
        assert (_results(run) / "figures" / f"strategies.{ext}").stat().st_size > 1000
    assert planned_jobs(run, CONFIG) == {}


def test_failure_cells_partition_the_seeds(run):
    table = pd.read_parquet(_results(run) / "aggregate" / "strategies.parquet")
    cells = table[["found_best_exhaustive_correct", "estimation_error", "search_error",
                   "both_errors"]].sum(axis=1)
    assert (cells == table["seeds"]).all()
    assert (table["found_best_exhaustive_correct"] + table["estimation_error"]
            == table["found_best"]).all()


def test_runs_are_consistent_with_the_exhaustive_ground_truth(run):
    runs = _runs(run)
    assert set(runs["replicate"]) == {0}
    assert (runs["evaluations"] <= runs["budget"]).all()
    # Budgets are nested: a larger budget never returns a worse prompt.
    for _, group in runs.groupby(["predictor", "task", "N", "seed", "strategy"]):
        losses = group.sort_values("budget")["empirical_loss"].to_numpy()
        assert (np.diff(losses) <= 1e-12 * np.abs(losses[:-1])).all()
    exhaustive = runs[runs["strategy"] == "exhaustive"]
    assert exhaustive["found_best"].all()
    assert (exhaustive["correct"] == exhaustive["exhaustive_correct"]).all()
    # found_best means attaining the least L_N, which exhaustive search's choice holds.
    least = exhaustive.set_index(["predictor", "task", "N", "seed"])["empirical_loss"]
    keyed = runs.set_index(["predictor", "task", "N", "seed"])
    gap = keyed["empirical_loss"] - least.reindex(keyed.index)
    assert (gap[keyed["found_best"]].abs() <= 1e-12 * least.abs().max()).all()
    assert (gap[~keyed["found_best"]] > 0).all()


def test_steps_are_the_runs_trails_and_edit_effects_judge_them(run, tmp_path):
    """strategy_steps: each proposing strategy's run, whose best prompt within every budget
    (steps below it) is the one strategy_runs holds; edit_effects and hill_climb_optima
    from them (issue 28)."""
    runs = _runs(run).set_index(["predictor", "task", "N", "seed", "strategy", "budget"])
    steps = pd.concat([pd.read_parquet(f) for f in
                       sorted((_results(run) / "strategy_steps").rglob("*.parquet"))])
    assert set(steps["strategy"]) == {"beam", "hill_climb", "annealing", "evolutionary",
                                      "gradient"}
    assert (steps["budget"] == 30).all()
    for (predictor, task, N, seed, strategy), group in steps.groupby(
            ["predictor", "task", "N", "seed", "strategy"]):
        for budget in (3, 10, 30):
            within = group[group["step"] < budget]
            row = runs.loc[(predictor, task, N, seed, strategy, budget)]
            assert within["loss"].min() == pytest.approx(row["empirical_loss"], rel=1e-12)
            if strategy != "gradient":  # its gradient computations have no step row
                assert len(within) == row["evaluations"]
    edited = steps[steps["operation"].notna()]
    assert len(edited) and edited["parent_prompt"].notna().all()
    effects = pd.read_parquet(_results(run) / "aggregate" / "edit_effects.parquet")
    assert set(effects["predictor"]) == {"bayes", "lstm"} and (effects["visits"] > 0).all()
    assert np.allclose(effects["raw_error"],
                       effects["noise_error"] + effects["selection_error"])
    # coin_0.5 ties its symbols: no kind that needs the most or least probable one.
    assert set(effects.loc[effects["task"] == "coin_0.5", "edit_kind"]) <= {
        "lengthens", "shortens", "reorders"}
    optima = pd.read_parquet(_results(run) / "aggregate" / "hill_climb_optima.parquet")
    assert (optima["runs"] == 8).all() and len(optima) == 2 * 2 * 1
    assert (optima["missed_empirical_local_optimum"] <= optima["missed"]).all()
    # The summary's lines on them (docs/results.md).
    out = tmp_path / "summary.md"
    assert summary.main(["--configfile", str(CONFIG), "--results-dir", str(run / "results"),
                         "-o", str(out)]) == 0
    text = out.read_text()
    assert "Edit effects, observed against the truth" in text
    assert "Hill climbing, lstm (budget 30): missed the empirical optimum in" in text


def test_random_search_found_best_agrees_with_the_hypergeometric_law(run):
    """Pooled over every (predictor, task, N, seed) at each budget, the number of random
    runs that found the empirical optimum is a Poisson-binomial with the exact per-seed
    probabilities 1 - C(P - m, B) / C(P, B): within 4 standard deviations."""
    runs = _runs(run)
    rnd = runs[runs["strategy"] == "random"]
    for budget, group in rnd.groupby("budget"):
        p = np.array([strategies_lib.expected_found_best(P, m, used) for P, m, used in
                      zip(group["num_prompts"], group["optimum_class_size"],
                          group["evaluations"])])
        found = int(group["found_best"].sum())
        sd = math.sqrt(float((p * (1 - p)).sum()))
        assert abs(found - p.sum()) <= 4 * sd + 1e-9, (budget, found, p.sum(), sd)


def test_a_strategy_setting_reruns_only_the_strategy_jobs(run, tmp_path):
    run = copy_run(run, tmp_path)
    before = digests(run)
    config = yaml.safe_load(CONFIG.read_text())
    exp = config["experiments"]["bernmix"]
    exp["strategies"] = {name: None for name in exp["strategies"]}
    exp["strategies"]["beam"] = {"width": 2}
    changed = write_config(tmp_path / "c.yaml", config)
    jobs = planned_jobs(run, changed)
    assert jobs == {"search_strategies": 2 * 2 * 1 * 2, "aggregate_strategies": 1,
                    "edit_effects": 1, "plot_figures": 1, "all": 1}
    # A rerun of the same config rebuilds bit-identical strategy runs (and the tables made
    # from them; not the figures, which the digests do not compare).
    snakemake(run, CONFIG, "--forcerun", "search_strategies", "--omit-from", "plot_figures")
    assert digests(run) == before


def test_surrogate_ranks_by_the_read_back_prior_at_the_cost_of_its_queries(run):
    """On the Bayes predictor the read-back prior is the true one, so the surrogate is
    exhaustive search; on the LSTM it is scored like every strategy. Its one budget and its
    evaluations are the probe's queries: the 45 count classes of length <= 8."""
    runs = _runs(run)
    keys = ["predictor", "task", "N", "seed"]
    surrogate = runs[runs["strategy"] == "surrogate"].set_index(keys)
    exhaustive = runs[runs["strategy"] == "exhaustive"].set_index(keys)
    assert len(surrogate) == 2 * 2 * 1 * 8
    assert set(surrogate["budget"]) == set(surrogate["evaluations"]) == {45}
    bayes = surrogate.loc["bayes"]
    assert (bayes["prompt"] == exhaustive.loc["bayes", "prompt"].loc[bayes.index]).all()
    assert bayes["found_best"].all()
    fits = {p: pd.read_parquet(_results(run) / "prior" / p / "r0.parquet")
            for p in ("bayes", "lstm")}
    for predictor, fit in fits.items():
        chosen = fit[fit["selected"]]
        assert chosen["queries"].unique().tolist() == [45], predictor
    chosen = fits["bayes"][fits["bayes"]["selected"]]
    assert chosen["family"].iloc[0] == "mixture" and chosen["w1"].iloc[0] < 1e-6


def test_gradient_without_a_network_is_a_named_error(tmp_path):
    config = yaml.safe_load(CONFIG.read_text())
    config["experiments"]["bernmix"]["predictors"] = ["bayes"]
    proc = snakemake(tmp_path, write_config(tmp_path / "c.yaml", config), "-n", check=False)
    assert proc.returncode != 0
    assert ("experiments.bernmix.strategies names gradient, but every predictor"
            in proc.stdout + proc.stderr)
