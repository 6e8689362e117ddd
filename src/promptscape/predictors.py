"""Predictors: maps from a context to a distribution over the next symbol.

Every predictor answers one question for the search and the landscapes::

    prompt_losses(prompts, seqs) -> (P, B)   l(s, x) = -sum_t log q(x_t | s, x_<t)

the loss of each prompt on each sequence, summed over the T symbols of the sequence only
(the prompt's own symbols are never scored). The base class computes it from
``log_predictive`` on the concatenation prompt + sequence, one prompt length at a time;
predictors with a cheaper route override it (exchangeable Bayes: counts; neural: the prompt
prefix is computed once and reused).

The registry of predictor families is `promptscape.neural.families.FAMILIES`: ``bayes`` is
`BayesPredictor` here, the networks are `promptscape.neural.scoring.NeuralPredictor`.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from promptscape import logs
from promptscape import prompts as prompts_lib
from promptscape.sources import Source, symbol_losses

# Batches of (prompt, sequence) pairs are cut to about this many symbols, to bound memory.
MAX_SYMBOLS_PER_BATCH = 2_000_000
# Hidden-state Bayes walks the sequence trie with chunks of prompts of about this many state
# entries per array (1 MiB of float64, so the forward step's temporaries stay in cache).
TRIE_STATES_PER_CHUNK = 1 << 17

logger = logging.getLogger("promptscape")


class Predictor:
    """Base class: subclasses implement `log_predictive`."""

    family: ClassVar[str] = "predictor"

    def log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        """``log q(x_t = v | x_<t)`` for every position of each sequence: ``(B, T, V)``."""
        raise NotImplementedError

    def sequence_losses(self, seqs: np.ndarray) -> np.ndarray:
        """Summed log loss of each sequence with no prompt: ``(B,)``."""
        return self.prompt_losses([""], seqs)[0]

    def prompt_classes(self, prompts: list[str]) -> tuple[list[str], np.ndarray]:
        """Prompts that act alike on every sequence, merged: ``(representatives, inverse)``
        with ``prompts[i]`` in the class of ``representatives[inverse[i]]``, each class
        represented by its first member in `prompts` (the canonical first, for prompts in
        canonical order). Every reader that scores all prompts (search, landscape, the
        predicted reliability) scores the representatives and expands by `inverse`. Here
        every prompt is its own class; Bayes predictors whose source states classes merge."""
        return list(prompts), np.arange(len(prompts), dtype=np.int64)

    def prompt_losses(self, prompts: list[str], seqs: np.ndarray) -> np.ndarray:
        """Loss of every prompt on every sequence, ``(P, B)`` float64 (see module doc)."""
        seqs = np.asarray(seqs, dtype=np.uint8)
        B, T = seqs.shape
        out = np.empty((len(prompts), B))
        progress = logs.Progress(logger, len(prompts) * B, "prompt-sequence losses:")
        done = 0
        for length, (idx, arr) in prompts_lib.group_by_length(prompts).items():
            chunk = max(1, MAX_SYMBOLS_PER_BATCH // max(1, (length + T) * len(idx)))
            for start in range(0, B, chunk):
                part = seqs[start:start + chunk]
                b = part.shape[0]
                # (P_l, b, length + T): every prompt of this length before every sequence.
                tokens = np.concatenate(
                    [np.broadcast_to(arr[:, None, :], (len(idx), b, length)),
                     np.broadcast_to(part[None, :, :], (len(idx), b, T))], axis=2,
                ).reshape(len(idx) * b, length + T)
                logp = self.log_predictive(tokens)[:, length:]  # (P_l * b, T, V): drop prompt
                losses = symbol_losses(logp, tokens[:, length:])  # (P_l * b, T)
                out[idx, start:start + b] = losses.sum(axis=1).reshape(len(idx), b)
                done += len(idx) * b
                progress.update(done)
        return out


class BayesPredictor(Predictor):
    """The exact Bayes predictor of a pretraining source (the source's own predictive)."""

    family = "bayes"

    def __init__(self, source: Source):
        self.source = source

    def log_predictive(self, seqs):
        return self.source.log_predictive(seqs)

    @property
    def classes_apply(self) -> bool:
        """Whether the source states prompt classes (`Source.prompt_class`): exchangeable
        kinds (symbol counts) and markov_beta (transition counts and last symbol)."""
        return self.source.prompt_class("") is not None

    def prompt_classes(self, prompts):
        """A prompt acts only through its class where the source states classes
        (exchangeable: its symbol counts, with l(s, x) = lm(c(s)) - lm(c(s) + c(x));
        markov_beta: its transition counts and last symbol): 153 binary classes for the
        131,071 prompts of length <= 16."""
        if not self.classes_apply:
            return super().prompt_classes(prompts)
        keys = [self.source.prompt_class(p) for p in prompts]
        row: dict = {}
        first = []
        inverse = np.empty(len(prompts), dtype=np.int64)
        for i, key in enumerate(keys):
            if key not in row:
                row[key] = len(first)
                first.append(prompts[i])
            inverse[i] = row[key]
        return first, inverse

    def prompt_losses(self, prompts, seqs):
        if self.classes_apply:
            # One row per class, in order of first appearance, then per prompt.
            first, inverse = self.prompt_classes(prompts)
            keys = [self.source.prompt_class(p) for p in first]
            return self.source.class_losses(keys, seqs)[inverse]
        if hasattr(self.source, "filter_states"):
            return self._hidden_state_losses(prompts, seqs)
        return super().prompt_losses(prompts, seqs)

    def _hidden_state_losses(self, prompts, seqs):
        """Hidden-state sources: filter each prompt once (`filter_states`), then run the
        forward algorithm down the prefix trie of the distinct sequences. A depth-t node's
        state and loss -sum_{u <= t} log q(x_u | s, x_<u) come from its parent's by one step
        (`step_log_predictive`, then `advance`: condition on the symbol, renormalise,
        switch), so each (prompt, prefix) pair is stepped once; the depth-T nodes are the
        sequences. Prompts go in chunks of about TRIE_STATES_PER_CHUNK state entries."""
        seqs = np.asarray(seqs, dtype=np.uint8)
        B, T = seqs.shape
        out = np.empty((len(prompts), B))
        if not prompts or not B:
            return out
        width = self.source.filter_states(np.zeros((1, 0), dtype=np.uint8)).shape[-1]
        states = np.empty((len(prompts), width))  # (P, S): the state after each prompt
        for length, (idx, arr) in prompts_lib.group_by_length(prompts).items():
            rows = max(1, MAX_SYMBOLS_PER_BATCH // ((length + 1) * width))
            for start in range(0, len(idx), rows):
                states[idx[start:start + rows]] = self.source.filter_states(
                    arr[start:start + rows])[:, -1]
        distinct, inverse = np.unique(seqs, axis=0, return_inverse=True)
        levels = _prefix_trie(distinct)
        nodes = max([1] + [len(parent) for parent, _ in levels])
        chunk = max(1, TRIE_STATES_PER_CHUNK // (nodes * width))
        progress = logs.Progress(logger, len(prompts) * B, "prompt-sequence losses:")
        for start in range(0, len(prompts), chunk):
            state = states[start:start + chunk, None, :]  # (p, nodes at depth t, S)
            p = state.shape[0]
            loss = np.zeros((p, 1))
            for depth, (parent, symbol) in enumerate(levels, start=1):
                logq = self.source.step_log_predictive(state.reshape(-1, width))
                V = logq.shape[-1]  # logq.reshape(p, parents * V): (parent, next symbol)
                loss = (np.take(loss, parent, axis=1)
                        - np.take(logq.reshape(p, -1), parent * V + symbol, axis=1))
                if depth < T:  # the leaves' states are never read
                    state = self.source.advance(np.take(state, parent, axis=1).reshape(-1, width),
                                                np.tile(symbol, p)).reshape(p, -1, width)
            out[start:start + p] = loss[:, inverse.ravel()]
            progress.update((start + p) * B)
        return out

    def count_losses(self, prompt_counts, counts) -> np.ndarray:
        """Exchangeable only: loss of any prompt with symbol counts `prompt_counts` on any
        sequence with symbol counts `counts` (``(..., V)`` each, broadcast): the count
        classes of landscapes and prompt efficiency use it."""
        return self.source.count_losses(prompt_counts, counts)


def _prefix_trie(distinct: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Prefix trie of the rows ``(N, T)`` of `np.unique`, level by level: for depth t = 1..T,
    (the parent of each depth-t node among the depth t - 1 nodes, its last symbol). Rows
    sharing a prefix are adjacent in sorted order and share its node; the depth-T nodes are
    the rows, in order."""
    N, T = distinct.shape
    levels = []
    node = np.zeros(N, dtype=np.int64)  # each row's node at depth t
    differs = np.zeros(max(N - 1, 0), dtype=bool)  # row i + 1's prefix differs from row i's
    for t in range(T):
        differs |= distinct[1:, t] != distinct[:-1, t]
        new = np.concatenate([[True], differs])  # a row starting a depth t + 1 node
        first = np.flatnonzero(new)
        levels.append((node[first], distinct[first, t]))
        node = np.cumsum(new) - 1
    return levels


class TabulatedPredictor(Predictor):
    """Losses of a fixed prompt set on every sequence of length T, read from a table.

    When T is small, a predictor's loss of every prompt on every one of the V**T possible task
    sequences is computed once (the `prompt_losses` artifact, batched and prefix-cached on the
    GPU when there is one); searches and landscapes then look losses up instead of loading the
    model. It answers `prompt_losses` for its own prompts and length-T sequences only.
    """

    family = "tabulated"

    def __init__(self, prompts: list[str], table: np.ndarray, task_length: int,
                 vocab_size: int):
        shape = (len(prompts), vocab_size**task_length)
        if table.shape != shape:
            raise ValueError(f"a table of {len(prompts)} prompts on sequences of length "
                             f"{task_length} over {vocab_size} symbols must have shape "
                             f"{shape}, not {table.shape}")
        self.vocab_size = vocab_size
        self.prompts = list(prompts)
        self.index = {p: i for i, p in enumerate(self.prompts)}
        self.table = table
        self.task_length = task_length

    def prompt_losses(self, prompts, seqs):
        seqs = np.asarray(seqs)
        if seqs.shape[1] != self.task_length:
            raise ValueError(f"this table holds sequences of length {self.task_length}, "
                             f"not {seqs.shape[1]}")
        missing = [p for p in prompts if p not in self.index]
        if missing:
            raise ValueError(f"prompts not in the table: {missing[:5]}")
        rows = np.array([self.index[p] for p in prompts], dtype=np.int64)
        return self.table[np.ix_(rows, prompts_lib.encode(seqs, self.vocab_size))]

    def log_predictive(self, seqs):
        raise TypeError("a tabulated predictor has losses of whole sequences only")
