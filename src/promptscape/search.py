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
                     enumeration_budget: int, vocab_size: int,
                     weights: np.ndarray | None = None,
                     decide_on: int | None = None) -> np.ndarray:
    """Empirical loss of every prompt on every dataset.

    Prompts that act alike (`Predictor.prompt_classes`: the count classes of an exchangeable
    Bayes predictor) are scored once, by their class's first member, so that all 131,071
    binary prompts of length <= 16 cost 153 classes.

    Parameters
    ----------
    datasets : (S, N, T) uint8
        S datasets (seeds) of N sequences each, over `vocab_size` symbols.
    weights : (S, N) float, optional
        The weight of each sequence's loss (a selection method's, `promptscape.selection`);
        None for the plain mean.
    decide_on : int, optional
        The number of prompts whether to enumerate all V^T sequences is decided on
        (`sequence_losses`; default these prompts): the strategies' on-demand batches pass
        all the prompts they search, so that the choice does not depend on a batch's size.

    Returns
    -------
    (S, P) float64 mean (or weighted sum of the) loss per sequence.
    """
    S, N, T = datasets.shape
    first, inverse = predictor.prompt_classes(prompts)
    count = len(prompts) if decide_on is None else decide_on
    table, index = sequence_losses(predictor, first, datasets.reshape(S * N, T),
                                   enumeration_budget, vocab_size, decide_on=count)
    index = index.reshape(S, N)
    out = np.empty((S, len(first)))
    if landscape.enumerates(count, T, enumeration_budget, vocab_size):
        # The table covers all V^T sequences: L_N is its product with the dataset's weight
        # on each sequence (count / N, or the summed selection weights), one product per
        # seed over the same columns, so a seed's losses do not depend on its block.
        for s in range(S):
            w = np.bincount(index[s], minlength=table.shape[1],
                            weights=None if weights is None
                            else np.asarray(weights[s], dtype=np.float64))
            out[s] = table @ (w / N if weights is None else w)
        return out[:, inverse]
    # Distinct sequences of the block: each seed's N losses gathered, seeds at a time so
    # that the gathered (classes, seeds, N) losses stay within GATHER_BYTES; each seed's
    # reduction is the same whatever the chunk.
    step = max(1, GATHER_BYTES // max(1, 8 * len(first) * N))
    for a in range(0, S, step):
        losses = table[:, index[a:a + step]]  # (C, s, N)
        if weights is None:
            out[a:a + step] = losses.mean(axis=2).T
        else:
            out[a:a + step] = np.einsum("psn,sn->sp", losses,
                                        np.asarray(weights, dtype=np.float64)[a:a + step])
    return out[:, inverse]


# The most bytes of gathered per-sequence losses `empirical_losses` holds at once.
GATHER_BYTES = 1 << 28
# The search artifact keeps this many best prompt classes per dataset (tables: search).
KEPT_CLASSES = 10


def best_classes(losses: np.ndarray, inverse: np.ndarray, chosen: np.ndarray,
                 keep: int = KEPT_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """Each dataset's `keep` best prompt classes by empirical loss, each by its first
    member (canonical order), and their positions: ``(prompt indices (S, K), ranks (S, K))``
    in order of loss, ties (within `TIE_RELATIVE_TOLERANCE`) to the canonical first, so
    that each row starts with s_hat (`chosen`, checked).

    `inverse` maps every prompt to its class (`Predictor.prompt_classes`)."""
    C = int(inverse.max()) + 1
    first = np.full(C, len(inverse), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(inverse)))
    K = min(keep, C)
    class_losses = losses[:, first]  # (S, C), classes in canonical order of first member
    kept = np.empty((len(losses), K), dtype=np.int64)
    for s, row in enumerate(class_losses):
        head = choose(row[None, :])[0]  # the tie rule's least
        order = np.argsort(row, kind="stable")
        order = np.concatenate([[head], order[order != head]])[:K]
        kept[s] = first[order]
    if not (kept[:, 0] == chosen).all():
        raise AssertionError("s_hat is not the first member of the best class")
    return kept, np.broadcast_to(np.arange(K), kept.shape)


def sequence_losses(predictor: Predictor, prompts: list[str], seqs: np.ndarray,
                    enumeration_budget: int, vocab_size: int,
                    decide_on: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The loss of every prompt on every sequence of ``seqs`` (M, T), as a table over the
    distinct sequences and each row's column in it: ``(table (P, U), index (M,))``. The
    table covers every one of the V^T sequences when they fit the enumeration budget for
    `decide_on` prompts (default: these; the search passes its whole prompt set, so the
    choice does not depend on how prompts merge into classes), so that a sequence's loss
    does not depend on which others share the job, else the distinct rows of ``seqs``."""
    T = seqs.shape[1]
    count = len(prompts) if decide_on is None else decide_on
    if landscape.enumerates(count, T, enumeration_budget, vocab_size):
        table = predictor.prompt_losses(prompts, prompts_lib.enumerate_sequences(T, vocab_size))
        return table, prompts_lib.encode(seqs, vocab_size)
    unique, index = np.unique(seqs, axis=0, return_inverse=True)
    return predictor.prompt_losses(prompts, unique), index.reshape(-1)


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
