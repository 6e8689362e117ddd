"""Column descriptions that name a registry's members are built from the registry: each names
exactly the members, in registry order, and a member added to (or removed from) a registry
changes them with no edit of `tables` (checked in a fresh interpreter that changes the
registries before `tables` is first imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import promptscape
from promptscape import edits, selection, strategies
from promptscape.neural import tuners
from promptscape.study import tables


def column(artifact: str | None, name: str) -> str:
    """The description of column `name` of `artifact` (None: the dimension `name`)."""
    if artifact is None:
        return tables.DIMENSIONS[name][2]
    (field,) = [f for f in tables.ARTIFACTS[artifact].fields if f[0] == name]
    return field[2]


def proposing(flag: bool) -> list[str]:
    return [n for n, s in strategies.STRATEGIES.items() if s.proposes == flag]


# (where, its description, the text that names the registry's members exactly)
LISTINGS = [
    ("dimension strategy", lambda: column(None, "strategy"),
     lambda: tables.listing(strategies.STRATEGIES)),
    ("dimension tuner", lambda: column(None, "tuner"),
     lambda: tables.listing(tuners.TUNERS, "and")),
    ("dimension selection", lambda: column(None, "selection"),
     lambda: tables.described((m.name, m.doc) for m in selection.METHODS.values())),
    ("strategy_steps doc", lambda: tables.ARTIFACTS["strategy_steps"].doc,
     lambda: f"({tables.listing(proposing(True), 'and')}; "
             f"{tables.listing(proposing(False), 'and')} draw without one"),
    ("strategy_steps.operation", lambda: column("strategy_steps", "operation"),
     lambda: tables.listing(edits.OPERATIONS)),
    ("edits doc", lambda: tables.ARTIFACTS["edits"].doc,
     lambda: f"every single edit ({tables.listing(edits.OPERATIONS)})"),
    ("edits.edit_kind", lambda: column("edits", "edit_kind"),
     lambda: tables.described((k.name, k.description) for k in edits.EDIT_KINDS.values())),
    ("edit_effects.edit_kind", lambda: column("edit_effects", "edit_kind"),
     lambda: tables.listing(edits.EDIT_KINDS)),
    ("tuning_runs.init_prompt", lambda: column("tuning_runs", "init_prompt"),
     lambda: tables.described(tuners.INITS.items())),
]


@pytest.mark.parametrize("where, description, members", LISTINGS,
                         ids=[w for w, _, _ in LISTINGS])
def test_a_description_names_exactly_its_registrys_members(where, description, members):
    assert members() in description()


def test_listing_and_described_forms():
    assert tables.listing(["a"]) == "a"
    assert tables.listing(["a", "b", "c"]) == "a, b or c"
    assert tables.listing(["a", "b"], "and") == "a and b"
    assert tables.described([("a", "x"), ("b", "y")]) == "a: x; b: y"


CHANGE_REGISTRIES = """
import dataclasses, json
from promptscape import edits, selection, strategies
from promptscape.neural import tuners
tuners.TUNERS["zz_tuner"] = dataclasses.replace(tuners.TUNERS["full"], name="zz_tuner")
del tuners.TUNERS["head"]
tuners.INITS["zz_init"] = "zz start"
strategies.STRATEGIES["zz_proposer"] = dataclasses.replace(
    strategies.STRATEGIES["beam"], name="zz_proposer")
strategies.STRATEGIES["zz_drawer"] = dataclasses.replace(
    strategies.STRATEGIES["random"], name="zz_drawer")
del strategies.STRATEGIES["annealing"]
selection.METHODS["zz_method"] = dataclasses.replace(
    selection.METHODS["pool"], name="zz_method", doc="zz selects")
edits.EDIT_KINDS["zz_kind"] = dataclasses.replace(
    edits.EDIT_KINDS["lengthens"], name="zz_kind", description="zz edits")
del edits.EDIT_KINDS["shortens"]
from promptscape.study import tables
field = lambda a, c: [f for f in tables.ARTIFACTS[a].fields if f[0] == c][0][2]
print(json.dumps({
    "tuner": tables.DIMENSIONS["tuner"][2],
    "strategy": tables.DIMENSIONS["strategy"][2],
    "selection": tables.DIMENSIONS["selection"][2],
    "steps": tables.ARTIFACTS["strategy_steps"].doc,
    "kinds": field("edits", "edit_kind"),
    "effect_kinds": field("edit_effects", "edit_kind"),
    "init": field("tuning_runs", "init_prompt"),
}))
"""


def test_a_registry_change_changes_the_descriptions_without_an_edit_of_tables():
    package_root = str(Path(promptscape.__file__).resolve().parents[1])  # this tree's src
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [package_root, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", CHANGE_REGISTRIES], env=env, check=True,
                         capture_output=True, text=True).stdout
    got = json.loads(out)
    assert "lora, full and zz_tuner" in got["tuner"] and "head" not in got["tuner"]
    assert got["strategy"].endswith("surrogate, zz_proposer or zz_drawer")
    assert "annealing" not in got["strategy"]
    assert "zz_method: zz selects" in got["selection"]
    assert "evolutionary, gradient and zz_proposer;" in got["steps"]
    assert "surrogate and zz_drawer draw without one" in got["steps"]
    assert "zz_kind: zz edits" in got["kinds"] and "shortens" not in got["kinds"]
    assert got["effect_kinds"].count("zz_kind") == 1 and "shortens" not in got["effect_kinds"]
    assert "zz_init: zz start" in got["init"]


def test_the_listings_keep_the_registries_out_of_every_jobs_code_identity():
    """Every job writes through `tables.write`; the descriptions it reaches must not pull the
    registries' code (search functions, tuner builders, edit selections) into the job's
    code identity, or a new strategy would rerun every job."""
    from promptscape.pipeline import provenance

    reached = provenance.closure("promptscape.study.tables:write")
    registries = ("promptscape.strategies:", "promptscape.neural.tuners:",
                  "promptscape.selection:", "promptscape.edits:")
    assert "promptscape.study.tables:_registry_listings" in reached
    assert not [r for r in reached if r.startswith(registries)]
