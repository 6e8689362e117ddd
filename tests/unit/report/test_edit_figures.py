"""The edit, transfer and local-optima figures (issue 28) on small synthetic tables."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from chart_helpers import layers
from promptscape.edits import EDIT_KINDS
from promptscape.report import figures

STYLE = {"panel_width": 120, "panel_height": 90, "png_scale": 1, "font_size": 11,
         "predictor_colors": {"bayes": "#000000", "lstm": "#1f77b4", "transformer": "#d62728"}}
PREDICTORS = ["bayes", "lstm", "transformer"]
TASKS = ["coin_0.7", "coin_0.5"]
IMD = {"coin_0.7": True, "coin_0.5": False}


def edits_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for predictor, task in itertools.product(PREDICTORS, TASKS):
        for kind, spec in EDIT_KINDS.items():
            if task == "coin_0.5" and spec.needs:
                continue  # tied symbols: no rows
            q = np.sort(rng.normal(0, 0.3, 3))
            rows.append(dict(predictor=predictor, replicate=0, experiment="e", task=task,
                             edit_kind=kind, in_meta_distribution=IMD[task],
                             method="exact_counts", edges=20, delta_median=q[1],
                             delta_q25=q[0], delta_q75=q[2], share_improving=rng.random(),
                             near_top_edges=5, share_improving_near_top=0.1, rest_edges=15,
                             share_improving_rest=0.6, share_unresolved=0.3, decided_by="kl_resolution",
                             delta_se_median=0.0, delta_se_max=0.0))
    return pd.DataFrame(rows)


def transfer_table(pretraining: bool = True) -> pd.DataFrame:
    rows = []

    def row(comparison, sp, tp, st, tt, regret, source_experiment="e"):
        return dict(experiment="e", comparison=comparison, source_prompts="optimal_class",
                    source_experiment=source_experiment, target_experiment="e",
                    source_predictor=sp, source_replicate=0, target_predictor=tp,
                    target_replicate=0, source_task=st, target_task=tt, search_N=None,
                    source_count=1, regret=regret, regret_min=regret, regret_max=regret,
                    target_method="exact_counts")

    for task in TASKS:
        for a, b in itertools.product(PREDICTORS, PREDICTORS):
            rows.append(row("predictors", a, b, task, task, 0.0 if a == b else 0.05))
        if pretraining:
            for a, b in itertools.product(PREDICTORS, PREDICTORS):
                rows.append(row("pretraining", a, b, task, task, 0.2, "other"))
    for p in PREDICTORS:
        for s, t in itertools.product(TASKS, TASKS):
            rows.append(row("tasks", p, p, s, t, 0.0 if s == t else 0.3))
    baseline = dict(rows[0], source_prompts="empty", regret=0.4)
    return pd.DataFrame(rows + [baseline])


def optima_table() -> pd.DataFrame:
    rows = []
    for predictor, task in itertools.product(PREDICTORS, TASKS):
        for i, (above, basin) in enumerate([(0.0, 50), (0.01, 10), (0.2, 3)]):
            rows.append(dict(predictor=predictor, replicate=0, experiment="e", task=task,
                             prompt="1" * i, prompt_length=i, kl=0.1 + above,
                             kl_above_optimum=above, optimal=above == 0, plateau=i,
                             basin_size=basin))
    return pd.DataFrame(rows)


def build(name, frame):
    return getattr(figures, name)(frame, tasks=TASKS, imd=IMD, predictors=PREDICTORS,
                                  style=STYLE, title="t")


def test_edits_chart_has_a_column_per_task_and_a_row_per_predictor():
    spec = build("edits_chart", edits_table()).to_dict()
    assert {"row", "column"} <= set(spec["facet"])
    assert spec["facet"]["column"]["field"] == "task_label"
    assert spec["facet"]["row"]["field"] == "predictor"
    drawn = layers(spec["spec"])
    assert len(drawn) == 3 and all("transform" in layer for layer in drawn)
    kinds = drawn[1]["encoding"]["x"]["sort"]
    assert kinds == list(EDIT_KINDS)  # registry order on the axis


def test_transfer_chart_draws_predictor_task_and_pretraining_heat_maps():
    spec = build("transfer_chart", transfer_table()).to_dict()
    assert len(spec["vconcat"]) == 3
    columns = [block["facet"]["column"]["field"] for block in spec["vconcat"]]
    assert columns == ["task_shown", "target", "task_shown"]
    for block in spec["vconcat"]:
        rect, text = layers(block["spec"])
        assert rect["encoding"]["color"]["field"] == "regret"
        assert text["encoding"]["text"]["field"] == "regret"
    # Only the optimal-class rows are drawn (baselines and search rows are not heat cells).
    data = spec["datasets"]
    assert all(r["source_prompts"] == "optimal_class" for rows in data.values() for r in rows)


def test_transfer_chart_without_other_experiments_has_two_blocks():
    spec = build("transfer_chart", transfer_table(pretraining=False)).to_dict()
    assert len(spec["vconcat"]) == 2


def test_local_optima_chart_plots_kl_above_optimum_against_basin_size():
    spec = build("local_optima_chart", optima_table()).to_dict()
    assert spec["facet"]["row"]["field"] == "predictor"
    (points,) = layers(spec["spec"])
    assert points["encoding"]["x"]["field"] == "basin_size"
    assert points["encoding"]["y"]["field"] == "above_plot"
    assert points["encoding"]["x"]["scale"]["type"] == "log"
    rows = next(iter(spec["datasets"].values()))
    assert min(r["above_plot"] for r in rows) == figures.KL_FLOOR  # the global optima


def test_an_svg_does_not_depend_on_the_figures_its_process_drew_before(tmp_path):
    """Vega numbers an SVG's gradients and clip paths with counters global to the process;
    `save` counts each SVG's from the first, so the figure job that draws all of an
    experiment's figures writes the files a process drawing one figure alone writes."""
    chart = build("edits_chart", edits_table())  # its colour legend is a gradient
    for name in ("first", "second"):
        out = tmp_path / name
        figures.save(chart, svg=f"{out}.svg", png=f"{out}.png", html=f"{out}.html", scale=1)
    first = (tmp_path / "first.svg").read_bytes()
    assert b'id="gradient_0"' in first and b"url(#gradient_0)" in first
    assert (tmp_path / "second.svg").read_bytes() == first


def test_svg_ids_are_shifted_to_the_first_and_nothing_else_changes():
    text = ('<path fill="url(#gradient_7)"/><linearGradient id="gradient_7"/>'
            '<radialGradient id="p_gradient_8"/><g clip-path="url(#clip5)"/>'
            '<clipPath id="clip5"/><clipPath id="clip6"/><text>gradient_7 clip5</text>')
    assert figures.renumber_svg_ids(text) == (
        '<path fill="url(#gradient_0)"/><linearGradient id="gradient_0"/>'
        '<radialGradient id="p_gradient_1"/><g clip-path="url(#clip1)"/>'
        '<clipPath id="clip1"/><clipPath id="clip2"/><text>gradient_7 clip5</text>')
    first = '<path fill="url(#gradient_0)"/><g clip-path="url(#clip1)"/>'
    assert figures.renumber_svg_ids(first) == first


def test_an_infinite_median_is_drawn_at_the_edge_and_says_so():
    """Edits to or from impossible prompts give infinite ΔKL medians (the words experiment's
    Bayes predictor: adds_most_probable +inf, removes_most_probable -inf); the figure once
    left those kinds out without a word."""
    table = edits_table()
    up, down = table.index[0], table.index[1]
    table.loc[up, ["delta_median", "delta_q75"]] = np.inf
    table.loc[down, ["delta_median", "delta_q25"]] = -np.inf
    spec = build("edits_chart", table).to_dict()
    rows = pd.DataFrame(spec["datasets"][next(iter(spec["datasets"]))])
    kinds = rows[rows["layer"] == "kind"]
    assert len(kinds) == len(table)  # every kind is drawn
    finite = table[["delta_median", "delta_q25", "delta_q75"]].to_numpy(float)
    edge = np.abs(finite[np.isfinite(finite)]).max()
    drawn = kinds.set_index(["predictor", "task", "edit_kind"])
    first, second = (tuple(table.loc[i, ["predictor", "task", "edit_kind"]]) for i in (up, down))
    assert drawn.loc[first, "delta_median"] > edge and drawn.loc[second, "delta_median"] < -edge
    assert drawn.loc[first, "delta_median_shown"] == "+inf"
    assert drawn.loc[second, "delta_median_shown"] == "-inf"
    assert drawn.loc[first, "median_drawn"] == "infinite, drawn at the edge"
    assert (drawn.drop([first, second])["median_drawn"] == "finite").all()


def _edits_title(methods):
    """The edits figure's title text and y-axis titles as the figures stage makes them."""
    from promptscape.report.catalog import FIGURES

    table = edits_table()
    table["method"] = [methods[i % len(methods)] for i in range(len(table))]
    spec = figures.edits_chart(table, tasks=TASKS, imd=IMD, predictors=PREDICTORS,
                               style=STYLE, title={"text": FIGURES["edits"].headline,
                                                   "subtitle": "experiment e"}).to_dict()
    axes = {layer["encoding"]["y"].get("title") for layer in spec["spec"]["layer"]
            if "title" in layer["encoding"].get("y", {})}
    return spec["title"]["text"], axes


def test_the_edits_title_says_whether_the_delta_is_exact_or_estimated():
    """A Monte Carlo landscape's ΔKL is an estimate on the evaluation set (the words
    experiment's); the title once said "exact ΔKL" on every landscape."""
    text, axes = _edits_title(["monte_carlo"])
    assert "estimated ΔKL" in text and "exact" not in text
    assert axes == {"estimated ΔKL (nats)"}
    text, axes = _edits_title(["exact_counts", "exact_enumeration"])
    assert "exact ΔKL" in text and "estimated" not in text
    assert axes == {"exact ΔKL (nats)"}
    text, _ = _edits_title(["exact_counts", "monte_carlo"])
    assert "exact or estimated" in text
