"""Neural sequence predictors (LSTM and decoder-only transformer), in one file.

After nanoGPT's ``model.py`` (karpathy/nanoGPT): the modules in dependency order, then the
`Predictor` that the search uses, then training and checkpoints. The frozen
`PredictorConfig` lives in `promptscape.model_config` (importable without torch, for the
workflow's parse) and is re-exported here. References:
Hochreiter & Schmidhuber (1997) for the LSTM; Radford et al. (2019, GPT-2) for the
pre-norm transformer block and its initialisation.

Shapes (legend in `promptscape.sources.base`): B sequences, T symbols, L prompt symbols,
P prompts, V symbols (the pretraining source's vocab_size), C model width, nh heads,
hs = C / nh head size.

Alignment: a model reads a start-of-sequence token (``BOS``) first, so ``forward(x)`` with
``x = x_1..x_T`` feeds ``BOS, x_1..x_{T-1}`` and returns ``(B, T, V)`` log-probs where
position t predicts x_t from ``BOS + x_<t`` (the last symbol is a target, never an input).
The search scores prompts by two prefix tries (`NeuralPredictor.prompt_losses`): each
prompt prefix ``BOS + s`` is read once, one token from its parent's state (`trie_step`), and
after each prompt every distinct task-sequence prefix is one more step (`trie_losses`); the
prompt's own symbols are never scored. `prefix` and `extend` read a whole prompt and continue
it with whole sequences (the prompt gradient, and the reference the tries are tested against).

Randomness is an argument: initialisation draws from a torch Generator seeded by
``seeding.stable_seed("init", ...)``, training data from numpy Generators seeded by
``seeding.numpy_generator("train_data", ...)``, one per step, so that a resumed run draws
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import numbers
import os
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from promptscape import files, logs, predictors, seeding, validation
from promptscape.model_config import (  # noqa: F401  (re-exported)
    DEVICES, FAMILIES, LR_SCHEDULES, PredictorConfig)
from promptscape import prompts as prompts_lib
from promptscape.sources import Source, build_source, symbol_losses

logger = logging.getLogger(__name__)

# Tokens: symbols are 0..V-1 and the start-of-sequence token BOS is V, so a model embeds
# V + 1 tokens and predicts V symbols. V is a constructor argument, not a config field: it is
# the pretraining source's (stored with every checkpoint), and at V = 2 the parameter shapes
# and initial draws are those of the binary networks.


def resolve_device(name: str, where: str = "training.device") -> torch.device:
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cpu' and 'cuda' as named.

    Jobs call it before any work, so 'cuda' on a machine without one is a ConfigError
    naming the config key (`where`), not a failure deep inside training."""
    if name not in DEVICES:
        raise validation.ConfigError(f"{where} == {name!r}, must be one of "
                                     + ", ".join(repr(d) for d in DEVICES) + ".")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise validation.ConfigError(f"{where} == 'cuda', but torch sees no CUDA device on "
                                     "this machine; use 'auto' (CUDA when there is one) or "
                                     "'cpu'.")
    return torch.device(name)


# --------------------------------------------------------------------------- modules
class Prefix(NamedTuple):
    """A model's state after reading ``BOS + prompt`` for P prompts of one length L.

    ``log_probs`` (P, V) predicts the first symbol after the prompt; ``cache`` is the
    model's own memory (LSTM: (h, c); transformer: keys and values per layer); ``length``
    is the number of tokens read, L + 1.
    """

    cache: object
    log_probs: torch.Tensor
    length: int


def _with_bos(tokens: torch.Tensor, bos: int) -> torch.Tensor:
    """(..., T) symbols -> (..., T + 1) tokens starting with the token `bos` (= V)."""
    bos = torch.full((*tokens.shape[:-1], 1), bos, dtype=torch.long, device=tokens.device)
    return torch.cat([bos, tokens.long()], dim=-1)


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


def _init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """The one initialisation of both families (GPT-2's normal(0, 0.02) for linear maps and
    embeddings; PyTorch's uniform(+-1/sqrt(H)) for LSTM weights); exceptions are in the
    model constructors."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02, generator=generator)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LSTM):
        bound = 1.0 / math.sqrt(module.hidden_size)
        for name, param in module.named_parameters():
            if name.startswith("weight"):
                nn.init.uniform_(param, -bound, bound, generator=generator)
            else:
                nn.init.zeros_(param)


class LSTMPredictor(nn.Module):
    """Embed, LSTM torso, unembed."""

    def __init__(self, config: PredictorConfig, generator: torch.Generator, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = int(vocab_size)
        self.embed = nn.Embedding(self.vocab_size + 1, config.embedding_dim)
        self.lstm = nn.LSTM(config.embedding_dim, config.hidden_size, config.num_layers,
                            batch_first=True)
        self.unembed = nn.Linear(config.hidden_size, self.vocab_size)
        self.apply(lambda m: _init_weights(m, generator))
        # Forget-gate bias 1 (Jozefowicz et al., 2015): remember by default early in training.
        H = config.hidden_size
        with torch.no_grad():
            for layer in range(config.num_layers):
                getattr(self.lstm, f"bias_ih_l{layer}")[H:2 * H].fill_(1.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) symbols -> (B, T, V) log-probs; position t predicts x_t from BOS + x_<t."""
        B, T = tokens.shape
        if T == 0:
            return torch.zeros(B, 0, self.vocab_size, device=tokens.device)
        out, _ = self.lstm(self.embed(_with_bos(tokens, self.vocab_size)[:, :-1]))  # (B, T, H)
        return F.log_softmax(self.unembed(out), dim=-1)

    def prefix(self, prompts: torch.Tensor) -> Prefix:
        """Read BOS + each of the (P, L) prompts once; keep the final (h, c)."""
        return self.prefix_embedded(self.embed(_with_bos(prompts, self.vocab_size)))

    def prefix_embedded(self, inputs: torch.Tensor) -> Prefix:
        """`prefix` from the (P, L + 1, E) input embeddings of BOS + prompt (relaxed prompts
        of `NeuralPredictor.prompt_gradient`)."""
        out, (h, c) = self.lstm(inputs)  # (P, L + 1, H)
        log_probs = F.log_softmax(self.unembed(out[:, -1]), dim=-1)  # (P, V)
        return Prefix((h, c), log_probs, inputs.shape[1])

    def extend(self, prefix: Prefix, seqs: torch.Tensor) -> torch.Tensor:
        """Every (B, T) sequence after every prompt of `prefix`: (P, B, T, V) log-probs."""
        h, c = prefix.cache  # (layers, P, H) each
        P, (B, T) = prefix.log_probs.shape[0], seqs.shape
        first = prefix.log_probs[:, None, None, :].expand(P, B, 1, self.vocab_size)
        if T == 1:
            return first
        # The LSTM needs one state row per (prompt, sequence) pair: (layers, P * B, H).
        state = (h.repeat_interleave(B, dim=1), c.repeat_interleave(B, dim=1))
        inputs = self.embed(seqs[:, :-1].long())  # (B, T - 1, E), the same for every prompt
        inputs = inputs.expand(P, B, T - 1, inputs.shape[-1]).reshape(P * B, T - 1, -1)
        out, _ = self.lstm(inputs, state)  # (P * B, T - 1, H)
        rest = F.log_softmax(self.unembed(out), dim=-1).view(P, B, T - 1, self.vocab_size)
        return torch.cat([first, rest], dim=2)

    # Trie walks (`NeuralPredictor.prompt_losses`): a node's state is its parent's (h, c)
    # after one more symbol. (prompt, node) inputs per step of a sequence-trie walk on a cpu:
    # the fastest of 2048..8192 on 1 and 2 cores (2048 rows of gates stay in cache).
    cpu_step_inputs = 1 << 11

    def check_context(self, length: int) -> None:
        """An LSTM reads contexts of any length."""

    def cache_positions(self, length: int) -> int:
        """State held per prompt node, in token positions: (h, c), whatever its length."""
        return 1

    def trie_root(self, device: torch.device) -> Prefix:
        """The state after BOS alone (the empty prompt), for one node."""
        return self.prefix(torch.zeros(1, 0, dtype=torch.long, device=device))

    def trie_select(self, prefix: Prefix, index: torch.Tensor) -> Prefix:
        """The nodes `index` of `prefix`."""
        h, c = prefix.cache
        return Prefix((h.index_select(1, index), c.index_select(1, index)),
                      prefix.log_probs.index_select(0, index), prefix.length)

    def trie_step(self, prefix: Prefix, parents: torch.Tensor, symbols: torch.Tensor) -> Prefix:
        """The (n,) children of nodes `parents` of `prefix`, each reading one of `symbols`."""
        h, c = prefix.cache
        out, state = self.lstm(self.embed(symbols)[:, None],
                               (h.index_select(1, parents), c.index_select(1, parents)))
        return Prefix(state, F.log_softmax(self.unembed(out[:, 0]), dim=-1), prefix.length + 1)

    def trie_losses(self, prefix: Prefix, trie: SequenceTrie, step_inputs: int,
                    max_positions: int) -> torch.Tensor:
        """Log loss of every leaf of `trie` after every prompt of `prefix`: (P, n_T) float64.

        Depth by depth: the loss of a depth-t node is its parent's plus -log q(its symbol)
        read off the parent's output, and each internal node's state is one step from its
        parent's, for all (prompt, node) pairs of a depth at once. Where a depth has more
        than `step_inputs` pairs, the prompts go on in groups (depth first), so that a
        step's working set stays small (in cache, on a cpu). `max_positions` is for the
        transformer's signature: an LSTM's state does not grow with its context."""
        P = prefix.log_probs.shape[0]
        loss = torch.zeros(P, 1, dtype=torch.float64, device=prefix.log_probs.device)
        return self._walk(prefix.cache, prefix.log_probs[:, None], loss, trie, 1, step_inputs)

    def _walk(self, state, log_probs: torch.Tensor, loss: torch.Tensor, trie: SequenceTrie,
              t: int, step_inputs: int) -> torch.Tensor:
        """`trie_losses` from depth t - 1: its (h, c) `state` (layers, P n_{t-1}, H), its
        (P, n_{t-1}, V) `log_probs` and (P, n_{t-1}) `loss`; returns (P, n_T)."""
        (P, n_prev, V), (h, c) = log_probs.shape, state
        for t in range(t, trie.depth + 1):
            par, sym = trie.parents[t], trie.symbols[t]
            n = len(sym)
            if t < trie.depth and P > 1 and P * n > step_inputs:
                g = max(1, step_inputs // n)  # prompts per group
                return torch.cat([
                    self._walk((h[:, p0 * n_prev:(p0 + g) * n_prev],
                                c[:, p0 * n_prev:(p0 + g) * n_prev]),
                               log_probs[p0:p0 + g], loss[p0:p0 + g], trie, t, step_inputs)
                    for p0 in range(0, P, g)])
            loss = trie.losses(t, loss, log_probs)  # (P, n_t)
            if t == trie.depth:
                break
            rows = (torch.arange(P, device=par.device)[:, None] * n_prev + par).reshape(-1)
            out, (h, c) = self.lstm(self.embed(sym).repeat(P, 1)[:, None],
                                    (h.index_select(1, rows), c.index_select(1, rows)))
            log_probs = F.log_softmax(self.unembed(out[:, 0]), dim=-1).view(P, n, V)
            n_prev = n
        return loss


class CausalSelfAttention(nn.Module):
    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        *lead, T, C = x.shape
        return x.view(*lead, T, self.num_heads, C // self.num_heads).transpose(-2, -3)

    def forward(self, x: torch.Tensor, past=None):
        """Causal attention over x, after the cached keys and values of a prefix if given.

        Without `past`: x is (B, T, C); returns the output and this layer's (k, v), each
        (B, nh, T, hs), for a cache. With `past` = (k, v) of P prefixes, each
        (P, nh, Lp, hs): x is (P or 1, B, T, C), the B continuations of each prefix (1 when
        they do not depend on the prefix yet), and the output is (P, B, T, C).
        """
        *lead, T, C = x.shape
        q, k, v = (self._split_heads(t) for t in self.qkv(x).split(C, dim=-1))  # (..., nh, T, hs)
        scale = 1.0 / math.sqrt(q.shape[-1])
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        scores = (q @ k.transpose(-1, -2)) * scale  # (..., nh, T, T)
        scores = scores.masked_fill(~causal, float("-inf"))
        if past is None:
            y = scores.softmax(dim=-1) @ v  # (B, nh, T, hs)
            cache = (k, v)
        else:
            k_past, v_past = past  # (P, nh, Lp, hs): shared by the B continuations
            P, Lp = k_past.shape[0], k_past.shape[2]
            # Scores against the prefix broadcast over B without copying the cache.
            past_scores = torch.einsum("pbhtd,phld->pbhtl", q, k_past) * scale
            scores = scores.expand(P, *scores.shape[1:])  # (P, B, nh, T, T)
            weights = torch.cat([past_scores, scores], dim=-1).softmax(dim=-1)
            y = torch.einsum("pbhtl,phld->pbhtd", weights[..., :Lp], v_past) \
                + weights[..., Lp:] @ v  # (P, B, nh, T, hs)
            cache = None
        y = y.transpose(-2, -3).reshape(*y.shape[:-3], T, C)  # (..., T, C)
        return self.proj(y), cache


class MLP(nn.Module):
    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.fc = nn.Linear(config.hidden_size, 4 * config.hidden_size)
        self.proj = nn.Linear(4 * config.hidden_size, config.hidden_size)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.ln_attn = nn.LayerNorm(config.hidden_size)
        self.attn = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.hidden_size)
        self.mlp = MLP(config)

    def forward(self, x, past=None):
        attended, cache = self.attn(self.ln_attn(x), past)
        x = x + attended
        x = x + self.mlp(self.ln_mlp(x))
        return x, cache


def _trie_block(block: Block, x: torch.Tensor, k_past: torch.Tensor, v_past: torch.Tensor,
                ancestors: "_Ancestors | None" = None):
    """`Block` on one new token of each of n trie nodes after P cached prefixes.

    x (Q, n, C), Q = P or 1 (1: the inputs are the same for every prefix); ``k_past``,
    ``v_past`` (P, nh, Lp, hs): the prefixes' cached keys and values, which all n nodes
    attend to; `ancestors`, optional: the keys and values of each node's own A earlier tokens
    after the prefix (its ancestors in a sequence trie). Returns the block's output
    (P, n, C) and the new tokens' keys and values (Q, nh, n, hs).
    """
    attn = block.attn
    (Q, n, C), P, nh, Lp = x.shape, k_past.shape[0], attn.num_heads, k_past.shape[2]
    q, k, v = attn.qkv(block.ln_attn(x)).view(Q, n, 3, nh, C // nh).permute(2, 0, 3, 1, 4)
    q = q * (1.0 / math.sqrt(C // nh))  # (Q, nh, n, hs), as are k and v
    scores = [q @ k_past.transpose(-1, -2)]  # (P, nh, n, Lp); Q = 1 broadcasts
    if ancestors is not None:
        scores.append(ancestors.scores(q))  # (Q or P, nh, n, A)
    scores.append((q * k).sum(-1, keepdim=True))  # the token itself
    logits = torch.cat([s.expand(P, nh, n, -1) for s in scores], dim=-1)
    # softmax, spelled out: torch's is several times slower over rows this short on a cpu.
    weights = (logits - logits.amax(dim=-1, keepdim=True)).exp_()
    weights = weights / weights.sum(dim=-1, keepdim=True)
    y = weights[..., :Lp] @ v_past + weights[..., -1:] * v  # (P, nh, n, hs)
    if ancestors is not None:
        y = y + ancestors.mix(weights[..., Lp:-1])
    x = x + attn.proj(y.transpose(1, 2).reshape(P, n, C))
    return x + block.mlp(block.ln_mlp(x)), k, v


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


class TransformerPredictor(nn.Module):
    """Decoder-only causal transformer: token + learned position embeddings, pre-norm
    blocks, final LayerNorm, unembed."""

    def __init__(self, config: PredictorConfig, generator: torch.Generator, vocab_size: int):
        super().__init__()
        self.config = config
        self.vocab_size = int(vocab_size)
        C = config.hidden_size
        self.embed = nn.Embedding(self.vocab_size + 1, C)
        self.positions = nn.Embedding(config.max_context_length, C)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_final = nn.LayerNorm(C)
        self.unembed = nn.Linear(C, self.vocab_size)
        self.apply(lambda m: _init_weights(m, generator))
        # GPT-2: scale the residual projections by 1/sqrt(2 * layers), so that the residual
        # stream's variance does not grow with depth.
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.num_layers),
                                generator=generator)

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """(..., T) tokens at positions start..start+T-1 -> (..., T, C)."""
        return self._place(self.embed(tokens), start)

    def _place(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """(..., T, C) token embeddings at positions start..start+T-1, plus their positions'."""
        T = x.shape[-2]
        self.check_context(start + T)
        return x + self.positions(torch.arange(start, start + T, device=x.device))

    def _unembed(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.unembed(self.ln_final(x)), dim=-1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) symbols -> (B, T, V) log-probs; position t predicts x_t from BOS + x_<t."""
        x = self._embed(_with_bos(tokens, self.vocab_size)[:, :-1], 0)  # (B, T, C)
        for block in self.blocks:
            x, _ = block(x)
        return self._unembed(x)

    def prefix(self, prompts: torch.Tensor) -> Prefix:
        """Read BOS + each of the (P, L) prompts once; keep every layer's keys and values."""
        return self.prefix_embedded(self.embed(_with_bos(prompts, self.vocab_size)))

    def prefix_embedded(self, inputs: torch.Tensor) -> Prefix:
        """`prefix` from the (P, L + 1, C) token embeddings of BOS + prompt (relaxed prompts
        of `NeuralPredictor.prompt_gradient`); positions are added here."""
        x = self._place(inputs, 0)
        cache = []
        for block in self.blocks:
            x, kv = block(x)
            cache.append(kv)  # (P, nh, L + 1, hs) each
        return Prefix(cache, self._unembed(x[:, -1]), inputs.shape[1])

    def extend(self, prefix: Prefix, seqs: torch.Tensor) -> torch.Tensor:
        """Every (B, T) sequence after every prompt of `prefix`: (P, B, T, V) log-probs."""
        P, (B, T) = prefix.log_probs.shape[0], seqs.shape
        first = prefix.log_probs[:, None, None, :].expand(P, B, 1, self.vocab_size)
        if T == 1:
            return first
        # Inputs x_1..x_{T-1} sit at positions L+1..L+T-1; until the first attention mixes in
        # the prefix they are the same for every prompt, hence the leading 1.
        x = self._embed(seqs[None, :, :-1].long(), prefix.length)  # (1, B, T - 1, C)
        for block, past in zip(self.blocks, prefix.cache):
            x, _ = block(x, past)  # (P, B, T - 1, C)
        return torch.cat([first, self._unembed(x)], dim=2)

    # Trie walks (`NeuralPredictor.prompt_losses`): a node's state is its parent's keys and
    # values plus those of one more symbol. (prompt, node) inputs per step of a sequence-trie
    # walk on a cpu: the fastest of 2048..16384 on 1 and 2 cores.
    cpu_step_inputs = 1 << 12

    def check_context(self, length: int) -> None:
        """A ValueError if `length` symbols (BOS excluded: BOS + prompt + task, the last one a
        target only) would read past the position table."""
        if length > self.config.max_context_length:
            raise ValueError(
                f"transformer context of {length} symbols, must be <= "
                f"max_context_length ({self.config.max_context_length}).")

    def cache_positions(self, length: int) -> int:
        """State held per prompt node, in token positions: a key and value per token read."""
        return length

    def trie_root(self, device: torch.device) -> Prefix:
        """The state after BOS alone (the empty prompt), for one node."""
        return self.prefix(torch.zeros(1, 0, dtype=torch.long, device=device))

    def trie_select(self, prefix: Prefix, index: torch.Tensor) -> Prefix:
        """The nodes `index` of `prefix`."""
        return Prefix([(k[index], v[index]) for k, v in prefix.cache],
                      prefix.log_probs[index], prefix.length)

    def trie_step(self, prefix: Prefix, parents: torch.Tensor, symbols: torch.Tensor) -> Prefix:
        """The (n,) children of nodes `parents` of `prefix`, each reading one of `symbols`:
        the new token attends to its parent's cache, which it extends by one position."""
        x = self._embed(symbols[:, None], prefix.length)  # (n, 1, C)
        cache = []
        for block, (k_past, v_past) in zip(self.blocks, prefix.cache):
            k_past, v_past = k_past.index_select(0, parents), v_past.index_select(0, parents)
            x, k, v = _trie_block(block, x, k_past, v_past)  # k, v: (n, nh, 1, hs)
            cache.append((torch.cat([k_past, k], dim=2), torch.cat([v_past, v], dim=2)))
        return Prefix(cache, self._unembed(x[:, 0]), prefix.length + 1)

    def trie_losses(self, prefix: Prefix, trie: SequenceTrie, step_inputs: int,
                    max_positions: int) -> torch.Tensor:
        """Log loss of every leaf of `trie` after every prompt of `prefix` (P prompts of one
        length): (P, n_T) float64.

        Depth by depth, as the LSTM's. A depth-t node's token sits at position L + t and
        attends to its prompt's cache (shared by all the prompt's nodes, never copied) and to
        the keys and values of its t - 1 ancestors, kept per internal node (P x internal
        positions a layer; the first layer's are the same for every prompt), gathered per
        node, or read in place where the trie is complete (`_Ancestors`). Where a depth
        has more than `step_inputs` (prompt, node) pairs, or their attention contexts more
        than `max_positions` positions, the prompts go on in groups (depth first), and a
        single prompt reads the depth in slices of nodes.
        """
        (P, V), Lp, T = prefix.log_probs.shape, prefix.length, trie.depth
        self.check_context(Lp - 1 + T)
        C, nh = self.config.hidden_size, self.config.num_heads
        device = prefix.log_probs.device
        store = [tuple(torch.empty(1 if i == 0 else P, nh, trie.internal, C // nh,
                                   device=device) for _ in "kv")
                 for i in range(len(self.blocks))]
        loss = torch.zeros(P, 1, dtype=torch.float64, device=device)
        return self._walk(prefix, store, prefix.log_probs[:, None], loss, trie, 1,
                          (step_inputs, max_positions))

    def _walk(self, prefix: Prefix, store: list, log_probs: torch.Tensor, loss: torch.Tensor,
              trie: SequenceTrie, t: int, budget: tuple[int, int]) -> torch.Tensor:
        """`trie_losses` from depth t - 1: the prompts' `prefix`, the keys and values of the
        internal nodes so far (`store`), the (P, n_{t-1}, V) `log_probs` and (P, n_{t-1})
        `loss` of depth t - 1; `budget` is (step_inputs, max_positions); returns (P, n_T)."""
        (P, _, V), Lp, (inputs, positions) = log_probs.shape, prefix.length, budget
        for t in range(t, trie.depth + 1):
            sym = trie.symbols[t]
            n = len(sym)
            context = n * (Lp + t)  # positions one prompt's depth-t nodes attend to
            if t < trie.depth and P > 1 and (P * n > inputs or P * context > positions):
                g = max(1, min(inputs // n, positions // context))  # prompts per group
                return torch.cat([
                    self._walk(Prefix([(k[p0:p0 + g], v[p0:p0 + g]) for k, v in prefix.cache],
                                      None, Lp),
                               [(k[p0:p0 + g], v[p0:p0 + g]) if k.shape[0] > 1 else (k, v)
                                for k, v in store],
                               log_probs[p0:p0 + g], loss[p0:p0 + g], trie, t, budget)
                    for p0 in range(0, P, g)])
            loss = trie.losses(t, loss, log_probs)  # (P, n_t)
            if t == trie.depth:
                break
            log_probs = torch.empty(P, n, V, device=log_probs.device)
            # Inputs at position L + t: the same for every prompt until the first attention.
            x_all = self.embed(sym) + self.positions.weight[Lp - 1 + t]  # (n, C)
            step = max(1, min(inputs // P, positions // (P * (Lp + t))))  # nodes per slice
            block_size = n // trie.sizes[1]  # descendants of a depth-1 node, if complete
            if trie.complete[t] and step >= block_size:
                step -= step % block_size  # slices of whole subtrees: ancestors in place
            for a in range(0, n, step):
                b = min(n, a + step)
                ids = slice(trie.offsets[t] + a, trie.offsets[t] + b)
                x = x_all[None, a:b]
                for block, (k_past, v_past), (k_store, v_store) in zip(
                        self.blocks, prefix.cache, store):
                    x, k_store[:, :, ids], v_store[:, :, ids] = _trie_block(
                        block, x, k_past, v_past,
                        trie.ancestors_of(t, a, b, k_store, v_store) if t > 1 else None)
                log_probs[:, a:b] = self._unembed(x)
        return loss


def model_class(family: str) -> type[nn.Module]:
    """The ``nn.Module`` class of a network family (`FAMILIES[family].module`)."""
    module, attribute = FAMILIES[family].module.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_model(config: PredictorConfig, vocab_size: int) -> nn.Module:
    """A freshly initialised model over `vocab_size` symbols on cpu, seeded by the config's
    architecture and seed."""
    generator = torch.Generator().manual_seed(
        seeding.stable_seed("init", config.architecture()) % 2**63)
    # PyTorch's own default initialisation draws from the global RNG before `_init_weights`
    # overwrites every parameter from `generator`; fork_rng puts the global state back.
    with torch.random.fork_rng(devices=[]):
        return model_class(config.family)(config, generator, vocab_size)


# --------------------------------------------------------------------------- predictor
class NeuralPredictor(predictors.Predictor):
    """A trained model as a `Predictor`: float32 inside, float64 numpy outside.

    `prompt_losses` walks the trie of the prompts and, after each, the trie of the task
    sequences, within `max_tokens` model inputs (and token positions held) at a time.
    """

    def __init__(self, model: nn.Module, config: PredictorConfig, *,
                 device: str = "auto", max_tokens: int = 1 << 17):
        self.config = config
        self.family = config.family
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.vocab_size = model.vocab_size
        self.max_tokens = int(max_tokens)
        # prompt_losses continues each prompt by walking the trie of the task sequences;
        # False: by `model.extend` on every distinct sequence (to measure against).
        self.sequence_trie = True
        # The most (prompt, sequence prefix) inputs of one step of that walk: small on a cpu,
        # whose caches its working set should fit (the model's `cpu_step_inputs`, fastest
        # measured); None: max_tokens.
        self.step_inputs = (getattr(model, "cpu_step_inputs", 1 << 11)
                            if self.device.type == "cpu" else None)
        # The most symbols (prompt plus task) it was trained to condition on.
        self.max_context = config.sequence_length

    def _tensor(self, seqs: np.ndarray, what: str = "sequences") -> torch.Tensor:
        """(B, T) symbols 0..V-1 as a long tensor on the device, or a ValueError naming the
        range (a symbol >= V would be read as BOS, or index past the embedding)."""
        seqs = np.asarray(seqs)
        if seqs.ndim != 2:
            raise ValueError(f"{what} must be a 2-d array (B, T), got shape {seqs.shape}")
        if seqs.size and (seqs.min() < 0 or seqs.max() >= self.vocab_size):
            raise ValueError(f"{what} must hold symbols 0..{self.vocab_size - 1} "
                             f"(the network's V = {self.vocab_size})")
        return torch.as_tensor(seqs.astype(np.int64), device=self.device)

    @torch.no_grad()
    def log_predictive(self, seqs: np.ndarray) -> np.ndarray:
        tokens = self._tensor(seqs)
        B, T = tokens.shape
        out = np.empty((B, T, self.vocab_size))
        chunk = max(1, self.max_tokens // max(1, T))
        for start in range(0, B, chunk):
            out[start:start + chunk] = self.model(tokens[start:start + chunk]).double().cpu()
        return out

    @torch.no_grad()
    def prompt_losses(self, prompts: list[str], seqs: np.ndarray) -> np.ndarray:
        """l(s, x) of every prompt on every sequence, (P, B) float64, by two tries.

        The prompt trie: the prompts and every prefix they need (an arbitrary list: its
        missing ancestors are internal nodes) are read depth first, each node once by
        `model.trie_step` from its parent's state, a level's nodes in chunks; the states
        held along the current path cover at most `max_tokens` token positions. The sequence
        trie (`SequenceTrie`, of the distinct rows of `seqs`): after each requested prompt,
        `model.trie_losses` walks it depth by depth, one step per distinct sequence prefix
        of length 1..T - 1 (all V^T sequences: (V^T - V) / (V - 1) steps, against T - 1 per
        sequence), in batches of prompts of one length with at most `max_tokens` inputs in
        all, each step at most `step_inputs` of them. With ``sequence_trie = False`` the
        prompt states are continued by `model.extend` on every distinct sequence instead
        (kept to measure against). Rows of `seqs` may repeat and come in any order; the
        result equals scoring each concatenation prompt + sequence (float32 rounding aside).
        """
        tokens = self._tensor(seqs)
        (B, T), P, V = tokens.shape, len(prompts), self.vocab_size
        out = np.zeros((P, B))
        if T == 0 or B == 0 or P == 0:
            return out
        lengths = np.fromiter(map(len, prompts), dtype=np.int64, count=P)
        padded = np.zeros((P, int(lengths.max())), dtype=np.uint8)
        for length, (idx, arr) in prompts_lib.group_by_length(prompts).items():
            padded[idx, :length] = arr
        self._tensor(padded, "prompts")  # symbols 0..V-1, or a ValueError naming them
        self.model.check_context(padded.shape[1] + T)
        tree = _build_trie(padded, lengths, V)
        depth = len(tree.parents) - 1
        seq_trie = SequenceTrie(tokens.cpu().numpy(), V, self.device)
        leaves = seq_trie.leaves
        step_inputs = min(self.max_tokens, self.step_inputs or self.max_tokens)
        if self.sequence_trie:
            batch = max(1, self.max_tokens // max(1, seq_trie.internal))
        else:
            pairs = max(1, self.max_tokens // T)
            batch = max(1, pairs // len(seq_trie.unique))
            b_chunk = max(1, pairs // batch)

        def continued(prefix: Prefix) -> np.ndarray:
            """(p, B) losses of the prompts of `prefix` on the rows of `seqs`."""
            if self.sequence_trie:
                losses = self.model.trie_losses(prefix, seq_trie, step_inputs,
                                                self.max_tokens)
            else:
                parts = []
                for b0 in range(0, len(seq_trie.unique), b_chunk):
                    part = seq_trie.unique[b0:b0 + b_chunk]
                    logp = self.model.extend(prefix, part)  # (p, b, T, V)
                    target = part[None, :, :, None].expand(*logp.shape[:-1], 1)
                    parts.append(-logp.gather(-1, target)[..., 0].double().sum(-1))
                losses = torch.cat(parts, dim=1)
            return losses[:, leaves].cpu().numpy()

        # Per level: the rows of `prompts` of that length sorted by node, and their nodes.
        requested = []
        for level in range(depth + 1):
            rows = np.flatnonzero(lengths == level)
            rows = rows[np.argsort(tree.nodes[rows], kind="stable")]
            requested.append((rows, tree.nodes[rows], np.unique(tree.nodes[rows])))
        progress = logs.Progress(logger, P, f"prompts scored on {B} sequences:")
        done = 0

        def score(level: int, lo: int, state: Prefix) -> None:
            """Score the requested prompts among nodes lo.. of `level` (states `state`)."""
            nonlocal done
            rows, nodes, wanted = requested[level]
            a, b = np.searchsorted(wanted, [lo, lo + len(state.log_probs)])
            for a0 in range(a, b, batch):
                chosen = wanted[a0:min(a0 + batch, b)]
                index = torch.as_tensor(chosen - lo, device=self.device)
                losses = continued(self.model.trie_select(state, index))  # (p, B)
                r0, r1 = np.searchsorted(nodes, [chosen[0], chosen[-1] + 1])
                out[rows[r0:r1]] = losses[np.searchsorted(chosen, nodes[r0:r1])]
                done += r1 - r0
                progress.update(done)

        # Nodes per chunk of a level: their states cover max_tokens / (depth + 1) positions
        # (a multiple of the scoring batch where that fits).
        caps = []
        for level in range(depth + 1):
            cap = max(1, self.max_tokens
                      // (self.model.cache_positions(level + 1) * (depth + 1)))
            caps.append(cap // batch * batch if cap >= batch else cap)

        def visit(level: int, lo: int, state: Prefix) -> None:
            """Score nodes lo.. of `level`, then their subtrees, a chunk of children at a time."""
            score(level, lo, state)
            if level == depth:
                return
            starts = tree.starts[level + 1]
            first, last = starts[lo], starts[lo + len(state.log_probs)]
            for a in range(first, last, caps[level + 1]):
                b = min(a + caps[level + 1], last)
                parents = torch.as_tensor(tree.parents[level + 1][a:b] - lo, device=self.device)
                symbols = torch.as_tensor(tree.symbols[level + 1][a:b], device=self.device)
                visit(level + 1, a, self.model.trie_step(state, parents, symbols))

        visit(0, 0, self.model.trie_root(self.device))
        return out

    def prompt_gradient(self, prompt: str, seqs: np.ndarray,
                        weights: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """Empirical loss of `prompt` on `seqs` and its gradient in the prompt's one-hot
        encoding (GCG, Zou et al. 2023): the `gradient` search strategy ranks candidate token
        swaps by it, each call counting as one evaluation of the budget.

        Parameters
        ----------
        prompt : str
            L symbols.
        seqs : (N, T) uint8
            Task sequences.
        weights : (N,) array, optional
            Loss weights; the default is the mean, 1 / N each.

        Returns
        -------
        loss : float
            ``sum_i weights_i l(prompt, x_i)``, as `prompt_losses` computes l.
        grad : (L, V) float64
            d loss / d onehot[i, v], where the prompt's input embeddings are onehot @ the
            symbols' embedding rows (BOS and the task sequences are embedded as usual):
            ``grad[i, v] - grad[i, prompt[i]]`` is the first-order change of the loss when
            symbol i is swapped to v.

        Notes
        -----
        Batched over sequences in chunks of at most `max_tokens` inputs, the prompt re-read
        for each; the gradient is taken by `torch.autograd.grad` (parameters' ``.grad`` are
        untouched) and the model stays in eval mode.
        """
        tokens = self._tensor(seqs)
        symbols = self._tensor(prompts_lib.to_array(prompt)[None], "prompts")[0]
        (B, T), L = tokens.shape, len(prompt)
        if weights is None:
            weights = np.full(B, 1.0 / max(B, 1))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (B,):
            raise ValueError(f"weights must have shape ({B},), got {weights.shape}")
        weights = torch.as_tensor(weights, device=self.device)
        dtype = self.model.embed.weight.dtype
        onehot = F.one_hot(symbols, self.vocab_size).to(dtype).requires_grad_()
        loss, grad = 0.0, torch.zeros(L, self.vocab_size, dtype=torch.float64, device=self.device)
        chunk = max(1, self.max_tokens // max(1, L + T))
        # cuDNN's LSTM backward runs in training mode only; the native kernels run in eval.
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False), \
                _deterministic_algorithms():
            for b0 in range(0, B if T else 0, chunk):
                part = self._relaxed_prompt_losses(onehot, tokens[b0:b0 + chunk])
                part = (part * weights[b0:b0 + chunk]).sum()
                if L:
                    grad += torch.autograd.grad(part, onehot)[0]
                loss += part.item()
        return loss, grad.cpu().numpy()

    def _relaxed_prompt_losses(self, onehot: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        """l(prompt, x) of each (B, T) sequence after a relaxed prompt, (B,) float64: `onehot`
        (L, V) weighs the V symbols' embeddings at each prompt position (a one-hot row is
        that symbol; `prompt_gradient` differentiates in it)."""
        table = self.model.embed.weight  # (V + 1, E): symbols, then BOS
        inputs = torch.cat([table[self.vocab_size:], onehot @ table[:self.vocab_size]])
        logp = self.model.extend(self.model.prefix_embedded(inputs[None]), seqs)[0]  # (B, T, V)
        return -logp.gather(-1, seqs[..., None])[..., 0].double().sum(-1)


def losses_by_position(predictor: predictors.Predictor, source: Source,
                       seqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean log loss of `predictor` and of the exact Bayes predictor of `source` at each
    position of `seqs` (nats): two ``(T,)`` arrays."""
    seqs = np.asarray(seqs, dtype=np.uint8)
    bayes = predictors.BayesPredictor(source)
    return (symbol_losses(predictor.log_predictive(seqs), seqs).mean(0),
            symbol_losses(bayes.log_predictive(seqs), seqs).mean(0))


def regret_by_position(predictor: predictors.Predictor, source: Source,
                       seqs: np.ndarray) -> np.ndarray:
    """Mean log loss of `predictor` minus that of the exact Bayes predictor of `source`, at
    each position of `seqs` (nats): ``(T,)``."""
    neural, bayes = losses_by_position(predictor, source, seqs)
    return neural - bayes


# --------------------------------------------------------------------------- training
CURVE_COLUMNS = ("step", "loss", "bayes_loss", "regret")


def learning_rate_at(config: PredictorConfig, step: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant or a cosine decay to 0 at the end."""
    lr = config.learning_rate
    if step < config.warmup_steps:
        return lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        done = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return lr * 0.5 * (1.0 + math.cos(math.pi * done))
    return lr


def training_batch(config: PredictorConfig, source: Source, step: int) -> np.ndarray:
    """The fresh ``(batch_size, sequence_length)`` sequences of one training step.

    Each step has its own stream, so a resumed run draws what an uninterrupted one would.
    """
    rng = seeding.numpy_generator("train_data", source.to_dict(), config.seed_identity(), step)
    return source.sample(config.batch_size, config.sequence_length, rng)


@contextlib.contextmanager
def _deterministic_algorithms():
    """Deterministic kernels while training (warn only where a device has none), restoring
    the caller's setting afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _reporter(progress) -> Callable[[str], None]:
    if progress is None:
        return logger.info
    if isinstance(progress, logging.Logger):
        return progress.info
    if callable(progress):
        return progress
    raise TypeError("progress must be a logging.Logger or a callable, "
                    f"not {type(progress).__name__}")


def train(
    config: PredictorConfig,
    pretraining_source: Source,
    *,
    progress: logging.Logger | Callable[[str], None] | None = None,
    progress_every: int | None = None,
    resume_from: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    device: str = "auto",
) -> tuple[nn.Module, pd.DataFrame]:
    """Train a predictor on fresh sequences of `pretraining_source` by minimising log loss.

    Parameters
    ----------
    config : PredictorConfig
        Architecture, optimisation and seed.
    pretraining_source : Source
        Each step draws `batch_size` new sequences of `sequence_length` symbols from it.
    progress : logging.Logger or callable(str), optional
        Receives a line every `progress_every` steps (default: about 20 lines per run) with
        the step, the mean loss and regret since the last line, steps/s and the time left.
        Defaults to this module's logger.
    resume_from : path, optional
        A checkpoint of the same config and source (`save_checkpoint`): training continues
        from its step and ends exactly where an uninterrupted run would.
    checkpoint_path : path, optional
        Where to save a checkpoint every `checkpoint_every` steps and after the last step.
    device : str
        Where to train: 'auto' (CUDA when torch sees a GPU), 'cpu' or 'cuda'.

    Returns
    -------
    model : nn.Module
        The trained model, in eval mode, on the training device.
    curve : pandas.DataFrame
        One row per step: step (int64), loss (mean per-symbol log loss of the batch, nats),
        bayes_loss (the exact Bayes predictor's on the same batch) and regret (their
        difference), all float64.

    Notes
    -----
    The objective is the mean over the batch of each sequence's summed log loss. On cpu, a
    fixed config gives bit-identical weights and curves (the seeds come from the config and
    the source; deterministic kernels are on while training).
    """
    report = _reporter(progress)
    progress_every = progress_every or max(1, config.steps // 20)
    validation.check_scalar(progress_every, "progress_every", numbers.Integral, min_val=1)
    validation.check_scalar(checkpoint_every, "checkpoint_every", numbers.Integral, min_val=1)
    device = resolve_device(device)
    model = build_model(config, pretraining_source.vocab_size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    bayes = predictors.BayesPredictor(pretraining_source)
    curve = {name: [] for name in CURVE_COLUMNS}
    start = 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, map_location=device)
        made_for = (PredictorConfig.from_dict(checkpoint["config"]).seed_identity(),
                    checkpoint["source"])
        if made_for != (config.seed_identity(), pretraining_source.to_dict()):
            raise ValueError(f"checkpoint {os.fspath(resume_from)!r} was made for another config "
                             f"or source: {made_for}")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start = checkpoint["step"]
        curve = {name: list(checkpoint["curve"][name]) for name in CURVE_COLUMNS}
        report(f"resumed from {os.fspath(resume_from)} at step {start}")

    def save(step):
        save_checkpoint(checkpoint_path, model=model, config=config, source=pretraining_source,
                        step=step, curve=curve, optimizer=optimizer)

    T = config.sequence_length
    model.train()
    tic, tic_step = time.perf_counter(), start
    with _deterministic_algorithms():
        for step in range(start, config.steps):
            seqs = training_batch(config, pretraining_source, step)
            bayes_losses = symbol_losses(bayes.log_predictive(seqs), seqs)  # (B, T)
            tokens = torch.as_tensor(seqs.astype(np.int64), device=device)
            logp = model(tokens).gather(-1, tokens[..., None])[..., 0]  # (B, T)
            loss = -logp.sum(dim=1).mean()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(config, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()

            per_symbol = loss.item() / T
            bayes_loss = float(bayes_losses.sum(axis=1).mean()) / T
            for name, value in zip(CURVE_COLUMNS, (step, per_symbol, bayes_loss,
                                                   per_symbol - bayes_loss)):
                curve[name].append(value)
            done = step + 1
            if checkpoint_path is not None and done % checkpoint_every == 0 and done < config.steps:
                save(done)
            if done % progress_every == 0 or done == config.steps:
                rate = (done - tic_step) / max(time.perf_counter() - tic, 1e-9)
                recent = slice(-min(progress_every, len(curve["loss"])), None)
                report(f"step {done}/{config.steps}  loss {np.mean(curve['loss'][recent]):.4f}"
                       f"  regret {np.mean(curve['regret'][recent]):+.4f} nats/symbol"
                       f"  {rate:.1f} steps/s  {(config.steps - done) / rate:.0f} s left")
    if checkpoint_path is not None:
        save(config.steps)
    model.eval()
    return model, curve_frame(curve)


def curve_frame(curve: dict) -> pd.DataFrame:
    """The training curve as a DataFrame with typed columns (see `train`)."""
    return pd.DataFrame({
        "step": np.asarray(curve["step"], dtype=np.int64),
        **{name: np.asarray(curve[name], dtype=np.float64) for name in CURVE_COLUMNS[1:]},
    })


# --------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, *, model: nn.Module, config: PredictorConfig,
                    source: Source, step: int, curve: dict | pd.DataFrame,
                    optimizer: torch.optim.Optimizer | None = None) -> None:
    """Write a checkpoint atomically (a temporary file in the same folder, then os.replace).

    It holds plain values and tensors only: the config and source as mappings, the model
    (and optimizer) state, the number of steps done and the curve so far (column lists).
    """
    if isinstance(curve, pd.DataFrame):
        curve = {name: curve[name].tolist() for name in CURVE_COLUMNS}
    checkpoint = {
        "config": config.to_dict(),
        "source": source.to_dict(),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "curve": {name: list(curve[name]) for name in CURVE_COLUMNS},
    }
    files.atomic_write(path, lambda tmp: torch.save(checkpoint, tmp), suffix=".pt.tmp")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint mapping written by `save_checkpoint` (tensors only, no pickled code)."""
    return torch.load(os.fspath(path), map_location=map_location, weights_only=True)


def load_predictor(path: str | os.PathLike, *, device: str = "auto",
                   max_tokens: int = 1 << 17) -> NeuralPredictor:
    """The trained predictor of a checkpoint, on `device` (`training.device`)."""
    checkpoint = load_checkpoint(path)
    config = PredictorConfig.from_dict(checkpoint["config"])
    model = build_model(config, build_source(checkpoint["source"]).vocab_size)
    model.load_state_dict(checkpoint["model"])
    return NeuralPredictor(model, config, device=device, max_tokens=max_tokens)


def load_source(path: str | os.PathLike) -> Source:
    """The pretraining source a checkpoint was trained on."""
    return build_source(load_checkpoint(path)["source"])


def checkpoint_matches(path: str | os.PathLike, config: PredictorConfig, source: Source) -> bool:
    """Whether `path` is a readable checkpoint of this config and source (resumable)."""
    if not os.path.exists(path):
        return False
    try:
        checkpoint = load_checkpoint(path)
        made_for = PredictorConfig.from_dict(checkpoint["config"]).seed_identity()
    except Exception:  # a truncated or foreign file is not resumable  # noqa: BLE001
        return False
    return made_for == config.seed_identity() and checkpoint["source"] == source.to_dict()
