"""Stage `plot_figure`: one figure of one experiment, as SVG, PNG and HTML.

The registry `FIGURES` is light: the workflow imports it at parse time (every job, cluster
jobs included), so it names each chart builder instead of importing it; `plot_figure`
imports `promptscape.report.figures` (altair) and `promptscape.pipeline.tables` (pyarrow) when it runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("promptscape")


@dataclass(frozen=True)
class Figure:
    builder: str  # name of the chart function in promptscape.report.figures
    artifacts: str | tuple[str, ...]  # artifact(s) it reads; a tuple gives a dict of frames
    headline: str
    neural: bool = False  # only for experiments with a neural predictor
    replicated: bool = False  # only for experiments with a model of several replicates
    bayes: bool = False  # only for experiments with the exact Bayes predictor
    # Only for experiments with several dataset-selection methods, and every method's rows;
    # every other figure shows selection random (D_N drawn from the task).
    selections: bool = False
    # Only for experiments that run a prompt-search strategy besides exhaustive (config key
    # experiments.<name>.strategies).
    strategies: bool = False
    # Every replicate's rows (True), or replicate 0 of each predictor (the one network of a
    # model without replicates), which is what every other figure shows.
    all_replicates: bool = False

    @property
    def code(self) -> tuple[str, ...]:
        """The entries of what `plot_figure` runs for this figure through its deferred
        imports (its code identity's per-job member; promptscape.pipeline.provenance)."""
        return (f"promptscape.report.figures:{self.builder}", "promptscape.report.figures:save",
                "promptscape.pipeline.tables:read", "promptscape.pipeline.tables:artifact_of",
                "promptscape.pipeline.tables:first_replicate", "promptscape.pipeline.tables:random_selection")


FIGURES = {
    "reliability": Figure("reliability_chart", ("reliability", "reliability_prediction"),
                          "How often exhaustive search finds an optimal prompt, measured "
                          "and predicted"),
    "landscape": Figure("landscape_chart", "landscape",
                        "Prompt landscape: KL of every prompt against its rank"),
    "choices": Figure("choices_chart", "choices", "Which prompts the search picks"),
    "efficiency": Figure("efficiency_chart", "efficiency",
                         "Prompt efficiency: typical task samples against optimal prompts"),
    "training": Figure("training_chart", ("training_curve", "predictor_regret"),
                       "Neural predictors against the exact Bayes predictor", neural=True),
    "neural_vs_bayes": Figure("neural_vs_bayes_chart", "landscape",
                              "How far the networks' prompt landscapes are from the Bayes one",
                              neural=True),
    "replicates": Figure("replicates_chart", "reliability",
                         "Proportion correct of every independently trained network",
                         neural=True, replicated=True, all_replicates=True),
    "posterior": Figure("posterior_chart", ("landscape", "efficiency"),
                        "How a prompt steers the posterior: KL against the posterior "
                        "predictive it induces (exact Bayes)", bayes=True),
    "selection": Figure("selection_chart", "reliability",
                        "Does choosing D_N by variance make search reliable? Proportion "
                        "correct and regret per dataset-selection method", selections=True),
    "strategies": Figure("strategies_chart", "strategies",
                         "Which search strategy finds the optimal prompt, with how many "
                         "evaluations", strategies=True),
}
NEURAL_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.neural)
REPLICATED_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.replicated)
BAYES_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.bayes)
SELECTION_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.selections)
STRATEGY_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.strategies)
# Figures of the whole study, one each, across experiments (results_dir/figures/).
STUDY_FIGURES = {
    "variance_plane": Figure("variance_plane_chart", "reliability_prediction",
                             "Why search fails: the gap to the best rival prompt against "
                             "the paired noise of its measurement"),
}


def experiment_figures(*, neural: bool, replicated: bool, bayes: bool,
                       selections: bool = False, strategies: bool = False) -> list[str]:
    """The figures of an experiment with (or without) a network, a replicated model, the
    Bayes predictor, several dataset-selection methods and a search strategy besides
    exhaustive: the one rule for the workflow's targets and the cost plan."""
    return [name for name, spec in FIGURES.items()
            if (neural or not spec.neural) and (replicated or not spec.replicated)
            and (bayes or not spec.bayes) and (selections or not spec.selections)
            and (strategies or not spec.strategies)]


def plot_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                experiment: str, pretraining: str, tasks: list[str], imd: dict,
                predictors: list[str], style: dict) -> None:
    from promptscape.pipeline import tables  # altair and pyarrow: not at parse time
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


def plot_study_figure(*, figure: str, tables_in: list[str], svg: str, png: str, html: str,
                      experiments: list[str], style: dict) -> None:
    """One figure of the whole study (`STUDY_FIGURES`) from every experiment's tables
    (replicate 0 of each predictor)."""
    from promptscape.pipeline import tables  # altair and pyarrow: not at parse time
    from promptscape.report import figures

    spec = STUDY_FIGURES[figure]
    frame = tables.first_replicate(tables.read(tables_in, spec.artifacts))
    title = {"text": spec.headline, "subtitle": f"experiments {', '.join(experiments)}"}
    chart = getattr(figures, spec.builder)(frame, style=style, title=title)
    figures.save(chart, svg=svg, png=png, html=html, scale=style["png_scale"])
    log.info("wrote the study figure %s", figure)
