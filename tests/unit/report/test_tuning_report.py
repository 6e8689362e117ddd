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
                                 N=10, seed=seed, tuner=tuner, settings="fixed",
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
                         "experiment": "e", "task": "t", "kl": [0.1, 0.3, 1.1]})


def optima():
    """Each network's soft-prompt optimum (tuner_optima rows)."""
    return pd.DataFrame({"predictor": ["lstm", "transformer"], "replicate": 0,
                         "experiment": "e", "task": "t", "tuner": "soft_prompt",
                         "prompt_length": 5, "kl": [0.04, 1.02]})


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
        aggregate.tuning(runs_table(), landscapes(), 1e-5, optima().iloc[:1])


def test_every_layer_of_the_figure_reads_its_own_panel():
    """The layers take the facet's data and filter it: a layer with data of its own would
    draw every network's and task's rows in every panel (an earlier version did)."""
    table = aggregate.tuning(runs_table(), landscapes(), 1e-5, optima()).assign(
        in_meta_distribution=True)
    spec = figures.tuning_chart(table, tasks=["t"], imd={"t": True}, predictors=[],
                                style=STYLE, title="tuning").to_dict()
    assert "facet" in spec and {"row", "column"} <= set(spec["facet"])
    drawn = layers(spec["spec"])
    assert len(drawn) == 3 and not any("data" in layer for layer in drawn)
    filters = [t["filter"] for layer in drawn for t in layer.get("transform", [])]
    assert sorted(filters) == sorted(["!isValid(datum.reference)"] * 2
                                     + ["isValid(datum.reference)"])
