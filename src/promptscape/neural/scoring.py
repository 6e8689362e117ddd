"""Neural sequence predictors (LSTM and decoder-only transformer), in one file.

After nanoGPT's ``model.py`` (karpathy/nanoGPT): the modules in dependency order, then the
`Predictor` that the search uses, then training and checkpoints. The frozen
`PredictorConfig` lives in `promptscape.neural.families` (importable without torch, for the
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
What a model must provide for all of this is `promptscape.neural.base.NetworkFamily`.

Randomness is an argument: initialisation draws from a torch Generator seeded by
``seeding.stable_seed("init", ...)``, training data from numpy Generators seeded by
``seeding.numpy_generator("train_data", ...)``, one per step, so that a resumed run draws
exactly what an uninterrupted one would.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from promptscape import logs, predictors
from promptscape import prompts as prompts_lib
from promptscape.neural.base import Prefix, _deterministic_algorithms, resolve_device
from promptscape.neural.families import MAX_TOKENS, PredictorConfig
from promptscape.neural.trie import SequenceTrie, _build_trie
from promptscape.sources import Source, symbol_losses

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- predictor
class NeuralPredictor(predictors.Predictor):
    """A trained model as a `Predictor`: float32 inside, float64 numpy outside.

    `prompt_losses` walks the trie of the prompts and, after each, the trie of the task
    sequences, within `max_tokens` model inputs (and token positions held) at a time.
    """

    def __init__(self, model: nn.Module, config: PredictorConfig, *,
                 device: str = "auto", max_tokens: int = MAX_TOKENS):
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
