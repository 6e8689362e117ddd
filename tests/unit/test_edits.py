"""Exact edit effects, edit kinds and local structure (`promptscape.edits`), each checked
against a brute force written with Python string operations."""

from __future__ import annotations

import numpy as np
import pytest

from promptscape import edits, landscape
from promptscape import prompts as prompts_lib
from promptscape.sources.coins import Coin

from landscape_helpers import count_landscape


# ------------------------------------------------------------------ brute force
def brute_edges(max_length: int, vocab_size: int, operations=edits.OPERATIONS) -> set:
    """Every edge as (parent, child, operation, position, symbol, replaced), by string
    operations: per (parent, operation), the first edit giving each child in the order
    position, then symbol."""
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    index = {p: i for i, p in enumerate(prompts)}
    digits = "0123456789"[:vocab_size]
    out = set()
    for s in prompts:
        L = len(s)
        candidates = []  # (operation, position, symbol, replaced, child)
        if L < max_length:
            candidates += [("insert", i, int(v), -1, s[:i] + v + s[i:])
                           for i in range(L + 1) for v in digits]
        candidates += [("delete", i, int(s[i]), -1, s[:i] + s[i + 1:]) for i in range(L)]
        candidates += [("substitute", i, int(v), int(s[i]), s[:i] + v + s[i + 1:])
                       for i in range(L) for v in digits if v != s[i]]
        candidates += [("swap", i, int(s[i]), int(s[i + 1]), s[:i] + s[i + 1] + s[i] + s[i + 2:])
                       for i in range(L - 1) if s[i] != s[i + 1]]
        seen = set()
        for op, i, v, r, child in candidates:
            if op in operations and (op, child) not in seen:
                seen.add((op, child))
                out.add((index[s], index[child], edits.OPERATIONS.index(op), i, v, r))
    return out


def as_set(e: edits.Edges) -> set:
    return set(zip(*(a.tolist() for a in (e.parent, e.child, e.operation, e.position,
                                          e.symbol, e.replaced))))


def brute_neighbours(prompt: str, max_length: int, vocab_size: int) -> list[str]:
    digits = "0123456789"[:vocab_size]
    L = len(prompt)
    out = [prompt[:i] + prompt[i + 1:] for i in range(L)]
    out += [prompt[:i] + v + prompt[i + 1:] for i in range(L) for v in digits if v != prompt[i]]
    out += [prompt[:i] + prompt[i + 1] + prompt[i] + prompt[i + 2:] for i in range(L - 1)]
    if L < max_length:
        out += [prompt[:i] + v + prompt[i:] for i in range(L + 1) for v in digits]
    return sorted(set(out) - {prompt})


CASES = [(4, 2), (4, 3), (3, 4), (0, 2), (1, 3)]


# ------------------------------------------------------------------ edges and ΔKL
@pytest.mark.parametrize("max_length,vocab_size", CASES)
def test_vectorised_edges_equal_string_brute_force(max_length, vocab_size):
    e = edits.edit_edges(max_length, vocab_size)
    assert as_set(e) == brute_edges(max_length, vocab_size)
    assert len(as_set(e)) == len(e)  # no edge twice


@pytest.mark.parametrize("operations", [("insert", "delete", "substitute"), ("swap",),
                                        ("delete",)])
def test_edges_of_some_operations_equal_brute_force(operations):
    e = edits.edit_edges(4, 3, operations)
    assert as_set(e) == brute_edges(4, 3, operations)


def test_hill_climb_neighbourhood_is_insert_delete_substitute():
    from promptscape import strategies
    e = edits.edit_edges(3, 3, ("insert", "delete", "substitute"))
    prompts = prompts_lib.all_prompts(3, 3)
    for i, s in enumerate(prompts):
        mine = sorted(prompts[c] for c in e.child[e.parent == i])
        assert mine == sorted(strategies.neighbours(s, 3, 3)), s


def test_every_pair_is_one_edge_with_its_reverse_and_edges_sorted_by_parent():
    e = edits.edit_edges(4, 3)
    pairs = set(zip(e.parent.tolist(), e.child.tolist()))
    assert len(pairs) == len(e)
    assert pairs == {(c, p) for p, c in pairs}
    assert np.all(np.diff(e.parent) >= 0)


@pytest.mark.parametrize("max_length,vocab_size", [(4, 2), (3, 3)])
def test_every_edge_applied_as_a_string_gives_its_child(max_length, vocab_size):
    e = edits.edit_edges(max_length, vocab_size)
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    for p, c, o, i, v in zip(e.parent, e.child, e.operation, e.position, e.symbol):
        assert edits.apply_edit(prompts[p], edits.OPERATIONS[o], i, v, vocab_size) == prompts[c]


def test_every_delta_kl_is_the_difference_of_the_two_prompts_kls():
    rng = np.random.default_rng(1)
    prompts = prompts_lib.all_prompts(4, 3)
    kl = rng.random(len(prompts))
    by_prompt = dict(zip(prompts, kl))
    e = edits.edit_edges(4, 3)
    delta = edits.delta_kl(e, kl)
    for p, c, d in zip(e.parent, e.child, delta):
        assert d == by_prompt[prompts[c]] - by_prompt[prompts[p]]


def test_a_landscape_of_the_wrong_size_is_named():
    with pytest.raises(ValueError, match=r"not \(31,\)"):
        edits.delta_kl(edits.edit_edges(4, 2), np.zeros(30))


def test_paired_standard_error_of_an_edge_is_that_of_the_loss_difference():
    rng = np.random.default_rng(2)
    e = edits.edit_edges(3, 2)
    M = 40
    losses = rng.random((e.num_prompts, M))
    strata = np.repeat([0, 1], M // 2)
    weights = np.where(strata == 0, 0.3, 0.7) / (M // 2)
    se = edits.delta_standard_error(e, losses, weights, strata, max_bytes=8 * M * 7)
    for j in range(len(e)):
        ref = landscape.paired_differences(losses[[e.parent[j], e.child[j]]], 0, weights,
                                           strata)[1][1]
        assert se[j] == pytest.approx(ref, rel=1e-12)
    assert np.all(edits.delta_standard_error(e) == 0)


# ------------------------------------------------------------------ edit kinds
def test_swaps_change_nothing_under_an_exchangeable_predictor():
    e = edits.edit_edges(5, 3)
    kl = count_landscape(5, 3, np.random.default_rng(3))
    swaps = e.operation == edits.SWAP
    assert swaps.any()
    assert np.all(edits.delta_kl(e, kl)[swaps] == 0)
    row = {r["kind"]: r for r in edits.summarise_kinds(e, kl, [0.2, 0.3, 0.5])}["reorders"]
    assert row["median"] == row["iqr"] == row["share_improving"] == 0


def test_swaps_change_kl_under_an_order_sensitive_landscape():
    rng = np.random.default_rng(4)
    e = edits.edit_edges(4, 2)
    kl = rng.random(e.num_prompts)
    assert np.all(edits.delta_kl(e, kl)[e.operation == edits.SWAP] != 0)


def test_kinds_select_by_counts_against_string_brute_force():
    e = edits.edit_edges(3, 3)
    prompts = prompts_lib.all_prompts(3, 3)
    masks = edits.kind_masks(e, [0.6, 0.3, 0.1])  # most 0, least 2
    for j in range(len(e)):
        before, after = prompts[e.parent[j]], prompts[e.child[j]]
        change = {v: after.count(v) - before.count(v) for v in "012"}
        assert masks["adds_most_probable"][j] == (change["0"] == 1)
        assert masks["adds_least_probable"][j] == (change["2"] == 1)
        assert masks["removes_most_probable"][j] == (change["0"] == -1)
        assert masks["removes_least_probable"][j] == (change["2"] == -1)
        assert masks["lengthens"][j] == (len(after) > len(before))
        assert masks["shortens"][j] == (len(after) < len(before))
        assert masks["reorders"][j] == (len(after) == len(before) and all(
            x == 0 for x in change.values()))


@pytest.mark.parametrize("marginals,missing", [
    ([0.5, 0.5], {"adds_most_probable", "adds_least_probable", "removes_most_probable",
                  "removes_least_probable"}),
    ([0.5, 0.25, 0.25], {"adds_least_probable", "removes_least_probable"}),
    ([0.4, 0.4, 0.2], {"adds_most_probable", "removes_most_probable"}),
    ([0.3, 0.7], set()),
])
def test_kinds_needing_a_tied_symbol_have_no_rows_and_are_reported(marginals, missing):
    V = len(marginals)
    e = edits.edit_edges(3, V)
    kl = np.random.default_rng(5).random(e.num_prompts)
    assert set(edits.unavailable_kinds(marginals)) == missing
    assert set(edits.kind_masks(e, marginals)) == set(edits.EDIT_KINDS) - missing
    kinds = {r["kind"] for r in edits.summarise_kinds(e, kl, marginals)}
    assert kinds == set(edits.EDIT_KINDS) - missing
    for reason in edits.unavailable_kinds(marginals).values():
        assert "tied" in reason


def test_symbol_marginals_of_a_coin_are_one_minus_theta_and_theta():
    assert edits.symbol_marginals(Coin(theta=0.7), 5) == pytest.approx([0.3, 0.7])


def test_symbol_marginals_of_a_markov_chain_average_its_positions():
    from promptscape.sources.markov import Markov
    # P(x_t = 1) follows p_{t+1} = 0.3 + 0.5 p_t from p_1 = 0.5; the mean over T = 8 positions.
    p, ones = 0.5, []
    for _ in range(8):
        ones.append(p)
        p = 0.3 + 0.5 * p
    marginals = edits.symbol_marginals(Markov(transition=(0.3, 0.8), initial=0.5), 8)
    assert marginals == pytest.approx([1 - np.mean(ones), np.mean(ones)], rel=1e-12)


def test_near_top_shares_split_the_edges_of_each_kind():
    rng = np.random.default_rng(6)
    e = edits.edit_edges(4, 2)
    kl = rng.random(e.num_prompts) * 0.05
    best = kl.min()
    delta = edits.delta_kl(e, kl)
    for row in edits.summarise_kinds(e, kl, [0.3, 0.7], near_top=0.01):
        mask = edits.kind_masks(e, [0.3, 0.7])[row["kind"]]
        top = mask & (kl[e.parent] - best <= 0.01)
        assert row["near_top_edges"] == top.sum()
        assert row["near_top_edges"] + row["rest_edges"] == row["edges"] == mask.sum()
        assert row["share_improving_near_top"] == pytest.approx((delta[top] < 0).mean())
        assert row["median"] == pytest.approx(np.median(delta[mask]))


# ------------------------------------------------------------------ local structure
LANDSCAPES = [
    ("random", 4, 2), ("random", 3, 3), ("ties", 5, 2), ("ties", 3, 3), ("counts", 5, 2),
]


def make_landscape(kind, max_length, vocab_size, seed=7):
    rng = np.random.default_rng(seed)
    P = prompts_lib.num_prompts(max_length, vocab_size)
    if kind == "random":
        return rng.random(P)
    if kind == "ties":  # few levels: many equal neighbours, plateaus of several prompts
        return rng.integers(3, size=P).astype(float)
    return count_landscape(max_length, vocab_size, rng, levels=4)


@pytest.mark.parametrize("kind,max_length,vocab_size", LANDSCAPES)
def test_local_optima_have_no_improving_edit_by_brute_force(kind, max_length, vocab_size):
    kl = make_landscape(kind, max_length, vocab_size)
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    index = {p: i for i, p in enumerate(prompts)}
    s = edits.local_structure(edits.edit_edges(max_length, vocab_size), kl)
    for i, p in enumerate(prompts):
        improvable = any(kl[index[q]] < kl[i] for q in brute_neighbours(p, max_length, vocab_size))
        assert s.local_optimum[i] == (not improvable), p
    assert np.all(s.kl_above_optimum[s.local_optimum] >= 0)


@pytest.mark.parametrize("kind,max_length,vocab_size", LANDSCAPES)
def test_steepest_descent_ends_at_a_local_optimum_and_basins_partition(kind, max_length,
                                                                      vocab_size):
    kl = make_landscape(kind, max_length, vocab_size)
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    index = {p: i for i, p in enumerate(prompts)}
    s = edits.local_structure(edits.edit_edges(max_length, vocab_size), kl)
    for i, p in enumerate(prompts):
        current = i
        while True:  # brute-force steepest descent, ties to the lowest canonical index
            near = [index[q] for q in brute_neighbours(prompts[current], max_length, vocab_size)]
            better = [j for j in near if kl[j] < kl[current]]
            if not better:
                break
            current = min(better, key=lambda j: (kl[j], j))
        assert s.sink[i] == current, p
        assert s.local_optimum[current]
    assert s.basin_size.sum() == len(prompts)
    assert np.all(s.basin_size[~s.local_optimum] == 0)
    assert np.all(s.basin_size[s.local_optimum] >= 1)


@pytest.mark.parametrize("kind,max_length,vocab_size", LANDSCAPES)
def test_plateaus_agree_with_a_union_find(kind, max_length, vocab_size):
    kl = make_landscape(kind, max_length, vocab_size)
    prompts = prompts_lib.all_prompts(max_length, vocab_size)
    index = {p: i for i, p in enumerate(prompts)}
    s = edits.local_structure(edits.edit_edges(max_length, vocab_size), kl)
    root = list(range(len(prompts)))

    def find(i):
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    optima = [i for i in range(len(prompts)) if s.local_optimum[i]]
    for i in optima:
        for q in brute_neighbours(prompts[i], max_length, vocab_size):
            j = index[q]
            if s.local_optimum[j] and kl[j] == kl[i]:
                root[find(i)] = find(j)
    groups = {}
    for i in optima:
        groups.setdefault(find(i), []).append(i)
    expected = np.full(len(prompts), -1)
    for number, members in enumerate(sorted(groups.values(), key=min)):
        expected[members] = number
    assert np.array_equal(s.plateau, expected)
    if kind == "ties":
        assert s.num_plateaus < len(optima)  # the test has plateaus of several prompts


def test_local_structure_of_the_hill_climb_neighbourhood_ignores_swaps():
    # "10" is worse than "01" and every other prompt is worse still: under all edits "10"
    # improves by a swap, under hill_climb's neighbourhood it is a local optimum.
    prompts = prompts_lib.all_prompts(2, 2)
    kl = np.full(len(prompts), 5.0)
    kl[prompts.index("01")], kl[prompts.index("10")] = 0.0, 1.0
    every = edits.local_structure(edits.edit_edges(2, 2), kl)
    climb = edits.local_structure(edits.edit_edges(2, 2, ("insert", "delete", "substitute")), kl)
    assert not every.local_optimum[prompts.index("10")]
    assert climb.local_optimum[prompts.index("10")]


# ------------------------------------------------------------------ one tie rule
@pytest.mark.parametrize("tolerance", [None, 1e-12, 1e-8])
def test_every_member_of_the_optimal_class_is_a_local_optimum_under_the_same_tie_rule(tolerance):
    """Edits and the landscape share one tie rule (`landscape.resolution`): under BernMix,
    coin(0.7), L_max 12, T = 10, no edit improves on a member of S*, whatever width both are
    given. (Before issue 26 the class tied within relative 1e-9 of the loss and edits within
    1e-12 nats, so 1^11 was optimal and its edit to 1^12 improved.)"""
    from landscape_helpers import BERNMIX, coin

    from promptscape.predictors import BayesPredictor
    from promptscape.sources import build_source

    L, T = 12, 10
    prompts = prompts_lib.all_prompts(L, 2)
    pred = BayesPredictor(build_source(BERNMIX))
    first, inverse = pred.prompt_classes(prompts)
    loss, _, entropy = landscape.theoretical_losses(pred, first, build_source(coin(0.7)), T,
                                                    "exact_counts")
    kl = (loss - entropy)[inverse]
    width = edits.tie_tolerance(kl, tolerance)
    optimal = landscape.classify(kl, tolerance=width)[1]
    s = edits.local_structure(edits.edit_edges(L, 2), kl, tolerance)
    assert s.local_optimum[optimal].all()
    assert optimal[prompts.index("1" * 12)]
    assert not optimal[prompts.index("1" * 11)] or width >= 1e-9


def test_tie_tolerance_default_is_the_landscape_default_and_refuses_nonsense():
    kl = np.array([0.5, 2.0, 7.0])
    assert edits.tie_tolerance(kl) == landscape.default_resolution(kl)
    assert edits.tie_tolerance(kl, 1e-10) == 1e-10
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tolerance"):
            edits.tie_tolerance(kl, bad)


@pytest.mark.parametrize("max_length, vocab", [(3, 2), (2, 3)])
def test_single_edit_names_the_edge_edit_edges_records(max_length, vocab):
    prompts = prompts_lib.all_prompts(max_length, vocab)
    e = edits.edit_edges(max_length, vocab)
    pairs = set()
    for p, c, o, i, v, r in zip(e.parent, e.child, e.operation, e.position, e.symbol,
                                e.replaced):
        found = edits.single_edit(prompts[p], prompts[c])
        assert found == (edits.OPERATIONS[o], int(i), int(v), int(r))
        assert edits.apply_edit(prompts[p], *found[:3], vocab) == prompts[c]
        pairs.add((int(p), int(c)))
    assert (edits.edge_index(e, e.parent, e.child) == np.arange(len(e))).all()
    others = [(a, b) for a in range(len(prompts)) for b in range(len(prompts))
              if (a, b) not in pairs]
    for a, b in others:
        assert edits.single_edit(prompts[a], prompts[b]) is None
    a, b = np.array(others).T
    assert (edits.edge_index(e, a, b) == -1).all()


def test_edits_between_impossible_prompts_are_counted_and_left_out_of_the_statistics():
    """inf - inf has no value: such edits are counted, and the quantiles of the others stay
    numbers (numpy's interpolation made every quantile of a kind NaN once one of its
    edits was between two impossible prompts, and a median between two infinite ΔKLs NaN)."""
    edges = edits.edit_edges(2, 2)
    prompts_ = prompts_lib.all_prompts(2, 2)
    kl = np.array([np.inf if p.startswith("1") else 0.1 + 0.05 * len(p) for p in prompts_])
    rows = {r["kind"]: r for r in edits.summarise_kinds(edges, kl, [0.7, 0.3])}
    for name, row in rows.items():
        if row["edges"] > row["undefined_edges"]:
            assert not np.isnan([row["median"], row["q1"], row["q3"]]).any(), name
    child, parent = kl[edges.child], kl[edges.parent]
    both = np.isinf(child) & np.isinf(parent)
    assert sum(r["undefined_edges"] for r in rows.values()) > 0
    masks = edits.kind_masks(edges, [0.7, 0.3])
    for name, mask in masks.items():
        assert rows[name]["undefined_edges"] == int((mask & both).sum()), name
