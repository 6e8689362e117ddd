"""The LSTM family: embed, LSTM torso, unembed (Hochreiter & Schmidhuber, 1997)."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from promptscape.neural.base import Prefix, _init_weights, _with_bos
from promptscape.neural.families import PredictorConfig
from promptscape.neural.trie import SequenceTrie

logger = logging.getLogger(__name__)


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

    def differentiable_trie_losses(self, prefix: Prefix, trie: SequenceTrie) -> torch.Tensor:
        """`trie_losses` that autograd can follow (a tuned prompt's gradient): an LSTM's walk
        already holds nothing in place."""
        cpu = prefix.log_probs.device.type == "cpu"
        return self.trie_losses(prefix, trie, self.cpu_step_inputs if cpu else 1 << 16, 0)

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
