"""Word sources in the pipeline's readers and writers: prompts and sequences written as
characters (binary strings unchanged), rows in the canonical order of symbols (``_`` after
``z``), inf KLs in landscapes (estimates, ranks, resolution) and in the landscape figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from promptscape import landscape
from promptscape import prompts as prompts_lib
from promptscape.study import tables
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source


def test_word_prompts_are_written_as_characters_and_binary_ones_as_digits():
    assert prompts_lib.all_prompts(1, 27)[:3] == ["", "a", "b"]
    assert prompts_lib.all_prompts(1, 27)[-1] == "_"
    assert prompts_lib.all_prompts(2, 2) == ["", "0", "1", "00", "01", "10", "11"]
    every = prompts_lib.all_prompts(2, 27)
    assert [prompts_lib.prompt_index(p, 27) for p in every] == list(range(len(every)))
    assert [prompts_lib.prompt_at(i, 27) for i in range(len(every))] == every
    seqs = np.array([[19, 7, 4, 26], [0, 26, 1, 2]], dtype=np.uint8)
    assert prompts_lib.to_strings(seqs, 27) == ["the_", "a_bc"]
    np.testing.assert_array_equal(prompts_lib.to_arrays(["the_", "a_bc"], 4), seqs)
    assert prompts_lib.to_strings(np.array([[0, 1, 1]], dtype=np.uint8), 2) == ["011"]
    with pytest.raises(ValueError, match="alphabet of 11 symbols"):
        prompts_lib.alphabet(11)


def test_tables_sort_word_prompts_in_symbol_order(tmp_path):
    prompts = prompts_lib.all_prompts(2, 27)
    n = len(prompts)
    shuffled = np.random.default_rng(0).permutation(n)
    frame = {"predictor": "bayes", "replicate": 0, "experiment": "w", "task": "t",
             "prompt": [prompts[i] for i in shuffled],
             "prompt_length": [len(prompts[i]) for i in shuffled],
             "prompt_counts": [[0] for _ in range(n)], "method": "monte_carlo",
             "loss": np.ones(n), "loss_se": np.zeros(n), "entropy": 1.0, "kl": np.ones(n),
             "kl_se": np.zeros(n), "first_symbol_kl": np.zeros(n),
             "first_symbol_prediction": [[1.0] for _ in range(n)], "rank": np.zeros(n, int),
             "optimal": np.ones(n, bool), "resolved": np.ones(n, bool), "kl_resolution": 0.0,
             "below_resolution": np.zeros(n, bool), "mc_kl": np.ones(n),
             "mc_kl_se": np.zeros(n), "decided_by": "paired_se", "kl_residuals": [[]] * n}
    tables.write(frame, "landscape", tmp_path / "l.parquet")
    assert tables.read_table(tmp_path / "l.parquet", "landscape")["prompt"].to_pylist() == prompts
    order = pd.DataFrame({"prompt": ["_", "b", "a", ""]}).sort_values(
        "prompt", key=prompts_lib.order_key)["prompt"].tolist()
    assert order == ["", "a", "b", "_"]


def test_impossible_prompts_have_inf_kl_standard_error_0_and_rank_last():
    src = build_source({"kind": "language_mixture", "languages": ["en", "de"], "words": 40,
                        "oov": 0.01})
    task = build_source({"kind": "word_stream", "language": "en", "words": 40, "oov": 0.01})
    seqs = task.sample(200, 6, np.random.default_rng(0))
    prompts = ["", "the_", "_", "a__"]
    losses = BayesPredictor(src).prompt_losses(prompts, seqs)
    loss, loss_se, kl, kl_se, _ = landscape.monte_carlo_kl(losses, task.log_prob(seqs))
    assert np.isinf(kl[2:]).all() and (kl_se[2:] == 0).all() and np.isfinite(kl[:2]).all()
    rank, optimal, _ = landscape.classify(loss, losses)
    assert rank[2] == rank[3] == rank.max() > rank[:2].max() and not optimal[2:].any()
    resolution = landscape.resolution(loss, 10.0, outcomes=4)
    assert np.isfinite(resolution) and resolution > 0


def test_the_landscape_figure_draws_inf_as_such():
    from promptscape.report import figures

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4"}}
    prompts = ["", "a", "_", "__"]
    land = pd.DataFrame({"predictor": "bayes", "replicate": 0, "experiment": "w",
                         "task": "en", "prompt": prompts,
                         "prompt_length": [len(p) for p in prompts],
                         "kl": [0.1, 0.2, np.inf, np.inf], "kl_se": [0.01, 0.01, 0.0, 0.0],
                         "rank": [0, 1, 2, 2], "optimal": [True, False, False, False],
                         "resolved": True, "method": "monte_carlo"})
    spec = figures.landscape_chart(land, tasks=["en"], imd={"en": True}, predictors=["bayes"],
                                   style=style, title="t").to_dict()
    json.dumps(spec, allow_nan=False)  # no inf or NaN reaches Vega
    rows = {r["prompt"]: r for r in next(iter(spec["datasets"].values()))}
    assert rows["_"]["members"] == 2  # "_" and "__": equal rank and KL, one point
    assert rows["_"]["class"] == figures.IMPOSSIBLE
    assert rows["_"]["kl_plot"] == pytest.approx(0.2 * figures.INFINITE_LIFT)
    assert rows["_"]["kl_shown"].startswith("inf")
    assert rows["a"]["class"] == figures.OTHER and rows["a"]["kl_plot"] == pytest.approx(0.2)
    assert any("KL = ∞" in line for line in np.atleast_1d(spec["title"]["subtitle"]))
    domain = spec["spec"]["layer"][1]["encoding"]["shape"]["scale"]["domain"]
    assert figures.IMPOSSIBLE in domain


def test_prompt_efficiency_of_a_word_task_builds_no_count_classes(monkeypatch):
    """The count classes of T = 10 symbols over 27 are 254 million rows (a 55 GB array that
    killed the efficiency job): a word task's scorer never asks for them."""
    from promptscape import efficiency

    def refuse(n, parts):
        raise AssertionError(f"compositions({n}, {parts}) built")

    monkeypatch.setattr(efficiency, "compositions", refuse)
    src = build_source({"kind": "language_mixture", "languages": ["en", "de"], "words": 40,
                        "oov": 0.01})
    task = build_source({"kind": "word_stream", "language": "en", "words": 40, "oov": 0.01})
    seqs = task.sample(100, 10, np.random.default_rng(0))
    scorer = efficiency.KLScorer(BayesPredictor(src), task, 10, 50, 1 << 27, seqs)
    assert scorer.method == "monte_carlo" and not scorer.classes_apply
    kl = scorer.prompt_kl(["", "the_", "_"])
    assert np.isfinite(kl[:2]).all() and np.isinf(kl[2])


def test_predicted_reliability_with_impossible_prompts_matches_enumerated_datasets():
    """A prompt infinite on one outcome wins only on datasets without that outcome: the
    exact multinomial sum and the simulation count it so (0 x inf = 0), and the normal
    approximation (every frequency positive) never lets it win."""

    import math

    from promptscape import theory

    inf = np.inf
    losses = np.array([[1.0, 2.0], [inf, 0.5], [1.6, 1.6]])
    p = np.array([0.3, 0.7])
    optimal = np.array([True, False, False])
    N = 3
    brute = 0.0
    for k in range(N + 1):  # k outcomes 0, N - k outcomes 1
        prob = math.comb(N, k) * p[0] ** k * p[1] ** (N - k)
        empirical = [sum(c * row[x] for x, c in enumerate((k, N - k)) if c) / N
                     for row in losses]
        brute += prob * (int(np.argmin(empirical)) == 0)
    exact = theory.exact_proportion_correct(losses, p, optimal, N)
    assert exact == pytest.approx(brute, abs=1e-12)
    q, se = theory.simulated_proportion_correct(losses, p, optimal, N, 20_000,
                                                np.random.default_rng(0))
    assert abs(q - brute) <= 5 * se
    normal, _ = theory.normal_proportion_correct(losses, p, optimal, N, 2_000,
                                                 np.random.default_rng(1))
    assert 0.0 < normal <= 1.0
    assert theory.decomposition(losses, p, optimal)["gap"] == pytest.approx(0.3 * 1.6 + 0.7 * 1.6 - 1.7)


def test_the_network_against_bayes_figure_draws_inf_as_such():
    from promptscape.report import figures

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4", "lstm": "#ff7f0e"}}
    prompts = ["", "a", "_"]
    rows = []
    for predictor, kls in (("bayes", [0.3, 0.2, np.inf]), ("lstm", [0.5, 0.4, 0.9])):
        rows += [{"predictor": predictor, "replicate": 0, "experiment": "w", "task": "en",
                  "prompt": p, "prompt_length": len(p), "kl": k, "kl_se": 0.0,
                  "rank": i, "optimal": i == 0, "resolved": True, "method": "monte_carlo"}
                 for i, (p, k) in enumerate(zip(prompts, kls))]
    spec = figures.neural_vs_bayes_chart(pd.DataFrame(rows), tasks=["en"], imd={"en": True},
                                         predictors=["bayes", "lstm"], style=style,
                                         title="t").to_dict()
    json.dumps(spec, allow_nan=False)
    data = {r.get("prompt"): r for r in next(iter(spec["datasets"].values()))
            if r.get("layer") == "prompt"}
    assert data["_"]["kl_bayes_plot"] == pytest.approx(0.3 * figures.INFINITE_LIFT)
    assert data["a"]["kl_bayes_plot"] == pytest.approx(0.2)
    domain = spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["domain"]
    assert np.isfinite(domain).all()
    assert any("KL = ∞" in line for line in np.atleast_1d(spec["title"]["subtitle"]))


def test_the_transfer_figure_writes_an_inf_regret_as_such():
    from promptscape.report import figures

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4", "lstm": "#ff7f0e"}}
    rows = [{"experiment": "w", "comparison": "predictors", "source_prompts": "optimal_class",
             "source_experiment": "w", "target_experiment": "w", "source_predictor": s,
             "source_replicate": 0, "target_predictor": t, "target_replicate": 0,
             "source_task": "en", "target_task": "en", "search_N": np.nan, "source_count": 2,
             "regret": r, "regret_min": 0.0, "regret_max": r, "target_method": "monte_carlo"}
            for s, t, r in (("bayes", "bayes", 0.0), ("bayes", "lstm", 3.0),
                            ("lstm", "bayes", np.inf), ("lstm", "lstm", 0.1))]
    spec = figures.transfer_chart(pd.DataFrame(rows), tasks=["en"], imd={"en": True},
                                  predictors=["bayes", "lstm"], style=style,
                                  title="t").to_dict()
    json.dumps(spec, allow_nan=False)
    cells = {(r["source"], r["target"]): r for d in spec["datasets"].values() for r in d
             if "source" in r}
    assert cells[("lstm", "bayes")]["regret_label"] == "∞"
    assert cells[("lstm", "bayes")]["regret_shown"] == pytest.approx(3.0)
    assert cells[("bayes", "lstm")]["regret_label"] == "3"


def test_the_posterior_figure_leaves_impossible_prompts_out_and_writes_symbols_as_characters():
    from promptscape.report import figures

    style = {"panel_width": 100, "panel_height": 80, "font_size": 10,
             "predictor_colors": {"bayes": "#1f77b4"}}
    prompts = ["", "a", "_"]
    uniform = [1 / 27] * 27
    boundary = [0.0] * 26 + [1.0]
    land = pd.DataFrame({"predictor": "bayes", "replicate": 0, "experiment": "w",
                         "task": "en", "prompt": prompts, "prompt_length": [0, 1, 1],
                         "kl": [0.3, 0.2, np.inf], "first_symbol_kl": [0.1, 0.1, np.inf],
                         "first_symbol_prediction": [uniform, boundary, [0.0] * 27],
                         "optimal": [False, True, False]})
    eff = pd.DataFrame({"predictor": ["bayes"], "task": ["en"], "prompt_length": [1],
                        "optimal_upto_kl": [0.2], "optimal_prompt": ["a"]})
    spec = figures.posterior_chart({"landscape": land, "efficiency": eff}, tasks=["en"],
                                   imd={"en": True}, predictors=["bayes"], style=style,
                                   title="t").to_dict()
    json.dumps(spec, allow_nan=False)
    text = json.dumps(spec, ensure_ascii=False)
    assert "v* = _" in text and "1 impossible prompts (KL = ∞) not drawn" in text


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_networks_over_27_symbols_score_word_prompts_as_their_concatenation(family):
    """Word prompts reach a network as symbols 0..26: the trie scoring equals scoring each
    prompt + sequence symbol by symbol."""
    from network_helpers import TINY_NETWORKS, scramble

    from promptscape.neural import base, families, scoring
    from promptscape.predictors import Predictor

    config = families.PredictorConfig(family=family, **TINY_NETWORKS[family], steps=2,
                                      batch_size=4, sequence_length=12, warmup_steps=1)
    model = base.build_model(config, 27)
    scramble(model)
    predictor = scoring.NeuralPredictor(model.eval(), config, device="cpu")
    seqs = prompts_lib.to_arrays(["the_c", "und_d", "zz_qa"], 5)
    prompts = ["", "a", "the_", "_", "de_la"]
    np.testing.assert_allclose(predictor.prompt_losses(prompts, seqs),
                               Predictor.prompt_losses(predictor, prompts, seqs), rtol=1e-5)


def test_the_landscape_stage_sums_a_word_task_exactly_over_its_support(tmp_path, caplog):
    """A task without out-of-vocabulary words and a small list: the stage's method is
    exact_enumeration over the task's support (not its 27^T sequences), the KL is the exact
    sum, and the evaluation set's estimate beside it agrees within its standard error."""
    from promptscape.pipeline.stages.datasets_stage import simulate_evaluation
    from promptscape.pipeline.stages.landscape_stage import compute_landscape

    pre = {"kind": "language_mixture", "languages": ["es", "fr"], "words": 5, "oov": 0.01}
    task = {"kind": "word_stream", "language": "fr", "words": 5, "oov": 0.0}
    T, budget = 6, 10 ** 6  # 757 prompts x 27^6 is over the budget; x the support is not
    evaluation = tmp_path / "eval.parquet"
    simulate_evaluation(output=str(evaluation), experiment="w", task_name="fr", task=task,
                        task_length=T, size=400)
    out = tmp_path / "land.parquet"
    with caplog.at_level("INFO", logger="promptscape"):
        compute_landscape(evaluation=str(evaluation), output=str(out), predictor="bayes",
                          family="bayes", pretraining=pre, experiment="w", task_name="fr",
                          task=task, task_length=T, max_prompt_length=2,
                          enumeration_budget=budget)
    # The cross-check reads impossible prompts (inf both ways) as agreeing, not as NaN.
    check = next(r.getMessage() for r in caplog.records if "cross-check" in r.getMessage())
    assert "nan" not in check and float(check.split("max |z| = ")[1].split()[0]) < 5
    land = tables.read(str(out), "landscape")
    assert (land["method"] == "exact_enumeration").all() and (land["kl_se"] == 0).all()
    source, pred = build_source(task), BayesPredictor(build_source(pre))
    seqs, log_p = source.support(T)
    prompts = land["prompt"].tolist()
    expected = pred.prompt_losses(prompts, seqs) @ np.exp(log_p) + np.exp(log_p) @ log_p
    np.testing.assert_allclose(land["kl"], expected, rtol=1e-9, atol=1e-12)
    finite = np.isfinite(land["kl"]).to_numpy()
    assert finite.sum() > 700 and (~finite).sum() == 28  # (a leading _, or __: inf)
    gap = np.abs(land["mc_kl"] - land["kl"]).to_numpy()[finite]
    assert (gap <= 5 * land["mc_kl_se"].to_numpy()[finite] + 1e-9).all()


def test_the_plan_names_the_landscape_s_method_for_a_word_task_by_the_same_rule():
    """The plan picks exact_enumeration over the support for a task without
    out-of-vocabulary words (Bayes and the LSTM alike) and monte_carlo otherwise, and its
    predicted reliability's outcomes are the support's sequences."""
    import copy
    from pathlib import Path

    import yaml

    from promptscape.study import config as config_lib
    from promptscape.pipeline import plan

    raw = yaml.safe_load((Path(__file__).parents[2] / "config" / "config.yaml").read_text())
    raw = copy.deepcopy(raw)
    raw["sources"]["dutch_core"] = {"kind": "word_stream", "language": "nl", "words": 20,
                                    "oov": 0.0}
    raw["experiments"]["words"]["tasks"].append({"source": "dutch_core",
                                                 "in_meta_distribution": False})
    study = config_lib.load(raw)
    exp = study.experiments["words"]
    core = exp.task("dutch_core")
    size = core.source.support_size(exp.task_length)
    assert 0 < size * plan.num_prompts(exp) <= study.enumeration_budget
    for predictor in exp.predictors:
        assert plan.landscape_method(study, exp, predictor, core) == "exact_enumeration"
        assert plan.landscape_method(study, exp, predictor, exp.task("dutch")) == "monte_carlo"
    assert plan.exact_sequences(study, exp, core) == size
    jobs = {(j.rule, j.wildcards.get("predictor"), j.wildcards.get("task")): j
            for j in plan.jobs(study)}
    assert jobs[("compute_landscape", "bayes", "dutch_core")].note == "exact_enumeration"
    assert jobs[("predict_reliability", "bayes", "dutch")].note == "monte_carlo"
