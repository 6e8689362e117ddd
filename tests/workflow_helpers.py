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
TINY = REPO / "tests" / "data" / "tiny" / "config.yaml"


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True,
              timeout: int = 900, library: Path | None = None) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in `workdir` with `config`; with the
    promptscape package of `library` (a copy of src/, see `edited_library`) if given."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    env = None if library is None else dict(os.environ, PYTHONPATH=str(library))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
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
    root = tmp_path / "library"
    shutil.copytree(REPO / "src", root, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "promptscape" / path
    text = target.read_text()
    if old is None:
        text += new
    else:
        assert old in text, f"{old!r} not in {path}"
        text = text.replace(old, new, 1)
    target.write_text(text)
    return root
