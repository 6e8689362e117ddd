# Shared by every rules file: config validation, the experiment grid, wildcard constraints
# and the get_* helpers. Light at parse time: promptscape.study.config imports numpy, scipy.special
# and yaml, nothing heavier.
import functools
import json
import os
import re
import sys

import snakemake.io
from snakemake.logging import logger
from snakemake.iocontainers import Wildcards

from promptscape.study import arguments as arguments_lib
from promptscape.study import config as config_lib
from promptscape.study import identity
from promptscape.study import layout
from promptscape.study import schema
from promptscape.pipeline import costs
from promptscape.pipeline import plan
from promptscape.pipeline import provenance
from promptscape import selection as selection_lib
from promptscape.report.catalog import FIGURES, STUDY_FIGURES, figures_of

# Each config file once more, strictly (a key given twice is an error naming file and line),
# then the schema and semantic checks. The defaults are written back into `config`, so jobs
# read the settings that are no identity (training.device) from snakemake.config.
# --cores 0 (or less) would leave every job waiting for a core, silently and for ever.
_CORES = getattr(workflow.resource_settings, "cores", None)
if _CORES is not None and _CORES < 1 and not workflow.remote_exec:
    raise ValueError(
        f"--cores {_CORES}: snakemake needs at least one core to run a job (give --cores N "
        "with N >= 1, or --cores all)"
    )
schema.check_config_files(workflow.configfiles)
STUDY = config_lib.load(config, workflow.source_path("../schemas/config.schema.yaml"))
config.update(STUDY.raw)
# Every job's estimated peak memory against resources.max_mem_mb, before any work: an
# oversized config is a MemoryEstimateError naming the stage, experiment and keys (docs/plan.md).
plan.check(STUDY)
EXPERIMENTS = STUDY.experiments
# The config files in use, relative to the working directory where they lie below it (as
# the study figures name them: configs that share a results folder share those figures).
CONFIGFILES = [os.path.relpath(os.path.abspath(str(f))) for f in workflow.configfiles]
RESULTS = STUDY.results_dir
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"
MODEL_DIR = layout.model_dir_pattern(STUDY)


def out(artifact):
    """The output pattern of an artifact (tables.ARTIFACTS) under results_dir."""
    return layout.pattern(STUDY, artifact)


def results(path):
    """A path pattern under results_dir."""
    return f"{RESULTS}/{path}"


def logged(path):
    """A job's log under results_dir/logs."""
    return f"{LOGS}/{path}"


def benchmarked(path):
    """A job's benchmark record under results_dir/benchmarks."""
    return f"{BENCHMARKS}/{path}"


def in_model_dir(name):
    """A file of a trained network's folder (layout.model_dir_pattern)."""
    return f"{MODEL_DIR}/{name}"


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted(set(values)))


wildcard_constraints:
    experiment=_alternatives(EXPERIMENTS),
    task=_alternatives(t.name for e in EXPERIMENTS.values() for t in e.tasks),
    # The experiments' predictors and the networks post-trained ones are tuned from.
    predictor=_alternatives(
        m for e in EXPERIMENTS.values() for p in e.predictors for m in STUDY.lineage(p)
    ),
    source=_alternatives(STUDY.sources),
    identity=r"[0-9a-f]{10}",
    replicate=r"\d+",
    selection=_alternatives(selection_lib.METHODS),
    N=r"\d+",
    first=r"\d+",
    last=r"\d+",


# The pooled dataset-selection methods: searched by rule search_selected, the rest (random)
# by search_prompts.
POOLED_SELECTIONS = _alternatives(
    name for name, method in selection_lib.METHODS.items() if method.pooled
)


def mem_mb(rule_name):
    """The `mem_mb` resource of a heavy rule: the job's estimated peak memory
    (promptscape.pipeline.plan) with a margin, at most resources.max_mem_mb."""

    if rule_name not in plan.HEAVY:
        raise ValueError(f"rule {rule_name!r} is not a heavy rule (plan.HEAVY)")

    def estimate(wildcards):
        return plan.mem_mb(STUDY, rule_name, dict(wildcards.items()))

    return estimate


def code(rule_name):
    """The code identity of a job of rule `rule_name` (promptscape.pipeline.provenance,
    docs/caching.md), as a params function: the rule's stage function plus the source
    kinds and predictor families the job covers, of those `provenance.JOBS` declares for
    the rule. A job without a task (predictor) wildcard covers every task (predictor) of
    its experiment."""

    def identity(wildcards):
        names = wildcards.keys()
        exp = get_experiment(wildcards) if "experiment" in names else None
        if "source" in names:
            pretraining = STUDY.sources[wildcards.source]
        else:
            pretraining = exp and exp.pretraining
        if "task" in names:
            tasks = get_task(wildcards).source.kind
        else:
            tasks = exp and [t.source.kind for t in exp.tasks]
        if "predictor" in names:
            families = STUDY.family(wildcards.predictor)
        else:
            families = exp and [STUDY.family(p) for p in exp.predictors]
        post = "predictor" in names and STUDY.post_training(wildcards.predictor)
        if post and exp is None:  # a network's job: its post-training source and tuner
            tasks = STUDY.sources[post.source].kind
        return provenance.job_identity(
            rule_name,
            pretraining=pretraining and pretraining.kind,
            task=tasks,
            family=families,
            # The figures a figure job draws: its experiment's, or the study's.
            figure=figures_of(STUDY, exp) if exp else list(STUDY_FIGURES),
            tuner=(
                post.tuner
                if post and exp is None
                else exp and exp.tuning and list(exp.tuning.names)
            ),
        )

    return identity


@functools.lru_cache(maxsize=None)
def _producer(path):
    """The one workflow rule whose outputs match `path` (with their wildcard constraints, as
    Snakemake itself resolves it), and the wildcards of `path` under it."""
    found = [r for r in workflow.rules if r.output and r.is_producer(path)]
    if len(found) != 1:
        names = ", ".join(sorted(r.name for r in found)) or "none"
        raise ValueError(f"{path}: expected one rule that makes it, found {names}")
    return found[0], found[0].get_wildcards(path)


@functools.lru_cache(maxsize=None)
def producer_stamp(path):
    """The identity (promptscape.study.identity) of the job that makes `path`: its rule,
    that rule's own `code` and `args` params evaluated for the path's wildcards (so a stamp
    is declared once, by the rule that writes it), and the digest of the stamp of every
    file the job reads (`_job_inputs`), so a stamp covers everything upstream of it."""
    maker, found = _producer(path)
    wildcards = Wildcards(fromdict=found)
    try:
        args, code_identity = maker.params.args, maker.params.code
    except AttributeError:
        raise ValueError(
            f"rule {maker.name} makes {path} but has no `args` and `code` params, which "
            "are its artifacts' identity"
        ) from None
    return identity.stamp(
        maker.name,
        code_identity(wildcards) if callable(code_identity) else code_identity,
        args(wildcards) if callable(args) else args,
        RESULTS,
        {f: identity.digest(producer_stamp(f)) for f in _job_inputs(path)},
    )


# Above zero while `_job_inputs` expands a rule's input (the output check then does
# nothing: it runs when Snakemake itself expands the job).
_EXPANDING = [0]


@functools.lru_cache(maxsize=None)
def _job_inputs(path):
    """The stamped files (`_stamped_files`) of every input of the job that makes `path`,
    as Snakemake resolves its input for the path's wildcards."""
    maker, found = _producer(path)
    _EXPANDING[0] += 1
    try:
        files = maker.expand_input(dict(found))[0]
    finally:
        _EXPANDING[0] -= 1
    return tuple(sorted({s for f in files for s in _stamped_files(str(f))}))


def _stamped_files(path):
    """The files whose stored stamp identifies input `path`: the file itself when it is a
    Parquet artifact, else the Parquet outputs of the job that makes it (a network's
    checkpoint is identified by the training curve written beside it)."""
    if path.endswith(".parquet"):
        return [path]
    maker, found = _producer(path)
    outputs = [snakemake.io.apply_wildcards(str(o), found) for o in maker.output]
    return [o for o in outputs if o.endswith(".parquet")]


def input_stamps(wildcards, input):
    """A job's `identity` param: results_dir, and the stamp each input must store (each
    checked by the job before it runs, `identity.job`). A function of the input, so
    Snakemake leaves it out of the params it compares (the producers' own params are).
    """
    return dict(
        results_dir=RESULTS,
        inputs={
            checked: producer_stamp(str(path))
            for path in input
            for checked in _stamped_files(str(path))
        },
    )


# ---------------------------------------------------------------- stale outputs
# Snakemake keeps what a file was built from in .snakemake/, not in the file: a copied or
# restored results folder arrives without it, and Snakemake trusts its files by time. So,
# while Snakemake builds the DAG (before any job runs), every job's existing Parquet
# outputs have their stored stamp compared with the one the workflow would write now
# (`producer_stamp`), reading only each file's footer. A stale or unstamped output is
# rebuilt (its job forced, with a warning naming the file and what differs) when
# Snakemake is to run jobs; it is a named error otherwise (--report, --touch, listings).
# `guard_outputs` (called at the end of the Snakefile) adds the check to every rule
# with `args` and `code` params: a new rule gets it for free (docs/caching.md).
_STALE_SHOWN = []


def _forced(maker, path):
    dag = workflow.dag
    if dag is None:
        return False
    return path in dag.forcefiles or any(
        getattr(r, "name", r) == maker.name for r in dag.forcerules
    )


def _stale_reason(maker, path):
    """Why the existing output `path` of `maker` is not what the workflow would build now,
    or None where it is."""
    try:
        found = identity.stored(path)
    except identity.CorruptArtifactError as error:
        return f"{error}".replace(f"{path} is not", "it is not", 1).split(
            ": it is truncated"
        )[0]
    if found is None:
        return "it carries no identity (written by hand, or by an older promptscape)"
    diff = identity.differences(found, producer_stamp(path))
    if not diff:
        return None
    # The most telling difference first: an argument, then an upstream file, then code.
    order = ("args", "inputs", "code", "rule")
    diff.sort(
        key=lambda d: next((i for i, o in enumerate(order) if d[0].startswith(o)), 9)
    )
    name, old, new = diff[0]
    more = f" (and {len(diff) - 1} more)" if len(diff) > 1 else ""
    if name.startswith("inputs."):
        upstream = name[len("inputs.") :]
        if old == "<absent>":
            return f"it was not built from {upstream}, which the workflow gives it now{more}"
        if new == "<absent>":
            return f"it was built from {upstream}, which the workflow no longer gives it{more}"
        return (
            f"it was built from {upstream} as made by another config or code (stamp "
            f"digest {old}, now {new}){more}"
        )
    return (
        f"it was built with {name} = {json.dumps(old)}, the workflow would "
        f"now build it with {json.dumps(new)}{more}"
    )


def _mode():
    """ "run" when Snakemake is to run jobs (a dry run too): stale outputs are rebuilt;
    "refuse" for --report and --touch: they are a named error; "warn" for the rest that
    builds a DAG without running it (listings, --delete-all-output, --unlock, ...)."""
    if workflow.touch:
        return "refuse"
    if workflow.executor_plugin is not None:
        return "run"
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "create_report":
            return "refuse"
        frame = frame.f_back
    return "warn"


def _rebuild_command():
    """The run that rebuilds every stale artifact (a run forces their jobs)."""
    return " ".join(["snakemake", *(f"--configfile {f}" for f in CONFIGFILES)])


def check_outputs(maker):
    """An input function of `maker` that adds no input: it checks the job's existing
    Parquet outputs (see above) and returns []."""

    def checked(wildcards):
        if _EXPANDING[0] or workflow.remote_exec or workflow.subprocess_exec:
            return []
        values = dict(wildcards.items())
        mode = _mode()
        executing = mode == "run"
        for pattern in maker.output:
            path = snakemake.io.apply_wildcards(str(pattern), values)
            if _forced(maker, path):
                continue
            if not os.path.exists(path):
                # Snakemake rebuilds a missing file only where a job that reads it must
                # run: a lost intermediate would never come back.
                if executing:
                    workflow.dag.forcefiles.add(path)
                continue
            if not path.endswith(".parquet"):
                continue
            reason = _stale_reason(maker, path)
            if reason is None:
                continue
            if mode == "warn":
                logger.warning(f"{path} is stale: {reason}")
                continue
            if not executing:
                # Not an exception Snakemake would catch: it takes an error raised while it
                # builds the DAG for "this rule cannot make the file" and, the file being
                # there, uses it as it is.
                raise SystemExit(
                    f"StaleArtifactError: {path} is stale: {reason}. Run the workflow "
                    f"first, which rebuilds it: {_rebuild_command()}"
                )
            workflow.dag.forcefiles.add(path)
            _STALE_SHOWN.append(path)
            if len(_STALE_SHOWN) <= 100:
                logger.warning(
                    f"{path} is stale: {reason}; rebuilding it (rule {maker.name})"
                )
            elif len(_STALE_SHOWN) == 101:
                logger.warning("... more stale artifacts; rebuilding them too")
        return []

    return checked


def guard_outputs():
    """Add `check_outputs` to every rule that writes stamped artifacts."""
    for maker in workflow.rules:
        names = maker.params.keys() if hasattr(maker.params, "keys") else ()
        if "args" in names and "code" in names:
            maker.set_input(check_outputs(maker))


def get_experiment(wildcards):
    return EXPERIMENTS[wildcards.experiment]


def get_task(wildcards):
    return get_experiment(wildcards).task(wildcards.task)


def get_search_outputs(exp):
    return layout.search_outputs(STUDY, exp)


def get_landscape_outputs(exp):
    return layout.per_task(STUDY, exp, "landscape")


def get_aggregates():
    return layout.aggregates(STUDY)


def get_figures():
    """The figures/ folder of every experiment and of the study (rules plot_figures and
    plot_study_figures: each folder holds its figures as SVG, PNG and HTML)."""
    return [f"{RESULTS}/{name}/figures" for name in EXPERIMENTS] + [
        f"{RESULTS}/figures"
    ]


def get_prior_fits():
    """Every experiment's prior_fit files (`layout.prior_fits`: where its pretraining
    source is exchangeable)."""
    return [
        path for exp in EXPERIMENTS.values() for path in layout.prior_fits(STUDY, exp)
    ]


def _prior_experiment(wildcards):
    exp = get_experiment(wildcards)
    if not exp.probes_prior:
        raise ValueError(
            f"experiment {exp.name!r}: its pretraining source, of kind "
            f"{exp.pretraining.kind!r}, is not exchangeable, so probe_prior cannot read its "
            "prior back"
        )
    return exp


def get_prior_inputs(wildcards):
    """A network's checkpoint (its prompt-loss table holds no contexts beyond L_max);
    nothing for Bayes."""
    exp = _prior_experiment(wildcards)
    if not is_neural(wildcards.predictor):
        return {}
    return {
        "model": layout.checkpoint(
            STUDY, exp, wildcards.predictor, get_replicate(wildcards)
        )
    }


def get_prior_args(wildcards):
    exp = _prior_experiment(wildcards)
    return job_args(
        wildcards,
        "predictor",
        "replicate",
        "family",
        "pretraining",
        "experiment",
        "probe_length",
        probe_length=exp.probe_length,
    )


def get_block(wildcards):
    """The job's seed block, checked against the experiment's: a path of a block the
    config does not have (an older num_seeds or seeds_per_job) is refused by name."""
    exp, block = get_experiment(wildcards), (int(wildcards.first), int(wildcards.last))
    if block not in exp.seed_blocks():
        blocks = ", ".join(f"{a}-{b}" for a, b in exp.seed_blocks())
        raise ValueError(
            f"experiment {exp.name!r} has seed blocks {blocks}, not {block[0]}-{block[1]}"
        )
    return dict(first=block[0], last=block[1])


# The arguments the rules pass their stages (params args), by name, each computed from the
# job's wildcards: one definition each (promptscape.study.arguments), for `job_args`.


def job_args(wildcards, *names, **values):
    """A rule's arguments, in the order of `names` (the order is part of the params Snakemake
    compares): each the value given in `values`, else computed from the job's wildcards
    (`ARGUMENTS`); "block" is the job's seed block, first and last (`get_block`)."""
    unused = set(values) - set(names)
    if unused:
        raise ValueError(
            f"job_args: values {sorted(unused)} not among the names {names}"
        )
    args = {}
    for name in names:
        if name == "block":
            args.update(get_block(wildcards))
        elif name in values:
            args[name] = values[name]
        else:
            args[name] = arguments_lib.argument(STUDY, name, wildcards)
    return args


def get_aggregate_args(grid=None, within_epsilon=False):
    """An experiment aggregate's arguments: the experiment's source and tasks (what the
    summary checks its identity against), which tasks are in the meta-distribution, the
    grid of rows it must hold (`layout.search_grid` or `layout.strategy_grid`) and, for the
    tables that count seeds within epsilon of the optimum, `landscape.within_epsilon`.
    """

    def args(wildcards):
        exp = get_experiment(wildcards)
        extra = {} if grid is None else {"expected": grid(STUDY, exp)}
        if within_epsilon:
            extra["within_epsilon"] = STUDY.within_epsilon
        return job_args(
            wildcards,
            "experiment",
            "pretraining",
            "tasks",
            "in_meta_distribution",
            *extra,
            in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
            **extra,
        )

    return args


def get_dataset_args(wildcards):
    """simulate_tasks: D_N of every task and N of the experiment, for one seed block."""
    return job_args(
        wildcards, "experiment", "tasks", "task_length", "dataset_sizes", "block"
    )


def get_pool_args(wildcards):
    exp = get_experiment(wildcards)
    if exp.dataset_selection.pool_size is None:
        raise ValueError(
            f"experiment {exp.name!r} runs no pooled dataset selection, so has no pools"
        )
    return dict(get_dataset_args(wildcards), pool_size=exp.dataset_selection.pool_size)


def get_predictor_units(exp):
    """Every (predictor, replicate) of an experiment as a search job sees it: its family
    and what its losses are read from (`network_inputs`)."""
    return [
        dict(
            predictor=predictor,
            replicate=r,
            family=STUDY.family(predictor),
            **network_inputs(exp, predictor, r),
        )
        for predictor, r in STUDY.predictor_replicates(exp)
    ]


def get_search_inputs(wildcards):
    """The networks' prompt-loss tables or checkpoints a search job reads."""
    return [
        unit.get("table") or unit["model"]
        for unit in get_predictor_units(get_experiment(wildcards))
        if "table" in unit or "model" in unit
    ]


def get_search_args(wildcards):
    exp = get_experiment(wildcards)
    return job_args(
        wildcards,
        "predictors",
        "pretraining",
        "experiment",
        "tasks",
        "task_length",
        "dataset_sizes",
        "max_prompt_length",
        "enumeration_budget",
        "block",
        predictors=get_predictor_units(exp),
        tasks=[t.name for t in exp.tasks],
    )


def get_selection(wildcards):
    """The job's dataset-selection method, checked against the experiment's: a path of a
    method the config does not run is refused by name."""
    exp = get_experiment(wildcards)
    if wildcards.selection not in exp.selections:
        raise ValueError(
            f"experiment {exp.name!r} runs dataset_selection {list(exp.selections)}, "
            f"not {wildcards.selection!r}"
        )
    return wildcards.selection


def get_selected_search_args(wildcards):
    """A pooled selection's search: the search's arguments, its method's settings and the
    tasks' configs (the design's seed)."""
    exp, name = get_experiment(wildcards), get_selection(wildcards)
    return dict(
        get_search_args(wildcards),
        selection=name,
        selection_settings=exp.dataset_selection.settings(name),
        tasks={t.name: t.source.to_dict() for t in exp.tasks},
    )


def get_landscape_args(wildcards):
    return job_args(
        wildcards,
        "predictor",
        "replicate",
        "family",
        "pretraining",
        "experiment",
        "task_name",
        "task",
        "task_length",
        "max_prompt_length",
        "enumeration_budget",
    )


def get_figure_args(wildcards):
    """plot_figures: the experiment's figures (`figures_of`) and what their titles, panels
    and colours show."""
    exp = get_experiment(wildcards)
    return dict(
        figures=figures_of(STUDY, exp),
        experiment=exp.name,
        pretraining=f"{exp.pretraining_name} = {exp.pretraining.describe()}",
        tasks=[t.name for t in exp.tasks],
        imd={t.name: t.in_meta_distribution for t in exp.tasks},
        predictors=list(exp.predictors),
        style={**STUDY.figures, "predictor_colors": STUDY.predictor_colors()},
    )


def _figure_tables(exps, entries):
    """Every file of the artifacts the `entries` read in experiments `exps`, each once."""
    artifacts = dict.fromkeys(a for entry in entries for a in entry.tables)
    return list(
        dict.fromkeys(
            path
            for exp in exps
            for artifact in artifacts
            for path in layout.experiment_files(STUDY, exp, artifact)
        )
    )


def get_figure_tables(wildcards):
    """Every file of the artifacts the experiment's figures read (their FIGURES entries)."""
    exp = get_experiment(wildcards)
    return _figure_tables([exp], [FIGURES[f] for f in figures_of(STUDY, exp)])


def get_figure_entries(wildcards, input):
    """The FIGURES entries of the experiment's figures, whose captions
    workflow/report/figure.rst shows. A param derived from the input, so Snakemake leaves it
    out of the params it compares: editing a caption, or the config's order of models that
    the training caption lists, redraws nothing."""
    return {f: FIGURES[f] for f in figures_of(STUDY, get_experiment(wildcards))}


def get_study_figure_tables(wildcards):
    """Every experiment's files of the artifacts the study figures read."""
    return _figure_tables(EXPERIMENTS.values(), STUDY_FIGURES.values())


def get_prediction_outputs(exp):
    return layout.per_task(STUDY, exp, "predicted_reliability")


def get_reliability_prediction_args(wildcards):
    """The predict_reliability rule's arguments: the landscape's, the experiment's grid of
    dataset sizes and the `prediction` settings (draws, exact_max_outcomes, reference_N).
    """
    return dict(
        get_landscape_args(wildcards),
        dataset_sizes=list(get_experiment(wildcards).dataset_sizes),
        **STUDY.prediction,
    )


# The efficiency rules' helpers (here, not in efficiency.smk: the linter wants rules files
# free of functions). Only these pass the `efficiency` config on, so changing it reruns the
# efficiency stage and its figure alone.


def get_efficiency_inputs(wildcards):
    """Every landscape and evaluation set of the experiment, and its networks' checkpoints
    (never the prompt-loss tables: typical prompts are random and longer than L_max)."""
    args = get_efficiency_args(wildcards)
    return dict(
        landscapes=[p for u in args["predictors"] for p in u["landscapes"].values()],
        evaluations=list(args["evaluations"].values()),
        models=[u["model"] for u in args["predictors"] if "model" in u],
    )


def get_efficiency_args(wildcards):
    exp = get_experiment(wildcards)
    landscape = layout.pattern(STUDY, "landscape")
    predictors = []
    for predictor, r in STUDY.predictor_replicates(exp):
        unit = dict(predictor=predictor, replicate=r, family=STUDY.family(predictor))
        if is_neural(predictor):
            unit["model"] = layout.checkpoint(STUDY, exp, predictor, r)
        unit["landscapes"] = {
            t.name: landscape.format(
                experiment=exp.name, predictor=predictor, replicate=r, task=t.name
            )
            for t in exp.tasks
        }
        predictors.append(unit)
    evaluation = layout.pattern(STUDY, "evaluation_set")
    args = job_args(
        wildcards,
        "predictors",
        "tasks",
        "evaluations",
        "in_meta_distribution",
        "pretraining",
        "experiment",
        "task_length",
        "enumeration_budget",
        predictors=predictors,
        evaluations={
            t.name: evaluation.format(experiment=exp.name, task=t.name)
            for t in exp.tasks
        },
        in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
    )
    return dict(args, **STUDY.efficiency)  # max_length, num_typical


# Neural predictors: one trained network per (pretraining source, model), shared by every
# experiment that uses the model on the source; its folder carries the model's identity.
# Only the training rules see `models` and `training`.


def is_neural(predictor):
    return STUDY.is_neural(predictor)


def get_replicate(wildcards):
    """The job's replicate, checked against its predictor's `replicates`
    (promptscape.study.arguments.replicate)."""
    return arguments_lib.replicate(STUDY, wildcards)


def get_model(wildcards):
    """The trained checkpoint the job's neural predictor and replicate use."""
    exp = get_experiment(wildcards)
    return layout.checkpoint(STUDY, exp, wildcards.predictor, get_replicate(wildcards))


def is_tabulated(exp):
    """Neural losses of every prompt on all 2^T sequences are computed once, then looked up."""
    return costs.enumerates(STUDY, exp)


def network_inputs(exp, predictor, replicate):
    """Nothing for Bayes; for a network its prompt-loss table when T is enumerable (losses
    looked up), else its checkpoint."""
    if not is_neural(predictor):
        return {}
    if is_tabulated(exp):
        return {"table": layout.prompt_losses(STUDY, exp, predictor, replicate)}
    return {"model": layout.checkpoint(STUDY, exp, predictor, replicate)}


def get_prediction_inputs(wildcards):
    """Extra inputs of landscapes and predictions (`network_inputs`)."""
    return network_inputs(
        get_experiment(wildcards), wildcards.predictor, get_replicate(wildcards)
    )


def get_network_replicate(wildcards):
    """The replicate of the model whose identity a training-rule job's path carries; the
    identity must be one of the model's (a stale path of an older config is refused, never
    trained)."""
    predictor, source = wildcards.predictor, wildcards.source
    identities = [
        STUDY.model_identity(predictor, source, r)
        for r in range(STUDY.replicates(predictor))
    ]
    if wildcards.identity not in identities:
        raise ValueError(
            f"{predictor}-{wildcards.identity} is not the identity of model {predictor!r} "
            f"on {source!r} in this config ({', '.join(identities)})"
        )
    return identities.index(wildcards.identity)


def get_network(wildcards):
    """The complete config of the network a training-rule job builds."""
    return STUDY.network(
        wildcards.predictor, wildcards.source, get_network_replicate(wildcards)
    )


def get_training_args(wildcards):
    return dict(
        name=wildcards.predictor,
        replicate=get_network_replicate(wildcards),
        identity=wildcards.identity,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        settings=get_network(wildcards).to_dict(),
        threads=STUDY.training["threads"],
    )


# Post-trained networks (models.<name>.post_training): rule post_train_predictor makes
# them, train_predictor the others (each rule's predictor wildcard is limited to its own).


def _never(values):
    """`_alternatives`, or a pattern no name matches where there are none."""
    values = list(values)
    return _alternatives(values) if values else "(?!)"


POST_TRAINED = _never(n for n, m in STUDY.models.items() if m.post_training is not None)
TRAINED = _never(n for n, m in STUDY.models.items() if m.post_training is None)


def get_post_training_base(wildcards):
    """The checkpoint of the base network (same replicate) a post-trained one is tuned from."""
    post = STUDY.post_training(wildcards.predictor)
    replicate = get_network_replicate(wildcards)
    base = layout.source_model_dir(STUDY, wildcards.source, post.base, replicate)
    return f"{base}/model.pt"


def get_post_training_args(wildcards):
    post = STUDY.post_training(wildcards.predictor)
    return dict(
        name=wildcards.predictor,
        replicate=get_network_replicate(wildcards),
        identity=wildcards.identity,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        post_training=post.to_dict(),
        post_training_source=STUDY.sources[post.source].to_dict(),
        threads=STUDY.training["threads"],
    )


def get_evaluation_args(wildcards):
    return dict(
        name=wildcards.predictor,
        replicate=get_network_replicate(wildcards),
        identity=wildcards.identity,
        source_name=wildcards.source,
        pretraining=STUDY.sources[wildcards.source].to_dict(),
        size=STUDY.training["heldout_size"],
        threads=STUDY.training["threads"],
    )


def get_scoring_args(wildcards):
    return job_args(
        wildcards,
        "name",
        "replicate",
        "experiment",
        "task_length",
        "max_prompt_length",
        "threads",
        name=wildcards.predictor,
    )


# The search_strategies rule's helpers: replicate 0 of a network (the strategy_runs path
# has no replicate), on the task's D_N (selection random), scored as the search scores.


def get_strategy_outputs(exp):
    return layout.strategy_outputs(STUDY, exp)


def _strategy_experiment(wildcards):
    exp = get_experiment(wildcards)
    if not exp.runs_strategies:
        raise ValueError(
            f"experiment {exp.name!r} runs no search strategy besides exhaustive "
            "(experiments.<name>.strategies)"
        )
    return exp


def get_strategy_landscape(wildcards):
    exp = _strategy_experiment(wildcards)
    return layout.pattern(STUDY, "landscape").format(
        experiment=exp.name,
        predictor=wildcards.predictor,
        replicate=0,
        task=wildcards.task,
    )


def get_strategy_inputs(wildcards):
    """A network's prompt-loss table when T is enumerable (else its checkpoint), as the
    search reads; and its checkpoint where a strategy needs gradients. Nothing for Bayes.
    """
    exp = _strategy_experiment(wildcards)
    on_demand = exp.search_strategies.on_demand(exp.max_prompt_length)
    # Beyond the landscape's L_max, the KL of the longer prompts the strategies choose is
    # computed on the task's evaluation set.
    inputs = (
        {
            "evaluation": layout.pattern(STUDY, "evaluation_set").format(
                experiment=exp.name, task=wildcards.task
            )
        }
        if on_demand
        else {}
    )
    if not is_neural(wildcards.predictor):
        return inputs
    if is_tabulated(exp):
        inputs["table"] = layout.prompt_losses(STUDY, exp, wildcards.predictor, 0)
    if exp.search_strategies.needs_gradient or not is_tabulated(exp) or on_demand:
        inputs["model"] = layout.checkpoint(STUDY, exp, wildcards.predictor, 0)
    return inputs


def get_strategy_prior(wildcards):
    """The predictor's prior read back (replicate 0), where a surrogate strategy runs."""
    exp = _strategy_experiment(wildcards)
    if not exp.search_strategies.needs_prior:
        return {}
    return {"prior_fit": layout.prior_fit(STUDY, exp, wildcards.predictor, 0)}


def get_strategy_args(wildcards):
    exp = _strategy_experiment(wildcards)
    return job_args(
        wildcards,
        "predictor",
        "replicate",
        "family",
        "pretraining",
        "experiment",
        "task_name",
        "task",
        "task_length",
        "N",
        "block",
        "max_prompt_length",
        "enumeration_budget",
        "strategies",
        "budgets",
        *(["probe_queries"] if exp.search_strategies.needs_prior else []),
        *(
            ["strategy_max_prompt_length"]
            if exp.search_strategies.on_demand(exp.max_prompt_length)
            else []
        ),
        replicate=0,
        N=int(wildcards.N),
        strategies=exp.search_strategies.to_dict(),
        budgets=list(exp.search_strategies.budgets),
        **(
            {"probe_queries": exp.search_strategies.probe_queries}
            if exp.search_strategies.needs_prior
            else {}
        ),
        **(
            {"strategy_max_prompt_length": exp.strategy_max_prompt_length}
            if exp.search_strategies.on_demand(exp.max_prompt_length)
            else {}
        ),
    )


def get_edit_effects_args(wildcards):
    exp = _strategy_experiment(wildcards)
    return job_args(
        wildcards,
        "experiment",
        "tasks",
        "task_length",
        "max_prompt_length",
        "vocab_size",
        "landscapes",
        "in_meta_distribution",
        vocab_size=exp.vocab_size,
        landscapes=layout.strategy_landscapes(STUDY, exp),
        in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
    )


def get_tuning_outputs(exp):
    return layout.tuning_outputs(STUDY, exp)


def get_tuning_block(wildcards):
    """The tuned seeds of a tune_network job and the experiment's seed block holding them."""
    exp = get_experiment(wildcards)
    tuned = (int(wildcards.first), int(wildcards.last))
    blocks = layout.tuning_blocks(exp) if exp.tuning else {}
    if tuned not in blocks:
        known = ", ".join(f"{a}-{b}" for a, b in blocks) or "none (no tuning section)"
        raise ValueError(
            f"experiment {exp.name!r} tunes seed blocks {known}, not {tuned[0]}-{tuned[1]}"
        )
    return tuned, blocks[tuned]


def get_tuning_inputs(wildcards):
    """A tune_network job's inputs: the network's checkpoint, the block's D_N and searches,
    and the evaluation set only where the landscape estimates KL on it; the landscape only
    for init: optimum (its hard optimum is the start)."""
    exp = get_experiment(wildcards)
    _, (a, b) = get_tuning_block(wildcards)
    inputs = dict(
        model=layout.checkpoint(
            STUDY, exp, wildcards.predictor, int(wildcards.replicate)
        ),
        datasets=layout.pattern(STUDY, "task_data").format(
            experiment=exp.name, first=a, last=b
        ),
        search=layout.pattern(STUDY, "search").format(
            experiment=exp.name, selection="random", first=a, last=b
        ),
    )
    if not is_tabulated(exp):
        inputs["evaluation"] = layout.pattern(STUDY, "evaluation_set").format(
            experiment=exp.name, task=wildcards.task
        )
    if exp.tuning.init == "optimum":  # the oracle start: the landscape's hard optimum
        inputs["landscape"] = layout.pattern(STUDY, "landscape").format(
            experiment=exp.name,
            predictor=wildcards.predictor,
            replicate=wildcards.replicate,
            task=wildcards.task,
        )
    return inputs


def get_tuning_args(wildcards):
    exp = get_experiment(wildcards)
    (first, last), block = get_tuning_block(wildcards)
    if wildcards.predictor not in exp.tuning.networks:
        raise ValueError(
            f"experiment {exp.name!r} does not tune {wildcards.predictor!r}"
        )
    task = get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=int(wildcards.replicate),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        N=int(wildcards.N),
        block=block,
        first=first,
        last=last,
        max_prompt_length=exp.max_prompt_length,
        enumeration_budget=STUDY.enumeration_budget,
        tuning=exp.tuning.to_dict(),
        threads=STUDY.training["threads"],
    )


def get_optimum_inputs(wildcards):
    """A tune_optimum job's inputs: the network's checkpoint, its landscape (the hard start
    of length K), and the evaluation set only where the landscape estimates KL on it (it
    scores, never trains)."""
    exp = get_experiment(wildcards)
    if not exp.tuning or wildcards.predictor not in exp.tuning.networks:
        raise ValueError(
            f"experiment {exp.name!r} does not tune {wildcards.predictor!r}"
        )
    inputs = dict(
        model=layout.checkpoint(
            STUDY, exp, wildcards.predictor, int(wildcards.replicate)
        ),
        landscape=layout.pattern(STUDY, "landscape").format(
            experiment=exp.name,
            predictor=wildcards.predictor,
            replicate=wildcards.replicate,
            task=wildcards.task,
        ),
    )
    if not is_tabulated(exp):
        inputs["evaluation"] = layout.pattern(STUDY, "evaluation_set").format(
            experiment=exp.name, task=wildcards.task
        )
    return inputs


def get_optimum_args(wildcards):
    exp = get_experiment(wildcards)
    task = get_task(wildcards)
    return dict(
        predictor=wildcards.predictor,
        replicate=int(wildcards.replicate),
        pretraining=exp.pretraining.to_dict(),
        experiment=exp.name,
        task_name=task.name,
        task=task.source.to_dict(),
        task_length=exp.task_length,
        max_prompt_length=exp.max_prompt_length,
        enumeration_budget=STUDY.enumeration_budget,
        tuning=exp.tuning.optimum_dict(),
        threads=STUDY.training["threads"],
    )


def get_tuning_landscapes(wildcards):
    """The landscapes of an experiment's tuned networks (the hard optimum of the aggregate)."""
    exp = get_experiment(wildcards)
    return [
        layout.pattern(STUDY, "landscape").format(
            experiment=exp.name, predictor=network, replicate=r, task=task
        )
        for network in exp.tuning.networks
        for r in range(STUDY.replicates(network))
        for task in exp.tuning.tasks
    ]


# The analyse_edits rule's helpers: the experiment's landscapes, those of the
# other experiments it shares a task, L_max and alphabet with (transfer across
# pretraining), and its selections table (the prompts search picks).


def get_edits_inputs(wildcards):
    exp = get_experiment(wildcards)
    return dict(
        landscapes=get_landscape_outputs(exp),
        others=layout.transfer_sources(STUDY, exp),
        selections=layout.aggregate(STUDY, exp, "selections"),
    )


def get_edits_args(wildcards):
    exp = get_experiment(wildcards)
    return job_args(
        wildcards,
        "experiment",
        "tasks",
        "in_meta_distribution",
        "task_length",
        "max_prompt_length",
        "transfer_left_out",
        in_meta_distribution={t.name: t.in_meta_distribution for t in exp.tasks},
        transfer_left_out=layout.transfer_left_out(STUDY, exp),
    )
