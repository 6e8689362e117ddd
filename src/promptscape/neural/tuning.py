"""Tuning a trained network towards a task from the task's data set D_N alone: continuous
prompts (soft, simplex, prefix) and weight tuning (embedding, head, LoRA, full), one entry per
tuner in the torch-free registry `promptscape.neural.tuners.TUNERS`, built here.

A tuner wraps a frozen base network in a `Tuned` module of S independently tuned copies
whose ``forward(seqs)`` returns log-probabilities ``(S, B, T, V)``: of every (B, T) sequence
under every copy (shared sequences: scoring), or of each copy's own (S, B, T) sequences
(paired: training, each seed on its own D_N, padded to the longest with weight 0). S seeds'
prompts train side by side, so batched and one-at-a-time runs take the same steps (Adam is
elementwise and the seeds' parameters never meet) at the cost of each seed's own sequences.
Weight tuners tune one seed at a time (S = 1).

Alignment is the network's (`promptscape.neural.base`): BOS, then the K prompt positions
(soft and simplex prompts), then the task; a `prefix` is read before BOS. A prompt-space
tuner trains on one walk of its sequences' prefix trie (`TrieObjective`: a step per distinct
prefix, for every copy, differentiable; 4 to 5 times less CPU than the forward over every
position for a Transformer's soft prompt over 1,024 binary sequences of T = 10); weight tuners
and tries too large for it run the plain forward (`prefix_embedded` and `extend`). Scoring
uses the forward without gradients, and is compared with the trie scoring of hard prompts in
the tests.

The loss is the empirical log loss per task sequence on D_N, ``sum_i c_i l(x_i) / N`` over
the distinct sequences x_i with counts c_i: the quantity `promptscape.search` ranks hard
prompts by (L_N), so `train_loss` and L_N(s_hat) compare directly.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from promptscape.neural import base as base_lib
from promptscape.neural import tuners
from promptscape.neural.base import _with_bos

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- tuned modules
class Tuned(nn.Module):
    """A frozen base network and S copies of trainable parameters; ``forward`` -> (S, B, T, V)."""

    # The axis of every trainable parameter along which its S copies lie.
    copy_dim = 0

    def __init__(self, base: nn.Module):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.vocab_size = base.vocab_size

    @property
    def family(self) -> str:
        return self.base.config.family

    def trainable_parameters(self) -> int:
        """Trainable parameters of one seed's copy."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad) // self.seeds

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(B, T) shared or (S, B, T) paired sequences -> (S, B, T, V) log-probs."""
        raise NotImplementedError

    def start(self):
        """The network's state (a `base.Prefix` of S rows) where every copy's task sequences
        begin, with gradients, where a walk of a sequence trie can go on from it
        (`trie_losses`); None: only ``forward``."""
        return None

    def trie_losses(self, trie) -> torch.Tensor | None:
        """(S, n_T) float64 log loss of every distinct sequence of `trie`
        (`promptscape.neural.trie.SequenceTrie`, leaf order) under each copy, by one walk of
        their shared prefixes, differentiable (`differentiable_trie_losses` of the network
        family); None where the tuner has no `start` to walk from (weight tuners)."""
        prefix = self.start()
        if prefix is None:
            return None
        return self.base.differentiable_trie_losses(prefix, trie)


def _plain(base: nn.Module, seqs: torch.Tensor, seeds: int, call=None) -> torch.Tensor:
    """The network's plain forward on shared (B, T) or paired (S, B, T) sequences, as
    (S, B, T, V); `call(tokens)` replaces ``base(tokens)`` (tuned weights)."""
    call = call or base
    if seqs.ndim == 2:
        logp = call(seqs)
        return logp[None].expand(seeds, *logp.shape)
    S, B, T = seqs.shape
    return call(seqs.reshape(S * B, T)).view(S, B, T, -1)


def _extend_paired(base: nn.Module, prefix, seqs: torch.Tensor) -> torch.Tensor:
    """Each prompt s of `prefix` continued by its own (S, B, T) sequences: (S, B, T, V)."""
    S, B, T = seqs.shape
    V = base.vocab_size
    first = prefix.log_probs[:, None, None, :].expand(S, B, 1, V)
    if T == 1:
        return first
    if base.config.family == "lstm":
        h, c = prefix.cache  # (layers, S, H)
        state = (h.repeat_interleave(B, dim=1), c.repeat_interleave(B, dim=1))
        out, _ = base.lstm(base.embed(seqs[:, :, :-1].reshape(S * B, T - 1)), state)
        rest = F.log_softmax(base.unembed(out), dim=-1).view(S, B, T - 1, V)
    else:
        x = base._embed(seqs[:, :, :-1], prefix.length)  # (S, B, T - 1, C)
        for block, past in zip(base.blocks, prefix.cache):
            x, _ = block(x, past)
        rest = base._unembed(x)
    return torch.cat([first, rest], dim=2)


class Unchanged(Tuned):
    """The network as it is (`none`): nothing to train; the same for each of `seeds`."""

    def __init__(self, base, seeds: int = 1):
        super().__init__(base)
        self.seeds = int(seeds)

    def trainable_parameters(self) -> int:
        return 0

    def forward(self, seqs):
        return _plain(self.base, seqs, self.seeds)


class PromptEmbeddings(Tuned):
    """K input vectors after BOS, one set per seed; subclasses say how they are made."""

    def inputs(self) -> torch.Tensor:  # (S, K, E)
        raise NotImplementedError

    def start(self):
        soft = self.inputs()
        bos = self.base.embed.weight[self.vocab_size].expand(soft.shape[0], 1, soft.shape[-1])
        return self.base.prefix_embedded(torch.cat([bos, soft], dim=1))

    def forward(self, seqs):
        prefix = self.start()
        if seqs.ndim == 3:
            return _extend_paired(self.base, prefix, seqs)
        return self.base.extend(prefix, seqs)


# A start prompt's padding: a position of a hard prompt shorter than K (the hard optimum
# padded on the left to K positions, `init: optimum`) holds the mean of the V symbols'
# embeddings (a simplex prompt: logits 0, the same uniform mixture).
PAD = -1


def start_embeddings(base: nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """(S, K, E) input embeddings of (S, K) start prompts: each symbol's embedding, `PAD`
    positions the mean embedding of the V symbols."""
    prompts = prompts.long()
    table = base.embed.weight[:base.vocab_size].detach()
    out = table[prompts.clamp(min=0)]
    pad = (prompts == PAD)[..., None]
    return torch.where(pad, table.mean(0).expand_as(out), out).clone()


def _start_prefix(base: nn.Module, prompts: torch.Tensor):
    """The network's state after BOS and each (S, K) start prompt (`start_embeddings`)."""
    soft = start_embeddings(base, prompts)
    bos = base.embed.weight[base.vocab_size].detach().expand(soft.shape[0], 1, soft.shape[-1])
    return base.prefix_embedded(torch.cat([bos, soft], dim=1))


class SoftPrompt(PromptEmbeddings):
    """`soft_prompt`: K free vectors in the embedding space, started at a hard prompt's
    embeddings (`start_embeddings`)."""

    def __init__(self, base, prompts: torch.Tensor):
        super().__init__(base)
        self.seeds = prompts.shape[0]
        self.soft = nn.Parameter(start_embeddings(base, prompts))

    def inputs(self):
        return self.soft


class SimplexPrompt(PromptEmbeddings):
    """`simplex_prompt`: at each of K positions a softmax over the V symbols mixing their
    embeddings (a relaxed hard prompt), started with logit `init_logit` on a hard prompt's
    symbol and 0 elsewhere."""

    def __init__(self, base, prompts: torch.Tensor, init_logit: float):
        super().__init__(base)
        self.seeds = prompts.shape[0]
        prompts = prompts.long()
        self.logits = nn.Parameter(float(init_logit) * F.one_hot(
            prompts.clamp(min=0), self.vocab_size).float() * (prompts != PAD)[..., None])

    def inputs(self):
        return self.logits.softmax(-1) @ self.base.embed.weight[:self.vocab_size]

    def projected(self) -> torch.Tensor:
        """(S, K) the hard prompt of per-position argmax symbols (ties: the lowest symbol)."""
        return self.logits.argmax(-1)


class LSTMPrefix(Tuned):
    """`prefix` of an LSTM: a learned initial state (h0, c0) read before BOS, started at the
    state after BOS and a hard prompt (its `PAD` positions left out: a state holds a prompt
    of any length). The task is read after a second BOS, so at its start the prefix is not
    the hard prompt: it is the prompt followed by BOS."""

    copy_dim = 1  # h0, c0: (layers, S, H)

    def __init__(self, base, prompts: torch.Tensor):
        super().__init__(base)
        self.seeds = prompts.shape[0]
        with torch.no_grad():
            states = [base.prefix(row[row != PAD][None].long()).cache for row in prompts]
            h = torch.cat([state[0] for state in states], dim=1)  # (layers, S, H)
            c = torch.cat([state[1] for state in states], dim=1)
        self.h0, self.c0 = nn.Parameter(h.clone()), nn.Parameter(c.clone())

    def start(self):
        bos = torch.full((self.seeds, 1), self.vocab_size, dtype=torch.long,
                         device=self.h0.device)
        out, state = self.base.lstm(self.base.embed(bos), (self.h0, self.c0))
        return base_lib.Prefix(state, F.log_softmax(self.base.unembed(out[:, -1]), dim=-1), 1)

    def forward(self, seqs):
        (B, T), S = seqs.shape[-2:], self.seeds
        x = self.base.embed(_with_bos(seqs, self.vocab_size)[..., :-1])  # ([S,] B, T, E)
        x = x.expand(S, B, T, x.shape[-1]).reshape(S * B, T, -1)
        state = (self.h0.repeat_interleave(B, dim=1), self.c0.repeat_interleave(B, dim=1))
        out, _ = self.base.lstm(x, state)
        return F.log_softmax(self.base.unembed(out), dim=-1).view(S, B, T, self.vocab_size)


class TransformerPrefix(Tuned):
    """`prefix` of a Transformer: K learned key/value pairs per layer that BOS and every task
    position attend to (Li & Liang, 2021); positions as in the unprompted network. Started at
    the keys and values of a hard prompt's K symbols read after BOS (`start_embeddings`);
    the task's own BOS follows them, so at its start the prefix is not the hard prompt."""

    def __init__(self, base, prompts: torch.Tensor):
        super().__init__(base)
        self.seeds = prompts.shape[0]
        with torch.no_grad():
            cache = _start_prefix(base, prompts).cache  # per layer (S, nh, K + 1, hs)
        self.keys = nn.ParameterList(nn.Parameter(k[:, :, 1:].clone()) for k, _ in cache)
        self.values = nn.ParameterList(nn.Parameter(v[:, :, 1:].clone()) for _, v in cache)

    def start(self):
        """The state after the learned keys and values and BOS: per layer, the K learned
        pairs and BOS's own, which BOS computes attending to them (as in ``forward``)."""
        base, S = self.base, self.seeds
        bos = torch.full((1, 1, 1), self.vocab_size, dtype=torch.long, device=self.keys[0].device)
        x = base._embed(bos, 0)  # (1, 1, 1, C)
        cache = []
        for block, k, v in zip(base.blocks, self.keys, self.values):
            C = x.shape[-1]
            _, k_bos, v_bos = (block.attn._split_heads(u)[:, 0] for u in  # (Q, nh, 1, hs)
                               block.attn.qkv(block.ln_attn(x)).split(C, dim=-1))
            cache.append((torch.cat([k, k_bos.expand(S, *k_bos.shape[1:])], dim=2),
                          torch.cat([v, v_bos.expand(S, *v_bos.shape[1:])], dim=2)))
            x, _ = block(x, (k, v))  # (S, 1, 1, C)
        return base_lib.Prefix(cache, base._unembed(x[:, 0, -1]), 1)

    def forward(self, seqs):
        tokens = _with_bos(seqs if seqs.ndim == 3 else seqs[None], self.vocab_size)
        x = self.base._embed(tokens[..., :-1], 0)  # (S or 1, B, T, C)
        for block, k, v in zip(self.base.blocks, self.keys, self.values):
            x, _ = block(x, (k, v))  # (S, B, T, C)
        return self.base._unembed(x)


class Weights(Tuned):
    """Weight tuning of one seed: named parameters of the base replaced by trainable values
    (`embedding`, `head`, `full`), or by the base plus a low-rank update (`lora`)."""

    seeds = 1

    def __init__(self, base, names: Sequence[str]):
        super().__init__(base)
        self.names = list(names)
        own = dict(base.named_parameters())
        self.tuned = nn.ParameterList(nn.Parameter(own[n].detach().clone()) for n in self.names)

    def replaced(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.tuned))

    def forward(self, seqs):
        replaced = self.replaced()
        return _plain(self.base, seqs, 1, lambda x: functional_call(self.base, replaced, (x,)))


class LoRA(Weights):
    """`lora`: W + B A with A (r, in) drawn from N(0, 1/in) and B (out, r) zero at the start,
    on the attention and MLP projections of a Transformer or the input and recurrent weights
    of an LSTM (Hu et al., 2021)."""

    def __init__(self, base, names: Sequence[str], rank: int, generator: torch.Generator):
        Tuned.__init__(self, base)
        self.names = list(names)
        own = dict(base.named_parameters())
        self.down = nn.ParameterList(
            nn.Parameter(torch.randn(rank, own[n].shape[1], generator=generator)
                         / math.sqrt(own[n].shape[1])) for n in self.names)
        self.up = nn.ParameterList(nn.Parameter(torch.zeros(own[n].shape[0], rank))
                                   for n in self.names)
        self.frozen = [own[n] for n in self.names]

    def replaced(self):
        return {n: w + b @ a for n, w, a, b in zip(self.names, self.frozen, self.down, self.up)}


def lora_targets(base: nn.Module) -> list[str]:
    """The weight matrices a LoRA adapts: attention and MLP projections, or the LSTM's input
    and recurrent weights."""
    if base.config.family == "lstm":
        return [n for n, _ in base.named_parameters() if n.startswith("lstm.weight_")]
    return [n for n, p in base.named_parameters()
            if n.startswith("blocks.") and p.ndim == 2 and (".attn." in n or ".mlp." in n)]


def lora_width(base: nn.Module) -> int:
    """The largest rank a LoRA of this network can have: the narrowest adapted matrix."""
    own = dict(base.named_parameters())
    return min(min(own[n].shape) for n in lora_targets(base))


# --------------------------------------------------------------------------- builders
# The `build` of each entry of `promptscape.neural.tuners.TUNERS`:
# (base, prompts (S, K) long, settings, generator) -> Tuned.
def build_none(base, prompts, settings, generator):
    return Unchanged(base, prompts.shape[0])


def build_soft_prompt(base, prompts, settings, generator):
    return SoftPrompt(base, prompts)


def build_simplex_prompt(base, prompts, settings, generator):
    return SimplexPrompt(base, prompts, settings["init_logit"])


def build_prefix(base, prompts, settings, generator):
    return (LSTMPrefix if base.config.family == "lstm" else TransformerPrefix)(base, prompts)


def _weights(base, select):
    return Weights(base, [n for n, _ in base.named_parameters() if select(n)])


def build_embedding(base, prompts, settings, generator):
    return _weights(base, lambda n: n == "embed.weight")


def build_head(base, prompts, settings, generator):
    return _weights(base, lambda n: n.startswith("unembed."))


def build_lora(base, prompts, settings, generator):
    return LoRA(base, lora_targets(base), int(settings["lora_rank"]), generator)


def build_full(base, prompts, settings, generator):
    return _weights(base, lambda n: True)


def build(name: str, base: nn.Module, prompts: torch.Tensor, settings: dict,
          generator: torch.Generator) -> Tuned:
    """The tuner `name` of the registry on `base`, started from the (S, K) hard `prompts`
    (prompt-space tuners) with its complete `settings`."""
    module, attribute = tuners.TUNERS[name].build.split(":")
    return getattr(importlib.import_module(module), attribute)(base, prompts, settings, generator)


# --------------------------------------------------------------------------- training
def sequence_losses(tuned: Tuned, seqs: torch.Tensor, max_tokens: int = 1 << 17) -> torch.Tensor:
    """(S, B) log loss of each sequence under each seed's tuned network: of every shared
    (B, T) sequence, or of each seed's own (S, B, T) sequences; in chunks of at most
    `max_tokens` (sequence, position) inputs per seed."""
    B, T = seqs.shape[-2:]
    step = max(1, max_tokens // max(1, T))
    out = []
    for a in range(0, B, step):
        chunk = seqs[..., a:a + step, :].long()
        logp = tuned(chunk)  # (S, b, T, V)
        target = chunk.expand(logp.shape[:-1])
        out.append(-logp.gather(-1, target[..., None])[..., 0].sum(-1))
    return torch.cat(out, dim=1) if out else torch.zeros(tuned.seeds, 0)


# The most (copy, trie node) pairs a differentiable trie walk takes in one pass: its graph
# holds a few hidden-size vectors per pair and layer (2^20 pairs: a few GB at the default
# widths); beyond it the training loss is the forward over every position.
TRIE_NODE_BUDGET = 1 << 20


def leaf_trie(seqs, weights, vocab_size: int, device):
    """The prefix trie of the (U, T) sequences `seqs` and their (S or 1, U) `weights` summed
    onto its leaves: ``(SequenceTrie, (S or 1, n_T) float64)``."""
    from promptscape.neural.trie import SequenceTrie

    trie = SequenceTrie(np.asarray(seqs), vocab_size, device)
    weights = torch.as_tensor(np.asarray(weights, dtype=np.float64), device=device)
    leaf_weights = torch.zeros(weights.shape[0], len(trie.unique), dtype=torch.float64,
                               device=device).index_add_(1, trie.leaves, weights)
    return trie, leaf_weights


def walk_fits(tuned: Tuned, trie) -> bool:
    """Whether a differentiable walk of `trie` for `tuned`'s copies is within
    `TRIE_NODE_BUDGET`."""
    return tuned.seeds * (trie.internal + 1) <= TRIE_NODE_BUDGET


class TrieObjective:
    """``sum_u weights[s, u] l_s(seqs[u])`` for each copy s by one differentiable walk of the
    distinct sequences' prefix trie (`Tuned.trie_losses`): `losses` -> (S,) float64 with
    gradients. `build` gives None where the tuner cannot walk a trie (weight tuners: no
    `start`) or the walk would exceed `TRIE_NODE_BUDGET`."""

    def __init__(self, trie, leaf_weights: torch.Tensor):
        self.trie, self.leaf_weights = trie, leaf_weights  # (S or 1, n_T) float64

    @classmethod
    def build(cls, tuned: Tuned, seqs, weights) -> "TrieObjective | None":
        """`seqs` (U, T) and `weights` (S or 1, U); None where no walk applies."""
        with torch.no_grad():
            if tuned.start() is None:
                return None
        trie, leaf_weights = leaf_trie(seqs, weights, tuned.vocab_size,
                                       next(tuned.parameters()).device)
        return cls(trie, leaf_weights) if walk_fits(tuned, trie) else None

    def losses(self, tuned: Tuned) -> torch.Tensor:
        return (tuned.trie_losses(self.trie) * self.leaf_weights).sum(1)


def paired(seqs: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's own sequences: (S, U_max, T) and their (S, U_max) weights, from the
    distinct sequences (U, T) of all seeds and each seed's (S, U) weights; a seed with fewer
    than U_max sequences is padded with its first, at weight 0."""
    own = [np.flatnonzero(w > 0) for w in weights]
    width = max((len(o) for o in own), default=0)
    index = np.stack([np.pad(o, (0, width - len(o)), mode="edge") if len(o) else
                      np.zeros(width, dtype=np.int64) for o in own])
    mask = np.arange(width)[None, :] < np.array([len(o) for o in own])[:, None]
    return seqs[index], np.where(mask, np.take_along_axis(weights, index, axis=1), 0.0)


@dataclasses.dataclass
class Record:
    """After `steps` optimiser steps: each seed's empirical loss on its D_N (``train_loss``,
    (S,)) and whatever `evaluate` returned."""

    steps: int
    train_loss: np.ndarray
    evaluation: object


def tune(tuned: Tuned, seqs: np.ndarray, weights: np.ndarray, *, steps: int,
         learning_rate: float, record_at: Sequence[int],
         evaluate: Callable[[Tuned], object] | None = None,
         max_tokens: int = 1 << 17) -> list[Record]:
    """Adam on ``sum_s sum_u weights[s, u] l_s(seqs[u])`` for `steps` steps, recording each
    seed's training loss (and `evaluate(tuned)`, without gradients) after every step count in
    `record_at` (0: before any step).

    seqs (U, T): the distinct sequences of the seeds' data sets; weights (S, U): count / N of
    each in each seed's D_N (0 where absent), rows summing to 1.
    """
    budgets = sorted(set(int(b) for b in record_at))
    if budgets and (budgets[0] < 0 or budgets[-1] > steps):
        raise ValueError(f"record_at {budgets} must lie in 0..steps ({steps})")
    device = next(tuned.parameters()).device
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (tuned.seeds, len(seqs)):
        raise ValueError(f"weights of shape {weights.shape}, not ({tuned.seeds}, {len(seqs)})")
    own, own_weights = paired(np.asarray(seqs), weights)  # each seed on its own D_N
    x = torch.as_tensor(own, device=device).long()
    w = torch.as_tensor(own_weights, device=device).float()
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    # Prompt-space tuners: every seed's loss from one walk of all seeds' distinct sequences.
    walk = TrieObjective.build(tuned, seqs, weights) if trainable else None
    optimizer = torch.optim.Adam(trainable, lr=learning_rate) if trainable else None
    records = []

    def record(done: int):
        with torch.no_grad():
            loss = (sequence_losses(tuned, x, max_tokens).double() * w.double()).sum(1)
            evaluation = evaluate(tuned) if evaluate is not None else None
        records.append(Record(done, loss.cpu().numpy(), evaluation))

    for done in range(steps + 1):
        if done in budgets:
            record(done)
        if done == steps:
            break
        if optimizer is None:
            continue
        optimizer.zero_grad(set_to_none=True)
        if walk is not None:
            loss = walk.losses(tuned).sum()
        else:
            loss = (sequence_losses(tuned, x, max_tokens) * w).sum()
        loss.backward()
        optimizer.step()
    return records
