"""A tuner's own optimum (promptscape.neural.optimum): the population objective against a
direct sum, the best step kept, convergence, and the gradient norm against finite
differences."""

import numpy as np
import torch

from network_helpers import TINY_NETWORKS, scramble

from promptscape import prompts, seeding
from promptscape.neural import base, families, optimum, scoring, tuners, tuning
from promptscape.sources import build_source

V, T = 2, 5
SEQS = prompts.enumerate_sequences(T, V)
TASK = build_source({"kind": "coin", "theta": 0.3})
PROBS = np.exp(TASK.log_prob(SEQS))


def scrambled(family):
    """An untrained tiny model with large random weights (so that prompts matter)."""
    config = families.PredictorConfig(family=family, **TINY_NETWORKS[family], steps=12,
                                      batch_size=8, sequence_length=16, warmup_steps=2)
    model = base.build_model(config, V)
    scramble(model)
    return model.eval()


def hard_losses(model, prompt: str, seqs: np.ndarray) -> np.ndarray:
    predictor = scoring.NeuralPredictor(model, model.config, device="cpu")
    return predictor.prompt_losses([prompt], seqs)[0]


def build(name, model, prompt_rows):
    generator = torch.Generator().manual_seed(seeding.stable_seed("test", name) % 2**63)
    return tuning.build(name, model, torch.as_tensor(np.asarray(prompt_rows)).long(),
                        dict(tuners.TUNERS[name].defaults), generator)


def test_the_exact_objective_is_the_hard_prompts_expected_loss():
    model = scrambled("lstm")
    tuned = build("soft_prompt", model, [[1, 0]])
    expected = float(PROBS @ hard_losses(model, "10", SEQS))
    np.testing.assert_allclose(optimum.Exact(SEQS, PROBS).value(tuned), expected, rtol=1e-5)


def test_training_keeps_the_best_step_and_stops_once_converged():
    model = scrambled("lstm")
    objective = optimum.Exact(SEQS, PROBS)
    start = objective.value(build("soft_prompt", model, [[1, 0]]))
    # A learning rate far too large: whatever the path does, the best step is kept.
    tuned = build("soft_prompt", model, [[1, 0]])
    run = optimum.train(tuned, objective, learning_rate=3.0, max_steps=10, patience=100,
                        tolerance=0.0)
    assert run.objective <= start
    np.testing.assert_allclose(objective.value(optimum.load(tuned, run.state)), run.objective,
                               rtol=1e-6)
    # A learning rate of ~0 never improves: converged after `patience` steps, at step 0.
    still = optimum.train(build("soft_prompt", model, [[1, 0]]), objective,
                          learning_rate=1e-12, max_steps=50, patience=5, tolerance=1e-6)
    assert (still.steps, still.converged_step) == (0, 5)
    np.testing.assert_allclose(still.objective, start, rtol=1e-6)
    # An ordinary rate lowers the objective.
    assert optimum.train(build("soft_prompt", model, [[1, 0]]), objective, learning_rate=0.05,
                         max_steps=30, patience=30, tolerance=0.0).objective < start


def test_the_gradient_norm_matches_finite_differences():
    model = scrambled("lstm")
    objective = optimum.Exact(SEQS, PROBS)
    tuned = build("soft_prompt", model, [[0, 1]]).double()
    objective.w = objective.w.double()
    norm = optimum.gradient_norm(tuned, objective)
    soft = tuned.soft
    grads = np.zeros(soft.numel())
    eps = 1e-6
    for i in range(soft.numel()):
        with torch.no_grad():
            soft.view(-1)[i] += eps
            up = objective.value(tuned)
            soft.view(-1)[i] -= 2 * eps
            down = objective.value(tuned)
            soft.view(-1)[i] += eps
        grads[i] = (up - down) / (2 * eps)
    np.testing.assert_allclose(norm, np.linalg.norm(grads), rtol=1e-4)


def test_a_sampled_objective_draws_fresh_sequences_at_every_step():
    rng = np.random.default_rng(0)
    drawn = []

    def draw(n, step):
        drawn.append(step)
        return TASK.sample(n, T, rng)

    check = TASK.sample(200, T, np.random.default_rng(1))
    target = optimum.Sampled(draw, 32, check)
    model = scrambled("lstm")
    run = optimum.train(build("soft_prompt", model, [[1, 0]]), target, learning_rate=0.05,
                        max_steps=6, patience=100, tolerance=0.0, check_every=3)
    assert drawn == list(range(7))
    assert run.steps in (0, 3, 6)
    kept = optimum.load(build("soft_prompt", model, [[1, 0]]), run.state)
    np.testing.assert_allclose(run.objective, target.value(kept), rtol=1e-6)
