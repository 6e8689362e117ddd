"""Figures as Altair charts built from the aggregate and landscape tables.

Chart builders return `alt.Chart` objects (tests inspect ``to_dict()``); `save` writes each
chart as SVG, PNG and standalone HTML (Vega scripts inlined, no CDN). Every interval shown
is computed in pandas (Wilson intervals, standard errors), never by Altair's bootstrap, so
figures are reproducible.
"""

from __future__ import annotations

import os

import altair as alt
import numpy as np
import pandas as pd

# Log axes cannot show KL <= 0 (possible only for estimates); such values sit on this floor.
KL_FLOOR = 1e-6


def task_labels(frame: pd.DataFrame, tasks: list[str], imd: dict) -> tuple[pd.Series, list[str]]:
    """'coin_0.7 (IMD)' style labels and their order (the config's task order)."""
    label = {t: f"{t} ({'IMD' if imd[t] else 'OOMD'})" for t in tasks}
    return frame["task"].map(label), [label[t] for t in tasks]


def _predictor_scale(style: dict, predictors: list[str]) -> alt.Scale:
    colors = style["predictor_colors"]
    return alt.Scale(domain=predictors, range=[colors[p] for p in predictors])


def _facet(chart, order, columns, style):
    return chart.facet(
        facet=alt.Facet("task_label:N", sort=order, title=None,
                        header=alt.Header(labelFontSize=style["font_size"] + 1,
                                          labelFontWeight="bold")),
        columns=columns,
    )


def _configure(chart, style, title):
    return (chart.properties(title=title)
            .configure_axis(labelFontSize=style["font_size"], titleFontSize=style["font_size"])
            .configure_legend(labelFontSize=style["font_size"], titleFontSize=style["font_size"])
            .configure_title(fontSize=style["font_size"] + 3, anchor="start"))


def reliability_chart(rel: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Proportion correct against N (log axis) with Wilson 95% intervals, a panel per task."""
    data = rel.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    base = alt.Chart().encode(
        x=alt.X("N:Q", scale=alt.Scale(type="log"), title="dataset size N (sequences)",
                axis=alt.Axis(values=sorted(int(n) for n in data["N"].unique()),
                              labelOverlap="greedy", labelAngle=0)),
        color=alt.Color("predictor:N", scale=_predictor_scale(style, predictors), title="predictor"),
    )
    band = base.mark_rule(strokeWidth=1.5, opacity=0.6).encode(
        y=alt.Y("ci_low:Q", title="proportion correct", scale=alt.Scale(domain=[0, 1])),
        y2="ci_high:Q")
    line = base.mark_line(point=True).encode(
        y="proportion_correct:Q",
        tooltip=["predictor", "task", "N", alt.Tooltip("proportion_correct:Q", format=".2f"),
                 alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
                 alt.Tooltip("regret_mean:Q", format=".2e")])
    layered = alt.layer(band, line, data=data).properties(
        width=style["panel_width"], height=style["panel_height"])
    return _configure(_facet(layered, order, len(tasks), style), style, title)


def landscape_chart(land: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """KL (log axis) against dense rank for every prompt; the optimal class marked."""
    data = land.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    data["kl_plot"] = np.maximum(data["kl"], KL_FLOOR)
    data["kl_low"] = np.maximum(data["kl"] - 2 * data["kl_se"], KL_FLOOR)
    data["kl_high"] = np.maximum(data["kl"] + 2 * data["kl_se"], KL_FLOOR)
    data["prompt_shown"] = data["prompt"].where(data["prompt"] != "", "∅")
    data["class"] = np.where(data["optimal"], "optimal class S*", "other prompts")
    color = alt.Color("predictor:N", scale=_predictor_scale(style, predictors), title="predictor")
    base = alt.Chart().encode(
        x=alt.X("rank:Q", title="dense rank of L(s) (0 = optimal class)"),
        y=alt.Y("kl_plot:Q", scale=alt.Scale(type="log"), title="KL(task ‖ prompted) (nats)"),
        color=color)
    points = base.mark_point(filled=True, size=28, opacity=0.75).encode(
        shape=alt.Shape("class:N", scale=alt.Scale(domain=["optimal class S*", "other prompts"],
                                                   range=["diamond", "circle"]), title=None),
        size=alt.Size("class:N", scale=alt.Scale(domain=["optimal class S*", "other prompts"],
                                                 range=[140, 22]), legend=None),
        tooltip=["predictor", "prompt_shown", "rank", alt.Tooltip("kl:Q", format=".3e"),
                 alt.Tooltip("kl_se:Q", format=".1e"), "method"])
    errors = base.mark_rule(opacity=0.5).encode(y="kl_low:Q", y2="kl_high:Q")
    best = (alt.Chart().transform_filter("datum.optimal").transform_window(
                row="row_number()", groupby=["task_label", "predictor"])
            .transform_filter("datum.row == 1")
            .mark_text(align="left", dx=8, dy=-8, fontSize=style["font_size"])
            .encode(x="rank:Q", y="kl_plot:Q", text="prompt_shown:N", color=color))
    layered = alt.layer(errors, points, best, data=data).properties(
        width=style["panel_width"], height=style["panel_height"])
    return _configure(_facet(layered, order, len(tasks), style), style, title)


def choices_chart(cho: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Frequency of each chosen prompt per N (rows: prompts by rank); optimal class outlined
    and starred."""
    data = cho.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    shown = data["prompt"].where(data["prompt"] != "", "∅")
    data["prompt_label"] = shown + np.where(data["optimal"], " ★", "")
    data = data.sort_values(["rank", "prompt_length", "prompt"])
    # A fixed height (14 px a row of the fullest panel): Vega-Lite's step sizing fails to
    # render with faceted, independent y scales and conditional strokes.
    rows = int(data.groupby(["predictor", "task"])["prompt"].nunique().max())
    rects = alt.Chart(data).mark_rect().encode(
        x=alt.X("N:O", sort=sorted(data["N"].unique()), title="dataset size N"),
        y=alt.Y("prompt_label:N", sort=alt.EncodingSortField("rank", op="min"),
                title="chosen prompt (by rank; ★ optimal)"),
        color=alt.Color("frequency:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                        title="frequency"),
        stroke=alt.condition("datum.optimal", alt.value("#d62728"), alt.value(None)),
        strokeWidth=alt.condition("datum.optimal", alt.value(1.5), alt.value(0)),
        tooltip=["predictor", "task", "N", "prompt_label", "count",
                 alt.Tooltip("frequency:Q", format=".2f"), "rank", alt.Tooltip("kl:Q", format=".3e")],
    ).properties(width=style["panel_width"], height=max(60, 14 * rows))
    chart = rects.facet(
        column=alt.Column("task_label:N", sort=order, title=None,
                          header=alt.Header(labelFontSize=style["font_size"] + 1, labelFontWeight="bold")),
        row=alt.Row("predictor:N", sort=predictors, title=None),
    ).resolve_scale(y="independent")
    return _configure(chart, style, title)


def save(chart: alt.Chart, *, svg: str, png: str, html: str, scale: float) -> None:
    """Write the chart as SVG, PNG (at `scale`) and standalone HTML with inlined scripts."""
    for path in (svg, png, html):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    chart.save(svg)
    chart.save(png, scale_factor=scale)
    chart.save(html, inline=True)
