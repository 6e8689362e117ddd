"""Figures as Altair charts built from the aggregate and landscape tables.

Chart builders return `alt.Chart` objects (tests inspect ``to_dict()``); `save` writes each
chart as SVG, PNG and standalone HTML (Vega scripts inlined, no CDN). Every interval shown
is computed in pandas (Wilson intervals, standard errors), never by Altair's bootstrap, so
figures are reproducible.
"""

from __future__ import annotations

import contextlib
import os
import re

import altair as alt
import numpy as np
import pandas as pd

from promptscape import files
from promptscape import prompts as prompts_lib

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


def _n_axis(data: pd.DataFrame) -> alt.X:
    """The dataset-size axis (log): a tick at every N of the grid, a label at the powers of
    ten among them (labels at 100 and 200 would overlap in a panel)."""
    sizes = sorted(int(n) for n in data["N"].unique())
    decades = [n for n in sizes if 10 ** round(np.log10(n)) == n] or sizes
    return alt.X("N:Q", scale=alt.Scale(type="log"), title="dataset size N (sequences)",
                 axis=alt.Axis(values=sizes, labelAngle=0, labelOverlap="greedy",
                               labelExpr=f"indexof({decades}, datum.value) >= 0 ? "
                                         f"datum.label : ''"))


def reliability_chart(rel, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Proportion correct against N (log axis) with Wilson 95% intervals, a panel per task.

    `rel` is the reliability table, or a dict of it ("reliability") and the experiment's
    "reliability_prediction": then each predictor's predicted proportion correct is drawn
    dashed over its measured one (solid, with its Wilson rules)."""
    prediction = None
    if isinstance(rel, dict):
        prediction = rel.get("reliability_prediction")
        rel = rel["reliability"]
    data = rel.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    base = alt.Chart().encode(
        x=_n_axis(data),
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
    if prediction is None:
        layered = alt.layer(band, line, data=data)
    else:
        layered = _with_prediction(data, prediction, band, line, base, tasks, imd)
    layered = layered.properties(width=style["panel_width"], height=style["panel_height"])
    return _configure(_facet(layered, order, len(tasks), style), style, title)


# The reliability figure's two curves: legend labels of the `kind` field's values.
RELIABILITY_KINDS = {"measured": "measured (rules: Wilson 95%)",
                     "predicted": "predicted (theory)"}


def _with_prediction(data, prediction, band, line, base, tasks, imd):
    """The reliability panels' layers with the predicted proportion correct (dashed): both
    tables in one frame (a faceted layer needs one data source), told apart by `kind`."""
    columns = ["predictor", "task", "N", "predicted_proportion_correct", "method",
               "exact_proportion_correct", "normal_proportion_correct",
               "simulated_proportion_correct"]
    pred = prediction[columns].copy()
    for column in columns[3:]:
        if column != "method":
            pred[column] = pred[column].astype(float)  # nullable: NA to NaN (null in JSON)
    pred["task_label"], _ = task_labels(pred, tasks, imd)
    combined = pd.concat([data.assign(kind="measured"), pred.assign(kind="predicted")],
                         ignore_index=True)
    kinds = list(RELIABILITY_KINDS)
    labels = " : ".join(f"datum.label == '{k}' ? '{v}'" for k, v in RELIABILITY_KINDS.items())
    dash = alt.StrokeDash("kind:N", title="proportion correct",
                          scale=alt.Scale(domain=kinds, range=[[1, 0], [5, 3]]),
                          legend=alt.Legend(labelExpr=f"{labels} : datum.label",
                                            labelLimit=400, symbolType="stroke",
                                            symbolStrokeColor="#444", symbolStrokeWidth=2,
                                            symbolSize=400))
    # The points are layers of their own (no strokeDash): a line's point overlay would turn
    # the dash legend's symbols into invisible filled points.
    measured, predicted = "datum.kind == 'measured'", "datum.kind == 'predicted'"
    measured_line = base.mark_line().encode(y="proportion_correct:Q", strokeDash=dash)
    measured_points = line.mark_point(filled=True, opacity=1)
    tooltip = ["predictor", "task", "N",
               alt.Tooltip("predicted_proportion_correct:Q", format=".3f"), "method",
               alt.Tooltip("exact_proportion_correct:Q", format=".3f"),
               alt.Tooltip("normal_proportion_correct:Q", format=".3f"),
               alt.Tooltip("simulated_proportion_correct:Q", format=".3f")]
    predicted_line = base.mark_line(strokeWidth=1.8).encode(
        y="predicted_proportion_correct:Q", strokeDash=dash, tooltip=tooltip)
    predicted_points = base.mark_point(filled=False, size=16, fill="white", opacity=1).encode(
        y="predicted_proportion_correct:Q", tooltip=tooltip)
    return alt.layer(band.transform_filter(measured),
                     measured_line.transform_filter(measured),
                     measured_points.transform_filter(measured),
                     predicted_line.transform_filter(predicted),
                     predicted_points.transform_filter(predicted),
                     data=combined)


def replicates_chart(rel: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Proportion correct against N for every trained replicate of each network (thin
    lines), the range across a network's replicates (a band), and the Bayes predictor with
    its Wilson 95% interval: is a network's failure its family's or one training run's?"""
    data = rel.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    data["unit"] = data["predictor"] + " r" + data["replicate"].astype(str)
    spread = (data.groupby(["predictor", "task_label", "N"], as_index=False)
              .agg(low=("proportion_correct", "min"), high=("proportion_correct", "max"),
                   replicates=("replicate", "nunique")))
    x = _n_axis(data)
    color = alt.Color("predictor:N", scale=_predictor_scale(style, predictors), title="predictor",
                      legend=alt.Legend(symbolOpacity=1))
    y = alt.Y("proportion_correct:Q", title="proportion correct", scale=alt.Scale(domain=[0, 1]))
    band = alt.Chart(spread).mark_area(opacity=0.18).encode(
        x=x, y=alt.Y("low:Q", title="proportion correct", scale=alt.Scale(domain=[0, 1])),
        y2="high:Q", color=color,
        tooltip=["predictor", "N", "replicates", alt.Tooltip("low:Q", format=".2f"),
                 alt.Tooltip("high:Q", format=".2f")])
    lines = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=18), strokeWidth=1.2,
                                      opacity=0.8).encode(
        x=x, y=y, color=color, detail="unit:N",
        tooltip=["predictor", "replicate", "task", "N",
                 alt.Tooltip("proportion_correct:Q", format=".2f"),
                 alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f")])
    bayes = data[data["predictor"] == "bayes"]
    interval = alt.Chart(bayes).mark_rule(strokeWidth=1.5, opacity=0.6).encode(
        x=x, y=alt.Y("ci_low:Q", title="proportion correct", scale=alt.Scale(domain=[0, 1])),
        y2="ci_high:Q", color=color)
    # The layers hold different tables (range, Bayes, every replicate), so the panels are
    # filtered per task and concatenated rather than faceted.
    panels = []
    for label in order:
        panel = alt.layer(
            band.transform_filter(alt.datum.task_label == label),
            interval.transform_filter(alt.datum.task_label == label),
            lines.transform_filter(alt.datum.task_label == label),
        ).properties(width=style["panel_width"], height=style["panel_height"], title=label)
        panels.append(panel)
    rows = [alt.hconcat(*panels[i:i + 4]) for i in range(0, len(panels), 4)]
    return _configure(alt.vconcat(*rows), style, title)


# The dataset-selection methods' colours and labels (promptscape.selection), in legend order.
SELECTION_STYLE = {
    "random": ("#444444", "random: D_N drawn from the task"),
    "high_variance": ("#d55e00", "high_variance: the N of the pool that vary most"),
    "high_variance_weighted": ("#0072b2", "high_variance_weighted: Horvitz-Thompson"),
    "pool": ("#999999", "pool: all P pool sequences at every N (the ceiling)"),
}
REGRET_FLOOR = 1e-6


def selection_chart(rel: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Proportion correct (Wilson 95% rules) and mean regret (log axis, interquartile
    rules) against N for each dataset-selection method: a column per task, a row per
    predictor."""
    data = rel.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    methods = [m for m in SELECTION_STYLE if m in set(data["selection"])]
    methods += sorted(set(data["selection"]) - set(methods))
    label = {m: SELECTION_STYLE.get(m, ("#000000", m))[1] for m in methods}
    data["method"] = data["selection"].map(label)
    for column in ("regret_mean", "regret_q25", "regret_q75"):
        data[f"{column}_plot"] = np.maximum(data[column], REGRET_FLOOR)
    color = alt.Color("method:N", title="dataset selection",
                      scale=alt.Scale(domain=[label[m] for m in methods],
                                      range=[SELECTION_STYLE.get(m, ("#000000",))[0]
                                             for m in methods]),
                      legend=alt.Legend(labelLimit=500, orient="bottom", columns=2))
    x = _n_axis(data)
    tooltip = ["predictor", "task", "selection", "N", "seeds",
               alt.Tooltip("proportion_correct:Q", format=".2f"),
               alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
               alt.Tooltip("regret_mean:Q", format=".2e")]
    base = alt.Chart().encode(x=x, color=color)
    correct = alt.layer(
        base.mark_rule(strokeWidth=1.5, opacity=0.55).encode(
            y=alt.Y("ci_low:Q", title="proportion correct", scale=alt.Scale(domain=[0, 1])),
            y2="ci_high:Q"),
        base.mark_line(point=True).encode(y="proportion_correct:Q", tooltip=tooltip),
        data=data)
    low = float(data[["regret_mean_plot", "regret_q25_plot"]].to_numpy().min())
    high = float(data[["regret_mean_plot", "regret_q75_plot"]].to_numpy().max())
    decades = [10.0**k for k in range(int(np.floor(np.log10(low))),
                                      max(int(np.ceil(np.log10(high))),
                                          int(np.floor(np.log10(low))) + 1) + 1)]
    step = max(1, len(decades) // 4)  # at most about five labelled decades
    regret_axis = alt.Axis(values=decades[::step], format="~e")
    regret_scale = alt.Scale(type="log", domain=[decades[0], decades[-1]])
    regret_title = f"mean regret (nats; floor {REGRET_FLOOR:g})"
    y_regret = alt.Y("regret_mean_plot:Q", scale=regret_scale, axis=regret_axis,
                     title=regret_title)
    regret = alt.layer(
        base.mark_rule(strokeWidth=1.5, opacity=0.4).encode(
            y=alt.Y("regret_q25_plot:Q", scale=regret_scale, axis=regret_axis,
                    title=regret_title),
            y2="regret_q75_plot:Q"),
        base.mark_line(point=True, strokeDash=[4, 2]).encode(y=y_regret, tooltip=tooltip),
        data=data)
    header = alt.Header(labelFontSize=style["font_size"] + 1, labelFontWeight="bold")

    def panels(chart, what):
        return chart.properties(width=style["panel_width"], height=style["panel_height"]).facet(
            column=alt.Column("task_label:N", sort=order, title=None, header=header),
            row=alt.Row("predictor:N", sort=predictors, header=header,
                        title=f"{what} · predictor"))

    chart = alt.vconcat(panels(correct, "proportion correct (rules: Wilson 95%)"),
                        panels(regret, "mean regret (rules: 25-75%)"))
    return _configure(chart, style, title)


# The prompt-search strategies' colours and labels (promptscape.strategies), in legend order;
# a strategy not named here is drawn black under its own name.
STRATEGY_STYLE = {
    "exhaustive": ("#7f7f7f", "exhaustive: all P prompts (the ceiling: dashed rule; diamond "
                              "at budget P)"),
    "random": ("#e69f00", "random: uniform without replacement"),
    "beam": ("#0072b2", "beam: extend symbol by symbol, keep the best"),
    "hill_climb": ("#009e73", "hill_climb: steepest descent, restarts"),
    "annealing": ("#cc79a7", "annealing: simulated annealing"),
    "evolutionary": ("#d55e00", "evolutionary: (mu + lambda)"),
    "gradient": ("#56b4e9", "gradient: greedy coordinate gradient (GCG)"),
    "surrogate": ("#999999", "surrogate: Bayes predictor of the read-back prior (budget: "
                             "its probe queries)"),
}
# The legend label of random search's exact found-best probability (strategies_chart).
RANDOM_THEORY = "random, exact: 1 − C(P−m, B) / C(P, B)"
# Strategies at one budget are spread by up to this many decades either side on the log
# budget axis, so that their interval rules do not hide one another.
STRATEGY_DODGE = 0.04


def _log_decades(values: np.ndarray) -> list[float]:
    """The powers of ten spanning the positive finite `values` (at least two; NaN left out)."""
    low = int(np.floor(np.log10(float(np.nanmin(values)))))
    high = max(int(np.ceil(np.log10(float(np.nanmax(values))))), low + 1)
    return [10.0**k for k in range(low, high + 1)]


def strategies_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style,
                     title) -> alt.Chart:
    """Prompt-search strategies against their budget (evaluations, log axis), a column per
    (task, N) and a row per predictor: proportion correct (Wilson 95% rules), mean regret
    (log axis, interquartile rules) and the proportion of datasets on which the strategy
    found the empirical optimum (Wilson 95% rules), a colour per strategy. Exhaustive search
    is the ceiling: a dashed rule across the panel at its value (its Wilson interval shaded
    in the first block), and a diamond at its cost, budget P. Over random search's found-best
    proportion, a thin black dashed line gives its exact expectation, the mean over seeds of
    1 - C(P - m, B) / C(P, B). Exhaustive search always finds the empirical optimum, so the
    third block leaves it out. The searched strategies at one budget are spread a little
    along the budget axis (at most `STRATEGY_DODGE` decades; random's expectation with
    random's points), so that their interval rules stay apart; the tooltips give the
    budget itself."""
    data = frame.copy()
    # Columns: the config's tasks, each at every N (so that a long grid stays wide rather
    # than tall); rows: predictors in the config's order (any other after, by name).
    labels, task_order = task_labels(data, tasks, imd)
    sizes = sorted(int(n) for n in data["N"].unique())
    data["column_label"] = labels + " · N=" + data["N"].astype(int).astype(str)
    order = [f"{t} · N={n}" for t in task_order for n in sizes]
    rank = {p: i for i, p in enumerate(predictors)}
    rows = sorted(set(data["predictor"]), key=lambda p: (rank.get(p, len(rank)), p))
    present = set(data["strategy"])
    names = [s for s in STRATEGY_STYLE if s in present] + sorted(present - set(STRATEGY_STYLE))
    label = {s: STRATEGY_STYLE.get(s, ("#000000", s))[1] for s in names}
    data["strategy_label"] = data["strategy"].map(label)
    searched = [s for s in names if s != "exhaustive"]
    offset = {s: STRATEGY_DODGE * (2 * i / (len(searched) - 1) - 1) if len(searched) > 1 else 0.0
              for i, s in enumerate(searched)}
    data["budget_plot"] = data["budget"] * 10.0 ** data["strategy"].map(offset).fillna(0.0)
    data["expected_found_best"] = data["expected_found_best"].astype(float)  # NA to NaN
    regret_columns = ("regret_mean", "regret_q25", "regret_q75")
    for column in regret_columns:
        data[f"{column}_plot"] = np.maximum(data[column].astype(float), REGRET_FLOOR)
    # An inf regret (a strategy that chose a prompt its predictor calls impossible, KL = inf)
    # is no point on a log axis: drawn at INFINITE_LIFT x the chart's largest finite regret,
    # said in the subtitle; no inf reaches Vega (its tooltip value is left empty).
    plotted = data[[f"{c}_plot" for c in regret_columns]].to_numpy(float)
    infinite = np.isinf(plotted)
    infinite_note = None
    if infinite.any():
        finite = plotted[np.isfinite(plotted)]
        top = float(finite.max()) if finite.size else REGRET_FLOOR
        for i, column in enumerate(regret_columns):
            data[f"{column}_plot"] = data[f"{column}_plot"].where(~infinite[:, i],
                                                                  top * INFINITE_LIFT)
            data[column] = data[column].astype(float).where(~infinite[:, i], np.nan)
        infinite_note = (f"regret = ∞ (a strategy chose a prompt its predictor calls "
                         f"impossible) drawn at {INFINITE_LIFT:g} x the largest finite "
                         f"regret: {int(infinite[:, 0].sum()):,} of {len(data):,} mean "
                         f"regrets, {int(infinite[:, 1:].any(axis=1).sum()):,} quartile "
                         "ranges")

    color = alt.Color("strategy_label:N", title="search strategy",
                      scale=alt.Scale(domain=[label[s] for s in names],
                                      range=[STRATEGY_STYLE.get(s, ("#000000",))[0]
                                             for s in names]),
                      legend=alt.Legend(labelLimit=500, orient="bottom", columns=2,
                                        symbolType="stroke", symbolStrokeWidth=3,
                                        symbolOpacity=1))
    budgets = sorted(int(b) for b in data["budget"].unique())
    decades = [b for b in budgets if 10 ** round(np.log10(b)) == b] or budgets
    spread = 10.0 ** (STRATEGY_DODGE + 0.08)
    x = alt.X("budget_plot:Q", title="budget (evaluations)",
              scale=alt.Scale(type="log", nice=False,
                              domain=[budgets[0] / spread, budgets[-1] * spread]),
              axis=alt.Axis(values=budgets, labelAngle=0, labelOverlap="greedy",
                            labelExpr=f"indexof({decades}, datum.value) >= 0 ? "
                                      f"datum.label : ''"))
    tooltip = ["predictor", "task", "N", "strategy", "budget",
               alt.Tooltip("evaluations_mean:Q", format=".1f"), "seeds",
               alt.Tooltip("proportion_correct:Q", format=".2f"),
               alt.Tooltip("ci_low:Q", format=".2f"), alt.Tooltip("ci_high:Q", format=".2f"),
               alt.Tooltip("proportion_found_best:Q", format=".2f"),
               alt.Tooltip("expected_found_best:Q", format=".3f"),
               alt.Tooltip("regret_mean:Q", format=".2e"),
               alt.Tooltip("regret_median:Q", format=".2e"),
               "search_error", "estimation_error", "both_errors"]
    exhaustive, others = "datum.strategy == 'exhaustive'", "datum.strategy != 'exhaustive'"
    base = alt.Chart().encode(color=color)

    def block(y, low, high, title, scale, axis=None, ceiling=True, band=False):
        """A block's layers: the searched strategies' interval rules and lines, and (if
        `ceiling`) exhaustive search's dashed rule (its interval shaded if `band`) and its
        diamond at budget P."""
        def enc(field):
            return alt.Y(f"{field}:Q", title=title, scale=scale,
                         **({} if axis is None else {"axis": axis}))
        layers = []
        if ceiling and band:
            layers.append(base.mark_rect(opacity=0.12).encode(y=enc(low), y2=f"{high}:Q")
                          .transform_filter(exhaustive))
        if ceiling:
            layers += [
                base.mark_rule(strokeDash=[6, 4], strokeWidth=1.5).encode(y=enc(y))
                .transform_filter(exhaustive),
                base.mark_point(shape="diamond", filled=True, size=60, opacity=1).encode(
                    x=x, y=enc(y), tooltip=tooltip).transform_filter(exhaustive)]
        layers += [
            base.mark_rule(strokeWidth=1.5, opacity=0.55).encode(x=x, y=enc(low),
                                                                 y2=f"{high}:Q")
            .transform_filter(others),
            base.mark_line(point=alt.OverlayMarkDef(size=24, filled=True), strokeWidth=1.6)
            .encode(x=x, y=enc(y), detail="strategy:N", tooltip=tooltip)
            .transform_filter(others)]
        return layers

    unit = alt.Scale(domain=[0, 1])
    correct = block("proportion_correct", "ci_low", "ci_high", "proportion correct", unit,
                    band=True)
    regret_values = data[["regret_mean_plot", "regret_q25_plot",
                          "regret_q75_plot"]].to_numpy(float)
    regret_decades = _log_decades(regret_values)
    step = max(1, len(regret_decades) // 4)  # at most about five labelled decades
    regret = block("regret_mean_plot", "regret_q25_plot", "regret_q75_plot",
                   "mean regret (nats)",
                   alt.Scale(type="log", domain=[regret_decades[0], regret_decades[-1]]),
                   axis=alt.Axis(values=regret_decades[::step], format="~e"))
    found_title = "proportion found best"
    found = block("proportion_found_best", "found_best_ci_low", "found_best_ci_high",
                  found_title, unit, ceiling=False)
    theory = alt.StrokeDash("theory:N", title="expected found best",
                            scale=alt.Scale(domain=[RANDOM_THEORY], range=[[4, 3]]),
                            legend=alt.Legend(labelLimit=500, orient="bottom",
                                              symbolType="stroke", symbolStrokeColor="black",
                                              symbolStrokeWidth=1.5, symbolSize=400))
    found.append(
        alt.Chart().transform_filter(
            "datum.strategy == 'random' && isValid(datum.expected_found_best)")
        .transform_calculate(theory=f"'{RANDOM_THEORY}'")
        .mark_line(color="black", strokeWidth=1.1, opacity=0.9)
        .encode(x=x, y=alt.Y("expected_found_best:Q", scale=unit, title=found_title),
                strokeDash=theory,
                tooltip=["predictor", "task", "N", "budget",
                         alt.Tooltip("expected_found_best:Q", format=".3f"),
                         alt.Tooltip("proportion_found_best:Q", format=".2f")]))
    header = alt.Header(labelFontSize=style["font_size"] + 1, labelFontWeight="bold")
    row_header = alt.Header(labelFontSize=style["font_size"], labelFontWeight="bold",
                            labelAngle=0, labelAlign="left", titleFontSize=style["font_size"])

    def panels(layers, what):
        return alt.layer(*layers, data=data).properties(
            width=style["panel_width"], height=style["panel_height"]).facet(
            column=alt.Column("column_label:N", sort=order, title=None, header=header),
            row=alt.Row("predictor:N", sort=rows, header=row_header, title=what))

    chart = alt.vconcat(panels(correct, "proportion correct (rules: Wilson 95%)"),
                        panels(regret, f"mean regret (log axis, floor "
                                       f"1e{int(np.log10(REGRET_FLOOR))}; rules: 25–75%)"),
                        panels(found, "found the empirical optimum (rules: Wilson 95%)"))
    if "ground_truth" in frame and (frame["ground_truth"] == "best_known").any():
        # Strategies beyond the landscape's L_max: no exhaustive ground truth there.
        title = _titled(title, "scored against the best prompts known beyond the "
                               "landscape (regret a lower bound)")
    if infinite_note:
        title = _noted(title, infinite_note)
    return _configure(chart, style, title)


# The landscape's point classes: S* (ties with the best, exact or equal estimates), members of
# S* only because the evaluation set cannot resolve them from the best (hollow), the rest;
# each with its (shape, fill opacity, size).
OPTIMAL = "optimal class S*"
UNRESOLVED = "S*: not resolved from the best at 95% (Bonferroni)"
OTHER = "other prompts"
IMPOSSIBLE = "impossible prompts: KL = ∞ (drawn above the panel's largest finite KL)"
CLASS_MARKS = {OPTIMAL: ("diamond", 0.85, 140), UNRESOLVED: ("triangle-up", 0.0, 90),
               OTHER: ("circle", 0.75, 22), IMPOSSIBLE: ("cross", 0.9, 40)}
# Where a panel draws its inf KLs (prompts the pretraining source gives probability 0): this
# factor above its largest finite KL, on the log axis, as their own class.
INFINITE_LIFT = 4.0


# A landscape panel draws at most this many points per (predictor, task): beyond it, the
# TOP_POINTS best and an even thinning of the rest by rank (`landscape_points`).
MAX_POINTS = 1500
TOP_POINTS = 300


def landscape_points(land: pd.DataFrame, limit: int = MAX_POINTS,
                     top: int = TOP_POINTS) -> tuple[pd.DataFrame, str]:
    """The rows a landscape figure draws and a note saying what they stand for.

    Per (predictor, replicate, task): prompts of equal rank and KL (a count class of an
    exact Bayes predictor) are one point, the first prompt in table order (canonical) with
    `members`, the prompts it stands for; where more than `limit` points remain, the `top`
    best by rank and `limit` - `top` evenly spaced by rank among the rest, so that the
    curve of KL against rank keeps its shape with 131,071 prompts. The note is empty where
    every prompt is drawn. The rows leave out ``kl_residuals`` (M floats a prompt)."""
    keys = [k for k in ("predictor", "replicate", "task") if k in land.columns]
    # The residuals of an estimated landscape decide comparisons; no figure draws them.
    land = land.drop(columns=["kl_residuals"], errors="ignore")
    parts, notes = [], set()
    for _, group in land.groupby(keys, sort=False):
        sig = pd.DataFrame({"rank": group["rank"].to_numpy(), "kl": _sig(group["kl"]).to_numpy()})
        members = sig.groupby(["rank", "kl"], sort=False)["rank"].transform("size").to_numpy()
        first = ~sig.duplicated().to_numpy()
        rows = group.loc[first].assign(members=members[first])
        merged = len(rows) < len(group)
        if len(rows) > limit:
            rows = rows.sort_values("rank", kind="stable")
            keep = np.unique(np.concatenate([
                np.arange(top), np.linspace(top, len(rows) - 1, limit - top).round()
            ]).astype(int))
            rows = rows.iloc[keep]
            notes.add(f"{len(group):,} prompts: the {top} best and {limit - top} evenly "
                      "spaced by rank shown" + (", prompts of equal KL as one" if merged else ""))
        elif merged:
            notes.add(f"{len(group):,} prompts as {len(rows):,} points (prompts of equal rank "
                      "and KL, one class, as one)")
        parts.append(rows)
    return pd.concat(parts, ignore_index=True), "; ".join(sorted(notes))


def _noted(title, note: str):
    """The figure's title with `note` appended to its subtitle."""
    if not note:
        return title
    if isinstance(title, dict):
        return {**title, "subtitle": [*np.atleast_1d(title.get("subtitle", [])).tolist(),
                                      note]}
    return {"text": title, "subtitle": note}


def landscape_chart(land: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """KL (log axis) against rank for every prompt; the optimal class marked, and among it the
    prompts not resolved from the best estimate (Monte Carlo landscapes) marked apart. Long
    prompts: `landscape_points` (count classes as one point; beyond MAX_POINTS a panel
    shows the best and an even thinning of the rest)."""
    data, note = landscape_points(land)
    if "below_resolution" in land and land["below_resolution"].any():
        below = ", ".join(f"{t}: {n:,}" for t, n in land[land["below_resolution"]]
                          .groupby("task", sort=True).size().items())
        said = f"prompts whose KL is below floating-point resolution (not a number; on the floor): {below}"
        note = "; ".join(n for n in (note, said) if n)
    title = _noted(title, note)
    data["task_label"], order = task_labels(data, tasks, imd)
    data["kl_plot"] = np.maximum(data["kl"], KL_FLOOR)
    data["kl_low"] = np.maximum(data["kl"] - 2 * data["kl_se"], KL_FLOOR)
    data["kl_high"] = np.maximum(data["kl"] + 2 * data["kl_se"], KL_FLOOR)
    # An inf KL is no point on a log axis: such prompts are drawn as their own class above
    # their panel's largest finite KL, said so in the legend and the subtitle.
    infinite = ~np.isfinite(data["kl"].to_numpy())
    if infinite.any():
        finite_top = (data["kl_plot"].where(~infinite).groupby(data["task_label"])
                      .transform("max").fillna(KL_FLOOR))
        ceiling = finite_top * INFINITE_LIFT
        for column in ("kl_plot", "kl_low", "kl_high"):
            data[column] = data[column].where(~infinite, ceiling)
        counts = ", ".join(f"{t}: {n:,}" for t, n in land[~np.isfinite(land["kl"])]
                           .groupby("task", sort=True).size().items())
        title = _noted(title, f"prompts the pretraining source cannot produce (KL = ∞, "
                              f"drawn as crosses above the finite ones): {counts}")
    data["prompt_shown"] = data["prompt"].where(data["prompt"] != "", "∅")
    # A KL at most its floating-point resolution is no number: it says so (on the floor).
    below = data.get("below_resolution", False)
    data["kl_shown"] = np.where(below, "below resolution",
                                [f"{v:.3e}" for v in data["kl"]])
    data["class"] = np.where(~data["resolved"], UNRESOLVED,
                             np.where(data["optimal"], OPTIMAL, OTHER))
    if infinite.any():
        data["class"] = np.where(infinite, IMPOSSIBLE, data["class"])
        data["kl_se"] = data["kl_se"].where(~infinite, 0.0)
        data["kl_shown"] = np.where(infinite, "inf (an impossible prompt)", data["kl_shown"])
        data["kl"] = data["kl"].where(~infinite, np.nan)  # JSON has no inf
    # Only the classes present: an exact landscape's legend has no unresolved entry.
    classes = [c for c in CLASS_MARKS if (data["class"] == c).any()]
    shapes, fills, sizes = ([CLASS_MARKS[c][i] for c in classes] for i in range(3))
    data["class_order"] = data["class"].map({OPTIMAL: 2, UNRESOLVED: 1, OTHER: 0,
                                             IMPOSSIBLE: 0})
    color = alt.Color("predictor:N", scale=_predictor_scale(style, predictors), title="predictor")
    base = alt.Chart().encode(
        x=alt.X("rank:Q", title="rank of L(s) (0 = optimal class S*)"),
        y=alt.Y("kl_plot:Q", scale=alt.Scale(type="log"), title="KL(task ‖ prompted) (nats)"),
        color=color)
    # Unresolved members hollow, so that the class's stacked points at rank 0 all show.
    points = base.mark_point(filled=True, size=28, strokeWidth=1.5).encode(
        stroke=color,
        # Ordinal scales: Vega-Lite's default point scale would interpolate the ranges.
        fillOpacity=alt.FillOpacity("class:N", scale=alt.Scale(type="ordinal", domain=classes,
                                                               range=fills),
                                    title=None),
        shape=alt.Shape("class:N", scale=alt.Scale(domain=classes,
                                                   range=shapes),
                        title=None, legend=alt.Legend(labelLimit=400)),
        size=alt.Size("class:N", scale=alt.Scale(type="ordinal", domain=classes,
                                                 range=sizes),
                      title=None),
        order=alt.Order("class_order:Q"),  # the optimal class drawn on top of the rest
        tooltip=["predictor", "prompt_shown", "members", "rank",
                 alt.Tooltip("kl_shown:N", title="kl"),
                 alt.Tooltip("kl_se:Q", format=".1e"), "resolved", "method"])
    errors = base.mark_rule(opacity=0.5).encode(y="kl_low:Q", y2="kl_high:Q")
    best = (alt.Chart().transform_filter("datum.optimal").transform_window(
                row="row_number()", groupby=["task_label", "predictor"],
                sort=[alt.SortField("kl"), alt.SortField("prompt_length"), alt.SortField("prompt")])
            .transform_filter("datum.row == 1")
            .mark_text(align="left", dx=8, dy=-8, fontSize=style["font_size"])
            .encode(x="rank:Q", y="kl_plot:Q", text="prompt_shown:N", color=color))
    layered = alt.layer(errors, points, best, data=data).properties(
        width=style["panel_width"], height=style["panel_height"])
    return _configure(_facet(layered, order, len(tasks), style), style, title)


def choices_chart(cho: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Frequency of each chosen prompt per N (rows: prompts by rank); optimal class outlined
    and starred; its members not resolved from the best estimate with a hollow star and an
    orange outline."""
    data = cho.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    shown = data["prompt"].where(data["prompt"] != "", "∅")
    data["prompt_label"] = shown + np.where(~data["resolved"], " ☆",
                                            np.where(data["optimal"], " ★", ""))
    # Outlines: red for S*, orange for its members not resolved from the best.
    data["outline"] = np.where(~data["resolved"], "#ff7f0e",
                               np.where(data["optimal"], "#d62728", "transparent"))
    data = data.sort_values(["rank", "prompt_length", "prompt"], key=prompts_lib.order_key)
    # A fixed height (14 px a row of the fullest panel): Vega-Lite's step sizing fails to
    # render with faceted, independent y scales and conditional strokes.
    rows = int(data.groupby(["predictor", "task"])["prompt"].nunique().max())
    rects = alt.Chart(data).mark_rect().encode(
        x=alt.X("N:O", sort=sorted(data["N"].unique()), title="dataset size N"),
        y=alt.Y("prompt_label:N", sort=alt.EncodingSortField("rank", op="min"),
                title="chosen prompt (★ optimal, ☆ unresolved)"),
        color=alt.Color("frequency:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]),
                        title="frequency"),
        stroke=alt.Stroke("outline:N", scale=None),
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


# The ids Vega gives an SVG's gradients ("gradient_0", radial "p_gradient_0") and clip paths
# ("clip1"), where the SVG defines and references them.
SVG_IDS = {"gradient": (re.compile(r'(?<=["#])((?:p_)?gradient_)(\d+)(?=[")])'), 0),
           "clip": (re.compile(r'(?<=["#])(clip)(\d+)(?=[")])'), 1)}


def renumber_svg_ids(text: str) -> str:
    """An SVG of Vega's with its gradient and clip-path ids counted from Vega's first (0 and
    1). Vega numbers them with counters global to the process (vl-convert's one JavaScript
    runtime), so in a job that draws several figures each figure after the first got later
    ids; an SVG's ids are consecutive from where its render began, so shifting them to the
    first gives the file a figure drawn alone gets."""
    for pattern, first in SVG_IDS.values():
        ids = [int(m.group(2)) for m in pattern.finditer(text)]
        if ids and min(ids) != first:
            shift = min(ids) - first
            text = pattern.sub(lambda m: f"{m.group(1)}{int(m.group(2)) - shift}", text)
    return text


class _Spec:
    """A chart's Vega-Lite specification, built (and validated against the schema) once: what
    `alt.Chart.save` builds for each file it writes, which was two thirds of a figure job."""

    def __init__(self, chart: alt.TopLevelMixin):
        # As Chart.save builds it: all data inlined, no row limit.
        with alt.data_transformers.enable("default"), alt.data_transformers.disable_max_rows():
            self.spec = chart.to_dict(context={"pre_transform": False})

    def to_dict(self, context=None) -> dict:
        return self.spec


def save(chart: alt.Chart, *, svg: str, png: str, html: str, scale: float) -> None:
    """Write the chart as SVG, PNG (at `scale`) and standalone HTML with inlined scripts, from
    one specification (the files are those `chart.save` writes); the SVG's ids as a figure
    drawn alone in its process has them (`renumber_svg_ids`), so a figure's files do not
    depend on what the job drew before."""
    from altair.utils.save import save as write

    for path in (svg, png, html):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    spec = _Spec(chart)
    versions = dict(vegalite_version=alt.VEGALITE_VERSION, vega_version=alt.VEGA_VERSION,
                    vegaembed_version=alt.VEGAEMBED_VERSION)
    write(spec, svg, **versions)
    text = open(svg, encoding="utf-8", newline="").read()
    renumbered = renumber_svg_ids(text)
    if renumbered != text:
        with open(svg, "w", encoding="utf-8", newline="") as out:
            out.write(renumbered)
    # The PNG from the SVG just drawn (vl-convert draws its PNGs so: the same bytes as
    # `chart.save` writes, without laying the chart out a second time).
    import vl_convert

    png_bytes = vl_convert.svg_to_png(text, scale=scale, ppi=72)

    def put(temp):
        with open(temp, "wb") as out:
            out.write(png_bytes)

    files.atomic_write(png, put)
    with _cached_script_bundle():
        write(spec, html, inline=True, **versions)


@contextlib.contextmanager
def _cached_script_bundle():
    """While it is open, vl-convert's JavaScript bundle (what altair inlines into a
    standalone HTML file: vega, vega-lite and vega-embed, 0.9 MB) comes from a file in
    `files.cache_dir()`, named by vl-convert's version and the Vega-Lite version: building it
    takes vl-convert about 1.4 s in every process that writes an HTML figure, and it is a
    function of those two versions alone. Without a cache folder, vl-convert builds it."""
    import vl_convert

    build = vl_convert.javascript_bundle
    folder = files.cache_dir()

    def bundle(snippet=None, vl_version=None):
        if snippet is not None or folder is None:
            return build(snippet=snippet, vl_version=vl_version)
        path = os.path.join(folder, f"vl-convert-{vl_convert.__version__}-vega-lite-"
                                    f"{vl_version}-bundle.js")
        try:
            with open(path, encoding="utf-8") as cached:
                return cached.read()
        except OSError:
            pass
        text = build(vl_version=vl_version)
        try:
            def put(temp):
                with open(temp, "w", encoding="utf-8") as out:
                    out.write(text)
            files.atomic_write(path, put)
        except OSError:
            pass
        return text

    vl_convert.javascript_bundle = bundle
    try:
        yield
    finally:
        vl_convert.javascript_bundle = build


EFFICIENCY_CURVES = {"median_plot": "typical prompts: median, 25–75% band",
                     "optimal_plot": "optimal prompt of length ≤ l"}


def efficiency_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """KL (log axis) against prompt length: typical prompts drawn from the task (median line,
    interquartile band) and the optimal prompt of length at most l (dashed), a panel per
    task, a colour per predictor. The length axis is symlog, so the short lengths (the
    exhaustive range, and all a neural context holds) stay legible beside long ones."""
    data = frame.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    for column, source in (("median_plot", "typical_kl_median"), ("q25_plot", "typical_kl_q25"),
                           ("q75_plot", "typical_kl_q75"), ("optimal_plot", "optimal_upto_kl")):
        data[column] = np.maximum(data[source].astype(float), KL_FLOOR)  # null stays null
    data["optimal_shown"] = data["optimal_prompt"].where(data["optimal_prompt"] != "", "∅")
    # Each curve's KL as text: the optimal prompt's says "below resolution" where it is a
    # rounding (drawn on the floor), never a number such as 7e-13.
    below = data.get("optimal_below_resolution", pd.Series(False, index=data.index))
    data["optimal_kl_shown"] = ["" if pd.isna(v) else "below resolution" if b is True
                                else f"{v:.3e}" for v, b in zip(data["optimal_upto_kl"], below)]
    data["median_kl_shown"] = ["" if pd.isna(v) else f"{v:.3e}"
                               for v in data["typical_kl_median"]]
    legend = alt.Legend(symbolType="stroke", symbolOpacity=1, symbolStrokeWidth=3)
    color = alt.Color("predictor:N", scale=_predictor_scale(style, predictors), title="predictor",
                      legend=legend)
    longest = int(data["prompt_length"].max())
    ticks = [t for t in (0, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000) if t <= longest]
    x = alt.X("prompt_length:Q", title="prompt length l (symlog axis)",
              scale=alt.Scale(type="symlog", domain=[0, longest], nice=False),
              axis=alt.Axis(values=ticks, labelAngle=0))
    plotted = data[["q25_plot", "q75_plot", "median_plot", "optimal_plot"]].to_numpy(float)
    low, high = np.nanmin(plotted), np.nanmax(plotted)
    decades = [10.0**k for k in range(int(np.floor(np.log10(low))),
                                      int(np.ceil(np.log10(high))) + 1)]
    y_axis = alt.Axis(values=decades, format="~e")
    y_scale = alt.Scale(type="log", domain=[decades[0], decades[-1]])
    y_title = f"KL(task ‖ prompted) (nats; floor 1e{int(np.log10(KL_FLOOR))})"
    band = alt.Chart().mark_area(opacity=0.18).encode(
        x=x, y=alt.Y("q25_plot:Q", scale=y_scale, axis=y_axis, title=y_title),
        y2="q75_plot:Q", color=color)
    curves = list(EFFICIENCY_CURVES.values())
    lines = alt.Chart().transform_fold(
        list(EFFICIENCY_CURVES), as_=["curve_key", "kl_value"],
    ).transform_calculate(
        curve=f"datum.curve_key == 'median_plot' ? '{curves[0]}' : '{curves[1]}'",
        kl_shown="datum.curve_key == 'median_plot' ? datum.median_kl_shown "
                 ": datum.optimal_kl_shown",
    ).mark_line(strokeWidth=2, clip=True).encode(
        x=x, y=alt.Y("kl_value:Q", scale=y_scale, axis=y_axis, title=y_title), color=color,
        strokeDash=alt.StrokeDash("curve:N", title="curve", legend=alt.Legend(labelLimit=400),
                                  scale=alt.Scale(domain=curves, range=[[1, 0], [6, 3]])),
        tooltip=["predictor", "task", "prompt_length", "curve:N",
                 alt.Tooltip("kl_shown:N", title="KL"),
                 alt.Tooltip("typical_kl_q25:Q", format=".3e"),
                 alt.Tooltip("typical_kl_q75:Q", format=".3e"),
                 alt.Tooltip("optimal_shown:N", title="optimal prompt"), "method"])
    layered = alt.layer(band, lines, data=data).properties(
        width=style["panel_width"], height=style["panel_height"])
    return _configure(_facet(layered, order, len(tasks), style), style, title)


def training_chart(frames: dict, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Training curves (regret against Bayes on the pretraining source, moving average: a
    post-trained network's forgetting over its post-training steps) and per-position regret
    on held-out pretraining sequences, one colour per network."""
    curve = frames["training_curve"]
    curve = (curve[curve["evaluated_on"] == curve["source"]]
             .sort_values(["predictor", "step"]).copy())
    window = max(1, int(curve["step"].max() + 1) // 50)
    curve["regret_smooth"] = (curve.groupby("predictor")["regret"]
                              .transform(lambda r: r.rolling(window, min_periods=1).mean()))
    neural = [p for p in predictors if p in set(curve["predictor"])]
    color = alt.Color("predictor:N", scale=_predictor_scale(style, neural), title="predictor")
    width, height = style["panel_width"] * 3 // 2, style["panel_height"]
    curves = alt.Chart(curve).mark_line().encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("regret_smooth:Q", title="regret (nats/symbol)"),
        color=color,
        tooltip=["predictor", "step", alt.Tooltip("regret_smooth:Q", format=".4f")],
    ).properties(width=width, height=height,
                 title=f"training: batch regret vs Bayes, moving mean of {window} steps")
    regret = frames["predictor_regret"]
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="#888").encode(y="y:Q")
    by_position = alt.Chart(regret).mark_line(point=True).encode(
        x=alt.X("position:O", title="position t (0: predicted from BOS alone)"),
        y=alt.Y("regret:Q", title="regret (nats)"),
        color=color,
        tooltip=["predictor", "position", alt.Tooltip("regret:Q", format=".5f"),
                 alt.Tooltip("neural_loss:Q", format=".4f"), alt.Tooltip("bayes_loss:Q", format=".4f")],
    )
    right = alt.layer(zero, by_position).properties(
        width=width, height=height, title="held-out regret vs Bayes by position")
    return _configure(alt.hconcat(curves, right), style, title)


def neural_vs_bayes_chart(land: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """KL of every prompt under each neural predictor against its KL under the Bayes
    predictor (log-log; on the diagonal the network's landscape is the ideal one)."""
    keys = ["task", "prompt"]
    bayes = land[land["predictor"] == "bayes"][keys + ["kl"]].rename(columns={"kl": "kl_bayes"})
    networks, note = landscape_points(land[land["predictor"] != "bayes"])
    title = _noted(title, note)
    data = networks.merge(bayes, on=keys, validate="m:1")
    data["task_label"], order = task_labels(data, tasks, imd)
    lifted = []
    for column in ("kl", "kl_bayes"):
        data[column + "_plot"] = np.maximum(data[column], KL_FLOOR)
        # An inf KL (a prompt the Bayes predictor's source cannot produce) is drawn above
        # the axis's largest finite KL, said in the subtitle; no inf reaches Vega.
        infinite = ~np.isfinite(data[column].to_numpy())
        if infinite.any():
            finite = data[column + "_plot"].where(~infinite)
            top = float(finite.max()) if finite.notna().any() else KL_FLOOR
            data[column + "_plot"] = data[column + "_plot"].where(~infinite,
                                                                  top * INFINITE_LIFT)
            data[column] = data[column].where(~infinite, np.nan)
            lifted.append(f"{int(infinite.sum()):,} under "
                          f"{'the Bayes predictor' if column == 'kl_bayes' else 'the networks'}")
    if lifted:
        title = _noted(title, "KL = ∞ (impossible prompts) drawn at "
                              f"{INFINITE_LIFT:g} x the largest finite KL of its axis: "
                              + ", ".join(lifted))
    data["prompt_shown"] = data["prompt"].where(data["prompt"] != "", "∅")
    low = float(min(data["kl_plot"].min(), data["kl_bayes_plot"].min()))
    high = float(max(data["kl_plot"].max(), data["kl_bayes_plot"].max()))
    diagonal = pd.DataFrame({"kl_bayes_plot": [low, high], "kl_plot": [low, high]})
    neural = [p for p in predictors if p != "bayes"]
    log_scale = alt.Scale(type="log", domain=[low, high])
    points = alt.Chart().mark_point(filled=True, size=30, opacity=0.7).encode(
        x=alt.X("kl_bayes_plot:Q", scale=log_scale, title="KL under the Bayes predictor (nats)"),
        y=alt.Y("kl_plot:Q", scale=log_scale, title="KL under the network (nats)"),
        color=alt.Color("predictor:N", scale=_predictor_scale(style, neural), title="predictor"),
        shape=alt.Shape("optimal:N", title="optimal for the network"),
        tooltip=["predictor", "prompt_shown", alt.Tooltip("kl:Q", format=".3e"),
                 alt.Tooltip("kl_bayes:Q", format=".3e"), "rank"])
    # The diagonal has no task: repeat it in every panel, in the same data as the points
    # (a faceted layer needs one data source).
    diagonal = pd.concat([diagonal.assign(task_label=label) for label in order])
    combined = pd.concat([data.assign(layer="prompt"), diagonal.assign(layer="diagonal")],
                         ignore_index=True)
    points = points.transform_filter("datum.layer == 'prompt'")
    line = (alt.Chart().transform_filter("datum.layer == 'diagonal'")
            .mark_line(color="#888", strokeDash=[4, 4])
            .encode(x=alt.X("kl_bayes_plot:Q", scale=log_scale), y=alt.Y("kl_plot:Q", scale=log_scale)))
    chart = alt.layer(line, points, data=combined).properties(
        width=style["panel_width"], height=style["panel_width"])
    return _configure(_facet(chart, order, len(tasks), style), style, title)


# Dataset sizes whose resolution line the variance plane draws.
RESOLUTION_SIZES = (1, 10, 100, 1000)
# What the variance plane says when no (experiment, predictor, task) has a point: every
# landscape is flat (all its prompts in S*: max_prompt_length 0, or a prior that no prompt
# moves), or no rival differs from S*'s best on any sequence.
NO_VARIANCE_PLANE = [
    "Nothing to plot: no (experiment, predictor, task) has a prompt outside the optimal",
    "class S* with a positive KL gap and paired sd (every landscape is flat: a single",
    "prompt, max_prompt_length 0, or a predictor that no prompt changes), so search",
    "cannot choose wrongly and there is no gap to resolve."]


def nothing_to_plot(lines: list[str], width: int, height: int, style: dict) -> alt.Chart:
    """A panel of the figure's size that says, in `lines`, why it has nothing to plot: a
    figure whose inputs hold no point is drawn and says so, never a failed job."""
    text = pd.DataFrame({"line": lines, "y": range(len(lines))})
    return alt.Chart(text).mark_text(
        align="center", baseline="middle", fontSize=style["font_size"], color="#555").encode(
        text="line:N", y=alt.Y("y:O", axis=None),
    ).properties(width=width, height=height)


def variance_plane_chart(pred: pd.DataFrame, *, style, title) -> alt.Chart:
    """Every (experiment, predictor, task) at its KL gap from S*'s best to the best class
    outside S* (x) and the paired per-sequence sd of that difference (y), coloured by the
    measured proportion correct at its largest N. On the dashed line of N two paired
    standard errors at N equal the gap (paired_sd = gap sqrt(N) / 2): above it search at N
    cannot separate the rival, so the lower right is easy and the upper left impossible."""
    keys = ["experiment", "predictor", "task"]
    frame = pred.copy()
    for column in ("gap", "paired_sd", "measured_proportion_correct",
                   "predicted_proportion_correct", "first_n_half", "first_n_ninety"):
        frame[column] = frame[column].astype(float)  # nullable: NA to NaN
    # The decomposition is per (predictor, task), repeated at each N; the proportions are
    # those at the largest N.
    largest = frame.sort_values("N").groupby(keys, as_index=False).tail(1)
    data = largest.drop(columns=["gap", "paired_sd"]).merge(
        frame.groupby(keys, as_index=False)[["gap", "paired_sd"]].first(), on=keys)
    data = data[(data["gap"] > 0) & (data["paired_sd"] > 0)].reset_index(drop=True)
    data = data[keys + ["N", "gap", "paired_sd", "measured_proportion_correct",
                        "predicted_proportion_correct", "first_n_half", "first_n_ninety"]]
    width, height = int(2.5 * style["panel_width"]), int(2.5 * style["panel_height"])
    if data.empty:
        return _configure(nothing_to_plot(NO_VARIANCE_PLANE, width, height, style), style,
                          title)
    low, high = float(data["gap"].min()) / 1.5, float(data["gap"].max()) * 1.5
    lines = pd.DataFrame([{"N": n, "label": f"N = {n}", "end": end, "gap": x,
                           "paired_sd": x * np.sqrt(n) / 2}
                          for n in RESOLUTION_SIZES for end, x in (("low", low), ("high", high))])
    x = alt.X("gap:Q", scale=alt.Scale(type="log", domain=[low, high], nice=False),
              title="KL gap to the best prompt outside S* (nats)")
    y = alt.Y("paired_sd:Q", scale=alt.Scale(type="log"),
              title="paired per-sequence sd of that difference (nats)")
    rules = alt.Chart(lines).mark_line(color="#888", strokeDash=[5, 4], strokeWidth=1).encode(
        x=x, y=y, detail="N:O")
    labels = alt.Chart(lines[lines["end"] == "high"]).mark_text(
        align="right", baseline="bottom", dx=-4, dy=-4, color="#555",
        fontSize=style["font_size"]).encode(x=x, y=y, text="label:N")
    points = alt.Chart(data).mark_point(filled=True, size=90, opacity=0.9, stroke="#333",
                                        strokeWidth=0.6).encode(
        x=x, y=y,
        color=alt.Color("measured_proportion_correct:Q",
                        scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                        title=["measured proportion", "correct at largest N"]),
        shape=alt.Shape("predictor:N", title="predictor"),
        tooltip=["experiment", "task", "predictor", alt.Tooltip("gap:Q", format=".3e"),
                 alt.Tooltip("paired_sd:Q", format=".3e"), alt.Tooltip("N:Q", title="largest N"),
                 alt.Tooltip("measured_proportion_correct:Q", format=".2f"),
                 alt.Tooltip("predicted_proportion_correct:Q", format=".2f"),
                 alt.Tooltip("first_n_half:Q", format="d"),
                 alt.Tooltip("first_n_ninety:Q", format="d")])
    chart = alt.layer(rules, labels, points).properties(width=width, height=height)
    return _configure(chart, style, title)


def _short(prompt: str, limit: int = 12) -> str:
    """A prompt for a label: '∅' when empty, cut to `limit` symbols and '…' when long."""
    if prompt == "":
        return "∅"
    return prompt if len(prompt) <= limit else prompt[:limit] + "…"


def _sig(values: pd.Series, digits: int = 12) -> pd.Series:
    """Values rounded to `digits` significant digits (equal up to rounding error: equal)."""
    return values.map(lambda v: float(f"{v:.{digits}g}"))


def posterior_chart(frames: dict, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """KL (log axis) of each prompt class under the exact Bayes predictor against the
    posterior predictive probability q(v* | prompt) of one symbol v* that the prompt
    induces (binary tasks: v* = 1; else the symbol the best optimal prompt favours), a
    panel per task; the optimal class starred and named, and a dashed rule at the best KL
    of any prompt the efficiency stage reached (lengths beyond the landscape's)."""
    land = frames["landscape"]
    land = land[land["predictor"] == "bayes"]
    if land.empty:
        raise ValueError("the posterior figure needs the bayes predictor's landscape "
                         "(no rows with predictor == 'bayes')")
    eff = frames["efficiency"]
    eff = eff[(eff["predictor"] == "bayes") & eff["optimal_upto_kl"].notna()]
    lengths = sorted(int(n) for n in land["prompt_length"].unique())
    color = alt.Color("prompt_length:O", scale=alt.Scale(scheme="viridis", domain=lengths),
                      title="prompt length")
    panels = []
    for task in [t for t in tasks if (land["task"] == t).any()]:
        rows = land[land["task"] == task].reset_index(drop=True)
        q = np.array([np.asarray(p, dtype=float) for p in rows["first_symbol_prediction"]])
        if q.shape[1] == 2:
            symbol = 1
        else:
            best = (rows[rows["optimal"]].assign(row=lambda f: np.arange(len(f)))
                    .sort_values(["kl", "prompt_length", "row"]).index[0])
            symbol = int(np.argmax(q[best]))
        data = pd.DataFrame({
            "prompt": rows["prompt"], "prompt_length": rows["prompt_length"].astype(int),
            "kl": rows["kl"].astype(float), "q": q[:, symbol],
            "first_symbol_kl": rows["first_symbol_kl"].astype(float),
            "optimal": rows["optimal"].astype(bool)})
        # One point per prompt class: the first prompt (table order) of equal (KL, q).
        data = data.loc[~pd.DataFrame({"kl": _sig(data["kl"]), "q": _sig(data["q"])})
                        .duplicated()].reset_index(drop=True)
        # Impossible prompts (KL = inf; they predict nothing) have no place on these axes.
        impossible = int((~np.isfinite(land.loc[land["task"] == task, "kl"])).sum())
        if impossible:
            data = data[np.isfinite(data["kl"])].reset_index(drop=True)
            title = _noted(title, f"{task}: {impossible:,} impossible prompts (KL = ∞) not "
                                  "drawn")
        data["kl_plot"] = np.maximum(data["kl"], KL_FLOOR)
        data["prompt_shown"] = data["prompt"].map(_short)
        reach = eff[eff["task"] == task]
        rule = None
        if not reach.empty:
            row = reach.sort_values("prompt_length").iloc[-1]
            kl = float(row["optimal_upto_kl"])
            prompt = row["optimal_prompt"]
            shown = "" if prompt is None or pd.isna(prompt) else f"\n(prompt {_short(prompt)})"
            rule = pd.DataFrame({"kl_plot": [max(kl, KL_FLOOR)], "q": [0.0], "label": [
                f"best with ≤ {int(row['prompt_length'])} symbols: {kl:.3g}" + shown]})
        # The y range: the prompts, and room below the rule (no prompt lies below the best
        # of every length) for its label.
        low = float(data["kl_plot"].min()) / 2
        if rule is not None:
            low = min(low, float(rule["kl_plot"].iloc[0]) / 40)
        y_scale = alt.Scale(type="log", domain=[low, float(data["kl_plot"].max()) * 2],
                            nice=False)
        shown = prompts_lib.alphabet(q.shape[1])[symbol]  # the symbol as artifacts write it
        x = alt.X("q:Q", scale=alt.Scale(domain=[0, 1]),
                  title=f"posterior predictive q(v* | prompt), v* = {shown}")
        y = alt.Y("kl_plot:Q", scale=y_scale,
                  title=f"KL(task ‖ prompted) (nats; floor 1e{int(np.log10(KL_FLOOR))})")
        tooltip = [alt.Tooltip("prompt_shown:N", title="prompt"), "prompt_length",
                   alt.Tooltip("kl:Q", format=".3e"),
                   alt.Tooltip("q:Q", title=f"q(v*={shown} | prompt)", format=".4f"),
                   alt.Tooltip("first_symbol_kl:Q", format=".3e")]
        layers = [alt.Chart(data).mark_point(filled=True, size=30, opacity=0.8).encode(
            x=x, y=y, color=color, tooltip=tooltip)]
        optimal = data[data["optimal"]]
        layers.append(alt.Chart(optimal).mark_point(
            shape="diamond", filled=True, size=170, stroke="#d62728", strokeWidth=1.5).encode(
            x=x, y=y, color=color, tooltip=tooltip))
        layers.append(alt.Chart(optimal).mark_text(
            align="left", dx=9, dy=-9, fontSize=style["font_size"], color="#d62728").encode(
            x=x, y=y, text="prompt_shown:N"))
        if rule is not None:
            layers.append(alt.Chart(rule).mark_rule(color="#555", strokeDash=[6, 4]).encode(
                y=y))
            layers.append(alt.Chart(rule).mark_text(
                align="left", baseline="top", dx=4, dy=4, color="#555", lineBreak="\n",
                fontSize=style["font_size"] - 1).encode(x=x, y=y, text="label:N"))
        label = f"{task} ({'IMD' if imd[task] else 'OOMD'}): v* = {shown}"
        panels.append(alt.layer(*layers).properties(
            width=style["panel_width"], height=style["panel_height"], title=label))
    rows = [alt.hconcat(*panels[i:i + 4]) for i in range(0, len(panels), 4)]
    return _configure(alt.vconcat(*rows), style, title)


TUNING_REFERENCES = {"hard_optimum": "hard optimum at L_max (exact)",
                     "hard_search": "hard prompt search picks from D_N (median)"}
TUNING_SETTINGS = {"fixed": "fixed settings", "holdout": "settings chosen on held-out data"}
# The x position of each tuner's own optimum (trained on the task itself), right of every N.
N_INFINITY = "∞"


# Short enough to sit under one panel: each column repeats it (a longer one, "dataset size N
# (sequences); ∞: the tuner's own optimum", ran into its neighbour's).
TUNING_X_TITLE = "N (∞: own optimum)"


def tuning_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Tuned KL (log axis) against N (one position per dataset size, then N = ∞): per tuner
    and settings (fixed: solid; chosen on held-out data: dashed) its median over seeds
    (points joined by a line) with its interquartile range as a band (a vertical bar at each
    N), at its largest step budget; at N = ∞ each tuner's own optimum (trained on the task
    itself, a diamond); the exact hard optimum at L_max as a horizontal rule across the
    panel and the searched hard prompt's median as black crosses joined by a dotted line.
    Every mark shows with one N as with many. A column per task, a row per tuned network
    (and replicate). Every layer reads the facet's data and keeps its rows by a filter, so
    each panel shows its own (network, task) only."""
    data = frame.copy()
    last = data.groupby(["tuner", "settings"])["tuning_steps"].transform("max")
    data = data[data["tuning_steps"] == last].copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    data["network"] = data["predictor"] + np.where(
        data["replicate"] > 0, " r" + data["replicate"].astype(str), "")
    sizes = sorted(int(n) for n in data["N"].unique())
    data["n_label"] = data["N"].astype(int).astype(str)
    data["layer"] = np.where(data["tuner"].isin(list(TUNING_REFERENCES)), data["tuner"],
                             "tuned")
    # Each tuner's own optimum at N = ∞: one row per (network, task, tuner).
    tuned_rows = data[data["layer"] == "tuned"]
    optima = (tuned_rows.drop_duplicates(["network", "task_label", "tuner"])
              .assign(layer="optimum", n_label=N_INFINITY, settings="optimum",
                      kl_median=lambda f: f["tuner_optimum_kl"],
                      kl_q25=lambda f: f["tuner_optimum_kl"],
                      kl_q75=lambda f: f["tuner_optimum_kl"]))
    data = pd.concat([data, optima], ignore_index=True)
    for column in ("kl_median", "kl_q25", "kl_q75"):
        data[f"{column}_plot"] = np.maximum(data[column].astype(float), KL_FLOOR)
    data["reference"] = data["layer"].map(TUNING_REFERENCES)  # null but for the references
    # One line-style legend: the tuned lines' settings and the two hard-prompt references.
    data["line"] = data["reference"].fillna(data["settings"].map(TUNING_SETTINGS))
    tuner_order = list(dict.fromkeys(tuned_rows["tuner"]))
    y_title = "KL(task ‖ tuned), nats"
    scale = alt.Scale(type="log")
    y = alt.Y("kl_median_plot:Q", scale=scale, title=y_title)
    x = alt.X("n_label:O", sort=[str(n) for n in sizes] + [N_INFINITY],
              scale=alt.Scale(domain=[str(n) for n in sizes] + [N_INFINITY]),
              title=TUNING_X_TITLE,
              axis=alt.Axis(labelAngle=0))
    color = alt.Color("tuner:N", sort=tuner_order, scale=alt.Scale(domain=tuner_order),
                      title="tuner (at its last step budget)",
                      legend=alt.Legend(symbolType="stroke", symbolOpacity=1,
                                        symbolStrokeWidth=3))
    styles = list(TUNING_SETTINGS.values()) + list(TUNING_REFERENCES.values())
    dash = alt.StrokeDash("line:N", title="lines",
                          scale=alt.Scale(domain=styles, range=[[1, 0], [5, 3], [1, 0], [2, 2]]),
                          legend=alt.Legend(labelLimit=400, symbolType="stroke"))
    shape = alt.Shape("settings:N", title="settings",
                      scale=alt.Scale(domain=list(TUNING_SETTINGS),
                                      range=["circle", "triangle-up"]))
    tooltip = ["network", "task", "N", "tuner", "settings", "tuning_steps",
               alt.Tooltip("kl_median:Q", format=".3e"), alt.Tooltip("kl_q25:Q", format=".3e"),
               alt.Tooltip("kl_q75:Q", format=".3e"),
               alt.Tooltip("tuner_optimum_kl:Q", format=".3e"),
               alt.Tooltip("proportion_below_optimum:Q", format=".2f"),
               alt.Tooltip("proportion_overfit:Q", format=".2f"),
               alt.Tooltip("proportion_overfit_path:Q", format=".2f"),
               alt.Tooltip("proportion_worse_than_none:Q", format=".2f"),
               "trainable_parameters"]
    hard = alt.Chart().transform_filter("datum.layer == 'hard_optimum'").mark_rule(
        color="black", strokeWidth=1.5).encode(
        y=y, strokeDash=dash,
        tooltip=["network", "task", "reference", alt.Tooltip("kl_median:Q", format=".3e")])
    search = alt.Chart().transform_filter("datum.layer == 'hard_search'").mark_line(
        color="black", strokeWidth=1.2, point=alt.OverlayMarkDef(
            shape="cross", size=30, color="black", filled=True)).encode(
        x=x, y=y, strokeDash=dash,
        tooltip=["network", "task", "N", "reference",
                 alt.Tooltip("kl_median:Q", format=".3e")])
    tuned = alt.Chart().transform_filter("datum.layer == 'tuned'")
    band = tuned.mark_rule(opacity=0.35, strokeWidth=6).encode(
        x=x, y=alt.Y("kl_q25_plot:Q", scale=scale, title=y_title), y2="kl_q75_plot:Q",
        color=color)
    lines = tuned.mark_line(point=alt.OverlayMarkDef(filled=True, size=45), strokeWidth=2).encode(
        x=x, y=y, color=color, strokeDash=dash, shape=shape, detail="settings:N",
        tooltip=tooltip)
    optimum = alt.Chart().transform_filter("datum.layer == 'optimum'").mark_point(
        shape="diamond", size=90, filled=True, opacity=0.9).encode(
        x=x, y=y, color=color,
        tooltip=["network", "task", "tuner", alt.Tooltip("kl_median:Q", format=".3e",
                                                         title="optimum KL")])
    layered = alt.layer(hard, search, band, lines, optimum).properties(
        width=style["panel_width"], height=style["panel_height"])
    chart = layered.facet(
        row=alt.Row("network:N", title=None, sort=list(dict.fromkeys(data["network"])),
                    header=alt.Header(labelFontSize=style["font_size"] + 1,
                                      labelFontWeight="bold")),
        column=alt.Column("task_label:N", sort=order, title=None,
                          header=alt.Header(labelFontSize=style["font_size"] + 1,
                                            labelFontWeight="bold")),
        data=data)
    return _configure(chart, style, title)


# ------------------------------------------------------------------ edits
def _header(style) -> alt.Header:
    return alt.Header(labelFontSize=style["font_size"] + 1, labelFontWeight="bold")


def edits_delta(methods) -> str:
    """What the edits figure's ΔKL is, from its landscapes' methods (the edits table's
    `method`): "exact ΔKL" where every landscape is exact (exact_counts,
    exact_enumeration), "estimated ΔKL (evaluation set)" where every one is a Monte Carlo
    estimate, and which is which where they differ.

    >>> edits_delta(["exact_counts", "exact_enumeration"])
    'exact ΔKL'
    >>> edits_delta(["monte_carlo"])
    'estimated ΔKL (evaluation set)'
    """
    methods = set(methods)
    estimated = {m for m in methods if not str(m).startswith("exact")}
    if not estimated:
        return "exact ΔKL"
    if estimated == methods:
        return "estimated ΔKL (evaluation set)"
    return "ΔKL, exact or estimated (evaluation set) by landscape"


def _titled(title, detail: str):
    """`title` (a string, or a dict with a ``text``) with `detail` added to its text."""
    if isinstance(title, dict):
        return {**title, "text": f"{title['text']}: {detail}"}
    return f"{title}: {detail}"


def edits_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """ΔKL by edit kind: per kind the median ΔKL (point, coloured by the share of its
    edits that improve) and its interquartile range (rule), on a symmetric log axis, with a
    zero line; a column per task, a row per predictor. The title and the axis say whether
    the ΔKL is exact or the evaluation-set estimate (`edits_delta`, from the table's
    `method`). A kind a task has no rows for (a
    tied most or least probable symbol) has no mark in that panel. An infinite median or
    quartile (edits to or from prompts the predictor calls impossible) is drawn at the edge
    of the axis, beyond every finite value, its point a triangle (legend: "infinite, drawn
    at the edge") and its tooltip saying inf."""
    from promptscape.edits import EDIT_KINDS

    delta = edits_delta(frame["method"])
    title = _titled(title, f"{delta} by edit kind")
    data = frame.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    data = data.dropna(subset=["delta_median"])
    kinds = [k for k in EDIT_KINDS if k in set(data["edit_kind"])]
    data["layer"] = "kind"
    quantiles = ["delta_median", "delta_q25", "delta_q75"]
    values = data[quantiles].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    edge = 1.5 * max(1.0, float(np.abs(finite).max()) if finite.size else 1.0)
    for column in quantiles:
        v = data[column].astype(float)
        data[column] = v.where(np.isfinite(v) | v.isna(), np.sign(v) * edge)
        data[f"{column}_shown"] = [("+inf" if x > 0 else "-inf") if np.isinf(x)
                                   else ("" if pd.isna(x) else f"{x:.3g}") for x in v]
    data["median_drawn"] = np.where(np.isinf(frame.loc[data.index, "delta_median"]
                                             .astype(float)),
                                    "infinite, drawn at the edge", "finite")
    # A zero line in every panel, in the same data as the kinds (a faceted layer needs one
    # data source).
    zero = pd.DataFrame([{"task_label": t, "predictor": p, "layer": "zero", "edit_kind": k,
                          "delta_median": 0.0}
                         for t in order for p in predictors for k in kinds[:1]])
    combined = pd.concat([data, zero], ignore_index=True)
    scale = alt.Scale(type="symlog", constant=1e-3)
    x = alt.X("edit_kind:N", sort=kinds, title="edit kind",
              axis=alt.Axis(labelAngle=-40, labelLimit=200))
    y_title = f"{delta.split(' (')[0]} (nats)"
    kind = alt.Chart().transform_filter("datum.layer == 'kind'")
    iqr = kind.mark_rule(strokeWidth=2, color="#888").encode(
        x=x, y=alt.Y("delta_q25:Q", scale=scale, title=y_title), y2="delta_q75:Q")
    median = kind.mark_point(filled=True, size=70, stroke="#333", strokeWidth=0.5).encode(
        x=x, y=alt.Y("delta_median:Q", scale=scale, title=y_title),
        color=alt.Color("share_improving:Q", title="share of edits that improve",
                        scale=alt.Scale(scheme="redblue", domain=[0, 1], reverse=True)),
        shape=alt.Shape("median_drawn:N", title="median ΔKL",
                        scale=alt.Scale(domain=["finite", "infinite, drawn at the edge"],
                                        range=["circle", "triangle"])),
        tooltip=["predictor", "task", "edit_kind", "edges",
                 alt.Tooltip("delta_median_shown:N", title="delta_median"),
                 alt.Tooltip("delta_q25_shown:N", title="delta_q25"),
                 alt.Tooltip("delta_q75_shown:N", title="delta_q75"),
                 alt.Tooltip("share_improving:Q", format=".2f"),
                 alt.Tooltip("share_improving_near_top:Q", format=".2f"),
                 alt.Tooltip("share_improving_rest:Q", format=".2f")])
    line = alt.Chart().transform_filter("datum.layer == 'zero'").mark_rule(
        color="#444", strokeDash=[4, 3]).encode(y=alt.Y("delta_median:Q", scale=scale))
    layered = alt.layer(line, iqr, median).properties(
        width=max(style["panel_width"], 22 * len(kinds)), height=style["panel_height"])
    chart = layered.facet(
        column=alt.Column("task_label:N", sort=order, title=None, header=_header(style)),
        row=alt.Row("predictor:N", sort=predictors, title=None, header=_header(style)),
        data=combined)
    return _configure(chart, style, title)


def _unit(predictor: pd.Series, replicate: pd.Series) -> pd.Series:
    """'lstm' for replicate 0, 'lstm r1' for others."""
    return predictor + np.where(replicate > 0, " r" + replicate.astype(str), "")


def _heat(data, x, y, x_title, y_title, x_order, y_order, color, style, text=None,
          dark="datum.regret > datum.dark"):
    base = alt.Chart(data).encode(
        x=alt.X(f"{x}:N", sort=x_order, title=x_title, axis=alt.Axis(labelAngle=-40)),
        y=alt.Y(f"{y}:N", sort=y_order, title=y_title))
    rect = base.mark_rect().encode(
        color=color,
        tooltip=["source", "target", "task_shown", alt.Tooltip("regret:Q", format=".3g"),
                 alt.Tooltip("regret_min:Q", format=".3g"),
                 alt.Tooltip("regret_max:Q", format=".3g"), "source_count"])
    text = base.mark_text(fontSize=max(style["font_size"] - 2, 7)).encode(
        text=alt.Text("regret:Q", format=".2g") if text is None else text,
        color=alt.condition(dark, alt.value("white"), alt.value("black")))
    return alt.layer(rect, text).properties(
        width=max(style["panel_width"], 26 * len(x_order)),
        height=max(style["panel_height"], 20 * len(y_order)))


def transfer_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style, title) -> alt.Chart:
    """Transfer heat maps in nats of regret (mean over the source's optimal class): source
    predictor by target predictor, a panel per task; source task by target task, a panel per
    predictor; and, where the experiment shares tasks with others, each other experiment's
    predictors (rows) under this one's (columns), a panel per task."""
    data = frame[frame["source_prompts"] == "optimal_class"].copy()
    data["source"] = _unit(data["source_predictor"], data["source_replicate"])
    data["target"] = _unit(data["target_predictor"], data["target_replicate"])
    label = {t: f"{t} ({'IMD' if imd[t] else 'OOMD'})" for t in tasks}
    data["task_shown"] = data["target_task"].map(label)
    units = list(dict.fromkeys(sorted(
        data["target"], key=lambda u: (predictors.index(u.split(" ")[0])
                                       if u.split(" ")[0] in predictors else len(predictors), u))))
    # An inf regret (the source's optimum holds a prompt the target cannot produce: KL inf
    # there) is written as ∞ and coloured as the largest finite regret; no inf reaches Vega.
    infinite = np.isinf(data["regret"].to_numpy(dtype=float))
    heat = {}
    if infinite.any():
        finite = data["regret"].where(~infinite)
        top = float(finite.max()) if finite.notna().any() else 1.0
        data["regret_label"] = ["∞" if np.isinf(v) else f"{v:.2g}" for v in data["regret"]]
        data["regret_shown"] = data["regret"].where(~infinite, top)
        for column in ("regret", "regret_min", "regret_max"):
            data[column] = data[column].where(np.isfinite(data[column]), np.nan)
        heat = {"text": alt.Text("regret_label:N"), "dark": "datum.regret_shown > datum.dark"}
        title = _noted(title, f"∞: the source's optimum holds a prompt impossible for the "
                              f"target (KL = ∞; {int(infinite.sum())} cells, coloured as the "
                              "largest finite regret)")
    else:
        top = float(data["regret"].max()) if len(data) else 1.0
    data["dark"] = 0.6 * top if top > 0 else 1.0
    color = alt.Color("regret_shown:Q" if infinite.any() else "regret:Q",
                      title="regret (nats)",
                      scale=alt.Scale(scheme="orangered", type="sqrt", domainMin=0))
    blocks = []
    pred = data[data["comparison"] == "predictors"]
    if len(pred):
        blocks.append(_heat(pred, "target", "source", "target (scored on)",
                            "source (its optimum)", units, units, color, style, **heat)
                      .facet(column=alt.Column("task_shown:N", title=None, header=_header(style),
                                               sort=[label[t] for t in tasks]))
                      .properties(title="across predictors, per task"))
    task = data[data["comparison"] == "tasks"].assign(
        source_label=lambda d: d["source_task"].map(label),
        target_label=lambda d: d["target_task"].map(label))
    if len(task):
        order = [label[t] for t in tasks]
        blocks.append(_heat(task, "target_label", "source_label", "target task",
                            "source task (its optimum)", order, order, color, style, **heat)
                      .facet(column=alt.Column("target:N", title=None, header=_header(style),
                                               sort=units))
                      .properties(title="across tasks, per predictor"))
    other = data[data["comparison"] == "pretraining"].copy()
    if len(other):
        other["source"] = other["source_experiment"] + " / " + other["source"]
        sources = sorted(other["source"].unique())
        blocks.append(_heat(other, "target", "source", "target (this experiment)",
                            "source experiment / predictor", units, sources, color, style,
                            **heat)
                      .facet(column=alt.Column("task_shown:N", title=None, header=_header(style),
                                               sort=[label[t] for t in tasks]))
                      .properties(title="across pretraining: other experiments' optima"))
    if not blocks:
        chart = nothing_to_plot(["Nothing to plot: no transfer rows."], style["panel_width"],
                                style["panel_height"], style)
    else:
        chart = alt.vconcat(*blocks).resolve_scale(color="shared")
    return _configure(chart, style, title)


def local_optima_chart(frame: pd.DataFrame, *, tasks, imd, predictors, style,
                       title) -> alt.Chart:
    """Every local optimum: its KL above the global optimum (log axis; the global optimum
    on the floor, a diamond) against its basin size under steepest descent (log axis); a
    column per task, a row (and a colour) per predictor."""
    data = frame.copy()
    data["task_label"], order = task_labels(data, tasks, imd)
    data["above_plot"] = np.maximum(data["kl_above_optimum"].astype(float), KL_FLOOR)
    data["kind"] = np.where(data["optimal"], "global optimum (on the floor)", "local optimum")
    data["prompt_shown"] = data["prompt"].where(data["prompt"] != "", "∅")
    points = alt.Chart().mark_point(filled=True, opacity=0.75).encode(
        x=alt.X("basin_size:Q", scale=alt.Scale(type="log"), title="basin size (prompts)",
                axis=alt.Axis(format="~s", labelOverlap="greedy")),
        y=alt.Y("above_plot:Q", scale=alt.Scale(type="log"),
                title="above optimum (nats)",
                axis=alt.Axis(format="~e", labelOverlap="greedy")),
        color=alt.Color("predictor:N", scale=_predictor_scale(style, predictors),
                        title="predictor"),
        shape=alt.Shape("kind:N", title=None,
                        scale=alt.Scale(domain=["global optimum (on the floor)",
                                                "local optimum"],
                                        range=["diamond", "circle"])),
        size=alt.value(60),
        tooltip=["predictor", "task", "prompt_shown", "plateau", "basin_size",
                 alt.Tooltip("kl_above_optimum:Q", format=".3g")])
    chart = alt.layer(points).properties(width=style["panel_width"],
                                         height=style["panel_height"]).facet(
        column=alt.Column("task_label:N", sort=order, title=None, header=_header(style)),
        row=alt.Row("predictor:N", sort=predictors, title=None, header=_header(style)),
        data=data)
    return _configure(chart, style, title)
