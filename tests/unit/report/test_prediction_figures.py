"""The prediction figures: the reliability figure with its predicted overlay, the variance
plane and the posterior figure, on small synthetic tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from promptscape.report import figures
from chart_helpers import layers

STYLE = {"panel_width": 200, "panel_height": 170, "png_scale": 1, "font_size": 12,
         "predictor_colors": {"bayes": "#1b1b1b", "lstm": "#d95f02", "transformer": "#7570b3"}}
TASKS = ["coin_0.7", "dice_3"]
IMD = {"coin_0.7": True, "dice_3": False}
PREDICTORS = ["bayes", "lstm", "transformer"]
SIZES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
TITLE = {"text": "a figure", "subtitle": "experiment e"}


def reliability_frames(experiment="e"):
    """The reliability table and its reliability_prediction, for every predictor and task."""
    rel, pred = [], []
    for p, (predictor, task) in enumerate([(pr, t) for pr in PREDICTORS for t in TASKS]):
        gap = None if (predictor, task) == ("transformer", "dice_3") else 0.02 * (p + 1)
        sd = None if gap is None else 0.3 + 0.1 * p
        for n in SIZES:
            measured = min(1.0, 0.3 + 0.1 * p * math.log10(n + 1))
            predicted = min(1.0, measured + 0.03)
            low, high = max(0.0, measured - 0.1), min(1.0, measured + 0.1)
            rel.append({"predictor": predictor, "replicate": 0, "experiment": experiment,
                        "task": task, "N": n, "proportion_correct": measured, "ci_low": low,
                        "ci_high": high, "regret_mean": 0.01 / n})
            exact = predicted if task == "coin_0.7" else None
            pred.append({
                "predictor": predictor, "replicate": 0, "experiment": experiment, "task": task,
                "in_meta_distribution": IMD[task], "N": n, "outcomes": "count_values",
                "num_outcomes": n + 1, "num_classes": 5, "optimal_classes": 1,
                "predicted_proportion_correct": predicted,
                "method": "exact" if exact is not None else "normal",
                "exact_proportion_correct": exact, "normal_proportion_correct": predicted - 0.01,
                "normal_se": 0.002, "simulated_proportion_correct": predicted + 0.005,
                "simulated_se": 0.003, "gap": gap, "paired_sd": sd, "classes_within_2se": 1,
                "first_n_half": 20 if p % 2 else None, "first_n_ninety": None,
                "seeds": 200, "measured_proportion_correct": measured, "ci_low": low,
                "ci_high": high, "inside_interval": True})
    pred = pd.DataFrame(pred)
    for column in ("exact_proportion_correct", "gap", "paired_sd"):
        pred[column] = pred[column].astype("Float64")
    for column in ("first_n_half", "first_n_ninety"):
        pred[column] = pred[column].astype("Int64")
    return pd.DataFrame(rel), pred


def posterior_frames(predictors=("bayes", "lstm")):
    """A binary task (prompts of length <= 3; '01' and '10' tie in KL and q: one class)
    and a ternary one, with the efficiency stage's optimal prompts up to length 64."""
    land, eff = [], []
    for task, V in (("coin_0.7", 2), ("dice_3", 3)):
        prompts = [""] + ["".join(map(str, np.unravel_index(i, (V,) * length)))
                          for length in (1, 2, 3) for i in range(V ** length)]
        for predictor in predictors:
            kls = {}
            for prompt in prompts:
                counts = [prompt.count(str(v)) for v in range(V)]
                q = (np.array(counts) + 1.0) / (len(prompt) + V)  # Laplace's rule
                target = np.full(V, 0.2 / (V - 1))
                target[V - 1] = 0.8
                kl = float(np.sum(target * np.log(target / q))) + 1e-4
                kls[prompt] = kl
                land.append({"predictor": predictor, "replicate": 0, "experiment": "e",
                             "task": task, "prompt": prompt, "prompt_length": len(prompt),
                             "prompt_counts": counts, "method": "exact", "loss": 1.0 + kl,
                             "loss_se": 0.0, "entropy": 1.0, "kl": kl, "kl_se": 0.0,
                             "first_symbol_kl": kl / 3, "first_symbol_prediction": q.tolist(),
                             "resolved": True, "mc_kl": kl, "mc_kl_se": 0.0,
                             "kl_resolution": 1e-13, "below_resolution": False})
            best = min(kls.values())
            order = sorted(kls.values())
            for row in land[-len(prompts):]:
                row["rank"] = order.index(row["kl"])
                row["optimal"] = row["kl"] == best
            for length in (0, 1, 2, 3, 8, 16, 32, 64, 128):
                reached = length <= 64
                eff.append({"predictor": predictor, "replicate": 0, "experiment": "e",
                            "task": task, "prompt_length": length,
                            "optimal_upto_kl": 1e-3 / (1 + length) if reached else None,
                            "optimal_prompt": str(V - 1) * length if reached else None})
    eff = pd.DataFrame(eff)
    eff["optimal_upto_kl"] = eff["optimal_upto_kl"].astype("Float64")
    return {"landscape": pd.DataFrame(land), "efficiency": eff}


def encoded_fields(layer):
    return {channel: enc.get("field") for channel, enc in layer.get("encoding", {}).items()
            if isinstance(enc, dict)}


def datasets(spec):
    return {name: pd.DataFrame(rows) for name, rows in spec.get("datasets", {}).items()}


def data_of(spec, layer):
    return datasets(spec)[layer["data"]["name"]]


def test_reliability_with_the_prediction_overlays_a_dashed_predicted_curve():
    rel, pred = reliability_frames()
    kwargs = dict(tasks=TASKS, imd=IMD, predictors=PREDICTORS, style=STYLE, title=TITLE)
    spec = figures.reliability_chart({"reliability": rel, "reliability_prediction": pred},
                                     **kwargs).to_dict()
    json.dumps(spec)
    predicted = [lay for lay in layers(spec)
                 if encoded_fields(lay).get("y") == "predicted_proportion_correct"]
    # A dashed line (its dash from the `kind` field: the legend) and hollow points.
    assert sorted(lay["mark"]["type"] for lay in predicted) == ["line", "point"]
    (line,) = [lay for lay in predicted if lay["mark"]["type"] == "line"]
    dash = line["encoding"]["strokeDash"]
    assert dash["field"] == "kind" and dash["scale"]["domain"] == ["measured", "predicted"]
    assert dash["scale"]["range"][1] != [1, 0]  # dashed, the measured line solid
    tips = {t["field"] for t in line["encoding"]["tooltip"]}
    assert {"method", "exact_proportion_correct", "normal_proportion_correct",
            "simulated_proportion_correct"} <= tips
    # The null exact sums (normal rows) are nulls in the data, not strings or NaN.
    (frame,) = datasets(spec).values()
    normal = frame[(frame["kind"] == "predicted") & (frame["method"] == "normal")]
    assert len(normal) and normal["exact_proportion_correct"].isna().all()
    assert (frame["kind"] == "measured").sum() == len(rel)


def test_reliability_from_the_table_alone_is_the_figure_it_was():
    rel, _ = reliability_frames()
    spec = figures.reliability_chart(rel, tasks=TASKS, imd=IMD, predictors=PREDICTORS,
                                     style=STYLE, title=TITLE).to_dict()
    assert not any("predicted_proportion_correct" in encoded_fields(lay).values()
                   for lay in layers(spec))
    assert not any("strokeDash" in lay.get("encoding", {}) for lay in layers(spec))
    assert {encoded_fields(lay)["y"] for lay in layers(spec)} == {"ci_low", "proportion_correct"}


def test_variance_plane_drops_null_gaps_and_colours_by_the_largest_n():
    _, pred = reliability_frames("e1")
    _, other = reliability_frames("e2")
    other.loc[other["N"] == 1000, "measured_proportion_correct"] = 0.123
    other.loc[other["task"] == "coin_0.7", "gap"] = 0.0  # no rival resolved: dropped too
    both = pd.concat([pred, other], ignore_index=True)
    spec = figures.variance_plane_chart(both, style=STYLE, title=TITLE).to_dict()
    json.dumps(spec)
    (points,) = [lay for lay in layers(spec) if encoded_fields(lay).get("shape") == "predictor"]
    assert points["encoding"]["color"]["field"] == "measured_proportion_correct"
    assert points["encoding"]["color"]["scale"]["domain"] == [0, 1]
    assert points["encoding"]["x"]["scale"]["type"] == "log"
    data = data_of(spec, points)
    # e1: 3 predictors x 2 tasks less the null-gap transformer on dice_3; e2: dice_3 only.
    assert len(data) == 5 + 2
    assert not ((data["predictor"] == "transformer") & (data["task"] == "dice_3")).any()
    assert set(data.loc[data["experiment"] == "e2", "task"]) == {"dice_3"}
    assert (data["N"] == 1000).all()
    assert (data.loc[data["experiment"] == "e2", "measured_proportion_correct"] == 0.123).all()
    largest = pred[pred["N"] == 1000].set_index(["predictor", "task"])
    for _, row in data[data["experiment"] == "e1"].iterrows():
        assert row["measured_proportion_correct"] == pytest.approx(
            largest.loc[(row["predictor"], row["task"]), "measured_proportion_correct"])
    # The resolution lines: paired_sd = gap sqrt(N) / 2 across the data's x range.
    (rules,) = [lay for lay in layers(spec) if lay["mark"]["type"] == "line"]
    lines = data_of(spec, rules)
    assert sorted(lines["N"].unique()) == [1, 10, 100, 1000]
    assert np.allclose(lines["paired_sd"], lines["gap"] * np.sqrt(lines["N"]) / 2)
    assert lines["gap"].min() < data["gap"].min() and lines["gap"].max() > data["gap"].max()
    (text,) = [lay for lay in layers(spec) if lay["mark"]["type"] == "text"]
    assert set(data_of(spec, text)["label"]) == {"N = 1", "N = 10", "N = 100", "N = 1000"}


def test_posterior_keeps_a_point_per_class_and_the_long_prompt_rule():
    frames = posterior_frames()
    spec = figures.posterior_chart(frames, tasks=TASKS, imd=IMD, predictors=PREDICTORS,
                                   style=STYLE, title=TITLE).to_dict()
    json.dumps(spec)
    panels = [p for row in spec["vconcat"] for p in row["hconcat"]]
    assert [p["title"] for p in panels] == ["coin_0.7 (IMD): v* = 1", "dice_3 (OOMD): v* = 2"]
    land = frames["landscape"]
    for panel, (task, V) in zip(panels, (("coin_0.7", 2), ("dice_3", 3))):
        every, optimal, label, rule, rule_text = panel["layer"]
        points = data_of(spec, every)
        # Prompts of equal KL and q(v*) are one class: a point each, its first prompt.
        classes = land[(land["task"] == task) & (land["predictor"] == "bayes")].copy()
        q = classes["first_symbol_prediction"].map(lambda p: p[V - 1])
        classes["key"] = list(zip(classes["kl"].round(10), q.round(10)))
        assert len(points) == classes["key"].nunique() < len(classes)
        assert list(points["prompt"]) == list(classes.drop_duplicates("key")["prompt"])
        # Binary: '', '01' and '10' (q = 1/2) are one class, shown as its first, ''.
        assert "" in set(points["prompt"])
        assert not {"01", "10"} & set(points["prompt"]) or V != 2
        assert encoded_fields(every)["color"] == "prompt_length"
        assert every["encoding"]["y"]["scale"]["type"] == "log"
        assert list(data_of(spec, optimal)["prompt"]) == [str(V - 1) * 3]
        assert label["mark"]["type"] == "text"
        # The dashed rule at the best KL of the longest reached length (64, not 128).
        assert rule["mark"]["type"] == "rule" and rule["mark"]["strokeDash"]
        assert data_of(spec, rule)["kl_plot"].item() == pytest.approx(1e-3 / 65)
        text = data_of(spec, rule_text)["label"].item()
        assert text.startswith("best with ≤ 64 symbols: ")
        assert text.endswith(f"\n(prompt {str(V - 1) * 12}…)")
    # Binary: x is q(1 | prompt); under Laplace's rule the empty prompt has q = 1/2.
    first = data_of(spec, panels[0]["layer"][0]).set_index("prompt")
    assert first.loc["", "q"] == pytest.approx(0.5) and first.loc["11", "q"] == pytest.approx(0.75)


def test_posterior_needs_the_bayes_predictor():
    frames = posterior_frames(predictors=("lstm",))
    with pytest.raises(ValueError, match="bayes"):
        figures.posterior_chart(frames, tasks=TASKS, imd=IMD, predictors=PREDICTORS,
                                style=STYLE, title=TITLE)


def charts():
    rel, pred = reliability_frames()
    kwargs = dict(tasks=TASKS, imd=IMD, predictors=PREDICTORS, style=STYLE, title=TITLE)
    return {
        "reliability": figures.reliability_chart(
            {"reliability": rel, "reliability_prediction": pred}, **kwargs),
        "variance_plane": figures.variance_plane_chart(pred, style=STYLE, title=TITLE),
        "posterior": figures.posterior_chart(posterior_frames(), **kwargs),
    }


@pytest.mark.parametrize("name", ["reliability", "variance_plane", "posterior"])
def test_save_writes_every_format(tmp_path, name):
    chart = charts()[name]
    paths = {kind: tmp_path / f"{name}.{kind}" for kind in ("svg", "png", "html")}
    figures.save(chart, **{kind: str(path) for kind, path in paths.items()}, scale=1)
    for path in paths.values():
        assert path.stat().st_size > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_html_script_bundle_is_built_once_and_read_back(tmp_path, monkeypatch):
    """A figure's HTML inlines vl-convert's script bundle; the first figure builds it into
    the cache folder, later ones (another process) read it back, byte for byte the same
    HTML, and vl-convert's own function is left as it was."""
    import vl_convert

    monkeypatch.setenv("PROMPTSCAPE_CACHE_DIR", str(tmp_path / "cache"))
    chart = charts()["variance_plane"]
    build = vl_convert.javascript_bundle

    def save(name):
        paths = {kind: str(tmp_path / f"{name}.{kind}") for kind in ("svg", "png", "html")}
        figures.save(chart, **paths, scale=1)
        return (tmp_path / f"{name}.html").read_text()

    first = save("first")
    assert vl_convert.javascript_bundle is build
    cached = list((tmp_path / "cache").glob("vl-convert-*-bundle.js"))
    assert len(cached) == 1 and cached[0].read_text() in first

    def refuse(*args, **kwargs):
        raise AssertionError("built again although it is cached")

    monkeypatch.setattr(vl_convert, "javascript_bundle", refuse)
    assert save("second") == first
    assert vl_convert.javascript_bundle is refuse
