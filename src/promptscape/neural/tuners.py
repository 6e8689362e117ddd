"""The tuner registry and an experiment's `tuning` plan, without torch (the workflow parses
configs with it); the tuners themselves are in `promptscape.neural.tuning`.

A tuner adapts a trained network to a task from the task's data set D_N alone (docs/science.md,
"Beyond hard prompts"). Its entry says what it trains (`space`), its own settings with their
defaults, and where its module is built (``"module:attribute"``, resolved only in jobs).
Reference rows (`none`, `hard_search`) train nothing; `hard_optimum` comes from the landscape
in the aggregate.
"""

from __future__ import annotations

import dataclasses
import numbers

from promptscape import settings as settings_lib
from promptscape import validation
from promptscape.settings import Setting
from promptscape.validation import ConfigError

PROMPT, WEIGHTS, REFERENCE = "prompt", "weights", "reference"
# Starts of prompt-space tuners on D_N (tuning.init; name -> what it starts from). search
# needs K <= L_max; optimum is an oracle start, the one init that reads the landscape.
INITS = {"search": "the best hard prompt of length K on D_N",
         "random": "K uniform symbols",
         "optimum": "the landscape's hard optimum, padded on the left to K positions"}


@dataclasses.dataclass(frozen=True)
class Tuner:
    """One tuning method.

    name: a ``tuning.tuners`` entry. space: "prompt" (K prompt positions or a prefix, seeds
    trained side by side), "weights" (the network's weights, a seed at a time) or
    "reference" (nothing trained). settings: its own settings (name -> `settings.Setting`:
    default and check), set by a mapping ``tuning.tuners: {name: {setting: value}}`` or, for
    all tuners that have it, by ``tuning.<setting>`` (`FROM_TUNING`); every trained tuner
    also has `TRAINED_SETTINGS` (``learning_rate``, default ``tuning.learning_rate``).
    build: ``"module:attribute"`` of its builder ``(base, prompts (S, K), settings,
    generator) -> Tuned``.
    """

    name: str
    space: str
    build: str
    settings: dict = dataclasses.field(default_factory=dict)
    doc: str = ""

    @property
    def declared(self) -> dict:
        """Every setting it takes (name -> `Setting`): its own, then `TRAINED_SETTINGS`
        where it trains something."""
        return {**self.settings, **(TRAINED_SETTINGS if self.space != REFERENCE else {})}

    @property
    def defaults(self) -> dict:
        """Its own settings with their defaults (the builder's settings before a config)."""
        return settings_lib.defaults(self.settings)


# Settings of every trained tuner; learning_rate defaults to tuning.learning_rate.
TRAINED_SETTINGS = {"learning_rate": Setting(0.01, settings_lib.POSITIVE)}
# Settings a tuner may take from the tuning section for every tuner that has it
# (tuning.lora_rank), under its own.
FROM_TUNING = ("lora_rank",)
_T = "promptscape.neural.tuning:"
TUNERS: dict[str, Tuner] = {t.name: t for t in [
    Tuner("none", REFERENCE, _T + "build_none", doc="the network as trained, no prompt"),
    Tuner("soft_prompt", PROMPT, _T + "build_soft_prompt",
          doc="K free vectors in the embedding space after BOS"),
    Tuner("simplex_prompt", PROMPT, _T + "build_simplex_prompt",
          settings={"init_logit": Setting(4.0, settings_lib.POSITIVE)},
          doc="K softmax mixtures of the symbols' embeddings (a relaxed hard prompt)"),
    Tuner("prefix", PROMPT, _T + "build_prefix",
          doc="state read before BOS: an LSTM's (h0, c0); K key/value pairs per Transformer "
              "layer"),
    Tuner("embedding", WEIGHTS, _T + "build_embedding", doc="the token embeddings"),
    Tuner("head", WEIGHTS, _T + "build_head", doc="the unembedding (weight and bias)"),
    Tuner("lora", WEIGHTS, _T + "build_lora",
          settings={"lora_rank": Setting(4, settings_lib.POSITIVE_INTEGER)},
          doc="rank-r adapters on the attention and MLP projections, or on the LSTM's input "
              "and recurrent weights"),
    Tuner("full", WEIGHTS, _T + "build_full", doc="every weight"),
]}
# The hard-prompt reference: the prompt exhaustive search picks from the same D_N.
HARD_SEARCH = "hard_search"
# The exhaustive optimum's KL, added from the landscape by the aggregate.
HARD_OPTIMUM = "hard_optimum"
# Relative resolution of a tuned network's KL: its losses are float32 sums over T symbols, so
# two KLs closer than this fraction of the loss are not told apart ("below" comparisons).
FLOAT32_RESOLUTION = 1e-5
# The most (sequence, position) tokens of seeds trained side by side in one step (the
# activations a backward pass holds: about 1 GB for a default Transformer).
BATCH_TOKENS = 1 << 18


def seeds_side_by_side(seeds: int, sequences: float, tokens_per_sequence: int) -> int:
    """How many prompt-space seeds train in one step: as many as fit `BATCH_TOKENS` when each
    holds `sequences` (the longest D_N, the others padded to it) of `tokens_per_sequence`
    tokens; at least 1, at most `seeds`. The stage groups by it and the plan sizes by it."""
    width = max(1, int(sequences) * tokens_per_sequence)
    return max(1, min(seeds, BATCH_TOKENS // width))
# Settings every tuner has (tuning.<key>), with their defaults.
SHARED = {"steps": 200, "learning_rate": TRAINED_SETTINGS["learning_rate"].default}
# How each tuner's own optimum is found (tuning.optimum; promptscape.neural.optimum): Adam on
# the population objective at each learning rate of a small grid, from `restarts` random
# starts (prompt-space tuners: K uniform symbols) and, for prompt-space tuners, the hard
# optimum of length K; up to `max_steps` steps, converged once the objective has not improved
# by more than `tolerance` (relative) for `patience` steps. Where the landscape does not
# enumerate the task sequences, each step draws `batch_size` fresh ones and steps are judged
# every `check_every` steps on a sample of 4 x batch_size of their own.
# Prompt-space tuners' optima are found at K and at each of `prompt_lengths` (any length:
# a continuous prompt needs no enumeration), so that the optimum's dependence on K shows.
OPTIMUM = {"learning_rates": [0.003, 0.01, 0.03], "restarts": 2, "max_steps": 300,
           "patience": 30, "tolerance": 1e-6, "batch_size": 1024, "check_every": 10,
           "prompt_lengths": []}


def lora_width(config) -> int:
    """The largest LoRA rank of a network (a `PredictorConfig`): its narrowest adapted
    matrix, min(E, H) for an LSTM's input and recurrent weights, C for a Transformer's
    projections."""
    if config.family == "lstm":
        return min(config.embedding_dim, config.hidden_size)
    return config.hidden_size


@dataclasses.dataclass(frozen=True)
class Plan:
    """An experiment's `tuning` section, checked: tuners (name -> complete settings, in
    config order), the prompt length K, optimiser steps and the nested step budgets recorded,
    the learning rate, the init of prompt-space tuners, and the networks, tasks, dataset
    sizes and seeds tuned."""

    tuners: tuple[tuple[str, dict], ...]
    prompt_length: int
    steps: int
    tuning_steps: tuple[int, ...]
    learning_rate: float
    init: str
    networks: tuple[str, ...]
    tasks: tuple[str, ...]
    dataset_sizes: tuple[int, ...]
    num_seeds: int
    optimum: dict = dataclasses.field(default_factory=lambda: dict(OPTIMUM))
    # Settings chosen on held-out data (`tuning.selection`): {holdout, learning_rates}; None:
    # every tuner at its fixed settings only.
    selection: dict | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tuners)

    def to_dict(self) -> dict:
        """The job's view: what its artifact depends on (plain values)."""
        return {"tuners": {name: dict(s) for name, s in self.tuners},
                "prompt_length": self.prompt_length, "steps": self.steps,
                "tuning_steps": list(self.tuning_steps), "learning_rate": self.learning_rate,
                "init": self.init,
                "selection": None if self.selection is None else
                {"holdout": self.selection["holdout"],
                 "learning_rates": list(self.selection["learning_rates"])}}

    def optimum_dict(self) -> dict:
        """The tuner_optima job's view: the tuners, K and how their optima are found."""
        return {"tuners": {name: {k: v for k, v in s.items() if k != "learning_rate"}
                           for name, s in self.tuners},
                "prompt_length": self.prompt_length,
                "optimum": {k: list(v) if isinstance(v, (list, tuple)) else v
                            for k, v in self.optimum.items()}}


def _check(value, name, kind, **bounds):
    """`validation.check_scalar`, its errors as ConfigErrors (they name the key)."""
    try:
        return validation.check_scalar(value, name, kind, **bounds)
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None


KEYS = ("tuners", "prompt_length", "steps", "tuning_steps", "learning_rate", "lora_rank",
        "init", "networks", "tasks", "dataset_sizes", "num_seeds", "optimum", "selection")
SELECTION = ("holdout", "learning_rates")


def _selection(spec, where: str) -> dict | None:
    """The checked `tuning.selection` mapping ({holdout, learning_rates}), or None."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != set(SELECTION):
        raise ConfigError(f"{where} == {spec!r}, must be a mapping of exactly "
                          f"{', '.join(SELECTION)} (holdout: the share of D_N held out, in "
                          "(0, 1); learning_rates: the rates to choose among)")
    _check(spec["holdout"], f"{where}.holdout", numbers.Real, min_val=0, max_val=1,
           include_boundaries="neither")
    return {"holdout": float(spec["holdout"]),
            "learning_rates": _learning_rates(spec["learning_rates"], where)}


def _learning_rates(rates, where: str) -> list[float]:
    """`where`.learning_rates checked (a non-empty list of distinct positive rates), sorted."""
    if not isinstance(rates, list) or not rates:
        raise ConfigError(f"{where}.learning_rates == {rates!r}, must be a non-empty list of "
                          "positive learning rates")
    for i, rate in enumerate(rates):
        _check(rate, f"{where}.learning_rates[{i}]", numbers.Real, min_val=0,
               include_boundaries="neither")
    if len(set(rates)) != len(rates):
        raise ConfigError(f"{where}.learning_rates == {rates}: a rate is listed twice")
    return sorted(float(r) for r in rates)


def _optimum(spec, where: str) -> dict:
    """The checked `tuning.optimum` mapping, its defaults (`OPTIMUM`) filled in."""
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise ConfigError(f"{where} == {spec!r}, must be a mapping of {', '.join(OPTIMUM)}")
    unknown = sorted(set(spec) - set(OPTIMUM))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(OPTIMUM)}")
    out = {**OPTIMUM, **spec}
    out["learning_rates"] = _learning_rates(out["learning_rates"], where)
    lengths = out["prompt_lengths"]
    if not isinstance(lengths, list):
        raise ConfigError(f"{where}.prompt_lengths == {lengths!r}, must be a list of prompt "
                          "lengths K >= 1")
    for i, length in enumerate(lengths):
        _check(length, f"{where}.prompt_lengths[{i}]", numbers.Integral, min_val=1,
               include_boundaries="left")
    out["prompt_lengths"] = sorted({int(k) for k in lengths})
    for key, low in (("restarts", 0), ("max_steps", 1), ("patience", 1), ("batch_size", 1),
                     ("check_every", 1)):
        _check(out[key], f"{where}.{key}", numbers.Integral, min_val=low,
               include_boundaries="left")
        out[key] = int(out[key])
    _check(out["tolerance"], f"{where}.tolerance", numbers.Real, min_val=0,
           include_boundaries="left")
    out["tolerance"] = float(out["tolerance"])
    return out


def parse(spec, *, where: str, predictors, networks: dict, tasks, dataset_sizes,
          num_seeds: int, max_prompt_length: int) -> Plan | None:
    """The checked `Plan` of `spec` (an experiment's ``tuning``; None: no tuning).

    predictors: the experiment's predictors; networks: name -> `PredictorConfig` of each
    neural one (for LoRA ranks); tasks, dataset_sizes, num_seeds: the experiment's, of which
    tuning takes a subset. Every problem is a ConfigError naming its key."""
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a mapping of {', '.join(KEYS)}, not {spec!r}")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(KEYS)}")

    def integer(key, default, low, high=None):
        value = spec.get(key, default)
        _check(value, f"{where}.{key}", numbers.Integral, min_val=low,
                                max_val=high, include_boundaries="both")
        return int(value)

    def positive_real(key, default):
        value = spec.get(key, default)
        _check(value, f"{where}.{key}", numbers.Real, min_val=0,
                                include_boundaries="neither")
        return float(value)

    if max_prompt_length < 1:
        raise ConfigError(f"{where}: tuning needs prompts, but max_prompt_length is 0")
    init = spec.get("init", "search")
    if init not in INITS:
        raise ConfigError(f"{where}.init == {init!r}, must be one of {', '.join(INITS)}")
    # A continuous prompt needs no enumeration: K may exceed L_max, except where the start
    # is the best hard prompt of length K on D_N (init: search).
    K = integer("prompt_length", max_prompt_length, 1,
                max_prompt_length if init == "search" else None)
    steps = integer("steps", SHARED["steps"], 1)
    budgets = spec.get("tuning_steps", [steps])
    if not isinstance(budgets, list) or not budgets:
        raise ConfigError(f"{where}.tuning_steps == {budgets!r}, must be a non-empty list of "
                          f"step counts in 0..steps ({steps})")
    for i, b in enumerate(budgets):
        _check(b, f"{where}.tuning_steps[{i}]", numbers.Integral, min_val=0,
                                max_val=steps, include_boundaries="both")
    if len(set(budgets)) != len(budgets):
        raise ConfigError(f"{where}.tuning_steps == {budgets}: a step count is listed twice")
    learning_rate = positive_real("learning_rate", SHARED["learning_rate"])

    chosen = spec.get("tuners", ["none", "soft_prompt", "full"])
    if isinstance(chosen, list):
        chosen = {name: {} for name in chosen}
    if not isinstance(chosen, dict) or not chosen:
        raise ConfigError(f"{where}.tuners == {chosen!r}, must be a non-empty list of tuners or "
                          f"a mapping of tuner -> settings; tuners: {', '.join(TUNERS)}")
    # tuning.<setting> (FROM_TUNING), checked at its own key by every tuner that takes it.
    shared = {k: spec[k] for k in FROM_TUNING if k in spec}
    for setting, value in shared.items():
        owners = [n for n, t in TUNERS.items() if setting in t.settings]
        for owner in owners:
            TUNERS[owner].settings[setting].check(value, f"{where}.{setting}")
        if not set(owners) & set(chosen):
            raise ConfigError(f"{where}.{setting} is set, but {' or '.join(owners)} is not "
                              f"among {where}.tuners")
    tuners = []
    for name, own in chosen.items():
        key = f"{where}.tuners.{name}"
        if name not in TUNERS:
            hint = (" (hard_search and hard_optimum are reference rows every tuning run has)"
                    if name in (HARD_SEARCH, HARD_OPTIMUM) else "")
            raise ConfigError(f"{key}: unknown tuner{hint}; tuners: {', '.join(TUNERS)}")
        tuner = TUNERS[name]
        own = settings_lib.validate(own, tuner.declared, key, name)
        # Its defaults, tuning.learning_rate for a trained tuner's, then tuning.<setting>,
        # then its own.
        known = {**settings_lib.defaults(tuner.declared),
                 **({"learning_rate": learning_rate} if tuner.space != REFERENCE else {})}
        settings = {**known, **{k: v for k, v in shared.items() if k in known}, **own}
        tuners.append((name, settings))

    neural = [p for p in predictors if p in networks]
    names = spec.get("networks", neural)
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}.networks == {names!r}, must be a non-empty list of the "
                          f"experiment's networks: {', '.join(neural) or '(none)'}")
    for i, name in enumerate(names):
        if name == "bayes":
            raise ConfigError(f"{where}.networks[{i}] == 'bayes': the exact Bayes predictor "
                              "has no weights or embeddings to tune (its reference lines come "
                              "with `predictors`)")
        if name not in neural:
            raise ConfigError(f"{where}.networks[{i}] == {name!r}, not a network among the "
                              f"experiment's predictors: {', '.join(neural) or '(none)'}")
        for tuner, settings in tuners:
            if "lora_rank" in settings and settings["lora_rank"] > lora_width(networks[name]):
                raise ConfigError(
                    f"{where}.tuners.lora.lora_rank == {settings['lora_rank']}, must be <= "
                    f"{lora_width(networks[name])}, the narrowest layer LoRA adapts in network "
                    f"{name!r}")
    task_names = spec.get("tasks", list(tasks))
    for key, value, known in (("tasks", task_names, tasks),
                              ("dataset_sizes", spec.get("dataset_sizes"), dataset_sizes)):
        if value is not None and isinstance(value, list) and not value:
            raise ConfigError(f"{where}.{key} is empty: name at least one of the experiment's "
                              f"{key} ({', '.join(map(str, known))}), or leave the key out "
                              "(all of them)")
    for i, task in enumerate(task_names if isinstance(task_names, list) else [None]):
        if task not in tasks:
            raise ConfigError(f"{where}.tasks[{i}] == {task!r}, not a task of the experiment: "
                              f"{', '.join(tasks)}")
    sizes = spec.get("dataset_sizes", list(dataset_sizes))
    for i, N in enumerate(sizes if isinstance(sizes, list) else [None]):
        if N not in dataset_sizes:
            raise ConfigError(f"{where}.dataset_sizes[{i}] == {N!r}, not among the experiment's "
                              f"dataset_sizes {list(dataset_sizes)}")
    seeds = integer("num_seeds", num_seeds, 1, num_seeds)
    return Plan(tuners=tuple(tuners), prompt_length=K, steps=steps,
                tuning_steps=tuple(sorted(int(b) for b in budgets)),
                learning_rate=learning_rate, init=init, networks=tuple(names),
                tasks=tuple(t for t in tasks if t in task_names),
                dataset_sizes=tuple(sorted(sizes)), num_seeds=seeds,
                optimum=_optimum(spec.get("optimum"), f"{where}.optimum"),
                selection=_selection(spec.get("selection"), f"{where}.selection"))
