"""Configuration of neural predictors, importable without torch.

`PredictorConfig` is validated when the workflow parses its config (the Snakefile must stay
cheap to parse: cluster jobs re-parse it), so it lives here rather than in `models`, which
imports torch; `models` re-exports it.
"""

from __future__ import annotations

import dataclasses
import numbers

from promptscape import predictors, validation

DEVICES = ("auto", "cpu", "cuda")
LR_SCHEDULES = ("cosine", "constant")

# Defaults per family, for sequences of 16 symbols (a prompt of up to 5, a task of 10 and one
# spare) on 2 CPU cores. Measured on 20,000 held-out sequences of 16 symbols, the mean
# per-symbol regret against the exact Bayes predictor after 1000 steps is about 1e-4 nats or
# less for both families on coin_mixture(0.2, 0.7), beta_coin(1, 1) and switching(0.2, 0.7;
# 0.05), far inside the 0.005 (0.01 for switching) the study needs, in about 30 s (LSTM) or
# 60 s (transformer) of training. Longer training buys little (LSTM, 2000 steps: 2e-5).
FAMILY_DEFAULTS: dict[str, dict] = {
    "lstm": dict(
        embedding_dim=16,
        hidden_size=64,
        num_layers=1,
        steps=1000,
        batch_size=256,
        learning_rate=3e-3,
        warmup_steps=0,
    ),
    "transformer": dict(
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        steps=1000,
        batch_size=256,
        learning_rate=1e-3,
        warmup_steps=100,
    ),
}


# --------------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True, kw_only=True)
class PredictorConfig:
    """Architecture and training of one neural predictor; flat, frozen, keyword-only.

    Fields left as None take the family's default (`FAMILY_DEFAULTS`), so after construction
    every field that applies to the family holds a number, and fields that do not apply
    (an LSTM has no heads and no position table) hold None. Serialises to a flat mapping
    (`to_dict`, `from_dict`) that round-trips through YAML.
    """

    family: str  # "lstm" or "transformer"
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
    device: str = "auto"  # "auto" (cuda when available, else cpu), "cpu" or "cuda"

    def __post_init__(self):
        family = self.family
        if family not in predictors.NEURAL_FAMILIES:
            known = ", ".join(repr(f) for f in predictors.NEURAL_FAMILIES)
            raise ValueError(f"predictor.family == {family!r}, must be one of {known}.")
        for name, value in FAMILY_DEFAULTS[family].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        transformer = family == "transformer"
        if transformer:
            if self.max_context_length is None:
                object.__setattr__(self, "max_context_length", self.sequence_length)
            if self.embedding_dim is None:
                object.__setattr__(self, "embedding_dim", self.hidden_size)

        def positive_int(name, minimum=0, boundaries="right"):
            validation.check_scalar(getattr(self, name), f"{family}.{name}", numbers.Integral,
                                    min_val=minimum, include_boundaries=boundaries)

        for name in ("embedding_dim", "hidden_size", "num_layers", "steps", "batch_size",
                     "sequence_length"):
            positive_int(name)
        positive_int("warmup_steps", boundaries="both")
        positive_int("model_seed", boundaries="both")
        for name in ("learning_rate", "grad_clip"):
            validation.check_scalar(getattr(self, name), f"{family}.{name}", numbers.Real,
                                    min_val=0, include_boundaries="neither")
        for name, allowed in (("lr_schedule", LR_SCHEDULES), ("device", DEVICES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{family}.{name} == {getattr(self, name)!r}, must be one of "
                                 + ", ".join(repr(a) for a in allowed) + ".")
        if transformer:
            positive_int("num_heads")
            positive_int("max_context_length")
            if self.hidden_size % self.num_heads:
                raise ValueError(f"transformer.hidden_size == {self.hidden_size}, must be "
                                 f"divisible by transformer.num_heads ({self.num_heads}).")
            if self.embedding_dim != self.hidden_size:
                raise ValueError(f"transformer.embedding_dim == {self.embedding_dim}, must be "
                                 f"unset or equal transformer.hidden_size ({self.hidden_size}).")
            if self.max_context_length < self.sequence_length:
                raise ValueError(f"transformer.max_context_length == {self.max_context_length}, "
                                 f"must be >= transformer.sequence_length "
                                 f"({self.sequence_length}).")
        else:
            for name in ("num_heads", "max_context_length"):
                if getattr(self, name) is not None:
                    raise ValueError(f"lstm.{name} == {getattr(self, name)!r}, must be unset: "
                                     "only the transformer has it.")

    def to_dict(self) -> dict:
        """Flat mapping of every field, the inverse of `from_dict`."""
        return dataclasses.asdict(self)

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
                                         f"{list(predictors.NEURAL_FAMILIES)}")
        try:
            return cls(**spec)
        except (TypeError, ValueError) as error:
            raise validation.located(where, error) from None

    def seed_identity(self) -> dict:
        """What identifies a trained model for seeding: every field but the device, so that
        a model trained on cpu or cuda draws the same data and starts from the same weights."""
        out = self.to_dict()
        del out["device"]
        return out

    def architecture(self) -> dict:
        """The fields that shape the network (what the initialisation seed hangs on)."""
        keys = ("family", "embedding_dim", "hidden_size", "num_layers", "num_heads",
                "max_context_length", "model_seed")
        return {k: getattr(self, k) for k in keys}
