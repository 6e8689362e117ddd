"""The rules' records (promptscape.pipeline.rules) against the workflow's .smk files, and
what derives from them: a record for every rule and no record without one; its outputs,
mem_mb and gpu as the rule declares them; the plan's and the code identities' lists."""

from __future__ import annotations

import inspect
import re

import pytest

from promptscape.pipeline import costs, plan, provenance, rules
from promptscape.study import tables
from workflow_helpers import REPO

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def parse(text: str) -> list[tuple[str, str]]:
    """(rule name, its indented body) of every rule of a rules file."""
    return [(m.group(1), m.group(2))
            for m in re.finditer(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M)]


def smk_rules() -> dict[str, str]:
    """{rule name: its body} of every rule of workflow/rules/*.smk (the target rules all,
    aggregates and figures live in the Snakefile and run no job)."""
    out = {}
    for path in RULE_FILES:
        for name, body in parse(path.read_text()):
            assert name not in out, f"rule {name} defined twice"
            out[name] = body
    return out


def outputs(body: str) -> tuple[str, ...]:
    """The artifacts a rule's output block names (``out("<artifact>")``)."""
    block = re.search(r"^    output:\n((?:        .*\n)*)", body, re.M)
    assert block, "a rule without output"
    return tuple(re.findall(r'out\("(\w+)"\)', block.group(1)))


RULES = smk_rules()


def test_every_rule_of_the_workflow_has_one_record_and_every_record_a_rule():
    assert len(RULES) >= 20  # the parse found the rules
    assert set(rules.BY_NAME) == set(RULES)
    assert len(rules.BY_NAME) == len(rules.RULES)


def test_the_parse_finds_each_rule_and_its_outputs():
    text = ('rule x:\n    output:\n        a=out("landscape"),\n        b=in_model_dir("m"),\n'
            '    log:\n        logged("x.log"),\n\n\nrule y:\n    output:\n'
            '        c=out("search"),\n')
    (x, body_x), (y, body_y) = parse(text)
    assert (x, y) == ("x", "y")
    assert outputs(body_x) == ("landscape",) and outputs(body_y) == ("search",)


@pytest.mark.parametrize("name", sorted(RULES))
def test_a_record_says_what_its_rule_declares(name):
    record, body = rules.rule(name), RULES[name]
    assert record.writes == outputs(body)
    assert set(record.writes) <= set(tables.ARTIFACTS)
    assert record.heavy == (f'mem_mb=mem_mb("{name}")' in body)
    assert record.gpu == ('gpu=STUDY.training["gpus"]' in body)
    assert f'code=code("{name}")' in body
    # Its stage function exists where the record says.
    module, _, function = record.stage.partition(":")
    assert module.startswith("promptscape.pipeline.stages.") and function
    assert (REPO / "src" / (module.replace(".", "/") + ".py")).is_file()


def test_the_plan_and_the_code_identities_derive_from_the_records():
    assert plan.STAGES == tuple(r.name for r in rules.RULES)
    assert set(plan.HEAVY) == set(plan.HINTS) == {r.name for r in rules.RULES if r.heavy}
    assert set(plan.GPU_RULES) == {r.name for r in rules.RULES if r.gpu}
    assert provenance.JOBS == {r.name: (r.stage, r.members) for r in rules.RULES}


def test_the_members_a_record_may_name_are_those_a_code_identity_resolves():
    keyword = {name for name, parameter in
               inspect.signature(provenance.job_entries).parameters.items()
               if parameter.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword == set(rules.MEMBERS)


def test_an_unknown_rule_is_a_named_error():
    with pytest.raises(ValueError, match="no record of rule 'nonesuch'"):
        rules.rule("nonesuch")
    with pytest.raises(ValueError, match="no cost model for rule 'nonesuch'"):
        plan.estimate(None, "nonesuch", {})


def test_a_record_checks_its_members_and_its_hint():
    base = dict(name="x", stage="m:f", writes=(), jobs=list,
                estimate=costs.simulation_cost)
    with pytest.raises(ValueError, match="unknown members"):
        rules.Rule(members=("colour",), **base)
    with pytest.raises(ValueError, match="heavy rule names the keys"):
        rules.Rule(members=(), heavy=True, **base)
    with pytest.raises(ValueError, match="heavy rule names the keys"):
        rules.Rule(members=(), hint="fewer", **base)
