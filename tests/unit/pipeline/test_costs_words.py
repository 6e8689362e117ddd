"""The plan's time model for word sources: their own measured rates (word Bayes scoring,
networks through the trie, training with a word batch and its Bayes reference, building the
source), the strategies' table and on-demand evaluations; binary configs priced as before."""

from __future__ import annotations

import pytest

from promptscape.pipeline import costs, plan
from promptscape.study import config
from workflow_helpers import REPO


@pytest.fixture(scope="module")
def words():
    return config.load_file(REPO / "config" / "words.yaml")


def _job(study, rule, **w):
    job = next(j for j in plan.jobs(study) if j.rule == rule
               and all(str(j.wildcards.get(k)) == str(v) for k, v in w.items()))
    return job, plan.job_seconds(study, job)


def test_word_jobs_are_priced_at_the_word_rates(words):
    start = costs.JOB_START_SECONDS + costs.WORD_SOURCE_SECONDS
    job, seconds = _job(words, "predict_reliability", experiment="words", predictor="bayes")
    assert seconds == pytest.approx(
        start + costs.JOB_WORK_SECONDS.get("predict_reliability", 0.2)
        + job.evaluations * costs.WORD_EVALUATION_SECONDS[("predict_reliability", "bayes")])
    net = words.network("lstm", "six")
    job, seconds = _job(words, "train_predictor", predictor="lstm")
    tokens = net.steps * net.batch_size * net.sequence_length
    assert seconds == pytest.approx(start + 0.2 + tokens
                                    * costs.WORD_TRAINING_SECONDS_PER_TOKEN["lstm"])


def test_strategies_beyond_the_landscape_pay_their_on_demand_evaluations(words):
    exp = words.experiments["words"]
    assert exp.search_strategies.on_demand(exp.max_prompt_length)
    job, seconds = _job(words, "search_strategies", experiment="words", task="danish", N=100)
    S = int(job.wildcards["last"]) - int(job.wildcards["first"]) + 1
    runs = sum(max(exp.search_strategies.budgets_of(n, 1)) for n in exp.strategies)
    table = job.evaluations * costs.WORD_EVALUATION_SECONDS[("search_strategies", "bayes")]
    assert seconds == pytest.approx(costs.JOB_START_SECONDS + costs.WORD_SOURCE_SECONDS + 0.2
                                    + S * runs * costs.ON_DEMAND_EVALUATION_SECONDS + table)


def test_binary_strategies_are_priced_as_before():
    study = config.load_file(REPO / "config" / "config.yaml")
    exp = study.experiments["strategies"]
    job, seconds = _job(study, "search_strategies", experiment="strategies")
    P = costs.num_prompts(exp)
    S = int(job.wildcards["last"]) - int(job.wildcards["first"]) + 1
    runs = sum(max(exp.search_strategies.budgets_of(n, P), default=0) for n in exp.strategies)
    assert seconds == pytest.approx(costs.JOB_START_SECONDS + 0.2
                                    + S * runs * costs.STRATEGY_EVALUATION_SECONDS)
