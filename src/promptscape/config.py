"""The study's configuration: schema validation with defaults, then the semantic checks a
schema cannot express (sources build and validate themselves, tasks name defined sources).

`load` is what the Snakefile calls at parse time; it imports nothing heavier than numpy and
scipy.special, and every error is a ConfigError that starts with the config key at fault.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import yaml

from promptscape.sources import Source, build_source
from promptscape.validation import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    source: Source
    in_meta_distribution: bool


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    pretraining_name: str
    pretraining: Source
    tasks: tuple[Task, ...]
    predictors: tuple[str, ...]
    max_prompt_length: int
    task_length: int
    dataset_sizes: tuple[int, ...]
    num_seeds: int
    seeds_per_job: int
    evaluation_size: int

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"experiment {self.name!r} has no task {name!r}")

    def seed_blocks(self) -> list[tuple[int, int]]:
        """Inclusive (first, last) seed ranges, one per search job."""
        size = self.seeds_per_job
        return [(a, min(a + size, self.num_seeds) - 1) for a in range(0, self.num_seeds, size)]


@dataclasses.dataclass(frozen=True)
class Study:
    raw: dict  # the validated config with defaults filled in
    sources: dict[str, Source]
    experiments: dict[str, Experiment]

    @property
    def figures(self) -> dict:
        return self.raw["figures"]

    @property
    def max_enumeration_length(self) -> int:
        return self.raw["landscape"]["max_enumeration_length"]

    @property
    def training(self) -> dict:
        """The `training` section: device, threads, gpus, heldout_size."""
        return dict(self.raw["training"])

    def model_settings(self, family: str, source_name: str) -> dict:
        """PredictorConfig fields (less `family`) of the network of `family` trained on
        `source_name`: the config's overrides, the training device, and a sequence length
        that covers every prompted task of the experiments using the source."""
        settings = dict(self.raw["models"][family])
        settings.setdefault("device", self.training["device"])
        needed = max((e.max_prompt_length + e.task_length for e in self.experiments.values()
                      if e.pretraining_name == source_name and family in e.predictors),
                     default=1)
        settings.setdefault("sequence_length", needed)
        if settings["sequence_length"] < needed:
            raise ConfigError(f"models.{family}.sequence_length == {settings['sequence_length']}, "
                              f"must be >= {needed} (L_max + T of an experiment pretrained on "
                              f"{source_name!r})")
        return settings

    @property
    def efficiency(self) -> dict:
        """The efficiency stage's settings: ``max_length`` and ``num_typical`` (K)."""
        return dict(self.raw["efficiency"])


def load(config: dict, schema_path: str | Path = SCHEMA_PATH) -> Study:
    """Validate `config` (a copy; defaults filled in) and build the study."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    config = copy.deepcopy(config)
    validate_schema(config, schema)
    sources = {}
    for name, spec in config["sources"].items():
        sources[name] = build_source(spec, where=f"sources.{name}")
    experiments = {}
    for name, exp in config["experiments"].items():
        where = f"experiments.{name}"
        experiments[name] = _experiment(name, exp, sources, where)
    study = Study(raw=config, sources=sources, experiments=experiments)
    _check_models(study)
    return study


def _check_models(study: Study) -> None:
    """Build every network config the study will train, so a bad model key fails at load."""
    from promptscape import model_config

    for name, exp in study.experiments.items():
        for family in exp.predictors:
            if family in model_config.FAMILY_DEFAULTS:
                model_config.PredictorConfig.from_dict(
                    {"family": family, **study.model_settings(family, exp.pretraining_name)},
                    where=f"models.{family}")


def _experiment(name, exp, sources, where) -> Experiment:
    def source(key_where, source_name):
        if source_name not in sources:
            raise ConfigError(f"{key_where} == {source_name!r}, not a defined source; "
                              f"defined sources: {', '.join(sorted(sources))}")
        return sources[source_name]

    pretraining = source(f"{where}.pretraining", exp["pretraining"])
    tasks, seen = [], set()
    for i, task in enumerate(exp["tasks"]):
        task_where = f"{where}.tasks[{i}].source"
        if task["source"] in seen:
            raise ConfigError(f"{task_where} == {task['source']!r} is listed twice")
        seen.add(task["source"])
        tasks.append(Task(task["source"], source(task_where, task["source"]),
                          task["in_meta_distribution"]))
    return Experiment(
        name=name, pretraining_name=exp["pretraining"], pretraining=pretraining,
        tasks=tuple(tasks), predictors=tuple(exp["predictors"]),
        max_prompt_length=exp["max_prompt_length"], task_length=exp["task_length"],
        dataset_sizes=tuple(sorted(exp["dataset_sizes"])), num_seeds=exp["num_seeds"],
        seeds_per_job=exp["seeds_per_job"], evaluation_size=exp["evaluation_size"],
    )


def validate_schema(config: dict, schema: dict) -> None:
    """JSON-schema validation with defaults filled in; the first error becomes a
    ConfigError naming the key, what is wrong, and the key's documented meaning."""
    import jsonschema

    _fill_defaults(config, schema, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        error = errors[0]
        where = _dotted(error.absolute_path) or "config"
        hint = error.schema.get("description") if isinstance(error.schema, dict) else None
        message = f"{where}: {error.message}"
        if hint and error.validator not in ("additionalProperties", "required"):
            message += f" ({' '.join(hint.split())})"
        raise ConfigError(message)


def _dotted(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _resolve(schema, root):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _fill_defaults(instance, schema, root) -> None:
    """Fill `default` values into `instance` in place, recursively (objects and arrays)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict):
        return
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            sub = _resolve(sub, root)
            if key not in instance and isinstance(sub, dict) and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in instance:
                if key not in schema.get("properties", {}):
                    _fill_defaults(instance[key], extra, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], root)
