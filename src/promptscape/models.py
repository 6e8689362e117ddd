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
The search scores a prompt ``s`` by running ``BOS + s`` once (`prefix`), then every task
sequence after it (`extend`); the prompt's own symbols are never scored.

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
import tempfile
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from promptscape import logs, predictors, seeding, tables, validation
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
        if start + T > self.config.max_context_length:
            raise ValueError(
                f"transformer context of {start + T} symbols, must be <= "
                f"max_context_length ({self.config.max_context_length}).")
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

    `prompt_losses` reads each prompt once (`model.prefix`) and continues it with every task
    sequence (`model.extend`), batched over prompts and sequences in chunks of at most
    `max_tokens` model inputs.
    """

    def __init__(self, model: nn.Module, config: PredictorConfig, *,
                 device: str = "auto", max_tokens: int = 1 << 17):
        self.config = config
        self.family = config.family
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.vocab_size = model.vocab_size
        self.max_tokens = int(max_tokens)
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
        tokens = self._tensor(seqs)
        B, T = tokens.shape
        out = np.zeros((len(prompts), B))
        if T == 0 or B == 0:
            return out
        pairs = max(1, self.max_tokens // T)  # (prompt, sequence) pairs per chunk
        progress = logs.Progress(logger, len(prompts), f"prompts scored on {B} sequences:")
        done = 0
        for length, (idx, arr) in prompts_lib.group_by_length(prompts).items():
            arr = self._tensor(arr, "prompts")
            p_chunk = min(len(idx), pairs)
            b_chunk = max(1, pairs // p_chunk)
            for p0 in range(0, len(idx), p_chunk):
                prefix = self.model.prefix(arr[p0:p0 + p_chunk])
                rows = idx[p0:p0 + p_chunk]
                for b0 in range(0, B, b_chunk):
                    part = tokens[b0:b0 + b_chunk]
                    logp = self.model.extend(prefix, part)  # (P, b, T, V)
                    target = part[None, :, :, None].expand(*logp.shape[:-1], 1)
                    picked = logp.gather(-1, target)[..., 0].double()  # (P, b, T)
                    out[rows, b0:b0 + part.shape[0]] = -picked.sum(-1).cpu().numpy()
                done += len(rows)
                progress.update(done)
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
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".pt.tmp")
    os.chmod(tmp, tables.default_mode())  # mkstemp's 0600 would hide it from collaborators
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(checkpoint, file)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


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
