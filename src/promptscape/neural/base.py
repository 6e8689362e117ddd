"""What both network families share: the device, the state after a prompt (`Prefix`), the
start token, the one initialisation, and building a family's network from its config.

Shapes (legend in `promptscape.sources.base`): B sequences, T symbols, L prompt symbols,
P prompts, V symbols (the pretraining source's vocab_size), C model width, nh heads,
hs = C / nh head size.

Tokens: symbols are 0..V-1 and the start-of-sequence token BOS is V, so a model embeds
V + 1 tokens and predicts V symbols. V is a constructor argument, not a config field: it is
the pretraining source's (stored with every checkpoint), and at V = 2 the parameter shapes
and initial draws are those of the binary networks.

Randomness is an argument: initialisation draws from a torch Generator seeded by
``seeding.stable_seed("init", ...)``.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol

import torch
from torch import nn

from promptscape import seeding, validation
from promptscape.neural.families import DEVICES, FAMILIES, PredictorConfig

if TYPE_CHECKING:
    from promptscape.neural.trie import SequenceTrie

logger = logging.getLogger(__name__)


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


class NetworkFamily(Protocol):
    """What a network family's module (the ``nn.Module`` class its `Family.module` names)
    provides: what training, the prompt and sequence trie walk and the scoring
    (`promptscape.neural.scoring.NeuralPredictor`) use on a model. Both families satisfy it
    (a test checks each member's kind); a new family implements every member.
    """

    vocab_size: int  # V symbols; the model embeds V + 1 tokens (BOS = V)
    embed: nn.Embedding  # (V + 1, E) token embeddings: symbols, then BOS (prompt gradient)
    # The most (prompt, sequence prefix) inputs of one trie step on a cpu (cache-sized).
    cpu_step_inputs: ClassVar[int]

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) symbols -> (B, T, V) log-probs; position t predicts x_t from BOS + x_<t."""

    def prefix(self, prompts: torch.Tensor) -> Prefix:
        """Read BOS + each of the (P, L) prompts once: the state after them."""

    def prefix_embedded(self, inputs: torch.Tensor) -> Prefix:
        """`prefix` from the (P, L + 1, E) input embeddings of BOS + prompt."""

    def extend(self, prefix: Prefix, seqs: torch.Tensor) -> torch.Tensor:
        """Every (B, T) sequence after every prompt of `prefix`: (P, B, T, V) log-probs."""

    def check_context(self, length: int) -> None:
        """Raise if the model cannot read contexts of `length` tokens."""

    def cache_positions(self, length: int) -> int:
        """Token positions of state held per prompt node of `length` tokens."""

    def trie_root(self, device: torch.device) -> Prefix:
        """The state after BOS alone (the empty prompt), for one node."""

    def trie_select(self, prefix: Prefix, index: torch.Tensor) -> Prefix:
        """The nodes `index` of `prefix`."""

    def trie_step(self, prefix: Prefix, parents: torch.Tensor, symbols: torch.Tensor) -> Prefix:
        """The (n,) children of nodes `parents` of `prefix`, each reading one of `symbols`."""

    def trie_losses(self, prefix: Prefix, trie: "SequenceTrie", step_inputs: int,
                    max_positions: int) -> torch.Tensor:
        """Log loss of every leaf of `trie` after every prompt of `prefix`: (P, n_T)
        float64, depth by depth, at most `step_inputs` (prompt, node) inputs a step and
        `max_positions` token positions of state held."""


    def differentiable_trie_losses(self, prefix: Prefix, trie: "SequenceTrie") -> torch.Tensor:
        """`trie_losses` through which autograd follows `prefix` and the model's parameters
        (a tuner's gradient): (P, n_T) float64, for the few prompts of a tuner's copies."""

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
