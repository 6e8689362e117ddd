"""`snakemake --report`: one self-contained HTML file with every figure and its caption."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import pytest

from workflow_helpers import REPO, TINY, load_config, snakemake

pytestmark = pytest.mark.slow


def expected_figures(config: dict) -> list[str]:
    """results/{experiment}/figures/{figure}.svg of every figure the config's `all` makes,
    and results/figures/{figure}.svg of every study figure."""
    from promptscape.study import config as config_lib
    from promptscape.report.catalog import STUDY_FIGURES, experiment_figures

    study = config_lib.load(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return [f"results/{name}/figures/{figure}.svg"
            for name, exp in study.experiments.items()
            for figure in experiment_figures(
                neural=any(p in ("lstm", "transformer") for p in exp.predictors),
                replicated=any(study.replicates(p) > 1 for p in exp.predictors),
                bayes="bayes" in exp.predictors, selections=len(exp.selections) > 1,
                strategies=exp.runs_strategies)
            ] + [f"results/figures/{figure}.svg" for figure in STUDY_FIGURES]


def report_results(html: str) -> dict:
    """The report's `results` object: one entry per file marked for the report."""
    match = re.search(r'<script id="results">\s*var results = (.*?);?\s*</script>', html, re.S)
    assert match, "no results block in the report"
    return json.loads(match.group(1))


def decode(data_uri: str) -> bytes:
    header, _, payload = data_uri.partition(",")
    if header.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    """The report of the shared tiny run, written outside it (the run stays as it was)."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(tiny_run, TINY, "--report", str(path))
    return tiny_run, path


def test_report_is_one_html_file_with_every_figure_and_its_caption(report):
    workdir, path = report
    html = path.read_text()
    assert html.lstrip().lower().startswith("<!doctype html")
    results = report_results(html)
    config = load_config()
    figures = expected_figures(config)
    # 8 figures x 2 experiments (no networks in the tiny config; 3 of them the edit
    # analysis's), and the study's one.
    assert len(figures) == 17
    assert sorted(results) == sorted(figures)
    study = results["results/figures/variance_plane.svg"]
    assert study["labels"] == {"experiment": "all", "figure": "variance_plane",
                               "config": str(TINY)}
    assert "paired" in study["caption"] and "{{" not in study["caption"]
    for target in figures:
        if target.startswith("results/figures/"):
            continue
        entry = results[target]
        experiment, figure = target.split("/")[1], target.split("/")[3].removesuffix(".svg")
        # the figure itself, embedded (no link to results/)
        assert entry["mime_type"] == "image/svg+xml"
        assert decode(entry["data_uri"]) == (workdir / target).read_bytes(), target
        # labels: which figure, which experiment, which config file
        assert entry["labels"] == {"experiment": experiment, "figure": figure,
                                   "config": str(TINY)}
        # caption: what it shows and the configuration that produced it
        caption = entry["caption"]
        assert f"Figure <strong>{figure}</strong> of experiment <strong>{experiment}</strong>" \
            in caption
        assert "{{" not in caption and "{%" not in caption
        exp = config["experiments"][experiment]
        assert f"pretraining source\n{exp['pretraining']} = " in caption
        for task in exp["tasks"]:
            imd = "IMD" if task["in_meta_distribution"] else "OOMD"
            assert f"{task['source']} ({imd})" in caption
        assert f"dataset_sizes = {exp['dataset_sizes']}" in caption
        assert f"num_seeds = {exp['num_seeds']}" in caption
    shows = {"reliability": "predicted proportion correct", "landscape": "dense rank",
             "posterior": "posterior predictive",
             "choices": "how often each prompt is chosen", "efficiency": "typical prompts"}
    for figure, words in shows.items():
        assert words in results[f"results/bernmix/figures/{figure}.svg"]["caption"]
    # the workflow description of workflow/report/workflow.rst
    assert "Why is prompting hard?" in html


def test_zip_report_groups_figures_by_experiment_and_kind_and_shows_run_times(report):
    import zipfile

    workdir, html_path = report
    path = html_path.with_name("report.zip")
    snakemake(workdir, TINY, "--report", str(path))
    with zipfile.ZipFile(path) as archive:
        html = archive.read("report/report.html").decode()
    # category = experiment, subcategory = figure kind
    match = re.search(r"var categories = (\{.*?\});\n", html, re.S)
    assert match, "no categories in the report"
    figures = expected_figures(load_config())
    grouped = {}
    for target in figures:
        if target.startswith("results/figures/"):  # the study's figures: category "study"
            grouped.setdefault("study", {})[target.split("/")[2].removesuffix(".svg")] = [target]
            continue
        experiment, figure = target.split("/")[1], target.split("/")[3].removesuffix(".svg")
        grouped.setdefault(experiment, {})[figure] = [target]
    assert json.loads(match.group(1)) == grouped
    # per-rule run times (the rules with benchmark files among them)
    match = re.search(r"var runtimes_spec = (\{.*?\});\n", html, re.S)
    assert match, "no run times in the report"
    rules = {row["rule"] for row in json.loads(match.group(1))["data"]["values"]}
    assert {"search_prompts", "compute_landscape", "measure_efficiency",
            "predict_reliability"} <= rules
