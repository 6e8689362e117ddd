"""`python -m promptscape.report.summary`: the config's artifacts, a real command line, clean errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from promptscape.study import config as config_lib
from promptscape.study import arguments, identity, layout, tables
from promptscape.report import summary
from workflow_helpers import TINY, environment, load_config, write_config

# The subprocesses import this tree's promptscape, as the tests do.
ENV = environment()


def study_config(tmp_path: Path, edit=None) -> Path:
    """The tiny config with a network under a name of no family (listed before bayes, so the
    config's order is not the alphabetical one) and results under tmp_path/results."""
    config = load_config(TINY)
    config["results_dir"] = str(tmp_path / "results")
    config["models"] = {"small_net": {"family": "lstm", "hidden_size": 8}}
    config["experiments"]["bernmix"]["predictors"] = ["small_net", "bayes"]
    if edit is not None:
        edit(config)
    return write_config(tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml", config)


PROMPTS = ["", "0", "1"]


def _frame(study: config_lib.Study, artifact: str, path: str) -> pd.DataFrame:
    """Small, valid contents for the artifact at `path` (its wildcards from the path)."""
    if artifact in ("training_curve", "predictor_regret"):
        parts = Path(path).parent.name.rsplit("-", 1)
        ids = dict(predictor=parts[0], replicate=0, source=Path(path).parent.parent.name,
                   identity=parts[1])
        if artifact == "training_curve":
            post = study.post_training(ids["predictor"])
            if post is not None:  # rows on its post-training source and on the source
                return pd.DataFrame({**ids, "evaluated_on": [post.source] * 10
                                     + [ids["source"]] * 10, "step": [*range(10)] * 2,
                                     "loss": 0.7, "bayes_loss": 0.69,
                                     "regret": [0.1] * 9 + [0.001] + [0.0] * 9 + [0.2]})
            return pd.DataFrame({**ids, "evaluated_on": ids["source"], "step": range(5),
                                 "loss": 0.7, "bayes_loss": 0.69, "regret": 0.01})
        return pd.DataFrame({**ids, "position": range(4), "sequences": 10, "neural_loss": 0.7,
                             "bayes_loss": 0.69, "regret": [0.01, 0.03, 0.02, 0.0]})
    if artifact == "prior_fit":  # {experiment}/prior/{predictor}/r{replicate}.parquet
        return pd.DataFrame({
            "predictor": Path(path).parent.name, "replicate": 0,
            "experiment": Path(path).parents[2].name, "probe_length": [1, 1, 2, 2],
            "family": ["mixture", "dirichlet"] * 2, "component": 0, "queries": [3, 3, 6, 6],
            "components": 1, "weight": 1.0, "probabilities": [[0.5, 0.5]] * 4,
            "alpha": [None, [1.0, 1.0]] * 2, "train_error": 0.01, "heldout_error": 0.02,
            "w1": [0.2, 0.005, 0.2, 0.001], "w1_resolution": 0.0,
            "selected": [False, False, False, True]})
    exp_name = Path(path).parents[3 if artifact == "landscape" else 1].name
    exp = study.experiments[exp_name]
    if artifact == "landscape":
        predictor, task = Path(path).parent.parent.name, Path(path).stem
        kl = ([0.3, 0.1, 0.2] if predictor == "bayes" else [0.05, 0.12, 0.2]
              if study.post_training(predictor) else [0.35, 0.12, 0.2])
        rank = [int(r) for r in pd.Series(kl).rank(method="dense") - 1]
        return pd.DataFrame({"predictor": predictor, "replicate": 0, "experiment": exp.name,
                             "task": task,
                             "prompt": PROMPTS, "prompt_length": [len(p) for p in PROMPTS],
                             "prompt_counts": [[p.count("0"), p.count("1")] for p in PROMPTS],
                             "method": "exact_counts", "loss": [k + 4 for k in kl],
                             "loss_se": 0.0, "entropy": 4.0, "kl": kl, "kl_se": 0.0,
                             "first_symbol_kl": [k / 2 for k in kl],
                             "first_symbol_prediction": [[0.5, 0.5]] * len(PROMPTS),
                             "rank": rank, "optimal": [r == 0 for r in rank],
                             "resolved": True, "mc_kl": kl,
                             "mc_kl_se": 0.01, "kl_resolution": 1e-13,
                             "below_resolution": [k <= 1e-13 for k in kl],
                             "decided_by": "kl_resolution",
                             "kl_residuals": [[]] * len(PROMPTS)})
    rows = [(p, t.name, t.in_meta_distribution) for p in exp.predictors for t in exp.tasks]
    if artifact == "reliability":
        return pd.DataFrame([
            {"predictor": p, "replicate": 0, "experiment": exp.name, "task": t,
             "in_meta_distribution": imd, "selection": selection, "N": N, "seeds": 4,
             "correct": 3, "proportion_correct": 0.75, "ci_low": 0.3,
             "ci_high": 0.95, "epsilon": 1e-6, "within_epsilon_seeds": 4,
             "within_epsilon": 1.0, "within_epsilon_ci_low": 0.51,
             "within_epsilon_ci_high": 1.0, "regret_mean": 0.01, "regret_median": 0.0, "regret_q25": 0.0,
             "regret_q75": 0.02, "rank_mean": 0.25, "rank_median": 0.0}
            for p, t, imd in rows for selection in exp.selections for N in exp.dataset_sizes])
    if artifact == "reliability_prediction":
        return pd.DataFrame([
            {"predictor": p, "replicate": 0, "experiment": exp.name, "task": t,
             "in_meta_distribution": imd, "N": N, "outcomes": "count_values",
             "num_outcomes": 7, "num_classes": 4, "optimal_classes": 1,
             "predicted_proportion_correct": 0.7, "method": "exact" if N < 5 else "normal",
             "exact_proportion_correct": 0.7 if N < 5 else None,
             "normal_proportion_correct": 0.6, "normal_se": 0.005,
             "simulated_proportion_correct": 0.7, "simulated_se": 0.005, "gap": 0.01,
             "paired_sd": 0.1, "classes_within_2se": 1, "first_n_half": 1,
             "first_n_ninety": None, "seeds": 4, "measured_proportion_correct": 0.75,
             "ci_low": 0.3, "ci_high": 0.95, "inside_interval": True}
            for p, t, imd in rows for N in exp.dataset_sizes])
    if artifact == "edits":
        return pd.DataFrame([
            {"predictor": p, "replicate": 0, "experiment": exp.name, "task": t,
             "edit_kind": kind, "in_meta_distribution": imd, "method": "exact_counts",
             "edges": 4, "undefined_edges": 0,
             "delta_median": -0.1, "delta_q25": -0.2, "delta_q75": 0.1,
             "share_improving": 0.75, "near_top_edges": 1, "share_improving_near_top": 0.0,
             "rest_edges": 3, "share_improving_rest": 1.0, "share_unresolved": 0.25,
             "decided_by": "kl_resolution", "delta_se_median": 0.0, "delta_se_max": 0.0}
            for p, t, imd in rows for kind in ("lengthens", "shortens")])
    if artifact == "local_optima":
        return pd.DataFrame([
            {"predictor": p, "replicate": 0, "experiment": exp.name, "task": t,
             "prompt": "0", "prompt_length": 1, "kl": 0.1, "kl_above_optimum": 0.0,
             "optimal": True, "plateau": 0, "basin_size": 3, "decided_by": "kl_resolution"}
            for p, t, _ in rows])
    if artifact == "transfer":
        return pd.DataFrame([
            {"experiment": exp.name, "comparison": "predictors",
             "source_prompts": "optimal_class", "source_experiment": exp.name,
             "target_experiment": exp.name, "source_predictor": a, "source_replicate": 0,
             "target_predictor": b, "target_replicate": 0, "source_task": t,
             "target_task": t, "search_N": None, "source_count": 1,
             "regret": 0.0 if a == b else 0.02, "regret_min": 0.0, "regret_max": 0.02,
             "regret_se": 0.0, "regret_shown": a != b, "target_method": "exact_counts",
             "decided_by": "kl_resolution"}
            for a, t, _ in rows for b in exp.predictors])
    return pd.DataFrame([
        {"predictor": p, "replicate": 0, "experiment": exp.name, "task": t,
         "in_meta_distribution": imd, "max_prompt_length": 2, "optimal_prompt": "0", "optimal_length": 1, "optimal_kl": 0.1,
         "max_typical_length": 8, "typical_length": 3,
         "typical_method": "exact_counts" if p == "bayes" else "sampled", "length_ratio": 3.0}
        for p, t, imd in rows])


def write_artifacts(configfile: Path) -> config_lib.Study:
    """Every artifact the summary reads for the config, with small valid contents."""
    study = config_lib.load_file(configfile)
    for path, artifact in summary.required(study):
        with identity.stamping(stamp_for(study, artifact, path)):
            tables.write(_frame(study, artifact, path), artifact, path)
    return study


def stamp_for(study: config_lib.Study, artifact: str, path: str) -> dict:
    """An identity whose arguments are the config's (what a job of the config stores)."""
    wildcards = layout.wildcards_of(study, artifact, path)
    return identity.stamp(f"make_{artifact}", "0" * 16,
                          arguments.config_arguments(study, wildcards), study.results_dir)


def run(args, capsys) -> tuple[int, str, str]:
    code = summary.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def built(tmp_path):
    configfile = study_config(tmp_path)
    return configfile, write_artifacts(configfile)


def test_help_describes_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        summary.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--configfile", "--output", "-o", "--results-dir"):
        assert option in out


def test_the_tables_of_every_experiment_and_network_of_the_config(built, capsys):
    configfile, study = built
    code, out, err = run(["--configfile", configfile], capsys)
    assert code == 0 and err == ""
    assert "### `bernmix`" in out and "### `switching`" in out
    # The network's regret table, read from the model folder of the config's model.
    assert "| bernmix | small_net | 1.50e-02 | 3.00e-02 (t=1) | 5 |" in out
    # The config's predictor order (small_net before bayes), tasks sorted, IMD from config.
    bernmix = out.split("### `bernmix`")[1].split("### ")[0]
    assert bernmix.index("| coin_0.5 (OOMD) | small_net |") < bernmix.index(
        "| coin_0.5 (OOMD) | bayes |") < bernmix.index("| coin_0.7 (IMD) | small_net |")
    assert "proportion correct at N=10" in bernmix
    assert "| coin_0.5 | small_net | 0.05 | (empty) | 0.35 / 0.3 |" in bernmix
    # Token efficiency says whether the typical length rests on an exact or sampled median.
    assert "| coin_0.7 | small_net | `0` | 0.1 | 3 | sampled | 3.0 |" in bernmix
    assert "| coin_0.7 | bayes | `0` | 0.1 | 3 | exact | 3.0 |" in bernmix
    # Issue 28: edit kinds by IMD and OOMD, transfer between the network and Bayes, and
    # the local optima of each landscape.
    assert "| lengthens | 0.75 | -0.1 | 0.75 | -0.1 |" in bernmix
    assert "IMD tasks lengthens, shortens; OOMD tasks lengthens, shortens." in bernmix
    assert ("networks' optima under bayes: regret 0.02 nats on average, at most 0.02 "
            "(small_net -> bayes, task coin_0.5); zero in 0 of 2 (network, task) pairs"
            ) in bernmix
    assert "| small_net | coin_0.7 | 1 | 1 | 1 | 0 | 3 |" in bernmix


def test_a_fine_tuned_network_beside_its_base_gets_what_fine_tuning_changed(tmp_path,
                                                                          capsys):
    def edit(config):
        config["models"]["tuned"] = {"post_training": {"base": "small_net",
                                                       "source": "coin_0.5", "steps": 10}}
        config["experiments"]["bernmix"]["predictors"].append("tuned")

    configfile = study_config(tmp_path, edit)
    write_artifacts(configfile)
    code, out, err = run(["--configfile", configfile], capsys)
    assert code == 0 and err == ""
    bernmix = out.split("### `bernmix`")[1].split("### ")[0]
    # Its landscapes' optimum is the empty prompt, its base's `0`.
    assert ("| tuned | small_net | coin_0.5 (full, 10 steps) | coin_0.7 | `0` -> (empty) | yes "
            "| 0.12 -> 0.05 | 0.75 -> 0.75 |") in bernmix
    # The first and last step of its curve on each source, and the held-out regrets.
    assert "| tuned | 1.00e-01 -> 1.00e-03 | 0.00e+00 -> 2.00e-01 | 1.50e-02 -> 1.50e-02 |" in (
        bernmix)
    # Its steps in the regret table: those on the post-training source.
    assert "| bernmix | tuned | 1.50e-02 | 3.00e-02 (t=1) | 10 |" in out


def test_output_file_holds_what_standard_output_shows(built, tmp_path, capsys):
    configfile, _ = built
    _, shown, _ = run(["--configfile", configfile], capsys)
    target = tmp_path / "docs" / "results.md"
    code, out, err = run(["--configfile", configfile, "-o", target], capsys)
    assert code == 0 and out == "" and err == ""
    assert target.read_text() == shown


def test_an_experiment_or_predictor_removed_from_the_config_does_not_appear(built, tmp_path,
                                                                             capsys):
    configfile, _ = built
    def drop(config):
        del config["experiments"]["switching"]
        config["experiments"]["bernmix"]["predictors"] = ["bayes"]

    smaller = study_config(tmp_path, drop)
    code, out, err = run(["--configfile", smaller], capsys)
    assert code == 0 and err == ""
    # Its files are still there, but the config no longer lists them.
    assert (tmp_path / "results" / "switching" / "aggregate" / "reliability.parquet").exists()
    assert "switching" not in out and "small_net" not in out
    assert "### `bernmix`" in out and "| coin_0.7 (IMD) | bayes |" in out


def test_a_missing_results_directory_is_an_error_naming_it(tmp_path, capsys):
    configfile = study_config(tmp_path)
    code, out, err = run(["--configfile", configfile], capsys)
    assert code == 1 and out == ""
    assert f"results directory '{tmp_path / 'results'}'" in err and "does not exist" in err
    assert f"snakemake --cores 2 --configfile {configfile}" in err
    assert "Traceback" not in err


def test_a_missing_artifact_is_an_error_naming_it_and_its_rule(built, capsys):
    configfile, study = built
    gone = layout.aggregate(study, study.experiments["switching"], "reliability")
    os.unlink(gone)
    code, out, err = run(["--configfile", configfile], capsys)
    assert code == 1 and out == ""
    assert f"{gone} (rule aggregate_search)" in err
    assert f"build them with: snakemake --cores 2 --configfile {configfile}" in err


def test_an_aggregate_older_than_the_config_is_an_error(built, tmp_path, capsys):
    configfile, study = built
    # A task added to the config that the (old) aggregate does not hold yet.
    path = layout.aggregate(study, study.experiments["switching"], "token_efficiency")
    frame = tables.read(path, "token_efficiency")
    with identity.stamping(stamp_for(study, "token_efficiency", path)):
        tables.write(frame[frame["task"] != "coin_0.7"], "token_efficiency", path)
    code, _, err = run(["--configfile", configfile], capsys)
    assert code == 1 and f"{path} is older than the config" in err and "bayes/coin_0.7" in err


def test_results_dir_option_reads_another_folder(built, tmp_path, capsys):
    configfile, _ = built
    (tmp_path / "results").rename(tmp_path / "elsewhere")
    assert run(["--configfile", configfile], capsys)[0] == 1
    code, out, _ = run(["--configfile", configfile, "--results-dir", tmp_path / "elsewhere"],
                       capsys)
    assert code == 0 and "### `bernmix`" in out


def test_a_missing_or_invalid_config_is_an_error(tmp_path, capsys):
    code, _, err = run(["--configfile", tmp_path / "none.yaml"], capsys)
    assert code == 1 and "none.yaml not found" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: {}\nexperiments: {}\n")
    code, _, err = run(["--configfile", bad], capsys)
    assert code == 1 and "given twice" in err and "Traceback" not in err


def test_a_closed_output_pipe_ends_quietly(built):
    configfile, _ = built
    proc = subprocess.Popen([sys.executable, "-m", "promptscape.report.summary", "--configfile",
                             str(configfile)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=ENV)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == summary.EXIT_BROKEN_PIPE
    assert err == b""


def test_piped_into_head_prints_its_first_line_quietly(built):
    configfile, _ = built
    proc = subprocess.run(f"{sys.executable} -m promptscape.report.summary --configfile {configfile} "
                          "| head -1", shell=True, capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert proc.stdout.startswith("| pretraining source |") and proc.stderr == ""


@pytest.mark.slow
def test_summary_of_a_real_run_of_the_tiny_scenario(tiny_run):
    """On the shared complete run (its aggregates are what the summary reads)."""
    proc = subprocess.run([sys.executable, "-m", "promptscape.report.summary", "--configfile",
                           str(TINY)], cwd=tiny_run, capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "### `bernmix`" in proc.stdout and "### `switching`" in proc.stdout
    assert "| coin_0.7 (IMD) | bayes | `111` |" in proc.stdout


def test_a_copied_results_folder_built_from_other_parameters_is_refused(built, tmp_path,
                                                                       capsys):
    """Issue 26: a folder copied (or restored, or shared) and read with a config that gives a
    source other parameters under the same name is stale; the summary names the file, the
    parameter and both values instead of reporting the old landscape."""
    configfile, study = built
    config = load_config(configfile)
    config["sources"]["coin_0.5"]["theta"] = 0.4
    second = write_config(tmp_path / "second.yaml", config)
    code, out, err = run(["--configfile", second], capsys)
    assert code == 1 and out == ""
    assert re.search(r"\.parquet was built with parameter args\.tasks?\.(coin_0\.5\.)?theta = "
                     r"0\.5, but the workflow would now build it with 0\.4", err), err


def test_a_hand_edited_artifact_is_refused(built, capsys):
    configfile, study = built
    path = layout.aggregate(study, study.experiments["bernmix"], "reliability")
    pd.read_parquet(path).assign(proportion_correct=1.0).to_parquet(path)
    code, _, err = run(["--configfile", configfile], capsys)
    assert code == 1 and f"{path} carries no identity" in err and "by hand" in err
