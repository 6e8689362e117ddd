"""Dataset selection: the designs against their definitions, the Horvitz-Thompson estimate
against the exact pool mean, the config's named errors, and the search stage on what a
method keeps (never reading the landscape or the evaluation set; `random` as before)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from search_helpers import assert_keeps_best_classes

from promptscape import search, selection
from promptscape.study import tables
from promptscape import prompts as prompts_lib
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import search_stage
from promptscape.validation import ConfigError

PRETRAINING = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
TASK = {"kind": "coin", "theta": 0.7}


def pool_losses(prompts=12, pool=60, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 1.0, size=pool)  # shared part of each sequence's loss
    return base[None, :] + rng.normal(0, 1, size=(prompts, pool)) ** 2 * rng.random(pool)


# ------------------------------------------------------------------ the designs
def test_inclusion_probabilities_sum_to_n_stay_in_0_1_and_grow_with_size():
    rng = np.random.default_rng(1)
    for _ in range(50):
        P = int(rng.integers(5, 80))
        n = int(rng.integers(1, P + 1))
        size = rng.gamma(0.3, 1.0, size=P) * (rng.random(P) < 0.7)  # zeros and outliers
        share = float(rng.uniform(0.01, 1))
        pi = selection.inclusion_probabilities(size, n, share)
        assert math.isclose(pi.sum(), n, rel_tol=1e-12)
        assert (pi > 0).all() and (pi <= 1 + 1e-12).all()
        order = np.argsort(size, kind="stable")
        assert (np.diff(pi[order]) >= -1e-12).all()  # monotone in the size
        uncapped = pi < 1 - 1e-12
        raw = (1 - share) * size / size.sum() + share / P if size.sum() else np.ones(P)
        if uncapped.any():  # proportional below the cap (n = P takes every unit for sure)
            ratio = pi[uncapped] / raw[uncapped]
            np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)


def test_systematic_sampling_draws_n_distinct_units_with_probabilities_pi():
    pi = selection.inclusion_probabilities(np.array([0.0, 0.1, 0.5, 1.0, 2.0, 8.0, 0.3, 0.05]),
                                           3, 0.2)
    rng = np.random.default_rng(2)
    draws = 20000
    hits = np.zeros(len(pi))
    for _ in range(draws):
        kept = selection.systematic_sample(pi, rng)
        assert len(kept) == 3 and len(set(kept.tolist())) == 3
        assert (np.diff(kept) > 0).all()
        hits[kept] += 1
    se = np.sqrt(pi * (1 - pi) / draws)
    assert (np.abs(hits / draws - pi) <= 4.5 * se + 1e-12).all(), (hits / draws, pi)


def test_horvitz_thompson_losses_are_unbiased_for_the_pool_mean_of_every_prompt():
    losses = pool_losses()
    N, draws = 10, 6000
    rng = np.random.default_rng(3)
    settings = {"pool_size": losses.shape[1], "leading_prompts": 4, "uniform_share": 0.1}
    estimates = np.empty((draws, losses.shape[0]))
    for d in range(draws):
        kept = selection.select("high_variance_weighted", losses, N, rng, settings)
        np.testing.assert_allclose(kept.weights,
                                   1 / (losses.shape[1] * kept.inclusion_probability))
        estimates[d] = losses[:, kept.indices] @ kept.weights
    exact = losses.mean(axis=1)
    se = estimates.std(axis=0, ddof=1) / np.sqrt(draws)
    assert (np.abs(estimates.mean(axis=0) - exact) <= 4.5 * se).all()
    # The plain mean of the same draws is not: it over-weights the high-spread sequences,
    # which the design favours (here, where the spread grows with the loss, upwards).
    plain = np.empty_like(estimates)
    rng = np.random.default_rng(3)
    for d in range(draws):
        kept = selection.select("high_variance_weighted", losses, N, rng, settings)
        plain[d] = losses[:, kept.indices].mean(axis=1)
    bias = plain.mean(axis=0) - exact
    assert (np.abs(bias) > 10 * plain.std(axis=0, ddof=1) / np.sqrt(draws)).any()


def test_high_variance_keeps_the_n_sequences_of_largest_spread_across_the_k_best_prompts():
    losses = pool_losses()
    settings = {"pool_size": 60, "leading_prompts": 3}
    kept = selection.select("high_variance", losses, 7, np.random.default_rng(0), settings)
    leading = np.argsort(losses.mean(axis=1))[:3]
    assert kept.leading.tolist() == leading.tolist()
    spread = losses[leading].var(axis=0)
    assert sorted(kept.indices.tolist()) == sorted(np.argsort(-spread)[:7].tolist())
    assert spread[kept.indices].min() >= np.delete(spread, kept.indices).max()
    np.testing.assert_allclose(kept.spread, spread[kept.indices])
    np.testing.assert_array_equal(kept.weights, np.full(7, 1 / 7))
    assert kept.inclusion_probability is None


def test_pool_keeps_every_sequence_with_uniform_weights():
    kept = selection.select("pool", pool_losses(pool=9), 3, np.random.default_rng(0),
                            {"pool_size": 9})
    assert kept.indices.tolist() == list(range(9))
    np.testing.assert_array_equal(kept.weights, np.full(9, 1 / 9))


def test_random_is_not_a_pooled_method():
    with pytest.raises(ValueError, match="random selects no pool sequences"):
        selection.select("random", pool_losses(), 3, np.random.default_rng(0), {})


# ------------------------------------------------------------------ config
def parse(spec, sizes=(1, 10), prompts=63):
    return selection.parse(spec, where="experiments.e.dataset_selection",
                           dataset_sizes=sizes, num_prompts=prompts)


def test_the_list_and_the_mapping_forms_give_complete_settings_and_add_the_pool():
    plan = parse(["random", "high_variance"])
    assert plan.names == ("random", "high_variance", "pool")
    assert plan.settings("high_variance") == {"pool_size": 500, "leading_prompts": 5}
    assert plan.pool_size == 500 and plan.pooled == ("high_variance", "pool")
    plan = parse({"random": {}, "high_variance_weighted": {"pool_size": 50,
                                                           "uniform_share": 0.5}})
    assert plan.settings("high_variance_weighted") == {"pool_size": 50, "leading_prompts": 5,
                                                       "uniform_share": 0.5}
    assert plan.settings("pool") == {"pool_size": 50}
    assert parse(["random"]).names == ("random",) and parse(["random"]).pool_size is None


@pytest.mark.parametrize("spec, message", [
    (["random", "random"], r"dataset_selection\[1\] == 'random' is listed twice"),
    (["random", "best"], r"dataset_selection.best: unknown dataset-selection method"),
    (["high_variance"], r"lacks 'random'"),
    ({"random": {}, "high_variance": {"pool": 3}}, r"high_variance.pool: not a setting"),
    ({"random": {"pool_size": 3}}, r"random.pool_size: not a setting of random \(its "
                                   r"settings: none\)"),
    ({"random": {}, "high_variance": {"pool_size": 5}},
     r"high_variance.pool_size == 5 is less than the largest dataset size N = 10"),
    ({"random": {}, "high_variance": {"leading_prompts": 1}},
     r"high_variance.leading_prompts == 1, must be in 2..63"),
    ({"random": {}, "high_variance": {"leading_prompts": 64}}, r"must be in 2..63"),
    ({"random": {}, "high_variance_weighted": {"uniform_share": 0.0}},
     r"uniform_share == 0.0, must be in \(0, 1\]"),
    ({"random": {}, "high_variance": {"pool_size": 100},
      "high_variance_weighted": {"pool_size": 200}}, r"give them one pool_size"),
])
def test_a_mistaken_selection_is_a_named_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse(spec)


def test_the_config_schema_and_loader_read_dataset_selection():
    from promptscape.study import config as config_lib

    raw = {"sources": {"m": PRETRAINING, "c": TASK},
           "experiments": {"e": {"pretraining": "m", "max_prompt_length": 2, "task_length": 4,
                                 "dataset_sizes": [1, 5], "evaluation_size": 100,
                                 "tasks": [{"source": "c", "in_meta_distribution": True}],
                                 "dataset_selection": {"random": None,
                                                       "high_variance": {"pool_size": 20}}}}}
    exp = config_lib.load(raw).experiments["e"]
    assert exp.selections == ("random", "high_variance", "pool")
    assert config_lib.load({**raw, "experiments": {"e": {
        k: v for k, v in raw["experiments"]["e"].items() if k != "dataset_selection"}}}
    ).experiments["e"].selections == ("random",)
    bad = {**raw["experiments"]["e"], "dataset_selection": {"random": {}, "hv": {}}}
    with pytest.raises(ConfigError, match=r"experiments.e.dataset_selection"):
        config_lib.load({**raw, "experiments": {"e": bad}})


# ------------------------------------------------------------------ the search stage
T, L_MAX, N, SEEDS = 6, 3, 8, 4


def _write_pool_and_data(tmp_path):
    data, pool = tmp_path / "data.parquet", tmp_path / "pool.parquet"
    common = dict(experiment="e", tasks={"c": TASK}, task_length=T, dataset_sizes=[N],
                  first=0, last=SEEDS - 1)
    datasets_stage.simulate_tasks(output=str(data), **common)
    datasets_stage.simulate_pool(output=str(pool), pool_size=30, **common)
    return data, pool


def _search(tmp_path, datasets, selection_name, settings=None, selected=None):
    out = tmp_path / f"search_{selection_name}.parquet"
    common = dict(datasets=str(datasets), output=str(out),
                  predictors=[{"predictor": "bayes", "replicate": 0, "family": "bayes"}],
                  pretraining=PRETRAINING, experiment="e", task_length=T,
                  dataset_sizes=[N], first=0, last=SEEDS - 1, max_prompt_length=L_MAX,
                  enumeration_budget=2**27)
    if selection_name == "random":
        search_stage.search_prompts(**common, tasks=["c"])
    else:
        search_stage.search_selected(**common, selection=selection_name,
                                     selection_settings=settings, tasks={"c": TASK},
                                     selected=str(selected))
    return tables.read(out, "search")


def test_random_searches_d_n_exactly_as_the_plain_exhaustive_search(tmp_path):
    data, _ = _write_pool_and_data(tmp_path)
    found = _search(tmp_path, data, "random")
    seqs = prompts_lib.to_arrays(tables.read(data, "task_data")["sequence"].tolist(), T)
    prompts = prompts_lib.all_prompts(L_MAX, 2)
    expected = search.empirical_losses(BayesPredictor(build_source(PRETRAINING, where="p")),
                                       prompts, seqs.reshape(SEEDS, N, T), 2**27, 2)
    assert_keeps_best_classes(found, expected, prompts,
                              BayesPredictor(build_source(PRETRAINING, where="p")),
                              range(SEEDS))
    assert (found["selection"] == "random").all()
    chosen = found[found["chosen"]]["prompt"].tolist()
    assert chosen == [prompts[i] for i in search.choose(expected)]


@pytest.mark.parametrize("method", ["high_variance", "high_variance_weighted", "pool"])
def test_a_pooled_search_reads_only_its_pool_and_writes_what_it_kept(tmp_path, method,
                                                                     monkeypatch):
    _, pool = _write_pool_and_data(tmp_path)
    read = []
    real = tables.read_table
    monkeypatch.setattr(tables, "read_table",
                        lambda path, artifact=None, **kw: read.append(artifact)
                        or real(path, artifact, **kw))
    settings = parse(["random", method]).settings(method) | {"pool_size": 30}
    settings = {k: v for k, v in settings.items()
                if k in selection.METHODS[method].settings}
    selected = tmp_path / "selected.parquet"
    found = _search(tmp_path, pool, method, settings, selected)
    # The stage read its pool, and nothing else (neither a landscape nor an evaluation
    # set), before the test read back the search it wrote.
    assert read == ["selection_pool", "search"]
    kept = tables.read(selected, "selected_data")
    pool_rows = tables.read(pool, "selection_pool")
    prompts = prompts_lib.all_prompts(L_MAX, 2)
    bayes = BayesPredictor(build_source(PRETRAINING, where="p"))
    for seed in range(SEEDS):
        mine = kept[kept["seed"] == seed]
        seqs = pool_rows[pool_rows["seed"] == seed].set_index("index")["sequence"]
        assert mine["sequence"].tolist() == seqs[mine["pool_index"]].tolist()
        assert len(mine) == (30 if method == "pool" else N)
        table = bayes.prompt_losses(prompts, prompts_lib.to_arrays(mine["sequence"].tolist(), T))
        weights = mine["weight"].to_numpy()
        expected = table @ weights if method == "high_variance_weighted" else table.mean(1)
        got = found[found["seed"] == seed]
        index = [prompts.index(p) for p in got["prompt"]]
        np.testing.assert_allclose(got["empirical_loss"].to_numpy(), expected[index],
                                   rtol=1e-12)
        assert got.loc[got["chosen"], "prompt"].item() == prompts[
            search.choose(expected[None, :])[0]]
    # Deterministic: the same job writes the same bytes.
    again = tmp_path / "again.parquet"
    _search(tmp_path, pool, method, settings, again)
    assert again.read_bytes() == selected.read_bytes()


def test_the_pool_is_an_independent_draw_seeded_by_its_identity(tmp_path):
    data, pool = _write_pool_and_data(tmp_path)
    rows = tables.read(pool, "selection_pool")
    d = tables.read(data, "task_data")
    assert len(rows) == SEEDS * 30
    # Not D_N (nor its first N), and independent across seeds and across N.
    first = rows[rows["seed"] == 0]["sequence"].tolist()
    assert first[:N] != d[d["seed"] == 0]["sequence"].tolist()
    assert first != rows[rows["seed"] == 1]["sequence"].tolist()
    other = tmp_path / "other.parquet"
    datasets_stage.simulate_pool(output=str(other), experiment="e", tasks={"c": TASK},
                                 task_length=T, dataset_sizes=[N + 1], first=0, last=0,
                                 pool_size=30)
    assert tables.read(other, "selection_pool")["sequence"].tolist() != first
    # Its sequences are the task's: coin(0.7) ones make up 70% of the symbols.
    ones = np.mean([s.count("1") / T for s in rows["sequence"]])
    assert abs(ones - 0.7) < 4 * np.sqrt(0.21 / (len(rows) * T))
    # A block of one seed holds the same pool as the whole block.
    alone = tmp_path / "alone.parquet"
    datasets_stage.simulate_pool(output=str(alone), experiment="e", tasks={"c": TASK},
                                 task_length=T, dataset_sizes=[N], first=2, last=2,
                                 pool_size=30)
    assert (tables.read(alone, "selection_pool")["sequence"].tolist()
            == rows[rows["seed"] == 2]["sequence"].tolist())


def test_the_summary_sets_the_methods_side_by_side_and_names_their_choices():
    import pandas as pd

    from promptscape.study import config as config_lib
    from promptscape.report import summary

    raw = {"sources": {"m": PRETRAINING, "c": TASK},
           "experiments": {"e": {"pretraining": "m", "max_prompt_length": 2, "task_length": 4,
                                 "dataset_sizes": [1, 5], "evaluation_size": 100,
                                 "tasks": [{"source": "c", "in_meta_distribution": True}],
                                 "dataset_selection": ["random", "high_variance"]}}}
    exp = config_lib.load(raw).experiments["e"]
    rel = pd.DataFrame([{"task": "c", "predictor": "bayes", "selection": m, "N": N,
                         "seeds": 40, "correct": int(40 * share),
                         "proportion_correct": share, "ci_low": share / 2, "ci_high": 1.0,
                         "regret_mean": 0.1 * (1 - share)}
                        for m, share in (("random", 0.5), ("high_variance", 0.4),
                                         ("pool", 1.0)) for N in (1, 5)])
    cho = pd.DataFrame([{"task": "c", "predictor": "bayes", "selection": m, "N": 5,
                         "prompt": p, "count": k, "frequency": k / 4, "rank": r,
                         "optimal": r == 0}
                        for m, rows in (("random", [("1", 3, 0), ("0", 1, 2)]),
                                        ("high_variance", [("1", 1, 0), ("00", 3, 1)]),
                                        ("pool", [("1", 4, 0)]))
                        for p, k, r in rows])
    text = "\n".join(summary.selection_lines(exp, rel, cho))
    # 16/40 against 20/40: no resolved difference; 40/40 against 20/40: resolved above.
    assert "| c | bayes | 5 | 0.50 [0.25, 1.00], 5.00e-02 | 0.40 [0.20, 1.00], 6.00e-02 | " \
           "1.00 [0.50, 1.00] ▲, 0.00e+00 |" in text
    assert "| c | bayes | `1` ★ (0.75) | `00` (0.75) | `1` ★ (1.00) |" in text


def test_the_leading_prompts_are_distinct_for_the_predictor_never_permutations_of_one():
    """Under an exchangeable predictor the permutations of a count class have the same
    losses up to rounding (~1e-15): counted apart they fill the leading set, and the
    spread across them, rounding noise, would decide the selection (a defect of the first
    version: on betacoin's coin(0.5) all five leading prompts were permutations of 0011)."""
    rng = np.random.default_rng(4)
    classes = rng.gamma(2.0, 1.0, size=(4, 50)) + np.array([[0.0], [2.0], [4.0], [6.0]])
    # Prompts 0-2 one class (noise 1e-15), 3 another, 4-5 a third, 6 the fourth.
    rows = [0, 0, 0, 1, 2, 2, 3]
    losses = classes[rows] * (1 + 1e-15 * rng.standard_normal((7, 50)))
    losses[1] = classes[0] * (1 - 1e-15)  # the best mean of its class, not its first member
    kept = selection.select("high_variance", losses, 10, rng, {"pool_size": 50,
                                                              "leading_prompts": 3})
    assert kept.leading.tolist() == [0, 3, 4]  # one per class, its first member, best first
    spread = classes[[0, 1, 2]].var(axis=0)
    assert sorted(kept.indices.tolist()) == sorted(np.argsort(-spread)[:10].tolist())
    # With the pool unable to tell two prompts apart, the spread is 0: no noise is ranked.
    same = np.repeat(classes[:1], 5, axis=0) * (1 + 1e-15 * rng.standard_normal((5, 50)))
    kept = selection.select("high_variance", same, 10, rng, {"pool_size": 50,
                                                            "leading_prompts": 3})
    assert kept.leading.tolist() == [0] and (kept.spread == 0).all()
    assert kept.indices.tolist() == list(range(10))


def test_on_the_exact_bayes_predictor_the_leading_set_holds_count_classes():
    bayes = BayesPredictor(build_source({"kind": "beta_coin", "alpha": 1.0, "beta": 1.0},
                                        where="p"))
    prompts = prompts_lib.all_prompts(4, 2)
    pool = build_source({"kind": "coin", "theta": 0.5}, where="t").sample(
        200, 10, np.random.default_rng(5))
    losses = bayes.prompt_losses(prompts, pool)
    kept = selection.select("high_variance", losses, 20, np.random.default_rng(0),
                            {"pool_size": 200, "leading_prompts": 5})
    counts = {(prompts[i].count("0"), prompts[i].count("1")) for i in kept.leading}
    assert len(counts) == 5  # five count classes, not permutations of one
    assert (kept.spread > 1e-12).all()
