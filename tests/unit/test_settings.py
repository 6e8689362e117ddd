"""Declared settings (`promptscape.settings`): strategies, tuners and dataset-selection
methods declare each setting's default and check, and one function validates them; every
declared check refuses its bad values with an error naming the setting's config key."""

from __future__ import annotations

import math
import re

import pytest

from promptscape import selection, settings
from promptscape import strategies as st
from promptscape.neural import families, tuners
from promptscape.validation import ConfigError

# Values each declared check must refuse. A new check without an entry here fails
# `test_every_declared_check_has_bad_values`.
BAD = {
    settings.POSITIVE: [0, -0.5, math.inf, math.nan, True, "1"],
    settings.POSITIVE_INTEGER: [0, -3, 2.5, True, "4", None],
    settings.PROBABILITY: [-0.1, 1.5, math.nan, False, "0.5"],
    settings.NULL_OR_POSITIVE_INTEGER: [0, 1.5, True, "10"],
    st._TEMPERATURE: [0, -1.0, math.inf, True],
    selection._UNIFORM_SHARE.check: [0, 0.0, 1.5, math.nan, True],
    st.STRATEGIES["exhaustive"].settings["max_budget"].check: [10, 0],
    st.STRATEGIES["surrogate"].settings["max_budget"].check: [10, 0],
}


def _declared():
    """(owner kind, owner, setting, Setting) of every declared setting."""
    for name, strategy in st.STRATEGIES.items():
        for setting, declared in strategy.declared.items():
            yield "strategy", name, setting, declared
    for name, tuner in tuners.TUNERS.items():
        for setting, declared in tuner.declared.items():
            yield "tuner", name, setting, declared
    for name, method in selection.METHODS.items():
        for setting, declared in method.settings.items():
            yield "selection", name, setting, declared


DECLARED = list(_declared())
IDS = [f"{kind}-{name}-{setting}" for kind, name, setting, _ in DECLARED]


@pytest.mark.parametrize("kind, name, setting, declared", DECLARED, ids=IDS)
def test_every_default_passes_its_own_check(kind, name, setting, declared):
    assert declared.check.test(declared.default)


@pytest.mark.parametrize("kind, name, setting, declared", DECLARED, ids=IDS)
def test_every_declared_check_has_bad_values(kind, name, setting, declared):
    assert BAD.get(declared.check), f"add values {declared.check.what!r} refuses to BAD"


def _tuning(spec: dict):
    lstm = families.PredictorConfig(family="lstm", hidden_size=8, embedding_dim=4)
    return tuners.parse(spec, where="experiments.e.tuning", predictors=["lstm"],
                        networks={"lstm": lstm}, tasks=["a"], dataset_sizes=[10],
                        num_seeds=2, max_prompt_length=4)


TUNER_SETTINGS = [(n, s, d) for kind, n, s, d in DECLARED if kind == "tuner"]


@pytest.mark.parametrize("name, setting, declared", TUNER_SETTINGS,
                         ids=[f"{n}-{s}" for n, s, _ in TUNER_SETTINGS])
def test_a_bad_tuner_setting_is_an_error_naming_its_key(name, setting, declared):
    for value in BAD[declared.check]:
        key = f"experiments.e.tuning.tuners.{name}.{setting}"
        with pytest.raises(ConfigError, match=re.escape(
                f"{key} == {value!r}, must be {declared.check.what}")):
            _tuning({"tuners": {name: {setting: value}}})
    # Its default, given explicitly, is taken.
    plan = _tuning({"tuners": {name: {setting: declared.default}}})
    assert dict(plan.tuners)[name][setting] == declared.default


STRATEGY_SETTINGS = [(n, s, d) for kind, n, s, d in DECLARED if kind == "strategy"]


@pytest.mark.parametrize("name, setting, declared", STRATEGY_SETTINGS,
                         ids=[f"{n}-{s}" for n, s, _ in STRATEGY_SETTINGS])
def test_a_bad_strategy_setting_is_an_error_naming_its_key(name, setting, declared):
    for value in BAD[declared.check]:
        key = f"experiments.x.strategies.{name}.{setting}"
        with pytest.raises(ConfigError, match=re.escape(
                f"{key} == {value!r}, must be {declared.check.what}")):
            st.parse({name: {setting: value}}, [1], "experiments.x")


SELECTION_SETTINGS = [(n, s, d) for kind, n, s, d in DECLARED if kind == "selection"]


@pytest.mark.parametrize("name, setting, declared", SELECTION_SETTINGS,
                         ids=[f"{n}-{s}" for n, s, _ in SELECTION_SETTINGS])
def test_a_bad_selection_setting_is_an_error_naming_its_key(name, setting, declared):
    for value in BAD[declared.check]:
        key = f"experiments.e.dataset_selection.{name}.{setting}"
        with pytest.raises(ConfigError, match=re.escape(
                f"{key} == {value!r}, must be {declared.check.what}")):
            selection.parse({"random": {}, name: {setting: value}},
                            where="experiments.e.dataset_selection", dataset_sizes=[10],
                            num_prompts=31)


def test_a_setting_from_the_tuning_section_is_checked_at_its_own_key():
    with pytest.raises(ConfigError, match=re.escape(
            "experiments.e.tuning.lora_rank == 0, must be an integer >= 1")):
        _tuning({"tuners": ["lora"], "lora_rank": 0})
    with pytest.raises(ConfigError, match=re.escape(
            "experiments.e.tuning.lora_rank is set, but lora is not among "
            "experiments.e.tuning.tuners")):
        _tuning({"tuners": ["head"], "lora_rank": 2})
    assert dict(_tuning({"tuners": ["lora"], "lora_rank": 3}).tuners)["lora"] == {
        "lora_rank": 3, "learning_rate": 0.01}


def test_validate_names_the_key_of_each_kind_of_mistake():
    declared = {"width": settings.Setting(4, settings.POSITIVE_INTEGER)}
    assert settings.validate(None, declared, "k", "beam") == {}
    assert settings.validate({"width": 2}, declared, "k", "beam") == {"width": 2}
    with pytest.raises(ConfigError, match=re.escape("k == 3, must be a mapping of beam's")):
        settings.validate(3, declared, "k", "beam")
    with pytest.raises(ConfigError, match=re.escape(
            "k: unknown setting(s) ['depth', 'size']; beam's settings: width")):
        settings.validate({"size": 1, "depth": 2}, declared, "k", "beam")
    with pytest.raises(ConfigError, match=re.escape("k: unknown setting(s) ['a']; x's "
                                                    "settings: none")):
        settings.validate({"a": 1}, {}, "k", "x")
    with pytest.raises(ConfigError, match=re.escape("k.width == 0, must be an integer >= 1")):
        settings.validate({"width": 0}, declared, "k", "beam")
