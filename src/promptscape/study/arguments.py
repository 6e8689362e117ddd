"""The arguments a job is given, by name, each computed once from the config and the job's
wildcards.

The workflow's rules pass them to their stages (``job_args`` in workflow/rules/common.smk),
so they are part of every artifact's identity (`identity`); the summary recomputes them to
check that what it reads was built from the config it reads it with (`config_arguments`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from promptscape.study.config import Experiment, Study


def _get(wildcards, name: str) -> str:
    return wildcards[name] if isinstance(wildcards, Mapping) else getattr(wildcards, name)


def _names(wildcards) -> set[str]:
    return set(wildcards.keys())


def experiment(study: Study, wildcards) -> Experiment:
    return study.experiments[_get(wildcards, "experiment")]


def replicate(study: Study, wildcards) -> int:
    """The job's replicate, checked against its predictor's `replicates`: a path of a
    replicate the config does not have is refused by name."""
    value, predictor = int(_get(wildcards, "replicate")), _get(wildcards, "predictor")
    if value >= study.replicates(predictor):
        raise ValueError(
            f"predictor {predictor!r} has replicates 0..{study.replicates(predictor) - 1} "
            f"in this config, not {value}")
    return value


def _task(study: Study, wildcards):
    return experiment(study, wildcards).task(_get(wildcards, "task"))


# name -> (the wildcards it needs, its value from the config and the wildcards)
ARGUMENTS: dict[str, tuple[tuple[str, ...], Callable]] = {
    "experiment": (("experiment",), lambda s, w: experiment(s, w).name),
    "pretraining": (("experiment",), lambda s, w: experiment(s, w).pretraining.to_dict()),
    "tasks": (("experiment",),
              lambda s, w: {t.name: t.source.to_dict() for t in experiment(s, w).tasks}),
    "task_length": (("experiment",), lambda s, w: experiment(s, w).task_length),
    "dataset_sizes": (("experiment",), lambda s, w: list(experiment(s, w).dataset_sizes)),
    "max_prompt_length": (("experiment",), lambda s, w: experiment(s, w).max_prompt_length),
    "enumeration_budget": ((), lambda s, w: s.enumeration_budget),
    "predictor": (("predictor",), lambda s, w: _get(w, "predictor")),
    "replicate": (("predictor", "replicate"), replicate),
    "family": (("predictor",), lambda s, w: s.family(_get(w, "predictor"))),
    "task_name": (("experiment", "task"), lambda s, w: _task(s, w).name),
    "task": (("experiment", "task"), lambda s, w: _task(s, w).source.to_dict()),
    "threads": ((), lambda s, w: s.training["threads"]),
}


def argument(study: Study, name: str, wildcards):
    """The value of argument `name` for a job with these wildcards."""
    return ARGUMENTS[name][1](study, wildcards)


def config_arguments(study: Study, wildcards) -> dict:
    """Every argument these wildcards determine, as the config gives it now (what the
    summary holds a file's stored arguments to; `identity.check_config`)."""
    names = _names(wildcards)
    return {name: fn(study, wildcards) for name, (needs, fn) in ARGUMENTS.items()
            if set(needs) <= names and name != "threads"}
