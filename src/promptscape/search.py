"""Exhaustive prompt search on finite task datasets.

For one dataset D_N the empirical loss of prompt s is ``L_N(s) = mean_x l(s, x)`` and the
empirical optimum ``s_hat`` is its argmin; ties break towards the shorter prompt, then
lexicographically, which is the canonical prompt order, so the first minimum wins.

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


def choose(losses: np.ndarray) -> np.ndarray:
    """Index of s_hat for each row of ``(S, P)`` losses (first minimum: canonical order)."""
    return np.argmin(losses, axis=1)
