"""Running the workflow through the Snakemake CLI from tests."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
TINY = REPO / "tests" / "data" / "tiny" / "config.yaml"
NEURAL = REPO / "tests" / "data" / "neural" / "config.yaml"
STUBS = REPO / "tests" / "stubs"


def environment(library: Path | None = None, **extra: str) -> dict[str, str]:
    """os.environ for a subprocess (Snakemake, its jobs, a command line), with `extra`:
    - this tree's src/ first on PYTHONPATH, so that it imports the promptscape under test,
      not the one an editable install of another checkout points at (or only `library`, a
      copy of src/, see `edited_library`);
    - tests/stubs first on PATH: its `scontrol` spares every Snakemake process a wait of
      about 9 s where no Slurm controller answers (see the stub)."""
    python_path = str(library) if library is not None else os.pathsep.join(
        filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    path = os.pathsep.join(filter(None, [str(STUBS), os.environ.get("PATH")]))
    return {**os.environ, "PYTHONPATH": python_path, "PATH": path, **extra}


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    """The command line of snakemake on the repository's Snakefile in `workdir` with
    `config` (run it with `environment()`)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True,
              timeout: int = 900, library: Path | None = None) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in `workdir` with `config`; with the
    promptscape package of `library` (a copy of src/, see `edited_library`) if given."""
    proc = subprocess.run(snakemake_command(workdir, config, *args), capture_output=True,
                          text=True, timeout=timeout, env=environment(library))
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return proc


def planned_jobs(workdir: Path, config: Path, library: Path | None = None) -> dict[str, int]:
    """Jobs a dry run would execute, by rule ({} when there is nothing to do)."""
    proc = snakemake(workdir, config, "-n", library=library)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    stats = text.split("Job stats:", 1)[1]
    jobs = {}
    for line in stats.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            jobs[match.group(1)] = int(match.group(2))
    return jobs


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy of a completed run (file times kept, so Snakemake sees it as complete) for a
    test that changes it; the shared runs (tests/workflow/conftest.py) stay as they are."""
    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    return target


def fingerprint(workdir: Path) -> dict[str, tuple[str, int]]:
    """SHA-256 and modification time of every file of a run but Snakemake's own locks, logs
    and I/O cache (every invocation, a dry run too, rewrites .snakemake/iocache): what a test
    that changed the run would have changed."""
    own = {(".snakemake", "locks"), (".snakemake", "log"), (".snakemake", "iocache")}
    return {str(p.relative_to(workdir)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                          p.stat().st_mtime_ns)
            for p in sorted(workdir.rglob("*"))
            if p.is_file() and p.relative_to(workdir).parts[:2] not in own}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def load_config(path: Path = TINY) -> dict:
    return yaml.safe_load(path.read_text())


def digests(workdir: Path) -> dict[str, str]:
    """SHA-256 of every Parquet artifact under results/."""
    root = workdir / "results"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def edited_library(tmp_path: Path, path: str, old: str | None, new: str) -> Path:
    """A copy of src/ (the real files are never touched) in which src/promptscape/`path`
    has its first `old` replaced by `new` (`new` appended when `old` is None)."""
    return edited_library_with(tmp_path, [(path, old, new)])


def edited_library_with(tmp_path: Path, edits: list[tuple[str, str | None, str]]) -> Path:
    """A copy of src/ with every (path, old, new) edit of `edits` made, in order (see
    `edited_library`)."""
    root = tmp_path / "library"
    shutil.copytree(REPO / "src", root, ignore=shutil.ignore_patterns("__pycache__"))
    for path, old, new in edits:
        target = root / "promptscape" / path
        text = target.read_text()
        if old is None:
            text += new
        else:
            assert old in text, f"{old!r} not in {path}"
            text = text.replace(old, new, 1)
        target.write_text(text)
    return root
