"""Config validation: defaults, the default study, and errors that name the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from promptscape import config as config_lib
from promptscape.validation import ConfigError

REPO = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_the_study():
    study = config_lib.load(DEFAULT)
    assert set(study.experiments) == {"bernmix", "betacoin", "switching"}
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
    assert study.experiments["bernmix"].pretraining.thetas == (0.2, 0.7)
    assert study.experiments["bernmix"].pretraining.weights == (0.5, 0.5)


def test_defaults_are_filled_without_changing_the_input():
    raw = copy.deepcopy(DEFAULT)
    study = config_lib.load(raw)
    assert raw == DEFAULT
    assert study.raw["figures"]["png_scale"] == 2
    assert study.raw["landscape"]["max_enumeration_length"] == 14
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

BAD = [
    ("unknown source kind", _set(["sources", "bernmix", "kind"], "dirichlet"),
     "sources.bernmix.kind == 'dirichlet', unknown source kind; known kinds: beta_coin, "
     "coin, coin_mixture, switching"),
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
     "experiments.bernmix.max_prompt_length: 30 is greater than the maximum of 12 (L_max, "
     "the longest prompt of the exhaustive search. The search scores all 2^(L_max+1)-1 "
     "prompts on every task sequence, so the limit is 12 (8,191 prompts).)"),
    ("misspelt experiment key", _set(["experiments", "bernmix", "num_seed"], 10),
     "experiments.bernmix: Additional properties are not allowed ('num_seed' was unexpected)"),
    ("N of 0", _set(["experiments", "bernmix", "dataset_sizes"], [0, 10]),
     "experiments.bernmix.dataset_sizes[0]: 0 is less than the minimum of 1"),
    ("IMD label missing", _set(["experiments", "bernmix", "tasks", 1, "in_meta_distribution"],
                               _DELETE),
     "experiments.bernmix.tasks[1]: 'in_meta_distribution' is a required property"),
    ("unknown predictor", _set(["experiments", "bernmix", "predictors"], ["bayes", "gpt"]),
     "experiments.bernmix.predictors[1]: 'gpt' is not one of ['bayes', 'lstm', 'transformer']"),
    ("unknown source field", _set(["sources", "coin_0.2", "bias"], 0.3),
     "sources.coin_0.2: unknown field(s) ['bias'] for source kind 'coin'"),
    ("missing source field", _set(["sources", "coin_0.2", "theta"], _DELETE),
     "sources.coin_0.2: missing field(s) ['theta'] for source kind 'coin'"),
    ("source name unusable in paths", _set(["sources", "coin/0.2"], {"kind": "coin", "theta": 0.2}),
     "sources: 'coin/0.2' does not match"),
]


@pytest.mark.parametrize("change, message", [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_config_error_names_the_key(change, message):
    raw = copy.deepcopy(DEFAULT)
    change(raw)
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_lib.load(raw)
