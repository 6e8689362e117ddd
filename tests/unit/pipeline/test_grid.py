"""The plan's job grid (promptscape.pipeline.grid, through the rules' records) is the
workflow's: every job a dry run of the Snakefile lists, rule and wildcards, and no other, on
every config of the repository (the tiny one in the suite; the others, a dry run each of
about 10 s, with --all-configs, as CI runs them)."""

from __future__ import annotations

import collections
import re

import pytest

from promptscape.pipeline import plan
from promptscape.study import config
from workflow_helpers import REPO, snakemake

CONFIGS = sorted([*(REPO / "config").glob("*.yaml"),
                  *(REPO / "tests" / "data").glob("*/config.yaml")])
TINY = REPO / "tests" / "data" / "tiny" / "config.yaml"


def dry_run_jobs(text: str) -> collections.Counter:
    """(rule, wildcards) of every job a dry run's output lists, but the `all` target."""
    jobs, current = collections.Counter(), None
    for line in text.splitlines() + [""]:
        match = re.match(r"^(?:local)?rule (\w+):$", line)
        if match or not line.strip():
            if current is not None and current[0] != "all":
                jobs[current[0], frozenset(current[1].items())] += 1
            current = (match.group(1), {}) if match else None
        elif current is not None and line.startswith("    wildcards: "):
            pairs = line[len("    wildcards: "):].split(", ")
            current[1].update(pair.split("=", 1) for pair in pairs)
    return jobs


def planned(study) -> collections.Counter:
    return collections.Counter((job.rule, frozenset((k, str(v)) for k, v in
                                                    job.wildcards.items()))
                               for job in plan.jobs(study))


def test_the_dry_run_parse_reads_rules_and_wildcards():
    text = ("rule compute_landscape:\n    input: a\n    wildcards: experiment=e, task=t\n"
            "    resources: tmpdir=/tmp\n\nlocalrule plot_study_figures:\n    output: f\n\n"
            "localrule all:\n    input: x\n")
    assert dry_run_jobs(text) == collections.Counter({
        ("compute_landscape", frozenset({("experiment", "e"), ("task", "t")})): 1,
        ("plot_study_figures", frozenset()): 1})


def test_every_config_of_the_repository_is_checked():
    names = {p.relative_to(REPO).as_posix() for p in CONFIGS}
    assert {"config/config.yaml", "tests/data/tiny/config.yaml"} <= names and TINY in CONFIGS


@pytest.mark.slow
@pytest.mark.parametrize("configfile", [
    pytest.param(p, id=p.relative_to(REPO).as_posix(),
                 marks=() if p == TINY else pytest.mark.all_configs) for p in CONFIGS])
def test_the_plan_lists_the_jobs_of_a_dry_run(tmp_path, configfile):
    proc = snakemake(tmp_path, configfile, "-n")
    expected = planned(config.load_file(configfile))
    found = dry_run_jobs(proc.stdout + proc.stderr)
    assert found == expected, (f"dry run only: {sorted(found - expected)[:5]}; "
                               f"plan only: {sorted(expected - found)[:5]}")
