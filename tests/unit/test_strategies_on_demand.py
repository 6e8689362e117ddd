"""Search strategies on L_N computed on demand (`strategies.LossCache`): the same runs as on
the table where the prompts can be tabulated, and, beyond the landscape's L_max, the stage
completes on a tiny word source and scores against the best prompts known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from promptscape import prompts as prompts_lib
from promptscape import search
from promptscape import strategies as st
from promptscape.study import tables
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source
from promptscape.validation import ConfigError

ON_DEMAND = [n for n in st.STRATEGIES if st.STRATEGIES[n].on_demand]


def _table_gradient(losses, vocab, length):
    alphabet = prompts_lib.alphabet(vocab)

    def gradient(prompt):
        return np.array([[losses[prompts_lib.prompt_index(prompt[:i] + c + prompt[i + 1:],
                                                          vocab)] for c in alphabet]
                         for i in range(len(prompt))])
    return gradient


@pytest.mark.parametrize("vocab, length", [(2, 6), (27, 2)])
@pytest.mark.parametrize("name", ON_DEMAND)
def test_the_on_demand_path_makes_the_runs_of_the_table(name, vocab, length):
    """Every strategy that can run on demand makes the same evaluations, parents and
    choices from a `LossCache` as from the table of every prompt; the cache computes each
    prompt once, in batches, whatever the strategies revisit."""
    prompts = prompts_lib.all_prompts(length, vocab)
    losses = np.random.default_rng(3).random(len(prompts))
    losses[5] = losses[9]  # a tie, broken by the canonical order either way
    plan = st.parse([name], [7, 60, 400], "experiments.x")
    budgets = plan.budgets_of(name, len(prompts))
    gradient = (_table_gradient(losses, vocab, length)
                if st.STRATEGIES[name].needs_gradient else None)
    asked = []

    def compute(batch):
        asked.append(list(batch))
        return losses[[prompts_lib.prompt_index(p, vocab) for p in batch]]

    table = st.search_run(name, losses, vocab, length, budgets, np.random.default_rng(11),
                          plan.settings(name), gradient)
    cache = st.LossCache(compute, vocab)
    demand = st.search_run(name, None, vocab, length, budgets, np.random.default_rng(11),
                           plan.settings(name), gradient, cache=cache)
    assert demand.found == table.found
    np.testing.assert_array_equal(demand.trail, table.trail)
    np.testing.assert_array_equal(demand.parents, table.parents)
    flat = [p for batch in asked for p in batch]
    assert len(flat) == len(set(flat)) == cache.computed  # each prompt computed once
    assert set(demand.trail[demand.trail >= 0].tolist()) == set(cache.values)
    # A second strategy on the same D_N reuses what the first computed.
    before = cache.computed
    st.search_run(name, None, vocab, length, budgets, np.random.default_rng(11),
                  plan.settings(name), gradient, cache=cache)
    assert cache.computed == before


def test_beyond_the_listed_prompts_draws_are_uniform_among_the_unseen(monkeypatch):
    """Where the prompts are too many to list (27^6 of length 6), random search and a
    restart's fallback draw by rejection: distinct prompts not seen before, within the
    budget."""
    monkeypatch.setattr(st, "LISTED_PROMPTS", 0)
    vocab, length = 27, 6
    rng = np.random.default_rng(0)
    cache = st.LossCache(lambda batch: rng.random(len(batch)), vocab)
    done = st.search_run("random", None, vocab, length, (300,), np.random.default_rng(1),
                         {}, cache=cache)
    evaluated = done.trail[done.trail >= 0]
    assert len(done.trail) == 300 and len(set(evaluated.tolist())) == len(evaluated)
    assert max(len(prompts_lib.prompt_at(int(i), vocab)) for i in evaluated) == length
    # Every prompt of length <= 1 seen: a restart of length >= 1 finds an unseen one.
    evaluate = st.Evaluator(None, 3, 2, 100, st.LossCache(lambda b: np.zeros(len(b)), 3))
    evaluate.many(prompts_lib.all_prompts(1, 3))
    drawn = {st.fresh_start(evaluate, np.random.default_rng(k), 3, 2, min_length=1, tries=0)
             for k in range(40)}
    assert drawn <= set(prompts_lib.all_prompts(2, 3)[4:]) and len(drawn) > 4


def test_strategies_that_need_every_prompt_cannot_search_beyond_the_landscape():
    with pytest.raises(ConfigError, match="names exhaustive, which needs every prompt"):
        st.parse(["exhaustive", "beam"], [10], "experiments.x", max_length=4,
                 max_prompt_length=2)
    with pytest.raises(ConfigError, match="strategy_max_prompt_length == 1 is below"):
        st.parse(["beam"], [10], "experiments.x", max_length=1, max_prompt_length=2)
    plan = st.parse(["beam"], [10], "experiments.x", max_length=4, max_prompt_length=2)
    assert plan.prompt_length(2) == 4 and plan.on_demand(2) and not plan.on_demand(4)
    assert st.parse(["beam"], [10], "experiments.x").prompt_length(3) == 3
    with pytest.raises(ValueError, match="cannot run on demand"):
        st.search_run("exhaustive", None, 2, 2, (7,), np.random.default_rng(0), {},
                      cache=st.LossCache(lambda b: np.zeros(len(b)), 2))


# ------------------------------------------------------------------ the stage
PRETRAINING = {"kind": "language_mixture", "languages": ["es", "fr"], "words": 5, "oov": 0.01}
TASK = {"kind": "word_stream", "language": "fr", "words": 5, "oov": 0.01}
T, BUDGET = 5, 10 ** 6


def _landscape(tmp_path, length):
    from promptscape.pipeline.stages.datasets_stage import simulate_evaluation
    from promptscape.pipeline.stages.landscape_stage import compute_landscape

    evaluation = tmp_path / "eval.parquet"
    if not evaluation.exists():
        simulate_evaluation(output=str(evaluation), experiment="w", task_name="fr", task=TASK,
                            task_length=T, size=200)
    out = tmp_path / f"land{length}.parquet"
    compute_landscape(evaluation=str(evaluation), output=str(out), predictor="bayes",
                      family="bayes", pretraining=PRETRAINING, experiment="w", task_name="fr",
                      task=TASK, task_length=T, max_prompt_length=length,
                      enumeration_budget=BUDGET)
    return str(evaluation), str(out)


def _strategies(tmp_path, tag, landscape, evaluation, landscape_length, length, strategies):
    from promptscape.pipeline.stages.strategies_stage import search_strategies

    paths = {k: str(tmp_path / f"{tag}_{k}.parquet") for k in ("runs", "steps", "ends")}
    search_strategies(
        landscape=landscape, output=paths["runs"], steps=paths["steps"],
        hill_climb_ends=paths["ends"], predictor="bayes", family="bayes", replicate=0,
        pretraining=PRETRAINING, experiment="w", task_name="fr", task=TASK, task_length=T,
        N=10, first=0, last=2, max_prompt_length=landscape_length,
        enumeration_budget=BUDGET, strategies={s: {} for s in strategies},
        budgets=[10, 60], strategy_max_prompt_length=length, evaluation=evaluation)
    return (tables.read(paths["runs"], "strategy_runs"),
            tables.read(paths["steps"], "strategy_steps"),
            tables.read(paths["ends"], "hill_climb_ends"))


STAGE_STRATEGIES = ["random", "beam", "hill_climb", "annealing", "evolutionary"]


# Strategies whose every decision allows the tie tolerance (or none): the same runs from L_N
# that agree to rounding. Beam and evolutionary rank by a stable sort, which orders exactly
# tied prompts (many over 27 symbols: a word no list holds, of letters no list uses) by
# canonical order; L_N computed in another batch can differ from the table's by an ulp
# (numpy's vectorised exp and log), which may reorder such ties: for them the equality is
# the Evaluator's, on equal losses (test_the_on_demand_path_makes_the_runs_of_the_table).
TOLERANT = ["random", "hill_climb", "annealing"]


def test_the_stage_on_demand_equals_the_tabulated_stage_where_both_apply(tmp_path):
    """Strategies over prompts up to 2 against a landscape at L_max 2 (tabulated) and
    against one at L_max 1 (L_N of the prompts of length 2 on demand): the same prompts,
    losses, evaluations and steps; the KL of the longer prompts, computed on the evaluation
    set, equals the landscape's."""
    evaluation, land1 = _landscape(tmp_path, 1)
    _, land2 = _landscape(tmp_path, 2)
    full, full_steps, full_ends = _strategies(tmp_path, "tab", land2, evaluation, 2, None,
                                              TOLERANT)
    demand, demand_steps, demand_ends = _strategies(tmp_path, "dem", land1, evaluation, 1, 2,
                                                    TOLERANT)
    assert (full["ground_truth"] == "exhaustive").all()
    assert (demand["ground_truth"] == "best_known").all() and demand["rank"].isna().all()
    for column in ("seed", "strategy", "budget", "prompt", "prompt_length", "evaluations",
                   "num_prompts"):
        assert full[column].tolist() == demand[column].tolist(), column
    np.testing.assert_allclose(demand["empirical_loss"], full["empirical_loss"], rtol=1e-12)
    np.testing.assert_allclose(demand["kl"], full["kl"], rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(full_steps, demand_steps, check_exact=False, rtol=1e-12)
    assert full_ends["prompt"].tolist() == demand_ends["prompt"].tolist()
    assert (full_ends["local_optimum_empirical"] == demand_ends["local_optimum_empirical"]).all()
    # Regret against the best known is a lower bound of the exact regret, and 0 where known
    # best is the optimum.
    assert (demand["regret"] >= 0).all()
    assert (demand["regret"] <= full["regret"] + 1e-9).all()


def test_strategies_search_beyond_the_landscape_in_seconds(tmp_path):
    """Against a landscape at L_max 1, the strategies search prompts up to 3 (20,440: few
    enough to check every known minimum by brute force) on a tiny word source; the known
    empirical minimum is over the prompts up to 1 and every prompt a strategy evaluated."""
    import time

    evaluation, land1 = _landscape(tmp_path, 1)
    start = time.perf_counter()
    runs, steps, ends = _strategies(tmp_path, "long", land1, evaluation, 1, 3,
                                    STAGE_STRATEGIES)
    assert time.perf_counter() - start < 30
    assert set(runs["strategy"]) == set(STAGE_STRATEGIES)
    assert runs["prompt_length"].max() >= 2 and (runs["num_prompts"] == 1 + 27 + 27**2 + 27**3).all()
    from promptscape.pipeline.stages.datasets_stage import draw_datasets

    seqs = draw_datasets(TASK, T, 10, np.arange(3))
    predictor = BayesPredictor(build_source(PRETRAINING))
    for seed, rows in runs.groupby("seed"):
        mine = steps[steps["seed"] == seed]
        known = sorted(set(prompts_lib.all_prompts(1, 27)) | set(mine["prompt"])
                       | set(rows["prompt"]))
        exact = search.empirical_losses(predictor, known, seqs[seed:seed + 1], BUDGET, 27)[0]
        loss = dict(zip(known, exact))
        np.testing.assert_allclose(rows["empirical_loss"], [loss[p] for p in rows["prompt"]],
                                   rtol=1e-12)
        least = min(exact)
        found = rows["empirical_loss"] <= least + 1e-12 * abs(least)
        assert (rows["found_best"] == found).all()
    assert (runs["regret"] >= 0).all() and np.isfinite(runs["kl"]).all()
    assert runs["regret"].min() == 0  # the best known KL is one the strategies chose or L <= 1
    assert len(ends) == 3 and ends["decided_by"].isin(["paired_se", "se_bound"]).all()



def test_edit_effects_leave_out_steps_beyond_the_landscape(tmp_path, caplog):
    """The observational edit effects judge steps against the landscape's ΔKL: steps to or
    from prompts longer than its L_max are left out, with a log line, not an error."""
    from promptscape.pipeline.stages.edit_effects_stage import edit_effects

    evaluation, land1 = _landscape(tmp_path, 1)
    _strategies(tmp_path, "long", land1, evaluation, 1, 2, ["hill_climb", "annealing"])
    steps = tables.read(str(tmp_path / "long_steps.parquet"), "strategy_steps")
    beyond = (steps["prompt"].str.len() > 1) | (steps["parent_prompt"].fillna("").str.len() > 1)
    assert beyond.any() and (~beyond & steps["parent_prompt"].notna()).any()
    with caplog.at_level("INFO", logger="promptscape"):
        edit_effects(steps=[str(tmp_path / "long_steps.parquet")],
                     landscapes={"bayes": {"fr": land1}},
                     hill_climb_ends=[str(tmp_path / "long_ends.parquet")],
                     output=str(tmp_path / "effects.parquet"),
                     hill_climb_optima=str(tmp_path / "optima.parquet"), experiment="w",
                     tasks={"fr": TASK}, task_length=T, max_prompt_length=1, vocab_size=27,
                     in_meta_distribution={"fr": False})
    assert any("beyond the landscape's prompts" in r.getMessage() for r in caplog.records)
    effects = tables.read(str(tmp_path / "effects.parquet"), "edit_effects")
    assert len(effects) and (effects["visits"] <= (~beyond & steps["operation"].notna()).sum()).all()
