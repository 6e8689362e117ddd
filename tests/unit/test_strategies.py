"""Search strategies: the evaluator's budget, each strategy against the exhaustive ground
truth, random search against its exact hypergeometric law, and the config's errors."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest

from promptscape import prompts as prompts_lib
from promptscape import search
from promptscape import strategies as st
from promptscape.validation import ConfigError

V, L = 2, 5
PROMPTS = prompts_lib.all_prompts(L, V)
P = len(PROMPTS)


def bowl(target_ones=3.5, length_cost=0.01, noise=0.0, seed=0):
    """A landscape whose best prompts have about `target_ones` ones, cheapest first."""
    rng = np.random.default_rng(seed)
    return np.array([abs(p.count("1") - target_ones) + length_cost * len(p)
                     + noise * rng.normal() for p in PROMPTS])


def test_prompt_index_is_the_canonical_position():
    for vocab, length in ((2, 6), (3, 4), (5, 2)):
        prompts = prompts_lib.all_prompts(length, vocab)
        assert [prompts_lib.prompt_index(p, vocab) for p in prompts] == list(range(len(prompts)))


def test_evaluator_counts_distinct_prompts_and_gradients():
    losses = bowl()
    ev = st.Evaluator(losses, V, L, budget=3)
    assert ev("01") == losses[PROMPTS.index("01")]
    ev("01")  # a repeat is free
    ev.charge()
    assert ev.used == 2 and ev.trail == [PROMPTS.index("01"), -1]
    ev("1")
    with pytest.raises(st.BudgetSpent):
        ev("0")
    with pytest.raises(st.BudgetSpent):
        ev.charge()
    ev("1")  # repeats stay free after the budget is spent
    assert ev.best_within(1) == (PROMPTS.index("01"), 1)


def test_best_within_uses_the_exhaustive_tie_rule():
    losses = np.ones(P)
    losses[[9, 20, 40]] = 0.5  # three equal optima
    losses[20] -= 1e-14  # rounding noise below the tie tolerance
    ev = st.Evaluator(losses, V, L, budget=P)
    for i in (40, 20, 9, 3):
        ev.at(i)
    assert ev.best_within(2)[0] == 20  # 40 and 20 are tied: the canonical first
    assert ev.best_within(4)[0] == 9
    assert search.choose(losses[None, :])[0] == 9


@pytest.mark.parametrize("seed", range(5))
def test_exhaustive_returns_s_hat(seed):
    rng = np.random.default_rng(seed)
    losses = np.round(rng.random(P), 2)  # many exact ties
    (budget, chosen, used), = st.run("exhaustive", losses, V, L, (P,), rng, {})
    assert (budget, used) == (P, P)
    assert chosen == search.choose(losses[None, :])[0]


def _plan(names=None, budgets=(5, 20, 60, 200)):
    plan = st.parse(names or list(st.STRATEGIES), list(budgets), "experiments.x")
    return dataclasses.replace(plan, probe_queries=45) if plan.needs_prior else plan


def _guide_for(losses):
    """A surrogate's L_N of every prompt: the table with a tilt, so its minimum may differ."""
    return losses + 0.01 * np.arange(len(losses)) / len(losses)


def _gradient_for(losses):
    """A synthetic gradient: the first-order loss change of each symbol swap read off the
    table (exact for single swaps), standing in for a network's."""
    return _table_gradient(losses, V, [])


@pytest.mark.parametrize("name", list(st.STRATEGIES))
def test_strategies_are_reproducible_nested_and_within_budget(name):
    plan = _plan()
    losses = bowl(noise=0.05)
    budgets = plan.budgets_of(name, P)
    grad = _gradient_for(losses) if st.STRATEGIES[name].needs_gradient else None
    guide = _guide_for(losses) if st.STRATEGIES[name].needs_prior else None
    runs = [st.run(name, losses, V, L, budgets, np.random.default_rng(7), plan.settings(name),
                   grad, guide) for _ in range(2)]
    assert runs[0] == runs[1]
    best = [losses[i] for _, i, _ in runs[0]]
    assert all(b2 <= b1 for b1, b2 in zip(best, best[1:]))  # nested budgets
    for budget, i, used in runs[0]:
        assert used <= budget and used <= P + (budget if grad else 0)
    other = st.run(name, losses, V, L, budgets, np.random.default_rng(8), plan.settings(name),
                   grad, guide)
    if name not in ("exhaustive", "beam", "surrogate"):  # the deterministic ones
        assert other != runs[0]  # another seed, another run


@pytest.mark.parametrize("name", ["exhaustive", "random", "beam", "hill_climb"])
def test_complete_strategies_find_the_optimum_when_the_budget_covers_all_prompts(name):
    """Exhaustive, random, beam (widening) and hill climbing (restarting) evaluate every
    prompt when the budget allows, then stop."""
    losses = bowl(noise=0.05, seed=3)
    plan = _plan(budgets=(100 * P,))
    (_, i, used), = st.run(name, losses, V, L, plan.budgets_of(name, P),
                           np.random.default_rng(1), plan.settings(name))
    assert used == P
    assert i == int(np.argmin(losses))


@pytest.mark.parametrize("name", ["annealing", "evolutionary"])
def test_walks_stop_at_their_step_limit_when_repeats_are_all_that_is_left(name):
    """Annealing and evolutionary search revisit prompts for free; a run on a budget above
    P ends at the step limit (twice the prompts, plus 100) with what it has seen."""
    losses = bowl(noise=0.05, seed=3)
    plan = _plan(budgets=(100 * P,))
    (_, i, used), = st.run(name, losses, V, L, plan.budgets_of(name, P),
                           np.random.default_rng(1), plan.settings(name))
    assert used <= P
    assert losses[i] <= np.quantile(losses, 0.1)  # among the best tenth of the prompts


def test_local_searches_beat_random_on_a_smooth_landscape():
    """On a bowl (one basin, unique optimum) the local searches find the optimum within a
    budget where random search mostly does not."""
    losses = bowl(target_ones=4, length_cost=0.3)
    best = int(np.argmin(losses))
    assert PROMPTS[best] == "1111"
    plan = _plan(budgets=(25,))
    hits = {}
    for name in ("random", "hill_climb", "beam", "annealing", "evolutionary"):
        hits[name] = sum(
            st.run(name, losses, V, L, (25,), np.random.default_rng(s), plan.settings(name))[0][1]
            == best for s in range(40))
    assert hits["hill_climb"] >= 36 and hits["beam"] == 40
    assert hits["random"] < 30  # expected 40 * 25 / 63 = 16
    assert hits["annealing"] > hits["random"] and hits["evolutionary"] > hits["random"]


def test_gradient_follows_an_exact_gradient_to_the_optimum():
    """With the exact effect of every swap as its gradient, GCG reaches the best prompt of
    its length from any start: a separable landscape over the symbols of 5-symbol prompts."""
    weight = np.random.default_rng(0).normal(size=(L, V))
    losses = np.array([sum(weight[i, int(c)] for i, c in enumerate(p)) if len(p) == L
                       else 100.0 for p in PROMPTS])
    plan = _plan(["gradient"], budgets=(300,))
    settings = {**plan.settings("gradient"), "candidates": 5, "top_k": 1}
    (_, i, used), = st.run("gradient", losses, V, L, (300,), np.random.default_rng(2),
                           settings, _gradient_for(losses))
    assert i == int(np.argmin(losses))


def _table_gradient(losses, vocab, calls):
    """The exact first-order change of each swap read off the table, recording its calls."""
    def gradient(prompt):
        calls.append(prompt)
        grad = np.zeros((len(prompt), vocab))
        for i in range(len(prompt)):
            for v in range(vocab):
                swapped = prompt[:i] + str(v) + prompt[i + 1:]
                grad[i, v] = losses[prompts_lib.prompt_index(swapped, vocab)]
        return grad
    return gradient


def test_gradient_computes_and_charges_each_prompts_gradient_once():
    """A step without improvement re-ranks the same prompt's swaps: its gradient is not
    recomputed, and only computed gradients are charged (a repeat is free, as a repeated
    prompt is). Three symbols, top_k 1: the gradient chooses among two swaps a position."""
    vocab, length = 3, 4
    prompts = prompts_lib.all_prompts(length, vocab)
    losses = np.array([abs(p.count("2") - 2.5) + 0.3 * p.count("1") for p in prompts])
    calls = []
    plan = _plan(["gradient"], budgets=(200,))
    evaluate = st.Evaluator(losses, vocab, length, 200)
    try:
        st.STRATEGIES["gradient"].search(evaluate, vocab, length, np.random.default_rng(5),
                                         {**plan.settings("gradient"), "top_k": 1,
                                          "patience": 3}, _table_gradient(losses, vocab, calls))
    except st.BudgetSpent:
        pass
    assert calls and len(calls) == len(set(calls))
    assert evaluate.trail.count(-1) == len(calls)


@pytest.mark.parametrize("seed", range(4))
def test_gradient_that_cannot_rank_is_charged_but_not_computed(seed):
    """Over two symbols top_k keeps every position's one alternative, so the candidates do
    not depend on the gradient: it is never computed, yet still charged, and the runs
    equal those of a search given any gradient (here: noise) whose ranking it ignores."""
    losses = bowl(noise=0.3, seed=seed)
    settings = _plan(["gradient"], budgets=(60,)).settings("gradient")
    calls = []
    runs = []
    for gradient in (_table_gradient(losses, V, calls),
                     lambda prompt: np.random.default_rng(len(prompt)).normal(size=(len(prompt), V))):
        evaluate = st.Evaluator(losses, V, L, 60)
        try:
            st.STRATEGIES["gradient"].search(evaluate, V, L, np.random.default_rng(seed),
                                             settings, gradient)
        except st.BudgetSpent:
            pass
        runs.append(evaluate.trail)
    assert calls == []
    assert runs[0] == runs[1] and runs[0].count(-1) >= 1


def test_neighbours_are_every_one_symbol_edit():
    for prompt in ("", "0", "012", "2102"):
        near = st.neighbours(prompt, 3, 4)
        assert len(near) == len(set(near)) and prompt not in near
        # Brute force: prompts at edit distance 1 (change, insertion or deletion).
        every = prompts_lib.all_prompts(4, 3)
        assert set(near) == {q for q in every if _edit_distance(prompt, q) == 1}


def _edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_expected_found_best_against_enumeration():
    Pn, m = 9, 2
    optima = set(range(m))
    for B in range(1, Pn + 1):
        subsets = list(itertools.combinations(range(Pn), B))
        exact = sum(bool(optima & set(c)) for c in subsets) / len(subsets)
        assert st.expected_found_best(Pn, m, B) == pytest.approx(exact, abs=1e-15)
    assert st.expected_found_best(131071, 1, 10000) == pytest.approx(10000 / 131071, rel=1e-12)


def test_random_search_found_best_follows_the_hypergeometric_law():
    """Over many seeds, random search's found-best rate at each budget is 1 - C(P - m, B) /
    C(P, B) within binomial error (m = 3 tied optima)."""
    losses = bowl(noise=0.0)
    losses[[11, 30, 50]] = -1.0
    m = int(st.optimum_class(losses).sum())
    assert m == 3
    budgets = (1, 5, 20, 40)
    runs = 3000
    found = np.zeros(len(budgets))
    for s in range(runs):
        out = st.run("random", losses, V, L, budgets, np.random.default_rng(s), {})
        found += [st.optimum_class(losses)[i] for _, i, _ in out]
    for k, B in enumerate(budgets):
        p = st.expected_found_best(P, m, B)
        se = math.sqrt(p * (1 - p) / runs)
        assert abs(found[k] / runs - p) <= 4 * se + 1e-12, (B, found[k] / runs, p)


@pytest.mark.parametrize("strategies, budgets, message", [
    (["exhaustive", "nope"], [1], "experiments.x.strategies names 'nope', not a strategy"),
    (["random", "random"], [1], "lists random more than once"),
    ({"beam": {"depth": 2}}, [1], "experiments.x.strategies.beam.depth is not a setting"),
    ({"beam": {"width": 0}}, [1], "experiments.x.strategies.beam.width == 0, must be"),
    ({"annealing": {"initial_temperature": 0.1, "final_temperature": 1.0}}, [1],
     "final_temperature 1.0 is above initial_temperature"),
    (["random"], [], "give experiments.x.strategy_budgets"),
    (["random"], [5, 5], "lists a budget more than once"),
    (["random"], [0], "budgets are integers >= 1"),
    ({"gradient": {"max_budget": 10}}, [100, 1000], "max_budget == 10 is below every budget"),
    ([], [1], "is empty"),
])
def test_config_errors_name_the_key(strategies, budgets, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        st.parse(strategies, budgets, "experiments.x")


def test_plan_settings_and_budgets():
    plan = st.parse({"exhaustive": None, "beam": {"width": 8}, "gradient": {"max_budget": 100}},
                    [1000, 10, 100], "experiments.x")
    assert plan.names == ("exhaustive", "beam", "gradient")
    assert plan.settings("beam") == {"max_budget": None, "width": 8}
    assert plan.budgets == (10, 100, 1000)
    assert plan.budgets_of("exhaustive", 63) == (63,)
    assert plan.budgets_of("gradient", 63) == (10, 100)
    assert plan.needs_gradient
    assert st.parse(None, None, "x").names == ("exhaustive",)


def test_random_neighbour_proposes_every_edit_and_nothing_else():
    rng = np.random.default_rng(0)
    for prompt, vocab, max_length in (("", 3, 2), ("01", 2, 3), ("210", 3, 3)):
        edits = st.neighbours(prompt, vocab, max_length)
        drawn = {st.random_neighbour(prompt, rng, vocab, max_length) for _ in range(2000)}
        assert drawn == set(edits)


def test_prompt_at_inverts_prompt_index():
    for vocab, length in ((2, 5), (3, 3)):
        prompts = prompts_lib.all_prompts(length, vocab)
        assert [prompts_lib.prompt_at(i, vocab) for i in range(len(prompts))] == prompts


# ------------------------------------------------------------------ recorded steps
class _Forgetful(st.Evaluator):
    """An evaluator that drops every parent the strategies name: what they did before
    recording steps."""

    def __call__(self, prompt, parent=None):
        return super().__call__(prompt)

    def many(self, prompts, parent=None):
        return super().many(prompts)


def _run_all(vocab, length, seed):
    rng = np.random.default_rng(seed)
    P_ = prompts_lib.num_prompts(length, vocab)
    losses = np.round(rng.normal(size=P_), 1)  # ties too
    out = {}
    for name, strategy in st.STRATEGIES.items():
        budgets = (P_,) if strategy.exhaustive else (45,) if strategy.needs_prior else (
            5, 30, 200)
        grad = ((lambda p: np.random.default_rng(len(p)).normal(size=(len(p), vocab)))
                if strategy.needs_gradient else None)
        out[name] = st.search_run(name, losses, vocab, length, budgets,
                                  np.random.default_rng(seed + 1), strategy.defaults, grad,
                                  _guide_for(losses) if strategy.needs_prior else None)
    return losses, out


@pytest.mark.parametrize("vocab, length", [(2, 5), (3, 3), (6, 2)])
def test_recording_steps_changes_no_strategy_result(monkeypatch, vocab, length):
    _, recorded = _run_all(vocab, length, 3)
    monkeypatch.setattr(st, "Evaluator", _Forgetful)
    _, blind = _run_all(vocab, length, 3)
    for name in st.STRATEGIES:
        assert recorded[name].found == blind[name].found, name
        assert np.array_equal(recorded[name].trail, blind[name].trail), name
        assert (blind[name].parents == -1).all()
        assert len(recorded[name].parents) == len(recorded[name].trail)
        assert recorded[name].found == st.run(
            name, _run_all(vocab, length, 3)[0], vocab, length,
            tuple(b for b, _, _ in recorded[name].found), np.random.default_rng(4),
            st.STRATEGIES[name].defaults,
            (lambda p: np.random.default_rng(len(p)).normal(size=(len(p), vocab)))
            if st.STRATEGIES[name].needs_gradient else None,
            _guide_for(_run_all(vocab, length, 3)[0]) if st.STRATEGIES[name].needs_prior
            else None)


@pytest.mark.parametrize("vocab, length", [(2, 5), (3, 3)])
def test_each_recorded_single_edit_step_is_its_parent_with_that_edit(vocab, length):
    from promptscape import edits
    from promptscape.pipeline.stages.strategies_stage import run_steps

    prompts = prompts_lib.all_prompts(length, vocab)
    losses, runs = _run_all(vocab, length, 5)
    all_edges = edits.edit_edges(length, vocab)
    for name, done in runs.items():
        if not st.STRATEGIES[name].proposes:
            assert (done.parents == -1).all(), name
            continue
        steps = run_steps(done, prompts, losses, 0, name, 200)
        assert len(steps["prompt"]) == int((done.trail >= 0).sum())
        edited = 0
        for k, (parent, child) in enumerate(zip(steps["parent_prompt"], steps["prompt"])):
            assert steps["loss"][k] == losses[prompts.index(child)]
            if parent is None:
                assert steps["operation"][k] is None and np.isnan(steps["parent_loss"][k])
                continue
            assert steps["parent_loss"][k] == losses[prompts.index(parent)]
            if steps["operation"][k] is None:
                assert name == "evolutionary"  # a crossover
                continue
            edited += 1
            assert edits.apply_edit(parent, steps["operation"][k], steps["position"][k],
                                    steps["symbol"][k], vocab) == child
            e = edits.edge_index(all_edges, np.array([prompts.index(parent)]),
                                 np.array([prompts.index(child)]))[0]
            assert edits.OPERATIONS[all_edges.operation[e]] == steps["operation"][k]
            assert all_edges.position[e] == steps["position"][k]
        assert edited, name
        if name in ("hill_climb", "annealing", "gradient", "beam"):
            # Every proposal of these is one edit of its parent.
            assert all(op is not None for op, parent in
                       zip(steps["operation"], steps["parent_prompt"]) if parent is not None)


def test_hill_climb_end_flags_by_brute_force():
    from promptscape.pipeline.stages.strategies_stage import hill_climb_end

    vocab, length = 2, 3
    prompts = prompts_lib.all_prompts(length, vocab)
    rng = np.random.default_rng(0)
    for _ in range(20):
        losses, kl = rng.integers(0, 4, len(prompts)) / 4, rng.integers(0, 4, len(prompts)) / 4
        for best in range(len(prompts)):
            row = hill_climb_end(best, prompts, losses, kl, vocab, length, 0, 9, False, 1e-13)
            # Brute force: every prompt one substitution, insertion or deletion away.
            near = [j for j, q in enumerate(prompts) if q != prompts[best] and
                    _one_edit_apart(prompts[best], q)]
            assert row["local_optimum_empirical"] == [all(losses[j] >= losses[best]
                                                          for j in near)]
            assert row["local_optimum_exact"] == [all(kl[j] >= kl[best] for j in near)]


def _one_edit_apart(a: str, b: str) -> bool:
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short
                                                for i in range(len(long_)))


# ------------------------------------------------------------------ surrogate
def test_surrogate_returns_the_guide_optimum_and_evaluates_nothing():
    rng = np.random.default_rng(2)
    losses = np.round(rng.random(P), 2)
    guide = np.round(rng.random(P), 2)  # ties: the first in canonical order wins
    done = st.search_run("surrogate", losses, V, L, (45,), rng, {}, guide=guide)
    assert done.found == [(45, search.choose(guide[None, :])[0], 45)]
    assert len(done.trail) == 0  # no prompt's L_N was computed on the predictor
    # Guided by the table itself it finds the empirical optimum.
    assert st.run("surrogate", losses, V, L, (45,), rng, {}, guide=losses)[0][1] == \
        search.choose(losses[None, :])[0]


def test_surrogate_needs_its_guide_and_its_queries():
    with pytest.raises(ValueError, match="surrogate needs the surrogate's L_N"):
        st.run("surrogate", np.zeros(P), V, L, (45,), np.random.default_rng(0), {})
    plan = st.parse(["exhaustive", "surrogate"], None, "experiments.x")  # no budgets needed
    with pytest.raises(ValueError, match="Plan.probe_queries"):
        plan.budgets_of("surrogate", P)
    assert dataclasses.replace(plan, probe_queries=45).budgets_of("surrogate", P) == (45,)
    with pytest.raises(ConfigError, match="surrogate.max_budget == 3, must be null"):
        st.parse({"surrogate": {"max_budget": 3}}, None, "experiments.x")


@pytest.mark.parametrize("name", [n for n in st.STRATEGIES if not st.STRATEGIES[n].needs_prior
                                  and n != "exhaustive"])
def test_every_strategy_searches_word_prompts_over_27_symbols(name):
    """Over a..z and _ (V = 27) every prompt a strategy proposes is written in that
    alphabet: random starts were written as numbers ('1226' for [12, 26]), which annealing
    and evolutionary search then failed to read (a prompt longer than L_max, a character
    outside the alphabet)."""
    vocab, length = 27, 2
    prompts = prompts_lib.all_prompts(length, vocab)
    losses = np.random.default_rng(0).random(len(prompts))
    alphabet = prompts_lib.alphabet(vocab)

    def gradient(prompt):
        return np.array([[losses[prompts_lib.prompt_index(prompt[:i] + c + prompt[i + 1:],
                                                          vocab)] for c in alphabet]
                         for i in range(len(prompt))])

    plan = _plan([name], budgets=(10, 200))
    done = st.search_run(name, losses, vocab, length, plan.budgets_of(name, len(prompts)),
                         np.random.default_rng(5), plan.settings(name),
                         gradient if st.STRATEGIES[name].needs_gradient else None)
    evaluated = done.trail[done.trail >= 0]
    assert len(evaluated) > 0 and (evaluated < len(prompts)).all()
    for _, i, used in done.found:
        assert used <= 200 and 0 <= i < len(prompts)
    rng = np.random.default_rng(1)
    drawn = [st.random_prompt(rng, vocab, length) for _ in range(200)]
    assert all(len(p) <= length and set(p) <= set(alphabet) for p in drawn)
    assert {len(p) for p in drawn} == {0, 1, 2}
