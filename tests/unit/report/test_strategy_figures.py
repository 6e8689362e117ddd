"""The strategies figure: prompt-search strategies against their budget, on a small
synthetic strategies table written and read back through its schema."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

from promptscape.study import tables
from promptscape.report import figures
from promptscape.report.aggregate import wilson_interval
from promptscape.pipeline.stages import figures_stage
from promptscape.report import catalog
from chart_helpers import layers

STYLE = {"panel_width": 200, "panel_height": 170, "png_scale": 1, "font_size": 12,
         "predictor_colors": {"bayes": "#1b1b1b", "lstm": "#d95f02", "transformer": "#7570b3"}}
TASKS = ["coin_0.7", "dice_3"]
IMD = {"coin_0.7": True, "dice_3": False}
PREDICTORS = ["bayes", "lstm", "transformer"]
SIZES = (10, 100)
BUDGETS = (10, 100, 1000)
P = 63  # prompts of length 0..5 over two symbols: exhaustive's budget
SEEDS = 50
TITLE = {"text": "a figure", "subtitle": "experiment e"}


def strategy_rows(predictors=("bayes", "lstm"), tasks=TASKS, sizes=SIZES):
    """A strategies table: exhaustive at budget P, random, beam, and gradient (networks
    only) at BUDGETS, counts of SEEDS seeds consistent with the schema's definitions."""
    rows = []
    for predictor in predictors:
        strategies = ["exhaustive", "random", "beam"] + (["gradient"] if predictor != "bayes"
                                                         else [])
        for t, task in enumerate(tasks):
            for n in sizes:
                # Seeds whose exhaustive choice is correct: all of them at N = 100 on
                # coin_0.7 (regret 0 there: the floor).
                ceiling = min(SEEDS, int(SEEDS * (0.5 + 0.25 * math.log10(n))) - 3 * t)
                for s, strategy in enumerate(strategies):
                    for budget in ([P] if strategy == "exhaustive" else BUDGETS):
                        used = min(budget, P)  # every prompt seen: the search stops
                        if strategy == "random":  # on its expectation, give or take a seed
                            found = min(SEEDS, round(SEEDS * expected_found_best(used)) + t)
                        else:
                            found = round(SEEDS * (1 - (1 - used / P) ** (1 + s)))
                        # Of the seeds that found the empirical optimum, those whose
                        # exhaustive choice is correct (the rest: estimation error).
                        good = round(found * ceiling / SEEDS)
                        missed = SEEDS - found
                        search_error = max(0, min(missed, ceiling - good))
                        rows.append(_row(predictor, task, n, strategy, budget, used, good,
                                         found - good, search_error, missed - search_error))
    return pd.DataFrame(rows)


def expected_found_best(used, m=1):
    """1 - C(P - m, B) / C(P, B): B prompts drawn without replacement include an optimum."""
    return 1 - math.comb(P - m, used) / math.comb(P, used)


def _row(predictor, task, n, strategy, budget, used, good, estimation, search, both):
    found = good + estimation
    correct = good + search // 3  # some search-error seeds still land in the optimal class
    low, high = wilson_interval(correct, SEEDS)
    f_low, f_high = wilson_interval(found, SEEDS)
    regret = 0.0 if correct == SEEDS else 0.02 * (SEEDS - correct) / SEEDS / n ** 0.5
    expected = expected_found_best(used) if strategy == "random" else None
    return {"predictor": predictor, "replicate": 0, "experiment": "e", "task": task,
            "in_meta_distribution": IMD[task], "N": n, "strategy": strategy, "budget": budget,
            "seeds": SEEDS, "correct": correct, "proportion_correct": correct / SEEDS,
            "ci_low": float(low), "ci_high": float(high), "epsilon": 1e-6,
            "within_epsilon_seeds": correct, "within_epsilon": correct / SEEDS,
            "within_epsilon_ci_low": float(low), "within_epsilon_ci_high": float(high),
            "found_best": found,
            "proportion_found_best": found / SEEDS, "found_best_ci_low": float(f_low),
            "found_best_ci_high": float(f_high), "expected_found_best": expected,
            "found_best_exhaustive_correct": good, "estimation_error": estimation,
            "search_error": search, "both_errors": both, "regret_mean": regret,
            "regret_median": regret / 2, "regret_q25": regret / 4, "regret_q75": regret * 1.5,
            "evaluations_mean": float(used), "ground_truth": "exhaustive"}


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """The synthetic table, through the schema: written by `tables.write`, read back."""
    path = tmp_path_factory.mktemp("strategies") / "strategies.parquet"
    tables.write(strategy_rows(), "strategies", path)
    return tables.read(path, "strategies")


@pytest.fixture(scope="module")
def drawn(frame):
    """The figure's specification of the synthetic table, built once for the tests that
    read it (building one is most of such a test)."""
    return chart(frame).to_dict()


@pytest.fixture
def spec(drawn):
    """A copy of `drawn` for one test."""
    return copy.deepcopy(drawn)


def chart(frame, **kwargs):
    return figures.strategies_chart(frame, **{**dict(tasks=TASKS, imd=IMD,
                                                     predictors=PREDICTORS, style=STYLE,
                                                     title=TITLE), **kwargs})


def mark(layer):
    return layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]


def filters(layer):
    return [t["filter"] for t in layer.get("transform", []) if "filter" in t]


def field(layer, channel):
    enc = layer.get("encoding", {}).get(channel)
    return enc.get("field") if isinstance(enc, dict) else None


def test_the_synthetic_table_matches_the_schema(frame):
    assert list(frame.columns) == tables.ARTIFACTS["strategies"].schema.names
    counts = frame[["found_best_exhaustive_correct", "estimation_error", "search_error",
                    "both_errors"]].sum(axis=1)
    assert (counts == frame["seeds"]).all()
    assert (frame["found_best"] == frame["found_best_exhaustive_correct"]
            + frame["estimation_error"]).all()
    random = frame["strategy"] == "random"
    assert frame.loc[random, "expected_found_best"].notna().all()
    assert frame.loc[~random, "expected_found_best"].isna().all()
    assert not ((frame["predictor"] == "bayes") & (frame["strategy"] == "gradient")).any()
    assert (frame.loc[frame["strategy"] == "exhaustive", "budget"] == P).all()


def test_three_blocks_faceted_by_task_n_and_predictor(frame, spec):
    json.dumps(spec)
    blocks = spec["vconcat"]
    assert len(blocks) == 3
    titles = [b["facet"]["row"]["title"] for b in blocks]
    assert titles[0].startswith("proportion correct") and "Wilson" in titles[0]
    assert titles[1].startswith("mean regret") and "25–75%" in titles[1]
    assert titles[2].startswith("found the empirical optimum")
    columns = ["coin_0.7 (IMD) · N=10", "coin_0.7 (IMD) · N=100", "dice_3 (OOMD) · N=10",
               "dice_3 (OOMD) · N=100"]
    for block in blocks:
        # A column per (task, N), in the config's task order, then N; a row per predictor.
        assert block["facet"]["column"]["field"] == "column_label"
        assert block["facet"]["column"]["sort"] == columns
        row = block["facet"]["row"]
        assert row["field"] == "predictor"
        assert row["sort"] == ["bayes", "lstm"]  # the config's predictor order
    (dataset,) = spec["datasets"].values()
    data = pd.DataFrame(dataset)
    assert set(data["column_label"]) == set(columns)
    assert len(data) == len(frame)


def test_budget_axis_is_log_and_colours_are_fixed_per_strategy(frame, spec):
    with_x = [lay for lay in layers(spec) if field(lay, "x")]
    assert with_x
    for lay in with_x:
        x = lay["encoding"]["x"]
        assert x["scale"]["type"] == "log" and x["title"] == "budget (evaluations)"
        assert x["field"] == "budget_plot"
    colors = [lay["encoding"]["color"] for lay in layers(spec) if field(lay, "color")]
    assert colors
    scale = colors[0]["scale"]
    assert all(c["scale"] == scale for c in colors)
    style = figures.STRATEGY_STYLE
    names = ["exhaustive", "random", "beam", "gradient"]  # STRATEGY_STYLE order
    assert scale["domain"] == [style[s][1] for s in names]
    assert scale["range"] == [style[s][0] for s in names]
    assert len(set(scale["range"])) == len(names)
    # The dodge keeps every strategy within a few per cent of its budget.
    (dataset,) = spec["datasets"].values()
    data = pd.DataFrame(dataset)
    ratio = data["budget_plot"] / data["budget"]
    assert ratio.between(10 ** -figures.STRATEGY_DODGE - 1e-9,
                         10 ** figures.STRATEGY_DODGE + 1e-9).all()
    assert (ratio[data["strategy"] == "exhaustive"] == 1).all()


def test_an_unknown_strategy_is_drawn_black(frame):
    other = frame.copy()
    other.loc[other["strategy"] == "beam", "strategy"] = "novel"
    spec = chart(other).to_dict()
    (lay,) = [lay for lay in layers(spec) if field(lay, "color")][:1]
    scale = lay["encoding"]["color"]["scale"]
    assert scale["domain"][-1] == "novel" and scale["range"][-1] == "#000000"


def test_exhaustive_is_the_ceiling_in_correct_and_regret(frame, spec):
    blocks = [layers(block) for block in spec["vconcat"]]
    exhaustive = "datum.strategy == 'exhaustive'"
    for block, y in zip(blocks[:2], ("proportion_correct", "regret_mean_plot")):
        rules = [lay for lay in block if mark(lay) == "rule" and exhaustive in filters(lay)]
        (rule,) = rules
        # A horizontal rule across the panel: a y, no x.
        assert field(rule, "y") == y and "x" not in rule["encoding"]
        assert rule["mark"]["strokeDash"]
        (point,) = [lay for lay in block if mark(lay) == "point" and exhaustive in filters(lay)]
        assert field(point, "x") == "budget_plot" and field(point, "y") == y
    # The regret axis is log; the first block shades exhaustive's Wilson interval.
    (regret,) = [lay for lay in blocks[1] if mark(lay) == "line"]
    assert regret["encoding"]["y"]["scale"]["type"] == "log"
    (band,) = [lay for lay in blocks[0] if mark(lay) == "rect"]
    assert exhaustive in filters(band) and field(band, "y") == "ci_low"
    # Exhaustive always finds the empirical optimum: no ceiling in the third block.
    assert not any(exhaustive in filters(lay) for lay in blocks[2])


def test_expected_found_best_is_drawn_for_random_only(frame, spec):
    blocks = [layers(block) for block in spec["vconcat"]]
    theory = [lay for block in blocks for lay in block
              if field(lay, "y") == "expected_found_best"]
    (line,) = theory
    assert blocks[2].count(line) == 1
    assert mark(line) == "line" and line["mark"]["color"] == "black"
    assert field(line, "x") == "budget_plot"  # at random's (dodged) budget, over its points
    (only,) = filters(line)
    assert "datum.strategy == 'random'" in only and "isValid" in only
    dash = line["encoding"]["strokeDash"]
    assert dash["scale"]["domain"] == [figures.RANDOM_THEORY]
    assert dash["scale"]["range"] != [[1, 0]]
    # The measured found-best proportions of every searched strategy, with Wilson rules.
    measured = [lay for lay in blocks[2] if field(lay, "y") == "proportion_found_best"]
    assert sorted(mark(lay) for lay in measured) == ["line"]
    (rules,) = [lay for lay in blocks[2] if field(lay, "y") == "found_best_ci_low"]
    assert rules["encoding"]["y2"]["field"] == "found_best_ci_high"
    # In the data the expectation is null off random (NaN is not JSON).
    (dataset,) = spec["datasets"].values()
    data = pd.DataFrame(dataset)
    assert data.loc[data["strategy"] != "random", "expected_found_best"].isna().all()
    random = data[data["strategy"] == "random"]
    expected = [expected_found_best(min(b, P)) for b in random["budget"]]
    assert np.allclose(random["expected_found_best"], expected)


def test_regret_sits_on_the_floor(frame, spec):
    (dataset,) = spec["datasets"].values()
    data = pd.DataFrame(dataset)
    assert (data["regret_mean_plot"] >= figures.REGRET_FLOOR).all()
    zero = data["regret_mean"] == 0
    assert zero.any() and (data.loc[zero, "regret_mean_plot"] == figures.REGRET_FLOOR).all()


def test_tooltips_carry_the_key_numbers(frame, spec):
    (line,) = [lay for lay in layers(spec["vconcat"][0]) if mark(lay) == "line"]
    tips = {t["field"] for t in line["encoding"]["tooltip"]}
    assert {"strategy", "budget", "proportion_correct", "ci_low", "ci_high",
            "proportion_found_best", "expected_found_best", "regret_mean", "search_error",
            "estimation_error", "both_errors", "evaluations_mean", "seeds"} <= tips


def test_the_figure_is_registered_for_experiments_with_strategies():
    spec = catalog.FIGURES["strategies"]
    assert spec.builder == "strategies_chart" and spec.artifacts == "strategies"
    assert spec.strategies and not spec.selections
    assert hasattr(figures, spec.builder)
    assert catalog.STRATEGY_FIGURES == ("strategies",)
    flags = dict(neural=True, replicated=True, bayes=True, selections=True)
    assert "strategies" in catalog.experiment_figures(**flags, strategies=True)
    assert "strategies" not in catalog.experiment_figures(**flags)
    assert "strategies" not in catalog.experiment_figures(
        neural=False, replicated=False, bayes=True)
    # Adding strategies adds that figure only.
    assert (set(catalog.experiment_figures(**flags, strategies=True))
            - set(catalog.experiment_figures(**flags))) == {"strategies"}


def test_plot_figure_draws_it_from_the_table(tmp_path, frame):
    # The table has no selection column: random_selection keeps it whole.
    assert tables.random_selection(frame) is frame
    path = tmp_path / "strategies.parquet"
    tables.write(frame, "strategies", path)
    out = tmp_path / "figures" / "strategies"
    figures_stage.plot_figure(
        figure="strategies", tables_in=[str(path)], svg=f"{out}.svg", png=f"{out}.png",
        html=f"{out}.html", experiment="e", pretraining="bernmix", tasks=TASKS, imd=IMD,
        predictors=PREDICTORS, style=STYLE)
    for kind in ("svg", "png", "html"):
        assert (tmp_path / "figures" / f"strategies.{kind}").stat().st_size > 0


def test_plot_figures_writes_what_plot_figure_writes(tmp_path, frame):
    """The experiment's one figure job draws each figure as a job of its own did: the same
    files, byte for byte, in its figures folder."""
    path = tmp_path / "strategies.parquet"
    tables.write(frame, "strategies", path)
    settings = dict(experiment="e", pretraining="bernmix", tasks=TASKS, imd=IMD,
                    predictors=PREDICTORS, style=STYLE)
    alone = tmp_path / "alone" / "strategies"
    figures_stage.plot_figure(figure="strategies", tables_in=[str(path)], svg=f"{alone}.svg",
                              png=f"{alone}.png", html=f"{alone}.html", **settings)
    figures_stage.plot_figures(figures=["strategies"], tables_in=[str(path)],
                               directory=str(tmp_path / "together"), **settings)
    assert sorted(p.name for p in (tmp_path / "together").iterdir()) == [
        "strategies.html", "strategies.png", "strategies.svg"]
    for kind in ("svg", "png", "html"):
        assert ((tmp_path / "together" / f"strategies.{kind}").read_bytes()
                == (tmp_path / "alone" / f"strategies.{kind}").read_bytes()), kind


def test_save_writes_every_format(tmp_path, frame):
    paths = {kind: tmp_path / f"strategies.{kind}" for kind in ("svg", "png", "html")}
    # The PNG, drawn from the SVG, is the one `chart.save` writes, at a scale other than 1.
    figures.save(chart(frame), **{kind: str(path) for kind, path in paths.items()}, scale=2)
    for path in paths.values():
        assert path.stat().st_size > 0
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "budget (evaluations)" in paths["svg"].read_text()
    chart(frame).save(str(tmp_path / "altair.png"), scale_factor=2)
    assert paths["png"].read_bytes() == (tmp_path / "altair.png").read_bytes()


def test_the_title_says_when_the_strategies_are_scored_against_the_best_known(frame):
    """Strategies beyond the landscape (ground_truth best_known) are scored against the
    best prompts known, their regret a lower bound: the figure says so in its title."""
    exact = chart(frame, title={"text": "t", "subtitle": "s"}).to_dict()["title"]["text"]
    assert "best prompts known" not in exact
    known = chart(frame.assign(ground_truth="best_known"),
                  title={"text": "t", "subtitle": "s"}).to_dict()["title"]["text"]
    assert "best prompts known" in known and "lower bound" in known


def test_an_infinite_regret_is_drawn_above_the_finite_ones_and_said(frame):
    """A strategy that chose a prompt its predictor calls impossible has regret inf (word
    sources): the figure is still drawn, the inf sits at INFINITE_LIFT x the largest finite
    regret, the subtitle says how many, and no inf reaches Vega."""
    data = frame.copy()
    data["regret_mean"] = data["regret_mean"].astype(float)
    data["regret_q75"] = data["regret_q75"].astype(float)
    rows = data.index[data["strategy"] == "beam"][:2]
    assert len(rows) == 2
    data.loc[rows, "regret_mean"] = np.inf
    data.loc[rows, "regret_q75"] = np.inf
    spec = chart(data, title={"text": "t", "subtitle": "s"}).to_dict()
    (dataset,) = spec["datasets"].values()
    drawn = pd.DataFrame(dataset)
    finite_top = drawn.loc[~drawn.index.isin(rows), "regret_q75_plot"].max()
    lifted = drawn.loc[rows]
    assert (lifted["regret_mean_plot"] == finite_top * figures.INFINITE_LIFT).all()
    assert lifted["regret_mean"].isna().all()
    assert np.isfinite(drawn.select_dtypes("number").to_numpy(float)[
        ~np.isnan(drawn.select_dtypes("number").to_numpy(float))]).all()
    subtitle = spec["title"]["subtitle"]
    assert any("regret = ∞" in line and " 2 of " in line for line in subtitle), subtitle
