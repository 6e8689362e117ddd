"""The decoder-only transformer family: pre-norm blocks as in GPT-2 (Radford et al., 2019),
after nanoGPT's ``model.py`` (karpathy/nanoGPT)."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from promptscape.neural.base import Prefix, _init_weights, _with_bos
from promptscape.neural.families import PredictorConfig
from promptscape.neural.trie import SequenceTrie, _Ancestors

logger = logging.getLogger(__name__)


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

    def differentiable_trie_losses(self, prefix: Prefix, trie: SequenceTrie) -> torch.Tensor:
        """`trie_losses` that autograd can follow (a tuned prompt's gradient): (P, n_T)
        float64. The same depth-by-depth walk, one step per distinct prefix, but each depth's
        keys and values are new tensors kept in a list instead of written in place, and all
        P prompts and a depth's nodes go in one step (P is a tuner's few copies)."""
        (P, V), Lp, T = prefix.log_probs.shape, prefix.length, trie.depth
        self.check_context(Lp - 1 + T)
        keys: list[list[torch.Tensor]] = [[] for _ in self.blocks]  # per layer, per depth
        values: list[list[torch.Tensor]] = [[] for _ in self.blocks]
        loss = torch.zeros(P, 1, dtype=torch.float64, device=prefix.log_probs.device)
        log_probs = prefix.log_probs[:, None]
        for t in range(1, T + 1):
            loss = trie.losses(t, loss, log_probs)  # (P, n_t)
            if t == T:
                break
            x = (self.embed(trie.symbols[t]) + self.positions.weight[Lp - 1 + t])[None]
            for i, (block, (k_past, v_past)) in enumerate(zip(self.blocks, prefix.cache)):
                ancestors = None
                if t > 1 and trie.complete[t]:  # depth d's nodes in order: views, no copies
                    ancestors = _Ancestors(keys[i], values[i], True)
                elif t > 1:
                    index = trie.ancestors[t]  # (n_t, t - 1) into depths 1..t - 1 in order
                    ancestors = _Ancestors(*(
                        torch.cat(kept, dim=2).index_select(2, index.reshape(-1))
                        .view(kept[-1].shape[0], kept[-1].shape[1], *index.shape, -1)
                        for kept in (keys[i], values[i])), False)
                x, k, v = _trie_block(block, x, k_past, v_past, ancestors)
                keys[i].append(k)
                values[i].append(v)
            log_probs = self._unembed(x)  # (P, n_t, V)
        return loss

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
