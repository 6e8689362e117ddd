"""Post-training: a trained network tuned further on fresh sequences of another source,
without torch (the workflow parses configs with it); the training loop is in
`promptscape.neural.post_trainer`.

A model of the config with ``post_training: {base, source, tuner, steps, learning_rate,
lora_rank, batch}`` is its base model's network (the same replicate, read from the base's
checkpoint, never retrained) tuned by a weight tuner of the tuner registry
(`promptscape.neural.tuners.TUNERS`, space ``weights``: full, lora, head, embedding; their
modules are `promptscape.neural.tuning`'s) on fresh sequences of `source`: the stage after
pretraining that real models go through (supervised fine-tuning on a task, or on a
narrower prior). Its architecture, replicates and pretraining source are its base's; its
identity is its base's and the settings here (`promptscape.study.config.Study
.model_identity`), so a change of the base retunes it and a change here retrains nothing
else.

A base may itself be post-trained (a chain: each stage tunes the previous stage's network);
a cycle is a ConfigError naming the models.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

from promptscape import validation
from promptscape.neural import tuners
from promptscape.validation import ConfigError

# The tuners a post-training may use: the registry's weight tuners (a prompt-space tuner
# adds a prompt, not weights: the result would be no network).
TUNERS = tuple(name for name, t in tuners.TUNERS.items() if t.space == tuners.WEIGHTS)
KEYS = ("base", "source", "tuner", "steps", "learning_rate", "lora_rank", "batch")
# Defaults: full tuning, 100 Adam steps at a constant 1e-3 (a third of the LSTM's
# pretraining rate), 256 fresh sequences a step; lora_rank as the tuner registry's lora.
DEFAULTS = {"tuner": "full", "steps": 100, "learning_rate": 1e-3, "batch": 256}
DEFAULT_LORA_RANK = tuners.TUNERS["lora"].settings["lora_rank"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PostTraining:
    """`models.<name>.post_training`, checked, defaults filled in.

    base: the model whose network is tuned; source: the config name of the source whose
    fresh sequences it is tuned on; tuner: a weight tuner (`TUNERS`); steps: Adam steps;
    learning_rate: Adam's (constant); batch: sequences per step; lora_rank: the LoRA rank
    (lora only, else None).
    """

    base: str
    source: str
    tuner: str = DEFAULTS["tuner"]
    steps: int = DEFAULTS["steps"]
    learning_rate: float = DEFAULTS["learning_rate"]
    batch: int = DEFAULTS["batch"]
    lora_rank: int | None = None

    def tuner_settings(self) -> dict:
        """The settings `promptscape.neural.tuning.build` takes for the tuner."""
        return {"lora_rank": self.lora_rank} if self.tuner == "lora" else {}

    def settings(self) -> dict:
        """What the tuning does, less which base and which source (the model identity adds
        the base's identity and the source's parameters, not their names)."""
        out = {"tuner": self.tuner, "steps": self.steps, "learning_rate": self.learning_rate,
               "batch": self.batch}
        if self.tuner == "lora":
            out["lora_rank"] = self.lora_rank
        return out

    def to_dict(self) -> dict:
        """The complete config mapping (the inverse of `parse`)."""
        return {"base": self.base, "source": self.source, **self.settings()}


def _check(value, name, kind, **bounds):
    """`validation.check_scalar`, its errors as ConfigErrors naming the key."""
    try:
        return validation.check_scalar(value, name, kind, **bounds)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


def parse(spec, *, where: str, models, sources) -> PostTraining:
    """The checked `PostTraining` of `spec` (``models.<name>.post_training``); `models`: the
    config's model names, `sources`: its source names. Every problem is a ConfigError naming
    its key (`where`.key). That the source shares the alphabet of the pretraining source of
    every experiment using the model is checked with the experiments
    (`promptscape.study.config`)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} == {spec!r}, must be a mapping of {', '.join(KEYS)} "
                          "(base and source required)")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(KEYS)}")
    for key in ("base", "source"):
        if key not in spec:
            raise ConfigError(f"{where}.{key} is required")
    base = spec["base"]
    if base == "bayes":
        raise ConfigError(f"{where}.base == 'bayes': the exact Bayes predictor has no "
                          "network to tune; name a model of `models` (lstm, transformer or "
                          "one of yours)")
    if base not in models:
        raise ConfigError(f"{where}.base == {base!r}, not a model; models: "
                          f"{', '.join(models)}")
    if spec["source"] not in sources:
        raise ConfigError(f"{where}.source == {spec['source']!r}, not a defined source; "
                          f"defined sources: {', '.join(sorted(sources))}")
    tuner = spec.get("tuner", DEFAULTS["tuner"])
    if tuner not in TUNERS:
        other = (f" ({tuner} tunes a prompt, not the network's weights)"
                 if tuner in tuners.TUNERS else "")
        raise ConfigError(f"{where}.tuner == {tuner!r}, not a weight tuner{other}; one of "
                          f"{', '.join(TUNERS)}")
    for key in ("steps", "batch"):
        _check(spec.get(key, DEFAULTS[key]), f"{where}.{key}", numbers.Integral, min_val=1,
               include_boundaries="left")
    _check(spec.get("learning_rate", DEFAULTS["learning_rate"]), f"{where}.learning_rate",
           numbers.Real, min_val=0, include_boundaries="neither")
    rank = spec.get("lora_rank")
    if rank is not None and tuner != "lora":
        raise ConfigError(f"{where}.lora_rank is set, but {where}.tuner is {tuner!r}, not "
                          "lora")
    if tuner == "lora":
        rank = DEFAULT_LORA_RANK if rank is None else rank
        _check(rank, f"{where}.lora_rank", numbers.Integral, min_val=1,
               include_boundaries="left")
    learning_rate = float(spec.get("learning_rate", DEFAULTS["learning_rate"]))
    if not math.isfinite(learning_rate):
        raise ConfigError(f"{where}.learning_rate == {learning_rate}, must be a finite "
                          "number > 0")
    return PostTraining(base=base, source=spec["source"], tuner=tuner,
                        steps=int(spec.get("steps", DEFAULTS["steps"])),
                        learning_rate=learning_rate,
                        batch=int(spec.get("batch", DEFAULTS["batch"])),
                        lora_rank=None if rank is None else int(rank))


def check_lora_rank(post: PostTraining, network, where: str) -> None:
    """A LoRA rank within the narrowest matrix LoRA adapts in the base's `network` (its
    `PredictorConfig`)."""
    if post.tuner == "lora" and post.lora_rank > tuners.lora_width(network):
        raise ConfigError(f"{where}.lora_rank == {post.lora_rank}, must be <= "
                          f"{tuners.lora_width(network)}, the narrowest layer LoRA adapts in "
                          f"the network of {post.base!r}")
