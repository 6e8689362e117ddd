"""Exhaustive prompt search: tie-breaking, empirical losses, and independence of blocks.

A seed's dataset and its search result must not depend on which other seeds share its job
(its Snakemake block), bit for bit, and re-running a stage must rewrite the same bytes.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from search_helpers import assert_keeps_best_classes

from promptscape import search
from promptscape.study import tables
from promptscape.predictors import BayesPredictor
from promptscape.prompts import all_prompts
from promptscape.sources import build_source
from promptscape.pipeline.stages.datasets_stage import simulate_tasks
from promptscape.pipeline.stages.search_stage import search_prompts

BERNMIX = {"kind": "coin_mixture", "thetas": [0.2, 0.7]}
SWITCHING = {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05}
PROMPTS = all_prompts(3, 2)


# ------------------------------------------------------------------ tie-breaking
def _reference_choice(row: np.ndarray, prompts: list[str]) -> int:
    """Least loss; among exact ties the shorter prompt, then the lexicographically first."""
    return min(range(len(prompts)), key=lambda i: (row[i], len(prompts[i]), prompts[i]))


TIE_CASES = [
    # (prompts tied at the minimum, expected winner)
    (["01", "10", "111"], "01"),
    (["111", "10"], "10"),
    (["1", "00"], "1"),
    (["110", "011", "101"], "011"),
    (["001", "0"], "0"),
    (PROMPTS, ""),  # every prompt tied: the empty prompt
    (["11"], "11"),
]


@pytest.mark.parametrize("tied, winner", TIE_CASES, ids=[w or "empty" for _, w in TIE_CASES])
def test_choose_breaks_exact_ties_towards_shorter_then_lexicographic(tied, winner):
    rng = np.random.default_rng(len(tied))
    row = rng.uniform(2.0, 3.0, size=len(PROMPTS))
    for p in tied:
        row[PROMPTS.index(p)] = 1.5
    chosen = search.choose(row[None, :])
    assert chosen.shape == (1,)
    assert PROMPTS[int(chosen[0])] == winner
    assert int(chosen[0]) == _reference_choice(row, PROMPTS)


def test_choose_prefers_a_strictly_smaller_loss_over_the_tie_break():
    row = np.full(len(PROMPTS), 2.0)
    row[PROMPTS.index("01")] = 1.0
    row[PROMPTS.index("111")] = 1.0 - 1e-9  # smaller beyond rounding: not a tie
    assert PROMPTS[int(search.choose(row[None, :])[0])] == "111"


def test_choose_does_not_let_rounding_break_a_tie():
    """One ulp is rounding, not evidence: the tie rule (shorter first) decides."""
    row = np.full(len(PROMPTS), 2.0)
    row[PROMPTS.index("01")] = 1.0
    row[PROMPTS.index("111")] = np.nextafter(1.0, 0.0)
    assert PROMPTS[int(search.choose(row[None, :])[0])] == "01"


def test_choose_prompt_by_prompt_equals_choose_row_by_row(monkeypatch):
    """Many rows of few prompts take the column-wise path; it chooses what the row-wise
    one does, ties and near-ties included."""
    rng = np.random.default_rng(4)
    losses = rng.integers(0, 3, size=(5000, 9)).astype(np.float64)
    losses[::7, 3] = np.nextafter(losses[::7, 3], -np.inf)  # ties within rounding
    columnwise = search.choose(losses)
    monkeypatch.setattr(search, "COLUMNWISE_MAX_PROMPTS", 0)
    np.testing.assert_array_equal(columnwise, search.choose(losses))


def test_mathematically_equal_losses_of_different_classes_tie():
    """Under Dirichlet(1, 1, 1) the prompts 000, 0000, 0001 and 0002 have equal losses on
    a sequence with counts (4, 1, 1) (P(c | a) is the same for all four count vectors a),
    which floating-point sums separate by an ulp; the search must choose the shortest, 000,
    by the tie rule (a plain argmin chose 0001)."""
    pred = BayesPredictor(build_source({"kind": "dirichlet_categorical",
                                        "alpha": [1.0, 1.0, 1.0]}))
    prompts = ["000", "0000", "0001", "0002"]
    for seq in ([0, 0, 0, 0, 1, 2], [2, 1, 0, 0, 0, 0], [0, 1, 0, 2, 0, 0]):
        losses = search.empirical_losses(pred, prompts, np.array([[seq]], dtype=np.uint8),
                                         2 ** 27, 3)
        assert np.ptp(losses) < 1e-12 * losses.max()
        assert prompts[int(search.choose(losses)[0])] == "000"


def test_choose_works_row_by_row():
    rng = np.random.default_rng(3)
    losses = rng.integers(0, 4, size=(50, len(PROMPTS))).astype(np.float64)  # many ties
    chosen = search.choose(losses)
    assert chosen.tolist() == [_reference_choice(r, PROMPTS) for r in losses]


# ------------------------------------------------------------------ empirical losses
PREDICTORS = {"bernmix": BERNMIX, "switching": SWITCHING}
T = 6
# Enumeration budget large enough: table over all 2**T sequences; 1: unique sequences only.
PATHS = {"enumerated": 2 ** 27, "unique": 1}


def _datasets(S: int, N: int, seed: int) -> np.ndarray:
    task = build_source({"kind": "coin", "theta": 0.6})
    return task.sample(S * N, T, np.random.default_rng(seed)).reshape(S, N, T)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", PREDICTORS)
def test_seed_empirical_losses_do_not_depend_on_the_other_seeds_of_its_block(name, path):
    pred = BayesPredictor(build_source(PREDICTORS[name]))
    limit = PATHS[path]
    data = _datasets(S=5, N=40, seed=17)
    together = search.empirical_losses(pred, PROMPTS, data, limit, 2)
    assert together.shape == (5, len(PROMPTS)) and together.dtype == np.float64
    for s in range(5):
        alone = search.empirical_losses(pred, PROMPTS, data[s:s + 1], limit, 2)
        assert np.array_equal(alone[0], together[s]), (name, path, s)
    # Any regrouping of the seeds, too (a different block and other neighbours).
    regrouped = search.empirical_losses(pred, PROMPTS, data[[3, 1, 4]], limit, 2)
    assert np.array_equal(regrouped, together[[3, 1, 4]])
    # A block that shares the seed with unrelated datasets (new unique sequences).
    mixed = np.concatenate([data[2:3], _datasets(S=3, N=40, seed=99)])
    assert np.array_equal(search.empirical_losses(pred, PROMPTS, mixed, limit, 2)[0], together[2])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", PREDICTORS)
def test_empirical_loss_is_the_mean_prompt_loss_over_the_dataset(name, path):
    pred = BayesPredictor(build_source(PREDICTORS[name]))
    data = _datasets(S=3, N=25, seed=23)
    losses = search.empirical_losses(pred, PROMPTS, data, PATHS[path], 2)
    for s in range(3):
        direct = pred.prompt_losses(PROMPTS, data[s]).mean(axis=1)
        np.testing.assert_allclose(losses[s], direct, rtol=1e-12, atol=0)


def test_enumerated_and_unique_paths_agree():
    pred = BayesPredictor(build_source(SWITCHING))
    data = _datasets(S=4, N=30, seed=29)
    np.testing.assert_allclose(search.empirical_losses(pred, PROMPTS, data, 8, 2),
                               search.empirical_losses(pred, PROMPTS, data, T - 1, 2),
                               rtol=1e-12, atol=0)


# ------------------------------------------------------------------ stages, block by block
TASK_NAME = "coin07"
TASK = {"kind": "coin", "theta": 0.7}
STAGE_T = 8
STAGE_N = 25
BLOCKINGS = {"one": [(0, 9)], "two": [(0, 4), (5, 9)]}


def _simulate(directory, first, last, name=None):
    out = directory / (name or f"seeds{first}-{last}.parquet")
    simulate_tasks(output=str(out), experiment="exp", tasks={TASK_NAME: TASK},
                   task_length=STAGE_T, dataset_sizes=[STAGE_N], first=first, last=last)
    return out


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """{blocking: [dataset files]} for seeds 0-9 in one block and in two."""
    out = {}
    for blocking, ranges in BLOCKINGS.items():
        directory = tmp_path_factory.mktemp(f"datasets-{blocking}")
        out[blocking] = [_simulate(directory, first, last) for first, last in ranges]
    return out


def _per_seed(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
    return {int(seed): part.reset_index(drop=True) for seed, part in frame.groupby("seed")}


def test_simulated_datasets_do_not_depend_on_the_block_a_seed_is_written_in(blocks):
    one = tables.read(blocks["one"], "task_data")
    two = tables.read(blocks["two"], "task_data")
    assert sorted(one["seed"].unique()) == list(range(10))
    assert len(one) == 10 * STAGE_N
    one_seeds, two_seeds = _per_seed(one), _per_seed(two)
    assert one_seeds.keys() == two_seeds.keys()
    for seed in one_seeds:
        pd.testing.assert_frame_equal(one_seeds[seed], two_seeds[seed], check_exact=True)
        assert one_seeds[seed]["index"].tolist() == list(range(STAGE_N))
        assert (one_seeds[seed]["sequence"].str.len() == STAGE_T).all()
    # Different seeds are different draws.
    assert len({tuple(f["sequence"]) for f in one_seeds.values()}) == 10


def test_simulate_tasks_rewrites_a_bit_identical_file(blocks, tmp_path):
    again = _simulate(tmp_path, 0, 9)
    assert again.read_bytes() == blocks["one"][0].read_bytes()
    _simulate(tmp_path, 0, 9)  # over an existing file
    assert again.read_bytes() == blocks["one"][0].read_bytes()


def _search(datasets, output, pretraining, limit, predictor="bayes"):
    first, last = map(int, re.fullmatch(r"seeds(\d+)-(\d+)\.parquet", datasets.name).groups())
    search_prompts(datasets=str(datasets), output=str(output),
                   predictors=[{"predictor": predictor, "replicate": 0, "family": predictor}],
                   pretraining=pretraining, experiment="exp", tasks=[TASK_NAME],
                   task_length=STAGE_T, dataset_sizes=[STAGE_N], first=first, last=last,
                   max_prompt_length=3, enumeration_budget=limit)
    return output


SEARCH_CASES = {"bernmix-enumerated": (BERNMIX, 2 ** 27),
                "switching-enumerated": (SWITCHING, 2 ** 27), "switching-unique": (SWITCHING, 1)}


@pytest.mark.parametrize("case", SEARCH_CASES)
def test_search_rows_of_a_seed_do_not_depend_on_its_block(blocks, tmp_path, case):
    pretraining, limit = SEARCH_CASES[case]
    results = {}
    for blocking, files in blocks.items():
        outs = [_search(f, tmp_path / f"{blocking}-{f.name}", pretraining, limit) for f in files]
        results[blocking] = tables.read(outs, "search")
    one, two = _per_seed(results["one"]), _per_seed(results["two"])
    assert one.keys() == two.keys() == set(range(10))
    for seed in one:
        pd.testing.assert_frame_equal(one[seed], two[seed], check_exact=True)
        rows = one[seed]
        assert rows["chosen"].sum() == 1
    # The search keeps each seed's best prompt classes of the library's empirical losses,
    # s_hat by the reference tie rule among them.
    data = tables.read(blocks["one"], "task_data")
    pred = BayesPredictor(build_source(pretraining))
    seqs = np.array([[int(c) for c in s] for s in data["sequence"]], dtype=np.uint8)
    expected = np.array([pred.prompt_losses(PROMPTS, seqs[data["seed"] == seed]).mean(axis=1)
                         for seed in range(10)])
    found = pd.concat([one[seed] for seed in range(10)])
    assert_keeps_best_classes(found, expected, PROMPTS, pred, range(10), exact=False)
    for seed in range(10):
        chosen = one[seed].loc[one[seed]["chosen"], "prompt"].item()
        assert PROMPTS.index(chosen) == _reference_choice(expected[seed], PROMPTS)
    classes = len(pred.prompt_classes(PROMPTS)[0])
    assert (found.groupby("seed").size() == min(classes, search.KEPT_CLASSES)).all()


def test_search_prompts_rewrites_a_bit_identical_file(blocks, tmp_path):
    first = _search(blocks["one"][0], tmp_path / "a.parquet", SWITCHING, STAGE_T - 1)
    second = _search(blocks["one"][0], tmp_path / "b.parquet", SWITCHING, STAGE_T - 1)
    assert first.read_bytes() == second.read_bytes()


def test_drawn_datasets_are_the_task_data_rows(blocks):
    """A stage that draws its own D_N (strategies) sees the very sequences task_data holds
    and the search reads, seed for seed."""
    from promptscape.pipeline.stages.datasets_stage import draw_datasets

    data = tables.read(blocks["two"], "task_data")
    drawn = draw_datasets(TASK, STAGE_T, STAGE_N, range(10))
    assert drawn.shape == (10, STAGE_N, STAGE_T)
    for seed in range(10):
        rows = data[data["seed"] == seed]["sequence"].tolist()
        assert ["".join(map(str, seq)) for seq in drawn[seed]] == rows
