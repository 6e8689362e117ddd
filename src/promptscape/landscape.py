"""Theoretical losses of every prompt, KL to the task, dense ranks and the optimal class.

Three ways to compute ``L(s) = E_{x ~ task} l(s, x)``, the first that applies is used and
named in the ``method`` column:

``exact_counts``
    Bayes predictor of an exchangeable source and an exchangeable task (i.i.d. coins and
    categoricals, their mixtures, Dirichlet and topic mixtures): l(s, x) depends on x only
    through its symbol counts c (a composition of T into V parts; binary: the count of ones
    k), and the task gives P(c) = multinomial(T; c) m_task(c), so L(s) is a sum over the
    C(T + V - 1, V - 1) compositions (T + 1 when binary).
``exact_enumeration``
    Any predictor, any task, when the enumeration fits the budget (`enumeration`: P prompts
    times X task sequences at most ``landscape.enumeration_budget``): L(s) = sum over the X
    sequences x of P_task(x) l(s, x). X is all V**T sequences (`enumerates`), or else, where
    the task enumerates its support over T symbols (`Source.support_size`: a word source
    without out-of-vocabulary words and a small list), the support's sequences, at most
    `SUPPORT_MAX_SEQUENCES` of them; the sequences outside it have P_task(x) = 0 and add
    nothing. Every source here has an exact log-probability, so this is exact too (for a
    neural predictor: up to float32 arithmetic).
``monte_carlo``
    Otherwise: the stratified estimate over the shared evaluation set (M task sequences, the
    same for all prompts, so differences between prompts are paired), with its standard error.

`enumeration` is the one place where the exact sum over task sequences is chosen
(landscapes, their predicted reliability, prompt efficiency and tuning scores ask it);
`enumerates`, its all-V**T case, is also where searches and networks' prompt-loss tables
decide to score every sequence in code order (a table the support does not give).

The evaluation set (`evaluation_strata`, `draw_evaluation`) is stratified wherever the task's
distribution of a statistic is known exactly: for an exchangeable task, by its symbol counts
c (stratum k is the k-th composition of `sources.compositions(T, V)`; binary: k ones), with
P(c) = multinomial(T; c) m_task(c). Every stratum is drawn on its own (at least
`MIN_PER_STRATUM` sequences, the rest allocated in proportion to sqrt(P(c)) so that rare
counts, which carry most of the KL at long T, are well sampled), and within a stratum the
sequence is uniform among those with counts c, which is the task's own conditional law. Each
sequence carries its stratum and its weight P(c) / n_c. The estimate of E f(x) is
``sum_i w_i f(x_i)`` and its variance ``sum_k P(k)^2 s_k^2 / n_k`` (s_k^2 the within-stratum
sample variance). For an exchangeable Bayes predictor f is constant within a stratum, so the
estimate is exact and its standard error 0. Other tasks: one stratum, weights 1/M (the plain
mean and its standard error).

KL(s) = L(s) - H_T(task). Under monte_carlo, KL is estimated per sequence as
l(s, x) + log P_task(x), an unbiased paired estimate; its standard error is usually smaller
than that of L(s) for good prompts (the task's own entropy noise cancels), not always.

The evaluation-set estimate of KL and its standard error is kept beside the exact value in
every landscape (``mc_kl``, ``mc_kl_se``) as a built-in check that the exact sums, the
sampler and the predictor agree.

Ties: one rule, `classify`, gives both the rank and the optimal class, so rank 0 is exactly
the optimal class in every landscape. Exact values tie within the floating-point resolution
of the KL itself (`resolution`: an absolute width in nats derived from the precision of the
computation, the number of roundings that reach one KL and the magnitude of the terms they
round; float64 for exact Bayes sums, float32 for a network's losses), never within a
fraction of the loss: prompt classes make mathematical ties bitwise ties, and two KLs that
differ by 1e-9 nats are different. A KL at most its resolution is reported as below
resolution (column ``below_resolution``), not as a number. Estimated
values: the optimal class is the best estimate and every prompt whose paired difference from
it is not resolved by a one-sided z-test at family-wise 95% (Bonferroni over the P - 1
comparisons with the best); the other prompts are dense-ranked from 1 by their estimate
(docs/science.md, "Ties").
"""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import numpy as np
from promptscape import prompts as prompts_lib
from promptscape.predictors import BayesPredictor, Predictor, TabulatedPredictor
from promptscape.sources import Source, compositions

# The default of `landscape.enumeration_budget`: prompts times distinct task sequences that
# may be scored exhaustively (>= 131,071 binary prompts, L_max = 16, times 1,024 sequences,
# T = 10). The config schema states it as its default (YAML cannot name it; a test holds
# the two equal).
DEFAULT_ENUMERATION_BUDGET = 2 ** 27
# Every stratum of a stratified evaluation set gets at least this many sequences (two, so
# that its within-stratum variance can be estimated).
MIN_PER_STRATUM = 2
# A plain (unstratified) evaluation set, that of a task whose distribution of no statistic is
# known exactly, holds at least this many draws (`experiments.<e>.evaluation_size`, checked
# at parse). Its estimates are means with a standard error read against the normal: from 30
# draws the 97.5% t quantile is 2.045 against 1.96 (a nominal 95% interval covers at least
# 94% for normal per-sequence values) and the standard error's own relative error is about
# 1 / sqrt(2 (M - 1)) = 13%; below that neither the interval nor the error bar means what it
# says (docs/science.md, "Small evaluation sets").
MIN_EVALUATION_DRAWS = 30
# ... and at least this many distinct sequences: a standard error from draws that are all
# one sequence is 0 without evidence (`draw_evaluation` refuses such a set).
MIN_DISTINCT_SEQUENCES = 2
# The task's entropy H_T is computed exactly by enumerating its V^T sequences when there are
# at most this many (`task_entropy`), whatever the enumeration budget of the losses.
ENTROPY_MAX_SEQUENCES = 1 << 20

# A task's support over T symbols (`Source.support_size`) is enumerated for an exact sum
# where it holds at most this many sequences (and P times it fits the enumeration budget).
SUPPORT_MAX_SEQUENCES = 1 << 20

# Estimated values: two estimates within this relative distance are equal (floating-point
# noise, not evidence), and prompt efficiency's quantiles count KLs within it (plus 1e-12
# nats) as equal. Not the tie rule of exact values, which is `resolution`.
EXACT_RELATIVE_TOLERANCE = 1e-9
# Machine epsilon (the spacing of floats at 1) of the precisions a KL is computed in: float64
# sums for exact Bayes values and for the expectation over task outcomes; float32 for a
# network's per-sequence losses (scored and tabulated in float32).
PRECISION_EPSILON = {"float64": float(np.finfo(np.float64).eps),
                     "float32": float(np.finfo(np.float32).eps)}
# Estimated values: the family-wise level at which a prompt must be shown worse than the best
# estimate to leave the optimal class (one-sided paired z-tests, Bonferroni over P - 1).
ESTIMATE_ALPHA = 0.05


def enumerates(num_prompts: int, task_length: int, budget: int, vocab_size: int) -> bool:
    """Whether scoring `num_prompts` prompts on all V**T task sequences fits the enumeration
    budget (and the sequences have int64 codes). The only place this choice is made."""
    return (prompts_lib.can_encode(task_length, vocab_size)
            and int(num_prompts) * int(vocab_size) ** int(task_length) <= int(budget))


def enumeration(task: Source, task_length: int, num_prompts: int, budget: int) -> str | None:
    """Which task sequences an exact sum over `num_prompts` prompts enumerates: ``"all"``
    (the V**T sequences, `enumerates`), else ``"support"`` (the task's sequences of positive
    probability, where it counts them, `Source.support_size`, at most
    `SUPPORT_MAX_SEQUENCES`, and P times their number fits the budget), else None (the
    evaluation set). The one rule (docs/science.md, "How KL is computed")."""
    if enumerates(num_prompts, task_length, budget, task.vocab_size):
        return "all"
    size = task.support_size(int(task_length))
    if (size is not None and size <= SUPPORT_MAX_SEQUENCES
            and int(num_prompts) * size <= int(budget)):
        return "support"
    return None


def exact_sequences(task: Source, task_length: int, num_prompts: int,
                    budget: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``(seqs (X, T) uint8, log_p (X,))``: the task sequences `enumeration` picks, in code
    order, with their log-probabilities under the task; None where it picks none."""
    how = enumeration(task, task_length, num_prompts, budget)
    if how == "all":
        seqs = prompts_lib.enumerate_sequences(task_length, task.vocab_size)
        return seqs, task.log_prob(seqs)
    if how == "support":
        return task.support(int(task_length))
    return None


def below_resolution(kl: np.ndarray, resolution: float, method: str) -> np.ndarray:
    """Whether each KL is reported as below resolution: an exact KL at most its floating-point
    `resolution`. An estimate (``monte_carlo``) never is: it is a number with its standard
    error, and it can be negative."""
    kl = np.asarray(kl, dtype=np.float64)
    if method == "monte_carlo":
        return np.zeros(kl.shape, dtype=bool)
    return kl <= resolution


def choose_method(predictor: Predictor, task: Source, task_length: int, num_prompts: int,
                  enumeration_budget: int) -> str:
    """The first exact method that applies, else ``monte_carlo`` (see module doc)."""
    if isinstance(predictor, BayesPredictor) and predictor.source.exchangeable and task.exchangeable:
        return "exact_counts"
    if enumeration(task, task_length, num_prompts, enumeration_budget) is not None:
        return "exact_enumeration"
    return "monte_carlo"


def loss_table(predictor, prompts, task, task_length, method, enumerated=None, *,
               num_prompts: int | None = None, budget: int = DEFAULT_ENUMERATION_BUDGET):
    """The loss of every prompt on every distinct outcome of the task, with the outcomes'
    probabilities: ``(losses (P, X), p (X,), log_prob (X,))``, `log_prob` the task's
    log-probability of one sequence of each outcome.

    The one table every exact reader reduces: the landscape weights it by p, the predicted
    reliability treats D_N's frequencies of the outcomes as a multinomial. Outcomes are the
    count values (compositions of T into V parts) under `exact_counts`, the sequences of
    `exact_sequences` under `exact_enumeration` (all V**T, or the task's support); `monte_carlo`
    has no exact table (the evaluation set stands in for it, `monte_carlo_kl`).
    `enumerated`: the predictor's losses of these prompts on those sequences in code order,
    where the caller has them already. `num_prompts` and `budget`: what `choose_method`
    decided on (default: these prompts and the default budget), so that the table's
    sequences are those the method was chosen for."""
    T = task_length
    V = task.vocab_size
    if method == "exact_counts":
        counts = compositions(T, V)  # (C, V)
        pc = np.exp(task.count_log_probabilities(T))  # (C,)
        classes = prompts_lib.prompt_counts(prompts, V)  # (P, V)
        per_class = predictor.count_losses(classes[:, None, :], counts[None, :, :])  # (P, C)
        return per_class, pc, task.log_marginal(counts)
    if method == "exact_enumeration":
        exact = exact_sequences(task, T, len(prompts) if num_prompts is None else num_prompts,
                                budget)
        if exact is None:
            raise ValueError(f"exact_enumeration of {task.describe()} over T = {T}: neither "
                             f"its {V}^{T} sequences nor its support can be enumerated")
        seqs, log_p = exact
        if enumerated is None:
            enumerated = predictor.prompt_losses(prompts, seqs)
        elif enumerated.shape != (len(prompts), len(seqs)):
            raise ValueError(f"enumerated losses of shape {enumerated.shape}, not "
                             f"({len(prompts)}, {len(seqs)})")
        return enumerated, np.exp(log_p), log_p
    raise ValueError(f"loss_table has no exact method {method!r}")


def theoretical_losses(predictor, prompts, task, task_length, method, enumerated=None, *,
                       num_prompts: int | None = None,
                       budget: int = DEFAULT_ENUMERATION_BUDGET):
    """``(loss (P,), loss_se (P,), entropy)`` of the task over T symbols, by `method`
    (`loss_table` weighted by the outcomes' probabilities).

    Not for monte_carlo, which `monte_carlo_kl` handles from per-sequence losses.
    """
    table, p, log_p = loss_table(predictor, prompts, task, task_length, method, enumerated,
                                 num_prompts=num_prompts, budget=budget)
    return table @ p, np.zeros(len(prompts)), -float(p @ log_p)


def task_entropy(task: Source, task_length: int,
                 max_sequences: int = ENTROPY_MAX_SEQUENCES) -> float | None:
    """The task's exact entropy H_T over `task_length` symbols (nats), or None where no
    exact route is feasible: the count classes of an exchangeable task (H_T = -sum_c P(c)
    log P(one sequence with counts c), at most `max_sequences` count vectors), the kind's
    closed form (`Source.entropy`), else the enumeration of all V^T sequences when there are
    at most `max_sequences` of them, else that of the task's support (`Source.support`)
    when it holds at most `max_sequences` and `SUPPORT_MAX_SEQUENCES`. A Monte Carlo landscape reports this H_T in its
    entropy column and estimates KL by the paired mean of l(s, x) + log P_task(x), whose
    error is smaller than that of L(s) - H_T."""
    T, V = int(task_length), task.vocab_size
    if task.exchangeable and math.comb(T + V - 1, V - 1) <= max_sequences:
        counts = compositions(T, V)
        log_pc = task.count_log_probabilities(T)
        return -float(np.exp(log_pc) @ task.log_marginal(counts))
    closed = task.entropy(T)
    if closed is not None:
        return float(closed)
    if prompts_lib.can_encode(T, V) and V ** T <= max_sequences:
        log_p = task.log_prob(prompts_lib.enumerate_sequences(T, V))
        return -float(np.exp(log_p) @ log_p)
    size = task.support_size(T)
    if size is not None and size <= min(max_sequences, SUPPORT_MAX_SEQUENCES):
        log_p = task.support(T)[1]
        return -float(np.exp(log_p) @ log_p)
    return None


def first_symbol_prediction(predictor: Predictor, prompts: list[str],
                            vocab_size: int) -> np.ndarray:
    """The predictor's distribution of the first task symbol after each prompt, ``(P, V)``:
    q(v | s). For an exact Bayes predictor it is the posterior predictive of the prior
    conditioned on the prompt, the one-dimensional summary of the posterior a prompt
    induces (binary: q(1 | s)).

    A tabulated predictor holds losses of whole task sequences only; q(v | s) is then the sum
    of exp(-l(s, x)) over the V^(T-1) sequences x that start with v (the predictor's
    probabilities of the continuations sum to one)."""
    V = int(vocab_size)
    if isinstance(predictor, TabulatedPredictor):
        rows = np.array([predictor.index[s] for s in prompts], dtype=np.int64)
        whole = np.exp(-predictor.table[rows])  # (P, V^T) in code order: x_1 most significant
        return whole.reshape(len(prompts), V, -1).sum(axis=2)
    return np.exp(-predictor.prompt_losses(prompts, np.arange(V, dtype=np.uint8)[:, None]))


def first_symbol_kl(predictor: Predictor, prompts: list[str], task: Source,
                    prediction: np.ndarray | None = None) -> np.ndarray:
    """KL of the first task symbol alone, ``sum_v p(v) log(p(v) / q(v | s))`` for each prompt
    s, ``(P,)``, with p the task's law of x_1 and q the predictor's prediction after s
    (`first_symbol_prediction`, or `prediction` when given). By the chain rule of KL it is
    the part of KL(s) spent on the first task symbol (the rest is the expected KL of the
    later symbols given x_1), so 0 <= first_symbol_kl <= kl."""
    V = task.vocab_size
    p = np.exp(task.log_prob(np.arange(V, dtype=np.uint8)[:, None]))  # (V,)
    q = first_symbol_prediction(predictor, prompts, V) if prediction is None else prediction
    with np.errstate(divide="ignore", invalid="ignore"):  # q = 0: an impossible prompt, inf
        log_q = np.log(q)
        terms = np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - log_q), 0.0)
    return np.maximum(terms.sum(axis=1), 0.0)  # >= 0; rounding may leave -1e-17


# ------------------------------------------------------------------ evaluation sets
def evaluation_strata(task: Source, task_length: int) -> np.ndarray | None:
    """Exact stratum probabilities ``(C,)`` by symbol counts for an exchangeable task (one
    per composition of `sources.compositions(T, V)`; binary: k ones, k = 0..T), else None
    (the task is sampled plainly, one stratum)."""
    if not task.exchangeable:
        return None
    p = np.exp(task.count_log_probabilities(int(task_length)))
    return p / p.sum()  # sums to 1 up to rounding; renormalised so weights sum to 1 exactly


def allocate(probabilities: np.ndarray, size: int, minimum: int = MIN_PER_STRATUM) -> np.ndarray:
    """Sample sizes per stratum summing to `size`: `minimum` each, the rest in proportion to
    sqrt(probability) (largest remainders). Strata of probability 0 get none."""
    probabilities = np.asarray(probabilities, dtype=float)
    live = probabilities > 0
    base = np.where(live, minimum, 0)
    rest = int(size) - int(base.sum())
    if rest < 0:
        raise ValueError(f"an evaluation set of {size} sequences cannot give {minimum} to each "
                         f"of its {int(live.sum())} strata; raise evaluation_size to at least "
                         f"{int(base.sum())}")
    share = np.sqrt(probabilities) * live
    quota = rest * share / share.sum()
    extra = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - extra), kind="stable")
    extra[order[:rest - int(extra.sum())]] += 1
    return base + extra


def draw_evaluation(task: Source, task_length: int, size: int, rng: np.random.Generator):
    """``(sequences (M, T) uint8, stratum (M,) int64, weight (M,) float64)`` (module doc)."""
    T = int(task_length)
    strata = evaluation_strata(task, T)
    if strata is None:
        seqs = task.sample(size, T, rng)
        distinct = len(np.unique(seqs, axis=0))
        if distinct < MIN_DISTINCT_SEQUENCES and T > 0:
            raise ValueError(
                f"the evaluation set drew {distinct} distinct sequence in {size} draws of "
                f"{task.describe()} over T = {T}: every standard error from it would be 0 "
                f"without evidence; raise evaluation_size (at least "
                f"{MIN_DISTINCT_SEQUENCES} distinct sequences are needed)")
        return seqs, np.zeros(size, dtype=np.int64), np.full(size, 1.0 / size)
    sizes = allocate(strata, size)
    stratum = np.repeat(np.arange(len(strata)), sizes)
    counts = compositions(T, task.vocab_size)[stratum]  # (M, V)
    # A uniformly random arrangement of the counts over T positions: rank T independent
    # uniform keys; the c_{V-1} smallest ranks get symbol V-1, the next c_{V-2} symbol V-2,
    # and so on (binary: the k smallest are the ones).
    ranks = np.argsort(np.argsort(rng.random((size, T)), axis=1), axis=1)
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]  # (M, V): ranks held by symbols >= v
    seqs = (ranks[:, :, None] < above[:, None, 1:]).sum(axis=2).astype(np.uint8)
    weight = (strata / np.maximum(sizes, 1))[stratum]
    return seqs, stratum, weight


def stratified_mean(values: np.ndarray, weights: np.ndarray, strata: np.ndarray):
    """Stratified estimate of the mean of each row of `values` ``(P, M)`` and its standard
    error: ``sum_i w_i v_i`` and ``sqrt(sum_k W_k^2 s_k^2 / n_k)`` with W_k = sum of the
    stratum's weights. Weights 1/M in one stratum give the plain mean and std / sqrt(M).

    A row holding +inf (a loss on a sequence the prompted predictor gives probability 0, which
    a positive-probability task sequence makes the true expectation inf too) has mean inf and
    standard error 0: inf is then exact, not an estimate."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    weights = np.asarray(weights, dtype=float)
    strata = np.asarray(strata)
    infinite = np.isposinf(values).any(axis=1)
    if infinite.any():
        values = np.where(infinite[:, None], 0.0, values)
    mean = values @ weights
    variance = np.zeros(values.shape[0])
    for k in np.unique(strata):
        members = strata == k
        n = int(members.sum())
        if n < 2:
            raise ValueError(f"stratum {k} has {n} sequence; a standard error needs >= 2")
        W = float(weights[members].sum())
        variance += W ** 2 * values[:, members].var(axis=1, ddof=1) / n
    mean[infinite] = np.inf
    return mean, np.sqrt(variance)


def monte_carlo_kl(losses: np.ndarray, task_log_prob: np.ndarray,
                   weights: np.ndarray | None = None, strata: np.ndarray | None = None):
    """Paired stratified estimates from per-sequence losses ``(P, M)`` on the evaluation set
    (weights and strata as stored with it; default: plain draws, 1/M each, one stratum).

    Returns (loss, loss_se, kl, kl_se, entropy) with (P,) arrays and a scalar entropy.
    """
    M = losses.shape[1]
    weights = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=float)
    strata = np.zeros(M, dtype=np.int64) if strata is None else np.asarray(strata)
    per_kl = losses + task_log_prob[None, :]  # l(s, x) - (-log P_task(x))
    loss, loss_se = stratified_mean(losses, weights, strata)
    kl, kl_se = stratified_mean(per_kl, weights, strata)
    return loss, loss_se, kl, kl_se, -float(task_log_prob @ weights)


def evaluation_kl(table: np.ndarray, index: np.ndarray, task_log_prob: np.ndarray,
                  weights: np.ndarray, strata: np.ndarray, max_bytes: int | None = None):
    """`monte_carlo_kl` of the evaluation set from a table of losses over its distinct
    sequences (``table (P, U)`` and each evaluation sequence's column ``index (M,)``, as
    `search.sequence_losses` returns them), a block of prompts at a time so that the
    gathered ``(P, M)`` losses never exist whole (131,071 prompts at L = 16 on 10,000
    sequences would be 10 GB). Each prompt's estimate is its own row's: the same whatever
    the block."""
    P, M = table.shape[0], len(index)
    step = max(1, (EVALUATION_BYTES if max_bytes is None else max_bytes) // (8 * max(1, M)))
    loss, loss_se, kl, kl_se = (np.empty(P) for _ in range(4))
    entropy = -float(np.asarray(task_log_prob) @ np.asarray(weights, dtype=float))
    for a in range(0, P, step):
        block = monte_carlo_kl(table[a:a + step][:, index], task_log_prob, weights, strata)
        loss[a:a + step], loss_se[a:a + step], kl[a:a + step], kl_se[a:a + step] = block[:4]
    return loss, loss_se, kl, kl_se, entropy


# The most bytes of gathered evaluation-set losses `evaluation_kl` holds at once.
EVALUATION_BYTES = 1 << 27


def paired_differences(losses: np.ndarray, reference: int, weights: np.ndarray | None = None,
                       strata: np.ndarray | None = None):
    """Stratified estimate of L(s) - L(reference) for every prompt, and its paired standard
    error, from per-sequence losses ``(P, M)``."""
    M = losses.shape[1]
    weights = np.full(M, 1.0 / M) if weights is None else np.asarray(weights, dtype=float)
    strata = np.zeros(M, dtype=np.int64) if strata is None else np.asarray(strata)
    return stratified_mean(losses - losses[reference][None, :], weights, strata)


def resolution(loss, entropy: float = 0.0, *, outcomes: int = 1, symbols: int = 0,
               precision: str = "float64") -> float:
    """The floating-point resolution of an exact KL (absolute, nats): two KLs of one
    landscape closer than this are not told apart, and a KL at most this is below
    resolution (docs/science.md, "Ties").

    ``KL(s) = sum_x p_x l(s, x) - H_T`` is a float64 sum over `outcomes` task outcomes (count
    classes or sequences) of nonnegative terms, minus the entropy, itself such a sum. Each
    l(s, x) is built from the log-probabilities of the `symbols` = L_max + T symbols of one
    prompt and task sequence (a difference of two log-evidences for count classes; a sum of
    T log-predictions after a filtered prompt state otherwise), rounded in `precision`.
    With eps the precision's machine epsilon and S = max_s L(s) + |H_T| the magnitude of the
    summed terms (every term and partial sum is at most S), the standard bound of a sum of n
    terms, n eps S (Higham, Accuracy and Stability, eq. 4.4, to first order), gives

        resolution = eps_64 * outcomes * S + eps_precision * symbols * S.

    float64 Bayes values (both terms float64): eps_64 (C + L_max + T) S, about 1.5e-13 nats
    for BernMix at L_max 16, T = 10 (C = 11), where the KLs measured against 50-digit
    arithmetic are off by at most 9e-16. A network's float32 losses: its second term,
    about 5e-5 nats at L_max + T = 22, dominates. `loss` is the (P,) losses of the landscape
    (or any values whose magnitude bounds its terms)."""
    if precision not in PRECISION_EPSILON:
        raise ValueError(f"precision {precision!r}, must be one of {sorted(PRECISION_EPSILON)}")
    loss = np.asarray(loss, dtype=np.float64)
    if outcomes < 1 or symbols < 0:
        raise ValueError(f"outcomes == {outcomes}, symbols == {symbols}: must be >= 1, >= 0")
    # The finite losses: an inf KL (an impossible prompt) is exact, and rounds nothing.
    finite = np.abs(loss[np.isfinite(loss)])
    magnitude = (float(finite.max()) if finite.size else 0.0) + abs(float(entropy))
    return (PRECISION_EPSILON["float64"] * int(outcomes)
            + PRECISION_EPSILON[precision] * int(symbols)) * magnitude


def loss_precision(predictor: Predictor) -> str:
    """The precision a predictor's per-sequence losses are computed in: float64 for an exact
    Bayes predictor, float32 for a network (scored, or read from its float32 table)."""
    return "float64" if isinstance(predictor, BayesPredictor) else "float32"


def landscape_resolution(predictor: Predictor, loss, entropy: float, method: str,
                         task_length: int, max_prompt_length: int, vocab_size: int) -> float:
    """`resolution` of one exact landscape: its outcomes (count classes under
    ``exact_counts``, all V^T sequences under ``exact_enumeration``), its L_max + T symbols
    and its predictor's precision. Under ``monte_carlo`` the floating-point resolution of the
    estimates' float64 means over the evaluation set is not the tie rule (the statistical
    rule is), but still says which estimates are below resolution; it is computed as for
    one outcome per sequence of the enumeration (V^T), capped at 2^20 roundings."""
    T, V = int(task_length), int(vocab_size)
    if method == "exact_counts":
        outcomes = math.comb(T + V - 1, V - 1)
    else:
        outcomes = min(V ** T, 1 << 20)
    return resolution(loss, entropy, outcomes=outcomes, symbols=int(max_prompt_length) + T,
                      precision=loss_precision(predictor))


# `classify` without a stated resolution (a caller holding losses alone, such as a test or
# a library user): this many float64 roundings of the largest magnitude.
DEFAULT_ROUNDINGS = 64


def default_resolution(loss) -> float:
    """`resolution` of float64 values when nothing else is known: `DEFAULT_ROUNDINGS`
    roundings of the largest |value| (the pipeline's stage passes the landscape's own)."""
    return resolution(loss, outcomes=DEFAULT_ROUNDINGS)


def dense_ranks(values: np.ndarray, relative_tolerance: float = EXACT_RELATIVE_TOLERANCE,
                tolerance: float | None = None) -> np.ndarray:
    """Dense ranks (0 = smallest); values within `tolerance` (absolute) of the first value of
    their group share its rank, or, without `tolerance`, within `relative_tolerance` of it
    (the equality of estimates). Ties are exact ties such as permutations of a prompt under
    an exchangeable predictor, which floating-point sums may separate by ~1e-15."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    rank, anchor = -1, None
    for i in order:
        v = values[i]
        width = (relative_tolerance * max(abs(anchor), 1e-300) if tolerance is None
                 else tolerance) if anchor is not None else 0.0
        if anchor is None or (v != anchor and v - anchor > width):  # inf ties inf
            rank += 1
            anchor = v
        ranks[i] = rank
    return ranks


def estimate_critical_z(num_prompts: int, alpha: float = ESTIMATE_ALPHA) -> float:
    """One-sided critical z of each paired comparison with the best estimate: Bonferroni over
    the ``num_prompts - 1`` comparisons, so that all of them together hold at level `alpha`.

    >>> round(estimate_critical_z(2), 3), round(estimate_critical_z(15), 3)
    (1.645, 2.69)
    """
    return NormalDist().inv_cdf(1.0 - alpha / max(num_prompts - 1, 1))


def classify(loss: np.ndarray, paired_losses: np.ndarray | None = None,
             alpha: float = ESTIMATE_ALPHA, weights: np.ndarray | None = None,
             strata: np.ndarray | None = None, comparisons: int | None = None,
             tolerance: float | None = None):
    """Rank, optimal class and resolution of every prompt, by one tie rule.

    Returns ``(rank (P,) int64, optimal (P,) bool, resolved (P,) bool)``, with
    ``optimal == (rank == 0)`` always.

    Exact values (`paired_losses` None): dense ranks of `loss` where values within
    `tolerance` nats of their group's least tie: the KL's floating-point resolution
    (`resolution`, which the landscape stage computes for its kind of computation; default
    `default_resolution`); the optimal class is rank 0; every prompt is resolved.

    Estimated values: `loss` holds the estimates and `paired_losses` ``(P, M)`` the
    per-sequence losses on the shared evaluation set they come from (with its stratum
    `weights` and `strata`, as stored with it; default plain draws): the standard error of
    each difference from the best is the stratified paired one (`paired_differences`). The best prompt b has
    the least estimate (the first in canonical order among equals). A prompt is in the
    optimal class when its estimate equals b's (within the relative tolerance: floating-point
    noise, such as permutations of a prompt that the predictor treats alike, or identical
    per-sequence losses), or when the one-sided paired z-test of ``L(s) > L(b)`` does not
    reject at the Bonferroni level ``alpha / (P - 1)`` (`estimate_critical_z`): its
    difference from the best is *unresolved* (``resolved`` false). A zero-variance difference
    with unequal estimates is resolved. Rank 0 is that class; the other prompts are
    dense-ranked from 1 by their estimate, tied only where their estimates are equal. A
    prompt outside the class may thus have a smaller estimate than an unresolved member
    whose difference from the best is noisier.

    Bonferroni rather than Holm: b is chosen by the data, and the union bound over all P - 1
    possible comparisons of the true optimum s* with another prompt keeps s* in the class
    with probability at least 1 - alpha (normal approximation) whichever prompt the data
    make best; Holm's step-down gains its power relative to a fixed family of hypotheses,
    which a data-chosen reference does not give.

    `comparisons` is the number of prompts the Bonferroni correction is over (default: the
    rows given); a caller that scores one representative per prompt class passes the number
    of prompts, so the rule is the same as on the expanded table.
    """
    loss = np.asarray(loss, dtype=np.float64)
    if paired_losses is None:
        rank = dense_ranks(loss, tolerance=default_resolution(loss) if tolerance is None
                           else float(tolerance))
        return rank, rank == 0, np.ones(len(loss), dtype=bool)
    paired_losses = np.asarray(paired_losses, dtype=np.float64)
    P, M = paired_losses.shape
    if P != len(loss):
        raise ValueError(f"{len(loss)} estimates but {P} rows of paired losses")
    if M < 2:
        raise ValueError(f"a paired standard error needs at least 2 evaluation sequences, got {M}")
    best = int(np.argmin(loss))
    gap = loss - loss[best]
    equal = gap <= EXACT_RELATIVE_TOLERANCE * max(abs(loss[best]), 1e-300)
    se = paired_differences(paired_losses, best, weights, strata)[1]
    unresolved = ~equal & (gap <= estimate_critical_z(comparisons or P, alpha) * se)
    optimal = equal | unresolved
    rank = np.zeros(P, dtype=np.int64)
    rank[~optimal] = 1 + dense_ranks(loss[~optimal])
    return rank, optimal, ~unresolved


def optimal_class_estimated(losses: np.ndarray, alpha: float = ESTIMATE_ALPHA) -> np.ndarray:
    """Optimal class from paired per-sequence losses ``(P, M)`` alone (estimates: their
    means): `classify`'s rule."""
    losses = np.asarray(losses, dtype=np.float64)
    return classify(losses.mean(axis=1), losses, alpha)[1]



# ------------------------------------------------------------------ one rule for every reader
# `decided_by`, the column of every artifact that tells two values apart: which rule did.
KL_RESOLUTION = "kl_resolution"  # exact values: the KL's floating-point resolution (`resolution`)
PAIRED_SE = "paired_se"  # estimates: one-sided z-test by the stratified paired standard error
SE_BOUND = "se_bound"  # estimates without per-sequence values: the bound se(a) + se(b)
FLOAT32_RESOLUTION = "float32_resolution"  # tuning's exact scores: relative float32 resolution
DECIDED_BY = (KL_RESOLUTION, PAIRED_SE, SE_BOUND, FLOAT32_RESOLUTION)
# A monte_carlo landscape keeps its KL residuals (`paired_residuals`) where prompts times
# evaluation sequences is at most this many values (128 MiB of float64: 757 word prompts on
# 300 sequences are 227,100); beyond it its readers decide by `SE_BOUND`.
RESIDUAL_BUDGET = 1 << 24
# The most bytes of residual differences `TieRule.difference_se` holds at once.
DIFFERENCE_BYTES = 1 << 27


def paired_residuals(values: np.ndarray, weights: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Per-sequence values ``(P, M)`` (a prompt's KL or loss on each evaluation sequence)
    as residuals ``(P, M)`` whose row differences give every paired standard error: each
    value minus its stratum's mean, times ``W_k / sqrt(n_k (n_k - 1))`` (W_k the stratum's
    weight, n_k its sequences). Then ``sqrt(sum_i (r_a,i - r_b,i)^2)`` is exactly
    `stratified_mean`'s standard error of ``v_a - v_b`` (the paired SE of KL(a) - KL(b)),
    the norm of one row is that of ``v_a`` (kl_se), and the norm of a mean of rows minus
    another row is the paired SE of a mean difference: the variance
    ``sum_k W_k^2 s_k^2 / n_k`` is a sum of squares of the within-stratum deviations.

    A row holding +inf (an impossible prompt: its KL is inf exactly) is all zeros, as its
    standard error is 0."""
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    weights = np.asarray(weights, dtype=np.float64)
    strata = np.asarray(strata)
    infinite = ~np.isfinite(values).all(axis=1)
    values = np.where(infinite[:, None], 0.0, values)
    out = np.empty_like(values)
    for k in np.unique(strata):
        members = strata == k
        n = int(members.sum())
        if n < 2:
            raise ValueError(f"stratum {k} has {n} sequence; a standard error needs >= 2")
        block = values[:, members]
        scale = float(weights[members].sum()) / math.sqrt(n * (n - 1))
        out[:, members] = (block - block.mean(axis=1, keepdims=True)) * scale
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class TieRule:
    """When one KL of a landscape is shown less than another, and when two are equal: the
    one rule every reader of a landscape decides by (docs/science.md, "Ties").

    Exact landscapes (`kl_se` None): ``a < b`` when ``KL(a) < KL(b) - tolerance``, the
    landscape's ``kl_resolution``. Estimated landscapes: when ``KL(a) - KL(b) < -max(
    tolerance, z * se(a - b))``, a one-sided z-test at the landscape's Bonferroni level
    (`estimate_critical_z` of its P prompts: the critical z of its optimal class), with
    se(a - b) the paired standard error from the residuals (`paired_residuals`, ``(P, M)``)
    where the landscape keeps them (`PAIRED_SE`), else the bound ``kl_se(a) + kl_se(b)``
    (`SE_BOUND`: sd(X - Y) <= sd(X) + sd(Y) whatever their correlation, so it is valid and
    conservative). Two values are equal when neither is shown less (unresolved)."""

    tolerance: float
    kl_se: np.ndarray | None = None
    residuals: np.ndarray | None = None
    z: float = 0.0

    @classmethod
    def estimated(cls, tolerance: float, kl_se, residuals=None,
                  alpha: float = ESTIMATE_ALPHA) -> "TieRule":
        """The rule of an estimated landscape of ``len(kl_se)`` prompts."""
        kl_se = np.asarray(kl_se, dtype=np.float64)
        if residuals is not None:
            residuals = np.asarray(residuals, dtype=np.float64)
            if residuals.ndim != 2 or residuals.shape[0] != len(kl_se):
                raise ValueError(f"residuals of shape {residuals.shape} for {len(kl_se)} "
                                 "prompts")
        return cls(float(tolerance), kl_se, residuals, estimate_critical_z(len(kl_se), alpha))

    @property
    def is_estimated(self) -> bool:
        return self.kl_se is not None

    @property
    def decided_by(self) -> str:
        if not self.is_estimated:
            return KL_RESOLUTION
        return PAIRED_SE if self.residuals is not None else SE_BOUND

    def difference_se(self, a, b, *, max_bytes: int = DIFFERENCE_BYTES) -> np.ndarray:
        """Standard error of ``KL(a) - KL(b)`` for index arrays `a`, `b` ``(n,)``: paired,
        bounded or 0 (exact), as `decided_by` says."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if not self.is_estimated:
            return np.zeros(np.broadcast(a, b).shape)
        if self.residuals is None:
            return self.kl_se[a] + self.kl_se[b]
        a, b = np.broadcast_arrays(a, b)
        out = np.empty(a.shape)
        step = max(1, int(max_bytes) // (8 * max(1, self.residuals.shape[1])))
        for i in range(0, len(a), step):
            diff = self.residuals[a[i:i + step]] - self.residuals[b[i:i + step]]
            out[i:i + step] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return out

    def mean_difference_se(self, group, b: int) -> float:
        """Standard error of ``mean over s in group of KL(s) - KL(b)`` (a regret averaged
        over prompts): paired, the norm of the mean residual row minus b's; bounded, the mean
        of kl_se over the group plus kl_se(b) (the triangle inequality); 0 when exact."""
        group = np.asarray(group, dtype=np.int64)
        if not self.is_estimated:
            return 0.0
        if self.residuals is None:
            return float(self.kl_se[group].mean() + self.kl_se[b])
        return float(np.linalg.norm(self.residuals[group].mean(axis=0) - self.residuals[b]))

    def width(self, se) -> np.ndarray:
        """The least difference shown, for differences of standard error `se`."""
        return np.maximum(self.tolerance, self.z * np.asarray(se, dtype=np.float64))

    def less(self, kl, a, b) -> np.ndarray:
        """``(n,)``: KL(a) shown less than KL(b) (inf ties inf; a NaN difference is not
        shown)."""
        kl = np.asarray(kl, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return kl[a] - kl[b] < -self.width(self.difference_se(a, b))


def landscape_rule(method: str, kl_resolution: float, kl_se=None, residuals=None) -> TieRule:
    """The `TieRule` of a landscape artifact's columns: exact methods decide by
    `kl_resolution`; ``monte_carlo`` by its standard errors, paired where `residuals`
    ``(P, M)`` are given (the artifact's ``kl_residuals``), else bounded."""
    if method != "monte_carlo":
        return TieRule(float(kl_resolution))
    if kl_se is None:
        raise ValueError("an estimated landscape's rule needs its standard errors")
    return TieRule.estimated(kl_resolution, kl_se, residuals)


def stored_residuals(column) -> np.ndarray | None:
    """A landscape's ``kl_residuals`` column (one sequence of M floats per prompt) as
    ``(P, M)``, or None where it holds none (an exact landscape, or an estimated one over
    `RESIDUAL_BUDGET`)."""
    rows = list(column)
    if not rows or len(rows[0]) == 0:
        return None
    return np.stack([np.asarray(r, dtype=np.float64) for r in rows])
