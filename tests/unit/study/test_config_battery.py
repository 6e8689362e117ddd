"""A battery of mistaken and unusual configs, as a new user would write them (issue 26): each
is refused at parse by `promptscape.study.config.load` with a named error (the message
names the key at fault), or accepted where it is unusual but valid. No Snakemake run: the
config module alone. Later work keeps this green."""

from __future__ import annotations

import copy

import pytest

from promptscape import landscape
from promptscape.study import config as config_lib
from promptscape.validation import ConfigError

DELETE = object()

# A small complete config: a Bayes study of two binary priors and a Markov prior.
BASE = {
    "sources": {
        "bernmix": {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
        "switching": {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05},
        "chains": {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]},
        "coin_0.7": {"kind": "coin", "theta": 0.7},
        "coin_0.5": {"kind": "coin", "theta": 0.5},
        "sticky": {"kind": "markov", "transition": [0.1, 0.9]},
    },
    "experiments": {
        "bernmix": {"pretraining": "bernmix", "predictors": ["bayes"],
                    "tasks": [{"source": "coin_0.7", "in_meta_distribution": True},
                              {"source": "coin_0.5", "in_meta_distribution": False}],
                    "max_prompt_length": 3, "task_length": 5, "dataset_sizes": [1, 10],
                    "num_seeds": 4, "evaluation_size": 100},
        "markov": {"pretraining": "chains", "predictors": ["bayes"],
                   "tasks": [{"source": "sticky", "in_meta_distribution": True}],
                   "max_prompt_length": 3, "task_length": 4, "dataset_sizes": [1, 10],
                   "num_seeds": 4, "evaluation_size": 100},
    },
}


def patched(*changes):
    """BASE with a key set: ``patched(path, value)``, or several as ``patched((path, value),
    ...)`` (a path is a tuple of keys; DELETE removes the key)."""
    if len(changes) == 2 and all(isinstance(k, str) for k in changes[0]):
        changes = (changes,)
    config = copy.deepcopy(BASE)
    for path, value in changes:
        node = config
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return config


BM = ("experiments", "bernmix")
MK = ("experiments", "markov")

REFUSED = [
    # --- issue 26: small evaluation sets (item 2)
    ("plain evaluation set of 2 (markov task)",
     patched((MK + ("evaluation_size",), 2)),
     f"experiments.markov.evaluation_size == 2, must be >= {landscape.MIN_EVALUATION_DRAWS}: "
     "the evaluation set of task 'sticky' (not exchangeable)"),
    ("T = 30 with evaluation_size 10",
     patched((MK + ("evaluation_size",), 10), (MK + ("task_length",), 30)),
     "experiments.markov.evaluation_size == 10, must be >= 30"),
    ("stratified evaluation set smaller than its strata",
     patched((BM + ("evaluation_size",), 11)),
     "experiments.bernmix.evaluation_size == 11, must be >= 12: the evaluation set of an "
     "exchangeable task is stratified"),
    # --- issue 26: labels (item 5)
    ("coin_0.9 labelled IMD under switching",
     patched(("sources", "coin_0.9"), {"kind": "coin", "theta": 0.9}) | {"experiments": {
         "s": {"pretraining": "switching", "tasks": [
             {"source": "coin_0.9", "in_meta_distribution": True}]}}},
     "experiments.s.tasks[0].in_meta_distribution == True, but task 'coin_0.9'"),
    ("coin_0.7 labelled OOMD under switching",
     BASE | {"experiments": {"s": {"pretraining": "switching", "tasks": [
         {"source": "coin_0.7", "in_meta_distribution": False}]}}},
     "experiments.s.tasks[0].in_meta_distribution == False, but task 'coin_0.7'"),
    # --- issue 26: figure settings and late cases handled at parse
    ("colour that is not one", patched(("figures",), {"predictor_colors": {"bayes": "notacolor"}}),
     "figures.predictor_colors.bayes == 'notacolor', not a colour"),
    ("colour of a predictor that does not exist",
     patched(("figures",), {"predictor_colors": {"lstmm": "red"}}),
     "figures.predictor_colors.lstmm: not a predictor"),
    ("strategy typo", patched((BM + ("strategies",), ["rnadom"])),
     "experiments.bernmix.strategies names 'rnadom', not a strategy; strategies: exhaustive"),
    ("strategy_budgets without strategies", patched((BM + ("strategy_budgets",), [5])),
     "experiments.bernmix.strategy_budgets == [5], but experiments.bernmix.strategies runs "
     "exhaustive search only"),
    ("theta as a string", patched(("sources", "coin_0.7", "theta"), "0.7"),
     "sources.coin_0.7.theta: '0.7' is not of type 'number'"),
    # --- typos in keys
    ("top-level key typo", patched(("experiment",), {}), "config: Additional properties"),
    ("experiment key typo", patched((BM + ("task_lenght",), 5)),
     "experiments.bernmix: Additional properties are not allowed ('task_lenght'"),
    ("task key typo", patched((BM + ("tasks",), [{"source": "coin_0.7", "in_meta": True}])),
     "experiments.bernmix.tasks[0]: Additional properties are not allowed ('in_meta'"),
    ("source parameter typo", patched(("sources", "coin_0.7"), {"kind": "coin", "thetta": 0.7}),
     "sources.coin_0.7: unknown field(s) ['thetta'] for source kind 'coin'"),
    ("source kind typo", patched(("sources", "coin_0.7"), {"kind": "con", "theta": 0.7}),
     "sources.coin_0.7.kind == 'con', unknown source kind; known kinds:"),
    ("source without kind", patched(("sources", "coin_0.7"), {"theta": 0.7}),
     "sources.coin_0.7: 'kind' is a required property"),
    # --- unknown or missing names
    ("task of an undefined source",
     patched((BM + ("tasks",), [{"source": "coin_0.8", "in_meta_distribution": True}])),
     "experiments.bernmix.tasks[0].source == 'coin_0.8', not a defined source"),
    ("undefined pretraining source", patched((BM + ("pretraining",), "bernmixx")),
     "experiments.bernmix.pretraining == 'bernmixx', not a defined source"),
    ("unknown predictor", patched((BM + ("predictors",), ["bayes", "lstmm"])),
     "experiments.bernmix.predictors[1] == 'lstmm': not 'bayes' and not a model"),
    ("duplicate task", patched((BM + ("tasks",), [
        {"source": "coin_0.7", "in_meta_distribution": True},
        {"source": "coin_0.7", "in_meta_distribution": True}])),
     "experiments.bernmix.tasks[1].source == 'coin_0.7' is listed twice"),
    ("no sources", patched(("sources",), DELETE), "config: 'sources' is a required property"),
    ("task without its label", patched((BM + ("tasks",), [{"source": "coin_0.7"}])),
     "experiments.bernmix.tasks[0]: 'in_meta_distribution' is a required property"),
    # --- wrong values and types
    ("N of 0", patched((BM + ("dataset_sizes",), [0, 10])),
     "experiments.bernmix.dataset_sizes[0]: 0 is less than the minimum of 1"),
    ("negative N", patched((BM + ("dataset_sizes",), [-5])), "experiments.bernmix.dataset_sizes[0]"),
    ("N as a string", patched((BM + ("dataset_sizes",), ["10"])),
     "experiments.bernmix.dataset_sizes[0]: '10' is not of type 'integer'"),
    ("no dataset sizes", patched((BM + ("dataset_sizes",), [])), "experiments.bernmix.dataset_sizes"),
    ("zero seeds", patched((BM + ("num_seeds",), 0)),
     "experiments.bernmix.num_seeds: 0 is less than the minimum of 1"),
    ("task_length 0", patched((BM + ("task_length",), 0)), "experiments.bernmix.task_length"),
    ("negative prompt length", patched((BM + ("max_prompt_length",), -1)),
     "experiments.bernmix.max_prompt_length"),
    ("label as a string", patched((BM + ("tasks",), [
        {"source": "coin_0.7", "in_meta_distribution": "yes"}])),
     "experiments.bernmix.tasks[0].in_meta_distribution: 'yes' is not of type 'boolean'"),
    ("theta of 1", patched(("sources", "coin_0.7", "theta"), 1.0), "sources.coin_0.7: coin.theta"),
    ("theta above 1", patched(("sources", "coin_0.7", "theta"), 7), "sources.coin_0.7: coin.theta"),
    ("mixture weights that do not sum to 1",
     patched(("sources", "bernmix", "weights"), [0.5, 0.6]), "sources.bernmix: coin_mixture.weights"),
    ("one weight too many", patched(("sources", "bernmix", "weights"), [0.5, 0.25, 0.25]),
     "sources.bernmix: coin_mixture.weights"),
    ("markov transition of one value", patched(("sources", "sticky", "transition"), [0.1]),
     "sources.sticky: markov.transition"),
    ("switching with both rates",
     patched(("sources", "switching", "switch_probs"), [0.1, 0.2]),
     "sources.switching: switching: give exactly one of switch_prob"),
    ("tasks as a mapping", patched((BM + ("tasks",), {"coin_0.7": True})),
     "experiments.bernmix.tasks"),
    ("binary task of a ternary prior", patched(
        ("sources", "dice"), {"kind": "dirichlet_categorical", "alpha": [1, 1, 1]}) | {
        "experiments": {"d": {"pretraining": "dice", "tasks": [
            {"source": "coin_0.7", "in_meta_distribution": True}]}}},
     "experiments.d.tasks[0].source == 'coin_0.7': a source over 2 symbols"),
    ("experiment named like a results folder",
     patched(("experiments", "figures"), BASE["experiments"]["bernmix"]),
     "experiments.figures: the name 'figures' is reserved"),
    ("enumeration budget of 0", patched(("landscape",), {"enumeration_budget": 0}),
     "landscape.enumeration_budget"),
    ("within_epsilon of 0", patched(("landscape",), {"within_epsilon": 0}),
     "landscape.within_epsilon"),
    ("negative within_epsilon", patched(("landscape",), {"within_epsilon": -1e-6}),
     "landscape.within_epsilon"),
    ("within_epsilon as a string", patched(("landscape",), {"within_epsilon": "1e-6"}),
     "landscape.within_epsilon"),
    ("within_epsilon true", patched(("landscape",), {"within_epsilon": True}),
     "landscape.within_epsilon"),
    ("infinite within_epsilon", patched(("landscape",), {"within_epsilon": float("inf")}),
     "landscape.within_epsilon == inf, must be a finite number"),
    ("NaN within_epsilon", patched(("landscape",), {"within_epsilon": float("nan")}),
     "landscape.within_epsilon"),
    ("within_epsilon as a list", patched(("landscape",), {"within_epsilon": [1e-6]}),
     "landscape.within_epsilon"),
]


@pytest.mark.parametrize("name,config,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_with_a_named_error(name, config, message):
    with pytest.raises(ConfigError) as error:
        config_lib.load(config)
    assert message in str(error.value)


ACCEPTED = [
    ("the base config", BASE),
    # Unusual but valid: a single prompt (the empty one); its figures say there is nothing
    # to plot where the landscape is flat (tests/unit/test_flat_figures.py).
    ("max_prompt_length 0", patched((BM + ("max_prompt_length",), 0))),
    ("a prior that no prompt moves", patched(("experiments",), {"flat": {
        "pretraining": "coin_0.7", "tasks": [
            {"source": "coin_0.7", "in_meta_distribution": True},
            {"source": "coin_0.5", "in_meta_distribution": False}]}})),
    ("the least plain evaluation set",
     patched((MK + ("evaluation_size",), landscape.MIN_EVALUATION_DRAWS))),
    ("the least stratified evaluation set", patched((BM + ("evaluation_size",), 12))),
    ("coin tasks of a switching prior, labelled by its coins",
     BASE | {"experiments": {"s": {"pretraining": "switching", "tasks": [
         {"source": "coin_0.7", "in_meta_distribution": True},
         {"source": "coin_0.5", "in_meta_distribution": False},
         {"source": "sticky", "in_meta_distribution": False}]}}}),
    ("dataset sizes out of order", patched((BM + ("dataset_sizes",), [10, 1]))),
    ("a wide within_epsilon", patched(("landscape",), {"within_epsilon": 0.01})),
    ("an integer within_epsilon", patched(("landscape",), {"within_epsilon": 1})),
]


@pytest.mark.parametrize("name,config", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted(name, config):
    study = config_lib.load(config)
    assert study.experiments


def test_within_epsilon_defaults_to_1e_6_nats_and_is_read_as_set():
    assert config_lib.load(BASE).within_epsilon == 1e-6
    assert config_lib.load(patched(("landscape",), {"within_epsilon": 0.01})).within_epsilon == 0.01
