"""Checks of artifact files against their paths and the experiment's grid: what an
aggregation reads must be exactly the files of the config that reads it (each file holds what
its path says, and the files cover the grid exactly once). Each check raises a ValueError
naming the file and every problem found."""

from __future__ import annotations

import os
import re

import pandas as pd

from promptscape.study import tables

_NUMERIC_WILDCARDS = ("N", "first", "last", "replicate")


def path_fields(artifact: str, path) -> dict | None:
    """The wildcards of an artifact file's path, parsed with the artifact's path pattern
    (`tables.ARTIFACTS[artifact].path`, matched at the end of the path, whatever folder it
    lies under); None when the path does not fit the pattern.

    >>> path_fields("search", "results/x/search/random/seeds0-3.parquet")
    {'experiment': 'x', 'selection': 'random', 'first': 0, 'last': 3}
    """
    regex = _path_regex(artifact)
    match = regex.search(os.fspath(path))
    if match is None:
        return None
    return {k: int(v) if k in _NUMERIC_WILDCARDS else v for k, v in match.groupdict().items()}


def _path_regex(artifact: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", tables.ARTIFACTS[artifact].path)
    regex = ""
    for i, part in enumerate(parts):
        if i % 2 == 0:
            regex += re.escape(part)
        else:
            regex += fr"(?P<{part}>\d+)" if part in _NUMERIC_WILDCARDS else fr"(?P<{part}>[^/]+)"
    return re.compile(fr"(?:^|/){regex}$")


def _column_mismatches(frame: pd.DataFrame, fields: dict, columns) -> list[str]:
    """What the file's columns hold where its path says otherwise."""
    problems = []
    for column in columns:
        held = sorted(pd.unique(frame[column]).tolist())
        if held != [fields[column]]:
            shown = ", ".join(f"{column}={v}" for v in held) or "no"
            problems.append(f"holds {shown} rows, its path says {column}={fields[column]}")
    return problems


def verify_search_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one search file against its path and the experiment's grid.

    `expected` is `layout.search_grid`. The file must lie at a search path of that grid
    (experiment, selection, seed block) and hold exactly what the path says: its experiment
    and selection, and for every (predictor, replicate, task, N) of the grid every seed of
    its block and no other, each seed with distinct prompts and exactly one chosen prompt.
    Raises a ValueError naming the file and every problem found.
    """
    fields = path_fields("search", path)
    if fields is None:
        raise ValueError(f"{path}: not a search file path (expected .../"
                         f"{tables.ARTIFACTS['search'].path})")
    problems = _grid_problems(fields, expected)
    problems += _column_mismatches(frame, fields, ("experiment", "selection"))
    cell = ["predictor", "replicate", "task", "N"]
    block = list(range(fields["first"], fields["last"] + 1))
    held = frame.groupby(cell)["seed"].unique() if len(frame) else pd.Series(dtype=object)
    grid = {(p, r, t, N) for p, r in _units(expected) for t in expected["tasks"]
            for N in expected["dataset_sizes"]}
    for key in sorted(grid - set(held.index)):
        problems.append("no rows of predictor {} replicate {} task {} N={}".format(*key))
    for key in sorted(set(held.index) - grid):
        problems.append("rows of predictor {} replicate {} task {} N={}, outside the "
                        "experiment's grid".format(*key))
    for key, seeds in held.items():
        if sorted(seeds.tolist()) != block:
            missing = sorted(set(block) - set(seeds.tolist()))
            extra = sorted(set(seeds.tolist()) - set(block))
            problems.append("predictor {} replicate {} task {} N={}: ".format(*key) + "; ".join(
                part for part in (missing and f"seeds {_ranges(missing)} missing",
                                  extra and f"seeds {_ranges(extra)} outside its block seeds "
                                            f"{fields['first']}-{fields['last']}") if part))
    unit = cell + ["seed"]
    sizes = frame.groupby(unit)["prompt"].nunique().groupby(level=cell).nunique()
    for key in sorted(sizes[sizes > 1].index):
        problems.append("predictor {} replicate {} task {} N={}: its seeds hold different "
                        "numbers of prompts".format(*key))
    repeated = frame.duplicated(unit + ["prompt"], keep=False)
    for key in sorted(set(map(tuple, frame.loc[repeated, unit].to_numpy().tolist()))):
        problems.append("predictor {} replicate {} task {} N={} seed {} repeats a "
                        "prompt".format(*key))
    chosen = frame.groupby(unit)["chosen"].sum()
    for key, count in chosen.items():
        if count != 1:
            problems.append("predictor {} replicate {} task {} N={} seed {} has {} chosen "
                            "prompts, not exactly one".format(*key, int(count)))
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:20])
                         + (f"; and {len(problems) - 20} more" if len(problems) > 20 else ""))


def verify_strategy_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one strategy_runs file against its path and the experiment's grid: its
    experiment, predictor, task and N, replicate 0, every seed of its block and no other,
    and for each seed every (strategy, budget) of the grid once (`expected["runs"]`:
    [strategy, budget] pairs; gradient has none for bayes)."""
    fields = path_fields("strategy_runs", path)
    if fields is None:
        raise ValueError(f"{path}: not a strategy_runs file path (expected .../"
                         f"{tables.ARTIFACTS['strategy_runs'].path})")
    problems = _grid_problems(fields, expected)
    problems += _column_mismatches(frame, fields, ("experiment", "predictor", "task", "N"))
    if set(frame["replicate"].tolist()) - {0}:
        problems.append("holds a replicate other than 0 (strategies run on replicate 0)")
    block = range(fields["first"], fields["last"] + 1)
    runs = {tuple(r) for r in expected["runs"].get(fields["predictor"], [])}
    held = frame.groupby("seed")[["strategy", "budget"]].apply(
        lambda f: sorted(zip(f["strategy"], f["budget"].astype(int))))
    for seed in block:
        have = held.get(seed, [])
        if sorted(have) != sorted(runs):
            missing = sorted(runs - set(have))
            extra = sorted(set(have) - runs)
            repeated = len(have) != len(set(have))
            problems.append(f"seed {seed}: " + "; ".join(
                part for part in (missing and f"missing runs {missing[:4]}",
                                  extra and f"runs outside the grid {extra[:4]}",
                                  repeated and "a run appears twice") if part))
    for seed in sorted(set(held.index) - set(block)):
        problems.append(f"holds seed {seed}, outside its block seeds "
                        f"{fields['first']}-{fields['last']}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_strategy_coverage(paths, expected: dict) -> None:
    """Every (predictor, task, N, seed) of the grid is covered by exactly one strategy_runs
    file (replicate 0)."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields("strategy_runs", path)
        for seed in range(f["first"], f["last"] + 1):
            key = (f["predictor"], f["task"], f["N"], seed)
            if key in owner:
                problems.append(f"{path}: seed {seed} appears twice: {owner[key]} covers it too")
            owner[key] = str(path)
    for predictor in expected["predictors"]:
        for task in expected["tasks"]:
            for N in expected["dataset_sizes"]:
                missing = [s for s in range(expected["num_seeds"])
                           if (predictor, task, N, s) not in owner]
                if missing:
                    problems.append(f"no strategy_runs file of experiment "
                                    f"{expected['experiment']} holds seeds {_ranges(missing)} "
                                    f"of predictor {predictor}, task {task}, N={N}")
    if problems:
        raise ValueError("strategy_runs files do not cover the experiment's seeds exactly "
                         "once: " + "; ".join(problems))


def verify_search_coverage(paths, expected: dict) -> None:
    """Every (selection, seed) of the grid is covered by exactly one of the search files (by
    their paths' seed blocks); each file holds every (predictor, replicate, task, N) of its
    block (`verify_search_file`)."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields("search", path)
        for seed in range(f["first"], f["last"] + 1):
            key = (f["selection"], seed)
            if key in owner:
                problems.append(f"{path}: seed {seed} appears twice: {owner[key]} covers it too")
            else:
                owner[key] = str(path)
    for selection in expected["selections"]:
        missing = [s for s in range(expected["num_seeds"]) if (selection, s) not in owner]
        if missing:
            problems.append(f"no search file of experiment {expected['experiment']} holds "
                            f"seeds {_ranges(missing)} of selection {selection}")
    if problems:
        raise ValueError("search files do not cover the experiment's seeds exactly once: "
                         + "; ".join(problems))


def _per_task_file_problems(artifact: str, frame: pd.DataFrame, path, expected: dict) -> list[str]:
    """What a file of a per-(predictor, replicate, task) artifact holds against its path and
    the experiment's grid (a path that is not the artifact's is an error at once)."""
    fields = path_fields(artifact, path)
    if fields is None:
        raise ValueError(f"{path}: not a {artifact} file path (expected .../"
                         f"{tables.ARTIFACTS[artifact].path})")
    return _grid_problems(fields, expected) + _column_mismatches(
        frame, fields, ("experiment", "predictor", "replicate", "task"))


def verify_landscape_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one landscape file against its path and the experiment's grid: its experiment,
    predictor and task, each prompt once."""
    problems = _per_task_file_problems("landscape", frame, path, expected)
    repeated = sorted(set(frame.loc[frame.duplicated("prompt"), "prompt"].tolist()))
    if repeated:
        problems.append(f"prompts appear more than once: {repeated[:5]}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_landscape_coverage(paths, expected: dict) -> None:
    """Exactly one landscape per (predictor, replicate, task) of the grid."""
    _verify_per_task_coverage("landscape", "landscape", paths, expected)


def _verify_per_task_coverage(artifact: str, noun: str, paths, expected: dict) -> None:
    """Exactly one file of a per-(predictor, replicate, task) artifact per unit and task."""
    owner: dict[tuple, str] = {}
    problems = []
    for path in paths:
        f = path_fields(artifact, path)
        key = (f["predictor"], f["replicate"], f["task"])
        if key in owner:
            problems.append(f"{path}: the {noun} of {key[0]} (replicate {key[1]}) on "
                            f"{key[2]} appears twice: {owner[key]} holds it too")
        owner[key] = str(path)
    for predictor, r in _units(expected):
        for task in expected["tasks"]:
            if (predictor, r, task) not in owner:
                problems.append(f"no {noun} file of predictor {predictor} (replicate {r}), "
                                f"task {task}")
    if problems:
        raise ValueError(f"{noun} files do not cover the experiment exactly once: "
                         + "; ".join(problems))


def verify_prediction_file(frame: pd.DataFrame, path, expected: dict) -> None:
    """Check one predicted_reliability file against its path and the experiment's grid:
    its experiment, predictor, replicate and task, and every N of the grid exactly once."""
    problems = _per_task_file_problems("predicted_reliability", frame, path, expected)
    held = sorted(int(N) for N in frame["N"])
    if held != sorted(int(N) for N in expected["dataset_sizes"]):
        problems.append(f"holds N = {held}, the experiment's dataset_sizes are "
                        f"{sorted(expected['dataset_sizes'])}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))


def verify_prediction_coverage(paths, expected: dict) -> None:
    """Exactly one prediction per (predictor, replicate, task) of the grid."""
    _verify_per_task_coverage("predicted_reliability", "prediction", paths, expected)


def _grid_problems(fields: dict, expected: dict) -> list[str]:
    problems = []
    if fields["experiment"] != expected["experiment"]:
        problems.append(f"its path names experiment {fields['experiment']}, this aggregation "
                        f"is of {expected['experiment']}")
    for key, plural in (("predictor", "predictors"), ("task", "tasks"),
                        ("selection", "selections"), ("N", "dataset_sizes")):
        if key in fields and fields[key] not in expected[plural]:
            problems.append(f"its path names {key}={fields[key]}, not one of the experiment's "
                            f"{plural} {list(expected[plural])}")
    if fields.get("predictor") in expected["predictors"] and "replicate" in fields:
        k = expected["replicates"][fields["predictor"]]
        if not 0 <= fields["replicate"] < k:
            problems.append(f"its path names replicate {fields['replicate']} of predictor "
                            f"{fields['predictor']}, which has replicates 0..{k - 1}")
    if "first" in fields:
        first, last = fields["first"], fields["last"]
        if not 0 <= first <= last < expected["num_seeds"]:
            problems.append(f"its path's seed block {first}-{last} is not within seeds "
                            f"0-{expected['num_seeds'] - 1}")
        elif "seed_blocks" in expected and [first, last] not in expected["seed_blocks"]:
            blocks = ", ".join(f"{a}-{b}" for a, b in expected["seed_blocks"])
            problems.append(f"its path's seed block {first}-{last} is not one of the "
                            f"experiment's seed blocks ({blocks})")
    return problems


def _units(expected: dict) -> list[tuple[str, int]]:
    """Every (predictor, replicate) of the grid."""
    return [(p, r) for p in expected["predictors"] for r in range(expected["replicates"][p])]


def _ranges(values: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ", ".join(out)
