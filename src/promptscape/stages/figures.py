"""Stage `plot_figure`: one figure of one experiment, as SVG, PNG and HTML."""

from __future__ import annotations

import logging

from promptscape import figures, tables

log = logging.getLogger("promptscape")

FIGURES = {
    # figure name: (chart builder, artifact it reads, headline)
    "reliability": (figures.reliability_chart, "reliability",
                    "How often exhaustive search finds an optimal prompt"),
    "landscape": (figures.landscape_chart, "landscape",
                  "Prompt landscape: KL of every prompt against its rank"),
    "choices": (figures.choices_chart, "choices", "Which prompts the search picks"),
}


def plot_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                experiment: str, pretraining: str, tasks: list[str], imd: dict,
                predictors: list[str], style: dict) -> None:
    build, artifact, headline = FIGURES[figure]
    frame = tables.read(tables_in, artifact)
    title = {"text": headline, "subtitle": f"experiment {experiment}: pretraining {pretraining}"}
    chart = build(frame, tasks=tasks, imd=imd, predictors=predictors, style=style, title=title)
    figures.save(chart, svg=svg, png=png, html=html, scale=style["png_scale"])
    log.info("wrote the %s figure of %s", figure, experiment)
