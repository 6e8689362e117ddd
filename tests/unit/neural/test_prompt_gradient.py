"""NeuralPredictor.prompt_gradient: the loss of prompt_losses, and its GCG gradient in the
prompt's one-hot encoding (finite differences, positions, batching)."""

import numpy as np
import pytest
import torch

from promptscape import prompts, seeding
from promptscape.neural import families

from network_helpers import scrambled_predictor

FAMILIES = families.NEURAL_FAMILIES
N, T = 7, 5


def draw(V, L, seed=0):
    """A prompt of L symbols, (N, T) task sequences and (N,) positive weights."""
    rng = seeding.numpy_generator("test_prompt_gradient", V, L, seed)
    prompt = prompts.to_strings(rng.integers(0, V, (1, L)).astype(np.uint8), V)[0]
    return prompt, rng.integers(0, V, (N, T)).astype(np.uint8), rng.random(N)


def relaxed_loss(predictor, onehot, seqs, weights):
    """sum_i weights_i l(relaxed prompt, x_i) in the model's dtype, float64 out."""
    with torch.no_grad():
        losses = predictor._relaxed_prompt_losses(
            torch.as_tensor(onehot, dtype=predictor.model.embed.weight.dtype),
            torch.as_tensor(seqs.astype(np.int64)))
    return float(losses.numpy() @ weights)


@pytest.mark.parametrize("V", [2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_loss_is_that_of_prompt_losses(family, V):
    predictor = scrambled_predictor(family, V, sequence_length=16)
    for L in [0, 1, 3, 6]:
        prompt, seqs, weights = draw(V, L)
        expected = predictor.prompt_losses([prompt], seqs)[0]
        loss, grad = predictor.prompt_gradient(prompt, seqs)
        assert isinstance(loss, float) and grad.shape == (L, V) and grad.dtype == np.float64
        np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5)
        with torch.no_grad():  # a caller's no_grad does not stop the gradient
            loss, weighted = predictor.prompt_gradient(prompt, seqs, weights)
        np.testing.assert_allclose(loss, expected @ weights, rtol=1e-5)
        assert np.isfinite(weighted).all() and (L == 0 or np.abs(weighted).max() > 1e-3)
    assert predictor.model.training is False
    assert all(param.grad is None for param in predictor.model.parameters())
    with pytest.raises(ValueError, match="weights must have shape"):
        predictor.prompt_gradient("0", seqs, weights[:-1])


@pytest.mark.parametrize("V", [2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_is_a_central_finite_difference(family, V):
    predictor = scrambled_predictor(family, V, sequence_length=16)
    predictor.model.double()
    prompt, seqs, weights = draw(V, 4, seed=1)
    loss, grad = predictor.prompt_gradient(prompt, seqs, weights)
    onehot = np.eye(V)[prompts.to_array(prompt)]
    np.testing.assert_allclose(relaxed_loss(predictor, onehot, seqs, weights), loss, rtol=1e-12)
    rng = np.random.default_rng(3)
    eps = 1e-5
    for _ in range(3):
        D = rng.standard_normal(onehot.shape)
        fd = (relaxed_loss(predictor, onehot + eps * D, seqs, weights)
              - relaxed_loss(predictor, onehot - eps * D, seqs, weights)) / (2 * eps)
        np.testing.assert_allclose(fd, np.sum(grad * D), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_rows_are_the_prompt_positions(family):
    V, L = 3, 3
    predictor = scrambled_predictor(family, V, sequence_length=16)
    predictor.model.double()
    prompt, seqs, weights = draw(V, L, seed=2)
    loss, grad = predictor.prompt_gradient(prompt, seqs, weights)
    assert grad.shape == (L, V)  # the prompt's symbols only: not BOS, not the task
    symbols = prompts.to_array(prompt)
    onehot = np.eye(V)[symbols]
    swap = grad - grad[np.arange(L), symbols][:, None]  # linear change of swapping i to v
    t = 1e-6
    measured = np.zeros((L, V))
    for i in range(L):
        for v in range(V):
            step = np.zeros((L, V))
            step[i, v] += 1.0
            step[i, symbols[i]] -= 1.0
            # The relaxation's end point is the prompt with symbol i swapped to v ...
            swapped = prompt[:i] + str(v) + prompt[i + 1:]
            np.testing.assert_allclose(
                relaxed_loss(predictor, onehot + step, seqs, weights),
                predictor.prompt_losses([swapped], seqs)[0] @ weights, rtol=1e-6)
            # ... and a tiny step towards it changes the loss by t * swap[i, v].
            measured[i, v] = (relaxed_loss(predictor, onehot + t * step, seqs, weights)
                              - loss) / t
    np.testing.assert_allclose(measured, swap, rtol=1e-4, atol=1e-6)
    # Rows of other positions would not do: the test tells positions apart.
    assert np.abs(swap - swap[::-1]).max() > 100 * np.abs(measured - swap).max() + 1e-3


@pytest.mark.parametrize("family", FAMILIES)
def test_result_does_not_depend_on_the_batch_size(family, monkeypatch):
    V, L = 3, 2
    predictor = scrambled_predictor(family, V, sequence_length=16)
    prompt, seqs, weights = draw(V, L, seed=4)
    loss, grad = predictor.prompt_gradient(prompt, seqs, weights)
    again = predictor.prompt_gradient(prompt, seqs, weights)
    assert again[0] == loss and np.array_equal(again[1], grad)  # deterministic
    for per_batch in [1, 2, 3]:  # sequences per batch; 7 = 3 + 3 + 1 leaves a remainder
        monkeypatch.setattr(predictor, "max_tokens", per_batch * (L + T))
        small_loss, small_grad = predictor.prompt_gradient(prompt, seqs, weights)
        np.testing.assert_allclose(small_loss, loss, rtol=1e-5)
        np.testing.assert_allclose(small_grad, grad, rtol=1e-4, atol=1e-6)
