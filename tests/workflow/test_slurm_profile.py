"""workflow/profiles/slurm: what a run through it would submit (a dry run; no cluster needed).

The real cluster run is tests/slurm/run_slurm_test.sh.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
import yaml

from workflow_helpers import REPO, TINY, snakemake

# Found, not imported: importing the plugin runs `scontrol show config`, which waits out a
# 10 s timeout where the Slurm client tools are installed and no controller answers, in every
# process that collects this module (the Snakemake processes the test starts get the stub of
# tests/stubs instead).
if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
    pytest.skip("needs the `slurm` extra: pip install -e '.[slurm]'", allow_module_level=True)

PROFILE = REPO / "workflow" / "profiles" / "slurm"


@pytest.mark.slow
def test_profile_groups_the_small_jobs_of_the_tiny_config_into_three_submissions(tmp_path):
    proc = snakemake(tmp_path, TINY, "--profile", str(PROFILE), "-n")
    text = proc.stdout + proc.stderr
    groups = re.findall(r"Group job (\w+) \(jobs in lexicogr\. order\)", text)
    # 9 datasets + 9 searches; 3 evaluation sets + 3 landscapes + 3 efficiencies; 2 x
    # (selections/reliability/choices, token efficiency, 4 figures): one submission each.
    assert sorted(groups) == ["landscape", "search", "summary"]


def test_profile_asks_a_gpu_for_training_and_scoring_only():
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    # GPU jobs (train_predictor, score_prompts: `resources: gpu=...`) are never grouped.
    assert not grouped & {"train_predictor", "score_prompts", "evaluate_predictor"}
    for rule in ("train_predictor", "score_prompts"):
        source = (REPO / "workflow" / "rules" / "training.smk").read_text()
        block = source.split(f"rule {rule}:", 1)[1].split("\nrule ", 1)[0]
        assert 'gpu=STUDY.training["gpus"]' in block
