"""A tuner's own optimum (promptscape.neural.optimum): the population objective against a
direct sum, the best step kept, convergence, and the gradient norm against finite
differences."""

import numpy as np
import pytest
import torch

from network_helpers import TINY_NETWORKS, scramble

from promptscape import prompts, seeding
from promptscape.neural import base, families, optimum, scoring, tuners, tuning
from promptscape.sources import build_source

V, T = 2, 5
SEQS = prompts.enumerate_sequences(T, V)
TASK = build_source({"kind": "coin", "theta": 0.3})
PROBS = np.exp(TASK.log_prob(SEQS))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread, as a pipeline job runs (training.threads): the trie walk's small
    steps, on a shared machine, are many times slower on two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


# ------------------------------------------------------------------ side by side
def test_the_per_copy_adam_is_torchs_adam_at_each_copys_rate():
    """One copy: torch.optim.Adam's iterates; S copies at S rates: each copy's own run."""
    rng = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=rng)
    grads = [torch.randn(3, 4, 5, generator=rng) for _ in range(12)]
    rates = [0.3, 1e-3, 0.05]

    def torch_run(s):
        p = torch.nn.Parameter(start[s:s + 1].clone())
        adam = torch.optim.Adam([p], lr=rates[s])
        for g in grads:
            p.grad = g[s:s + 1].clone()
            adam.step()
        return p.detach()

    for dim in (0, 1):  # the copy axis first, or second (an LSTM prefix's (layers, S, H))
        p = torch.nn.Parameter(start.clone().movedim(0, dim).contiguous())
        ours = optimum.Adam({"p": p}, {"p": dim}, rates)
        for g in grads:
            p.grad = g.movedim(0, dim).contiguous()
            ours.step()
        for s in range(3):
            torch.testing.assert_close(p.detach().select(dim, s)[None], torch_run(s),
                                       rtol=1e-6, atol=1e-7)


def copies(name, model, rows, rates):
    """One Tuned of every (rate, start) copy, rate-major, and their (S,) rates."""
    prompts = [r for _ in rates for r in rows]
    return build(name, model, prompts), [r for r in rates for _ in rows]


def assert_runs_equal(side, alone):
    assert (side.steps, side.converged_step) == (alone.steps, alone.converged_step)
    np.testing.assert_allclose(side.objective, alone.objective, rtol=1e-6)
    assert side.state.keys() == alone.state.keys()
    for n in side.state:
        # float32 rounding, amplified along a path at a large rate (a Transformer prefix's
        # keys and values of order 10): 1e-4 at most here
        torch.testing.assert_close(side.state[n], alone.state[n], rtol=1e-3, atol=1e-4)


def test_side_by_side_training_is_each_copys_sequential_run_exact():
    """Every (rate, start) copy trained together: the same best objective, step, state and
    convergence as `train` of that copy alone; a rate of ~0 converges first and leaves."""
    settings = dict(max_steps=12, patience=3, tolerance=1e-4)
    objective = optimum.Exact(SEQS, PROBS)
    rows, rates = [[1, 0], [0, 0]], [1e-12, 0.4]
    # A parameter with its copies first (soft prompt), second (an LSTM prefix's state), and
    # parameter lists (a Transformer prefix's keys and values).
    for family, name in (("lstm", "soft_prompt"), ("lstm", "prefix"), ("transformer", "prefix")):
        model = scrambled(family)
        tuned, each = copies(name, model, rows, rates)
        side = optimum.train_side_by_side(tuned, objective, learning_rates=each, **settings)
        for s, (rate, row) in enumerate(zip(each, rows * len(rates))):
            alone = optimum.train(build(name, model, [row]), objective, learning_rate=rate,
                                  **settings)
            assert_runs_equal(side[s], alone)
        converged = [r.converged_step for r in side]
        assert converged[0] == converged[1] == settings["patience"], (family, name)
        assert len(set(converged)) > 1


def test_side_by_side_training_is_each_copys_sequential_run_sampled():
    """Sampled: each copy draws its own stream (seeded per copy) and all are judged on one
    check sample; each copy's run is its sequential run."""
    check = TASK.sample(100, T, np.random.default_rng(1))
    rows, rates = [[1, 0], [0, 1]], [0.02, 0.2]
    settings = dict(max_steps=12, patience=4, tolerance=1e-3, check_every=2)

    def objective(s):
        stream = np.random.default_rng(100 + s)
        return optimum.Sampled(lambda n, step, g=stream: TASK.sample(n, T, g), 16, check)

    model = scrambled("lstm")
    tuned, each = copies("soft_prompt", model, rows, rates)
    side = optimum.train_side_by_side(tuned, [objective(s) for s in range(len(each))],
                                      learning_rates=each, **settings)
    for s, (rate, row) in enumerate(zip(each, rows * len(rates))):
        alone = optimum.train(build("soft_prompt", model, [row]), objective(s),
                              learning_rate=rate, **settings)
        assert_runs_equal(side[s], alone)


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_the_exact_objective_walks_the_sequence_trie_where_it_can_with_the_same_gradient(family):
    """Prompt-space tuners of both families take the exact objective's losses from one walk
    of the sequences' prefix trie: the same losses and gradients as the plain forward (a
    Transformer's walk keeps each depth's keys and values as new tensors, so autograd
    follows it); a weight tuner's come from the forward."""
    objective = optimum.Exact(SEQS, PROBS)
    x = torch.as_tensor(SEQS).long()
    w = objective.w.float()
    model = scrambled(family)
    for name in ("soft_prompt", "simplex_prompt", "prefix"):
        walked, plain = (build(name, model, [[1, 0], [0, 1]]) for _ in range(2))
        losses, weights = objective.losses(walked)
        assert losses.dtype == torch.float64 and losses.shape == (2, len(SEQS))
        total = (losses * weights).sum(1)
        np.testing.assert_allclose(total.detach().numpy(), (tuning.sequence_losses(plain, x)
                                   .double() * objective.w).sum(1).detach().numpy(), rtol=1e-6)
        total.sum().backward()
        (tuning.sequence_losses(plain, x) * w).sum().backward()
        for (n, a), (_, b) in zip(optimum.trainable(walked).items(),
                                  optimum.trainable(plain).items()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
    assert build("head", model, [[1, 0]]).trie_losses(objective._trie) is None


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_a_walk_of_an_incomplete_trie_gathers_ancestors_with_the_same_gradient(family):
    """A data set's distinct sequences make a trie with missing branches: the Transformer's
    walk gathers each node's ancestors by index instead of reading whole subtrees."""
    from promptscape.neural.trie import SequenceTrie

    seqs = SEQS[np.random.default_rng(3).choice(len(SEQS), len(SEQS) // 3, replace=False)]
    trie = SequenceTrie(seqs, V, "cpu")
    assert not all(trie.complete[1:])
    model = scrambled(family)
    walked, plain = (build("prefix", model, [[1, 0], [0, 1]]) for _ in range(2))
    walk = walked.trie_losses(trie)
    forward = tuning.sequence_losses(plain, trie.unique.long())
    np.testing.assert_allclose(walk.detach().numpy(), forward.double().detach().numpy(),
                               rtol=1e-5)
    walk.sum().backward()
    forward.sum().backward()
    for (n, a), (_, b) in zip(optimum.trainable(walked).items(),
                              optimum.trainable(plain).items()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
