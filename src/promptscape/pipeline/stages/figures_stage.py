"""Stages `plot_figures` and `plot_study_figures`: every figure of one experiment (of the
whole study), each as SVG, PNG and HTML, in one job.

What a figure is (its chart builder, the artifacts it reads, when an experiment has it and
its caption) is the registry's, `promptscape.report.catalog`. `plot_figure` imports
`promptscape.report.figures` (altair) and `promptscape.study.tables` (pyarrow) when it runs.

One job draws all of an experiment's figures: most of drawing one is starting Altair and
vl-convert (seconds), which a job pays once. Each figure is drawn as on its own
(`plot_figure`, from the files of its own artifacts), so the files do not depend on which
other figures the job draws.
"""

from __future__ import annotations

import logging
import os

from promptscape.report.catalog import FIGURES, STUDY_FIGURES, Figure

log = logging.getLogger("promptscape")


def plot_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                experiment: str, pretraining: str, tasks: list[str], imd: dict,
                predictors: list[str], style: dict) -> None:
    from promptscape.study import tables  # altair and pyarrow: not at parse time
    from promptscape.report import figures

    spec = FIGURES[figure]
    build = getattr(figures, spec.builder)
    if isinstance(spec.artifacts, tuple):
        frame = {name: tables.read([p for p in tables_in if tables.artifact_of(p) == name], name)
                 for name in spec.artifacts}
    else:
        frame = tables.read(tables_in, spec.artifacts)
    if not spec.all_replicates:
        frame = ({name: tables.first_replicate(f) for name, f in frame.items()}
                 if isinstance(frame, dict) else tables.first_replicate(frame))
    if not spec.selections:
        frame = ({name: tables.random_selection(f) for name, f in frame.items()}
                 if isinstance(frame, dict) else tables.random_selection(frame))
    title = {"text": spec.headline,
             "subtitle": f"experiment {experiment}: pretraining {pretraining}"}
    chart = build(frame, tasks=tasks, imd=imd, predictors=predictors, style=style, title=title)
    figures.save(chart, svg=svg, png=png, html=html, scale=style["png_scale"])
    log.info("wrote the %s figure of %s", figure, experiment)


def _of_artifacts(paths: list[str], spec: Figure) -> list[str]:
    """The files among `paths` of the artifacts figure `spec` reads (each file's artifact
    from its schema metadata, `tables.artifact_of`)."""
    from promptscape.study import tables  # pyarrow: not at parse time

    return [p for p in paths if tables.artifact_of(p) in spec.tables]


def plot_figures(*, figures: list[str], tables_in: list[str], directory: str,
                 **settings) -> None:
    """Every figure of one experiment (`figures`, its `figures_of`) in one process, each as
    `directory`/<figure>.svg, .png and .html, drawn by `plot_figure` from the files of
    `tables_in` of its own artifacts; `settings`: `plot_figure`'s experiment, pretraining,
    tasks, imd, predictors and style."""
    for figure in figures:
        out = os.path.join(directory, figure)
        plot_figure(figure=figure, tables_in=_of_artifacts(tables_in, FIGURES[figure]),
                    svg=f"{out}.svg", png=f"{out}.png", html=f"{out}.html", **settings)


def plot_study_figures(*, figures: list[str], tables_in: list[str], directory: str,
                       **settings) -> None:
    """Every figure of the whole study (`figures`, those of `STUDY_FIGURES`) in one process,
    as `plot_figures` draws an experiment's (`plot_study_figure`; `settings`: its
    experiments, style and configfiles)."""
    for figure in figures:
        out = os.path.join(directory, figure)
        plot_study_figure(figure=figure,
                          tables_in=_of_artifacts(tables_in, STUDY_FIGURES[figure]),
                          svg=f"{out}.svg", png=f"{out}.png", html=f"{out}.html", **settings)


def plot_study_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                      experiments: list[str], style: dict,
                      configfiles: list[str] = ()) -> None:
    """One figure of the whole study (`STUDY_FIGURES`) from every experiment's tables
    (replicate 0 of each predictor). Its subtitle names the experiments and the config
    files that drew it: configs that share a results folder share its study figures, and
    the figure says whose it is."""
    from promptscape.study import tables  # altair and pyarrow: not at parse time
    from promptscape.report import figures

    spec = STUDY_FIGURES[figure]
    frame = tables.first_replicate(tables.read(tables_in, spec.artifacts))
    drawn_for = f" (config {', '.join(configfiles)})" if configfiles else ""
    title = {"text": spec.headline,
             "subtitle": f"experiments {', '.join(experiments)}{drawn_for}"}
    chart = getattr(figures, spec.builder)(frame, style=style, title=title)
    figures.save(chart, svg=svg, png=png, html=html, scale=style["png_scale"])
    log.info("wrote the study figure %s", figure)
