"""The workflow through the Snakemake CLI, on the tiny scenario (tests/data/tiny)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from promptscape.study import config as config_lib
from promptscape.study import layout
from workflow_helpers import (NEURAL, REPO, TINY, copy_run, digests, edited_library,
                              edited_library_with, load_config, planned_jobs, snakemake,
                              write_config)

pytestmark = pytest.mark.slow

# tiny_run and neural_run: the shared complete runs of tests/workflow/conftest.py.


def test_tiny_config_runs_end_to_end_through_the_cli(tiny_run):
    for experiment in ("bernmix", "switching"):
        for figure in ("reliability", "landscape", "choices", "efficiency", "posterior",
                       "edits", "transfer", "local_optima"):
            for ext in ("svg", "png", "html"):
                path = tiny_run / "results" / experiment / "figures" / f"{figure}.{ext}"
                assert path.stat().st_size > 1000, path
        rel = pd.read_parquet(tiny_run / "results" / experiment / "aggregate" / "reliability.parquet")
        assert (rel["seeds"] == load_config()["experiments"][experiment]["num_seeds"]).all()
        assert rel["proportion_correct"].between(0, 1).all()
        # Issue 28: a predictor's own search rows of the transfer table are the regret the
        # reliability table measured (both KL(s_hat) - KL(s*) averaged over seeds).
        transfer = pd.read_parquet(tiny_run / "results" / experiment / "aggregate"
                                   / "transfer.parquet")
        own = transfer[(transfer["source_prompts"] == "search")
                       & (transfer["source_predictor"] == transfer["target_predictor"])]
        random = rel[rel["selection"] == "random"].set_index(["task", "N"])["regret_mean"]
        assert len(own) == len(random)
        assert (own.set_index(["target_task", "search_N"])["regret"].sort_index()
                == random.sort_index()).all()
    html = (tiny_run / "results" / "bernmix" / "figures" / "landscape.html").read_text()
    assert "cdn.jsdelivr" not in html and "vegaEmbed" in html  # standalone, scripts inlined


def test_the_study_figure_names_the_config_that_drew_it(tiny_run):
    """Issue 26: configs that share a results folder share its study figures, so each says
    whose experiments and config files it shows."""
    html = (tiny_run / "results" / "figures" / "variance_plane.html").read_text()
    assert "experiments bernmix, switching (config " in html
    assert "tests/data/tiny/config.yaml" in html  # the path relative to the run's folder


def test_dry_run_after_a_complete_run_has_nothing_to_do(tiny_run):
    assert planned_jobs(tiny_run, TINY) == {}


def test_second_run_from_scratch_is_bit_identical(tiny_run, tmp_path):
    # Every Parquet artifact, rebuilt from scratch; the figures (SVG, PNG and HTML, more than
    # half the run's CPU) are compared by no digest, so the rebuild leaves them out. Its jobs
    # are new processes, as a user's are: the shared run's ran on the tests' job servers,
    # in forks that share a string-hash seed (tests/job_server.py).
    snakemake(tmp_path, TINY, "--omit-from", "plot_figures", "plot_study_figures",
              fresh_jobs=True)
    first, second = digests(tiny_run), digests(tmp_path)
    # datasets and searches (one per experiment and seed block), evaluation sets,
    # landscapes, efficiency (one per experiment), aggregates (3 + token efficiency +
    # reliability prediction + edits, local optima and transfer), predictions, and the
    # prior read back from bernmix's Bayes predictor (its pretraining is exchangeable)
    assert len(first) == 3 + 3 + 3 + 3 + 2 + 16 + 3 + 1
    assert first == second


def test_figure_style_change_reruns_only_figure_jobs(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    config = load_config()
    config["figures"]["panel_width"] = 150
    jobs = planned_jobs(run, write_config(tmp_path / "config.yaml", config))
    assert jobs == {"plot_figures": 2, "plot_study_figures": 1, "all": 1}


def test_adding_seeds_and_an_N_value_computes_only_what_is_new(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    config = load_config()
    bernmix = config["experiments"]["bernmix"]
    bernmix["num_seeds"] = 12  # one new block of 4 seeds (8-11)
    bernmix["dataset_sizes"] = [1, 10, 20]  # one new N
    jobs = planned_jobs(run, write_config(tmp_path / "config.yaml", config))
    # Datasets and searches are one cheap job per (experiment, seed block), holding every
    # task and N: the new N reruns the 2 old blocks, the new seeds add a third. The
    # landscape figure does not read searches; the new N is predicted per task. The edit
    # analysis reads the selections (the prompts search picks), so it reruns; bernmix's
    # figures are one job.
    assert jobs == {"simulate_tasks": 3, "search_prompts": 3, "aggregate_search": 1,
                    "predict_reliability": 2, "analyse_edits": 1, "plot_figures": 1,
                    "plot_study_figures": 1, "all": 1}


def test_pretraining_change_reruns_only_its_experiment(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    config = load_config()
    config["sources"]["switching"]["switch_prob"] = 0.2
    jobs = planned_jobs(run, write_config(tmp_path / "config.yaml", config))
    # Datasets depend on the task only; searches, landscape, efficiency, aggregates and
    # figures rerun.
    assert jobs == {"search_prompts": 1, "compute_landscape": 1, "aggregate_search": 1,
                    "measure_efficiency": 1, "predict_reliability": 1, "analyse_edits": 1,
                    "plot_figures": 1, "plot_study_figures": 1, "all": 1}


def test_a_seeds_per_job_that_leaves_the_blocks_as_they_are_reruns_nothing(tiny_run, tmp_path):
    run = copy_run(tiny_run, tmp_path)
    config = load_config()
    config["experiments"]["switching"]["seeds_per_job"] = 16  # 4 seeds: still one block 0-3
    assert planned_jobs(run, write_config(tmp_path / "config.yaml", config)) == {}


@pytest.mark.parametrize("change", ["num_typical", "max_length"])
def test_efficiency_config_change_reruns_only_the_efficiency_stage(tiny_run, tmp_path, change):
    run = copy_run(tiny_run, tmp_path)
    config = load_config()
    config["efficiency"][change] += 1  # more typical prompts, or one more length
    jobs = planned_jobs(run, write_config(tmp_path / "config.yaml", config))
    # One efficiency job per experiment (its efficiency and token-efficiency tables), and
    # the figures of each of the 2 experiments (its efficiency and posterior figures read
    # the efficiency table; one job draws all of an experiment's figures).
    assert jobs == {"measure_efficiency": 2, "plot_figures": 2, "all": 1}


UNUSED = "\n\ndef unused_helper():\n    return 1\n"
EVERYTHING_WITH_COIN_TASKS = {  # both experiments have a coin task
    "simulate_tasks": 3, "simulate_evaluation": 3, "search_prompts": 3, "compute_landscape": 3,
    "measure_efficiency": 2, "aggregate_search": 2, "predict_reliability": 3,
    "analyse_edits": 2, "plot_figures": 2, "plot_study_figures": 1, "all": 1}
BERNMIX_EXPERIMENT = {  # pretraining coin_mixture: searches, landscapes and what follows
    "search_prompts": 2, "compute_landscape": 2, "measure_efficiency": 1, "probe_prior": 1,
    "aggregate_search": 1, "predict_reliability": 2, "analyse_edits": 1, "plot_figures": 1,
    "plot_study_figures": 1, "all": 1}
SWITCHING_EXPERIMENT = {
    "search_prompts": 1, "compute_landscape": 1, "measure_efficiency": 1,
    "aggregate_search": 1, "predict_reliability": 1, "analyse_edits": 1, "plot_figures": 1,
    "plot_study_figures": 1, "all": 1}
CODE_EDITS = {
    # Unused functions, comments and docstrings rerun nothing.
    "unused network function": ("neural/base.py", None, UNUSED, {}),
    "unused figure function": ("report/figures.py", None, UNUSED, {}),
    "unused table function": ("study/tables.py", None, UNUSED, {}),
    "comment": ("search.py", "def choose(", "# a comment\ndef choose(", {}),
    "docstring": ("sources/base.py", '"""Build a source from a config mapping',
                  '"""Build a source, at last, from a config mapping', {}),
    # Network code: network jobs only; the tiny scenario has none, so nothing reruns.
    "network code": ("neural/base.py", "    bos = torch.full(",
                     "    assert tokens.ndim >= 1\n    bos = torch.full(", {}),
    # Figure code: only the figure jobs that draw with the edited chart builder
    # (reliability: every experiment's), not the study's.
    "figure code": ("report/figures.py", "    data = rel.copy()\n",
                    "    data = rel.copy()\n    data = data.copy()\n",
                    {"plot_figures": 2, "all": 1}),
    # A source kind: the jobs whose task or pretraining source is of that kind.
    "coin kind": ("sources/coins.py", "class Coin(BinarySource):\n",
                  "class Coin(BinarySource):\n    unused = 1\n", EVERYTHING_WITH_COIN_TASKS),
    "coin_mixture kind": ("sources/coins.py", "class CoinMixture(BinarySource):\n",
                          "class CoinMixture(BinarySource):\n    unused = 1\n", BERNMIX_EXPERIMENT),
    "switching sampler": ("sources/switching.py", "    def _sample(self, n, length, rng):\n",
                          "    def _sample(self, n, length, rng):\n        assert n >= 0\n",
                          SWITCHING_EXPERIMENT),
    # Library logic every search runs, and the prediction with it (its tie rule is the
    # search's).
    "search logic": ("search.py", "def choose(", "def choose(*args):\n    return _choose(*args)"
                     "\n\n\ndef _choose(", {
                         "search_prompts": 3, "aggregate_search": 2,
                         "predict_reliability": 3, "analyse_edits": 2, "plot_figures": 2,
                         "plot_study_figures": 1, "all": 1}),
}


RERUN_NOTHING = [edit for edit, (*_, expected) in CODE_EDITS.items() if expected == {}]


@pytest.mark.parametrize("edit", [edit for edit in CODE_EDITS if edit not in RERUN_NOTHING])
def test_library_edit_reruns_exactly_the_jobs_that_run_the_edited_code(tiny_run, tmp_path,
                                                                       edit):
    """Each job's `code` param is the identity of the code it runs (docs/caching.md)."""
    path, old, new, expected = CODE_EDITS[edit]
    library = edited_library(tmp_path, path, old, new)
    assert planned_jobs(tiny_run, TINY, library=library) == expected


def test_library_edits_that_reach_no_job_rerun_nothing(tiny_run, tmp_path):
    """The edits of CODE_EDITS that rerun nothing, made together in one copy of the library
    (one dry run, not one per edit: each costs a parse of the workflow). A job's identity
    is a hash of the definitions it reaches and each edit changes its own definitions, so no
    edit can undo another's effect: nothing planned for all of them together is nothing
    planned for each. Where something is planned, each edit is tried alone to name it."""
    edits = [CODE_EDITS[edit][:3] for edit in RERUN_NOTHING]
    assert len(edits) == 6
    together = planned_jobs(tiny_run, TINY, library=edited_library_with(tmp_path, edits))
    if together:
        alone = {edit: planned_jobs(tiny_run, TINY, library=edited_library(
            tmp_path / str(i), *CODE_EDITS[edit][:3])) for i, edit in enumerate(RERUN_NOTHING)}
        pytest.fail(f"edits that should rerun nothing planned {together}; alone: {alone}")


def test_bad_config_error_names_the_key_through_the_cli(tmp_path):
    config = load_config()
    config["sources"]["coin_0.7"]["theta"] = 1.5
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), "-n", check=False)
    assert proc.returncode != 0
    assert "sources.coin_0.7: coin.theta == 1.5, must be < 1." in proc.stdout + proc.stderr


def test_snakemake_lint_passes():
    proc = snakemake(REPO, REPO / "config" / "config.yaml", "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_neural_scenario_trains_scores_and_searches_through_the_cli(neural_run, tmp_path):
    results = neural_run / "results"
    land = pd.concat(pd.read_parquet(p) for p in (results / "bernmix" / "landscape").rglob("*.parquet"))
    assert set(land["predictor"]) == {"bayes", "lstm", "transformer"}
    # Networks' landscapes are exact sums over all 2^T sequences of their tabulated losses.
    assert set(land.loc[land["predictor"] != "bayes", "method"]) == {"exact_enumeration"}
    for name in ("lstm", "transformer"):
        # The model folder is named by the model and its identity (a 10-hex-digit hash).
        (folder,) = (results / "models" / "bernmix").glob(f"{name}-*")
        assert len(folder.name) == len(name) + 11
        curve = pd.read_parquet(folder / "training_curve.parquet")
        assert list(curve["step"]) == list(range(20))
        assert set(curve["identity"]) == {folder.name[len(name) + 1:]}
    for figure in ("training", "neural_vs_bayes"):
        assert (results / "bernmix" / "figures" / f"{figure}.png").stat().st_size > 1000
    assert planned_jobs(neural_run, NEURAL) == {}
    # Editing network code reruns the networks and every job that uses one, no Bayes job
    # but the experiment's one search and efficiency job, which hold every predictor.
    library = edited_library(tmp_path, "neural/base.py", "    bos = torch.full(",
                             "    assert tokens.ndim >= 1\n    bos = torch.full(")
    assert planned_jobs(neural_run, NEURAL, library=library) == {
        "train_predictor": 2, "evaluate_predictor": 2, "score_prompts": 2, "search_prompts": 1,
        "compute_landscape": 2, "measure_efficiency": 1, "aggregate_search": 1,
        "predict_reliability": 2, "tune_network": 2, "tune_optimum": 2,
        "aggregate_tuning": 1,
        "analyse_edits": 1, "probe_prior": 2, "plot_figures": 1,
        "plot_study_figures": 1, "all": 1}
    unused = edited_library(tmp_path / "unused", "neural/base.py", None, UNUSED)
    assert planned_jobs(neural_run, NEURAL, library=unused) == {}


def test_reordered_keys_stated_defaults_and_the_device_rerun_nothing(neural_run, tmp_path):
    """Artifacts are identified by canonical parameters: the order of a source's or a
    model's keys, a default written out, 1 for 1.0, or the device change no identity."""
    run = copy_run(neural_run, tmp_path)
    config = load_config(NEURAL)
    config["sources"]["bernmix"] = {"weights": [0.5, 0.5], "thetas": [0.2, 0.7],
                                    "kind": "coin_mixture"}
    lstm = config["models"]["lstm"]
    config["models"]["lstm"] = {**dict(reversed(list(lstm.items()))), "learning_rate": 0.003,
                                "num_layers": 1, "grad_clip": 1, "model_seed": 0}
    config["models"] = dict(reversed(list(config["models"].items())))
    config["training"]["device"] = "auto"
    assert planned_jobs(run, write_config(tmp_path / "config.yaml", config)) == {}
    # A real change of a model reruns that model's jobs and what reads them.
    config["models"]["lstm"]["hidden_size"] = 6
    jobs = planned_jobs(run, write_config(tmp_path / "config.yaml", config))
    assert jobs["train_predictor"] == 1 and "compute_landscape" in jobs
    assert "simulate_tasks" not in jobs


def test_a_second_config_leaves_the_first_ones_artifacts_untouched(neural_run, tmp_path):
    run = copy_run(neural_run, tmp_path)
    before = digests(run)
    # (a) Same results_dir, another experiment on the same source with longer prompts: its
    # network needs a longer training length, so it is another model (another folder). One
    # network is enough to show it; the other shares every code path. Each second config is
    # built up to its reliability table (training, scoring, landscapes, search): the stages
    # after it write only below their own experiment's folder.
    # (Neither second config tunes: tuning is not what this test is about.)
    longer = load_config(NEURAL)
    longer["experiments"] = {"bernmix_long": {**longer["experiments"]["bernmix"],
                                              "max_prompt_length": 3,
                                              "predictors": ["lstm"]}}
    del longer["experiments"]["bernmix_long"]["tuning"]
    snakemake(run, write_config(tmp_path / "longer.yaml", longer),
              "results/bernmix_long/aggregate/reliability.parquet")
    # (b) Its own results_dir, the same experiment names and other settings (the Bayes
    # predictor only: which files a results_dir holds does not depend on the predictors).
    other = load_config(NEURAL)
    other["results_dir"] = "results_other"
    other["experiments"]["bernmix"]["num_seeds"] = 2
    other["experiments"]["bernmix"]["predictors"] = ["bayes"]
    del other["experiments"]["bernmix"]["tuning"]
    snakemake(run, write_config(tmp_path / "other.yaml", other),
              "results_other/bernmix/aggregate/reliability.parquet")
    after = digests(run)
    assert {k: after[k] for k in before} == before
    assert len(list((run / "results" / "models" / "bernmix").iterdir())) == 3
    assert (run / "results" / "bernmix_long" / "aggregate" / "reliability.parquet").exists()
    assert (run / "results_other" / "bernmix" / "aggregate" / "reliability.parquet").exists()
    # Nothing of the first config is to be built again.
    assert planned_jobs(run, NEURAL) == {}


def test_cuda_on_a_machine_without_it_fails_at_the_job_start_naming_the_key(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for the jobs, on any machine
    config = load_config(NEURAL)
    config["training"]["device"] = "cuda"
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config),
                     "--until", "train_predictor", check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (tmp_path / "results" / "logs" / "train_predictor")
                   .rglob("*.log"))
    assert "training.device == 'cuda', but torch sees no CUDA device" in logs
    assert not list((tmp_path / "results" / "models").rglob("*.pt"))


def test_replicates_train_new_networks_beside_replicate_zero(neural_run, tmp_path):
    """`models.lstm.replicates: 2` trains replicate 1 only (replicate 0 is the network of
    the config without replicates, identity and files unchanged); each replicate
    is searched, landscaped and aggregated like a predictor, with a `replicate` column, and
    the replicates figure appears."""
    run = copy_run(neural_run, tmp_path)
    before = digests(run)
    config = load_config(NEURAL)
    config["models"]["lstm"]["replicates"] = 2
    # Without tuning, which reads the batched search file and would tune every network
    # again (the same data under a new stamp): tuning is not what this test is about.
    del config["experiments"]["bernmix"]["tuning"]
    configfile = write_config(tmp_path / "config.yaml", config)
    jobs = planned_jobs(run, configfile)
    assert jobs["train_predictor"] == 1 and jobs["evaluate_predictor"] == 1
    assert jobs["score_prompts"] == 1 and jobs["search_prompts"] == 1
    assert jobs["compute_landscape"] == 1 and jobs["measure_efficiency"] == 1
    results = run / "results"
    batched = {"search": results / "bernmix" / "search" / "random" / "seeds0-3.parquet",
               "efficiency": results / "bernmix" / "efficiency.parquet"}
    rows = {name: pd.read_parquet(path) for name, path in batched.items()}
    snakemake(run, configfile)
    after = digests(run)
    kept = [k for k in before if "/aggregate/" not in k and "/figures/" not in k
            and k not in {str(p.relative_to(results)) for p in batched.values()}]
    assert {k: after[k] for k in kept} == {k: before[k] for k in kept}
    # The batched files gain the new replicates' rows; the others' rows are unchanged.
    for name, path in batched.items():
        new = pd.read_parquet(path)
        old = new[new["replicate"].eq(0) | new["predictor"].ne("lstm")].reset_index(drop=True)
        pd.testing.assert_frame_equal(old, rows[name])
        assert set(new.loc[new["predictor"] == "lstm", "replicate"]) == {0, 1}
    rel = pd.read_parquet(results / "bernmix" / "aggregate" / "reliability.parquet")
    assert sorted(zip(rel["predictor"], rel["replicate"])) == [
        ("bayes", 0), ("lstm", 0), ("lstm", 1), ("transformer", 0)]
    folders = sorted((results / "models" / "bernmix").glob("lstm-*"))
    assert len(folders) == 2
    import torch

    weights = [torch.load(f / "model.pt", weights_only=False)["model"] for f in folders]
    first = next(iter(weights[0]))
    assert not torch.equal(weights[0][first], weights[1][first])  # independent initialisations
    assert (results / "bernmix" / "figures" / "replicates.png").stat().st_size > 1000
    assert planned_jobs(run, configfile) == {}


def test_a_post_trained_model_is_tuned_from_the_trained_network_and_used_like_any(neural_run,
                                                                                  tmp_path):
    """Adding a model post-trained from the LSTM (models.<name>.post_training) trains no
    network: one job tunes the LSTM's checkpoint, and the new predictor is evaluated,
    scored, landscaped, predicted, searched, tuned and drawn like any other (a dry run)."""
    config = load_config(NEURAL)
    config["models"]["ft"] = {"post_training": {"base": "lstm", "source": "coin_0.7",
                                                "steps": 3, "batch": 8}}
    config["experiments"]["bernmix"]["predictors"].append("ft")
    configfile = write_config(tmp_path / "config.yaml", config)
    jobs = planned_jobs(neural_run, configfile)
    study = config_lib.load_file(configfile)
    # Every tuning job reads the experiment's batched search file, which gains the new
    # predictor's rows: the networks' tuning reruns beside the new one's.
    tunings = layout.tuning_jobs(study, study.experiments["bernmix"])
    assert sum(j["predictor"] == "ft" for j in tunings) == 1
    assert "train_predictor" not in jobs
    assert {rule: jobs.get(rule) for rule in (
        "post_train_predictor", "evaluate_predictor", "score_prompts", "compute_landscape",
        "predict_reliability", "probe_prior", "search_prompts", "measure_efficiency",
        "tune_network", "tune_optimum", "plot_figures")} == {
        "post_train_predictor": 1, "evaluate_predictor": 1, "score_prompts": 1,
        "compute_landscape": 1, "predict_reliability": 1, "probe_prior": 1,
        "search_prompts": 1, "measure_efficiency": 1, "tune_network": len(tunings),
        "tune_optimum": 1, "plot_figures": 1}


def test_no_tuner_reads_a_landscape_or_an_evaluation_set_on_the_rule_graph(tmp_path):
    """Tuning trains on D_N alone: in the neural scenario (all 2^T sequences enumerated) the
    rules tune_network reads from are the network's training, the datasets and the search,
    never compute_landscape nor simulate_evaluation (the scoring enumerates)."""
    proc = snakemake(tmp_path, NEURAL, "--rulegraph")
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', proc.stdout))
    parents = {labels[a] for a, b in re.findall(r"(\d+) -> (\d+)", proc.stdout)
               if labels[b] == "tune_network"}
    assert parents == {"train_predictor", "simulate_tasks", "search_prompts"}
    assert "tune_network" in {labels[a] for a, b in re.findall(r"(\d+) -> (\d+)", proc.stdout)
                              if labels[b] == "aggregate_tuning"}


def _parents(tmp_path, config, rule):
    tmp_path.mkdir(exist_ok=True)
    proc = snakemake(tmp_path, write_config(tmp_path / "config.yaml", config), "--rulegraph")
    labels = dict(re.findall(r'(\d+)\[label = "(\w+)"', proc.stdout))
    return {labels[a] for a, b in re.findall(r"(\d+) -> (\d+)", proc.stdout)
            if labels[b] == rule}


def test_held_out_settings_read_nothing_more_and_only_the_oracle_start_reads_a_landscape(
        tmp_path):
    """Choosing settings on held-out data reads D_N alone, as fixed settings do; init:
    optimum (the landscape's hard optimum, K beyond L_max) is the one start that reads the
    landscape. Each tuner's optimum reads the network and its landscape, never a D_N."""
    config = load_config(NEURAL)
    tuning = config["experiments"]["bernmix"]["tuning"]
    tuning["selection"] = {"holdout": 0.25, "learning_rates": [0.01, 0.1]}
    assert _parents(tmp_path / "a", config, "tune_network") == {
        "train_predictor", "simulate_tasks", "search_prompts"}
    assert _parents(tmp_path / "a", config, "tune_optimum") == {
        "train_predictor", "compute_landscape"}
    tuning.update(init="optimum", prompt_length=3)
    assert _parents(tmp_path / "b", config, "tune_network") == {
        "train_predictor", "simulate_tasks", "search_prompts", "compute_landscape"}
