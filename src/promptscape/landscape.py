"""Theoretical losses of every prompt, KL to the task, dense ranks and the optimal class.

Three ways to compute ``L(s) = E_{x ~ task} l(s, x)``, the first that applies is used and
named in the ``method`` column:

``exact_counts``
    Bayes predictor of an exchangeable source and an exchangeable task (every i.i.d. coin,
    and coin mixtures): l(s, x) depends on x only through its count of ones k, and the task
    gives P(k) = C(T, k) m_task(k, T - k), so L(s) is a sum over k = 0..T.
``exact_enumeration``
    Any predictor, any task, when T <= the enumeration limit: L(s) = sum over all 2**T
    sequences x of P_task(x) l(s, x). Every source here has an exact log-probability, so this
    is exact too (for a neural predictor: exact up to float32 arithmetic).
``monte_carlo``
    Otherwise: the mean over the shared evaluation set (M task sequences, the same for all
    prompts, so differences between prompts are paired), with its standard error.

KL(s) = L(s) - H_T(task). Under monte_carlo, KL is estimated per sequence as
l(s, x) + log P_task(x), an unbiased paired estimate; its standard error is usually smaller
than that of L(s) for good prompts (the task's own entropy noise cancels), not always.

The evaluation-set estimate of KL and its standard error is kept beside the exact value in
every landscape (``mc_kl``, ``mc_kl_se``) as a built-in check that the exact sums, the
sampler and the predictor agree.
"""

from __future__ import annotations

import numpy as np
from promptscape import prompts as prompts_lib
from promptscape import special
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.sources import Source

# Exact values: prompts within this relative distance of the optimum's loss are tied.
EXACT_RELATIVE_TOLERANCE = 1e-9
# Estimated values: a prompt is in the optimal class when its paired loss difference to the
# best estimate is within this many standard errors (one-sided 97.5%).
ESTIMATE_Z = 1.96


def choose_method(predictor: Predictor, task: Source, task_length: int,
                  max_enumeration_length: int) -> str:
    """The first exact method that applies, else ``monte_carlo`` (see module doc)."""
    if isinstance(predictor, BayesPredictor) and predictor.source.exchangeable and task.exchangeable:
        return "exact_counts"
    if task_length <= max_enumeration_length:
        return "exact_enumeration"
    return "monte_carlo"


def theoretical_losses(predictor, prompts, task, task_length, method):
    """``(loss (P,), loss_se (P,), entropy)`` of the task over T symbols, by `method`.

    Not for monte_carlo, which `monte_carlo_kl` handles from per-sequence losses.
    """
    T = task_length
    if method == "exact_counts":
        k = np.arange(T + 1)
        log_pk = _log_binom(T, k) + task.log_marginal(k, T - k)  # (T + 1,)
        pk = np.exp(log_pk)
        ones = np.array([p.count("1") for p in prompts])
        zeros = np.array([len(p) for p in prompts]) - ones
        per_k = predictor.count_losses(ones[:, None], zeros[:, None], k[None, :], T - k[None, :])
        entropy = -float(pk @ task.log_marginal(k, T - k))
        return per_k @ pk, np.zeros(len(prompts)), entropy
    if method == "exact_enumeration":
        seqs = prompts_lib.enumerate_sequences(T)
        log_p = task.log_prob(seqs)
        p = np.exp(log_p)
        table = predictor.prompt_losses(prompts, seqs)
        return table @ p, np.zeros(len(prompts)), -float(p @ log_p)
    raise ValueError(f"theoretical_losses has no exact method {method!r}")


def monte_carlo_kl(losses: np.ndarray, task_log_prob: np.ndarray):
    """Paired estimates from per-sequence losses ``(P, M)`` on the evaluation set.

    Returns (loss, loss_se, kl, kl_se, entropy) with (P,) arrays and a scalar entropy.
    """
    M = losses.shape[1]
    per_kl = losses + task_log_prob[None, :]  # l(s, x) - (-log P_task(x))
    loss = losses.mean(axis=1)
    loss_se = losses.std(axis=1, ddof=1) / np.sqrt(M)
    kl = per_kl.mean(axis=1)
    kl_se = per_kl.std(axis=1, ddof=1) / np.sqrt(M)
    return loss, loss_se, kl, kl_se, -float(task_log_prob.mean())


def dense_ranks(values: np.ndarray, relative_tolerance: float = EXACT_RELATIVE_TOLERANCE) -> np.ndarray:
    """Dense ranks (0 = smallest); values within `relative_tolerance` of the first value of
    their group share its rank. Ties are exact ties such as permutations of a prompt under
    an exchangeable predictor, which floating-point sums may separate by ~1e-15."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.int64)
    rank, anchor = -1, None
    for i in order:
        v = values[i]
        if anchor is None or v - anchor > relative_tolerance * max(abs(anchor), 1e-300):
            rank += 1
            anchor = v
        ranks[i] = rank
    return ranks


def optimal_class_estimated(losses: np.ndarray, z: float = ESTIMATE_Z) -> np.ndarray:
    """Optimal class from paired per-sequence losses ``(P, M)``: prompts whose mean loss
    difference to the best prompt is within `z` standard errors of that difference."""
    mean = losses.mean(axis=1)
    best = int(np.argmin(mean))
    diff = losses - losses[best][None, :]
    se = diff.std(axis=1, ddof=1) / np.sqrt(losses.shape[1])
    return diff.mean(axis=1) <= z * se


def _log_binom(n, k):
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
