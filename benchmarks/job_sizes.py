"""Job sizes of a complete run: how many jobs, how much of their time is their own work.

Each job logs one line at its end (`promptscape.logs.TIMING`): its wall time from the
process's start (interpreter, Snakemake's script preamble, imports) and the time from
`logs.setup` to its end (its work). This script runs the workflow from scratch for each
revision given, back to back in fresh copies on the same machine, and tabulates per revision
and per rule: jobs, summed job time, the fixed cost per job (wall minus work), the share of
job time in work, and the run's wall time; and the floor, the heavy rules' summed work over
the cores.

    python benchmarks/job_sizes.py --rev before=COMMIT --rev after=HEAD --write docs/benchmarks.md
    python benchmarks/job_sizes.py --results results            # an existing run's logs only

Runs with the snakemake on PATH (activate the project's venv first); each copy's jobs import
the copy's own library (PYTHONPATH=<copy>/src).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMING = re.compile(r"job timing: wall ([0-9.]+) s, work ([0-9.]+) s")
# Rules whose units stay one to a job because each costs seconds to minutes
# (config/README.md, "Run times");
# the floor of a run is their summed work over the cores.
HEAVY = ("train_predictor", "evaluate_predictor", "score_prompts", "predict_reliability",
         "compute_landscape", "measure_efficiency", "search_strategies")


def job_times(results: Path) -> dict[str, list[tuple[float, float]]]:
    """(wall, work) of every finished job, by rule, from the logs under results/logs."""
    by_rule: dict[str, list[tuple[float, float]]] = {}
    for log in sorted((results / "logs").rglob("*.log")):
        rule = log.relative_to(results / "logs").parts[0]
        matches = TIMING.findall(log.read_text(errors="replace"))
        if matches:
            wall, work = map(float, matches[-1])
            by_rule.setdefault(rule, []).append((wall, work))
    return by_rule


def summarize(by_rule: dict, wall: float | None, cores: int) -> dict:
    jobs = [t for times in by_rule.values() for t in times]
    summed = sum(w for w, _ in jobs)
    work = sum(k for _, k in jobs)
    heavy = sum(k for rule in HEAVY for _, k in by_rule.get(rule, []))
    return {"jobs": len(jobs), "job_time": summed, "work": work,
            "fixed": (summed - work) / max(len(jobs), 1), "share": work / summed if summed else 0,
            "wall": wall, "floor": heavy / cores}


def run(rev: str, cores: int, extra: list[str], keep: Path | None) -> tuple[Path, float]:
    """Run the workflow from scratch on a fresh copy of `rev`; its results folder and wall time."""
    work = Path(tempfile.mkdtemp(prefix=f"jobsizes-{rev[:12]}-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    start = time.monotonic()
    with open(work / "snakemake.log", "w") as log:
        code = subprocess.call(["snakemake", "--cores", str(cores), *extra], cwd=work, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    wall = time.monotonic() - start
    if code:
        sys.exit(f"{rev}: snakemake exited {code}; see {work / 'snakemake.log'}")
    if keep:
        shutil.copytree(work / "results", keep / rev.replace("/", "_"), dirs_exist_ok=True)
    return work / "results", wall


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def table(rows: dict[str, dict]) -> str:
    lines = ["| run | jobs | summed job time (s) | fixed cost per job (s) | share of job time in "
             "work | wall time (s) | floor: heavy work / cores (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in rows.items():
        lines.append(f"| {name} | {s['jobs']} | {s['job_time']:.0f} | {s['fixed']:.2f} | "
                     f"{100 * s['share']:.0f}% | {fmt(s['wall'], '.0f')} | {s['floor']:.0f} |")
    return "\n".join(lines)


def rule_table(by_rule: dict) -> str:
    lines = ["| rule | jobs | summed job time (s) | work (s) | fixed cost per job (s) | "
             "share in work |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for rule, times in sorted(by_rule.items(), key=lambda kv: -sum(w for w, _ in kv[1])):
        wall, work = sum(w for w, _ in times), sum(k for _, k in times)
        lines.append(f"| {rule} | {len(times)} | {wall:.1f} | {work:.1f} | "
                     f"{(wall - work) / len(times):.2f} | {100 * work / wall:.0f}% |")
    return "\n".join(lines)


def plan_table(by_rule: dict, configfile: str) -> str:
    """The plan's estimated time per rule (`promptscape.pipeline.plan.job_seconds`) beside the
    measured summed job time, for the run of `configfile`."""
    from promptscape.study import config
    from promptscape.pipeline import plan

    jobs = plan.jobs(config.load_file(configfile))
    lines = ["| rule | jobs | estimated (s) | measured job time (s) | estimated / measured |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for rule in plan.STAGES:
        est = sum(j.seconds for j in jobs if j.rule == rule)
        measured = sum(w for w, _ in by_rule.get(rule, []))
        if est or measured:
            ratio = f"{est / measured:.2f}" if measured else "n/a"
            lines.append(f"| {rule} | {sum(j.rule == rule for j in jobs)} | {est:.1f} | "
                         f"{measured:.1f} | {ratio} |")
    total = sum(j.seconds for j in jobs)
    measured = sum(w for times in by_rule.values() for w, _ in times)
    lines.append(f"| all | {len(jobs)} | {total:.0f} | {measured:.0f} | "
                 f"{total / measured:.2f} |")
    return "\n".join(lines)


def plan_totals(configfile: str) -> str:
    from promptscape.study import config
    from promptscape.pipeline import plan

    study = config.load_file(configfile)
    t = plan.totals(study, plan.jobs(study))
    return (f"`{configfile}`: {t['jobs']} jobs (and the `all` target), "
            f"{t['cpu_hours']:.2f} CPU hours (one core per job), of which "
            f"{t['gpu_job_hours']:.2f} in the jobs that ask for a GPU (estimated at CPU "
            f"speed), largest job {t['peak_mb']:.0f} MB")


TEST_SUITE = "## Test suite"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", action="append", default=[], metavar="NAME=REV",
                        help="a revision to run from scratch (repeatable, run in order)")
    parser.add_argument("--results", type=Path, help="summarize an existing run's logs only")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--write", type=Path, help="write the tables to this Markdown file")
    parser.add_argument("--keep", type=Path, help="copy each run's results under this folder")
    parser.add_argument("--plan", action="append", default=[], metavar="CONFIG",
                        help="also write the cost plan's totals of this config (repeatable)")
    args, extra = parser.parse_known_args(argv)
    rows, per_rule = {}, {}
    if args.results:
        per_rule["results"] = job_times(args.results)
        rows["results"] = summarize(per_rule["results"], None, args.cores)
    for spec in args.rev:
        name, _, rev = spec.rpartition("=")
        name = name or rev
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                             capture_output=True, text=True).stdout.strip()
        results, wall = run(rev, args.cores, extra, args.keep)
        per_rule[f"{name} ({sha})"] = job_times(results)
        rows[f"{name} ({sha})"] = summarize(per_rule[f"{name} ({sha})"], wall, args.cores)
        print(f"{name} ({sha}): {rows[f'{name} ({sha})']}", flush=True)
    text = table(rows)
    print(text)
    if args.write:
        load = open("/proc/loadavg").read().split()[:3] if Path("/proc/loadavg").exists() else []
        body = [
            "# Job sizes and run times",
            "",
            "Written by `benchmarks/job_sizes.py` (do not edit by hand, but for the sections "
            "from \"Test suite\" on, which it keeps): "
            f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, "
            f"`{' '.join(['snakemake', '--cores', str(args.cores), *extra])}`, "
            f"from scratch, back to back; load average after: {' '.join(load)}.",
            "",
            "A job's time is its wall time from its process's start; its work is the time from "
            "`logs.setup` to its end (everything but starting Python, Snakemake's script "
            "preamble and the imports). The floor is the work of the heavy rules "
            f"({', '.join(HEAVY)}) divided by the cores.",
            "",
            text,
            "",
        ]
        for name, by_rule in per_rule.items():
            body += [f"## {name}: per rule", "", rule_table(by_rule), ""]
        last = list(per_rule.values())[-1]
        body += ["## The cost plan against the last run", "",
                 "`python -m promptscape.pipeline.plan` estimates each job's time from rates "
                 "calibrated on a default run (`plan.job_seconds`); here beside the measured "
                 "job time of the last run above, per rule:", "",
                 plan_table(last, "config/config.yaml"), ""]
        if args.plan:
            body += ["## Cost plans of other configs", "",
                     "Estimated, not run here (`python -m promptscape.pipeline.plan --configfile F`):",
                     ""] + [f"- {plan_totals(c)}" for c in args.plan] + [""]
        # The hand-written sections from "Test suite" on (CPU of the test suite,
        # benchmarks/pytest_cpu.py; other measurements) are kept as they are.
        old = args.write.read_text() if args.write.exists() else ""
        kept = old[old.index(TEST_SUITE):] if TEST_SUITE in old else ""
        args.write.write_text("\n".join(body) + ("\n" + kept if kept else ""))


if __name__ == "__main__":
    main()
