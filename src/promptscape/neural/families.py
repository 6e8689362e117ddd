"""Predictor families and the configuration of neural predictors, importable without torch.

`FAMILIES` is the one registry of predictor families: the exact ``bayes`` predictor and
the network families. A network family's entry holds its config defaults, the fields only
it has, its own checks, and where its torch module lives (resolved lazily by
`promptscape.neural.checkpoints`, so the workflow can validate every model at parse time without
importing torch: cluster jobs re-parse it). A new network family is its entry here, its
network module in `promptscape.neural` (a `promptscape.neural.base.NetworkFamily`: what the
trie walk and the scoring use), and its tests.

`PredictorConfig` is the flat, frozen config of one network; fields a family does not have
hold None.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable

from promptscape import validation

DEVICES = ("auto", "cpu", "cuda")
# Model inputs (and token positions held) a network scores at a time by default
# (`NeuralPredictor.max_tokens`); here, torch-free, so the cost plan models the same chunk.
MAX_TOKENS = 1 << 17
LR_SCHEDULES = ("cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Family:
    """One predictor family.

    name: the family's name (``family:`` of a model in the config).
    neural: whether it is a trained network (else the exact Bayes predictor, no config).
    defaults: PredictorConfig fields the family fills when the config leaves them unset.
    own_fields: PredictorConfig fields only some families have; a family that does not list
        a field requires it unset.
    module: ``"module:attribute"`` of its torch ``nn.Module`` class (networks only).
    check: extra checks of a complete config (raise ValueError naming the field).
    code: the ``"module:attribute"`` entries of the code only this family's jobs run (how it
        is built and scores prompts), which its jobs' code identities cover
        (`promptscape.pipeline.provenance`, docs/caching.md).
    activations_per_token: float32 activations one token keeps per layer while the network
        scores a chunk, from its complete config (networks only): the cost plan's memory
        estimate (`promptscape.pipeline.costs`, docs/plan.md), calibrated on the default models.
    """

    name: str
    neural: bool
    code: tuple[str, ...]
    defaults: dict = dataclasses.field(default_factory=dict)
    own_fields: tuple[str, ...] = ()
    module: str | None = None
    check: Callable[["PredictorConfig"], None] | None = None
    activations_per_token: Callable[["PredictorConfig"], int] | None = None


def _check_transformer(config: "PredictorConfig") -> None:
    if config.hidden_size % config.num_heads:
        raise ValueError(f"transformer.hidden_size == {config.hidden_size}, must be "
                         f"divisible by transformer.num_heads ({config.num_heads}).")
    if config.embedding_dim != config.hidden_size:
        raise ValueError(f"transformer.embedding_dim == {config.embedding_dim}, must be "
                         f"unset or equal transformer.hidden_size ({config.hidden_size}).")
    if config.max_context_length < config.sequence_length:
        raise ValueError(f"transformer.max_context_length == {config.max_context_length}, "
                         f"must be >= transformer.sequence_length ({config.sequence_length}).")


# Fields that only some network families have (every other field applies to all).
OPTIONAL_FIELDS = ("num_heads", "max_context_length")

# Defaults per family, for sequences of 16 symbols (a prompt of up to 5, a task of 10 and one
# spare) on 2 CPU cores. Measured on 20,000 held-out sequences of 16 symbols, the mean
# per-symbol regret against the exact Bayes predictor after 1000 steps is about 1e-4 nats or
# less for both families on coin_mixture(0.2, 0.7), beta_coin(1, 1) and switching(0.2, 0.7;
# 0.05), far inside the 0.005 (0.01 for switching) the study needs, in about 30 s (LSTM) or
# 60 s (transformer) of training. Longer training buys little (LSTM, 2000 steps: 2e-5).
FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("bayes", neural=False, code=("promptscape.predictors:BayesPredictor",)),
    Family("lstm", neural=True, module="promptscape.neural.lstm:LSTMPredictor",
           code=("promptscape.neural.checkpoints:load_predictor", "promptscape.neural.lstm:LSTMPredictor"),
           # Its gates and states: about 3 H.
           activations_per_token=lambda net: 3 * net.hidden_size,
           defaults=dict(
        embedding_dim=16, hidden_size=64, num_layers=1, steps=1000, batch_size=256,
        learning_rate=3e-3, warmup_steps=0)),
    Family("transformer", neural=True, module="promptscape.neural.transformer:TransformerPredictor",
           code=("promptscape.neural.checkpoints:load_predictor",
                 "promptscape.neural.transformer:TransformerPredictor"),
           own_fields=("num_heads", "max_context_length"), check=_check_transformer,
           # Its projections, MLP and attention row: about 8 C + heads x context.
           activations_per_token=lambda net: (8 * net.hidden_size
                                              + net.num_heads * net.sequence_length),
           defaults=dict(hidden_size=64, num_layers=2, num_heads=4, steps=1000,
                         batch_size=256, learning_rate=1e-3, warmup_steps=100)),
]}
NEURAL_FAMILIES = tuple(name for name, f in FAMILIES.items() if f.neural)


def family(name: str, where: str = "family") -> Family:
    """The registered family `name`; a ConfigError naming `where` otherwise."""
    if name not in FAMILIES:
        raise validation.ConfigError(f"{where} == {name!r}, unknown predictor family; known "
                                     f"families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


# --------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """Architecture and training of one neural predictor; flat, frozen, keyword-only.

    Fields left as None take the family's default (`Family.defaults`), so after
    construction every field that applies to the family holds a number, and fields that do
    not apply (an LSTM has no heads and no position table) hold None. Serialises to a flat
    mapping (`to_dict`, `from_dict`) that round-trips through YAML. The device a network
    runs on is not part of it: it is `training.device` of the config, passed to each job.
    """

    family: str  # a neural family of FAMILIES
    # LSTM: width of the token embedding fed to the LSTM. Transformer: always hidden_size
    # (tokens are embedded at the model width); leave it unset.
    embedding_dim: int | None = None
    hidden_size: int | None = None  # LSTM state width; transformer model width C
    num_layers: int | None = None
    num_heads: int | None = None  # transformer only; must divide hidden_size
    # Transformer only: rows of the learned position table, the most symbols (prompt plus
    # task) one sequence may have. Defaults to sequence_length: positions never trained on
    # would hold their random initial embeddings.
    max_context_length: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None  # peak learning rate of Adam
    lr_schedule: str = "cosine"  # "cosine": decay to 0 at the last step; or "constant"
    warmup_steps: int | None = None  # linear warm-up from 0 to learning_rate
    grad_clip: float = 1.0  # max global gradient norm (of the summed per-sequence loss)
    sequence_length: int = 16  # symbols per training sequence
    model_seed: int = 0
    # Which independently trained network of the model this is (the workflow sets it from
    # `models.<name>.replicates`, 0..k-1). Replicate r > 0 seeds its initialisation and data
    # order from the other fields and r; replicate 0 leaves both, and the identity, as they
    # are without replicates (`to_dict` omits a 0).
    replicate: int = 0
    # False: the network is its initialisation, never trained (`models.<name>.pretrained`),
    # a baseline for tuning. True, the default, is left out of `to_dict`, so no existing
    # network's identity changes.
    pretrained: bool = True

    def __post_init__(self):
        name = self.family
        spec = FAMILIES.get(name)
        if spec is None or not spec.neural:
            known = ", ".join(repr(f) for f in NEURAL_FAMILIES)
            raise ValueError(f"family == {name!r}, must be a network family: one of {known}.")
        for field, value in spec.defaults.items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, value)
        if "max_context_length" in spec.own_fields and self.max_context_length is None:
            object.__setattr__(self, "max_context_length", self.sequence_length)
        if self.embedding_dim is None:
            object.__setattr__(self, "embedding_dim", self.hidden_size)
        for field in OPTIONAL_FIELDS:
            if field not in spec.own_fields and getattr(self, field) is not None:
                raise ValueError(f"{name}.{field} == {getattr(self, field)!r}, must be unset: "
                                 f"the {name} family has no {field}.")

        def positive_int(field, boundaries="right"):
            validation.check_scalar(getattr(self, field), f"{name}.{field}", numbers.Integral,
                                    min_val=0, include_boundaries=boundaries)

        for field in ("embedding_dim", "hidden_size", "num_layers", "steps", "batch_size",
                      "sequence_length", *spec.own_fields):
            positive_int(field)
        positive_int("warmup_steps", boundaries="both")
        positive_int("model_seed", boundaries="both")
        positive_int("replicate", boundaries="both")
        for field in ("learning_rate", "grad_clip"):
            validation.check_scalar(getattr(self, field), f"{name}.{field}", numbers.Real,
                                    min_val=0, include_boundaries="neither")
            # 1 and 1.0 are one setting: store floats so identities do not tell them apart.
            object.__setattr__(self, field, float(getattr(self, field)))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"{name}.lr_schedule == {self.lr_schedule!r}, must be one of "
                             + ", ".join(repr(a) for a in LR_SCHEDULES) + ".")
        if not isinstance(self.pretrained, bool):
            raise ValueError(f"{name}.pretrained == {self.pretrained!r}, must be true or false.")
        if spec.check is not None:
            spec.check(self)

    def to_dict(self) -> dict:
        """Flat mapping of every field, the inverse of `from_dict` (``replicate`` only when
        it is not 0, so that replicate 0 is the network of a model without replicates)."""
        out = dataclasses.asdict(self)
        if not out["replicate"]:
            del out["replicate"]
        if out["pretrained"]:
            del out["pretrained"]
        return out

    @classmethod
    def from_dict(cls, spec: dict, where: str = "predictor") -> "PredictorConfig":
        """Build from a config mapping; errors are ConfigError naming `where` and the key."""
        if not isinstance(spec, dict):
            raise validation.ConfigError(f"{where}: must be a mapping with a 'family', "
                                         f"not {spec!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise validation.ConfigError(f"{where}: unknown key(s) {unknown}; the keys of a "
                                         f"predictor config are {names}")
        if "family" not in spec:
            raise validation.ConfigError(f"{where}.family is required: one of "
                                         f"{list(NEURAL_FAMILIES)}")
        try:
            return cls(**spec)
        except (TypeError, ValueError) as error:
            raise validation.located(where, error) from None

    def seed_identity(self) -> dict:
        """What identifies a trained model for seeding and caching: every field (the device
        is not one), so a model trained on cpu or cuda draws the same data and starts from
        the same weights."""
        return self.to_dict()

    def architecture(self) -> dict:
        """The fields that shape the network (what the initialisation seed hangs on)."""
        keys = ("family", "embedding_dim", "hidden_size", "num_layers", "num_heads",
                "max_context_length", "model_seed")
        out = {k: getattr(self, k) for k in keys}
        if self.replicate:
            out["replicate"] = self.replicate
        return out
