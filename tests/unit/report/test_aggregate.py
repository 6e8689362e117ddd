"""Reliability of the search: Wilson intervals, selections, regret, correctness, choices."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promptscape.study import checks, tables
from promptscape.report import aggregate
from promptscape.prompts import all_prompts
from promptscape.pipeline.stages.aggregate_stage import aggregate_search
from promptscape.pipeline.stages.datasets_stage import simulate_evaluation, simulate_tasks
from promptscape.pipeline.stages.landscape_stage import compute_landscape
from promptscape.pipeline.stages.prediction_stage import predict_reliability
from promptscape.pipeline.stages.search_stage import search_prompts

Z95 = stats.norm.ppf(0.975)


# ------------------------------------------------------------------ Wilson interval
def reference_wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval as the set of p with (p_hat - p)^2 <= z^2 p (1 - p) / n: the two
    roots of (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0."""
    p_hat = k / n
    a = 1 + z * z / n
    b = 2 * p_hat + z * z / n
    c = p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return (b - root) / (2 * a), (b + root) / (2 * a)


WILSON_TABLE = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 10), (5, 10), (3, 7), (0, 100),
                (1, 100), (50, 100), (99, 100), (100, 100), (17, 1000), (999, 1000)]


def test_wilson_z_is_the_two_sided_95_percent_normal_quantile():
    assert math.isclose(aggregate.WILSON_Z, Z95, rel_tol=1e-12)


@pytest.mark.parametrize("k, n", WILSON_TABLE, ids=[f"{k}of{n}" for k, n in WILSON_TABLE])
def test_wilson_interval_matches_the_closed_form_and_contains_the_proportion(k, n):
    low, high = aggregate.wilson_interval(k, n)
    ref_low, ref_high = reference_wilson(k, n)
    assert math.isclose(float(low), ref_low, rel_tol=1e-10, abs_tol=1e-14)
    assert math.isclose(float(high), ref_high, rel_tol=1e-10, abs_tol=1e-14)
    assert 0.0 <= low <= k / n <= high <= 1.0
    if k == 0:
        assert low == 0.0 and high > 0.0
    if k == n:
        assert high == 1.0 and low < 1.0


def test_wilson_interval_known_values_and_vectorisation():
    # Published score intervals (Newcombe 1998, Stat. Med. 17:857, table II, method 3) and
    # the module's doctest value for 0/10, to 4 places.
    k = np.array([81, 15, 0, 1, 0])
    n = np.array([263, 148, 20, 29, 10])
    low, high = aggregate.wilson_interval(k, n)
    np.testing.assert_allclose(low, [0.2553, 0.0624, 0.0, 0.0061, 0.0], atol=5e-5)
    np.testing.assert_allclose(high, [0.3662, 0.1605, 0.1611, 0.1718, 0.2775], atol=5e-5)
    assert low.shape == (5,)


def test_newcombe_difference_matches_the_published_intervals():
    # Newcombe 1998 (Stat. Med. 17:873), table II, method 10, to 4 places.
    cases = [((56, 70, 48, 80), (0.0524, 0.3339)), ((9, 10, 3, 10), (0.1705, 0.8090)),
             ((6, 7, 2, 7), (0.0582, 0.8062)), ((5, 56, 0, 29), (-0.0381, 0.1926)),
             ((0, 10, 0, 20), (-0.1611, 0.2775)), ((10, 10, 0, 20), (0.6791, 1.0))]
    for (k1, n1, k2, n2), expected in cases:
        np.testing.assert_allclose(aggregate.newcombe_difference(k1, n1, k2, n2), expected,
                                   atol=5e-5)
    low, high = aggregate.newcombe_difference([56, 9], [70, 10], [48, 3], [80, 10])
    assert low.shape == (2,) and (low < high).all()


def test_wilson_interval_narrows_with_more_trials():
    widths = [np.subtract(*aggregate.wilson_interval(n // 2, n)[::-1]) for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2] > 0


# ------------------------------------------------------------------ synthetic study
PROMPTS = all_prompts(2, 2)  # '', '0', '1', '00', '01', '10', '11'
KL = {
    # task a: a unique optimum '11'; task b: '0' and '00' tied at the optimum.
    "a": dict(zip(PROMPTS, [0.5, 0.4, 0.3, 0.35, 0.2, 0.2, 0.1])),
    "b": dict(zip(PROMPTS, [0.3, 0.1, 0.5, 0.1, 0.2, 0.2, 0.4])),
}
CHOSEN = {  # (task, N): the prompt each seed 0..3 picked
    ("a", 5): ["", "11", "1", "11"],
    ("a", 50): ["11", "11", "11", "11"],
    ("b", 5): ["0", "00", "1", "10"],
    ("b", 50): ["0", "0", "0", "00"],
}
ENTROPY = 4.0


def _dense_rank(values: dict) -> dict:
    levels = sorted(set(values.values()))
    return {p: levels.index(v) for p, v in values.items()}


def synthetic_landscape() -> pd.DataFrame:
    rows = []
    for task, kl in KL.items():
        rank = _dense_rank(kl)
        for p in PROMPTS:
            rows.append({"predictor": "bayes", "replicate": 0, "experiment": "exp", "task": task,
                         "prompt": p,
                         "prompt_length": len(p), "prompt_counts": [p.count("0"), p.count("1")],
                         "method": "exact_counts", "loss": kl[p] + ENTROPY, "loss_se": 0.0,
                         "entropy": ENTROPY, "kl": kl[p], "kl_se": 0.0,
                         "first_symbol_kl": kl[p] / 2,
                         "first_symbol_prediction": [0.5, 0.5], "rank": rank[p],
                         "optimal": rank[p] == 0, "resolved": True, "mc_kl": kl[p],
                         "kl_resolution": 1e-13, "below_resolution": kl[p] <= 1e-13,
                         "mc_kl_se": 0.01, "decided_by": "kl_resolution",
                         "kl_residuals": []})
    return pd.DataFrame(rows)


def synthetic_search() -> pd.DataFrame:
    rows = []
    for (task, N), picks in CHOSEN.items():
        for seed, pick in enumerate(picks):
            for i, p in enumerate(PROMPTS):
                rows.append({"predictor": "bayes", "replicate": 0, "experiment": "exp",
                             "task": task, "selection": "random", "N": N,
                             "seed": seed, "prompt": p, "prompt_length": len(p),
                             "class_size": 1, "empirical_rank": i,
                             "empirical_loss": 1.0 if p == pick else 2.0 + i,
                             "chosen": p == pick})
    return pd.DataFrame(rows)


@pytest.fixture
def synthetic():
    land = synthetic_landscape()
    sel = aggregate.selections(synthetic_search(), land)
    return land, sel


def test_selections_one_row_per_seed_with_regret_rank_and_correctness(synthetic):
    _, sel = synthetic
    assert len(sel) == sum(len(v) for v in CHOSEN.values())
    assert not sel.duplicated(["predictor", "task", "N", "seed"]).any()
    for row in sel.itertuples():
        pick = CHOSEN[(row.task, row.N)][row.seed]
        kl = KL[row.task]
        assert row.prompt == pick and row.prompt_length == len(pick)
        assert row.empirical_loss == 1.0
        assert row.kl == kl[pick]
        assert math.isclose(row.regret, kl[pick] - min(kl.values()), rel_tol=0, abs_tol=1e-15)
        assert row.regret >= 0
        assert row.rank == _dense_rank(kl)[pick]
        assert row.correct == (kl[pick] == min(kl.values()))
        assert row.correct == (row.rank == 0)
    # Tied optima are all correct, at zero regret.
    tied = sel[(sel["task"] == "b") & sel["prompt"].isin(["0", "00"])]
    assert len(tied) == 6 and tied["correct"].all() and (tied["regret"] == 0).all()


def test_reliability_proportion_counts_interval_and_regret_summary(synthetic):
    _, sel = synthetic
    rel = aggregate.reliability(sel)
    assert len(rel) == len(CHOSEN)
    for row in rel.itertuples():
        picks = CHOSEN[(row.task, row.N)]
        kl = KL[row.task]
        best = min(kl.values())
        correct = sum(kl[p] == best for p in picks)
        regrets = np.array([kl[p] - best for p in picks])
        ranks = np.array([_dense_rank(kl)[p] for p in picks])
        assert row.seeds == len(picks) and row.correct == correct
        assert row.proportion_correct == correct / len(picks)
        ref_low, ref_high = reference_wilson(correct, len(picks))
        assert math.isclose(row.ci_low, ref_low, rel_tol=1e-10, abs_tol=1e-14)
        assert math.isclose(row.ci_high, ref_high, rel_tol=1e-10, abs_tol=1e-14)
        assert row.ci_low <= row.proportion_correct <= row.ci_high
        np.testing.assert_allclose(
            [row.regret_mean, row.regret_median, row.regret_q25, row.regret_q75],
            [regrets.mean(), np.median(regrets), np.quantile(regrets, 0.25),
             np.quantile(regrets, 0.75)], rtol=0, atol=1e-15)
        assert row.rank_mean == ranks.mean() and row.rank_median == np.median(ranks)
    by_key = rel.set_index(["task", "N"])["proportion_correct"]
    assert by_key[("a", 5)] == 0.5 and by_key[("a", 50)] == 1.0
    assert by_key[("b", 5)] == 0.5 and by_key[("b", 50)] == 1.0


def test_choices_counts_and_frequencies_sum_to_one(synthetic):
    land, sel = synthetic
    cho = aggregate.choices(sel, land)
    for (task, N), picks in CHOSEN.items():
        part = cho[(cho["task"] == task) & (cho["N"] == N)]
        expected = pd.Series(picks).value_counts()
        assert dict(zip(part["prompt"], part["count"])) == expected.to_dict()
        np.testing.assert_allclose(part["frequency"], part["count"] / len(picks), rtol=0)
        assert math.isclose(part["frequency"].sum(), 1.0, rel_tol=1e-12)
        for row in part.itertuples():
            assert row.kl == KL[task][row.prompt]
            assert row.optimal == (row.rank == 0) == (KL[task][row.prompt] == min(KL[task].values()))
    assert cho.groupby(["predictor", "task", "N"])["frequency"].sum().between(
        1 - 1e-12, 1 + 1e-12).all()


def test_selections_refuses_a_chosen_prompt_missing_from_the_landscape():
    land = synthetic_landscape()
    land = land[~((land["task"] == "a") & (land["prompt"] == "11"))]
    with pytest.raises(ValueError, match="missing from the landscape"):
        aggregate.selections(synthetic_search(), land)


# ------------------------------------------------------------------ the stages end to end
PRETRAINING = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
TASKS = {"imd": {"kind": "coin", "theta": 0.7}, "oomd": {"kind": "coin", "theta": 0.5}}
IMD = {"imd": True, "oomd": False}
T, L_MAX, SEEDS, SIZES = 6, 3, 12, [1, 30]
STAGE_BLOCKS = [[0, 5], [6, 11]]
PREDICTION_SETTINGS = dict(draws=2000, exact_max_outcomes=100_000, reference_N=100)
KEY = ["predictor", "replicate", "experiment", "task", "N"]


def test_aggregate_stage_writes_valid_artifacts_with_nonnegative_regret(tmp_path):
    landscapes, predictions, searches = [], [], []
    for name, task in TASKS.items():
        evaluation = tmp_path / f"eval-{name}.parquet"
        simulate_evaluation(output=str(evaluation), experiment="exp", task_name=name, task=task,
                            task_length=T, size=2000)
        land = land_path(tmp_path, name)
        compute_landscape(evaluation=str(evaluation), output=str(land), predictor="bayes",
                          family="bayes", pretraining=PRETRAINING, experiment="exp",
                          task_name=name, task=task, task_length=T, max_prompt_length=L_MAX,
                          enumeration_budget=2 ** 27)
        landscapes.append(str(land))
        prediction = prediction_path(tmp_path, name)
        predict_reliability(landscape_path=str(land), evaluation=str(evaluation),
                            output=str(prediction), predictor="bayes", family="bayes",
                            pretraining=PRETRAINING, experiment="exp", task_name=name,
                            task=task, task_length=T, max_prompt_length=L_MAX,
                            dataset_sizes=SIZES, enumeration_budget=2 ** 27,
                            **PREDICTION_SETTINGS)
        predictions.append(str(prediction))
    # One dataset file and one search file per seed block, each of every task and N.
    for first, last in STAGE_BLOCKS:
        data = tmp_path / "exp" / "datasets" / f"seeds{first}-{last}.parquet"
        simulate_tasks(output=str(data), experiment="exp", tasks=TASKS, task_length=T,
                       dataset_sizes=SIZES, first=first, last=last)
        out = search_path(tmp_path, first, last)
        search_prompts(datasets=str(data), output=str(out),
                       predictors=[{"predictor": "bayes", "replicate": 0, "family": "bayes"}],
                       pretraining=PRETRAINING, experiment="exp", tasks=list(TASKS),
                       task_length=T, dataset_sizes=SIZES, first=first, last=last,
                       max_prompt_length=L_MAX, enumeration_budget=2 ** 27)
        searches.append(str(out))
    paths = {k: tmp_path / f"{k}.parquet"
             for k in ("selections", "reliability", "choices", "reliability_prediction")}
    expected = {"experiment": "exp", "predictors": ["bayes"], "replicates": {"bayes": 1},
                "tasks": list(TASKS), "selections": ["random"],
                "dataset_sizes": SIZES, "num_seeds": SEEDS, "seed_blocks": STAGE_BLOCKS}
    aggregate_search(searches=searches, landscapes=landscapes, predictions=predictions,
                     in_meta_distribution=IMD, expected=expected,
                     **{k: str(v) for k, v in paths.items()})

    land = tables.read(landscapes, "landscape")
    sel = tables.read(paths["selections"], "selections")
    rel = tables.read(paths["reliability"], "reliability")
    cho = tables.read(paths["choices"], "choices")
    assert len(sel) == len(TASKS) * len(SIZES) * SEEDS
    assert sel.groupby(["task", "N"])["seed"].apply(
        lambda seeds: sorted(seeds) == list(range(SEEDS))).all()  # both blocks, each seed once
    assert (sel["regret"] >= 0).all()
    optimal = set(map(tuple, land.loc[land["optimal"], ["task", "prompt"]].to_numpy()))
    assert (sel["correct"] == [(t, p) in optimal for t, p in zip(sel["task"], sel["prompt"])]).all()
    assert ((sel["regret"] == 0) == sel["correct"]).all()
    # The headline of the study at this scale: the IMD optimum '111' is the unique optimum.
    assert sorted(land.loc[land["optimal"] & (land["task"] == "imd"), "prompt"]) == ["111"]
    assert rel["in_meta_distribution"].tolist() == [IMD[t] for t in rel["task"]]
    assert (rel["seeds"] == SEEDS).all()
    np.testing.assert_allclose(rel["proportion_correct"], rel["correct"] / rel["seeds"], rtol=0)
    assert cho.groupby(["task", "N"])["count"].sum().eq(SEEDS).all()
    np.testing.assert_allclose(cho.groupby(["task", "N"])["frequency"].sum(), 1.0, rtol=1e-12)
    # Rows come back in each artifact's sort key order.
    assert sel.equals(sel.sort_values(["predictor", "task", "selection", "N", "seed"],
                                      kind="stable")
                      .reset_index(drop=True))
    # The reliability prediction: every (task, N) once, the prediction of its
    # predicted_reliability file beside the measured proportion of the reliability table.
    both = tables.read(paths["reliability_prediction"], "reliability_prediction")
    assert len(both) == len(TASKS) * len(SIZES)
    measured = both.merge(rel, on=KEY, validate="one_to_one", suffixes=("", "_rel"))
    assert len(measured) == len(both)
    for column in ("seeds", "ci_low", "ci_high", "in_meta_distribution"):
        assert measured[column].tolist() == measured[f"{column}_rel"].tolist()
    assert (measured["measured_proportion_correct"] == measured["proportion_correct"]).all()
    predicted = both.merge(tables.read(predictions, "predicted_reliability"), on=KEY,
                           validate="one_to_one", suffixes=("", "_file"))
    assert len(predicted) == len(both)
    assert (predicted["predicted_proportion_correct"]
            == predicted["predicted_proportion_correct_file"]).all()
    assert both["predicted_proportion_correct"].between(0, 1).all()
    p = both["predicted_proportion_correct"]
    assert (both["inside_interval"] == ((both["ci_low"] <= p) & (p <= both["ci_high"]))).all()


def test_aggregate_stage_refuses_a_task_without_an_imd_label(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    with pytest.raises(ValueError, match=r"without an IMD/OOMD label: \['b'\]"):
        run_stage(tmp_path, searches, landscapes, imd={"a": True})


# ------------------------------------------------------------------ verification of the inputs
SYN_SEEDS, SYN_BLOCK = 4, 2
GRID = {"experiment": "exp", "predictors": ["bayes"], "replicates": {"bayes": 1},
        "tasks": ["a", "b"], "selections": ["random"],
        "dataset_sizes": [5, 50], "num_seeds": SYN_SEEDS,
        "seed_blocks": [[a, a + SYN_BLOCK - 1] for a in range(0, SYN_SEEDS, SYN_BLOCK)]}
PREDICTED = {5: 0.6, 50: 0.95}  # the synthetic predicted proportion correct, by N


def search_path(root, first, last, experiment="exp", selection="random"):
    return root / experiment / "search" / selection / f"seeds{first}-{last}.parquet"


def land_path(root, task, experiment="exp", predictor="bayes", replicate=0):
    return root / experiment / "landscape" / predictor / f"r{replicate}" / f"{task}.parquet"


def prediction_path(root, task, experiment="exp", predictor="bayes", replicate=0):
    return root / experiment / "prediction" / predictor / f"r{replicate}" / f"{task}.parquet"


def synthetic_prediction(task) -> dict:
    """A predicted_reliability of bayes on `task` at every N of the grid."""
    sizes = GRID["dataset_sizes"]
    predicted = [PREDICTED[N] for N in sizes]
    return {"predictor": "bayes", "replicate": 0, "experiment": "exp", "task": task,
            "N": sizes, "outcomes": "count_values", "num_outcomes": 7, "num_classes": 5,
            "optimal_classes": 1, "predicted_proportion_correct": predicted,
            "method": "exact", "exact_proportion_correct": predicted,
            "normal_proportion_correct": predicted, "normal_se": 0.01,
            "simulated_proportion_correct": predicted, "simulated_se": 0.01, "gap": 0.1,
            "paired_sd": 0.5, "classes_within_2se": 0, "first_n_half": sizes[0],
            "first_n_ninety": sizes[-1]}


def write_synthetic(root, search=None, land=None):
    """The synthetic study as the workflow lays it out: one search file per seed block,
    holding every (predictor, replicate, task, N) of the grid; one landscape and one
    predicted_reliability per task. Returns (search paths, landscape paths) as strings
    (`run_stage` reads the predictions at their paths)."""
    search = synthetic_search() if search is None else search
    land = synthetic_landscape() if land is None else land
    searches, landscapes = [], []
    for task in GRID["tasks"]:
        path = land_path(root, task)
        tables.write(land[land["task"] == task], "landscape", path)
        landscapes.append(str(path))
        tables.write(synthetic_prediction(task), "predicted_reliability",
                     prediction_path(root, task))
    for first, last in GRID["seed_blocks"]:
        path = search_path(root, first, last)
        tables.write(search[search["seed"].between(first, last)], "search", path)
        searches.append(str(path))
    return searches, landscapes


def run_stage(root, searches, landscapes, imd=None, expected=GRID):
    aggregate_search(searches=searches, landscapes=landscapes,
                     predictions=[str(prediction_path(root, t)) for t in GRID["tasks"]],
                     selections=str(root / "s.parquet"), reliability=str(root / "r.parquet"),
                     choices=str(root / "c.parquet"),
                     reliability_prediction=str(root / "p.parquet"),
                     in_meta_distribution=imd or {"a": True, "b": False}, expected=expected)


def rewrite(path, change):
    """Rewrite one search or landscape file with `change` applied to its rows."""
    artifact = tables.artifact_of(path)
    frame = tables.read(path, artifact, columns=tables.ARTIFACTS[artifact].schema.names)
    tables.write(change(frame), artifact, path)


def _rows(frame, **where):
    """The rows of `frame` whose columns hold the values `where` gives (every row if none)."""
    mask = pd.Series(True, index=frame.index)
    for column, value in where.items():
        mask &= frame[column] == value
    return mask


def _set(column, value, **where):
    """A change setting `column` to `value` in the rows `where` selects (every row if none)."""
    def change(frame):
        frame = frame.copy()
        frame.loc[_rows(frame, **where), column] = value
        return frame
    return change


def _cells(message: str, tasks=("a", "b"), sizes=(5, 50), replicate=0) -> str:
    """`message` (a format string of the cell's task and N) for every (task, N), joined as
    the verification joins its problems."""
    return re.escape("; ".join(message.format(replicate=replicate, task=t, N=N)
                               for t in tasks for N in sizes))


def test_a_complete_consistent_set_of_files_passes(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    assert len(searches) == len(GRID["seed_blocks"])
    run_stage(tmp_path, searches, landscapes)
    assert len(tables.read(tmp_path / "s.parquet", "selections")) == 2 * 2 * SYN_SEEDS
    rel = tables.read(tmp_path / "r.parquet", "reliability")
    both = tables.read(tmp_path / "p.parquet", "reliability_prediction")
    assert len(both) == len(rel) == 2 * 2
    measured = both.merge(rel, on=KEY, validate="one_to_one", suffixes=("", "_rel"))
    assert (measured["measured_proportion_correct"] == measured["proportion_correct"]).all()
    assert (measured["ci_low"] == measured["ci_low_rel"]).all()
    assert both["predicted_proportion_correct"].tolist() == [PREDICTED[N] for N in both["N"]]
    p = both["predicted_proportion_correct"]
    assert (both["inside_interval"] == ((both["ci_low"] <= p) & (p <= both["ci_high"]))).all()


def test_files_of_two_selections_cover_the_same_seeds_once_each(tmp_path):
    searches, _ = write_synthetic(tmp_path)
    # The same seeds searched under selection pool: a (selection, seed) is covered once.
    search = synthetic_search().assign(selection="pool")
    expected = {**GRID, "selections": ["random", "pool"]}
    pooled = []
    for first, last in GRID["seed_blocks"]:
        path = search_path(tmp_path, first, last, selection="pool")
        part = search[search["seed"].between(first, last)]
        checks.verify_search_file(part, path, expected)
        tables.write(part, "search", path)
        pooled.append(str(path))
    checks.verify_search_coverage(searches + pooled, expected)
    with pytest.raises(ValueError, match=r"seeds 2-3 of selection pool$"):
        checks.verify_search_coverage(searches + pooled[:1], expected)


@pytest.mark.parametrize("column, value, where, message", [
    ("experiment", "other", {}, r"holds experiment=other rows, its path says experiment=exp"),
    ("selection", "pool", {}, r"holds selection=pool rows, its path says selection=random"),
    # One (task, N) of the file from another experiment or selection: the file mixes two.
    ("experiment", "other", dict(task="b", N=50),
     r"holds experiment=exp, experiment=other rows, its path says experiment=exp"),
    ("selection", "pool", dict(task="a", N=5),
     r"holds selection=pool, selection=random rows, its path says selection=random"),
], ids=["experiment", "selection", "experiment-of-one-cell", "selection-of-one-cell"])
def test_a_search_file_holding_other_rows_than_its_path_says_is_refused(tmp_path, column,
                                                                        value, where, message):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 2, 3))
    rewrite(bad, _set(column, value, **where))
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + message + "$"):
        run_stage(tmp_path, searches, landscapes)


@pytest.mark.parametrize("where, message", [
    # Seed 3 of one (predictor, replicate, task, N): only that cell is named.
    (dict(task="b", N=50, seed=3), r"predictor bayes replicate 0 task b N=50: seeds 3 missing"),
    # Seed 2 of every cell.
    (dict(seed=2), _cells("predictor bayes replicate {replicate} task {task} N={N}: "
                          "seeds 2 missing")),
], ids=["one-cell", "every-cell"])
def test_a_search_file_missing_a_seed_is_refused(tmp_path, where, message):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 2, 3))
    rewrite(bad, lambda f: f[~_rows(f, **where)])
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + message + "$"):
        run_stage(tmp_path, searches, landscapes)


@pytest.mark.parametrize("repeat, message", [
    # Every prompt of the seed twice, its chosen prompt with them.
    (dict(task="a", N=50, seed=2), r"predictor bayes replicate 0 task a N=50 seed 2 repeats a "
                                   r"prompt; predictor bayes replicate 0 task a N=50 seed 2 "
                                   r"has 2 chosen prompts, not exactly one"),
    # One prompt (not the chosen one) twice.
    (dict(task="a", N=50, seed=2, prompt="1"),
     r"predictor bayes replicate 0 task a N=50 seed 2 repeats a prompt"),
], ids=["seed", "prompt"])
def test_a_search_file_holding_a_seed_twice_is_refused(tmp_path, repeat, message):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 2, 3))
    rewrite(bad, lambda f: pd.concat([f, f[_rows(f, **repeat)]]))
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + message + "$"):
        run_stage(tmp_path, searches, landscapes)


def test_a_seed_covered_by_two_files_is_refused(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    # A second copy of seed 2 under a block path 2-2 that overlaps block 2-3.
    search = synthetic_search()
    extra = search_path(tmp_path, 2, 2)
    tables.write(search[search["seed"] == 2], "search", extra)
    expected = {**GRID, "seed_blocks": [[s, s] for s in range(SYN_SEEDS)]}
    checks.verify_search_file(tables.read(extra, "search"), extra, expected)
    with pytest.raises(ValueError, match=re.escape(str(extra)) + r": seed 2 appears twice: "
                       + re.escape(str(search_path(tmp_path, 2, 3))) + " covers it too$"):
        checks.verify_search_coverage(searches + [str(extra)], expected)


@pytest.mark.parametrize("gone, selections, message", [
    # The file of block 2-3 left out.
    ([1], ["random"], r"no search file of experiment exp holds seeds 2-3 of selection random"),
    # A selection of the grid without any file.
    ([], ["random", "pool"],
     r"no search file of experiment exp holds seeds 0-3 of selection pool"),
], ids=["block", "selection"])
def test_a_seed_no_file_covers_is_refused(tmp_path, gone, selections, message):
    searches, landscapes = write_synthetic(tmp_path)
    searches = [path for i, path in enumerate(searches) if i not in gone]
    with pytest.raises(ValueError, match=r"^search files do not cover the experiment's seeds "
                                         r"exactly once: " + message + "$"):
        run_stage(tmp_path, searches, landscapes, expected={**GRID, "selections": selections})


def test_a_search_file_at_another_block_path_is_refused(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    # Block 0-1's rows saved under the path of block 2-3.
    good = search_path(tmp_path, 0, 1)
    bad = search_path(tmp_path, 2, 3)
    tables.write(tables.read(good, "search"), "search", bad)
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ": " + _cells(
            "predictor bayes replicate {replicate} task {task} N={N}: seeds 2-3 missing; "
            "seeds 0-1 outside its block seeds 2-3") + "$"):
        run_stage(tmp_path, searches, landscapes)


def test_a_search_file_at_a_path_that_is_not_one_of_the_seed_blocks_is_refused(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    search = synthetic_search()
    odd = search_path(tmp_path, 1, 2)
    tables.write(search[search["seed"].between(1, 2)], "search", odd)
    with pytest.raises(ValueError, match=re.escape(str(odd)) + r": its path's seed block 1-2 "
                       r"is not one of the experiment's seed blocks \(0-1, 2-3\)$"):
        run_stage(tmp_path, searches + [str(odd)], landscapes)


@pytest.mark.parametrize("where, message", [
    (dict(experiment="other"), r"its path names experiment other, this aggregation is of exp"),
    (dict(selection="pool"), r"its path names selection=pool, not one of the experiment's "
                             r"selections \['random'\]"),
    (dict(first=4, last=5), r"its path's seed block 4-5 is not within seeds 0-3"),
], ids=["experiment", "selection", "block"])
def test_a_search_file_at_a_path_outside_the_experiment_grid_is_refused(tmp_path, where,
                                                                        message):
    searches, landscapes = write_synthetic(tmp_path)
    search = synthetic_search()
    # Block 0-1's rows, made to say what the stray path says: only the path is wrong.
    fields = {**dict(experiment="exp", selection="random", first=0, last=1), **where}
    part = search[search["seed"].between(0, 1)]
    part = part.assign(experiment=fields["experiment"], selection=fields["selection"],
                       seed=part["seed"] + fields["first"])
    stray = search_path(tmp_path, fields["first"], fields["last"],
                        experiment=fields["experiment"], selection=fields["selection"])
    tables.write(part, "search", stray)
    with pytest.raises(ValueError, match=re.escape(str(stray)) + ": " + message + "$"):
        run_stage(tmp_path, searches + [str(stray)], landscapes)


@pytest.mark.parametrize("column, value", [("predictor", "lstm"), ("replicate", 1),
                                           ("task", "c"), ("N", 7)])
def test_a_search_file_holding_rows_outside_the_experiment_grid_is_refused(tmp_path, column,
                                                                           value):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 0, 1))
    # A copy of the rows of (bayes, 0, a, 5) under a predictor, replicate, task or N the
    # experiment does not have; every cell of the grid is still whole.
    rewrite(bad, lambda f: pd.concat([f, f[_rows(f, task="a", N=5)].assign(**{column: value})]))
    cell = {**dict(predictor="bayes", replicate=0, task="a", N=5), column: value}
    message = ("rows of predictor {predictor} replicate {replicate} task {task} N={N}, outside "
               "the experiment's grid").format(**cell)
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + re.escape(message) + "$"):
        run_stage(tmp_path, searches, landscapes)


@pytest.mark.parametrize("drop, expected, message", [
    # One (task, N) of the grid.
    (dict(task="a", N=50), GRID, r"no rows of predictor bayes replicate 0 task a N=50"),
    # A task.
    (dict(task="b"), GRID, _cells("no rows of predictor bayes replicate 0 task {task} N={N}",
                                  tasks=["b"])),
    # Every row: the file holds nothing of its experiment and selection either.
    ({}, GRID, r"holds no rows, its path says experiment=exp; holds no rows, its path says "
               r"selection=random; " + _cells("no rows of predictor bayes replicate 0 task "
                                              "{task} N={N}")),
    # A replicate of the grid no file holds.
    (None, {**GRID, "replicates": {"bayes": 2}},
     _cells("no rows of predictor bayes replicate {replicate} task {task} N={N}", replicate=1)),
], ids=["cell", "task", "everything", "replicate"])
def test_a_search_file_without_rows_of_a_grid_cell_is_refused(tmp_path, drop, expected,
                                                              message):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 0, 1))
    if drop is not None:
        rewrite(bad, lambda f: f[~_rows(f, **drop)])
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + message + "$"):
        run_stage(tmp_path, searches, landscapes, expected=expected)


@pytest.mark.parametrize("where", [
    "search.parquet",
    # The layout before seed blocks held every predictor, task and N.
    "exp/search/bayes/r0/a/random/N5/seeds0-1.parquet",
    # A task_data path.
    "exp/datasets/seeds0-1.parquet",
], ids=["no-folders", "old-layout", "task-data"])
def test_a_search_file_at_a_path_that_is_no_search_path_is_refused(tmp_path, where):
    searches, landscapes = write_synthetic(tmp_path)
    moved = tmp_path / where
    moved.parent.mkdir(parents=True, exist_ok=True)
    Path(searches[0]).rename(moved)
    searches[0] = str(moved)
    with pytest.raises(ValueError, match=re.escape(
            f"{moved}: not a search file path (expected .../"
            "{experiment}/search/{selection}/seeds{first}-{last}.parquet)") + "$"):
        run_stage(tmp_path, searches, landscapes)


@pytest.mark.parametrize("chosen", [0, 2])
def test_a_seed_without_exactly_one_chosen_prompt_is_refused(tmp_path, chosen):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(search_path(tmp_path, 0, 1))

    def change(frame):
        frame = frame.copy()
        rows = frame.index[_rows(frame, task="b", N=5, seed=1)]
        frame.loc[rows, "chosen"] = [i < chosen for i in range(len(rows))]
        return frame

    rewrite(bad, change)
    with pytest.raises(ValueError, match=re.escape(bad) + ": " + re.escape(
            f"predictor bayes replicate 0 task b N=5 seed 1 has {chosen} chosen prompts, not "
            "exactly one") + "$"):
        run_stage(tmp_path, searches, landscapes)


@pytest.mark.parametrize("column, value, message", [
    ("task", "b", r"holds task=b rows, its path says task=a"),
    ("predictor", "lstm", r"holds predictor=lstm rows, its path says predictor=bayes"),
    ("experiment", "other", r"holds experiment=other rows, its path says experiment=exp"),
])
def test_a_landscape_holding_other_rows_than_its_path_says_is_refused(tmp_path, column, value,
                                                                      message):
    searches, landscapes = write_synthetic(tmp_path)
    bad = str(land_path(tmp_path, "a"))
    rewrite(bad, _set(column, value))
    with pytest.raises(ValueError, match=re.escape(bad) + ": .*" + message):
        run_stage(tmp_path, searches, landscapes)


def test_a_missing_landscape_is_refused(tmp_path):
    searches, landscapes = write_synthetic(tmp_path)
    with pytest.raises(ValueError, match=r"no landscape file of predictor bayes \(replicate 0\), "
                                         r"task b"):
        run_stage(tmp_path, searches, landscapes[:1])


def test_path_fields_parse_the_artifact_patterns():
    assert checks.path_fields("search", "/r/x/search/random/seeds4-7.parquet") == {
        "experiment": "x", "selection": "random", "first": 4, "last": 7}
    assert checks.path_fields("search", "x/search/high_variance/seeds0-0.parquet") == {
        "experiment": "x", "selection": "high_variance", "first": 0, "last": 0}
    assert checks.path_fields("task_data", "r/x/datasets/seeds4-7.parquet") == {
        "experiment": "x", "first": 4, "last": 7}
    assert checks.path_fields("landscape", "x/landscape/bayes/r0/t.parquet") == {
        "experiment": "x", "predictor": "bayes", "replicate": 0, "task": "t"}
    assert checks.path_fields("search", "x/search/random/seeds4.parquet") is None
    assert checks.path_fields("search", "x/search/seeds4-7.parquet") is None
    assert checks.path_fields("search", "x/search/random/N10/seeds4-7.parquet") is None
    # The layout before seed blocks held every predictor, task and N: no longer a search path.
    assert checks.path_fields("search",
                                 "x/search/bayes/r0/t/random/N10/seeds4-7.parquet") is None


def test_replicates_chart_shows_every_replicate_their_range_and_bayes():
    """The replicates figure: one panel per task, a line per (predictor, replicate), the
    range across a network's replicates as a band, and N labelled at its decades only."""
    from promptscape.report import figures

    rows = []
    for predictor, replicates in (("bayes", 1), ("lstm", 3)):
        for r in range(replicates):
            for task in ("a", "b"):
                for N in (1, 2, 5, 10, 100, 200):
                    share = 0.9 if predictor == "bayes" else 0.2 * (r + 1)
                    rows.append({"predictor": predictor, "replicate": r, "experiment": "e",
                                 "task": task, "N": N, "proportion_correct": share,
                                 "ci_low": share - 0.05, "ci_high": share + 0.05})
    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#000000", "lstm": "#d95f02"}}
    chart = figures.replicates_chart(pd.DataFrame(rows), tasks=["a", "b"],
                                     imd={"a": True, "b": False}, predictors=["bayes", "lstm"],
                                     style=style, title="t")
    spec = chart.to_dict()
    panels = [panel for row in spec["vconcat"] for panel in row["hconcat"]]
    assert [p["title"] for p in panels] == ["a (IMD)", "b (OOMD)"]
    datasets = list(spec["datasets"].values())
    units = {(d["predictor"], d["replicate"]) for data in datasets for d in data
             if "replicate" in d and "unit" in d}
    assert units == {("bayes", 0), ("lstm", 0), ("lstm", 1), ("lstm", 2)}
    band = [d for data in datasets for d in data if "low" in d and d["predictor"] == "lstm"]
    assert len(band) == 12  # 2 tasks x 6 N
    assert all(d["low"] == pytest.approx(0.2) and d["high"] == pytest.approx(0.6) for d in band)
    axis = panels[0]["layer"][0]["encoding"]["x"]["axis"]
    assert axis["values"] == [1, 2, 5, 10, 100, 200]
    assert "indexof([1, 10, 100]" in axis["labelExpr"]


def test_search_rows_are_aggregated_in_the_grid_order_whatever_files_they_came_in():
    """The aggregates' float sums add in the grid's order (predictors, tasks, selections,
    N as the config lists them, then seeds), not in the order of the files' rows (a
    block file sorts tasks by name): the reliability table of the batched layout is
    bit-identical to the one of a file per (predictor, task, N)."""
    from promptscape.pipeline.stages.aggregate_stage import _in_grid_order

    rows = pd.DataFrame({
        "predictor": ["bayes", "bayes", "bayes", "lstm"], "replicate": 0,
        "task": ["a_task", "z_task", "z_task", "z_task"], "selection": "random",
        "N": [5, 1, 5, 1], "seed": [0, 1, 0, 0], "prompt_length": 0, "prompt": ""})
    grid = {"predictors": ["lstm", "bayes"], "tasks": ["z_task", "a_task"],
            "selections": ["random"], "dataset_sizes": [5, 1]}
    ordered = _in_grid_order(rows, grid)
    assert list(zip(ordered["predictor"], ordered["task"], ordered["N"], ordered["seed"])) == [
        ("lstm", "z_task", 1, 0), ("bayes", "z_task", 5, 0), ("bayes", "z_task", 1, 1),
        ("bayes", "a_task", 5, 0)]
    assert list(ordered.columns) == list(rows.columns)


# ------------------------------------------------------------------ within epsilon
REGRETS = [0.0, 5e-7, 1e-6, 1.0000001e-6, 2e-6, 0.1, 0.0]  # by hand: 4 within 1e-6, 2 within 1e-7


def _cell(regrets, **extra):
    n = len(regrets)
    return pd.DataFrame({"predictor": "bayes", "replicate": 0, "experiment": "e",
                         "task": "t", "N": 10, "seed": range(n), "regret": regrets,
                         "correct": [r == 0 for r in regrets], "rank": [int(r > 0) for r in regrets],
                         **extra})


@pytest.mark.parametrize("epsilon, count", [(1e-6, 4), (1e-7, 2), (0.5, 7)])
def test_within_epsilon_against_a_hand_count_with_its_wilson_interval(epsilon, count):
    n = len(REGRETS)
    rel = aggregate.reliability(_cell(REGRETS, selection="random"), epsilon)
    row = rel.iloc[0]
    assert row["within_epsilon_seeds"] == count and row["epsilon"] == epsilon
    assert row["within_epsilon"] == count / n and row["correct"] == 2
    low, high = reference_wilson(count, n)
    assert math.isclose(row["within_epsilon_ci_low"], low, rel_tol=1e-10, abs_tol=1e-14)
    assert math.isclose(row["within_epsilon_ci_high"], high, rel_tol=1e-10, abs_tol=1e-14)
    runs = _cell(REGRETS, strategy="random", budget=10, evaluations=10, num_prompts=63,
                 optimum_class_size=1, found_best=True, exhaustive_correct=True,
                 ground_truth="exhaustive")
    strat = aggregate.strategy_table(runs, epsilon).iloc[0]
    assert strat["within_epsilon_seeds"] == count and strat["within_epsilon"] == count / n
    assert strat["within_epsilon_ci_low"] == row["within_epsilon_ci_low"]


@pytest.mark.parametrize("epsilon", [0.0, -1e-6, float("inf"), float("nan")])
def test_within_epsilon_must_be_a_positive_finite_number(epsilon):
    with pytest.raises(ValueError, match="within_epsilon"):
        aggregate.reliability(_cell(REGRETS, selection="random"), epsilon)


def test_within_epsilon_default_is_the_schema_default():
    import yaml

    from promptscape.study import config as config_lib

    with open(config_lib.SCHEMA_PATH) as handle:
        schema = yaml.safe_load(handle)
    default = schema["properties"]["landscape"]["properties"]["within_epsilon"]["default"]
    assert default == aggregate.DEFAULT_WITHIN_EPSILON == 1e-6


def test_a_prompt_tied_with_the_optimum_is_within_epsilon_even_where_the_tie_is_wider():
    """A network's optimal class ties within float32's resolution (about 3e-5 nats), wider
    than the default epsilon 1e-6: the long-prompt run counted 487 exhaustive searches
    correct but only 442 within epsilon. A tie is never outside epsilon."""
    regrets = [0.0, 2e-5, 2e-5, 0.1]
    frame = _cell(regrets, selection="random").assign(correct=[True, True, True, False])
    row = aggregate.reliability(frame, 1e-6).iloc[0]
    assert row["correct"] == 3 and row["within_epsilon_seeds"] == 3
    runs = _cell(regrets, strategy="random", budget=10, evaluations=10, num_prompts=63,
                 optimum_class_size=1, found_best=True, exhaustive_correct=True,
                 ground_truth="exhaustive").assign(correct=[True, True, True, False])
    assert aggregate.strategy_table(runs, 1e-6).iloc[0]["within_epsilon_seeds"] == 3


def test_strategies_beyond_the_landscape_carry_their_ground_truth_and_no_exact_law():
    """Runs scored against the best prompts known (strategies beyond the landscape's L_max)
    say so in the aggregate, and random search's exact law (which needs the true
    empirical-optimum class) is left null; one cell never mixes the two."""
    runs = _cell(REGRETS, strategy="random", budget=10, evaluations=10,
                 num_prompts=27 ** 6, optimum_class_size=1, found_best=True,
                 exhaustive_correct=True, ground_truth="best_known")
    row = aggregate.strategy_table(runs, 1e-6).iloc[0]
    assert row["ground_truth"] == "best_known" and math.isnan(row["expected_found_best"])
    exact = aggregate.strategy_table(runs.assign(ground_truth="exhaustive", num_prompts=63),
                                     1e-6).iloc[0]
    assert exact["ground_truth"] == "exhaustive" and exact["expected_found_best"] > 0
    mixed = runs.assign(ground_truth=["exhaustive"] + ["best_known"] * (len(runs) - 1))
    with pytest.raises(ValueError, match="mix ground truths"):
        aggregate.strategy_table(mixed, 1e-6)
