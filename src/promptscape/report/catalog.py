"""The figure registry: `FIGURES` (per experiment) and `STUDY_FIGURES` (one each for the
whole study) are the one owner of what a figure is: its chart builder, the artifacts it
reads (the workflow's inputs, `promptscape.study.layout.experiment_files`), when an
experiment has it (`Figure.applies`, for the workflow's targets and the cost plan) and its
caption in the report (workflow/report/figure.rst shows it).

It is light: the workflow imports it at parse time (every job, cluster jobs included), so
it names each chart builder instead of importing it and imports nothing at module level but
the standard library; `promptscape.pipeline.stages.figures_stage` draws the figures.
``python -m promptscape.report.catalog`` prints docs/figures.md.
"""

from __future__ import annotations

from dataclasses import dataclass


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
    # Only for experiments that tune their networks (experiments.<name>.tuning).
    tuning: bool = False
    # Every replicate's rows (True), or replicate 0 of each predictor (the one network of a
    # model without replicates), which is what every other figure shows.
    all_replicates: bool = False
    # Its caption in the report (reStructuredText; workflow/report/figure.rst shows it and
    # fills ``{models}`` with the network settings the config gives).
    caption: str = ""

    @property
    def tables(self) -> tuple[str, ...]:
        """The artifacts it reads, as a tuple."""
        return self.artifacts if isinstance(self.artifacts, tuple) else (self.artifacts,)

    def applies(self, **traits: bool) -> bool:
        """Whether an experiment with these traits (`experiment_traits`) has the figure."""
        return all(traits[name] or not getattr(self, name) for name in TRAITS)

    @property
    def code(self) -> tuple[str, ...]:
        """The entries of what `plot_figure` runs for this figure through its deferred
        imports (the code identity's per-job member of a job that draws it;
        promptscape.pipeline.provenance)."""
        return (f"promptscape.report.figures:{self.builder}", "promptscape.report.figures:save",
                "promptscape.study.tables:read", "promptscape.study.tables:artifact_of",
                "promptscape.study.tables:first_replicate", "promptscape.study.tables:random_selection")


FIGURES = {
    "reliability": Figure("reliability_chart", ("reliability", "reliability_prediction"),
                          "How often exhaustive search finds an optimal prompt, measured "
                          "and predicted",
        caption=(
            'How often exhaustive prompt search finds an optimal prompt: the proportion of '
            'seeds whose empirically best prompt (on a dataset of N task sequences) is in the'
            ' optimal class, against N (log axis), with Wilson 95% intervals; one panel per '
            'task, one colour per predictor. Dashed: the predicted proportion correct (table '
            "reliability_prediction): the exact multinomial sum over the datasets' "
            'frequencies where it ran, the normal (variance) theory elsewhere.')),
    "landscape": Figure("landscape_chart", "landscape",
                        "Prompt landscape: KL of every prompt against its rank",
        caption=(
            'The prompt landscape: KL(task ‖ prompted predictor) of every prompt of length 0 '
            'to L_max (log axis) against its rank (0: the optimal class; the other prompts by'
            ' dense rank of L); diamonds mark the optimal class, labelled with its best '
            'prompt; under Monte Carlo, hollow triangles mark its members whose difference '
            'from the best is not resolved at family-wise 95% (Bonferroni, see '
            'docs/science.md); one panel per task, one colour per predictor. Prompts of '
            'equal rank and KL (a count class) are one point; beyond 1,500 points a panel '
            'shows the 300 best and an even thinning of the rest by rank (its subtitle says '
            'so).')),
    "choices": Figure("choices_chart", "choices", "Which prompts the search picks",
        caption=(
            'Which prompts the search picks: how often each prompt is chosen at each dataset '
            'size N; rows are prompts by rank, ★ and a red outline mark the optimal class, ☆ '
            'and an orange outline its members not resolved from the best estimate (Monte '
            'Carlo landscapes); one column per task, one row per predictor.')),
    "efficiency": Figure("efficiency_chart", "efficiency",
                         "Prompt efficiency: typical task samples against optimal prompts",
        caption=(
            'Prompt efficiency: KL (log axis) against prompt length l (symlog axis) for '
            'typical prompts drawn from the task (median line, interquartile band) and for '
            'the optimal prompt of length at most l (dashed); one panel per task, one colour '
            'per predictor.')),
    "training": Figure("training_chart", ("training_curve", "predictor_regret"),
                       "Neural predictors against the exact Bayes predictor", neural=True,
        caption=(
            'The neural predictors against the exact Bayes predictor: training curves (batch '
            'regret against Bayes, moving mean) and the regret by position on held-out '
            'pretraining sequences; one colour per network. Network settings given in the '
            'config: {models}.')),
    "neural_vs_bayes": Figure("neural_vs_bayes_chart", "landscape",
                              "How far the networks' prompt landscapes are from the Bayes one",
                              neural=True,
        caption=(
            "How far the networks' prompt landscapes are from the Bayes one: the KL of every "
            'prompt under each network against its KL under the Bayes predictor (log-log; on '
            "the diagonal a network's landscape is the ideal one); one panel per task.")),
    "replicates": Figure("replicates_chart", "reliability",
                         "Proportion correct of every independently trained network",
                         neural=True, replicated=True, all_replicates=True,
        caption=(
            "Is a network's behaviour its family's or one training run's? The proportion "
            'correct against N of every independently trained replicate of each network (thin'
            " lines; the band spans the replicates' range) next to the Bayes predictor with "
            'its Wilson 95% intervals; one panel per task, one colour per predictor.')),
    "posterior": Figure("posterior_chart", ("landscape", "efficiency"),
                        "How a prompt steers the posterior: KL against the posterior "
                        "predictive it induces (exact Bayes)", bayes=True,
        caption=(
            'How a prompt steers the posterior of the exact Bayes predictor: the KL of every '
            'prompt class (log axis) against the posterior predictive probability q(v* | '
            'prompt) of one symbol (binary: symbol 1) that the prompt induces; the optimal '
            'class is marked and labelled, and the dashed line is the least KL of any prompt '
            "up to the efficiency stage's longest length (what longer prompts can reach); one"
            ' panel per task.')),
    "selection": Figure("selection_chart", "reliability",
                        "Does choosing D_N by variance make search reliable? Proportion "
                        "correct and regret per dataset-selection method", selections=True,
        caption=(
            'Does choosing D_N by variance make prompt search reliable? The proportion '
            'correct (Wilson 95% rules) and the mean regret (log axis; rules: 25-75% of the '
            'seeds) against N for each dataset-selection method of the experiment '
            '(dataset_selection, docs/science.md): random (D_N drawn from the task, the '
            "study's), high_variance (the N sequences of a pool of P whose losses vary most "
            'across the K prompts best on the pool), high_variance_weighted (N pool sequences'
            ' drawn with probabilities growing with that spread, Horvitz-Thompson weighted so'
            ' that the empirical loss stays unbiased) and pool (all P pool sequences: random '
            'selection with N = P, the ceiling of the methods that see the pool); one column '
            'per task, one row per predictor.')),
    "strategies": Figure("strategies_chart", "strategies",
                         "Which search strategy finds the optimal prompt, with how many "
                         "evaluations", strategies=True,
        caption=(
            'Which prompt-search strategy finds an optimal prompt, with how many evaluations '
            '(distinct prompts whose empirical loss on D_N was computed; a gradient '
            'computation counts as one), on the same datasets as exhaustive search '
            '(strategies, strategy_budgets; docs/science.md). Three blocks against the budget'
            ' (log axis): the proportion correct (Wilson 95% rules), the mean regret (log '
            'axis; rules: 25-75% of the seeds) and the proportion that found the empirical '
            'optimum of D_N; exhaustive search is the dashed ceiling (its band: its Wilson '
            "interval; its diamond at the budget of all prompts), and random search's exact "
            'expectation 1 - C(P - m, B) / C(P, B) is drawn beside its measured rate (m the '
            "seed's empirical-optimum class size). A strategy can be correct more often than "
            'exhaustive search where the empirical optimum is not optimal (estimation error);'
            ' one column per task, one row per predictor and N.')),
    "tuning": Figure("tuning_chart", "tuning",
                     "Beyond hard prompts: tuned networks against the exact hard optimum",
                     tuning=True, all_replicates=True,
        caption=(
            'Beyond hard prompts: KL(task ‖ tuned network) (log axis) against the dataset '
            'size N for each tuner of the experiment (tuning; docs/science.md), trained on '
            'each seed\'s D_N alone and shown at its largest step budget: the median over '
            'seeds (points joined by a line; circles and solid lines: fixed settings, '
            'triangles and dashed lines: settings chosen on held-out data) and the 25-75% '
            'range (bar). At N = ∞ (diamonds) each tuner\'s own optimum, trained on the task '
            'itself. Black solid rule: the exact optimum of the hard prompts of length 0 to '
            'L_max (landscape); black crosses, dotted: the median KL of the hard prompt '
            'exhaustive search picks from the same D_N. One column per task, one row per '
            'tuned network.')),
    "edits": Figure("edits_chart", "edits",
                    "Which single edits of a prompt help",
        caption=(
            'Which single edits of a prompt help: for every prompt of length 0 to '
            'L_max and every single edit of it (insert, delete, substitute, swap two '
            'neighbours) that stays within those lengths, ΔKL = KL(edited) − KL(prompt) from '
            'the landscape (exact, or the evaluation-set estimate where the landscape is '
            'estimated: the title says which, with the kind), grouped by edit kind relative to the task (adds or removes its '
            'most or least probable symbol, lengthens, shortens, reorders; table edits): the '
            'median (point, coloured by the share of edits that improve) and the 25-75% '
            'range (rule), symmetric log axis; negative helps. Kinds that need a tied most or '
            'least probable symbol (coin(0.5)) are absent for that task. One column per '
            'task, one row per predictor.')),
    "transfer": Figure("transfer_chart", "transfer",
                       "Do optimal prompts transfer? Regret of one predictor's or task's "
                       "optimum on another", all_replicates=True,
        caption=(
            "Do optimal prompts transfer? Heat maps of transfer regret in nats (table "
            "transfer): KL under the target of the source's optimal prompts minus the "
            "target's own optimum, averaged over the source's optimal class (0 on the "
            "diagonal). Top: source predictor (row) by target predictor (column), one panel "
            "per task; middle: source task by target task, one panel per predictor; bottom, "
            "where the experiment shares a task and L_max with others: the other "
            "experiments' optima under this experiment's predictors.")),
    "local_optima": Figure("local_optima_chart", "local_optima",
                           "Local optima of the landscape: how far above the optimum, and "
                           "how many prompts descend to each",
        caption=(
            'Local optima of each landscape under single edits (table local_optima): every '
            'prompt that no single edit improves, its KL above the global optimum (log axis;'
            ' the global optimum, a diamond, sits on the floor) against its basin size, the '
            'number of prompts whose steepest descent (each prompt moves to its best '
            'improving single edit) ends at it (log axis); one column per task, one row per'
            ' predictor.')),
}
# What makes an experiment have a figure: a Figure field each, True where the figure needs
# it, and what it means in the config (docs/figures.md says it).
TRAITS = {
    "neural": "a neural predictor (`predictors` names a model)",
    "replicated": "a model with `replicates` above 1",
    "bayes": "the Bayes predictor",
    "selections": "several `dataset_selection` methods",
    "strategies": "a search strategy besides exhaustive (`strategies`)",
    "tuning": "a `tuning` section",
}
STRATEGY_FIGURES = tuple(name for name, spec in FIGURES.items() if spec.strategies)
# Figures of the whole study, one each, across experiments (results_dir/figures/).
STUDY_FIGURES = {
    "variance_plane": Figure(
        "variance_plane_chart", "reliability_prediction",
        "Why search fails: the gap to the best rival prompt against the paired noise of its "
        "measurement",
        caption=(
            "Why search fails, predicted: every (experiment, predictor, task) on the plane of "
            "its gap (the KL of the best prompt class outside the optimal class minus the "
            "optimum's) against the paired per-sequence standard deviation of that "
            "difference (log-log), coloured by the measured proportion correct at the "
            "experiment's largest N. Dashed lines: where two paired standard errors at N "
            "equal the gap (sd = gap sqrt(N) / 2); above the line for N, a dataset of N "
            "sequences cannot tell the optimum from its best rival. A study whose "
            "landscapes are all flat (no prompt outside the optimal class with a positive "
            "gap, e.g. max_prompt_length 0) draws a panel that says there is nothing to "
            "plot.")),
}


def experiment_traits(study, exp) -> dict[str, bool]:
    """What decides which figures an experiment has (`TRAITS`): a network, a model with
    several replicates, the Bayes predictor, several dataset-selection methods, a search
    strategy besides exhaustive."""
    return dict(neural=any(study.is_neural(p) for p in exp.predictors),
                replicated=any(study.replicates(p) > 1 for p in exp.predictors),
                bayes="bayes" in exp.predictors, selections=len(exp.selections) > 1,
                strategies=exp.runs_strategies, tuning=exp.tuning is not None)


def experiment_figures(*, neural: bool, replicated: bool, bayes: bool,
                       selections: bool = False, strategies: bool = False,
                       tuning: bool = False) -> list[str]:
    """The figures of an experiment with (or without) a network, a replicated model, the
    Bayes predictor, several dataset-selection methods and a search strategy besides
    exhaustive, and tuning (`Figure.applies`)."""
    traits = dict(neural=neural, replicated=replicated, bayes=bayes, selections=selections,
                  strategies=strategies, tuning=tuning)
    return [name for name, spec in FIGURES.items() if spec.applies(**traits)]


def figures_of(study, exp) -> list[str]:
    """The figures of experiment `exp` of `study`: the one rule for the workflow's targets
    and the cost plan."""
    return experiment_figures(**experiment_traits(study, exp))


def _markdown_text(text: str) -> str:
    """A caption (reStructuredText prose) as Markdown prose: `*` and `|` literal."""
    return text.replace("*", "\\*").replace("|", "\\|")


def _names(found: list[str]) -> str:
    """`a`, `b` and `c`."""
    quoted = [f"`{n}`" for n in found]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _markdown_entry(name: str, spec: Figure, study: bool = False) -> list[str]:
    needs = [words for trait, words in TRAITS.items() if getattr(spec, trait)]
    when = ("once, from every experiment" if study
            else "for experiments with " + " and ".join(needs) if needs else "for every experiment")
    reads = ", ".join(f"`{artifact}`" for artifact in spec.tables)
    caption = spec.caption.replace("{models}", "(the network settings the config gives)")
    return [f"### `{name}`", "", f"**{_markdown_text(spec.headline)}.** Drawn {when}; "
            f"reads {reads} ([artifacts.md](artifacts.md)).", "", _markdown_text(caption), ""]


def markdown() -> str:
    """The figures of `FIGURES` and `STUDY_FIGURES` as Markdown, for docs/figures.md."""
    every = [name for name, spec in FIGURES.items() if spec.all_replicates]
    selections = [name for name, spec in FIGURES.items() if spec.selections]
    lines = [
        "# Figures", "",
        "Per experiment, in `results/<experiment>/figures/`, and for the whole study, in "
        "`results/figures/`, each figure as SVG, PNG and standalone HTML (Vega scripts "
        "inlined, no CDN); `snakemake --report report.html` collects them, each with its "
        "caption (the text below, with the experiment's settings). One job per experiment "
        "(rule `plot_figures`) and one for the study (`plot_study_figures`) draw them. This "
        "page is generated from the registry (`FIGURES` and `STUDY_FIGURES` in "
        "`src/promptscape/report/catalog.py`) by "
        "`python -m promptscape.report.catalog`; a test keeps it in sync.", "",
        f"Every figure but {_names(every)} shows replicate 0 of each network, and every "
        f"figure but {_names(selections)} the search on D_N drawn from the task "
        "(`dataset_selection` random). A study figure shows the experiments of the config "
        "that drew it: two configs that share a `results_dir` redraw it in turn.", "",
        "## Per experiment", "",
    ]
    for name, spec in FIGURES.items():
        lines += _markdown_entry(name, spec)
    lines += ["## The whole study", ""]
    for name, spec in STUDY_FIGURES.items():
        lines += _markdown_entry(name, spec, study=True)
    lines += [
        "## Adding a figure", "",
        "Its chart in `src/promptscape/report/figures.py` and its entry in the registry: "
        "[extending.md](extending.md#a-figure). Examples of these figures, with what they "
        "show, are in [science.md](science.md#findings-of-complete-runs).", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
