"""Exhaustive prompt search on finite task datasets.

For one dataset D_N the empirical loss of prompt s is ``L_N(s) = mean_x l(s, x)`` and the
empirical optimum ``s_hat`` is its argmin; ties (equal within a relative 1e-12, so that
rounding never decides between mathematically equal losses) break towards the shorter
prompt, then lexicographically, which is the canonical prompt order, so the first minimum
wins.

A batch of datasets (one per seed) is scored at once: every distinct sequence of the batch
is scored once against every prompt. When the whole sequence space fits the enumeration
budget (`landscape.enumerates`, the same decision as the landscape's), the table of losses covers every sequence, so a seed's losses do not depend
on which other seeds share its job (bit-for-bit, for any predictor).
"""

from __future__ import annotations

import numpy as np

from promptscape import landscape
from promptscape import prompts as prompts_lib
from promptscape.predictors import Predictor


def empirical_losses(predictor: Predictor, prompts: list[str], datasets: np.ndarray,
                     enumeration_budget: int, vocab_size: int) -> np.ndarray:
    """Empirical loss of every prompt on every dataset.

    Parameters
    ----------
    datasets : (S, N, T) uint8
        S datasets (seeds) of N sequences each, over `vocab_size` symbols.

    Returns
    -------
    (S, P) float64 mean loss per sequence.
    """
    S, N, T = datasets.shape
    flat = datasets.reshape(S * N, T)
    if landscape.enumerates(len(prompts), T, enumeration_budget, vocab_size):
        seqs = prompts_lib.enumerate_sequences(T, vocab_size)
        table = predictor.prompt_losses(prompts, seqs)  # (P, V^T)
        index = prompts_lib.encode(flat, vocab_size)
    else:
        unique, index = np.unique(flat, axis=0, return_inverse=True)
        table = predictor.prompt_losses(prompts, unique)  # (P, U)
    losses = table[:, index.reshape(S, N)]  # (P, S, N)
    return losses.mean(axis=2).T


# Empirical losses within this relative distance of the least are tied: floating-point noise
# of equal sums, such as the mathematically equal losses of different count classes (under
# Dirichlet(1, 1, 1), prompts 000, 0000, 0001 and 0002 on a sequence with counts (4, 1, 1)),
# which a plain argmin would break by rounding instead of by the tie rule.
TIE_RELATIVE_TOLERANCE = 1e-12
# `choose` goes prompt by prompt (the same result, faster) for at most this many prompts.
COLUMNWISE_MAX_PROMPTS = 128


def choose(losses: np.ndarray) -> np.ndarray:
    """Index of s_hat for each row of ``(S, P)`` losses: the first prompt (canonical order:
    shorter, then lexicographically first) whose loss is within `TIE_RELATIVE_TOLERANCE` of
    the least."""
    losses = np.asarray(losses, dtype=np.float64)
    rows, cols = losses.shape
    if cols > COLUMNWISE_MAX_PROMPTS or cols >= rows:
        least = losses.min(axis=1, keepdims=True)
        slack = TIE_RELATIVE_TOLERANCE * np.maximum(np.abs(least), 1e-300)
        return np.argmax(losses <= least + slack, axis=1)
    # Many rows of few prompts (the predicted reliability's multinomial outcomes): numpy
    # reduces along a short axis slowly, so go prompt by prompt, each over every row.
    return choose_by_prompt(np.ascontiguousarray(losses.T))


def choose_by_prompt(by_prompt: np.ndarray) -> np.ndarray:
    """`choose` of ``by_prompt.T``, from losses laid out ``(P, S)``, a prompt per row:
    the layout in which numpy reduces over prompts fast when S is large."""
    rows = by_prompt.shape[1]
    least = by_prompt.min(axis=0)
    bound = least + TIE_RELATIVE_TOLERANCE * np.maximum(np.abs(least), 1e-300)
    chosen = np.zeros(rows, dtype=np.int64)
    for j in range(by_prompt.shape[0] - 1, -1, -1):  # the first prompt within the bound wins
        chosen[by_prompt[j] <= bound] = j
    return chosen
