"""The tuning aggregate and figure on a small synthetic tuning_runs table."""

import numpy as np
import pandas as pd

from chart_helpers import layers
from promptscape.report import aggregate, figures

STYLE = {"panel_width": 120, "panel_height": 90, "png_scale": 1, "font_size": 11,
         "predictor_colors": {}}


def runs_table():
    """Two networks x one task x N 10: hard_search and soft_prompt rows of 4 seeds."""
    rows = []
    for predictor, shift in (("lstm", 0.0), ("transformer", 1.0)):
        for seed in range(4):
            search_kl = 0.2 + shift
            for tuner, kl, loss in (("hard_search", search_kl, 5.0),
                                    ("soft_prompt", [0.05, 0.15, 0.25, 0.5][seed] + shift,
                                     [4.0, 4.5, 5.5, 4.8][seed])):
                rows.append(dict(predictor=predictor, replicate=0, experiment="e", task="t",
                                 N=10, seed=seed, tuner=tuner, settings="fixed", kl_se=0.0,
                                 search_prompt="01",
                                 tuning_steps=0 if tuner == "hard_search" else 5, kl=kl,
                                 chosen_learning_rate=None if tuner == "hard_search" else 0.01,
                                 chosen_steps=0 if tuner == "hard_search" else 5,
                                 entropy=6.0, search_kl=search_kl, search_train_loss=5.0,
                                 kl_minus_search=kl - search_kl, train_loss=loss,
                                 overfit=bool(loss < 5.0 and kl > search_kl),
                                 overfit_path=tuner != "hard_search" and seed == 2,
                                 worse_than_none=bool(kl > 0.45),
                                 trainable_parameters=0 if tuner == "hard_search" else 20,
                                 sequence_evaluations=10 * (5 if tuner != "hard_search" else 63)))
    return pd.DataFrame(rows)


def landscapes():
    return pd.DataFrame({"predictor": ["lstm", "lstm", "transformer"], "replicate": 0,
                         "experiment": "e", "task": "t", "prompt": ["0", "01", "01"],
                         "method": "exact_enumeration", "kl": [0.1, 0.3, 1.1],
                         "kl_se": 0.0, "optimal": [True, False, True]})


def optima():
    """Each network's soft-prompt optimum (tuner_optima rows) at K = 5, the K tuned on D_N;
    the LSTM's also at K = 1 (not read)."""
    return pd.DataFrame({"predictor": ["lstm", "transformer", "lstm"], "replicate": 0,
                         "experiment": "e", "task": "t", "tuner": "soft_prompt",
                         "prompt_length": [5, 5, 1], "kl": [0.04, 1.02, 0.3],
                         "at_tuning_length": [True, True, False]})


def test_the_aggregate_counts_seeds_below_the_optimum_and_the_search():
    out = aggregate.tuning(runs_table(), landscapes(), 1e-5, optima()).set_index(
        ["predictor", "tuner"])
    soft = out.loc[("lstm", "soft_prompt")]
    # KLs 0.05, 0.15, 0.25, 0.5 against the optimum 0.1 and the searched 0.2.
    assert (soft["below_optimum"], soft["below_search"], soft["seeds"]) == (1, 2, 4)
    assert soft["kl_median"] == np.median([0.05, 0.15, 0.25, 0.5])
    assert soft["proportion_overfit"] == 0.25  # seed 3: loss 4.8 < 5.0, KL 0.5 > 0.2
    assert soft["proportion_overfit_path"] == 0.25 and soft["proportion_worse_than_none"] == 0.25
    assert out.loc[("lstm", "hard_optimum"), "proportion_overfit_path"] == 0
    optimum = out.loc[("lstm", "hard_optimum")]
    assert optimum["kl_median"] == 0.1 and optimum["below_search"] == 4
    assert out.loc[("transformer", "hard_optimum"), "kl_median"] == 1.1
    low, high = aggregate.wilson_interval(1, 4)
    assert (soft["below_optimum_ci_low"], soft["below_optimum_ci_high"]) == (low, high)
    # Each row carries its tuner's own optimum; the hard references the hard optimum.
    assert soft["tuner_optimum_kl"] == 0.04
    assert out.loc[("transformer", "soft_prompt"), "tuner_optimum_kl"] == 1.02
    assert out.loc[("lstm", "hard_search"), "tuner_optimum_kl"] == 0.1
    assert out.loc[("transformer", "hard_optimum"), "tuner_optimum_kl"] == 1.1


def test_a_tuned_row_without_its_optimum_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="without their tuner's optimum"):
        aggregate.tuning(runs_table(), landscapes(), 1e-5, optima().iloc[[0, 2]])


def test_every_layer_of_the_figure_reads_its_own_panel():
    """The layers take the facet's data and filter it: a layer with data of its own would
    draw every network's and task's rows in every panel (an earlier version did)."""
    table = aggregate.tuning(runs_table(), landscapes(), 1e-5, optima()).assign(
        in_meta_distribution=True)
    spec = figures.tuning_chart(table, tasks=["t"], imd={"t": True}, predictors=[],
                                style=STYLE, title="tuning").to_dict()
    assert "facet" in spec and {"row", "column"} <= set(spec["facet"])
    drawn = layers(spec["spec"])
    assert len(drawn) == 5 and not any("data" in layer for layer in drawn)
    filters = [t["filter"] for layer in drawn for t in layer.get("transform", [])]
    assert sorted(filters) == sorted(["datum.layer == 'tuned'"] * 2
                                     + [f"datum.layer == '{name}'" for name in
                                        ("optimum", "hard_optimum", "hard_search")])


def test_with_one_n_the_figure_draws_every_mark_and_each_optimum_at_infinity():
    """One N (the runs' 10): the medians are points, the spread a bar, the hard optimum a
    rule across the panel, the searched prompt a marked point, each tuner's optimum a
    diamond at N = ∞; fixed and held-out settings apart."""
    runs = runs_table()
    held = runs[runs["tuner"] == "soft_prompt"].assign(settings="holdout",
                                                       kl=lambda f: f["kl"] * 0.9)
    table = aggregate.tuning(pd.concat([runs, held]), landscapes(), 1e-5, optima()).assign(
        in_meta_distribution=True)
    chart = figures.tuning_chart(table, tasks=["t"], imd={"t": True}, predictors=[],
                                 style=STYLE, title="tuning")
    spec = chart.to_dict()
    data = pd.DataFrame(spec["datasets"][spec["data"]["name"]])
    every = layers(spec["spec"])
    drawn = {layer["transform"][0]["filter"]: layer for layer in every}
    lstm = data[data["network"] == "lstm"]
    optimum = lstm[lstm["layer"] == "optimum"]
    assert list(optimum["n_label"]) == [figures.N_INFINITY]
    assert list(optimum["kl_median"]) == [0.04]
    tuned = lstm[lstm["layer"] == "tuned"]
    assert sorted(tuned["settings"]) == ["fixed", "holdout"] and set(tuned["n_label"]) == {"10"}
    # Marks a single N still shows: points on the lines, bars for the spread, a rule with
    # no x for the hard optimum, crosses for the searched prompt.
    tuned_marks = sorted((layer["mark"]["type"], bool(layer["mark"].get("point")))
                         for layer in every if "'tuned'" in layer["transform"][0]["filter"])
    assert tuned_marks == [("line", True), ("rule", False)]
    assert "y2" in [layer for layer in every if layer["mark"]["type"] == "rule"
                    and "'tuned'" in layer["transform"][0]["filter"]][0]["encoding"]
    assert drawn["datum.layer == 'hard_optimum'"]["mark"]["type"] == "rule"
    assert "x" not in drawn["datum.layer == 'hard_optimum'"]["encoding"]
    assert drawn["datum.layer == 'hard_search'"]["mark"]["point"]["shape"] == "cross"
    assert drawn["datum.layer == 'optimum'"]["mark"]["shape"] == "diamond"
    x = drawn["datum.layer == 'optimum'"]["encoding"]["x"]
    assert x["scale"]["domain"] == ["10", figures.N_INFINITY]
    # Each column repeats the x title: it fits one panel (about 6 px a character).
    assert 6 * len(x["title"]) < STYLE["panel_width"]


def test_the_summary_reads_the_last_and_the_best_budget_and_each_tuners_optimum():
    import types

    from promptscape.neural import tuners
    from promptscape.report import summary

    runs = runs_table()
    # A second budget for the soft prompt: 0 steps, better than its last (5 steps).
    early = runs[runs["tuner"] == "soft_prompt"].assign(tuning_steps=0, chosen_steps=0,
                                                        kl=lambda f: f["kl"] - 0.01)
    table = aggregate.tuning(pd.concat([runs, early]), landscapes(), 1e-5, optima())
    plan = tuners.parse({"tuners": ["soft_prompt"], "steps": 5, "tuning_steps": [0, 5]},
                        where="tuning", predictors=["lstm"], networks={"lstm": None},
                        tasks=["t"], dataset_sizes=[10], num_seeds=4, max_prompt_length=5)
    lines = summary.tuning_lines(types.SimpleNamespace(tuning=plan), table)
    (row,) = [line for line in lines if line.startswith("| lstm | t | 10 |")]
    soft = np.median([0.05, 0.15, 0.25, 0.5])
    assert f"{soft:.3g}, best {soft - 0.01:.3g} (0)" in row
    assert "path 0.25, worse than none 0.25; optimum 0.04" in row
    assert not any("held-out" in line for line in lines)


def test_the_summary_lists_each_tuners_optimum_at_each_k():
    from promptscape.report import summary

    rows = optima().assign(method="exact_enumeration", kl_se=0.0, entropy=6.0,
                           objective=lambda f: f["kl"] + 6.0, learning_rate=[0.03, 0.01, 0.03],
                           steps=[40, 100, 12], converged_step=[70, None, 42],
                           gradient_norm=1e-3, restart_spread=[0.01, 0.0, 0.2], restarts=3,
                           start=["optimum", "random", "optimum"],
                           start_prompt=["1", "01101", ""], trainable_parameters=20)
    lines = summary.optimum_lines(rows)
    assert "| lstm | t | soft_prompt | 5 | 0.04 | 0.03 | 40 | 70 | 0.01 | optimum `1` |" in lines
    assert "| transformer | t | soft_prompt | 5 | 1.02 | 0.01 | 100 | - | 0 | random `01101` |" \
        in lines
    assert "| lstm | t | soft_prompt | 1 | 0.3 | 0.03 | 12 | 42 | 0.2 | optimum |" in lines
