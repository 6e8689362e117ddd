"""Config validation: defaults, the default study, and errors that name the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from promptscape.study import config as config_lib
from promptscape.validation import ConfigError

REPO = Path(__file__).resolve().parents[3]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_the_study():
    study = config_lib.load(DEFAULT)
    assert set(study.experiments) == {"bernmix", "betacoin", "switching", "dirichlet", "topics",
                                      "markov", "selection", "strategies", "words"}
    # Words over a..z and _: three languages of 300 words, L_max 2, T = 10, a held-out
    # language as the task.
    words = study.experiments["words"]
    assert words.pretraining.kind == "language_mixture" and words.pretraining.vocab_size == 27
    assert words.pretraining.languages == ("en", "de", "fr") and words.pretraining.words == 300
    assert (words.max_prompt_length, words.task_length) == (2, 10)
    assert {t.name: t.in_meta_distribution for t in words.tasks} == {"dutch": False}
    # Only `strategies` runs search strategies besides exhaustive search.
    assert [n for n, e in study.experiments.items() if e.runs_strategies] == ["strategies"]
    assert study.experiments["strategies"].strategies == (
        "exhaustive", "random", "beam", "hill_climb", "annealing", "evolutionary", "gradient",
        "surrogate")
    # The surrogate's one budget: the count classes of length <= 8 over 2 symbols.
    assert study.experiments["strategies"].search_strategies.probe_queries == 45
    # The prior is read back where the pretraining source is exchangeable.
    assert [n for n, e in study.experiments.items() if e.probes_prior] == [
        "bernmix", "betacoin", "dirichlet", "topics", "selection", "strategies"]
    # The study's experiments search random D_N only; `selection` runs every method.
    assert all(e.selections == ("random",) for n, e in study.experiments.items()
               if n != "selection")
    assert study.experiments["selection"].selections == (
        "random", "high_variance", "high_variance_weighted", "pool")
    expected = {
        "bernmix": ("coin_mixture", {"coin_0.7": True, "coin_0.2": True, "coin_0.5": False,
                                     "coin_0.9": False}),
        "betacoin": ("beta_coin", {"coin_0.5": True, "coin_0.8": True,
                                   "bimodal_0.2_0.8": False}),
        "switching": ("switching", {"coin_0.7": True, "coin_0.2": True, "coin_0.5": False}),
    }
    for name, (kind, tasks) in expected.items():
        exp = study.experiments[name]
        assert exp.pretraining.kind == kind
        assert {t.name: t.in_meta_distribution for t in exp.tasks} == tasks
        assert exp.max_prompt_length == 5
        assert min(exp.dataset_sizes) == 1 and max(exp.dataset_sizes) >= 1000
        assert len(exp.dataset_sizes) >= 8 and exp.num_seeds >= 100
        assert "bayes" in exp.predictors
    # Beyond binary: V = 3, T = 6, L_max = 4 (121 prompts), Bayes and both networks.
    for name, kind in (("dirichlet", "dirichlet_categorical"), ("topics", "topic_mixture")):
        exp = study.experiments[name]
        assert exp.pretraining.kind == kind and exp.vocab_size == 3
        assert (exp.task_length, exp.max_prompt_length) == (6, 4)
        assert exp.predictors == ("bayes", "lstm", "transformer")
        labels = {t.in_meta_distribution for t in exp.tasks}
        assert labels == {True, False}
    # A two-dimensional latent: sticky, alternating and memoryless chains in the
    # meta-distribution, a mixture of two coins outside it; Bayes and both networks.
    markov = study.experiments["markov"]
    assert markov.pretraining.kind == "markov_beta" and markov.vocab_size == 2
    assert {t.name: (t.source.kind, t.in_meta_distribution) for t in markov.tasks} == {
        "sticky": ("markov", True), "alternating": ("markov", True),
        "memoryless": ("markov", True), "bimodal_0.2_0.8": ("coin_mixture", False)}
    assert markov.predictors == ("bayes", "lstm", "transformer")
    assert study.experiments["bernmix"].pretraining.thetas == (0.2, 0.7)
    assert study.experiments["bernmix"].pretraining.weights == (0.5, 0.5)


def test_defaults_are_filled_without_changing_the_input():
    raw = copy.deepcopy(DEFAULT)
    study = config_lib.load(raw)
    assert raw == DEFAULT
    assert study.raw["figures"]["png_scale"] == 2
    assert study.raw["landscape"]["enumeration_budget"] == 2 ** 27 >= 131_071 * 1_024
    assert study.experiments["bernmix"].seed_blocks() == [(0, 99)]


def test_seed_blocks_cover_every_seed_once():
    raw = copy.deepcopy(DEFAULT)
    raw["experiments"]["bernmix"].update(num_seeds=10, seeds_per_job=4)
    blocks = config_lib.load(raw).experiments["bernmix"].seed_blocks()
    assert blocks == [(0, 3), (4, 7), (8, 9)]


def _set(path, value):
    def change(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return change


_DELETE = object()


def _add_models(models):
    """Models added to (or replacing by name) the config's own: the default config's words
    experiment names its own model."""
    def change(config):
        config["models"] = {**config.get("models", {}), **models}
    return change

BAD = [
    ("unknown strategy", _set(["experiments", "bernmix", "strategies"], ["exhaustive", "gcg"]),
     "experiments.bernmix.strategies names 'gcg', not a strategy; strategies: exhaustive, "
     "random, beam, hill_climb, annealing, evolutionary, gradient"),
    ("strategies without budgets", _set(["experiments", "bernmix", "strategies"], ["random"]),
     "experiments.bernmix.strategies names random, which run at budgets: give "
     "experiments.bernmix.strategy_budgets"),
    ("budgets without strategies", _set(["experiments", "bernmix", "strategy_budgets"], [10]),
     "experiments.bernmix.strategy_budgets == [10], but experiments.bernmix.strategies runs "
     "exhaustive search only, which takes no budget"),
    ("budgets for exhaustive alone", _set(["experiments", "bernmix"], {
        **DEFAULT["experiments"]["bernmix"], "strategies": {"exhaustive": None},
        "strategy_budgets": [5, 10]}),
     "experiments.bernmix.strategy_budgets == [5, 10], but experiments.bernmix.strategies runs "
     "exhaustive search only"),
    ("leading prompts of the empty prompt alone",
     _set(["experiments", "selection", "max_prompt_length"], 0),
     "experiments.selection.dataset_selection.high_variance.leading_prompts cannot apply: "
     "experiments.selection.max_prompt_length leaves 1 prompt to search"),
    ("more leading prompts than prompts",
     _set(["experiments", "selection", "max_prompt_length"], 1),
     "experiments.selection.dataset_selection.high_variance.leading_prompts == 5, must be in "
     "2..3 (the prompts searched, set by experiments.selection.max_prompt_length)"),
    ("surrogate on a prior that is not exchangeable",
     _set(["experiments", "switching", "strategies"], ["exhaustive", "surrogate"]),
     "experiments.switching.strategies names surrogate, but the pretraining source "
     "'switching' is of kind 'switching', not exchangeable: its prior cannot be read back"),
    ("gradient on Bayes alone", _set(["experiments", "selection"], {
        **DEFAULT["experiments"]["selection"], "strategies": ["gradient"],
        "strategy_budgets": [10]}),
     "experiments.selection.strategies names gradient, but every predictor"),
    ("misspelt strategy setting", _set(["experiments", "bernmix", "strategies"],
                                       {"beam": {"widht": 4}}),
     "experiments.bernmix.strategies.beam.widht is not a setting of beam; its settings: "
     "max_budget, width"),
    # A value that fits none of a key's forms (oneOf, anyOf): the error of the form whose
    # type it has, naming the entry, or the types allowed; never the key's whole description.
    ("strategy given as a string", _set(["experiments", "bernmix", "strategies"], "beam"),
     "experiments.bernmix.strategies: 'beam' is not of type 'array' or 'object'"),
    ("strategy setting out of range", _set(["experiments", "bernmix", "strategies"],
                                           {"random": {"max_budget": 0}}),
     "experiments.bernmix.strategies.random.max_budget == 0, must be null or an integer >= 1"),
    ("unknown selection method", _set(["experiments", "bernmix", "dataset_selection"],
                                      ["random", "magic"]),
     "experiments.bernmix.dataset_selection[1]: 'magic' is not one of ['random', 'pool', "
     "'high_variance', 'high_variance_weighted']"),
    ("unknown selection method in a mapping",
     _set(["experiments", "bernmix", "dataset_selection"], {"random": None, "magic": {}}),
     "experiments.bernmix.dataset_selection: Additional properties are not allowed ('magic' "
     "was unexpected); allowed: random, pool, high_variance, high_variance_weighted"),
    ("theta as a string", _set(["sources", "coin_0.7", "theta"], "0.7"),
     "sources.coin_0.7.theta: '0.7' is not of type 'number' or 'array'"),
    ("a string among thetas", _set(["sources", "bernmix", "thetas"], ["0.2", 0.7]),
     "sources.bernmix.thetas[0]: '0.2' is not of type 'number'"),
    ("unknown source kind", _set(["sources", "bernmix", "kind"], "dirichlet"),
     "sources.bernmix.kind == 'dirichlet', unknown source kind; known kinds: beta_coin, "
     "categorical, categorical_mixture, coin, coin_mixture, dirichlet_categorical, "
     "language_mixture, markov, markov_beta, switching, topic_mixture, word_stream"),
    ("theta 1.5", _set(["sources", "coin_0.7", "theta"], 1.5),
     "sources.coin_0.7: coin.theta == 1.5, must be < 1."),
    ("weights summing to 0.9", _set(["sources", "bernmix", "weights"], [0.5, 0.4]),
     "sources.bernmix: coin_mixture.weights sums to 0.9, must sum to 1."),
    ("task naming an undefined source",
     _set(["experiments", "bernmix", "tasks", 0, "source"], "coin_0.55"),
     "experiments.bernmix.tasks[0].source == 'coin_0.55', not a defined source; defined "
     "sources:"),
    ("undefined pretraining source", _set(["experiments", "betacoin", "pretraining"], "beta"),
     "experiments.betacoin.pretraining == 'beta', not a defined source"),
    ("L_max 30", _set(["experiments", "bernmix", "max_prompt_length"], 30),
     "experiments.bernmix.max_prompt_length: 30 is greater than the maximum of 16 (L_max, "
     "the longest prompt of the exhaustive search."),
    ("misspelt experiment key", _set(["experiments", "bernmix", "num_seed"], 10),
     "experiments.bernmix: Additional properties are not allowed ('num_seed' was unexpected); "
     "allowed: pretraining, tasks, predictors, max_prompt_length, task_length, dataset_sizes, "
     "num_seeds, seeds_per_job"),
    ("N of 0", _set(["experiments", "bernmix", "dataset_sizes"], [0, 10]),
     "experiments.bernmix.dataset_sizes[0]: 0 is less than the minimum of 1"),
    ("IMD label missing", _set(["experiments", "bernmix", "tasks", 1, "in_meta_distribution"],
                               _DELETE),
     "experiments.bernmix.tasks[1]: 'in_meta_distribution' is a required property"),
    ("unknown predictor", _set(["experiments", "bernmix", "predictors"], ["bayes", "gpt"]),
     "experiments.bernmix.predictors[1] == 'gpt': not 'bayes' and not a model of `models`; "
     "models: lstm, transformer"),
    # Named models: a name and a family that disagree never produce an artifact.
    ("lstm that is a transformer", _set(["models", "lstm"], {"family": "transformer"}),
     "models.lstm.family == 'transformer', but 'lstm' names the lstm family"),
    ("model without a family", _set(["models", "lstm_small"], {"hidden_size": 32}),
     "models.lstm_small.family is required: one of lstm, transformer (or post_training"),
    ("model of an unknown family", _set(["models", "gru"], {"family": "gru"}),
     "models.gru.family == 'gru', must be a network family: one of lstm, transformer"),
    ("model of the bayes family", _set(["models", "exact"], {"family": "bayes"}),
     "models.exact.family == 'bayes', must be a network family"),
    ("device in a model (training.device is the one place)",
     _set(["models", "lstm"], {"family": "lstm", "device": "cuda"}),
     "models.lstm: unknown key(s) ['device']"),
    ("bad field of an unused model", _set(["models", "wide"], {"family": "lstm", "hidden_size": 0}),
     "models.wide: lstm.hidden_size == 0, must be > 0."),
    ("experiment named like a results folder",
     _set(["experiments", "models"], {"pretraining": "bernmix", "tasks": [
         {"source": "coin_0.7", "in_meta_distribution": True}]}),
     "experiments.models: the name 'models' is reserved for a folder of results_dir"),
    # Whole-number floats are not integers: rejected at load, naming the key.
    ("task_length 8.0", _set(["experiments", "bernmix", "task_length"], 8.0),
     "experiments.bernmix.task_length: 8.0 is not of type 'integer'"),
    ("dataset size 1.0", _set(["experiments", "bernmix", "dataset_sizes"], [1.0]),
     "experiments.bernmix.dataset_sizes[0]: 1.0 is not of type 'integer'"),
    ("max_prompt_length 5.0", _set(["experiments", "bernmix", "max_prompt_length"], 5.0),
     "experiments.bernmix.max_prompt_length: 5.0 is not of type 'integer'"),
    ("num_seeds 100.0", _set(["experiments", "bernmix", "num_seeds"], 100.0),
     "experiments.bernmix.num_seeds: 100.0 is not of type 'integer'"),
    ("seeds_per_job 10.0", _set(["experiments", "bernmix", "seeds_per_job"], 10.0),
     "experiments.bernmix.seeds_per_job: 10.0 is not of type 'integer'"),
    ("evaluation_size 1e4", _set(["experiments", "bernmix", "evaluation_size"], 1e4),
     "experiments.bernmix.evaluation_size: 10000.0 is not of type 'integer'"),
    ("efficiency length 64.0", _set(["efficiency"], {"max_length": 64.0}),
     "efficiency.max_length: 64.0 is not of type 'integer'"),
    ("training steps 1000.0", _set(["models", "lstm"], {"family": "lstm", "steps": 1000.0}),
     "models.lstm: lstm.steps must be Integral, not float (1000.0)."),
    ("network size 32.0", _set(["models", "lstm"], {"family": "lstm", "hidden_size": 32.0}),
     "models.lstm: lstm.hidden_size must be Integral, not float (32.0)."),
    ("heldout size 2e4", _set(["training"], {"heldout_size": 2e4}),
     "training.heldout_size: 20000.0 is not of type 'integer'"),
    ("unknown source field", _set(["sources", "coin_0.2", "bias"], 0.3),
     "sources.coin_0.2: unknown field(s) ['bias'] for source kind 'coin'"),
    ("missing source field", _set(["sources", "coin_0.2", "theta"], _DELETE),
     "sources.coin_0.2: missing field(s) ['theta'] for source kind 'coin'"),
    ("evaluation set smaller than its strata",
     _set(["experiments", "bernmix", "evaluation_size"], 15),
     "experiments.bernmix.evaluation_size == 15, must be >= 22: the evaluation set"),
    ("old enumeration key", _set(["landscape"], {"max_enumeration_length": 14}),
     "landscape.max_enumeration_length was replaced by landscape.enumeration_budget"),
    ("enumeration budget 1e8", _set(["landscape"], {"enumeration_budget": 1e8}),
     "landscape.enumeration_budget: 100000000.0 is not of type 'integer'"),
    # Alphabets: a task over other symbols than its pretraining source's is refused.
    ("ternary task of a binary experiment",
     _set(["experiments", "bernmix", "tasks", 0, "source"], "cat_0.6_0.3_0.1"),
     "experiments.bernmix.tasks[0].source == 'cat_0.6_0.3_0.1': a source over 3 symbols "
     "(012), but experiment 'bernmix' is pretrained on 'bernmix' over 2 (01); a task must "
     "share"),
    ("binary task of a ternary experiment",
     _set(["experiments", "dirichlet", "tasks", 2, "source"], "coin_0.5"),
     "experiments.dirichlet.tasks[2].source == 'coin_0.5': a source over 2 symbols"),
    ("ternary evaluation set smaller than its strata",
     _set(["experiments", "dirichlet", "evaluation_size"], 50),
     "experiments.dirichlet.evaluation_size == 50, must be >= 56: the evaluation set of an "
     "exchangeable task is stratified by its symbol counts, 2 sequences at least for each "
     "of the 28 count vectors of T = 6 symbols over 3"),
    ("eleven symbols", _set(["sources", "cat_0.6_0.3_0.1", "probs"], [1 / 11] * 11),
     "sources.cat_0.6_0.3_0.1: a categorical source over 11 symbols; promptscape writes "
     "symbols as the digits 0..9"),
    # The meta-distribution label is checked against the prior's support where the kind
    # says what its support is.
    ("IMD label of a coin outside BernMix's coins",
     _set(["experiments", "bernmix", "tasks", 2, "in_meta_distribution"], True),
     "experiments.bernmix.tasks[2].in_meta_distribution == True, but task 'coin_0.5' "
     "(coin(theta=0.5)) lies outside the support of the pretraining prior 'bernmix'"),
    ("OOMD label of a coin under a uniform Beta",
     _set(["experiments", "betacoin", "tasks", 1, "in_meta_distribution"], False),
     "experiments.betacoin.tasks[1].in_meta_distribution == False, but task 'coin_0.8' "
     "(coin(theta=0.8)) lies inside the support"),
    ("IMD label of a two-mode task under a Dirichlet",
     _set(["experiments", "dirichlet", "tasks", 2, "in_meta_distribution"], True),
     "experiments.dirichlet.tasks[2].in_meta_distribution == True, but task 'twomode_0_2'"),
    ("IMD label of a categorical off the topics' segment",
     _set(["experiments", "topics", "tasks", 1, "in_meta_distribution"], True),
     "experiments.topics.tasks[1].in_meta_distribution == True, but task 'cat_0.2_0.6_0.2' "
     "(categorical(probs=[0.2, 0.6, 0.2])) lies outside the support"),
    ("OOMD label of a categorical on the topics' segment",
     _set(["experiments", "topics", "tasks", 0, "in_meta_distribution"], False),
     "experiments.topics.tasks[0].in_meta_distribution == False, but task 'cat_0.5_0.2_0.3' "
     "(categorical(probs=[0.5, 0.2, 0.3])) lies inside the support"),
    # Figure colours: one Vega cannot parse drew the figure without its lines; one of no
    # predictor (a misspelt name) was ignored.
    ("colour Vega cannot draw", _set(["figures"], {"predictor_colors": {"bayes": "notacolor"}}),
     "figures.predictor_colors.bayes == 'notacolor', not a colour: give a CSS colour name"),
    ("hex colour of five digits", _set(["figures"], {"predictor_colors": {"lstm": "#12345"}}),
     "figures.predictor_colors.lstm == '#12345', not a colour"),
    ("colour of no predictor", _set(["figures"], {"predictor_colors": {"lstmm": "red"}}),
     "figures.predictor_colors.lstmm: not a predictor; colours are given to bayes or a model "
     "of `models`: bayes, lstm, transformer"),
    ("source name unusable in paths", _set(["sources", "coin/0.2"], {"kind": "coin", "theta": 0.2}),
     "sources: 'coin/0.2' does not match"),
]


@pytest.mark.parametrize("change, message", [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_config_error_names_the_key(change, message):
    raw = copy.deepcopy(DEFAULT)
    change(raw)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_lib.load(raw)


def test_models_are_named_and_referred_to_by_name():
    raw = copy.deepcopy(DEFAULT)
    raw["models"].update({"lstm_small": {"family": "lstm", "hidden_size": 32}})
    raw["experiments"]["bernmix"]["predictors"] = ["bayes", "lstm", "lstm_small"]
    study = config_lib.load(raw)
    assert study.family("lstm_small") == "lstm" and study.family("bayes") == "bayes"
    small, default = (study.network(name, "bernmix") for name in ("lstm_small", "lstm"))
    assert (small.family, small.hidden_size, default.hidden_size) == ("lstm", 32, 64)
    assert study.model_identity("lstm_small", "bernmix") != study.model_identity("lstm", "bernmix")
    colors = study.predictor_colors()
    assert colors["lstm"] == "#d95f02" and colors["lstm_small"] not in (colors["lstm"],
                                                                        colors["bayes"])


def test_predictor_colors_take_every_form_vega_draws():
    raw = copy.deepcopy(DEFAULT)
    raw["models"].update({"lstm_small": {"family": "lstm", "hidden_size": 32}})
    forms = {"bayes": "SteelBlue", "lstm": "#abc", "transformer": "rgb(10, 20, 30)",
             "lstm_small": "hsl(120, 50%, 40%)"}
    raw["figures"] = {"predictor_colors": forms}
    colors = config_lib.load(raw).predictor_colors()
    assert {name: colors[name] for name in forms} == forms
    assert set(colors) - set(forms) == set(DEFAULT.get("models", {}))  # a palette colour
    assert len(config_lib.CSS_COLOR_KEYWORDS) == 148
    for color in ("#AABBCC", "#aabbcc80", "rgba(1,2,3,0.5)", "rgb(10%, 20%, 30%)",
                  "hsla(10, 20%, 30%, .5)", "transparent", "rebeccapurple"):
        assert config_lib.is_color(color), color
    for color in ("", "#ggg", "#1234567", "rgb(1, 2)", "hsl(120, 50, 50)", "blu", "0x112233"):
        assert not config_lib.is_color(color), color


def test_model_identity_is_canonical():
    """Reordering a model's keys, stating a default, or writing 1 for 1.0 keeps its identity;
    a real change (a field, the source's parameters, the sequence length) changes it."""
    def identity(models=None, **experiment):
        raw = copy.deepcopy(DEFAULT)
        if models is not None:
            raw["models"].update(models)
        raw["experiments"]["bernmix"].update(experiment)
        return config_lib.load(raw).model_identity("lstm", "bernmix")

    base = identity()
    assert identity({"lstm": {"family": "lstm"}}) == base
    assert identity({"lstm": {"hidden_size": 64, "family": "lstm", "steps": 1000}}) == base
    assert identity({"lstm": {"family": "lstm", "grad_clip": 1}}) == base
    assert identity({"lstm": {"family": "lstm", "hidden_size": 32}}) != base
    assert identity(max_prompt_length=8) != base  # longer prompts: a longer training length


def test_duplicate_keys_are_an_error_naming_key_and_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("sources:\n"
                    "  coin_0.7: {kind: coin, theta: 0.7}\n"
                    "  coin_0.7: {kind: coin, theta: 0.3}\n"
                    "experiments: {}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: key 'coin_0.7' is given twice "
                                                    "in one mapping (first on line 2)")):
        config_lib.check_config_files([path])
    with pytest.raises(ConfigError, match="given twice"):
        config_lib.load_file(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("sources:\n  c: {kind: coin, theta: 0.7, theta: 0.2}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{nested}:2: key 'theta' is given twice")):
        config_lib.check_config_files([nested])


def test_results_dir_expands_home_once_and_nothing_else(tmp_path, monkeypatch):
    """Every consumer reads the study's results_dir: one expanded folder, never a literal
    ./~ beside it. Environment variables stay as written."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for given, expected in [("~/runs/x", f"{tmp_path}/runs/x"), ("~", str(tmp_path)),
                            ("$HOME/x", "$HOME/x"), ("results", "results")]:
        study = config_lib.load({**DEFAULT, "results_dir": given})
        assert study.results_dir == study.raw["results_dir"] == expected, given


def test_results_dir_that_is_a_file_is_a_named_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "out").write_text("")
    for given in (str(tmp_path / "out"), "~/out"):
        with pytest.raises(ConfigError, match=re.escape(
                f"results_dir == {given!r}: {tmp_path / 'out'} is a file, must be a folder")):
            config_lib.load({**DEFAULT, "results_dir": given})
    config_lib.load({**DEFAULT, "results_dir": str(tmp_path)})  # an existing folder is fine


@pytest.mark.parametrize("text, line, problem", [
    ("sources:\n  c: {kind: coin, theta: 0.7\nexperiments: {}\n", 3, "expected ',' or '}'"),
    ("sources:\n  a: {kind: coin, theta: 0.7}\n b: {kind: coin, theta: 0.2}\n", 3,
     "expected <block end>"),
    ("sources:\n\tc: {kind: coin}\n", 2, "found character '\\t'"),
], ids=["unclosed brace", "bad indent", "tab"])
def test_yaml_syntax_error_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}:{line}: not valid YAML: {problem}")):
        config_lib.check_config_files([path])
    with pytest.raises(ConfigError, match=re.escape(f"{path}:{line}: not valid YAML")):
        config_lib.load_file(path)


@pytest.mark.parametrize("name", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_reads_strictly_and_loads(name):
    config_lib.load_file(name)


def test_replicates_keep_replicate_zero_and_give_the_others_their_own_identity():
    raw = copy.deepcopy(DEFAULT)
    plain = config_lib.load(raw)
    raw["models"].update({"lstm": {"family": "lstm", "replicates": 4}})
    study = config_lib.load(raw)
    assert study.replicates("lstm") == 4 and study.replicates("bayes") == 1
    assert study.replicates("transformer") == 1
    # Replicate 0 is the network of the config without replicates: same config, identity
    # and seeds (its config does not even mention the replicate).
    assert study.network("lstm", "bernmix", 0) == plain.network("lstm", "bernmix")
    assert "replicate" not in study.network("lstm", "bernmix", 0).to_dict()
    assert study.model_identity("lstm", "bernmix", 0) == plain.model_identity("lstm", "bernmix")
    identities = {study.model_identity("lstm", "bernmix", r) for r in range(4)}
    assert len(identities) == 4
    # Replicate r > 0 seeds its initialisation from the architecture and r.
    assert study.network("lstm", "bernmix", 2).architecture()["replicate"] == 2
    assert "replicate" not in study.network("lstm", "bernmix", 0).architecture()
    with pytest.raises(ValueError, match="replicates 0..3, not 4"):
        study.network("lstm", "bernmix", 4)
    exp = study.experiments["bernmix"]
    # The LSTM fine-tuned on coin(0.7) has its base's replicates, each tuned from its own.
    assert study.predictor_replicates(exp) == [("bayes", 0), ("lstm", 0), ("lstm", 1),
                                               ("lstm", 2), ("lstm", 3), ("transformer", 0),
                                               *[("lstm_ft_0.7", r) for r in range(4)]]


@pytest.mark.parametrize("entry, message", [
    ({"family": "lstm", "replicates": 0}, r"models.lstm.replicates: 0 is less than the minimum"),
    ({"family": "lstm", "replicates": 2.5}, r"models.lstm.replicates: 2.5 is not of type"),
    ({"family": "lstm", "replicates": True}, r"models.lstm.replicates: True is not of type"),
    ({"family": "lstm", "replicate": 1}, r"models.lstm.replicate is set by the workflow"),
])
def test_bad_replicates_are_named_config_errors(entry, message):
    raw = copy.deepcopy(DEFAULT)
    raw["models"].update({"lstm": entry})
    with pytest.raises(ConfigError, match=message):
        config_lib.load(raw)


def test_the_strategies_experiment_shares_the_bernmix_networks():
    """Its L_max + T is bernmix's, so the default LSTM on bernmix is one network of
    unchanged identity (a longer context would retrain it and move bernmix's results)."""
    study = config_lib.load(DEFAULT)
    strategies, bernmix = study.experiments["strategies"], study.experiments["bernmix"]
    assert strategies.pretraining_name == bernmix.pretraining_name
    assert (strategies.max_prompt_length + strategies.task_length
            <= bernmix.max_prompt_length + bernmix.task_length)
    others = {n: e for n, e in DEFAULT["experiments"].items() if n != "strategies"}
    alone = config_lib.load({**DEFAULT, "experiments": others})
    assert (study.model_identity("lstm", "bernmix")
            == alone.model_identity("lstm", "bernmix"))
