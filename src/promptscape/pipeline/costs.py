"""Cost models of the workflow's jobs: the peak memory, the prompt-sequence evaluations
and the wall time of one job of a rule, from the config alone (no run needed).

Each rule's record (`promptscape.pipeline.rules`) names its estimator here, a function
``(study, rule, wildcards) -> Job`` (evaluations, peak memory, a note), and its time model,
``(study, job) -> seconds``; `promptscape.pipeline.plan` sums them over the job grid and
checks them against ``resources.max_mem_mb``.

An *evaluation* is the loss of one prompt on one distinct task sequence, l(s, x), computed
or (for a network's prompt-loss table) looked up; Bayes predictors of exchangeable sources
score count classes instead, C(T + V - 1, V - 1) per prompt (binary: T + 1), and those are
what is counted for them.

A memory estimate is the process's baseline (measured: a Snakemake script job importing
numpy, scipy, pandas and pyarrow; torch for networks) plus the arrays the stage's code
allocates, at their sizes and dtypes: an upper bound on what is live at once (sums, not
maxima), documented per stage below. docs/plan.md compares them with measured peaks.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from promptscape import landscape, prompts, search, theory
from promptscape.neural import families, tuners
from promptscape.predictors import MAX_SYMBOLS_PER_BATCH
from promptscape.report.catalog import STUDY_FIGURES, figures_of
from promptscape.study import layout

MB = 2**20
GIB = 2**30
F64 = 8
# Resident memory of a Snakemake script job before any work (Python, snakemake's script
# preamble, numpy, scipy, pandas, pyarrow, promptscape), and with torch and a model loaded.
# Measured (results/benchmarks max_rss of the smallest jobs of the default config).
BASELINE_BYTES = 150 * MB
TORCH_BASELINE_BYTES = 400 * MB
FIGURE_BASELINE_BYTES = 250 * MB  # altair, vl-convert
# Working set of one chunk of the predictors' generic paths (`Predictor.prompt_losses`,
# hidden-state Bayes): MAX_SYMBOLS_PER_BATCH symbols of log-probabilities and filter states.
def chunk_bytes(exp) -> int:
    return 3 * MAX_SYMBOLS_PER_BATCH * exp.vocab_size * F64



# Exchangeable Bayes `prompt_losses` on (P, B): counts, their sums and log-marginal
# temporaries, about this many (P, B) float64 arrays at once.
COUNT_TEMPORARIES = 6
# Bytes of one row of a table of strings: pyarrow (offsets and characters), the Python
# objects a stage builds for it (str and list slot), and pyarrow's sorted copy on write.
ROW_OVERHEAD = 120
# Networks: NeuralPredictor scores `max_tokens` (families.MAX_TOKENS) model inputs at a
# time; activations per token and layer, float32, as each family states them
# (`Family.activations_per_token`, calibrated on the default models, docs/plan.md).
# Measured beyond the arrays counted: torch's buffers in a GCG run (strategies with
# gradient), and the count-class typical-prompt distributions of prompt efficiency
# (max_length 24 at L_max 16: 252 MB against 231 MB counted).
GRADIENT_BYTES = 384 * MB
COUNT_EFFICIENCY_BYTES = 128 * MB


@dataclasses.dataclass(frozen=True)
class Job:
    """One job's estimate: its rule and wildcards (the workflow's names), evaluations, peak
    memory and time."""

    rule: str
    wildcards: dict
    evaluations: int  # prompt-sequence evaluations (count classes for exchangeable Bayes)
    peak_bytes: int
    note: str = ""  # how it is computed (method) or what it reads
    seconds: float = 0.0  # estimated wall time on one core (the rule's time model)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB

    def describe(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.wildcards.items())


def num_prompts(exp) -> int:
    """P = sum_l V^l, every prompt of length 0..L_max (binary: 2^(L_max + 1) - 1)."""
    return prompts.num_prompts(exp.max_prompt_length, exp.vocab_size)


def num_sequences(exp) -> int:
    """V^T, every task sequence."""
    return exp.vocab_size ** exp.task_length


def num_classes(exp, length: int) -> int:
    """Count classes of `length` symbols: C(length + V - 1, V - 1) (binary: length + 1)."""
    return math.comb(length + exp.vocab_size - 1, exp.vocab_size - 1)


def enumerates(study, exp, scored: int | None = None) -> bool:
    """Whether the stages enumerate all V^T task sequences of `exp` (exact losses, and a
    network's prompt-loss table) or fall back to the evaluation set / the distinct
    sequences of the datasets, for `scored` prompts (default: all P of the experiment).
    The stages ask the same function (`landscape.enumerates`, the one place the choice is
    made, on `landscape.enumeration_budget`)."""
    return landscape.enumerates(num_prompts(exp) if scored is None else scored,
                                exp.task_length, study.enumeration_budget, exp.vocab_size)


def exact_sequences(study, exp, task, scored: int | None = None) -> int | None:
    """X, the task sequences an exact sum enumerates for `scored` prompts (default: all P):
    V^T, or the task's support (`landscape.enumeration`, the stages' one rule); None where
    the evaluation set stands in."""
    how = landscape.enumeration(task.source, exp.task_length,
                                num_prompts(exp) if scored is None else scored,
                                study.enumeration_budget)
    if how == "all":
        return num_sequences(exp)
    if how == "support":
        return task.source.support_size(exp.task_length)
    return None


def num_prompt_classes(study, exp, predictor: str) -> int:
    """Rows the stages score for all P prompts (`Predictor.prompt_classes`): the count
    classes of lengths 0..L_max for an exchangeable Bayes predictor (sum_l C(l + V - 1,
    V - 1): 153 binary classes at L_max = 16), else P (an upper bound for transition
    classes)."""
    if counts_apply(study, exp, predictor):
        return sum(num_classes(exp, length) for length in range(exp.max_prompt_length + 1))
    return num_prompts(exp)


def counts_apply(study, exp, predictor: str) -> bool:
    """Bayes predictor of an exchangeable pretraining source: losses by count classes."""
    return study.family(predictor) == "bayes" and exp.pretraining.exchangeable


def landscape_method(study, exp, predictor: str, task) -> str:
    """The method `landscape.choose_method` picks for this job, from the config alone."""
    if counts_apply(study, exp, predictor) and task.source.exchangeable:
        return "exact_counts"
    return "exact_enumeration" if exact_sequences(study, exp, task) else "monte_carlo"


def _strings(rows: int, length: int) -> int:
    """A column of `rows` strings of `length` characters, through Python and pyarrow."""
    return rows * (ROW_OVERHEAD + 2 * length)


def _neural_working_set(study, exp, predictor: str) -> int:
    """Activations of one NeuralPredictor chunk (`max_tokens` inputs), float32: per token
    and layer, what the network's family states (`Family.activations_per_token`; an LSTM
    keeps its gates and states, ~3 H, a transformer its projections, MLP and attention row,
    ~8 C + heads x context). A family that states none is an error, never another
    family's formula."""
    net = study.network(predictor, exp.pretraining_name)
    per_token = families.family(net.family).activations_per_token
    if per_token is None:
        raise ValueError(f"predictor family {net.family!r} states no memory per token "
                         "(promptscape.neural.families.Family.activations_per_token): no "
                         "memory estimate for its jobs")
    return families.MAX_TOKENS * net.num_layers * per_token(net) * 4


def _predictor_cost(study, exp, predictor: str, P: int, B: int,
                    tabulated: bool = False) -> tuple[int, int]:
    """(evaluations, bytes) of `prompt_losses(P prompts, B sequences)` with its (P, B)
    float64 result, by the predictor's route (`tabulated`: lookups in a network's
    prompt-loss table, the result and its index)."""
    T = exp.task_length
    if tabulated:
        return P * B, 2 * P * B * F64
    if counts_apply(study, exp, predictor):
        # One (P, B) result plus the count temporaries; the losses depend on counts only.
        return P * min(B, num_classes(exp, T)), COUNT_TEMPORARIES * P * B * F64
    if study.is_neural(predictor):
        return P * B, P * B * F64 + _neural_working_set(study, exp, predictor)
    return P * B, P * B * F64 + chunk_bytes(exp)


def _baseline(study, predictor: str | None, tabulated: bool = False) -> int:
    neural = predictor is not None and study.is_neural(predictor) and not tabulated
    return TORCH_BASELINE_BYTES if neural else BASELINE_BYTES


def _table_bytes(exp) -> int:
    """A network's prompt-loss table read back (`stages.common.load_prompt_losses`):
    P x V^T rows of prompt and sequence strings, the prompts as Python strings, and the
    (P, V^T) float64 losses."""
    rows = num_prompts(exp) * num_sequences(exp)
    return _strings(rows, exp.max_prompt_length + exp.task_length) + rows * F64


# ------------------------------------------------------------------ time
# A job's wall time on one core of the 2-core development machine (no GPU): its start
# (Python, Snakemake's script preamble, imports), a fixed part of its work, and its
# evaluations (or training tokens) at a rate per rule and kind of predictor. Calibrated on
# the default runs of 2026-12-05 (before and after batching) from each job's logged work
# (`logs.TIMING`, benchmarks/job_sizes.py); docs/benchmarks.md sets the estimate beside the
# measured job time per rule. A rough model (within a factor of about 2 per rule there): a
# cost plan, not a scheduler's runtime limit. GPU jobs are estimated at CPU speed (no GPU
# was measured).
JOB_START_SECONDS = 0.2
JOB_WORK_SECONDS = {"plot_figures": 2.8, "plot_study_figures": 2.8, "aggregate_search": 0.3,
                    "aggregate_strategies": 1.0, "measure_efficiency": 0.4, "edit_effects": 1.0,
                    "probe_prior": 3.0}
# A figure job's work beyond starting Altair and vl-convert (its JOB_WORK_SECONDS): seconds
# per figure it draws (its tables read, the chart, SVG, PNG and HTML). Both from the tiny
# scenario's figure jobs, one per figure against one per experiment (CPU time, 2026-12-07).
FIGURE_SECONDS = 0.3
# Seconds per evaluation: (rule, "bayes" or the network family).
EVALUATION_SECONDS = {
    ("search_prompts", "bayes"): 2e-6, ("search_prompts", "neural"): 1e-6,
    ("search_selected", "bayes"): 5e-6, ("search_selected", "neural"): 2.5e-6,
    ("compute_landscape", "bayes"): 3e-6, ("compute_landscape", "neural"): 3e-6,
    ("measure_efficiency", "bayes"): 2e-7, ("measure_efficiency", "neural"): 1e-5,
    ("predict_reliability", "bayes"): 9e-5, ("predict_reliability", "neural"): 3e-5,
    ("score_prompts", "lstm"): 3e-6, ("score_prompts", "transformer"): 1.5e-5,
}
# Seconds per token of a training step (forward, backward, update; training.threads) and of
# a held-out evaluation, by family.
TRAINING_SECONDS_PER_TOKEN = {"lstm": 4.8e-6, "transformer": 2.1e-5}
HELDOUT_SECONDS_PER_TOKEN = {"lstm": 2e-6, "transformer": 1.5e-5}
# Seconds per strategy evaluation (seed x strategy x its largest budget): the strategies'
# Python loops.
STRATEGY_EVALUATION_SECONDS = 3e-5
# Word sources (V = 27: word_stream, language_mixture) have their own rates where those
# above, calibrated on the binary kinds, are off by more than a factor of 2: the exact word
# Bayes predictor scores prompt classes in one vectorised pass per batch (`class_losses`),
# its Monte Carlo prediction is a plain evaluation-set table, and a network's training step
# also draws a word batch and its exact Bayes reference. Measured as CPU seconds (each
# job's `logs.TIMING` line) on a reduced run of config/words.yaml (the six-language mixture
# of 1000-word lists, T = 10, Bayes at L_max 3 and the networks at L_max 2, two tasks and
# four seeds; 2026-12-07; docs/plan.md).
WORD_EVALUATION_SECONDS = {
    ("search_prompts", "bayes"): 1.4e-7,
    ("compute_landscape", "bayes"): 9e-7, ("predict_reliability", "bayes"): 1e-6,
    # A strategies job's L_N of every prompt up to L_max of its block (tabulated), as the
    # search computes it.
    ("search_strategies", "bayes"): 1.4e-7,
    # Networks through the trie, by family (the Transformer 5 times the LSTM).
    **{(rule, "lstm"): 1e-5 for rule in ("compute_landscape", "predict_reliability",
                                         "search_strategies", "search_prompts")},
    **{(rule, "transformer"): 5.4e-5 for rule in ("compute_landscape", "predict_reliability",
                                                  "search_strategies", "search_prompts")},
}
WORD_TRAINING_SECONDS_PER_TOKEN = {"lstm": 1.55e-5, "transformer": 3.6e-5}
# A held-out evaluation's token (the network's forward pass and the exact word Bayes
# predictive of every position as its reference).
WORD_HELDOUT_SECONDS_PER_TOKEN = {"lstm": 4e-5, "transformer": 5e-5}
# Building a word pretraining source in a job (wordfreq's lists of its languages, their
# prefix tables): 1.3 s CPU for six languages of 1000 words, in every job that scores
# prompts or trains on it.
WORD_SOURCE_SECONDS = 1.3
WORD_SOURCE_RULES = ("train_predictor", "evaluate_predictor", "search_prompts",
                     "search_selected", "search_strategies", "compute_landscape",
                     "predict_reliability", "measure_efficiency")
# Seconds per strategy evaluation computed on demand (beyond the landscape's L_max,
# `strategy_max_prompt_length`): a longer prompt's L_N on one D_N, in the strategies'
# batches (annealing's one at a time), under the word Bayes predictor.
ON_DEMAND_EVALUATION_SECONDS = 3e-4
# Seconds per token of a tuning step (forward, backward, update) and of scoring a tuned
# network (forward), by family: the training and held-out rates (the same passes;
# benchmarks/tuning_throughput.py measures tuning at 0.9-1.6 times the network's own
# throughput on the same tokens).
TUNING_SECONDS_PER_TOKEN = TRAINING_SECONDS_PER_TOKEN
SCORING_SECONDS_PER_TOKEN = HELDOUT_SECONDS_PER_TOKEN

# Per rule, a time model: (study, job) -> seconds on one core (start, fixed work and the
# job's own work), each named by the rule's record (`rules.Rule.seconds`).
def _start(rule: str) -> float:
    """Starting a job of `rule` and its fixed work (`JOB_WORK_SECONDS`, default 0.2 s)."""
    return JOB_START_SECONDS + JOB_WORK_SECONDS.get(rule, 0.2)


def _start_on(study, job: Job) -> float:
    """`_start`, and building a word pretraining source where the job's rule does
    (`WORD_SOURCE_RULES`)."""
    seconds = _start(job.rule)
    if job.rule in WORD_SOURCE_RULES and is_word_source(_pretraining(study, job.wildcards)):
        seconds += WORD_SOURCE_SECONDS
    return seconds


def _pretraining(study, w: dict):
    return (study.sources[w["source"]] if "source" in w
            else study.experiments[w["experiment"]].pretraining)


def is_word_source(source) -> bool:
    """Whether `source` is a word source (V = 27), whose rates are `WORD_EVALUATION_SECONDS`
    and `WORD_TRAINING_SECONDS_PER_TOKEN`."""
    return source.kind in ("word_stream", "language_mixture")


def _word_kind(study, predictor: str) -> str:
    """The key of a predictor in `WORD_EVALUATION_SECONDS`: bayes, or the network's family."""
    return study.family(predictor) if study.is_neural(predictor) else "bayes"


def training_seconds(study, job: Job) -> float:
    """train_predictor: its steps' tokens at the family's training rate."""
    w = job.wildcards
    net = study.network(w["predictor"], w["source"])
    family = study.family(w["predictor"])
    tokens = net.steps * net.batch_size * net.sequence_length
    rates = (WORD_TRAINING_SECONDS_PER_TOKEN if is_word_source(study.sources[w["source"]])
             else TRAINING_SECONDS_PER_TOKEN)
    return _start_on(study, job) + tokens * rates.get(family, 2.1e-5)


def heldout_seconds(study, job: Job) -> float:
    """evaluate_predictor: the held-out tokens at the family's forward rate."""
    w = job.wildcards
    net = study.network(w["predictor"], w["source"])
    family = study.family(w["predictor"])
    tokens = study.training["heldout_size"] * net.sequence_length
    rates = (WORD_HELDOUT_SECONDS_PER_TOKEN if is_word_source(study.sources[w["source"]])
             else HELDOUT_SECONDS_PER_TOKEN)
    return _start_on(study, job) + tokens * rates.get(family, 1.5e-5)


def post_training_seconds(study, job: Job) -> float:
    """post_train_predictor: each step a tuning step on `batch` post-training sequences and
    a forward pass on `batch` pretraining sequences (forgetting)."""
    w = job.wildcards
    net = study.network(w["predictor"], w["source"])
    family = study.family(w["predictor"])
    post = study.post_training(w["predictor"])
    tokens = post.steps * post.batch * net.sequence_length
    return (_start(job.rule) + tokens * (TUNING_SECONDS_PER_TOKEN.get(family, 2.1e-5)
                                         + SCORING_SECONDS_PER_TOKEN.get(family, 1.5e-5)))


def tuning_seconds(study, job: Job) -> float:
    """tune_network: the tokens trained and scored (`_tuning_tokens`)."""
    family = study.family(job.wildcards["predictor"])
    trained, scored = _tuning_tokens(study, job.wildcards)
    return (_start(job.rule) + trained * TUNING_SECONDS_PER_TOKEN.get(family, 2.1e-5)
            + scored * SCORING_SECONDS_PER_TOKEN.get(family, 1.5e-5))


def optimum_seconds(study, job: Job) -> float:
    """tune_optimum: the tokens trained and scored (`_optimum_tokens`)."""
    family = study.family(job.wildcards["predictor"])
    trained, scored = _optimum_tokens(study, job.wildcards)
    return (_start(job.rule) + trained * TUNING_SECONDS_PER_TOKEN.get(family, 2.1e-5)
            + scored * SCORING_SECONDS_PER_TOKEN.get(family, 1.5e-5))


def strategy_seconds(study, job: Job) -> float:
    """search_strategies: every seed's runs at their largest budgets, in Python loops (at
    the on-demand rate where they search beyond the landscape), and on word sources the
    table of L_N up to L_max, which the binary rates leave out."""
    w = job.wildcards
    exp = study.experiments[w["experiment"]]
    P = num_prompts(exp)
    runs = sum(max(exp.search_strategies.budgets_of(name, P), default=0)
               for name in exp.strategies)
    S = int(w["last"]) - int(w["first"]) + 1
    per_evaluation = (ON_DEMAND_EVALUATION_SECONDS
                      if exp.search_strategies.on_demand(exp.max_prompt_length)
                      else STRATEGY_EVALUATION_SECONDS)
    seconds = _start_on(study, job) + S * runs * per_evaluation
    if is_word_source(exp.pretraining):
        seconds += job.evaluations * WORD_EVALUATION_SECONDS[
            (job.rule, _word_kind(study, w["predictor"]))]
    return seconds


def _tabulated(study, exp, rule: str, predictor: str | None) -> bool:
    """Searches and landscapes of a network read its prompt-loss table when T is
    enumerated (no torch); every other network job loads the checkpoint."""
    return (rule in ("search_prompts", "search_selected", "compute_landscape",
                     "predict_reliability")
            and predictor is not None
            and study.is_neural(predictor) and enumerates(study, exp))


def simulation_cost(study, rule: str, w: dict) -> Job:
    """Every (task, N) of the block, held as columns before the one write."""
    exp = study.experiments[w["experiment"]]
    S = int(w["last"]) - int(w["first"]) + 1
    size = ([exp.dataset_selection.pool_size] * len(exp.dataset_sizes)
            if rule == "simulate_pool" else exp.dataset_sizes)
    rows = S * len(exp.tasks) * sum(size)
    return Job(rule, w, 0, BASELINE_BYTES + 2 * _strings(rows, exp.task_length))


def evaluation_set_cost(study, rule: str, w: dict) -> Job:
    exp = study.experiments[w["experiment"]]
    return Job(rule, w, 0, BASELINE_BYTES + _strings(exp.evaluation_size, exp.task_length))


def scoring_cost(study, rule: str, w: dict) -> Job:
    """(P, V^T) losses, then the table: P x V^T rows of prompt and sequence strings."""
    exp, predictor = study.experiments[w["experiment"]], w["predictor"]
    P, B = num_prompts(exp), num_sequences(exp)
    evals, work = _predictor_cost(study, exp, predictor, P, B)
    return Job(rule, w, evals,
               _baseline(study, predictor) + work
               + _strings(P * B, exp.max_prompt_length + exp.task_length),
               "all V^T sequences")


def search_cost(study, rule: str, w: dict) -> Job:
    """One (predictor, replicate, task, N) after another: the largest one's working set,
    beside the block's data read whole and the kept rows of all of them."""
    exp = study.experiments[w["experiment"]]
    T, L = exp.task_length, exp.max_prompt_length
    S = int(w["last"]) - int(w["first"]) + 1
    N = (exp.dataset_selection.pool_size if rule == "search_selected"
         else max(exp.dataset_sizes))
    units = list(study.predictor_replicates(exp))
    cells = [_search_cell(study, exp, rule, p, N, S) for p in dict(units)]
    evals = sum(e for e, _, _ in cells) * len(exp.tasks) * len(exp.dataset_sizes)
    work = max(b for _, b, _ in cells)
    data = _strings(S * len(exp.tasks) * (N * len(exp.dataset_sizes)
                                          if rule == "search_selected"
                                          else sum(exp.dataset_sizes)), T)
    kept = _strings(len(units) * len(exp.tasks) * len(exp.dataset_sizes) * S
                    * search.KEPT_CLASSES, L)
    base = max(_baseline(study, p, cells[i][2]) for i, p in enumerate(dict(units)))
    return Job(rule, w, evals, base + work + 2 * data + 2 * kept,
               f"{len(units)} predictors x {len(exp.tasks)} tasks x "
               f"{len(exp.dataset_sizes)} N")


def strategies_cost(study, rule: str, w: dict) -> Job:
    """The search's own computation of L_N for every prompt of the block (as
    search_prompts, its table and gathered losses), the landscape read back, and per run
    the evaluator's (P,) flags and trail; a network's checkpoint and one gradient chunk
    where gradient runs."""
    exp, predictor = study.experiments[w["experiment"]], w["predictor"]
    P, T, L = num_prompts(exp), exp.task_length, exp.max_prompt_length
    C = num_prompt_classes(study, exp, predictor)
    tabulated = _tabulated(study, exp, rule, predictor)
    base = _baseline(study, predictor, tabulated)
    S, N = int(w["last"]) - int(w["first"]) + 1, int(w["N"])
    B = num_sequences(exp) if enumerates(study, exp) else min(S * N, num_sequences(exp))
    evals, work = _predictor_cost(study, exp, predictor, C, B, tabulated)
    work += (min(C * S * N * F64, max(search.GATHER_BYTES, C * N * F64))
             + 3 * S * P * F64 + _strings(S * N, T) + 6 * _strings(P, L) + 4 * P * F64)
    if tabulated:
        work += _table_bytes(exp)
    # The strategy_steps rows (two prompts and an operation each, as Python objects and
    # pyarrow columns).
    work += 3 * _strings(S * _steps_per_seed(exp), L)
    if exp.search_strategies.needs_gradient and study.is_neural(predictor):
        # The checkpoint beside the table in one process, GCG's gradient chunks with
        # their autograd graph, and torch's own buffers (measured at L_max 12: up to
        # 1.27 GB for the LSTM, against 1.12 GB estimated without them).
        base = TORCH_BASELINE_BYTES + BASELINE_BYTES
        work += 3 * _neural_working_set(study, exp, predictor) + GRADIENT_BYTES
    return Job(rule, w, evals, base + work, "L_N of every prompt, then lookups")


def landscape_cost(study, rule: str, w: dict) -> Job:
    """The prompt classes' losses on the distinct evaluation sequences (all V^T where
    enumerated: then also the exact method's table), the evaluation-set estimates a block
    of at most landscape.EVALUATION_BYTES of gathered losses at a time (with three
    temporaries), a monte_carlo landscape's whole (C, M) paired losses and the
    classification's temporaries, and the P rows written (prompt strings and lists)."""
    exp, predictor = study.experiments[w["experiment"]], w["predictor"]
    P, T, M = num_prompts(exp), exp.task_length, exp.evaluation_size
    L = exp.max_prompt_length
    C = num_prompt_classes(study, exp, predictor)
    tabulated = _tabulated(study, exp, rule, predictor)
    method = landscape_method(study, exp, predictor, exp.task(w["task"]))
    B = num_sequences(exp) if enumerates(study, exp) else min(M, num_sequences(exp))
    evals, work = _predictor_cost(study, exp, predictor, C, B, tabulated)
    work += (4 * min(C * M * F64, max(landscape.EVALUATION_BYTES, M * F64))
             + _strings(M, T) + 4 * _strings(P, L + 2 * exp.vocab_size))
    if tabulated:
        work += _table_bytes(exp)
    if method == "monte_carlo":
        # The paired losses and classification; the kl_residuals, expanded to P rows and
        # as the written list column.
        work += 4 * C * M * F64 + 3 * residual_values(exp) * F64
    elif method == "exact_counts":
        evals += C * num_classes(exp, T)
    elif not enumerates(study, exp):  # the task's support, scored besides the evaluation set
        X = exact_sequences(study, exp, exp.task(w["task"]))
        e, b = _predictor_cost(study, exp, predictor, C, X, tabulated)
        evals, work = evals + e, work + b + 3 * C * X * F64
    return Job(rule, w, evals, _baseline(study, predictor, tabulated) + work, method)


def efficiency_cost(study, rule: str, w: dict) -> Job:
    """One (predictor, replicate, task) after another; its rows, and every landscape of
    the experiment read back for the token efficiency."""
    exp = study.experiments[w["experiment"]]
    P, L = num_prompts(exp), exp.max_prompt_length
    cells = {p: _efficiency_cell(study, exp, p) for p, _ in study.predictor_replicates(exp)}
    units = len(study.predictor_replicates(exp)) * len(exp.tasks)
    evals = sum(cells[p][0] for p, _ in study.predictor_replicates(exp)) * len(exp.tasks)
    base = max(_baseline(study, p) for p in cells)
    lands = 4 * units * _strings(P, L + 2 * exp.vocab_size)
    return Job(rule, w, evals, base + max(b for _, b, _ in cells.values()) + lands,
               ", ".join(sorted({n for _, _, n in cells.values()})))


def aggregate_search_cost(study, rule: str, w: dict) -> Job:
    """Every search row of the experiment (the kept classes of each seed), as pandas
    (object columns), concatenated, and every landscape (P rows each)."""
    exp = study.experiments[w["experiment"]]
    P, L = num_prompts(exp), exp.max_prompt_length
    units = sum(study.replicates(p) for p in exp.predictors)
    rows = (units * len(exp.tasks) * len(exp.selections) * len(exp.dataset_sizes)
            * exp.num_seeds * min(P, search.KEPT_CLASSES))
    lands = units * len(exp.tasks) * P
    return Job(rule, w, 0, BASELINE_BYTES + 2 * _strings(rows, L) + 4 * _strings(lands, L))


def aggregate_strategies_cost(study, rule: str, w: dict) -> Job:
    exp = study.experiments[w["experiment"]]
    P = num_prompts(exp)
    runs = sum(len(exp.search_strategies.budgets_of(name, P)) for name in exp.strategies)
    rows = len(exp.predictors) * len(exp.tasks) * len(exp.dataset_sizes) * exp.num_seeds * runs
    return Job(rule, w, 0, BASELINE_BYTES + 2 * _strings(rows, exp.max_prompt_length))


def _steps_per_seed(exp) -> int:
    """strategy_steps rows of one seed: the largest budget (at most P) of each strategy that
    proposes from a parent."""
    from promptscape.strategies import STRATEGIES

    P = num_prompts(exp)
    return sum(min(P, max(exp.search_strategies.budgets_of(name, P), default=0))
               for name in exp.strategies if STRATEGIES[name].proposes)


def edit_effects_cost(study, rule: str, w: dict) -> Job:
    """Every edge of the landscape (two int64 indices, their sort keys and order, the
    small columns, ΔKL and a mask per kind: about 60 bytes each, at most V (L + 1) + L (V
    - 1) + 2 L edges a prompt), the landscape read back, one steps file as pandas (its
    prompt strings) and the visited edges of the experiment kept as numbers."""
    exp = study.experiments[w["experiment"]]
    P, L, V = num_prompts(exp), exp.max_prompt_length, exp.vocab_size
    edges = P * (V * (L + 1) + L * (V - 1) + 2 * L)
    per_file = exp.seeds_per_job * _steps_per_seed(exp)
    files = len(exp.predictors) * len(exp.tasks) * len(exp.dataset_sizes)
    files *= len(exp.seed_blocks())
    visited = files * per_file * (4 * F64 + V * F64)
    return Job(rule, w, 0, BASELINE_BYTES + 60 * edges + 4 * _strings(P, L)
               + 4 * _strings(per_file, L) + 2 * visited)


def _figures_drawn(study, w: dict) -> list[str]:
    """The figures a figure job draws: its experiment's, or the study's."""
    if "experiment" in w:
        return figures_of(study, study.experiments[w["experiment"]])
    return list(STUDY_FIGURES)


def prior_cost(study, rule: str, w: dict) -> Job:
    """A predictor queried after a few hundred contexts and small least-squares fits: its
    baseline (torch for a network) dominates."""
    return Job(rule, w, 0, _baseline(study, w["predictor"]), "count-class contexts")


def figure_cost(study, rule: str, w: dict) -> Job:
    """One figure at a time, each from its own tables: the baseline of Altair and
    vl-convert."""
    drawn = len(_figures_drawn(study, w))
    whose = "" if "experiment" in w else "the study's "
    return Job(rule, w, 0, FIGURE_BASELINE_BYTES, f"{whose}{drawn} figure{'s' * (drawn != 1)}")


def _search_cell(study, exp, rule: str, predictor: str, N: int, S: int):
    """(evaluations, bytes, tabulated) of one (predictor, task, N) of a search job: the losses
    of every prompt class on every distinct sequence (all V^T when enumerated, or a
    network's prompt-loss table), the gathered (C, S, N) float64 per-dataset losses (at most
    search.GATHER_BYTES at once; whole for a pooled selection), the (S, P) expanded losses
    and their ranking, and the S x N sequences."""
    P, T, L = num_prompts(exp), exp.task_length, exp.max_prompt_length
    C = num_prompt_classes(study, exp, predictor)
    tabulated = study.is_neural(predictor) and enumerates(study, exp)
    B = num_sequences(exp) if enumerates(study, exp) else min(S * N, num_sequences(exp))
    evals, work = _predictor_cost(study, exp, predictor, C, B, tabulated)
    if tabulated:
        work += _table_bytes(exp)
    gathered = C * S * N * F64
    if rule == "search_prompts":
        gathered = min(gathered, max(search.GATHER_BYTES, C * N * F64))
    work += gathered + 3 * S * P * F64 + _strings(S * N, T) + _strings(P, L)
    return evals, work, tabulated


def network_cost(study, rule: str, w: dict) -> Job:
    net = study.network(w["predictor"], w["source"])
    # An experiment that uses the network (as a predictor, or as the base of one).
    exp = next(e for e in study.experiments.values()
               if e.pretraining_name == w["source"]
               and any(w["predictor"] in study.lineage(p) for p in e.predictors))
    work = _neural_working_set(study, exp, w["predictor"])
    if rule == "post_train_predictor":
        # As training, on `batch` sequences, plus a forward pass on as many pretraining ones.
        post = study.post_training(w["predictor"])
        tokens = post.batch * net.sequence_length
        work = 4 * work * tokens // families.MAX_TOKENS + 32 * MB
        return Job(rule, w, 0, TORCH_BASELINE_BYTES + work,
                   f"{post.steps} steps of {post.batch} sequences ({post.tuner})")
    if rule == "train_predictor":
        # Batches of batch_size x sequence_length tokens with autograd (x3), plus the
        # optimizer, the autograd graph and the Bayes losses of each batch (~32 MB measured).
        tokens = net.batch_size * net.sequence_length
        work = 3 * work * tokens // families.MAX_TOKENS + 32 * MB
        return Job(rule, w, 0, TORCH_BASELINE_BYTES + work,
                   f"{net.steps} steps of {net.batch_size} sequences")
    size = study.training["heldout_size"]
    # Two chunks' activations live (a Transformer with a context of 22 measured 1.23 GB
    # against 1.02 GB estimated with one), and the neural and Bayes (B, T, V) float64
    # log-probabilities of the held-out sequences.
    work = 2 * work + (2 * size * net.sequence_length * exp.vocab_size * F64
                       + _strings(size, net.sequence_length))
    return Job(rule, w, 0, TORCH_BASELINE_BYTES + work, f"{size} held-out sequences")


def prediction_cost(study, rule: str, w: dict) -> Job:
    """The loss table of the landscape's method (count values, all V^T sequences, or the
    evaluation set) over the prompt classes with its collapsed copies (`theory.collapse`
    and `collapse_outcomes` sort copies of the rows and of the transposed columns, for the
    prediction and again for the decomposition: five (C, X) float64 arrays besides the
    table; measured 5.3 for switching's 131,071 distinct rows at L = 16), the landscape
    read back, and the Monte Carlo and exact blocks (promptscape.theory: at most about 2^22
    float64 frequencies a block, four such arrays live)."""
    exp = study.experiments[w["experiment"]]
    tabulated = _tabulated(study, exp, rule, w["predictor"])
    base = _baseline(study, w["predictor"], tabulated)
    task = exp.task(w["task"])
    method = landscape_method(study, exp, w["predictor"], task)
    P = num_prompts(exp)
    C = num_prompt_classes(study, exp, w["predictor"])
    X = {"exact_counts": num_classes(exp, exp.task_length),
         "exact_enumeration": exact_sequences(study, exp, task)}.get(method,
                                                                     exp.evaluation_size)
    evals, work = _predictor_cost(study, exp, w["predictor"], C, X, tabulated)
    if tabulated:
        work += _table_bytes(exp)
    work += 5 * C * X * F64 + _strings(P, exp.max_prompt_length) * 4
    work += 4 * theory.BLOCK_VALUES * F64
    return Job(rule, w, evals, base + work, method)


# The most task sequences whose probabilities the plan sums for an expected count of
# distinct sequences (beyond, it bounds the count by min(N, V^T)).
DISTINCT_EXACT_MAX = 1 << 16


def expected_distinct(task, T: int, N: int) -> float:
    """E[distinct sequences among N draws of T symbols from `task`] = sum_x 1 - (1 - p(x))^N
    over the V^T sequences where they are few enough to sum, else min(N, V^T): what one
    tuning step over D_N evaluates."""
    V = task.vocab_size
    if V**T > DISTINCT_EXACT_MAX:
        return float(min(N, V**T))
    p = np.exp(task.log_prob(prompts.enumerate_sequences(T, V)))
    return float((-np.expm1(N * np.log1p(-np.minimum(p, 1 - 1e-16)))).sum())


def _tuning_tokens(study, w: dict) -> tuple[int, int]:
    """(tokens trained, tokens scored) of a tune_network job: each weight tuner's steps over
    each seed's distinct sequences (`expected_distinct`); a prompt-space tuner's steps over
    the inner nodes of the prefix trie of all the job's seeds' sequences, for every seed, and
    its K prompt positions (`tuning.TrieObjective`); a score of every seed at each recorded
    budget on all V^T sequences (or the evaluation set), and the searched prompts."""
    exp = study.experiments[w["experiment"]]
    plan, T = exp.tuning, exp.task_length
    S = int(w["last"]) - int(w["first"]) + 1
    U = expected_distinct(exp.task(w["task"]).source, T, int(w["N"]))
    B = num_sequences(exp) if enumerates(study, exp) else exp.evaluation_size
    nodes = sum(min(exp.vocab_size ** t, S * U) for t in range(1, T))  # the union trie's
    trained = scored = 0
    for name, _ in plan.tuners:
        space = tuners.TUNERS[name].space
        if space == tuners.REFERENCE:
            scored += S * B * T
            continue
        width = T + (plan.prompt_length if space == tuners.PROMPT else 0)
        step = S * (nodes + plan.prompt_length + 1) if space == tuners.PROMPT else S * U * width
        trained += plan.steps * step
        scored += len(plan.tuning_steps) * S * B * width
        if plan.selection is not None:
            # Each rate on the rest of D_N, then at most `steps` more on all of it.
            trained += (len(plan.selection["learning_rates"]) + 1) * plan.steps * step
            scored += len(plan.tuning_steps) * S * B * width
    return round(trained), scored + 2 * S * B * (T + exp.max_prompt_length)


def tuning_cost(study, rule: str, w: dict) -> Job:
    """The network, a step's activations with autograd (x3) for the seeds trained side by
    side (prompt-space tuners: as many as fit tuners.BATCH_TOKENS), a score's activations for
    every seed of the job, and the full tuner's parameters, gradients and Adam moments."""
    exp, predictor = study.experiments[w["experiment"]], w["predictor"]
    net = study.network(predictor, exp.pretraining_name)
    per_token = families.family(net.family).activations_per_token
    token_bytes = net.num_layers * per_token(net) * 4
    T, K = exp.task_length, exp.tuning.prompt_length
    S = int(w["last"]) - int(w["first"]) + 1
    U = min(int(w["N"]), num_sequences(exp))
    B = num_sequences(exp) if enumerates(study, exp) else exp.evaluation_size
    group = tuners.seeds_side_by_side(S, U, T + K)
    train = 3 * group * U * (T + K) * token_bytes
    score = S * min(B * (T + K), families.MAX_TOKENS) * token_bytes + S * B * F64
    trained, scored = _tuning_tokens(study, w)
    return Job(rule, w, trained + scored,
               TORCH_BASELINE_BYTES + max(train, score) + 4 * 64 * MB,
               f"{len(exp.tuning.tuners)} tuners x {exp.tuning.steps} steps")


def _optimum_sequences(study, exp) -> int:
    """Task sequences of one step of a tuner's optimum: all V^T where the landscape
    enumerates them, else tuning.optimum.batch_size fresh ones."""
    if enumerates(study, exp):
        return num_sequences(exp)
    return exp.tuning.optimum["batch_size"]


def _optimum_tokens(study, w: dict) -> tuple[int, int]:
    """(tokens trained, tokens scored) of a tune_optimum job, at most: each trained tuner's
    max_steps over the objective's sequences at each learning rate and start, plus the K
    prompt positions of prompt-space tuners (on the exact objective: a state per node of
    the sequences' prefix trie and the prompt, `optimum.Exact.losses`); a score of each
    tuner's optimum and its gradient."""
    exp = study.experiments[w["experiment"]]
    plan, T = exp.tuning, exp.task_length
    settings = plan.optimum
    U = _optimum_sequences(study, exp)
    B = num_sequences(exp) if enumerates(study, exp) else exp.evaluation_size
    walk = enumerates(study, exp)
    nodes = sum(min(exp.vocab_size ** t, U) for t in range(1, T))  # the trie's inner nodes
    trained = scored = 0
    lengths = sorted(set(settings["prompt_lengths"]) | {plan.prompt_length})
    for name, _ in plan.tuners:
        space = tuners.TUNERS[name].space
        for K in (lengths if space == tuners.PROMPT else [0]):
            width = T + K
            scored += 2 * B * width
            if space == tuners.REFERENCE:
                continue
            # Starts: the hard optimum and the best of length K, and the random ones.
            starts = 2 + settings["restarts"] if space == tuners.PROMPT else 1
            step = nodes + K + 1 if walk and space == tuners.PROMPT else U * width
            trained += len(settings["learning_rates"]) * starts * settings["max_steps"] * step
    return trained, scored


def optimum_cost(study, rule: str, w: dict) -> Job:
    """The network, one step's activations with autograd (x3) over the objective's
    sequences for each of a prompt-space tuner's rates and starts (trained side by side), a
    score's activations, and the full tuner's parameters and Adam moments."""
    exp, predictor = study.experiments[w["experiment"]], w["predictor"]
    net = study.network(predictor, exp.pretraining_name)
    per_token = families.family(net.family).activations_per_token
    token_bytes = net.num_layers * per_token(net) * 4
    T = exp.task_length
    K = max([exp.tuning.prompt_length, *exp.tuning.optimum["prompt_lengths"]])
    U = _optimum_sequences(study, exp)
    B = num_sequences(exp) if enumerates(study, exp) else exp.evaluation_size
    settings = exp.tuning.optimum
    copies = len(settings["learning_rates"]) * (2 + settings["restarts"])
    train = 3 * copies * min(U * (T + K), 1 << 17) * token_bytes
    score = min(B * (T + K), families.MAX_TOKENS) * token_bytes + B * F64
    trained, scored = _optimum_tokens(study, w)
    return Job(rule, w, trained + scored,
               TORCH_BASELINE_BYTES + max(train, score) + 4 * 64 * MB,
               f"{len(exp.tuning.tuners)} tuners x {len(settings['learning_rates'])} rates x "
               f"<= {settings['max_steps']} steps")


def aggregate_tuning_cost(study, rule: str, w: dict) -> Job:
    exp = study.experiments[w["experiment"]]
    plan = exp.tuning
    units = sum(study.replicates(p) for p in plan.networks)
    rows = (units * len(plan.tasks) * len(plan.dataset_sizes) * plan.num_seeds
            * (1 + len(plan.tuners) * len(plan.tuning_steps)))
    lands = units * len(plan.tasks) * num_prompts(exp)
    return Job(rule, w, 0, BASELINE_BYTES + 4 * _strings(rows, exp.max_prompt_length)
               + 4 * _strings(lands, exp.max_prompt_length))


# The edit analysis (`promptscape.edits`): bytes held per single edit (the edge list, 21 bytes, twice
# while it is built; ΔKL, the kind masks and the local structure's temporaries), and
# seconds per edit and landscape (kind summaries and local structure; benchmarks/
# edits_speed.py: 0.55 s for the 4,980,740 edits of binary L_max 16).
EDGE_BYTES = 80
EDGE_SECONDS = 1.2e-7
# An estimated landscape's paired errors: seconds per edit and evaluation sequence
# (`landscape.TieRule.difference_se`, twice: local structure and kind summaries; measured
# 3.1e-8 for the 42,228 edits of 757 word prompts on 300 sequences, 2 shared cores).
RESIDUAL_EDGE_SECONDS = 3e-8


def residual_values(exp) -> int:
    """Floats of a monte_carlo landscape's ``kl_residuals`` (P x M; none beyond
    `landscape.RESIDUAL_BUDGET`, whose readers then decide by the bound)."""
    values = num_prompts(exp) * exp.evaluation_size
    return values if values <= landscape.RESIDUAL_BUDGET else 0


def estimated_landscapes(study, exp) -> int:
    """The experiment's landscapes (per predictor, replicate and task) that are
    ``monte_carlo``."""
    return sum(landscape_method(study, exp, p, task) == "monte_carlo"
               for p, _ in study.predictor_replicates(exp) for task in exp.tasks)


def num_edges(exp) -> int:
    """An upper bound on the single edits of every prompt (`edits.edit_edges`): per prompt
    of length l, (l + 1) V insertions below L_max, l deletions, l (V - 1) substitutions and
    l - 1 swaps (fewer after deduplication)."""
    V, L = exp.vocab_size, exp.max_prompt_length
    return sum(V**length * ((length + 1) * V * (length < L) + length * V + max(length - 1, 0))
               for length in range(L + 1))


def edits_cost(study, rule: str, w: dict) -> Job:
    """The edge list and its temporaries, and every landscape of the experiment and of the
    experiments it shares a task with, read at once (prompt strings and KL columns; an
    estimated landscape's kl_residuals as pandas arrays and stacked, and a block of their
    differences; another experiment's landscapes counted as estimated where this one's
    networks are)."""
    exp = study.experiments[w["experiment"]]
    P, L = num_prompts(exp), exp.max_prompt_length
    foreign = len(layout.transfer_sources(study, exp))
    lands = len(layout.per_task(study, exp, "landscape")) + foreign
    estimated = estimated_landscapes(study, exp) + (0 if enumerates(study, exp) else foreign)
    residuals = estimated * 2 * residual_values(exp) * F64
    if estimated and residual_values(exp):
        residuals += min(num_edges(exp) * exp.evaluation_size * F64,
                         landscape.DIFFERENCE_BYTES)
    return Job(rule, w, 0, BASELINE_BYTES + num_edges(exp) * EDGE_BYTES
               + lands * (_strings(P, L) + 4 * P * F64) + residuals,
               f"{num_edges(exp)} edits at most")


# The cost model of each rule: (study, rule, wildcards) -> Job.

def _efficiency_cell(study, exp, predictor: str) -> tuple[int, int, str]:
    """Typical prompts: K per length 0..max_length (those that fit a network's context),
    each scored on all V^T sequences (enumerated) or the M evaluation sequences; an
    exchangeable Bayes predictor scores count classes (C(l + V - 1, V - 1) per length)
    instead. (evaluations, bytes, note) of one (predictor, task)."""
    T, M = exp.task_length, exp.evaluation_size
    K, max_length = study.efficiency["num_typical"], study.efficiency["max_length"]
    lengths = range(max_length + 1)
    if study.is_neural(predictor):
        context = study.network(predictor, exp.pretraining_name).sequence_length
        lengths = [length for length in lengths if length + T <= context]
    scored = K * len(lengths)  # the efficiency stage decides on the prompts it scores
    # Each task's exact sequences (V^T, or its support), else the evaluation set: the most.
    exact = [exact_sequences(study, exp, task, scored) for task in exp.tasks]
    B = max([M if x is None else x for x in exact], default=M)
    # The evaluation sequences, and the landscape read back (prompt strings and list
    # columns, as compute_landscape writes them).
    work = _strings(M, T) + 4 * _strings(num_prompts(exp),
                                         exp.max_prompt_length + 2 * exp.vocab_size)
    evals = 0
    if counts_apply(study, exp, predictor):
        evals = sum(num_classes(exp, length) * num_classes(exp, T)
                    for length in range(max(lengths, default=0) + 1))
        return evals, work + COUNT_EFFICIENCY_BYTES, "count classes"
    peak = 0
    for length in lengths:
        k = min(K, exp.vocab_size**length)
        e, b = _predictor_cost(study, exp, predictor, k, B)
        evals, peak = evals + e, max(peak, b)
    note = ("all V^T sequences" if enumerates(study, exp, scored) else "evaluation set"
            if all(x is None for x in exact) else "the tasks' supports or evaluation set")
    return evals, work + peak, note



def figure_seconds(study, job: Job) -> float:
    """plot_figures, plot_study_figures: starting Altair and vl-convert, and each figure."""
    return _start(job.rule) + len(_figures_drawn(study, job.wildcards)) * FIGURE_SECONDS


def edits_seconds(study, job: Job) -> float:
    """analyse_edits: every edit per landscape, and the paired errors of the estimated
    ones."""
    exp = study.experiments[job.wildcards["experiment"]]
    units = sum(study.replicates(p) for p in exp.predictors) * len(exp.tasks)
    paired = estimated_landscapes(study, exp) * (residual_values(exp) > 0)
    return _start(job.rule) + num_edges(exp) * (
        units * EDGE_SECONDS
        + 2 * paired * exp.evaluation_size * RESIDUAL_EDGE_SECONDS)


def evaluation_seconds(study, job: Job) -> float:
    """The default: start and fixed work, and the job's evaluations at the rate of its rule
    and kind of predictor (`EVALUATION_SECONDS`; none where the job has no predictor, as
    simulations and aggregates); a search or efficiency job of every predictor of the
    experiment at each one's own rate."""
    rule, w = job.rule, job.wildcards
    seconds = _start_on(study, job) if ("source" in w or "experiment" in w) else _start(rule)
    predictor = w.get("predictor")
    if predictor is None and rule in ("search_prompts", "search_selected",
                                      "measure_efficiency"):
        # A job of every predictor of the experiment: each at its own kind's rate.
        exp = study.experiments[w["experiment"]]
        for p, _ in study.predictor_replicates(exp):
            kind = "neural" if study.is_neural(p) else "bayes"
            if rule == "measure_efficiency":
                evals = _efficiency_cell(study, exp, p)[0] * len(exp.tasks)
            else:
                S = int(w["last"]) - int(w["first"]) + 1
                N = (exp.dataset_selection.pool_size if rule == "search_selected"
                     else max(exp.dataset_sizes))
                evals = (_search_cell(study, exp, rule, p, N, S)[0] * len(exp.tasks)
                         * len(exp.dataset_sizes))
            word = (rule, _word_kind(study, p))
            if is_word_source(exp.pretraining) and word in WORD_EVALUATION_SECONDS:
                seconds += evals * WORD_EVALUATION_SECONDS[word]
            else:
                seconds += evals * EVALUATION_SECONDS[(rule, kind)]
        return seconds
    if predictor is None:
        return seconds  # simulations, aggregates: no evaluations
    if rule == "score_prompts":
        kind = study.family(predictor)
    else:
        kind = "neural" if study.is_neural(predictor) else "bayes"
    exp = study.experiments.get(w.get("experiment"))
    word = (rule, _word_kind(study, predictor))
    if exp is not None and is_word_source(exp.pretraining) and word in WORD_EVALUATION_SECONDS:
        return seconds + job.evaluations * WORD_EVALUATION_SECONDS[word]
    return seconds + job.evaluations * EVALUATION_SECONDS.get((rule, kind), 0.0)
