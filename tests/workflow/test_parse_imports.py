"""Parsing the workflow stays light: every job (cluster jobs too) parses the Snakefile, so
the parse must import neither altair (figures) nor torch (networks)."""

from __future__ import annotations

import os
import subprocess
import sys

from workflow_helpers import REPO, TINY, environment

HEAVY = ("altair", "vl_convert", "torch")

SITECUSTOMIZE = """
import atexit, os, sys

def _report():
    with open(os.environ["PROMPTSCAPE_MODULES_OUT"], "w") as out:
        out.write("\\n".join(sorted(sys.modules)))

atexit.register(_report)
"""


def test_parsing_the_workflow_imports_neither_altair_nor_torch(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp_path / "modules.txt"
    env = environment(PROMPTSCAPE_MODULES_OUT=str(out))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "site"), env["PYTHONPATH"]])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(tmp_path / "run"), "--configfile", str(TINY), "--cores", "1",
           "-n", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    modules = set(out.read_text().split())
    assert "promptscape.report.catalog" in modules  # the registry was imported ...
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"parsing the workflow imported {heavy[:10]}"  # ... and nothing heavy
