"""Costs before running: jobs, prompt-sequence evaluations and peak memory of every stage.

`python -m promptscape.pipeline.plan [--configfile config/config.yaml]` prints, per stage, the
number of jobs, the prompt-sequence evaluations per job and in total, the estimated peak
memory of the largest job and the `mem_mb` its rule declares (docs/plan.md). The workflow
calls the same code: every heavy rule declares ``resources: mem_mb`` from `mem_mb`, and at
parse time (`snakemake -n` included) `check` raises `MemoryEstimateError`, naming the stage,
the experiment and the keys to change, when any job's estimate exceeds
``resources.max_mem_mb``: before any work, instead of an allocation error hours in.

The jobs are each rule's job grid (`promptscape.pipeline.grid`, as the workflow's listings
lay them out: datasets and searches per experiment x dataset selection x seed block, each
job holding every predictor, task and N; landscapes and predictions per experiment x
predictor x task; one network per (pretraining source, model) used; ...), each estimated
by its rule's cost model and time model (`promptscape.pipeline.costs`), both named by the
rule's record (`promptscape.pipeline.rules`). `totals` sums the plan: jobs, CPU hours, the
hours of the jobs that ask for a GPU, the largest peak.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys

from promptscape.pipeline import rules
from promptscape.pipeline.costs import GIB, Job
from promptscape.study import config as config_lib
from promptscape.validation import ConfigError

# The stages in the order of the table (the rules' records).
STAGES = tuple(r.name for r in rules.RULES)
# Rules that declare resources.mem_mb from the estimate (and are checked against the cap).
HEAVY = tuple(r.name for r in rules.RULES if r.heavy)
# Per heavy rule, the config keys that lower its estimate ({e}: the experiment, {p}: the
# predictor).
HINTS = {r.name: r.hint for r in rules.RULES if r.heavy}
# Rules that ask for training.gpus GPUs.
GPU_RULES = tuple(r.name for r in rules.RULES if r.gpu)
CAP_KEY = "resources.max_mem_mb"
# Margin of a rule's mem_mb over the estimate (and a floor for tiny jobs).
MARGIN = 1.25
FLOOR_MB = 500


class MemoryEstimateError(ConfigError):
    """A job's estimated peak memory exceeds ``resources.max_mem_mb``."""


def estimate(study, rule: str, w: dict) -> Job:
    """The cost of one job of `rule` with wildcards `w` (the workflow's names): its
    evaluations and peak memory (the rule's estimator) and time (its time model)."""
    record = rules.BY_NAME.get(rule)
    if record is None:
        raise ValueError(f"no cost model for rule {rule!r}")
    job = record.estimate(study, rule, w)
    return dataclasses.replace(job, seconds=record.seconds(study, job))


def job_seconds(study, job: Job) -> float:
    """The estimated wall time of `job` on one core (its rule's time model)."""
    return rules.rule(job.rule).seconds(study, job)


def jobs(study) -> list[Job]:
    """Every job of the default target, rule by rule in `STAGES` order, as the workflow's
    grid lays them out (each rule's `jobs`)."""
    return [estimate(study, r.name, w) for r in rules.RULES for w in r.jobs(study)]


def max_mem_mb(study) -> int:
    return int(study.raw["resources"]["max_mem_mb"])


def job_mem_mb(study, job: Job) -> int:
    """The mem_mb a heavy rule declares: the estimate with a margin, at least FLOOR_MB,
    at most the cap (a job whose estimate exceeds the cap is refused by `check`)."""
    want = max(FLOOR_MB, math.ceil(job.peak_mb * MARGIN))
    return min(want, max_mem_mb(study))


def mem_mb(study, rule: str, wildcards: dict) -> int:
    """`job_mem_mb` of one job (the rules' ``resources: mem_mb``)."""
    return job_mem_mb(study, estimate(study, rule, dict(wildcards)))


def check(study, plan: list[Job] | None = None) -> list[Job]:
    """Every job's estimate against ``resources.max_mem_mb``: a MemoryEstimateError for the
    largest job over it, naming its stage, experiment, estimate and the keys that lower it.
    Returns the jobs."""
    plan = jobs(study) if plan is None else plan
    cap = max_mem_mb(study)
    over = [job for job in plan if job.rule in HEAVY and job.peak_mb > cap]
    if over:
        job = max(over, key=lambda j: j.peak_bytes)
        raise MemoryEstimateError(_message(job, cap, len(over)))
    return plan


def _message(job: Job, cap: int, count: int) -> str:
    w = job.wildcards
    e = w.get("experiment", "<experiment>")
    where = (f"experiment {e!r}" if "experiment" in w
             else f"network {w['predictor']!r} on source {w['source']!r}")
    hint = HINTS[job.rule].format(e=e, p=w.get("predictor"))
    others = f" ({count - 1} more job(s) over it)" if count > 1 else ""
    prompts = (f"shorter prompts: experiments.{e}.max_prompt_length; "
               if job.rule not in ("train_predictor", "post_train_predictor",
                                   "evaluate_predictor") else "")
    detail = ", ".join(f"{k} {v}" for k, v in w.items() if k != "experiment")
    return (f"{job.rule} of {where} ({detail}): estimated peak memory "
            f"{job.peak_bytes / GIB:.1f} GiB ({job.evaluations:,} prompt-sequence "
            f"evaluations, {job.note or 'see promptscape.pipeline.plan'}) exceeds {CAP_KEY} = {cap} MB"
            f"{others}. Refused before any work. Lower it with {hint}; {prompts}or allow more "
            f"memory: {CAP_KEY} (docs/plan.md)")


# --------------------------------------------------------------------------- report
def summary(study, plan: list[Job]) -> list[dict]:
    """One row per stage: jobs, evaluations per job (largest) and in total, the largest
    estimated peak and the largest mem_mb declared (heavy rules)."""
    rows = []
    for rule in STAGES:
        members = [job for job in plan if job.rule == rule]
        if not members:
            continue
        top = max(members, key=lambda j: j.peak_bytes)
        rows.append({
            "stage": rule, "jobs": len(members),
            "evals_per_job": max(j.evaluations for j in members),
            "evals_total": sum(j.evaluations for j in members),
            "peak_mb": top.peak_mb,
            "mem_mb": max(job_mem_mb(study, j) for j in members) if rule in HEAVY else None,
            "cpu_hours": sum(j.seconds for j in members) / 3600,
            "largest": top.describe(), "note": top.note,
        })
    return rows


def totals(study, plan: list[Job]) -> dict:
    """The whole plan: jobs, CPU hours (every job on one core), of them the hours of the
    jobs that ask for a GPU (training.gpus > 0; estimated at CPU speed), the largest peak
    memory, and the wall time on `cores` cores if the jobs packed perfectly."""
    gpu = study.training["gpus"] > 0
    hours = sum(j.seconds for j in plan) / 3600
    return {"jobs": len(plan), "cpu_hours": hours,
            "gpu_job_hours": (sum(j.seconds for j in plan if j.rule in GPU_RULES) / 3600
                              if gpu else 0.0),
            "peak_mb": max(j.peak_mb for j in plan)}


def _count(n: int) -> str:
    if n == 0:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def format_plan(study, plan: list[Job]) -> str:
    rows = summary(study, plan)
    head = ("stage", "jobs", "evals/job", "evals total", "peak MB/job", "mem_mb", "CPU h",
            "largest job")
    table = [head] + [
        (r["stage"], str(r["jobs"]), _count(r["evals_per_job"]), _count(r["evals_total"]),
         f"{r['peak_mb']:.0f}", "-" if r["mem_mb"] is None else str(r["mem_mb"]),
         f"{r['cpu_hours']:.3g}", r["largest"] + (f" [{r['note']}]" if r["note"] else ""))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines = []
    for row in table:
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]))
    total = sum(r["evals_total"] for r in rows)
    t = totals(study, plan)
    lines.append(f"{len(plan)} jobs (and the `all` target), {_count(total)} prompt-sequence "
                 f"evaluations; {t['cpu_hours']:.3g} CPU hours on one core each, of which "
                 f"{t['gpu_job_hours']:.3g} in jobs that ask for a GPU (estimated at CPU "
                 f"speed); largest job {t['peak_mb']:.0f} MB; {CAP_KEY} = "
                 f"{max_mem_mb(study)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m promptscape.pipeline.plan",
        description="Costs of a config before running: per stage the number of jobs, the "
                    "prompt-sequence evaluations per job and in total, the estimated peak "
                    "memory of the largest job and the mem_mb its rule declares. Exits 1 "
                    f"naming the stage and experiment when an estimate exceeds {CAP_KEY}.")
    parser.add_argument("--configfile", default="config/config.yaml",
                        help="the config file (default: %(default)s)")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.configfile):
        print(f"ConfigError: config file {args.configfile} not found", file=sys.stderr)
        return 2
    try:
        study = config_lib.load_file(args.configfile)
    except ConfigError as error:
        print(f"ConfigError: {error}", file=sys.stderr)
        return 2
    plan = jobs(study)
    print(f"plan of {args.configfile} (results_dir {study.results_dir}):")
    print(format_plan(study, plan))
    try:
        check(study, plan)
    except MemoryEstimateError as error:
        print(f"MemoryEstimateError: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())