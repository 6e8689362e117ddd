"""Issue 26, a late failure: a study whose landscapes are all flat (max_prompt_length 0, or a
prior that no prompt moves, such as a coin(0.3) pretraining source) has no row with a
positive gap and paired sd. Its variance plane used to raise after every job had run (and
`--report` failed after it); it now draws a figure that says there is nothing to plot."""

from __future__ import annotations

import json

import pandas as pd

from promptscape.report import figures

STYLE = {"panel_width": 200, "panel_height": 170, "png_scale": 1, "font_size": 12,
         "predictor_colors": {"bayes": "#1b1b1b"}}
TITLE = {"text": "variance plane", "subtitle": "every experiment"}


def flat_prediction(gap=None, paired_sd=None) -> pd.DataFrame:
    """The reliability_prediction aggregate of one flat task: every class optimal, so the
    decomposition has no rival (gap and paired_sd null), and search is always right."""
    rows = [{"experiment": "flat", "predictor": "bayes", "replicate": 0, "task": "coin_0.5",
             "N": n, "gap": gap, "paired_sd": paired_sd, "measured_proportion_correct": 1.0,
             "predicted_proportion_correct": 1.0, "first_n_half": 1, "first_n_ninety": 1}
            for n in (1, 10)]
    frame = pd.DataFrame(rows)
    for column in ("gap", "paired_sd"):
        frame[column] = frame[column].astype("Float64")
    for column in ("first_n_half", "first_n_ninety"):
        frame[column] = frame[column].astype("Int64")
    return frame


def test_a_flat_study_draws_a_variance_plane_that_says_there_is_nothing_to_plot(tmp_path):
    # Fails on the old code: "the variance plane needs a row with a positive gap and paired_sd".
    for frame in (flat_prediction(), flat_prediction(gap=0.0, paired_sd=0.0)):
        chart = figures.variance_plane_chart(frame, style=STYLE, title=TITLE)
        spec = chart.to_dict()
        text = json.dumps(spec)
        assert "Nothing to plot" in text and "max_prompt_length 0" in text
        assert "measured_proportion_correct" not in text  # no empty point layer
    paths = {k: str(tmp_path / f"plane.{k}") for k in ("svg", "png", "html")}
    figures.save(chart, **paths, scale=1)
    assert "Nothing to plot" in (tmp_path / "plane.svg").read_text()
