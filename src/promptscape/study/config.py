"""The study's configuration: schema validation with defaults, then the semantic checks a
schema cannot express (sources build and validate themselves, tasks name defined sources,
predictors name defined models).

`load` is what the Snakefile calls at parse time; it imports nothing heavier than numpy and
scipy.special, and every error is a ConfigError that starts with the config key at fault.
Reading the files strictly and the schema's validation are `promptscape.study.schema`'s;
which colours a figure can draw, `promptscape.study.colors`'.

Identities are canonical: a source or a model is identified by its complete parameters (the
dataclass with every default filled in), never by the order or the spelling of the config
mapping, so reordering keys or stating a default changes no artifact and reruns nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
from pathlib import Path

import yaml

from promptscape import prior as prior_lib
from promptscape import seeding
from promptscape.neural import families
from promptscape.neural import post_training as post_training_lib
from promptscape.neural import tuners as tuners_lib
from promptscape import prompts as prompts_lib
from promptscape import selection as selection_lib
from promptscape import strategies as strategies_lib
from promptscape.sources import Source, build_source
from promptscape.sources.base import in_meta_distribution
from promptscape.study.colors import is_color
from promptscape.study.schema import check_config_files, validate_schema
from promptscape.validation import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    source: Source
    in_meta_distribution: bool


def probe_length(max_prompt_length: int, task_length: int) -> int:
    """The longest context probe_prior queries: `prior.PROBE_LENGTH`, or one symbol less
    than the experiment's networks see (L_max + T), whichever is shorter."""
    return min(prior_lib.PROBE_LENGTH, max_prompt_length + task_length - 1)


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
    # `dataset_selection`: the methods run side by side (promptscape.selection).
    dataset_selection: "selection_lib.Plan" = selection_lib.Plan(((selection_lib.RANDOM, {}),))
    # `strategies` and `strategy_budgets`: the search strategies (promptscape.strategies).
    search_strategies: "strategies_lib.Plan" = strategies_lib.Plan()
    # `tuning`: the tuners run on the experiment's networks (promptscape.neural.tuners);
    # None where the experiment has no tuning section.
    tuning: "tuners_lib.Plan | None" = None

    @property
    def selections(self) -> tuple[str, ...]:
        """The dataset-selection methods of the experiment, in config order (`random`
        alone by default; `pool` after the pooled methods)."""
        return self.dataset_selection.names

    @property
    def strategies(self) -> tuple[str, ...]:
        """The search strategies of the experiment, in config order (`exhaustive` alone by
        default)."""
        return self.search_strategies.names

    @property
    def runs_strategies(self) -> bool:
        """Whether a strategy besides exhaustive runs, so the strategy stage has work."""
        return self.strategies != (strategies_lib.EXHAUSTIVE,)

    @property
    def strategy_max_prompt_length(self) -> int:
        """The longest prompt the search strategies search (`strategy_max_prompt_length`;
        default max_prompt_length)."""
        return self.search_strategies.prompt_length(self.max_prompt_length)

    @property
    def probe_length(self) -> int:
        """The longest probe context of rule probe_prior (`probe_length`)."""
        return probe_length(self.max_prompt_length, self.task_length)

    @property
    def probes_prior(self) -> bool:
        """Whether its predictors' prior is read back (rule probe_prior): where the
        pretraining source is exchangeable (promptscape.prior)."""
        return self.pretraining.exchangeable

    @property
    def vocab_size(self) -> int:
        """V of the experiment: its pretraining source's, which every task shares."""
        return self.pretraining.vocab_size

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
class Model:
    """A named neural model of the config (`models.<name>`): a family and its overrides."""

    name: str
    family: str
    settings: dict  # the config's fields, less `family` and `replicates`
    replicates: int = 1  # independently trained networks (`models.<name>.replicates`)
    # `models.<name>.post_training`: its base's network tuned on another source (family and
    # replicates are then its base's, and `settings` is empty); None: trained from scratch.
    post_training: "post_training_lib.PostTraining | None" = None


# Models that exist without being configured: one per network family, named after it.
DEFAULT_MODELS = {name: {"family": name} for name in families.NEURAL_FAMILIES}
# Folders directly under results_dir that are not experiments.
RESERVED_NAMES = ("models", "logs", "benchmarks", "figures")


@dataclasses.dataclass(frozen=True)
class Study:
    raw: dict  # the validated config with defaults filled in
    sources: dict[str, Source]
    experiments: dict[str, Experiment]
    models: dict[str, Model]

    @property
    def results_dir(self) -> str:
        """Where every artifact of this config goes (`results_dir`, default ``results``)."""
        return self.raw["results_dir"]

    @property
    def figures(self) -> dict:
        return self.raw["figures"]

    def family(self, predictor: str) -> str:
        """The family of a predictor name: ``bayes``, or the family of the named model."""
        return "bayes" if predictor == "bayes" else self.models[predictor].family

    def is_neural(self, predictor: str) -> bool:
        return families.FAMILIES[self.family(predictor)].neural

    def post_training(self, predictor: str) -> "post_training_lib.PostTraining | None":
        """The post-training of a model (`models.<name>.post_training`), None for bayes and
        for a network trained from scratch."""
        return None if predictor == "bayes" else self.models[predictor].post_training

    def lineage(self, predictor: str) -> list[str]:
        """The predictor, its base, its base's base, ...: the models whose networks it is
        built from, itself first (a network trained from scratch: itself alone)."""
        out = [predictor]
        while self.post_training(out[-1]) is not None:
            out.append(self.post_training(out[-1]).base)
        return out

    def networks(self) -> list[tuple[str, str, int]]:
        """Every (pretraining source, model, replicate) network the study builds: those of
        the experiments' predictors and, for a post-trained one, of its bases (trained even
        where no experiment lists them), sorted."""
        return sorted({(exp.pretraining_name, m, r) for exp in self.experiments.values()
                       for p in exp.predictors if self.is_neural(p)
                       for m in self.lineage(p) for r in range(self.replicates(m))})

    def replicates(self, predictor: str) -> int:
        """How many independently trained networks a predictor has (1 for bayes): its
        replicates are 0..k-1 (`models.<name>.replicates`)."""
        return 1 if predictor == "bayes" else self.models[predictor].replicates

    def predictor_replicates(self, exp: "Experiment") -> list[tuple[str, int]]:
        """Every (predictor, replicate) of an experiment, in config order: the units that
        are searched, landscaped and aggregated (bayes has replicate 0 only)."""
        return [(p, r) for p in exp.predictors for r in range(self.replicates(p))]

    def predictor_colors(self) -> dict[str, str]:
        """A colour for every predictor name: the configured one, else its family's when it
        is the family's default model, else the next of a fixed palette."""
        configured = self.figures["predictor_colors"]
        spare = itertools.cycle([c for c in PALETTE if c not in configured.values()])
        return {name: configured.get(name) or next(spare) for name in ["bayes", *self.models]}

    @property
    def enumeration_budget(self) -> int:
        """`landscape.enumeration_budget`: prompts times distinct task sequences that may be
        scored exhaustively (`promptscape.landscape.enumerates` decides with it)."""
        return self.raw["landscape"]["enumeration_budget"]

    @property
    def within_epsilon(self) -> float:
        """`landscape.within_epsilon`: a chosen prompt is within epsilon of the optimum when
        KL(s_hat) - KL(s*) <= epsilon (nats; the reliability and strategies tables)."""
        return float(self.raw["landscape"]["within_epsilon"])

    @property
    def training(self) -> dict:
        """The `training` section: device, threads, gpus, heldout_size."""
        return dict(self.raw["training"])

    def network(self, name: str, source_name: str,
                replicate: int = 0) -> families.PredictorConfig:
        """The complete config of replicate `replicate` of model `name` trained on
        `source_name`: the config's overrides, the family's defaults, and a sequence length
        that covers every prompted task of the experiments using the model on this source."""
        model = self.models[name]
        if not 0 <= replicate < model.replicates:
            raise ValueError(f"model {name!r} has replicates 0..{model.replicates - 1}, not "
                             f"{replicate}")
        settings = dict(model.settings)
        if replicate:
            settings["replicate"] = replicate
        if model.post_training is not None:  # its base's network, tuned
            return self.network(model.post_training.base, source_name, replicate)
        # Long enough for every experiment on the source that uses the model, directly or
        # through a model post-trained from it.
        needed = max((e.max_prompt_length + e.task_length for e in self.experiments.values()
                      if e.pretraining_name == source_name
                      and any(name in self.lineage(p) for p in e.predictors if p != "bayes")),
                     default=1)
        settings.setdefault("sequence_length", needed)
        if settings["sequence_length"] < needed:
            raise ConfigError(f"models.{name}.sequence_length == {settings['sequence_length']}, "
                              f"must be >= {needed} (L_max + T of an experiment pretrained on "
                              f"{source_name!r})")
        return families.PredictorConfig.from_dict({"family": model.family, **settings},
                                                      where=f"models.{name}")

    def model_identity(self, name: str, source_name: str, replicate: int = 0) -> str:
        """A short stable hash of everything that makes the trained network what it is: its
        complete config (with its replicate, when not 0) and its pretraining source's
        parameters (not their names, not the device). Model folders carry it, so configs
        never overwrite each other's networks. A post-trained model's: its base's identity,
        its post-training settings and its post-training source's parameters, so a change
        of the base retunes it and a change of its own settings retrains no base."""
        post = self.models[name].post_training
        if post is not None:
            seed = seeding.stable_seed("post_training",
                                       self.model_identity(post.base, source_name, replicate),
                                       post.settings(), self.sources[post.source].to_dict())
            return f"{seed:016x}"[:10]
        seed = seeding.stable_seed("model", self.sources[source_name].to_dict(),
                                   self.network(name, source_name, replicate).seed_identity())
        return f"{seed:016x}"[:10]

    @property
    def efficiency(self) -> dict:
        """The efficiency stage's settings: ``max_length`` and ``num_typical`` (K)."""
        return dict(self.raw["efficiency"])

    @property
    def prediction(self) -> dict:
        """The reliability prediction's settings: ``draws``, ``exact_max_outcomes`` and
        ``reference_N``."""
        return dict(self.raw["prediction"])


def load(config: dict, schema_path: str | Path = SCHEMA_PATH) -> Study:
    """Validate `config` (a copy; defaults filled in) and build the study."""
    with open(schema_path) as handle:
        # libyaml's parser where PyYAML has it (the same safe constructors): the schema is
        # 23 kB, which Python's parser read in 0.02 s (libyaml: 0.003) at every parse of the
        # Snakefile.
        schema = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    config = copy.deepcopy(config)
    _refuse_replaced_keys(config)
    validate_schema(config, schema)
    config["results_dir"] = _results_dir(config["results_dir"])
    _check_within_epsilon(config["landscape"]["within_epsilon"])
    sources = {}
    for name, spec in config["sources"].items():
        sources[name] = build_source(spec, where=f"sources.{name}")
    models = _models(config["models"], sources)
    experiments = {}
    for name, exp in config["experiments"].items():
        where = f"experiments.{name}"
        if name in RESERVED_NAMES:
            raise ConfigError(f"{where}: the name {name!r} is reserved for a folder of "
                              f"results_dir; reserved: {', '.join(RESERVED_NAMES)}")
        experiments[name] = _experiment(name, exp, sources, models, where)
    _check_predictor_colors(config["figures"]["predictor_colors"], models)
    study = Study(raw=config, sources=sources, experiments=experiments, models=models)
    _check_networks(study)
    for name, exp in experiments.items():
        spec = config["experiments"][name].get("tuning")
        if spec is not None:
            networks = {p: study.network(p, exp.pretraining_name) for p in exp.predictors
                        if study.is_neural(p)}
            experiments[name] = dataclasses.replace(exp, tuning=tuners_lib.parse(
                spec, where=f"experiments.{name}.tuning", predictors=exp.predictors,
                networks=networks, tasks=[t.name for t in exp.tasks],
                dataset_sizes=exp.dataset_sizes, num_seeds=exp.num_seeds,
                max_prompt_length=exp.max_prompt_length))
    return study


# Keys of older configs and what replaced them: a named error, never a bare schema message.
REPLACED_KEYS = {
    ("landscape", "max_enumeration_length"): (
        "landscape.max_enumeration_length was replaced by landscape.enumeration_budget: "
        "exhaustive enumeration is now used wherever P prompts x 2^T task sequences fit "
        "the budget (default 2^27 = 134,217,728, e.g. 131,071 prompts x 1,024 sequences); "
        "remove max_enumeration_length and set enumeration_budget if the default does not suit"),
}


def _check_within_epsilon(value) -> None:
    """The schema bounds it below (> 0); YAML's .inf and .nan pass that, and mean nothing."""
    if not math.isfinite(float(value)):
        raise ConfigError(f"landscape.within_epsilon == {value}, must be a finite number of "
                          "nats > 0 (default 1e-6)")


def _refuse_replaced_keys(config: dict) -> None:
    for path, message in REPLACED_KEYS.items():
        node = config
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            raise ConfigError(message)


def _results_dir(value: str) -> str:
    """`results_dir` with a leading ``~`` expanded, once, so that every job and reader sees
    one folder (a job that wrote into a literal ``./~`` and a reader that expanded it would
    not); environment variables are not expanded. A file there is a ConfigError."""
    path = os.path.expanduser(value)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"results_dir == {value!r}: {path} is a file, must be a folder "
                          "(or not exist yet: the workflow creates it)")
    return path


def load_file(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> Study:
    """`load` of a config file, read strictly (`check_config_files`)."""
    return load(check_config_files([path])[0], schema_path)


def _models(spec: dict, sources: dict) -> dict[str, Model]:
    """Named models: the defaults (one per network family, named after it) and the config's;
    a post-trained model takes its family and replicates from its base."""
    models, posts = {}, {}
    entries = {**DEFAULT_MODELS, **spec}
    for name, entry in entries.items():
        where = f"models.{name}"
        if "post_training" in entry:
            posts[name] = post_training_lib.parse(entry["post_training"],
                                                  where=f"{where}.post_training",
                                                  models=list(entries), sources=sources)
            other = sorted(set(entry) - {"post_training", "family"})
            if other:
                raise ConfigError(
                    f"{where}: {', '.join(other)} set beside post_training; a post-trained "
                    f"model has its base's network, replicates and training (set them on "
                    f"models.{posts[name].base}); it takes only post_training (and family, "
                    "which must be its base's)")
            continue
        if "family" not in entry:
            raise ConfigError(f"{where}.family is required: one of "
                              f"{', '.join(families.NEURAL_FAMILIES)} (or post_training, for "
                              "a network tuned from another model's)")
        family = entry["family"]
        if family not in families.NEURAL_FAMILIES:
            raise ConfigError(f"{where}.family == {family!r}, must be a network family: one "
                              f"of {', '.join(families.NEURAL_FAMILIES)}")
        if name in families.FAMILIES and name != family:
            raise ConfigError(f"{where}.family == {family!r}, but {name!r} names the "
                              f"{name} family: a model named after a family must be of that "
                              "family; give this model another name")
        if "replicate" in entry:
            raise ConfigError(f"{where}.replicate is set by the workflow, one per trained "
                              f"network; ask for k networks with {where}.replicates: k")
        settings = {k: v for k, v in entry.items() if k not in ("family", "replicates")}
        models[name] = Model(name, family, settings, entry.get("replicates", 1))  # schema-checked
    for name, post in posts.items():
        where = f"models.{name}"
        chain = [name]
        while chain[-1] in posts:
            base = posts[chain[-1]].base
            if base in chain:
                raise ConfigError(f"{where}.post_training.base: the models' bases form a "
                                  f"cycle ({' -> '.join(chain + [base])}); a chain of "
                                  "post-trainings must end at a model trained from scratch")
            chain.append(base)
        root = models[chain[-1]]
        family = entries[name].get("family", root.family)
        if family != root.family:
            raise ConfigError(f"{where}.family == {family!r}, but its base {chain[1]!r} is a "
                              f"{root.family} network; a post-trained model is its base's "
                              "network (leave family out)")
        if name in families.FAMILIES:
            raise ConfigError(f"{where}.post_training: {name!r} names the {name} family's "
                              "default model, which is trained from scratch; give the "
                              "post-trained model another name")
        models[name] = Model(name, root.family, {}, root.replicates, post_training=post)
    return {name: models[name] for name in entries}


def _check_predictor_colors(colors: dict, models: dict) -> None:
    """Every colour of `figures.predictor_colors` belongs to a predictor (bayes or a model)
    and is one Vega can draw; a colour it cannot parse draws the figure without its lines."""
    known = ["bayes", *models]
    for name, color in colors.items():
        where = f"figures.predictor_colors.{name}"
        if name not in known:
            raise ConfigError(f"{where}: not a predictor; colours are given to bayes or a "
                              f"model of `models`: {', '.join(known)}")
        if not is_color(color):
            raise ConfigError(f"{where} == {color!r}, not a colour: give a CSS colour name "
                              "(such as steelblue), #rgb, #rrggbb, rgb(r, g, b) or "
                              "hsl(h, s%, l%)")


def _check_networks(study: Study) -> None:
    """Build every network config the study will train, and every other model's with the
    default length, so that a bad model key fails at load whether or not it is used."""
    used = set()
    for exp in study.experiments.values():
        for name in exp.predictors:
            if study.is_neural(name):
                study.network(name, exp.pretraining_name)
                used.add(name)
                for model in study.lineage(name):
                    _check_post_training(study, model, exp)
    for name, model in study.models.items():
        if name not in used:
            root = study.models[study.lineage(name)[-1]]
            network = families.PredictorConfig.from_dict(
                {"family": root.family, **root.settings}, where=f"models.{root.name}")
            if model.post_training is not None:
                post_training_lib.check_lora_rank(model.post_training, network,
                                                  f"models.{name}.post_training")


def _check_post_training(study: Study, name: str, exp: Experiment) -> None:
    """A post-trained model used by `exp` (directly or as a base): its source shares the
    experiment's alphabet, and its LoRA rank fits its network."""
    post = study.post_training(name)
    if post is None:
        return
    where = f"models.{name}.post_training"
    source, pretraining = study.sources[post.source], exp.pretraining
    if (source.vocab_size != pretraining.vocab_size
            or source.alphabet != pretraining.alphabet):
        raise ConfigError(
            f"{where}.source == {post.source!r}: a source over {source.vocab_size} symbols "
            f"({source.alphabet}), but experiment {exp.name!r} uses the model and is "
            f"pretrained on {exp.pretraining_name!r} over {pretraining.vocab_size} "
            f"({pretraining.alphabet}); a network is post-trained on sequences of its own "
            "alphabet")
    post_training_lib.check_lora_rank(post, study.network(name, exp.pretraining_name), where)


def _experiment(name, exp, sources, models, where) -> Experiment:
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
        task_source = source(task_where, task["source"])
        if (task_source.vocab_size != pretraining.vocab_size
                or task_source.alphabet != pretraining.alphabet):
            raise ConfigError(
                f"{task_where} == {task['source']!r}: a source over {task_source.vocab_size} "
                f"symbols ({task_source.alphabet}), but experiment {name!r} is pretrained on "
                f"{exp['pretraining']!r} over {pretraining.vocab_size} "
                f"({pretraining.alphabet}); a task must share its pretraining source's "
                "alphabet")
        inside = in_meta_distribution(pretraining, task_source)
        if inside is not None and inside != task["in_meta_distribution"]:
            raise ConfigError(
                f"{where}.tasks[{i}].in_meta_distribution == {task['in_meta_distribution']}, "
                f"but task {task['source']!r} ({task_source.describe()}) lies "
                f"{'inside' if inside else 'outside'} the support of the pretraining prior "
                f"{exp['pretraining']!r} ({pretraining.describe()})")
        tasks.append(Task(task["source"], task_source, task["in_meta_distribution"]))
    for i, predictor in enumerate(exp["predictors"]):
        if predictor != "bayes" and predictor not in models:
            raise ConfigError(f"{where}.predictors[{i}] == {predictor!r}: not 'bayes' and not "
                              f"a model of `models`; models: {', '.join(models)}")
    search_strategies = strategies_lib.parse(exp["strategies"], exp["strategy_budgets"],
                                             where=where,
                                             max_length=exp.get("strategy_max_prompt_length"),
                                             max_prompt_length=exp["max_prompt_length"])
    if search_strategies.needs_prior:
        if not pretraining.exchangeable:
            raise ConfigError(
                f"{where}.strategies names surrogate, but the pretraining source "
                f"{exp['pretraining']!r} is of kind {pretraining.kind!r}, not exchangeable: "
                "its prior cannot be read back (promptscape.prior)")
        search_strategies = dataclasses.replace(search_strategies, probe_queries=(
            prior_lib.num_queries(pretraining.vocab_size, probe_length(
                exp["max_prompt_length"], exp["task_length"]))))
    if search_strategies.needs_gradient and set(exp["predictors"]) <= {"bayes"}:
        raise ConfigError(f"{where}.strategies names gradient, but every predictor of "
                          f"{where}.predictors {exp['predictors']} is the exact Bayes "
                          "predictor, which has no gradient: add a network or drop gradient")
    from promptscape.landscape import MIN_EVALUATION_DRAWS, MIN_PER_STRATUM

    import math

    plain = [t.name for t in tasks if not t.source.exchangeable]
    if plain and exp["evaluation_size"] < MIN_EVALUATION_DRAWS:
        raise ConfigError(f"{where}.evaluation_size == {exp['evaluation_size']}, must be >= "
                          f"{MIN_EVALUATION_DRAWS}: the evaluation set of task "
                          f"{plain[0]!r} (not exchangeable) is drawn plainly, and a mean's "
                          f"standard error needs at least {MIN_EVALUATION_DRAWS} draws to be "
                          "read against the normal (docs/science.md, \"Small evaluation "
                          "sets\")")

    classes = math.comb(exp["task_length"] + pretraining.vocab_size - 1,
                        pretraining.vocab_size - 1)
    needed = MIN_PER_STRATUM * classes
    if any(t.source.exchangeable for t in tasks) and exp["evaluation_size"] < needed:
        raise ConfigError(f"{where}.evaluation_size == {exp['evaluation_size']}, must be >= "
                          f"{needed}: the evaluation set of an exchangeable task is stratified "
                          f"by its symbol counts, {MIN_PER_STRATUM} sequences at least for "
                          f"each of the {classes} count vectors of T = {exp['task_length']} "
                          f"symbols over {pretraining.vocab_size}")
    return Experiment(
        name=name, pretraining_name=exp["pretraining"], pretraining=pretraining,
        tasks=tuple(tasks), predictors=tuple(exp["predictors"]),
        max_prompt_length=exp["max_prompt_length"], task_length=exp["task_length"],
        dataset_sizes=tuple(sorted(exp["dataset_sizes"])), num_seeds=exp["num_seeds"],
        seeds_per_job=exp["seeds_per_job"], evaluation_size=exp["evaluation_size"],
        dataset_selection=selection_lib.parse(
            exp["dataset_selection"], where=f"{where}.dataset_selection",
            dataset_sizes=exp["dataset_sizes"],
            num_prompts=prompts_lib.num_prompts(exp["max_prompt_length"],
                                                pretraining.vocab_size),
            prompts_key=f"{where}.max_prompt_length"),
        search_strategies=search_strategies,
    )


# Colours of predictors with none configured (colour-blind-safe, Okabe and Ito).
PALETTE = ("#009e73", "#e69f00", "#56b4e9", "#cc79a7", "#0072b2", "#f0e442", "#d55e00",
           "#999999")


