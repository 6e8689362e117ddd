"""The prefix tries the scoring walks (`promptscape.neural.scoring.NeuralPredictor.prompt_losses`)."""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- tries
# `NeuralPredictor.prompt_losses` walks two prefix tries (module doc of that method): the
# prompts', whose nodes are read once each from their parent's state, and the task
# sequences', walked after every prompt.
class _Trie(NamedTuple):
    """The prefix trie of N rows of symbols (prompts of mixed lengths, or task sequences).

    Level l (0..depth) holds the distinct prefixes of length l of the rows, sorted
    lexicographically; level 0 is the empty prefix alone. ``parents[l]`` (n_l,) indexes each
    level-l node's parent in level l - 1, ``symbols[l]`` (n_l,) is its last symbol (both
    empty at l = 0), and the children of node i of level l - 1 are the level-l nodes
    ``starts[l][i]`` to ``starts[l][i + 1] - 1``. ``nodes`` (N,) is each row's own node, at
    the level of its length.
    """

    parents: list[np.ndarray]
    symbols: list[np.ndarray]
    starts: list[np.ndarray]
    nodes: np.ndarray


def _build_trie(rows: np.ndarray, lengths: np.ndarray, vocab_size: int) -> _Trie:
    """The `_Trie` of the (N, depth) symbols `rows`, row i of `lengths[i]` symbols (the rest
    padding), level by level: a level-l node is a distinct (parent, symbol) pair."""
    rows, lengths = np.asarray(rows, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    ids = np.zeros(rows.shape[0], dtype=np.int64)  # each live row's node at the last level
    nodes = np.zeros(rows.shape[0], dtype=np.int64)
    empty = np.zeros(0, dtype=np.int64)
    parents, symbols, starts = [empty], [empty], [empty]
    for level in range(1, int(lengths.max(initial=0)) + 1):
        live = np.flatnonzero(lengths >= level)
        keys, inverse = np.unique(ids[live] * vocab_size + rows[live, level - 1],
                                  return_inverse=True)
        parents.append(keys // vocab_size)
        symbols.append(keys % vocab_size)
        starts.append(np.searchsorted(parents[-1], np.arange(max(len(parents[-2]), 1) + 1)))
        ids[live] = inverse.reshape(-1)
        ends = live[lengths[live] == level]
        nodes[ends] = ids[ends]
    return _Trie(parents, symbols, starts, nodes)


class SequenceTrie:
    """The prefix trie of B task sequences of T symbols, on a device, for `trie_losses`.

    Depth t (1..T) holds the ``sizes[t]`` distinct prefixes x_1..x_t; ``parents[t]`` and
    ``symbols[t]`` are long tensors as in `_Trie`. The *internal* nodes, depths 1..T - 1, are
    the inputs a model reads (a leaf's last symbol is a target only): ``internal`` of them,
    numbered depth by depth from ``offsets[t]``; ``ancestors[t]`` (n_t, t - 1) holds, for a
    depth-t node, the numbers of its ancestors at depths 1..t - 1 (a transformer's keys and
    values after the prompt). ``leaves`` (B,) is each row's leaf and ``unique`` (n_T, T) the
    distinct sequences in leaf order.
    """

    def __init__(self, seqs: np.ndarray, vocab_size: int, device: torch.device):
        seqs = np.asarray(seqs, dtype=np.int64)
        B, T = seqs.shape
        trie = _build_trie(seqs, np.full(B, T), vocab_size)
        self.depth = T

        def tensor(a):
            return torch.as_tensor(np.ascontiguousarray(a, dtype=np.int64), device=device)

        self.parents = [tensor(p) for p in trie.parents]
        self.symbols = [tensor(s) for s in trie.symbols]
        self.sizes = [1] + [len(p) for p in trie.parents[1:]]
        self.offsets = np.concatenate([[0, 0], np.cumsum(self.sizes[1:T])]).astype(int)
        self.internal = int(sum(self.sizes[1:T]))
        ancestors = [np.zeros((self.sizes[t], max(t - 1, 0)), np.int64) for t in range(T)]
        for t in range(2, T):
            par = trie.parents[t]
            ancestors[t] = np.concatenate([ancestors[t - 1][par],
                                           (self.offsets[t - 1] + par)[:, None]], axis=1)
        self.ancestors = [tensor(a) for a in ancestors]
        # complete[t]: depths 1..t hold every prefix, in order (node j's parent is j // V).
        self.complete = [True]
        for t in range(1, T + 1):
            self.complete.append(self.complete[-1] and np.array_equal(
                trie.parents[t], np.arange(vocab_size * self.sizes[t - 1]) // vocab_size))
        self.vocab_size = vocab_size
        # Where each node's symbol's log-prob sits in its depth's flattened (n_{t-1} V) row.
        self.picks = [tensor(p * vocab_size + s) for p, s in zip(trie.parents, trie.symbols)]
        self.leaves = tensor(trie.nodes)
        first = np.unique(trie.nodes, return_index=True)[1]
        self.unique = tensor(seqs[first])

    def losses(self, t: int, loss: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
        """(P, n_t) losses of the depth-t nodes from their parents' (P, n_{t-1}) losses and
        (P, n_{t-1}, V) log-probs: a parent's loss minus the log-prob of the node's symbol."""
        log_probs = log_probs.reshape(loss.shape[0], -1)  # (P, n_{t-1} V)
        if self.complete[t]:  # nodes are (parent, symbol) in order: nothing to gather
            return loss.repeat_interleave(self.vocab_size, dim=1) - log_probs.double()
        return (loss.index_select(1, self.parents[t])
                - log_probs.index_select(1, self.picks[t]).double())

    def ancestors_of(self, t: int, a: int, b: int, k_store: torch.Tensor,
                     v_store: torch.Tensor) -> _Ancestors:
        """The keys and values of the ancestors of depth-t nodes a..b - 1, from the
        (P or 1, nh, internal, hs) keys and values of the internal nodes: in place where
        depths 1..t are complete and a..b - 1 are whole subtrees of depth-1 nodes."""
        block = self.sizes[t] // self.sizes[1]
        if self.complete[t] and a % block == 0 and (b - a) % block == 0:
            spans = [slice(self.offsets[d] + a * self.sizes[d] // self.sizes[t],
                           self.offsets[d] + b * self.sizes[d] // self.sizes[t])
                     for d in range(1, t)]
            return _Ancestors([k_store[:, :, s] for s in spans],
                              [v_store[:, :, s] for s in spans], True)
        index = self.ancestors[t][a:b]  # (b - a, t - 1)
        P, nh, _, hs = k_store.shape
        return _Ancestors(*(s.index_select(2, index.reshape(-1)).view(P, nh, *index.shape, hs)
                            for s in (k_store, v_store)), False)

class _Ancestors(NamedTuple):
    """Keys and values of the A = t - 1 ancestors of n depth-t nodes of a sequence trie.

    Gathered: ``keys`` and ``values`` are (P or 1, nh, n, A, hs). Blocks (a complete V-ary
    trie, nodes in order): the lists of the (P or 1, nh, n_d, hs) keys and values of depths
    d = 1..A, node j's ancestor at depth d being entry ``j // (n / n_d)``, so that nothing is
    copied per node."""

    keys: object
    values: object
    blocks: bool

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """(Q, nh, n, hs) scaled queries -> (., nh, n, A) scores."""
        if not self.blocks:
            return (q[..., None, :] * self.keys).sum(-1)
        Q, nh, n, hs = q.shape
        return torch.stack([(q.view(Q, nh, k.shape[2], -1, hs) * k[:, :, :, None]).sum(-1)
                            .view(-1, nh, n) for k in self.keys], dim=-1)

    def mix(self, weights: torch.Tensor) -> torch.Tensor:
        """(P, nh, n, A) attention weights -> (P, nh, n, hs), their mix of the values."""
        if not self.blocks:
            return (weights[..., None] * self.values).sum(-2)
        P, nh, n, _ = weights.shape
        out = 0
        for d, v in enumerate(self.values):
            part = weights[..., d].reshape(P, nh, v.shape[2], -1, 1) * v[:, :, :, None]
            out = out + part.view(P, nh, n, -1)
        return out
