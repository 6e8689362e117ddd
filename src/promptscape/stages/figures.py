"""Stage `plot_figure`: one figure of one experiment, as SVG, PNG and HTML."""

from __future__ import annotations

import logging

from promptscape import figures, tables

log = logging.getLogger("promptscape")

FIGURES = {
    # figure name: (chart builder, artifact(s) it reads, headline); a builder of several
    # artifacts receives a dict of frames by artifact name.
    "reliability": (figures.reliability_chart, "reliability",
                    "How often exhaustive search finds an optimal prompt"),
    "landscape": (figures.landscape_chart, "landscape",
                  "Prompt landscape: KL of every prompt against its rank"),
    "choices": (figures.choices_chart, "choices", "Which prompts the search picks"),
    "efficiency": (figures.efficiency_chart, "efficiency",
                   "Prompt efficiency: typical task samples against optimal prompts"),
    "training": (figures.training_chart, ("training_curve", "predictor_regret"),
                 "Neural predictors against the exact Bayes predictor"),
    "neural_vs_bayes": (figures.neural_vs_bayes_chart, "landscape",
                        "How far the networks' prompt landscapes are from the Bayes one"),
}
NEURAL_FIGURES = ("training", "neural_vs_bayes")  # only for experiments with a network


def plot_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                experiment: str, pretraining: str, tasks: list[str], imd: dict,
                predictors: list[str], style: dict) -> None:
    build, artifact, headline = FIGURES[figure]
    if isinstance(artifact, tuple):
        frame = {name: tables.read([p for p in tables_in if tables.artifact_of(p) == name], name)
                 for name in artifact}
    else:
        frame = tables.read(tables_in, artifact)
    title = {"text": headline, "subtitle": f"experiment {experiment}: pretraining {pretraining}"}
    chart = build(frame, tasks=tasks, imd=imd, predictors=predictors, style=style, title=title)
    figures.save(chart, svg=svg, png=png, html=html, scale=style["png_scale"])
    log.info("wrote the %s figure of %s", figure, experiment)
