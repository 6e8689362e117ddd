"""One record per workflow rule that runs a job (workflow/rules/*.smk): what the rest of the
package knows about the rule, in one place.

Each `Rule` names

* its stage function and the registry members its jobs run: the job's code identity
  (`promptscape.pipeline.provenance`, docs/caching.md);
* the artifacts it writes (names of `tables.ARTIFACTS`, as its ``output:`` declares them);
* its job grid (`promptscape.pipeline.grid`), cost estimator and time model
  (`promptscape.pipeline.costs`): the plan (`promptscape.pipeline.plan`, docs/plan.md);
* whether it is heavy (declares ``resources: mem_mb=mem_mb("<rule>")`` from its estimate,
  checked against ``resources.max_mem_mb`` before any work) and then the config keys that
  lower its estimate (`hint`, in the refusal), and whether it asks for ``training.gpus``
  GPUs (``resources: gpu``).

`RULES` keeps the order of the plan's table (the order the stages run in). The tests hold
the records to the .smk files: a record for every rule, its outputs, ``mem_mb`` and ``gpu``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from promptscape.pipeline import costs, grid

STAGE_PACKAGE = "promptscape.pipeline.stages"
# Members a rule may declare (`provenance.job_entries` resolves each from the job's
# wildcards): "pretraining" (the kind of the experiment's or network's pretraining
# source), "task" (the kind of the job's task source), "family" (the job's predictor
# family: `families.FAMILIES[family].code`), "tuner" (the builders of the tuners it runs),
# "figure" (the chart code of each figure the job draws, `Figure.code`).
MEMBERS = ("pretraining", "task", "family", "tuner", "figure")


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    stage: str  # its stage function, "module:function"
    members: tuple[str, ...]  # registry members its jobs run (`MEMBERS`)
    writes: tuple[str, ...]  # the artifacts of its output (tables.ARTIFACTS)
    jobs: Callable  # (study) -> the wildcards of each of its jobs (`grid`)
    estimate: Callable  # (study, rule, wildcards) -> costs.Job (evaluations, peak memory)
    seconds: Callable = costs.evaluation_seconds  # (study, job) -> seconds on one core
    heavy: bool = False  # declares mem_mb from its estimate, checked against the cap
    hint: str | None = None  # heavy: the config keys that lower its estimate ({e}, {p})
    gpu: bool = False  # asks for training.gpus GPUs

    def __post_init__(self):
        unknown = set(self.members) - set(MEMBERS)
        if unknown:
            raise ValueError(f"rule {self.name}: unknown members {sorted(unknown)}")
        if self.heavy != (self.hint is not None):
            raise ValueError(f"rule {self.name}: a heavy rule names the keys that lower its "
                             "estimate (hint), and only a heavy rule does")


def _stage(module: str, function: str) -> str:
    return f"{STAGE_PACKAGE}.{module}_stage:{function}"


RULES: tuple[Rule, ...] = (
    Rule("simulate_tasks", _stage("datasets", "simulate_tasks"), ("task",),
         ("task_data",), grid.task_data, costs.simulation_cost),
    Rule("simulate_pool", _stage("datasets", "simulate_pool"), ("task",),
         ("selection_pool",), grid.pools, costs.simulation_cost),
    Rule("simulate_evaluation", _stage("datasets", "simulate_evaluation"), ("task",),
         ("evaluation_set",), grid.evaluation_sets, costs.evaluation_set_cost),
    Rule("train_predictor", _stage("training", "train_predictor"), ("pretraining", "family"),
         ("training_curve",), grid.trained_networks, costs.network_cost,
         costs.training_seconds, heavy=True, gpu=True,
         hint="a smaller network: models.{p}.batch_size or hidden_size"),
    # task: the kind of the post-training source; tuner: the weight tuner it is tuned with.
    Rule("post_train_predictor", _stage("training", "post_train_predictor"),
         ("pretraining", "task", "family", "tuner"),
         ("training_curve",), grid.post_trained_networks, costs.network_cost,
         costs.post_training_seconds, heavy=True, gpu=True,
         hint="fewer sequences a step: models.{p}.post_training.batch"),
    Rule("evaluate_predictor", _stage("training", "evaluate_predictor"),
         ("pretraining", "family"),
         ("predictor_regret",), grid.networks, costs.network_cost, costs.heldout_seconds,
         heavy=True, hint="fewer evaluation sequences: training.heldout_size"),
    Rule("score_prompts", _stage("training", "score_prompts"), ("pretraining", "family"),
         ("prompt_losses",), grid.prompt_loss_tables, costs.scoring_cost, heavy=True,
         gpu=True,
         hint="fewer evaluation sequences: experiments.{e}.task_length (V^T sequences)"),
    Rule("search_prompts", _stage("search", "search_prompts"), ("pretraining", "family"),
         ("search",), grid.searches, costs.search_cost, heavy=True,
         hint=("fewer evaluation sequences: experiments.{e}.dataset_sizes or "
               "experiments.{e}.seeds_per_job")),
    Rule("search_selected", _stage("search", "search_selected"), ("pretraining", "family"),
         ("search", "selected_data"), grid.selected_searches, costs.search_cost,
         heavy=True,
         hint=("fewer evaluation sequences: the pool_size of "
               "experiments.{e}.dataset_selection or experiments.{e}.seeds_per_job")),
    Rule("search_strategies", _stage("strategies", "search_strategies"),
         ("pretraining", "task", "family"),
         ("strategy_runs", "strategy_steps", "hill_climb_ends"), grid.strategy_runs,
         costs.strategies_cost, costs.strategy_seconds, heavy=True,
         hint="fewer seeds per job: experiments.{e}.seeds_per_job"),
    Rule("compute_landscape", _stage("landscape", "compute_landscape"),
         ("pretraining", "task", "family"),
         ("landscape",), grid.per_task, costs.landscape_cost, heavy=True,
         hint="fewer evaluation sequences: experiments.{e}.evaluation_size"),
    Rule("measure_efficiency", _stage("efficiency", "measure_efficiency"),
         ("pretraining", "task", "family"),
         ("efficiency", "token_efficiency"), grid.experiments, costs.efficiency_cost,
         heavy=True,
         hint=("fewer evaluation sequences: experiments.{e}.evaluation_size or "
               "efficiency.num_typical")),
    Rule("aggregate_search", _stage("aggregate", "aggregate_search"), (),
         ("selections", "reliability", "choices", "reliability_prediction"),
         grid.experiments, costs.aggregate_search_cost),
    Rule("aggregate_strategies", _stage("aggregate", "aggregate_strategies"), (),
         ("strategies",), grid.strategy_experiments, costs.aggregate_strategies_cost),
    Rule("edit_effects", _stage("edit_effects", "edit_effects"), ("task",),
         ("edit_effects", "hill_climb_optima"), grid.strategy_experiments,
         costs.edit_effects_cost),
    Rule("predict_reliability", _stage("prediction", "predict_reliability"),
         ("pretraining", "task", "family"),
         ("predicted_reliability",), grid.per_task, costs.prediction_cost, heavy=True,
         hint=("fewer evaluation sequences: experiments.{e}.evaluation_size "
               "(the table of a monte_carlo landscape)")),
    Rule("tune_network", _stage("tuning", "tune_network"),
         ("pretraining", "task", "family", "tuner"),
         ("tuning_runs",), grid.tuning_runs, costs.tuning_cost, costs.tuning_seconds,
         heavy=True,
         hint=("fewer seeds side by side (tuners.BATCH_TOKENS) or fewer seeds per job: "
               "experiments.{e}.seeds_per_job")),
    Rule("tune_optimum", _stage("tuning", "tune_optimum"),
         ("pretraining", "task", "family", "tuner"),
         ("tuner_optima",), grid.tuner_optima, costs.optimum_cost, costs.optimum_seconds,
         heavy=True,
         hint=("fewer sequences per step: experiments.{e}.tuning.optimum.batch_size, "
               "or experiments.{e}.evaluation_size")),
    Rule("aggregate_tuning", _stage("aggregate", "aggregate_tuning"), (),
         ("tuning",), grid.tuning_experiments, costs.aggregate_tuning_cost),
    Rule("analyse_edits", _stage("edits", "analyse_edits"), ("task",),
         ("edits", "local_optima", "transfer"), grid.experiments, costs.edits_cost,
         costs.edits_seconds, heavy=True,
         hint=("fewer landscapes: experiments.{e}.predictors or the replicates of its "
               "models, or fewer experiments sharing its tasks")),
    Rule("probe_prior", _stage("prior", "probe_prior"), ("pretraining", "family"),
         ("prior_fit",), grid.prior_fits, costs.prior_cost),
    # The figures a figure job draws: its experiment's, or the study's (figures, not
    # artifacts: its output is the folder).
    Rule("plot_figures", _stage("figures", "plot_figures"), ("figure",),
         (), grid.experiments, costs.figure_cost, costs.figure_seconds),
    Rule("plot_study_figures", _stage("figures", "plot_study_figures"), ("figure",),
         (), grid.study_figures, costs.figure_cost, costs.figure_seconds),
)

BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}


def rule(name: str) -> Rule:
    """The record of rule `name`; a rule without one is a ValueError naming it."""
    if name not in BY_NAME:
        raise ValueError(f"no record of rule {name!r} in promptscape.pipeline.rules.RULES")
    return BY_NAME[name]
