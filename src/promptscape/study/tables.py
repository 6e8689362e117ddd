"""One Parquet schema per artifact, declared once, and the one writer that enforces it.

Each artifact has a pyarrow schema whose fields carry a description, and a sort key. The
writer (`write`) names any missing or extra column, casts to the schema, sorts by the key
(canonical row order), writes no timestamps, and replaces the target atomically, so a
crash never leaves a partial file under the artifact's name. Two runs of the same config
therefore write bit-identical files.

Fields are non-nullable: a missing value is an error naming the column. A field declared
with a fourth element `NULLABLE` is the exception; there a missing value (None, or NaN,
which pandas uses for missing) is written as null, meaning "does not apply" (documented in
the field's description).

Dimensions: the axes of the study a row belongs to (predictor, experiment, task, N, seed,
...) are declared once in `DIMENSIONS`; artifacts draw those columns from there. Each
dimension an artifact varies over is a column of its schema and part of its sort key (first,
in `DIMENSIONS` order, before the row key such as prompt_length and prompt), so the files of
an artifact concatenate into one table without losing where each row came from; it is a
wildcard of the path only where the workflow splits jobs by it. Every ``{wildcard}`` of a
path is a column, or a range of one (`PATH_RANGES`). `Artifact` checks all of this.

``python -m promptscape.study.tables`` prints the schemas as Markdown (docs/artifacts.md).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from promptscape import files
from promptscape.study import identity


# Fourth element of a field tuple: the column may hold nulls.
NULLABLE = "nullable"


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str  # path pattern under the config's results_dir, as the workflow writes it
    doc: str
    fields: tuple  # (name, pyarrow type, description) or (name, type, description, NULLABLE)
    sort_key: tuple[str, ...]
    # Columns `read_table` reads only when asked for by name (large, and needed by few
    # readers: a monte_carlo landscape's per-sequence residuals).
    on_request: tuple[str, ...] = ()

    def __post_init__(self):
        for field in self.fields:
            if len(field) not in (3, 4) or (len(field) == 4 and field[3] != NULLABLE):
                raise ValueError(f"artifact {self.name}: bad field {field!r}")
            if field[0] in DIMENSIONS and field != DIMENSIONS[field[0]]:
                raise ValueError(f"artifact {self.name}: dimension column {field[0]!r} must be "
                                 f"DIMENSIONS[{field[0]!r}], not {field!r}")
        keyed = sorted(set(self.sort_key) & self.nullable)
        if keyed:
            raise ValueError(f"artifact {self.name}: sort-key columns {keyed} are nullable")
        columns = [field[0] for field in self.fields]
        unknown = [k for k in self.sort_key + self.on_request if k not in columns]
        if unknown:
            raise ValueError(f"artifact {self.name}: sort-key or on-request columns {unknown} "
                             "are not columns")
        dims = self.dimensions
        if self.sort_key[:len(dims)] != dims or set(self.sort_key[len(dims):]) & set(DIMENSIONS):
            raise ValueError(f"artifact {self.name}: sort key {self.sort_key} must start with "
                             f"its dimension columns {dims}, in DIMENSIONS order")
        for wildcard in self.wildcards:
            if wildcard not in columns and PATH_RANGES.get(wildcard) not in columns:
                raise ValueError(f"artifact {self.name}: path wildcard {{{wildcard}}} of "
                                 f"{self.path} is not a column")

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Its dimension columns, in `DIMENSIONS` order."""
        columns = {field[0] for field in self.fields}
        return tuple(d for d in DIMENSIONS if d in columns)

    @property
    def wildcards(self) -> tuple[str, ...]:
        """The ``{wildcard}`` names of its path pattern."""
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)

    @property
    def nullable(self) -> frozenset[str]:
        """Names of the fields that may hold nulls."""
        return frozenset(field[0] for field in self.fields if len(field) == 4)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([
            pa.field(name, typ, nullable=len(rest) == 1, metadata={"description": desc})
            for name, typ, desc, *rest in self.fields
        ])


_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()


# Descriptions that name the members of a registry are built from it (strategies, tuners
# and their inits, selection methods, edit kinds and operations), so a new member is
# documented here and in docs/artifacts.md (regenerated) without an edit of this file.
def listing(names, last: str = "or") -> str:
    """``a, b or c``: the names in order."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def described(entries) -> str:
    """``a: what a is; b: what b is``: (name, description) pairs in order."""
    return "; ".join(f"{name}: {doc}" for name, doc in entries)


def _registry_listings() -> dict[str, str]:
    """The registry members the descriptions name, as text. The registries are imported
    here, inside a function, so that a job's code identity (`pipeline.provenance`, which
    follows module-level references but not imports inside a function) does not reach
    every strategy, tuner, selection method and edit kind through `tables.write`: the
    descriptions are documentation, and a new strategy reruns no job."""
    from promptscape import edits, selection, strategies
    from promptscape.neural import tuners

    by_proposing = {flag: [n for n, s in strategies.STRATEGIES.items() if s.proposes == flag]
                    for flag in (True, False)}
    return {
        "strategies": listing(strategies.STRATEGIES),
        "proposing": listing(by_proposing[True], "and"),
        "not_proposing": listing(by_proposing[False], "and"),
        "tuners": listing(tuners.TUNERS, "and"),
        "hard_search": tuners.HARD_SEARCH,
        "hard_optimum": tuners.HARD_OPTIMUM,
        "inits": described(tuners.INITS.items()),
        "selection": described((m.name, m.doc) for m in selection.METHODS.values()),
        "operations": listing(edits.OPERATIONS),
        "edit_kinds": listing(edits.EDIT_KINDS),
        "edit_kinds_described": described((k.name, k.description)
                                          for k in edits.EDIT_KINDS.values()),
    }


_LISTED = _registry_listings()

# The dimensions of the study, in sort-key order: the column each artifact that varies over
# the dimension holds (name, type, description). A new dimension (vocabulary size, search
# strategy, network replicate, ...) is declared here, then added to the fields and sort key
# of every artifact that varies over it.
DIMENSIONS = {d[0]: d for d in [
    ("predictor", _S, "predictor: bayes, or the name of a model (config key models.<name>; "
                      "lstm and transformer by default)"),
    ("replicate", _I, "which independently trained network of the model: 0..k-1 for "
                      "models.<name>.replicates = k (replicate 0 is the model's one network "
                      "when k = 1); always 0 for bayes"),
    ("source", _S, "name of the pretraining source (config key sources.<name>)"),
    ("identity", _S, "a network's identity: a hash of its complete config and its "
                     "pretraining source's parameters (the model folder's suffix)"),
    ("experiment", _S, "experiment name (config key experiments.<name>)"),
    ("task", _S, "task name: the config source the task sequences come from"),
    ("selection", _S, "how the search's N sequences were chosen (config key "
                      "experiments.<name>.dataset_selection; promptscape.selection.METHODS): "
                      + _LISTED["selection"]),
    ("N", _I, "number of task sequences in the dataset D_N"),
    ("seed", _I, "seed index of the dataset (0..num_seeds-1)"),
    ("strategy", _S, "the prompt-search strategy (config key experiments.<name>.strategies; "
                     "promptscape.strategies.STRATEGIES): "
                     + _LISTED["strategies"]),
    ("budget", _I, "evaluations allowed: distinct prompts whose empirical loss on D_N the "
                   "strategy computed, each gradient computation counting as one "
                   "(experiments.<name>.strategy_budgets); for exhaustive, the number of "
                   "prompts; for surrogate, the probe queries that read the prior back "
                   "(prior_fit), its whole cost"),
    ("tuner", _S, "the tuning method (experiments.<name>.tuning.tuners; "
                  "promptscape.neural.tuners.TUNERS): " + _LISTED["tuners"]
                  + f"; and the hard-prompt references {_LISTED['hard_search']} (the prompt "
                  f"exhaustive search picks from the same D_N) and, in the aggregate, "
                  f"{_LISTED['hard_optimum']} (the exhaustive optimum at L_max)"),
    ("settings", _S, "how a tuner's learning rate and steps were set: fixed (in the config, "
                     "tuning.learning_rate or the tuner's own) or holdout (chosen on a held-out "
                     "part of D_N among tuning.selection.learning_rates and tuning_steps, then "
                     "trained on all of D_N); the references are fixed"),
    ("tuning_steps", _I, "optimiser steps taken (a budget of experiments.<name>.tuning."
                         "tuning_steps; 0 for the references; for holdout rows the largest "
                         "budget the selection could choose, chosen_steps the one it chose)"),
]}

# Path wildcards that are not columns but bound the range of one: a file holds a block of
# seeds, seeds{first}-{last}.
PATH_RANGES = {"first": "seed", "last": "seed"}

(_PREDICTOR, _REPLICATE, _SOURCE, _IDENTITY, _EXPERIMENT, _TASK, _SELECTION, _N, _SEED,
 _STRATEGY, _BUDGET, _TUNER, _SETTINGS, _TUNING_STEPS) = (
    DIMENSIONS[d] for d in ("predictor", "replicate", "source", "identity", "experiment", "task",
                            "selection", "N", "seed", "strategy", "budget", "tuner",
                            "settings", "tuning_steps"))
_SEQUENCE = ("sequence", _S, "the task sequence: T symbols, digits 0..V-1")
_PROMPT = ("prompt", _S, "prompt as a string of the digits 0..V-1; '' is the empty prompt")
_PLEN = ("prompt_length", _I, "number of symbols in the prompt")
# Which rule told two KLs apart (landscape.DECIDED_BY; docs/science.md, "Ties"): the same
# column wherever a comparison decides something.
_DECIDED_BY = ("decided_by", _S, "the rule that decided this row's comparisons "
                                 "(landscape.TieRule): kl_resolution (exact values, within the "
                                 "KL's floating-point resolution), paired_se (estimates: a "
                                 "one-sided z-test by the paired standard error at the "
                                 "landscape's Bonferroni level), se_bound (estimates whose "
                                 "landscape keeps no residuals: the same test by the bound "
                                 "se(a) + se(b)) or float32_resolution (tuning's exact "
                                 "scores, relative 1e-5)")

# The predicted proportion correct (promptscape.theory) of one (predictor, task, N), and the
# variance decomposition of its (predictor, task): shared by the per-predictor table and the
# experiment's aggregate, which adds the measured values beside it.
# Over the seeds of a cell, how often the chosen prompt is optimal and what it costs (the
# reliability and strategies tables; `aggregate.REGRET_STATS` computes the regret columns).
_PROPORTION_CORRECT = (
    ("seeds", _I, "number of datasets (seeds)"),
    ("correct", _I, "seeds whose chosen prompt (s_hat for the search) is in the optimal class"),
    ("proportion_correct", _F, "correct / seeds"),
    ("ci_low", _F, "Wilson 95% interval of proportion_correct, lower bound"),
    ("ci_high", _F, "Wilson 95% interval of proportion_correct, upper bound"),
)
# Beside the proportion correct: what a practitioner would call right (docs/science.md,
# "Search, correctness, landscape").
_WITHIN_EPSILON = (
    ("epsilon", _F, "landscape.within_epsilon (nats, default 1e-6)"),
    ("within_epsilon_seeds", _I, "seeds whose chosen prompt has KL(chosen) - KL(s*) <= "
                                 "epsilon or is optimal (tied within the landscape's "
                                 "resolution, wider than epsilon for a network's float32 "
                                 "losses): at least correct"),
    ("within_epsilon", _F, ("within_epsilon_seeds / seeds: the proportion of seeds whose "
                            "chosen prompt is within epsilon of the optimum")),
    ("within_epsilon_ci_low", _F, "Wilson 95% interval of within_epsilon, lower bound"),
    ("within_epsilon_ci_high", _F, "Wilson 95% interval of within_epsilon, upper bound"),
)
_REGRET_STATS = (
    ("regret_mean", _F, "mean regret KL(chosen) - KL(s*) over seeds (nats)"),
    ("regret_median", _F, "median regret"),
    ("regret_q25", _F, "25th percentile of regret"),
    ("regret_q75", _F, "75th percentile of regret"),
)
_PREDICTION = (
    ("outcomes", _S, "what the dataset's frequencies f are over: count_values (an "
                     "exchangeable Bayes predictor on an exchangeable task), sequences (every "
                     "one of the V^T task sequences, or every one of positive probability "
                     "where the task's support is enumerated instead) or evaluation_set (no exact table fits "
                     "the enumeration budget: the evaluation set's sequences with their "
                     "stratum weights stand in for the task)"),
    ("num_outcomes", _I, "distinct outcomes after merging those with identical losses under "
                         "every prompt (X of N f ~ Multinomial(N, p))"),
    ("num_classes", _I, "prompt classes: prompts with identical losses on every outcome, "
                        "merged (count classes of exchangeable Bayes predictors)"),
    ("optimal_classes", _I, "classes in the optimal class S* (from the landscape)"),
    ("predicted_proportion_correct", _F, "P(search on D_N returns a prompt of S*), with the "
                                         "search's tie rule: exact_proportion_correct where "
                                         "the exact sum ran, normal_proportion_correct "
                                         "otherwise (method)"),
    ("method", _S, "exact (the finite sum over every multinomial outcome) or normal"),
    ("exact_proportion_correct", _F, "the exact multinomial sum (numerical error ~1e-12); "
                                     "null where its outcomes exceed "
                                     "prediction.exact_max_outcomes", NULLABLE),
    ("normal_proportion_correct", _F, "the variance theory: f ~ Normal(p, (diag(p) - p "
                                      "p^T) / N), by Monte Carlo in frequency space "
                                      "(prediction.draws draws, the same for every N)"),
    ("normal_se", _F, "Monte Carlo standard error of normal_proportion_correct (its "
                      "numerical error; the approximation's own error is not in it)"),
    ("simulated_proportion_correct", _F, "simulation of the multinomial itself "
                                         "(prediction.draws datasets): the numerical "
                                         "reference of both"),
    ("simulated_se", _F, "binomial standard error of simulated_proportion_correct"),
    ("gap", _F, "decomposition, per (predictor, task): KL of the best class outside S* "
                "minus that of S*'s best (nats); null when every class is optimal", NULLABLE),
    ("paired_sd", _F, "standard deviation over the task of the per-sequence loss "
                      "difference between those two classes (nats): the gap is resolved "
                      "at N about (2 paired_sd / gap)^2; null with gap", NULLABLE),
    ("classes_within_2se", _I, "classes outside S* whose gap to S*'s best is within two "
                               "paired standard errors at N = prediction.reference_N "
                               "(default 100)"),
    ("first_n_half", _I, "the least N of the config's dataset_sizes whose predicted "
                         "proportion correct is at least 0.5; null where none is", NULLABLE),
    ("first_n_ninety", _I, "the least such N for 0.9; null where none is", NULLABLE),
)

ARTIFACTS = {a.name: a for a in [
    Artifact(
        "task_data", "{experiment}/datasets/seeds{first}-{last}.parquet",
        "Task datasets D_N of every task and N of an experiment, one per seed of the block (one "
        "file per seed block: simulating a dataset costs far less than starting a job), drawn "
        "from the task source; the seed of each is a "
        "stable hash of (task source, T, N, seed), so identical tasks share datasets across "
        "experiments and a seed's data does not depend on the block it is stored in.",
        (_EXPERIMENT, _TASK, _N, _SEED,
         ("index", _I, "position of the sequence in D_N"),
         _SEQUENCE),
        ("experiment", "task", "N", "seed", "index")),
    Artifact(
        "evaluation_set", "{experiment}/evaluation/{task}.parquet",
        "Evaluation set of M task sequences per task, never seen by any search; it estimates "
        "theoretical losses where no exact sum exists and cross-checks them where one does. "
        "Stratified by the symbol counts for an exchangeable task (each count vector drawn on "
        "its own, uniformly among its sequences); estimates are sum_i weight_i f(x_i).",
        (_EXPERIMENT, _TASK, ("index", _I, "position in the evaluation set"),
         _SEQUENCE,
         ("stratum", _I, "its stratum: for an exchangeable task the index of its symbol-count "
                         "vector among the compositions of T into V parts "
                         "(sources.compositions; binary: the count of ones k), else 0 (one "
                         "stratum, plain draws)"),
         ("weight", _F, "exact stratum probability / stratum sample size (1/M for plain "
                        "draws); the weights sum to 1")),
        ("experiment", "task", "index")),
    Artifact(
        "selection_pool",
        "{experiment}/pools/seeds{first}-{last}.parquet",
        "The pool of P task sequences per (task, N, seed) of a seed block that the pooled dataset-selection "
        "methods choose from (experiments.<name>.dataset_selection): an independent draw "
        "from the task, seeded by a stable hash of (task source, T, P, N, seed), so it is "
        "neither D_N nor shared with another N.",
        (_EXPERIMENT, _TASK, _N, _SEED,
         ("index", _I, "position of the sequence in the pool (0..P-1)"),
         _SEQUENCE),
        ("experiment", "task", "N", "seed", "index")),
    Artifact(
        "selected_data",
        "{experiment}/selected/{selection}/seeds{first}-{last}.parquet",
        "The datasets a pooled selection method chose for each predictor, task and N of a seed "
        "block: per seed, the N "
        "pool sequences kept and the weight of each one's loss in the empirical loss (the "
        "random method's datasets are task_data).",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _SELECTION, _N, _SEED,
         ("index", _I, "position in the selected dataset (0..N-1, in pool order; "
                            "0..P-1 for pool, which keeps the whole pool at every N)"),
         ("pool_index", _I, "position of the sequence in the selection_pool"),
         _SEQUENCE,
         ("weight", _F, "its weight in L_N(s) = sum_i weight_i l(s, x_i): 1/N (1/P for "
                        "pool), or 1 / (P pi_i) for high_variance_weighted "
                        "(Horvitz-Thompson)"),
         ("inclusion_probability", _F, "pi_i, the probability that the random design "
                                       "draws the sequence; null for a deterministic "
                                       "selection", NULLABLE),
         ("spread", _F, "variance of the sequence's loss across the leading prompts (the K "
                        "best on the pool; nats^2); null for pool", NULLABLE),
         ("leading_prompts", pa.list_(_S), "the prompts best on the pool, best first, that "
                                           "the spread is taken across: K distinct ones "
                                           "(prompts with the same losses on every pool "
                                           "sequence count once, so fewer where the pool "
                                           "tells fewer apart); the same for every row of "
                                           "a seed; empty for pool")),
        ("predictor", "replicate", "experiment", "task", "selection", "N", "seed", "index")),
    Artifact(
        "search",
        "{experiment}/search/{selection}/seeds{first}-{last}.parquet",
        "Exhaustive search over every prompt of length 0..L_max on every dataset of the seed "
        "block, for every predictor, replicate, task and N of the experiment (one job: a "
        "search on a loss table costs milliseconds): per seed, the best prompt classes by empirical loss L_N (search.KEPT_CLASSES, "
        "10, each by its canonical first prompt; a class is the prompts the predictor treats "
        "alike, Predictor.prompt_classes: a count class of an exchangeable Bayes predictor, "
        "else one prompt), the empirical optimum s_hat among them. Not a row per prompt, so "
        "that 131,071 prompts cost as little to store as 63; KL and rank of s_hat are joined "
        "from the landscape in selections.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _SELECTION, _N, _SEED, _PROMPT, _PLEN,
         ("class_size", _I, "prompts in the prompt's class (identical L_N on every dataset)"),
         ("empirical_rank", _I, "position of the class by L_N among the seed's kept classes "
                                "(0: least; ties to the canonical first)"),
         ("empirical_loss", _F, "L_N(s): mean over D_N of the summed log loss (nats); for "
                                "high_variance_weighted the Horvitz-Thompson weighted sum "
                                "(selected_data.weight)"),
         ("chosen", _B, "true for s_hat: least L_N, ties to the shorter then lexicographically "
                        "first prompt")),
        ("predictor", "replicate", "experiment", "task", "selection", "N", "seed",
         "prompt_length", "prompt")),
    Artifact(
        "landscape", "{experiment}/landscape/{predictor}/r{replicate}/{task}.parquet",
        "Landscape: the theoretical loss of every prompt, its KL to the task, dense rank and "
        "membership of the optimal class.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _PROMPT, _PLEN,
         ("prompt_counts", pa.list_(_I), "count of each symbol in the prompt, symbols 0..V-1 "
                                         "(binary: [zeros, ones]); an exchangeable "
                                         "predictor's count class"),
         ("method", _S, "exact_counts, exact_enumeration or monte_carlo (see docs/science.md)"),
         ("loss", _F, "L(s) = E_task l(s, x), summed over the T task symbols (nats)"),
         ("loss_se", _F, "standard error of loss (0 when exact)"),
         ("entropy", _F, "H_T(task), the task's entropy over T symbols (nats)"),
         ("kl", _F, "KL(s) = L(s) - H_T(task) (nats)"),
         ("kl_se", _F, "standard error of kl, paired per sequence (0 when exact)"),
         ("first_symbol_kl", _F, "KL of the first task symbol alone: from the task's law of "
                                 "x_1 to the predictor's prediction of x_1 after the prompt "
                                 "(nats, exact). The part of kl spent at the prompt-task "
                                 "boundary; kl minus it is the expected KL of the later symbols"),
         ("first_symbol_prediction", pa.list_(_F), "the predictor's distribution of the first "
                                                   "task symbol after the prompt, q(v | s) for "
                                                   "v = 0..V-1 (exact; for Bayes the posterior "
                                                   "predictive the prompt induces)"),
         ("rank", _I, "0 for the optimal class, exactly; the other prompts dense-ranked from 1 "
                      "by loss, tied only where their losses are equal (exact values: within "
                      "kl_resolution; estimates: relative 1e-9)"),
         ("optimal", _B, "member of the optimal class S*: loss within kl_resolution of the "
                         "least (exact values); for estimates, the best estimate and every "
                         "prompt not shown worse than it by a one-sided paired z-test at "
                         "family-wise 95%, Bonferroni over the P - 1 comparisons "
                         "(docs/science.md)"),
         ("resolved", _B, "false only for a member of S* under monte_carlo whose difference "
                          "from the best estimate is not resolved at family-wise 95% (its "
                          "estimate is not equal to the best's); true otherwise"),
         ("kl_resolution", _F, ("the floating-point resolution of kl (nats, the same for "
                                "every prompt of the landscape): exact KLs closer than it are "
                                "tied; float64 for exact Bayes sums, float32 losses for "
                                "networks (landscape.resolution, docs/science.md \"Ties\")")),
         ("below_resolution", _B, ("kl <= kl_resolution where the KL is exact: it is not "
                                   "told from 0 by the arithmetic; reported as below "
                                   "resolution, not as a number. Never for monte_carlo: an "
                                   "estimate is a number with its kl_se (it can be "
                                   "negative)")),
         ("mc_kl", _F, "KL estimated on the evaluation set (a cross-check of kl)"),
         ("mc_kl_se", _F, "standard error of mc_kl"),
         _DECIDED_BY,
         ("kl_residuals", pa.list_(_F), "monte_carlo only: the prompt's KL on each evaluation "
                                        "sequence, in the evaluation set's row order, minus "
                                        "its stratum's mean and scaled by W_k / sqrt(n_k "
                                        "(n_k - 1)) (landscape.paired_residuals), so that the "
                                        "paired standard error of KL(a) - KL(b) is the norm "
                                        "of the difference of two rows (and kl_se the norm "
                                        "of one): what every reader decides by "
                                        "(landscape.TieRule, decided_by paired_se); empty "
                                        "for exact landscapes, and where prompts x evaluation "
                                        "sequences exceed landscape.RESIDUAL_BUDGET (2^24; "
                                        "readers then decide by se_bound); read only when "
                                        "asked for by name (tables.read columns=...)")),
        ("predictor", "replicate", "experiment", "task", "prompt_length", "prompt"),
        on_request=("kl_residuals",)),
    Artifact(
        "selections", "{experiment}/aggregate/selections.parquet",
        "One row per (predictor, task, selection, N, seed): the prompt the search chose and "
        "what it costs.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _SELECTION, _N, _SEED, _PROMPT, _PLEN,
         ("empirical_loss", _F, "L_N(s_hat)"),
         ("kl", _F, "KL(s_hat) from the landscape"),
         ("regret", _F, "KL(s_hat) - KL(s*) >= 0, the cost of choosing on a finite dataset"),
         ("rank", _I, "rank of s_hat in the landscape (0: the optimal class)"),
         ("correct", _B, "s_hat is in the optimal class")),
        ("predictor", "replicate", "experiment", "task", "selection", "N", "seed")),
    Artifact(
        "reliability", "{experiment}/aggregate/reliability.parquet",
        "Per (predictor, task, selection, N): proportion of seeds whose s_hat is optimal, "
        "with a Wilson 95% interval, and the distribution of regret and rank of s_hat; the "
        "dataset-selection methods side by side.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "the task lies in the support of the pretraining prior "
                                      "(from the config)"),
         _SELECTION, _N,
         *_PROPORTION_CORRECT, *_WITHIN_EPSILON, *_REGRET_STATS,
         ("rank_mean", _F, "mean rank of s_hat"),
         ("rank_median", _F, "median rank of s_hat")),
        ("predictor", "replicate", "experiment", "task", "selection", "N")),
    Artifact(
        "choices", "{experiment}/aggregate/choices.parquet",
        "Per (predictor, task, selection, N, prompt): how often the search chose the prompt.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         _SELECTION, _N, _PROMPT, _PLEN,
         ("count", _I, "number of seeds that chose the prompt"),
         ("frequency", _F, "count / seeds"),
         ("kl", _F, "KL of the prompt from the landscape"),
         ("rank", _I, "rank of the prompt in the landscape (0: the optimal class)"),
         ("optimal", _B, "the prompt is in the optimal class"),
         ("resolved", _B, "as in the landscape: false for a member of the optimal class not "
                          "resolved from the best estimate")),
        ("predictor", "replicate", "experiment", "task", "selection", "N", "prompt_length",
         "prompt")),
    Artifact(
        "strategy_runs", "{experiment}/strategies/{predictor}/{task}/N{N}/seeds{first}-{last}.parquet",
        "Search strategies on the task's D_N (selection random; replicate 0 of a network): "
        "per seed, strategy and budget, the best prompt the strategy found within that many "
        "evaluations (one run per seed, so budgets are nested), scored against the "
        "exhaustive ground truth of the same D_N and against the landscape.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, _SEED, _STRATEGY, _BUDGET, _PROMPT,
         _PLEN,
         ("empirical_loss", _F, "L_N of the chosen prompt (nats)"),
         ("found_best", _B, "the chosen prompt attains the empirical minimum over all prompts "
                            "(within the search's relative tie tolerance 1e-12; best_known: "
                            "the least L_N known on this D_N, over the prompts up to "
                            "max_prompt_length and every prompt the job's strategies "
                            "evaluated on it)"),
         ("correct", _B, "the chosen prompt is in the optimal class of the landscape "
                         "(best_known: the least known KL is not shown less than its KL by "
                         "the landscape's rule)"),
         ("regret", _F, "KL(chosen) - KL(s*) (nats), as in selections (best_known: minus the "
                        "least known KL, over the landscape and every prompt the job's "
                        "strategies chose: a lower bound of the regret)"),
         ("rank", _I, "rank of the chosen prompt in the landscape (0: the optimal class); "
                      "null where ground_truth is best_known", NULLABLE),
         ("evaluations", _I, "evaluations the strategy used up to this budget (at most the "
                             "budget; fewer where it stopped early, e.g. every prompt seen)"),
         ("optimum_class_size", _I, "m: prompts attaining the empirical minimum on this D_N "
                                    "(best_known: of the known prompts)"),
         ("num_prompts", _I, "P: prompts of length 0..L, L the strategies' longest prompt "
                             "(strategy_max_prompt_length, default max_prompt_length)"),
         ("exhaustive_correct", _B, "exhaustive search's choice s_hat on this D_N is in the "
                                    "optimal class (so a failure here with found_best is "
                                    "estimation error, without it search error; best_known: "
                                    "s_hat up to max_prompt_length, by correct's rule)"),
         ("kl", _F, "KL of the chosen prompt (nats): the landscape's, or beyond "
                    "max_prompt_length computed by the landscape's method on the same "
                    "outcomes (the evaluation set where it is estimated)"),
         ("ground_truth", _S, "exhaustive: every prompt the strategies search is in the "
                              "landscape and tabulated, and found_best, correct, regret, rank "
                              "are exact as stated; best_known: the strategies search beyond "
                              "max_prompt_length (strategy_max_prompt_length), no table "
                              "holds every prompt, and they are scored against the best "
                              "prompts known (docs/science.md)")),
        ("predictor", "replicate", "experiment", "task", "N", "seed", "strategy", "budget")),
    Artifact(
        "strategy_steps",
        "{experiment}/strategy_steps/{predictor}/{task}/N{N}/seeds{first}-{last}.parquet",
        "Every prompt evaluation of the strategy runs of strategy_runs, in order, for the "
        f"strategies that propose prompts from a parent ({_LISTED['proposing']}; "
        f"{_LISTED['not_proposing']} draw without one and are left out): "
        "one run per seed and strategy, up to its largest budget (the run at a smaller budget "
        "B is its steps with step < B: budgets are nested), so `budget` is the strategy's "
        "largest. The observational data of edit_effects.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, _SEED, _STRATEGY,
         _BUDGET,
         ("step", _I, "the evaluation's index in the run, 0.. (a gradient computation "
                      "counts as one and has no row, so steps can skip)"),
         ("parent_prompt", _S, "the prompt this one was proposed from: hill_climb and "
                               "gradient's current prompt, annealing's current prompt, beam's "
                               "prefix, evolutionary's first tournament parent; null for a "
                               "start or restart", NULLABLE),
         _PROMPT,
         ("operation", _S, "the single edit of parent_prompt that gives prompt "
                           f"(promptscape.edits.OPERATIONS: {_LISTED['operations']}, "
                           "deduplicated as edits.edit_edges), null where prompt is not one "
                           "edit of its parent (a crossover) or has none", NULLABLE),
         ("position", _I, "the edit's position (edits.edit_edges: an insertion's index in "
                          "the child); null with operation", NULLABLE),
         ("symbol", _I, "the edit's symbol: inserted, deleted, substituted in, or the one "
                        "a swap moves right; null with operation", NULLABLE),
         ("replaced", _I, "the symbol a substitution replaces, or the one a swap moves "
                          "left; null otherwise", NULLABLE),
         ("parent_loss", _F, "L_N of parent_prompt on the run's D_N (nats); null without a "
                             "parent", NULLABLE),
         ("loss", _F, "L_N of prompt on the run's D_N (nats): what the strategy saw")),
        ("predictor", "replicate", "experiment", "task", "N", "seed", "strategy", "budget",
         "step")),
    Artifact(
        "hill_climb_ends",
        "{experiment}/hill_climb_ends/{predictor}/{task}/N{N}/seeds{first}-{last}.parquet",
        "Per hill_climb run (seed) at its largest budget: is the prompt it ended on (the "
        "best it found, strategy_runs' prompt) a local optimum of L_N on its D_N under the "
        "strategy's own neighbourhood (strategies.neighbours: one symbol substituted, "
        "inserted or deleted), and of the exact landscape under the same neighbourhood?",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, _SEED, _STRATEGY, _BUDGET, _PROMPT,
         ("found_best", _B, "as in strategy_runs: the prompt attains the empirical minimum"),
         ("local_optimum_empirical", _B, "no neighbour has lower L_N on this D_N (by the "
                                         "strategies' relative tie tolerance 1e-12)"),
         ("local_optimum_exact", _B, "no neighbour has lower KL in the landscape by its rule "
                                     "(decided_by: by more than kl_resolution where exact; "
                                     "shown lower by the standard error where estimated)"),
         _DECIDED_BY),
        ("predictor", "replicate", "experiment", "task", "N", "seed", "strategy", "budget")),
    Artifact(
        "strategies", "{experiment}/aggregate/strategies.parquet",
        "Per (predictor, task, N, strategy, budget), over seeds: how often the strategy's "
        "prompt is optimal, how often it finds the empirical optimum, failures split into "
        "search error and estimation error, and regret. The exhaustive rows equal the "
        "reliability table's random rows.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         _N, _STRATEGY, _BUDGET,
         *_PROPORTION_CORRECT, *_WITHIN_EPSILON,
         ("found_best", _I, "seeds whose chosen prompt attains the empirical minimum"),
         ("proportion_found_best", _F, "found_best / seeds"),
         ("found_best_ci_low", _F, "Wilson 95% interval of proportion_found_best, lower bound"),
         ("found_best_ci_high", _F, "Wilson 95% interval of proportion_found_best, upper "
                                    "bound"),
         ("expected_found_best", _F, "random only: the mean over seeds of 1 - C(P - m, B) / "
                                     "C(P, B), the exact probability that B prompts drawn "
                                     "without replacement include one of the m empirical "
                                     "optima (B the evaluations used); null for the other "
                                     "strategies", NULLABLE),
         ("found_best_exhaustive_correct", _I, "seeds where the strategy found the empirical "
                                               "optimum and that optimum is correct"),
         ("estimation_error", _I, "seeds where the strategy found the empirical optimum but "
                                  "exhaustive search's choice is not optimal: D_N misleads"),
         ("search_error", _I, "seeds where the strategy missed the empirical optimum and "
                              "exhaustive search's choice is optimal: the search failed"),
         ("both_errors", _I, "seeds where the strategy missed the empirical optimum and "
                             "exhaustive search's choice is not optimal either"),
         *_REGRET_STATS,
         ("evaluations_mean", _F, "mean evaluations used"),
         ("ground_truth", _S, "as in strategy_runs: exhaustive (every prompt searched is "
                              "tabulated: the columns are exact as stated) or best_known (the "
                              "strategies search beyond max_prompt_length: found_best, "
                              "correct and the cells against the best prompts known, regret a "
                              "lower bound, expected_found_best null)")),
        ("predictor", "replicate", "experiment", "task", "N", "strategy", "budget")),
    Artifact(
        "edit_effects", "{experiment}/aggregate/edit_effects.parquet",
        "An observational estimate of edit effects judged against the truth (docs/science.md): per "
        "(predictor, replicate, task, N) and edit kind (edits.EDIT_KINDS, relative to the "
        "task), from every step of the strategies (strategy_steps, pooled over seeds and "
        "strategies) that is one edit of its parent. The change of L_N is regressed on the "
        "kind with covariates the parent's length, its count of each symbol but 0 and its "
        "rank among the prompts its run evaluated; the target is the mean exact ΔKL over all "
        "edges of the kind in the landscape (estimated where the landscape is monte_carlo). "
        "Kinds never visited have no row.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         _N,
         ("edit_kind", _S, "the edit kind (promptscape.edits.EDIT_KINDS): "
                           f"{_LISTED['edit_kinds']}; a step of several kinds counts "
                           "for each"),
         ("visits", _I, "single-edit steps of this kind (between prompts of finite KL: an "
                        "edge with an impossible end, KL inf, is left out here and in edges)"),
         ("edges", _I, "all edges of this kind in the landscape (edits.edit_edges) between "
                       "prompts of finite KL"),
         ("naive", _F, "least-squares estimate of the kind's mean ΔL_N: kind indicators and "
                       "centred covariates (observational.observational_estimates) (nats)"),
         ("weighted", _F, "propensity-weighted (Hajek) estimate: each step weighted by the "
                          "inverse of its kind's frequency in its covariate cell (4 quantile "
                          "bins per covariate) (nats)"),
         ("overlap", _F, "share of all visited steps in cells where the kind occurs (the "
                         "weighted estimate's support)"),
         ("visited_loss", _F, "raw mean ΔL_N over the visited steps of the kind (nats)"),
         ("visited_kl", _F, "mean exact ΔKL over the same steps (nats)"),
         ("all_kl", _F, "mean exact ΔKL over all edges of the kind: the truth (nats)"),
         ("noise_error", _F, "visited_loss - visited_kl: what D_N adds (nats)"),
         ("selection_error", _F, "visited_kl - all_kl: what visiting some edges rather than all "
                           "adds (nats)"),
         ("raw_error", _F, "visited_loss - all_kl = noise_error + selection_error: the "
                           "raw mean's error (nats)"),
         ("naive_error", _F, "naive - all_kl (nats)"),
         ("weighted_error", _F, "weighted - all_kl (nats)")),
        ("predictor", "replicate", "experiment", "task", "N", "edit_kind")),
    Artifact(
        "hill_climb_optima", "{experiment}/aggregate/hill_climb_optima.parquet",
        "Per (predictor, task, N) of the hill_climb runs at their largest budget "
        "(hill_climb_ends): how many missed the empirical optimum, and of those how many "
        "ended on a local optimum of L_N on their D_N under the strategy's own neighbourhood "
        "(the search got stuck where D_N has a local optimum) and of the exact landscape "
        "(a local optimum of the truth).",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, _STRATEGY, _BUDGET,
         ("runs", _I, "hill_climb runs (seeds)"),
         ("missed", _I, "runs whose prompt does not attain the empirical minimum"),
         ("missed_empirical_local_optimum", _I, "missed runs ending on a local optimum of "
                                                "L_N (strategies.neighbours)"),
         ("missed_exact_local_optimum", _I, "missed runs ending on a local optimum of the "
                                            "exact landscape, same neighbourhood"),
         ("missed_both_local_optimum", _I, "missed runs ending on a local optimum of both")),
        ("predictor", "replicate", "experiment", "task", "N", "strategy", "budget")),
    Artifact(
        "tuning_runs", "{experiment}/tuning/{predictor}/r{replicate}/{task}/N{N}/"
                       "seeds{first}-{last}.parquet",
        "One row per (seed, tuner, step budget): a network tuned on the seed's D_N alone, "
        "scored by the landscape's rule, beside the hard prompt exhaustive search picked from "
        "the same D_N (the hard_search rows).",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, _SEED, _TUNER, _SETTINGS,
         _TUNING_STEPS,
         ("method", _S, "how KL is computed: exact_enumeration (all V^T task sequences, or "
                        "the task's support) or monte_carlo (the stratified evaluation set), "
                        "as the network's landscape"),
         ("kl", _F, "KL(task || tuned network) over T symbols (nats)"),
         ("kl_se", _F, "standard error of kl (0 when exact)"),
         ("entropy", _F, "the task's entropy over T symbols, as the landscape's (nats)"),
         ("train_loss", _F, "empirical log loss per task sequence on D_N (nats); for "
                            "hard_search L_N(s_hat)"),
         ("init_prompt", _S, "prompt-space tuners: the hard prompt they start from (init, "
                             "promptscape.neural.tuners.INITS: "
                             + _LISTED["inits"] + "; optimum's is shown "
                             "unpadded, its padding the mean symbol embedding). A soft "
                             "prompt starts at it exactly; a "
                             "simplex prompt near it (logit init_logit); a prefix at the "
                             "state after it, read before the task's own start token, so a "
                             "prefix's step-0 KL is not the prompt's landscape KL; null "
                             "otherwise", NULLABLE),
         ("projected_prompt", _S, "simplex_prompt: the hard prompt of per-position argmax "
                                  "symbols; null otherwise", NULLABLE),
         ("projected_kl", _F, "simplex_prompt: KL of projected_prompt, as its landscape row; "
                              "null otherwise", NULLABLE),
         ("search_prompt", _S, "s_hat: the prompt exhaustive search chose on this D_N"),
         ("search_kl", _F, "KL(s_hat), scored as kl"),
         ("search_train_loss", _F, "L_N(s_hat), the search's empirical loss"),
         ("kl_minus_search", _F, "kl - search_kl: below 0, tuning beat the searched prompt"),
         ("overfit", _B, "train_loss below L_N(s_hat) while kl above KL(s_hat) (beyond "
                         "float32 resolution, relative 1e-5)"),
         ("overfit_path", _B, "along the tuner's own path up to this budget (holdout rows: "
                              "its final training up to chosen_steps), between two recorded "
                              "budgets KL rose while train_loss fell (beyond float32 "
                              "resolution): the path overfit D_N, whatever the searched "
                              "prompt did"),
         ("worse_than_none", _B, "kl above the unprompted network's (the empty prompt's; "
                                 "beyond float32 resolution): tuning ended worse than not "
                                 "tuning"),
         ("chosen_learning_rate", _F, "the learning rate trained with: the fixed one, or the "
                                      "one chosen on held-out data; null for the references",
          NULLABLE),
         ("chosen_steps", _I, "the steps trained: tuning_steps, or the budget chosen on "
                              "held-out data"),
         ("holdout_loss", _F, "holdout rows: the chosen settings' log loss per sequence on "
                              "the held-out part of D_N (trained on the rest); null otherwise",
          NULLABLE),
         ("trainable_parameters", _I, "parameters the tuner trains (0 for references)"),
         ("sequence_evaluations", _I, "task sequences evaluated to get here: tuning_steps "
                                      "times the distinct sequences of D_N (forward and "
                                      "backward); for hard_search every prompt of length "
                                      "0..L_max on each of them; holdout rows add "
                                      "every rate's training on the rest of D_N")),
        ("predictor", "replicate", "experiment", "task", "N", "seed", "tuner", "settings",
         "tuning_steps")),
    Artifact(
        "tuner_optima", "{experiment}/tuning/{predictor}/r{replicate}/{task}/optimum.parquet",
        "One row per tuner and prompt length: the tuner's own optimum, the tuner trained on "
        "the task itself instead of a D_N (the population objective, E_task l(x) = KL + H_T: "
        "summed over all V^T task sequences where the landscape enumerates them, else fresh "
        "task samples at every step, never the evaluation set), to convergence over "
        "tuning.optimum's learning rates and starts, the best by that objective; scored by "
        "the landscape's rule, as tuning_runs. The continuous counterpart of the hard "
        "optimum; none's optimum is the network as trained.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _TUNER,
         ("prompt_length", _I, "K, the prompt positions of a prompt-space tuner "
                               "(tuning.prompt_length and each of tuning.optimum."
                               "prompt_lengths); 0 for the others"),
         ("method", _S, "how KL is computed: exact_enumeration or monte_carlo, as the "
                        "network's landscape"),
         ("kl", _F, "KL(task || the tuner at its optimum) over T symbols (nats)"),
         ("kl_se", _F, "standard error of kl (0 when exact)"),
         ("entropy", _F, "the task's entropy over T symbols, as the landscape's (nats)"),
         ("objective", _F, "the population objective at the optimum (nats per task "
                           "sequence): kl + entropy where exact; else its estimate on a "
                           "check sample of fresh task sequences"),
         ("learning_rate", _F, "the learning rate of the best run (tuning.optimum."
                               "learning_rates); null for none", NULLABLE),
         ("steps", _I, "Adam steps taken to the best parameters (0 for none)"),
         ("converged_step", _I, "the step at which the objective had not improved by more "
                                "than tuning.optimum.tolerance for patience steps; null: not "
                                "converged within max_steps, or none", NULLABLE),
         ("gradient_norm", _F, "norm of the objective's gradient at the optimum over the "
                               "trainable parameters; null for none", NULLABLE),
         ("restart_spread", _F, "the range of the population objective over the starts at "
                                "the chosen learning rate (nats; their KL range where "
                                "exact; 0 with one start)"),
         ("restarts", _I, "starts tried at each learning rate: prompt-space tuners the hard "
                          "optimum of length K and tuning.optimum.restarts random prompts; "
                          "others 1 (the network as trained)"),
         ("start", _S, "the start of the best run: optimum (the landscape's best hard "
                       "prompt of length K), random (K uniform symbols) or network"),
         ("start_prompt", _S, "prompt-space tuners: the hard prompt of K symbols the best "
                              "run started from; null otherwise", NULLABLE),
         ("at_tuning_length", _B, "prompt_length is tuning.prompt_length, the K tuned on "
                                  "D_N (or 0): the row the tuning aggregate reads"),
         ("trainable_parameters", _I, "parameters the tuner trains (0 for none)")),
        ("predictor", "replicate", "experiment", "task", "tuner", "prompt_length")),
    Artifact(
        "tuning", "{experiment}/aggregate/tuning.parquet",
        "Per (network, task, N, tuner, step budget), over seeds: the distribution of the tuned "
        "KL, how often it beats the hard optimum and the searched hard prompt, and how often "
        "tuning on D_N overfits; hard_optimum rows hold the landscape's optimum.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         _N, _TUNER, _SETTINGS, _TUNING_STEPS,
         ("seeds", _I, "number of datasets (seeds)"),
         ("kl_median", _F, "median KL over seeds (nats)"),
         ("kl_q25", _F, "25th percentile of KL"),
         ("kl_q75", _F, "75th percentile of KL"),
         ("optimum_kl", _F, "the exhaustive optimum's KL at the experiment's L_max, from the "
                            "landscape"),
         ("below_optimum", _I, "seeds whose KL is below optimum_kl (beyond float32 "
                               "resolution) and, on an estimated landscape, shown below every "
                               "member m of its optimal class: kl + z kl_se < kl_m - z "
                               "kl_se_m, z the landscape's Bonferroni critical value "
                               "(decided_by se_bound)"),
         ("proportion_below_optimum", _F, "below_optimum / seeds"),
         ("below_optimum_ci_low", _F, "Wilson 95% interval, lower bound"),
         ("below_optimum_ci_high", _F, "Wilson 95% interval, upper bound"),
         ("below_search", _I, "seeds whose KL is below their searched hard prompt's (beyond "
                              "float32 resolution; estimated: shown below it, as "
                              "below_optimum)"),
         ("proportion_below_search", _F, "below_search / seeds"),
         ("below_search_ci_low", _F, "Wilson 95% interval, lower bound"),
         ("below_search_ci_high", _F, "Wilson 95% interval, upper bound"),
         _DECIDED_BY,
         ("kl_minus_search_median", _F, "median over seeds of the paired difference "
                                        "kl - KL(s_hat)"),
         ("proportion_overfit", _F, "share of seeds that overfit (tuning_runs.overfit)"),
         ("tuner_optimum_kl", _F, "the tuner's own optimum (tuner_optima.kl): trained on "
                                  "the task itself; for none the network as trained, for "
                                  "hard_search and hard_optimum the hard optimum (what search "
                                  "finds with unlimited data)"),
         ("proportion_overfit_path", _F, "share of seeds whose own path overfit "
                                         "(tuning_runs.overfit_path)"),
         ("proportion_worse_than_none", _F, "share of seeds that ended above the "
                                            "unprompted network (tuning_runs.worse_than_"
                                            "none)"),
         ("chosen_learning_rate_median", _F, "median over seeds of the learning rate "
                                             "trained with; null for the references",
          NULLABLE),
         ("chosen_steps_median", _F, "median over seeds of the steps trained"),
         ("trainable_parameters", _I, "parameters the tuner trains"),
         ("sequence_evaluations", _F, "mean task-sequence evaluations per seed")),
        ("predictor", "replicate", "experiment", "task", "N", "tuner", "settings",
         "tuning_steps")),
    Artifact(
        "prior_fit", "{experiment}/prior/{predictor}/r{replicate}.parquet",
        "The pretraining prior read back from a predictor (promptscape.prior): its next-symbol "
        "distribution queried after the count classes of each length 0..probe_length (no "
        "task data), fitted by a finite mixture of categoricals (coins for V = 2; K chosen by "
        "held-out error) and by a Beta / Dirichlet, each compared with the true prior by W1. "
        "One row per (probe length, family, component); for exchangeable pretraining sources "
        "only.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT,
         ("probe_length", _I, "d: the fit saw the count classes of length < d and held out "
                              "those of length d"),
         ("family", _S, "mixture (K categoricals with weights) or dirichlet (Beta for V = 2)"),
         ("component", _I, "the component's index, 0..components-1 (atoms in lexicographic "
                           "order); 0 for dirichlet"),
         ("queries", _I, "next-symbol distributions queried: the count classes of length <= d"),
         ("components", _I, "K of the mixture (chosen by held-out error); 1 for dirichlet"),
         ("weight", _F, "the component's weight (1 for dirichlet)"),
         ("probabilities", pa.list_(_F), "the component's categorical over symbols 0..V-1 "
                                         "(dirichlet: its mean)"),
         ("alpha", pa.list_(_F), "the Dirichlet's parameters over symbols 0..V-1 (Beta: "
                                 "[beta, alpha]); null for mixture", NULLABLE),
         ("train_error", _F, "largest total-variation distance between the predictor's and "
                             "the fit's next-symbol distributions on the contexts fitted"),
         ("heldout_error", _F, "the same on the held-out contexts (length d)"),
         ("w1", _F, "W1 between the fitted and the true mixing measure over the simplex, "
                    "total-variation ground distance (for V = 2, |theta - theta'|)"),
         ("w1_resolution", _F, "0 where w1 is exact; else the spacing of the simplex grid a "
                               "continuous measure over V > 2 symbols was discretised on"),
         ("selected", _B, "the fit the surrogate strategy uses: at the largest probe length, "
                          "the family of least held-out error")),
        ("predictor", "replicate", "experiment", "probe_length", "family", "component")),
    Artifact(
        "efficiency", "{experiment}/efficiency.parquet",
        "Prompt efficiency by prompt length: the KL of typical prompts (prompts drawn from the "
        "task itself) against the optimal prompt of that length. Typical-prompt quantiles are "
        "lower quantiles (the q-quantile is the least KL value v with P(KL <= v) >= q), exact "
        "or sampled as typical_method says. Lengths a neural predictor cannot fit in its "
        "context together with the task have no row.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _PLEN,
         ("typical_method", _S, "how the typical-prompt quantiles are obtained: exact_counts "
                                "(exchangeable Bayes predictor on an exchangeable task: the "
                                "exact distribution of the prompt's symbol counts, a "
                                "multinomial or a mixture of multinomials, with each count "
                                "class's KL) or "
                                "sampled (the empirical distribution of K prompts drawn from "
                                "the task, with 95% intervals in the _low/_high columns)"),
         ("typical_prompts", _I, "K, the number of typical prompts drawn from the task at "
                                 "this length (identical draws are scored once); null where "
                                 "typical_method is exact_counts (nothing is drawn)", NULLABLE),
         ("typical_kl_median", _F, "lower median of the typical prompts' KL (nats): exact, or "
                                   "of the K drawn prompts"),
         ("typical_kl_q25", _F, "lower 25% quantile of the typical prompts' KL"),
         ("typical_kl_q75", _F, "lower 75% quantile of the typical prompts' KL"),
         *((f"typical_kl_{name}_{side}", _F,
            f"{'lower' if side == 'low' else 'upper'} end of the distribution-free 95% "
            f"confidence interval of typical_kl_{name} (order statistics of the K draws with "
            f"binomial(K, q) ranks); null where typical_method is exact_counts, or where K is "
            f"too small for a 95% bound on this side", NULLABLE)
           for name in ("median", "q25", "q75") for side in ("low", "high")),
         ("optimal_exact_kl", _F, "least KL of a prompt of exactly this length: from the "
                                  "landscape up to L_max, from prompt classes beyond it "
                                  "(Bayes predictors whose source states them: count classes "
                                  "of exchangeable sources, transition classes of "
                                  "markov_beta); null beyond L_max otherwise", NULLABLE),
         ("optimal_upto_kl", _F, "KL of optimal_prompt; null where optimal_exact_kl is",
          NULLABLE),
         ("optimal_prompt", _S, "the best prompt of length at most prompt_length (ties: "
                                "shorter, then lexicographically first); null where "
                                "optimal_exact_kl is", NULLABLE),
         ("optimal_below_resolution", _B, ("optimal_upto_kl is at most the floating-point "
                                           "resolution of its computation (as the "
                                           "landscape's below_resolution): a rounding, not "
                                           "a KL; null where optimal_exact_kl is"), NULLABLE),
         ("method", _S, "how the typical prompts' KL is computed: exact_counts, "
                        "exact_enumeration or monte_carlo (see docs/science.md)")),
        ("predictor", "replicate", "experiment", "task", "prompt_length")),
    Artifact(
        "token_efficiency", "{experiment}/aggregate/token_efficiency.parquet",
        "Token efficiency per (predictor, task): how long a typical prompt must be before its "
        "median KL is no worse than that of the optimal prompt of length at most L_max.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         ("max_prompt_length", _I, "L_max, the longest prompt of the landscape"),
         ("optimal_prompt", _S, "the optimal prompt of length at most L_max (ties: shorter, "
                                "then lexicographically first); '' is the empty prompt"),
         ("optimal_length", _I, "length of optimal_prompt"),
         ("optimal_kl", _F, "KL of optimal_prompt from the landscape (nats)"),
         ("max_typical_length", _I, "longest typical-prompt length measured: "
                                    "efficiency.max_length, or less where a neural "
                                    "predictor's context is full"),
         ("typical_length", _I, "shortest typical-prompt length whose median KL "
                                "(typical_kl_median) is at most optimal_kl; null when no "
                                "measured length qualifies (beyond range)", NULLABLE),
         ("typical_method", _S, "the typical_method of the median typical_length rests on (at "
                                "typical_length, or at max_typical_length when null): "
                                "exact_counts (the exact median), or sampled (the median of "
                                "the K drawn prompts; its 95% interval is in the efficiency "
                                "table)"),
         ("length_ratio", _F, "typical_length / optimal_length; null when typical_length is "
                              "null or the optimal prompt is empty", NULLABLE)),
        ("predictor", "replicate", "experiment", "task")),
    Artifact(
        "predicted_reliability",
        "{experiment}/prediction/{predictor}/r{replicate}/{task}.parquet",
        "The predicted proportion correct of exhaustive search at every N of one (predictor, "
        "task) of an experiment (promptscape.theory), with the task's variance "
        "decomposition; the experiment's reliability_prediction adds the measured values. "
        "Where the outcomes are the evaluation_set, the exact sum's method reads plug_in: "
        "exact for the evaluation set's empirical law, an estimate for the task.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _N, *_PREDICTION),
        ("predictor", "replicate", "experiment", "task", "N")),
    Artifact(
        "reliability_prediction", "{experiment}/aggregate/reliability_prediction.parquet",
        "Per (predictor, task, N): the predicted proportion correct (exact where the "
        "multinomial sum ran, the normal theory otherwise; simulation beside both) against "
        "the measured one of the reliability table, and the variance decomposition of each "
        "(predictor, task).",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("in_meta_distribution", _B, "as in reliability"),
         _N, *_PREDICTION,
         ("seeds", _I, "datasets (seeds) of the measured proportion"),
         ("measured_proportion_correct", _F, "proportion_correct of the reliability table "
                                             "under selection random (the theory is of D_N "
                                             "drawn from the task)"),
         ("ci_low", _F, "its Wilson 95% interval, lower bound"),
         ("ci_high", _F, "its Wilson 95% interval, upper bound"),
         ("inside_interval", _B, "ci_low <= predicted_proportion_correct <= ci_high")),
        ("predictor", "replicate", "experiment", "task", "N")),
    Artifact(
        "edits", "{experiment}/aggregate/edits.parquet",
        "Exact effects of single prompt edits (promptscape.edits; docs/science.md, \"Edit\"): "
        "per (predictor, task, edit kind), the distribution of KL(child) - KL(parent) over "
        f"every single edit ({_LISTED['operations']}) of every prompt of length "
        "0..L_max whose child stays within that range, read from the landscape (no model is "
        "evaluated). An edit belongs to every kind that describes it (promptscape.edits."
        "EDIT_KINDS). Kinds that need the task's most or least probable symbol have no rows "
        "where that symbol is tied (coin(0.5), memoryless chains, two-mode tasks); the job's "
        "log names them.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK,
         ("edit_kind", _S, "the edit kind (promptscape.edits.EDIT_KINDS): "
                           + _LISTED["edit_kinds_described"]),
         ("in_meta_distribution", _B, "as in reliability"),
         ("method", _S, "the landscape's method (exact_counts, exact_enumeration or "
                        "monte_carlo)"),
         ("edges", _I, "edits of the kind over all prompts"),
         ("undefined_edges", _I, "of those, the edits between two prompts of infinite KL "
                                 "(both impossible under the predictor: no ΔKL, inf - inf); "
                                 "left out of every statistic of the row"),
         ("delta_median", _F, "median ΔKL = KL(child) - KL(parent) over the kind's edits "
                              "(nats; negative: the edit improves); null when the kind has "
                              "no edits (L_max 0)", NULLABLE),
         ("delta_q25", _F, "25th percentile of ΔKL (linear interpolation); null with "
                           "delta_median", NULLABLE),
         ("delta_q75", _F, "75th percentile of ΔKL; null with delta_median", NULLABLE),
         ("share_improving", _F, "share of the kind's edits whose child is shown better than "
                                 "its parent by the landscape's rule (decided_by: exact, ΔKL "
                                 "below minus kl_resolution; estimated, ΔKL below minus z "
                                 "times its standard error, z the landscape's Bonferroni "
                                 "critical value); null with delta_median", NULLABLE),
         ("share_unresolved", _F, "share of the kind's edits whose ΔKL that rule tells from "
                                  "0 in neither direction (exact: equal KLs; estimated: not "
                                  "resolved by the evaluation set); null with delta_median",
          NULLABLE),
         ("near_top_edges", _I, "the kind's edits whose parent's KL is within 0.01 nats of "
                                "the optimum (promptscape.edits.DEFAULT_NEAR_TOP)"),
         ("share_improving_near_top", _F, "share improving among those; null where there are "
                                          "none", NULLABLE),
         ("rest_edges", _I, "the kind's other edits (parent more than 0.01 nats above the "
                            "optimum)"),
         ("share_improving_rest", _F, "share improving among those; null where there are "
                                      "none", NULLABLE),
         _DECIDED_BY,
         ("delta_se_median", _F, "median over the kind's edits of the standard error of ΔKL "
                                 "by decided_by (0 exact; paired_se: the paired error from "
                                 "the landscape's kl_residuals; se_bound: kl_se(child) + "
                                 "kl_se(parent)); null with delta_median", NULLABLE),
         ("delta_se_max", _F, "greatest such standard error; null with delta_median",
          NULLABLE)),
        ("predictor", "replicate", "experiment", "task", "edit_kind")),
    Artifact(
        "local_optima", "{experiment}/aggregate/local_optima.parquet",
        "Local structure of every landscape (promptscape.edits.local_structure): a row per "
        "local optimum, a prompt that no single edit improves (its child shown better by the "
        "landscape's rule, decided_by: by more than kl_resolution where exact, by z standard "
        "errors of the difference where estimated), with its plateau (local optima of equal "
        "KL connected by edits; on an estimated landscape the optimal class's local optima "
        "are one plateau) and its basin under steepest descent (each prompt moves to its "
        "best improving neighbour, ties to the canonical first).",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _TASK, _PROMPT, _PLEN,
         ("kl", _F, "KL of the prompt from the landscape (nats)"),
         ("kl_above_optimum", _F, "kl minus the landscape's least KL (nats; 0 at the global "
                                  "optimum)"),
         ("optimal", _B, "member of the landscape's optimal class S*"),
         ("plateau", _I, "the plateau's number within the landscape, 0.. in the canonical "
                         "order of each plateau's first member: count plateaus by distinct "
                         "values"),
         ("basin_size", _I, "prompts whose steepest descent ends at this prompt (itself "
                            "included); the basins of a landscape partition its prompts"),
         _DECIDED_BY),
        ("predictor", "replicate", "experiment", "task", "prompt_length", "prompt")),
    Artifact(
        "transfer", "{experiment}/aggregate/transfer.parquet",
        "Transfer regret (docs/science.md): the target's KL of a source's prompts minus the "
        "target's optimum, over the target landscape, for every ordered pair. The file of an "
        "experiment holds the rows whose target is that experiment: across its predictors "
        "and replicates (per task), across its tasks (per predictor and replicate), and "
        "across pretraining (the optimal class of every predictor of another experiment that "
        "shares the task, L_max, V and T, under this experiment's predictors; one that shares "
        "a task but not these is left out, logged and counted by the summary). A source prompt "
        "missing from the target landscape is an error naming both.",
        (_EXPERIMENT,
         ("comparison", _S, "what differs between source and target: predictors (same task "
                            "and experiment; a predictor with itself included), tasks (same "
                            "predictor and replicate; a task with itself included) or "
                            "pretraining (same task, another experiment)"),
         ("source_prompts", _S, "what the regret is of: optimal_class (the source's optimal "
                                "class S*; regret its mean over the class), search (the "
                                "prompt exhaustive search picks from each seed's D_N under "
                                "the source predictor, selection random; regret its mean "
                                "over seeds, per search_N), empty or median (the target's own "
                                "regret of the empty prompt and of its median prompt, lower "
                                "median of the KLs: baselines, source = target)"),
         ("source_experiment", _S, "experiment of the source landscape"),
         ("target_experiment", _S, "experiment of the target landscape (= experiment)"),
         ("source_predictor", _S, "predictor of the source landscape"),
         ("source_replicate", _I, "its replicate"),
         ("target_predictor", _S, "predictor of the target landscape"),
         ("target_replicate", _I, "its replicate"),
         ("source_task", _S, "task of the source landscape"),
         ("target_task", _S, "task of the target landscape"),
         ("search_N", _I, "the dataset size N of a search row; null otherwise", NULLABLE),
         ("source_count", _I, "prompts the regret is over: the size of the source's optimal "
                              "class, the seeds of a search row, 1 for a baseline"),
         ("regret", _F, "mean over those prompts of KL_target(s) - min KL_target (nats)"),
         ("regret_min", _F, "least of those regrets"),
         ("regret_max", _F, "greatest of those regrets"),
         ("regret_se", _F, "standard error of regret by decided_by (0 exact; paired_se: "
                           "the paired error of the mean difference from the target's best "
                           "estimate; se_bound: the mean kl_se of the prompts plus the "
                           "best's)"),
         ("regret_shown", _B, "some of those prompts lies outside the target's optimal "
                              "class, shown worse than its best by the target's rule "
                              "(regret above kl_resolution where exact; the paired test at "
                              "the target's Bonferroni level where estimated); false: the "
                              "prompts transfer at no cost the target can show"),
         ("target_method", _S, "the target landscape's method (under monte_carlo the "
                               "regrets are estimates)"),
         _DECIDED_BY),
        ("experiment", "comparison", "source_prompts", "source_experiment", "source_predictor",
         "source_replicate", "source_task", "target_predictor", "target_replicate",
         "target_task")),
    Artifact(
        "training_curve", "models/{source}/{predictor}-{identity}/training_curve.parquet",
        "Training of one neural predictor: the loss of every step and the exact Bayes "
        "predictor's loss on the same batch. A network trained from scratch has the rows of "
        "its pretraining source (evaluated_on = source): each step's training batch. A "
        "post-trained network (models.<name>.post_training) has, per post-training step, a "
        "row on its post-training source (the step's training batch, against that source's "
        "exact Bayes predictor: the reference fine-tuning approaches) and a row on the "
        "pretraining source (a fresh batch, no update, against its Bayes predictor: "
        "forgetting).",
        (_PREDICTOR, _REPLICATE, _SOURCE, _IDENTITY,
         ("evaluated_on", _S, "the source (config name) whose fresh sequences the row's "
                              "losses are on and whose exact Bayes predictor bayes_loss is: "
                              "the pretraining source (= source), or a post-trained "
                              "network's post-training source"),
         ("step", _I, "optimisation step (0-based; the losses are before its update)"),
         ("loss", _F, "mean per-symbol log loss of the network on the step's batch (nats)"),
         ("bayes_loss", _F, "the exact Bayes predictor's (of evaluated_on) mean per-symbol loss "
                            "on the same batch"),
         ("regret", _F, "loss - bayes_loss: the excess loss (nats per symbol)")),
        ("predictor", "replicate", "source", "identity", "evaluated_on", "step")),
    Artifact(
        "predictor_regret", "models/{source}/{predictor}-{identity}/regret.parquet",
        "Where a trained network deviates from the Bayes predictor: mean log loss per position "
        "on held-out pretraining sequences, neural minus Bayes.",
        (_PREDICTOR, _REPLICATE, _SOURCE, _IDENTITY,
         ("position", _I, "position t in the sequence (0 predicts the first symbol from BOS)"),
         ("sequences", _I, "number of held-out sequences"),
         ("neural_loss", _F, "mean log loss of the network at this position (nats)"),
         ("bayes_loss", _F, "mean log loss of the exact Bayes predictor (nats)"),
         ("regret", _F, "neural_loss - bayes_loss (nats)")),
        ("predictor", "replicate", "source", "identity", "position")),
    Artifact(
        "prompt_losses", "{experiment}/prompt_losses/{predictor}/r{replicate}.parquet",
        "A neural predictor's loss l(s, x) of every prompt on every one of the 2^T task "
        "sequences (when P x 2^T fits landscape.enumeration_budget); searches and landscapes read "
        "it instead of loading the model.",
        (_PREDICTOR, _REPLICATE, _EXPERIMENT, _PROMPT, _PLEN,
         _SEQUENCE,
         ("loss", _F, "l(s, x): summed log loss of the sequence after the prompt (nats)")),
        ("predictor", "replicate", "experiment", "prompt_length", "prompt", "sequence")),
]}


# Sort-key columns that hold prompts or sequences: they sort in the canonical order of
# symbols (`promptscape.prompts.all_prompts`), which is byte order for the digits but not for
# the word alphabet, whose boundary `_` (symbol 26) comes before `a` in bytes; it sorts as
# `{`, the byte after `z`. Tables without a `_` in those columns sort as before.
SYMBOL_COLUMNS = ("prompt", "sequence")
_BOUNDARY, _BOUNDARY_SORTS_AS = "_", "{"


def _sorted(table: pa.Table, sort_key) -> pa.Table:
    import pyarrow.compute as pc

    keys, helpers = [], []
    for k in sort_key:
        column = table[k]
        if (k in SYMBOL_COLUMNS and pa.types.is_string(column.type)
                and pc.any(pc.match_substring(column, _BOUNDARY)).as_py()):
            name = f"__order_{k}"
            table = table.append_column(name, pc.replace_substring(column, _BOUNDARY,
                                                                   _BOUNDARY_SORTS_AS))
            keys.append(name)
            helpers.append(name)
        else:
            keys.append(k)
    table = table.sort_by([(k, "ascending") for k in keys])
    return table.drop_columns(helpers) if helpers else table


def write(frame, artifact: str, path: str | os.PathLike) -> None:
    """Validate `frame` (a DataFrame or a mapping of column arrays) against the artifact's
    schema, sort it by the artifact's key and write it atomically, with the running job's
    identity in its metadata (`identity.stamping`)."""
    spec = ARTIFACTS[artifact]
    schema = spec.schema
    columns = list(frame.keys()) if isinstance(frame, dict) else list(frame.columns)
    missing = [n for n in schema.names if n not in columns]
    extra = [c for c in columns if c not in schema.names]
    if missing or extra:
        raise ValueError(f"{artifact} table for {path}: missing columns {missing}, "
                         f"extra columns {extra}")
    if isinstance(frame, dict):
        table = _from_columns(frame, schema, artifact, path)
    else:
        required = [n for n in schema.names if n not in spec.nullable]
        if frame[required].isna().to_numpy().any():
            bad = [n for n in required if frame[n].isna().any()]
            raise ValueError(f"{artifact} table for {path}: missing values in columns {bad}")
        table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    # Canonical row order (pyarrow's sort is stable) and no pandas or time metadata.
    table = _sorted(table, spec.sort_key)
    # The running job's identity, where there is one (`identity`): metadata, not data.
    # and a checksum of each column, which every reader verifies (`read_table`).
    metadata = {"artifact": artifact, identity.CHECKSUM: identity.encode_checksums(table)}
    if (stamp := identity.current()) is not None:
        metadata[identity.KEY] = identity.encode(stamp)
    table = table.replace_schema_metadata(metadata)
    files.atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"),
                       suffix=".parquet.tmp")


def _from_columns(columns: dict, schema: pa.Schema, artifact: str, path) -> pa.Table:
    """A table from column arrays; scalars are broadcast to the length of the others."""
    lengths = {len(v) for v in columns.values() if not _is_scalar(v)}
    if len(lengths) != 1:
        raise ValueError(f"{artifact} table for {path}: columns of different lengths {lengths}")
    (n,) = lengths
    arrays = []
    for field in schema:
        value = columns[field.name]
        if _is_scalar(value):
            value = [value] * n
        try:
            # Where nulls are allowed, NaN means missing too (as in a DataFrame).
            arrays.append(pa.array(value, type=field.type, from_pandas=field.nullable))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as error:
            raise ValueError(f"{artifact} table for {path}: column {field.name!r}: {error}") from None
        if arrays[-1].null_count and not field.nullable:
            raise ValueError(f"{artifact} table for {path}: column {field.name!r} has missing values")
    return pa.Table.from_arrays(arrays, schema=schema)


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool)) or getattr(value, "ndim", 1) == 0


def read_table(path, artifact: str | None = None, dictionary: tuple[str, ...] = (),
               columns: tuple[str, ...] | None = None) -> pa.Table:
    """Read one artifact file, or several of one artifact concatenated, as a pyarrow Table;
    the `dictionary` columns as dictionary-encoded arrays (as Parquet stores repetitive
    strings: each distinct value once, rows as integer codes); only `columns` where given
    (the file's schema is checked whole all the same). Without `columns`, an artifact's
    `Artifact.on_request` columns are left out."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError(f"no {artifact or 'artifact'} files to read")
    if artifact is not None:
        expected = ARTIFACTS[artifact].schema.names
        for p in paths:
            names = _read(p, pq.read_schema).names
            if names != expected:
                raise ValueError(f"{p} is not a {artifact} table: columns {names}, "
                                 f"expected {expected}")
    if columns is None and artifact is not None and ARTIFACTS[artifact].on_request:
        skip = ARTIFACTS[artifact].on_request
        columns = tuple(n for n in ARTIFACTS[artifact].schema.names if n not in skip)
    parts = []
    for p in paths:
        part = _read(p, lambda q: pq.read_table(
            q, read_dictionary=list(dictionary) or None,
            columns=list(columns) if columns is not None else None))
        identity.verify(p, part)  # the data are those its job wrote
        parts.append(part)
    return pa.concat_tables(parts)


def _read(path, reader):
    """`reader(path)`, with a file pyarrow cannot read (truncated, not Parquet) a named error
    (`identity.CorruptArtifactError`) naming it."""
    try:
        return reader(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise identity.unreadable(path, error) from None


def artifact_of(path) -> str:
    """The artifact name a file was written as (from its schema metadata)."""
    return _read(path, pq.read_schema).metadata[b"artifact"].decode()


def first_replicate(frame):
    """The rows of replicate 0 of every predictor (the one network of a model without
    replicates; bayes has no other): what every table and figure but the replicate ones
    shows."""
    return frame[frame["replicate"] == 0]


def random_selection(frame):
    """The rows of dataset selection random (D_N drawn from the task; a table without a
    selection column is returned whole): what the reliability prediction is of, and what
    every figure but the selection ones shows."""
    if "selection" not in frame.columns:
        return frame
    return frame[frame["selection"] == "random"].drop(columns="selection")


def read(path, artifact: str | None = None, columns: tuple[str, ...] | None = None):
    """Like `read_table`, as a pandas DataFrame."""
    return read_table(path, artifact, columns=columns).to_pandas()


# Across machines a rebuild is not bit-identical: numpy and torch choose their SIMD kernels by
# CPU at run time, and a sum taken in another order rounds differently in its last bits. What
# holds instead (docs/caching.md, "Reproducibility across machines"): every non-float column
# (prompts, choices, ranks, counts, flags) is equal, and every float is equal to within this
# relative tolerance of its own size or, for a value that is a small difference of large
# numbers (a KL near zero is a loss minus an entropy of a few nats), of its column's largest
# magnitude.
ACROSS_HOSTS_RTOL = 1e-12
# Artifacts whose floats come out of an iterative fit stopped at a tolerance (least squares of
# the read-back prior): another machine's last bits move the point where it stops, so their
# floats agree to this relative tolerance instead (measured: 1.5e-10), their decisions exactly.
FITTED_ACROSS_HOSTS_RTOL = {"prior_fit": 1e-6}


def floats_agree(a, b, rtol: float = ACROSS_HOSTS_RTOL, scale: float = 0.0):
    """Elementwise: `a` and `b` equal within `rtol` of max(|a|, |b|, `scale`); infinities
    and NaNs agree only with themselves."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore", over="ignore"):
        close = np.abs(a - b) <= rtol * np.maximum(np.maximum(np.abs(a), np.abs(b)), scale)
    return (close & np.isfinite(a) & np.isfinite(b)) | (a == b) | (np.isnan(a) & np.isnan(b))


def differences(left, right, rtol: float = ACROSS_HOSTS_RTOL) -> list[str]:
    """What keeps two versions of one artifact's rows (DataFrames in the same canonical order,
    as `read` returns one file) from agreeing across machines: the columns whose non-float
    values differ at all, or whose floats differ by more than `ACROSS_HOSTS_RTOL` (see
    `floats_agree`; a column's scale is its largest finite magnitude in either version).
    Empty when they agree."""
    if list(left.columns) != list(right.columns):
        return [f"columns {list(left.columns)} against {list(right.columns)}"]
    if len(left) != len(right):
        return [f"{len(left)} rows against {len(right)}"]
    out = []
    for name in left.columns:
        x, y = left[name].to_numpy(), right[name].to_numpy()
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            finite = np.abs(np.concatenate([x, y]))
            finite = finite[np.isfinite(finite)]
            scale = float(finite.max()) if finite.size else 0.0
            differ = ~floats_agree(x, y, rtol, scale)
        else:  # strings, integers, flags, and lists (of floats: to the tolerance)
            differ = np.array([not _values_agree(a, b, rtol) for a, b in zip(x, y)], bool)
        if differ.any():
            i = int(np.flatnonzero(differ)[0])
            out.append(f"{name}: {int(differ.sum())} values differ (first at row {i}: "
                       f"{x[i]!r} against {y[i]!r}; floats to a relative {rtol:g})")
    return out


def _values_agree(a, b, rtol: float) -> bool:
    if isinstance(a, (np.ndarray, list, tuple)) or isinstance(b, (np.ndarray, list, tuple)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return False
        if a.dtype.kind == "f" or b.dtype.kind == "f":
            scale = float(np.abs(a[np.isfinite(a)]).max()) if np.isfinite(a).any() else 0.0
            return bool(floats_agree(a, b, rtol, scale).all())
        return bool((a == b).all())
    if isinstance(a, float) and isinstance(b, float):
        return bool(floats_agree(a, b, rtol))
    return bool(a == b) or (a is None and b is None)


def markdown() -> str:
    """The artifact schemas as Markdown, for docs/artifacts.md."""
    lines = ["# Artifacts", "",
             "Every artifact is one Parquet file under the config's `results_dir` (default "
             "`results/`), written by "
             "`promptscape.study.tables.write` (schema enforced, rows sorted by the sort key, no "
             "timestamps, atomic replace). This page is generated by "
             "`python -m promptscape.study.tables`; a test keeps it in sync.", "",
             "## Dimensions", "",
             "The axes of the study a row belongs to are declared once, in "
             "`promptscape.study.tables.DIMENSIONS`, and follow one convention (checked when an "
             "artifact is declared):", "",
             "- each dimension an artifact varies over is a column of its schema, with the "
             "type and description below, and part of its sort key: first, in the order "
             "below, then the row key (such as `prompt_length`, `prompt`); so the files of "
             "an artifact concatenate into one table that still says where each row came "
             "from;",
             "- a dimension is a `{wildcard}` of the path only where the workflow splits "
             "jobs by it, and every wildcard of a path is a column, or bounds a range of one "
             "(" + ", ".join(f"`{{{w}}}` of `{c}`" for w, c in PATH_RANGES.items()) + ");",
             "- a new dimension (vocabulary size, search strategy and budget, dataset "
             "selection, network replicate, ...) is added to `DIMENSIONS`, then to the "
             "columns and sort key of every artifact that varies over it.", "",
             "| dimension | type | description |", "| --- | --- | --- |"]
    lines += [f"| `{n}` | {t} | {d} |" for n, t, d in DIMENSIONS.values()]
    lines.append("")
    for spec in ARTIFACTS.values():
        lines += [f"## `{spec.name}`", "", f"`{{results_dir}}/{spec.path}`", "", spec.doc, "",
                  f"Dimensions: {', '.join(f'`{k}`' for k in spec.dimensions)}. "
                  f"Sort key: {', '.join(f'`{k}`' for k in spec.sort_key)}.", "",
                  "| column | type | description |", "| --- | --- | --- |"]
        lines += [f"| `{n}` | {t}{', nullable' if rest else ''} | {d} |"
                  for n, t, d, *rest in spec.fields]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
