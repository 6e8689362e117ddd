"""Declared settings: what a registry member takes, and the one place a config's settings of
it are checked.

A registry member with settings of its own (a search strategy, `promptscape.strategies`; a
tuner, `promptscape.neural.tuners`; a dataset-selection method, `promptscape.selection`)
declares each as a `Setting`: its default and its `Check` (the test of a value and what a
value must be, the message's words). `validate` checks a config's settings of a member
against its declarations, every error a ConfigError naming the config key of the setting::

    experiments.x.strategies.beam: unknown setting(s) ['widht']; beam's settings: max_budget, width
    experiments.x.tuning.tuners.lora.lora_rank == 0, must be an integer >= 1

Light (no numpy): the workflow parses configs with it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping

from promptscape.validation import ConfigError


@dataclasses.dataclass(frozen=True)
class Check:
    """A check of one setting's value: `test` (value -> bool) and `what` a value must be."""

    test: Callable[[object], bool]
    what: str

    def __call__(self, value, key: str):
        """`value` unchanged, or a ConfigError naming `key`: ``key == value, must be what``."""
        if not self.test(value):
            raise ConfigError(f"{key} == {value!r}, must be {self.what}")
        return value


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting: its default (which passes its check) and its `Check`."""

    default: object
    check: Check


def is_integer(value) -> bool:
    """An integer, not a bool (YAML's true is no count)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number, not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


POSITIVE_INTEGER = Check(lambda v: is_integer(v) and v >= 1, "an integer >= 1")
PROBABILITY = Check(lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
POSITIVE = Check(lambda v: is_number(v) and v > 0, "a finite number > 0")
NULL_OR_POSITIVE_INTEGER = Check(lambda v: v is None or POSITIVE_INTEGER.test(v),
                                 "null or an integer >= 1")


def defaults(declared: Mapping[str, Setting]) -> dict:
    """Every declared setting with its default, in declaration order."""
    return {name: setting.default for name, setting in declared.items()}


def validate(given, declared: Mapping[str, Setting], key: str, owner: str) -> dict:
    """The settings `given` at config key `key` (None: none) of `owner` (a strategy's or a
    tuner's name), checked against its `declared` settings: a ConfigError naming the key for
    a value that is not a mapping, for settings it does not declare, and for a value its
    check refuses (naming the setting's key). Returns the given settings (no defaults)."""
    given = {} if given is None else given
    if not isinstance(given, Mapping):
        raise ConfigError(f"{key} == {given!r}, must be a mapping of {owner}'s settings")
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"{key}: unknown setting(s) {unknown}; {owner}'s settings: "
                          f"{', '.join(declared) or 'none'}")
    for name, value in given.items():
        declared[name].check(value, f"{key}.{name}")
    return dict(given)
