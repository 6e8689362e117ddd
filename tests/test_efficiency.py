"""Prompt efficiency: typical prompts against optimal prompts, and token efficiency.

Optimal prompts are checked against exhaustive landscapes computed with
`promptscape.landscape` (by enumerating the task, not by count classes); typical-prompt
quantiles against KLs recomputed independently for the same drawn prompts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import efficiency, landscape, seeding, tables
from promptscape.predictors import BayesPredictor
from promptscape.prompts import all_prompts
from promptscape.sources import build_source
from promptscape.stages import datasets as datasets_stage
from promptscape.stages import efficiency as efficiency_stage
from promptscape.stages import landscape as landscape_stage

T = 6
L_MAX = 3
BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
BETA11 = {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}


def coin(theta):
    return {"kind": "coin", "theta": theta}


def exhaustive_landscape(pre: dict, task: dict, max_length: int, task_length: int = T):
    """A landscape frame (prompt, prompt_length, kl, rank, ...) by enumerating the task."""
    prompts = all_prompts(max_length)
    pred = BayesPredictor(build_source(pre))
    loss, _, entropy = landscape.theoretical_losses(pred, prompts, build_source(task),
                                                    task_length, "exact_enumeration")
    return pd.DataFrame({"predictor": "bayes", "experiment": "e", "task": "t",
                         "prompt": prompts, "prompt_length": [len(p) for p in prompts],
                         "kl": loss - entropy, "rank": landscape.dense_ranks(loss)})


def scorer(pre: dict, task: dict, task_length: int = T) -> efficiency.KLScorer:
    return efficiency.KLScorer(BayesPredictor(build_source(pre)), build_source(task),
                               task_length, num_prompts=100, enumeration_budget=2 ** 27)


COUNT_CASES = [(BERNMIX, coin(0.7)), (BERNMIX, coin(0.5)), (BERNMIX, coin(0.9)),
               (BETA11, coin(0.5)), (BETA11, coin(0.8))]
COUNT_IDS = [f"{p['kind']}-{t['theta']}" for p, t in COUNT_CASES]


# ------------------------------------------------------------------ optimal prompts
@pytest.mark.parametrize("pre, task", COUNT_CASES, ids=COUNT_IDS)
def test_count_class_optimum_equals_the_exhaustive_optimum(pre, task):
    big = 7
    land = exhaustive_landscape(pre, task, big)
    exhaustive = efficiency.landscape_optima(land)
    counts = efficiency.count_class_optima(scorer(pre, task), big)
    np.testing.assert_allclose(counts["exact_kl"], exhaustive["exact_kl"], rtol=1e-9, atol=1e-14)
    # The canonical prompt of the best class is a best prompt of its length.
    kl = dict(zip(land["prompt"], land["kl"]))
    np.testing.assert_allclose([kl[p] for p in counts["exact_prompt"]], exhaustive["exact_kl"],
                               rtol=1e-9, atol=1e-14)
    # Beyond a small landscape (L_max = 3) count classes extend the optimum: the result for
    # lengths 4..7 is what the exhaustive landscape of length 7 says.
    small = land[land["prompt_length"] <= L_MAX]
    lengths = list(range(big + 1))
    extended = efficiency.optimal_by_length(small, lengths, counts)
    np.testing.assert_allclose(extended["optimal_exact_kl"], exhaustive["exact_kl"],
                               rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(extended["optimal_upto_kl"], exhaustive["upto_kl"],
                               rtol=1e-9, atol=1e-14)
    for length, prompt in zip(lengths, extended["optimal_prompt"]):
        assert len(prompt) <= length
        # The best of length <= l, up to ties (a permutation of the exhaustive choice).
        best = exhaustive.loc[length, "upto_prompt"]
        assert sorted(prompt) == sorted(best) or np.isclose(kl[prompt], kl[best], rtol=1e-9)


def test_landscape_optima_break_ties_to_the_shorter_then_lexicographic_prompt():
    land = exhaustive_landscape(BETA11, coin(0.5), 4)
    optima = efficiency.landscape_optima(land)
    # Beta(1, 1) on a fair coin: balanced prompts tie by symmetry; "01" is first of length 2.
    assert optima.loc[2, "upto_prompt"] == "01"
    for length, row in optima.iterrows():
        sub = land[land["prompt_length"] <= length]
        assert np.isclose(row["upto_kl"], sub["kl"].min(), rtol=1e-9)
        assert np.isclose(row["exact_kl"], sub[sub["prompt_length"] == length]["kl"].min())


def test_other_predictors_have_no_optimum_beyond_l_max():
    land = exhaustive_landscape(SWITCHING, coin(0.7), L_MAX)
    out = efficiency.optimal_by_length(land, range(6), None)
    assert out["optimal_exact_kl"][L_MAX + 1:] == [None, None]
    assert out["optimal_prompt"][L_MAX + 1:] == [None, None]
    assert out["optimal_prompt"][L_MAX] == "111"


# ------------------------------------------------------------------ typical prompts
@pytest.mark.parametrize("pre, task", [(BERNMIX, coin(0.7)), (BETA11, coin(0.5)),
                                       (SWITCHING, coin(0.7)), (SWITCHING, coin(0.5))],
                         ids=["bernmix", "beta", "switching-0.7", "switching-0.5"])
def test_a_typical_prompt_of_length_zero_has_exactly_the_empty_prompts_kl(pre, task):
    land = exhaustive_landscape(pre, task, 0)
    curve = efficiency.typical_curve(scorer(pre, task), build_source(task), [0], 50)
    empty = float(land["kl"].iloc[0])
    for column in ("typical_kl_q25", "typical_kl_median", "typical_kl_q75"):
        assert curve[column][0] == pytest.approx(empty, rel=1e-12, abs=1e-15)
    assert efficiency.typical_prompts(build_source(task), 0, 50) == [""] * 50


@pytest.mark.parametrize("pre", [BETA11, SWITCHING], ids=["beta", "switching"])
def test_the_typical_curve_is_the_quantiles_of_the_drawn_prompts_kls(pre):
    task = build_source(coin(0.5))
    lengths, K = range(9), 30
    curve = efficiency.typical_curve(scorer(pre, coin(0.5)), task, lengths, K)
    pred = BayesPredictor(build_source(pre))
    for i, length in enumerate(lengths):
        prompts = efficiency.typical_prompts(task, length, K)
        loss, _, entropy = landscape.theoretical_losses(pred, prompts, task, T,
                                                        "exact_enumeration")
        expected = np.quantile(loss - entropy, [0.25, 0.5, 0.75])
        got = [curve["typical_kl_q25"][i], curve["typical_kl_median"][i],
               curve["typical_kl_q75"][i]]
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-14)
    # A fair-coin task on these predictors: odd lengths cannot balance the counts, so the
    # median curve is not monotone in the length and nothing may assume it is.
    steps = np.sign(np.diff(curve["typical_kl_median"]))
    assert (steps > 0).any() and (steps < 0).any()


def test_typical_prompts_are_deterministic_task_samples_shared_by_predictors(monkeypatch):
    task = build_source(coin(0.7))
    first = efficiency.typical_prompts(task, 12, 40)
    assert first == efficiency.typical_prompts(task, 12, 40)
    rng = seeding.numpy_generator("typical_prompts", task.to_dict(), 12, 40)
    assert first == ["".join(map(str, row)) for row in task.sample(40, 12, rng)]
    assert first != efficiency.typical_prompts(build_source(coin(0.5)), 12, 40)
    # Paired: every predictor (and experiment) is scored on the very same prompts.
    seen = {}
    draw = efficiency.typical_prompts

    def spy(task_source, length, count):
        prompts = draw(task_source, length, count)
        seen.setdefault(length, []).append(prompts)
        return prompts

    monkeypatch.setattr(efficiency, "typical_prompts", spy)
    for pre in (BERNMIX, BETA11, SWITCHING):
        efficiency.typical_curve(scorer(pre, coin(0.7)), task, [3, 12], 40)
    assert all(len(v) == 3 and v[0] == v[1] == v[2] for v in seen.values())
    assert seen[12][0] == first


def test_identical_typical_prompts_are_scored_once():
    calls = []

    class Counting(efficiency.KLScorer):
        def prompt_kl(self, prompts):
            calls.append(list(prompts))
            return super().prompt_kl(prompts)

    sc = Counting(BayesPredictor(build_source(SWITCHING)), build_source(coin(0.7)), T, 5, 2 ** 27)
    prompts = ["", "", "01", "1", "01"]
    kl = efficiency.typical_kls(sc, prompts)
    assert sorted(calls[0]) == ["", "01", "1"]
    assert kl[0] == kl[1] and kl[2] == kl[4]


def test_monte_carlo_scorer_matches_the_landscapes_paired_estimate():
    # A non-exchangeable task: count classes of an exchangeable predictor use the evaluation
    # set's count frequencies; other predictors score every evaluation sequence.
    task = build_source({**SWITCHING, "switch_prob": 0.3})
    evaluation = task.sample(300, T, np.random.default_rng(0))
    prompts = all_prompts(2)
    for pre in (BERNMIX, SWITCHING):
        pred = BayesPredictor(build_source(pre))
        sc = efficiency.KLScorer(pred, task, T, num_prompts=7, enumeration_budget=1,
                                 evaluation=evaluation)
        assert sc.method == "monte_carlo"
        mc = landscape.monte_carlo_kl(pred.prompt_losses(prompts, evaluation),
                                      task.log_prob(evaluation))
        np.testing.assert_allclose(sc.prompt_kl(prompts), mc[2], rtol=1e-9, atol=1e-12)


def test_lengths_beyond_a_neural_context_are_skipped():
    assert efficiency.measured_lengths(range(5), 10, None) == ([0, 1, 2, 3, 4], [])
    assert efficiency.measured_lengths(range(5), 10, 12) == ([0, 1, 2], [3, 4])


# ------------------------------------------------------------------ token efficiency
def test_shortest_typical_length_is_the_first_qualifying_length():
    lengths, medians = [0, 1, 2, 3, 4], [0.5, 0.1, 0.3, 0.05, 0.2]
    assert efficiency.shortest_typical_length(lengths, medians, 0.2) == 1
    assert efficiency.shortest_typical_length(lengths, medians, 0.05) == 3
    assert efficiency.shortest_typical_length(lengths, medians, 0.05 * (1 + 1e-12)) == 3
    assert efficiency.shortest_typical_length(lengths, medians, 0.01) is None
    assert efficiency.shortest_typical_length(lengths[::-1], medians[::-1], 0.2) == 1


def _curve(task, medians):
    n = len(medians)
    return pd.DataFrame({"predictor": "bayes", "task": task, "prompt_length": range(n),
                         "typical_kl_median": medians})


def test_token_efficiency_reports_ratio_and_nulls(tmp_path):
    land = pd.concat([
        exhaustive_landscape(BERNMIX, coin(0.7), L_MAX).assign(task="coin_0.7"),
        exhaustive_landscape(BETA11, {"kind": "coin_mixture", "thetas": [0.2, 0.8]},
                             L_MAX).assign(task="bimodal"),
        exhaustive_landscape(BERNMIX, coin(0.9), L_MAX).assign(task="coin_0.9"),
    ])
    best = {t: efficiency.landscape_optima(g).iloc[-1] for t, g in land.groupby("task")}
    assert best["coin_0.7"]["upto_prompt"] == "111"
    assert best["bimodal"]["upto_prompt"] == ""  # no prompt beats the empty one
    target = best["coin_0.7"]["upto_kl"]
    eff = pd.concat([
        _curve("coin_0.7", [1.0, 0.5, target * 2, target * 0.5, target * 0.1, target * 2]),
        _curve("bimodal", [best["bimodal"]["upto_kl"], 0.9, 1.0]),
        _curve("coin_0.9", [5.0, 4.0, 3.0]),
    ])
    imd = {"coin_0.7": True, "bimodal": False, "coin_0.9": False}
    columns = efficiency.token_efficiency(eff, land, imd)
    rows = {task: {name: values[i] for name, values in columns.items()}
            for i, task in enumerate(columns["task"])}
    assert rows["coin_0.7"]["typical_length"] == 3  # the first, not the best, qualifying
    assert rows["coin_0.7"]["length_ratio"] == 1.0
    assert rows["coin_0.7"]["optimal_length"] == 3 and rows["coin_0.7"]["max_prompt_length"] == 3
    assert rows["bimodal"]["typical_length"] == 0 and rows["bimodal"]["length_ratio"] is None
    assert rows["coin_0.9"]["typical_length"] is None  # beyond range
    assert rows["coin_0.9"]["length_ratio"] is None
    path = tmp_path / "token_efficiency.parquet"
    tables.write(columns, "token_efficiency", path)
    back = tables.read(path, "token_efficiency").set_index("task")
    assert back["typical_length"].isna().tolist() == [False, False, True]  # bimodal, 0.7, 0.9
    assert columns["max_typical_length"] == [2, 5, 2]  # bimodal, coin_0.7, coin_0.9
    text = efficiency.format_token_efficiency(columns)
    assert "(empty)" in text and "> 2" in text and "OOMD" in text


# ------------------------------------------------------------------ the stage
@pytest.mark.parametrize("pre, expect_beyond", [(BERNMIX, True), (SWITCHING, False)],
                         ids=["bernmix", "switching"])
def test_measure_and_summarize_efficiency_stages(tmp_path, monkeypatch, pre, expect_beyond):
    task = coin(0.7)
    evaluation = tmp_path / "evaluation.parquet"
    datasets_stage.simulate_evaluation(output=str(evaluation), experiment="e",
                                       task_name="coin_0.7", task=task,
                                       task_length=T, size=50)
    land_path = tmp_path / "landscape.parquet"
    common = dict(predictor="bayes", pretraining=pre, experiment="e", task_name="coin_0.7",
                  task=task, task_length=T, enumeration_budget=2 ** 27)
    landscape_stage.compute_landscape(evaluation=str(evaluation), output=str(land_path),
                                      max_prompt_length=2, **common)
    out = tmp_path / "efficiency.parquet"
    efficiency_stage.measure_efficiency(landscape=str(land_path), evaluation=str(evaluation),
                                        output=str(out), max_length=5, num_typical=7, **common)
    eff = tables.read(out, "efficiency")
    assert eff["prompt_length"].tolist() == list(range(6))
    assert (eff["typical_prompts"] == 7).all()
    assert eff["optimal_prompt"].iloc[:3].tolist() == ["", "1", "11"]
    assert eff["optimal_exact_kl"].iloc[3:].notna().all() == expect_beyond
    assert eff["optimal_exact_kl"].iloc[3:].isna().all() == (not expect_beyond)
    summary = tmp_path / "token_efficiency.parquet"
    efficiency_stage.summarize_efficiency(efficiencies=[str(out)], landscapes=[str(land_path)],
                                          output=str(summary), experiment="e",
                                          in_meta_distribution={"coin_0.7": True})
    row = tables.read(summary, "token_efficiency").iloc[0]
    assert row["optimal_prompt"] == "11" and row["max_prompt_length"] == 2

    # A predictor with a context limit (as neural ones have) skips what does not fit.
    class Limited(BayesPredictor):
        max_context = T + 3

    monkeypatch.setattr(efficiency_stage, "load_predictor",
                        lambda family, pretraining, model=None, device="auto":
                        Limited(build_source(pretraining)))
    efficiency_stage.measure_efficiency(landscape=str(land_path), evaluation=str(evaluation),
                                        output=str(out), max_length=5, num_typical=7, **common)
    assert tables.read(out, "efficiency")["prompt_length"].tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------ the figure
def test_efficiency_chart_layers_a_band_and_two_curves_per_task_panel():
    from promptscape import figures

    task = build_source(coin(0.7))
    land = exhaustive_landscape(SWITCHING, coin(0.7), 2)
    curve = efficiency.typical_curve(scorer(SWITCHING, coin(0.7)), task, range(5), 10)
    frame = pd.DataFrame({"predictor": "bayes", "experiment": "e", "task": "coin_0.7", **curve,
                          "typical_prompts": 10, **efficiency.optimal_by_length(land, range(5)),
                          "method": "exact_enumeration"})
    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#000000"}}
    spec = figures.efficiency_chart(frame, tasks=["coin_0.7"], imd={"coin_0.7": True},
                                    predictors=["bayes"], style=style, title="t").to_dict()
    layers = spec["spec"]["layer"]
    assert [layer["mark"]["type"] for layer in layers] == ["area", "line"]
    assert layers[0]["encoding"]["y"]["scale"]["type"] == "log"
    assert layers[1]["encoding"]["strokeDash"]["field"] == "curve"
    assert spec["facet"]["field"] == "task_label"
    rows = spec["datasets"][spec["data"]["name"]]
    assert {r["task_label"] for r in rows} == {"coin_0.7 (IMD)"}
    # Beyond L_max the optimum of a non-exchangeable predictor is unknown: null, not floored.
    assert [r["optimal_plot"] is None for r in rows] == [False] * 3 + [True] * 2
