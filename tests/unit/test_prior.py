"""The pretraining prior read back from a predictor (promptscape.prior)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from promptscape import prior
from promptscape.predictors import BayesPredictor, Predictor
from promptscape.sources import SOURCES, build_source

# One prior of every exchangeable kind whose mixing measure is in a fitted family, and the
# family that must recover it.
RECOVERABLE = {
    "coin": ({"kind": "coin", "theta": 0.3}, "mixture"),
    "coin_mixture": ({"kind": "coin_mixture", "thetas": [0.1, 0.5, 0.8],
                      "weights": [0.2, 0.3, 0.5]}, "mixture"),
    "beta_coin": ({"kind": "beta_coin", "alpha": 2.0, "beta": 0.5}, "dirichlet"),
    "categorical": ({"kind": "categorical", "probs": [0.6, 0.3, 0.1]}, "mixture"),
    "categorical_mixture": ({"kind": "categorical_mixture",
                             "probs": [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]],
                             "weights": [0.3, 0.7]}, "mixture"),
    "dirichlet_categorical": ({"kind": "dirichlet_categorical", "alpha": [1.0, 2.0, 0.5]},
                              "dirichlet"),
}
# Exchangeable kinds whose mixing measure lies in neither family: read back approximately.
APPROXIMATE = {
    "topic_mixture": {"kind": "topic_mixture", "topics": [[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]],
                      "alpha": [1.0, 1.0]},
}
NOT_EXCHANGEABLE = {
    "switching": {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05},
    "markov": {"kind": "markov", "transition": [0.1, 0.9]},
    "markov_beta": {"kind": "markov_beta", "alpha": [1.0, 1.0], "beta": [1.0, 1.0]},
    "word_stream": {"kind": "word_stream", "language": "en", "words": 20},
    "language_mixture": {"kind": "language_mixture", "languages": ["en", "de"], "words": 20},
}


def test_every_registered_kind_has_a_case():
    exchangeable = {k for k, cls in SOURCES.items() if cls.exchangeable}
    assert exchangeable == set(RECOVERABLE) | set(APPROXIMATE)
    assert set(SOURCES) - exchangeable == set(NOT_EXCHANGEABLE)


def _selected(cols: dict) -> pd.DataFrame:
    frame = pd.DataFrame(cols)
    return frame[frame["selected"]].sort_values("component")


@pytest.mark.parametrize("kind", sorted(RECOVERABLE))
def test_bayes_read_back_recovers_the_prior(kind):
    spec, family = RECOVERABLE[kind]
    source = build_source(spec)
    truth = prior.true_measure(source)
    # Probe length 5: moments up to order 5 fit 3 binary atoms; length 5 held out.
    contexts, counts = prior.probe_contexts(source.vocab_size, 5)
    probs = prior.query(BayesPredictor(source), contexts, source.vocab_size)
    chosen = prior.choose(prior.read_back(counts, probs, 5))
    assert chosen.family == family
    if family == "mixture":
        order = np.lexsort(truth.atoms.T[::-1])
        np.testing.assert_allclose(chosen.atoms, truth.atoms[order], atol=1e-6)
        np.testing.assert_allclose(chosen.weights, truth.weights[order], atol=1e-6)
    else:
        np.testing.assert_allclose(chosen.alpha, truth.alpha, rtol=1e-6)
    assert prior.w1(chosen.measure(), truth).distance < 1e-6
    assert chosen.heldout_error < 1e-9


def test_approximate_kind_is_read_back_with_its_distance():
    spec = APPROXIMATE["topic_mixture"]
    cols = prior.probe_prior(BayesPredictor(build_source(spec)), spec, probe_length=5)
    frame = pd.DataFrame(cols)
    chosen = _selected(cols)
    # The measure is a segment of the simplex: a finite mixture approaches it, with its atoms
    # on the segment (symbol 1 has probability 0.2 in every topic) and a W1 above zero.
    assert chosen["family"].iloc[0] == "mixture"
    np.testing.assert_allclose(np.asarray(chosen["probabilities"].tolist())[:, 1], 0.2,
                               atol=1e-3)
    assert 0.0 < chosen["w1"].iloc[0] < 0.1
    assert (frame["w1_resolution"] > 0).all()  # a continuous measure over V = 3: gridded


@pytest.mark.parametrize("kind", sorted(NOT_EXCHANGEABLE))
def test_not_exchangeable_is_refused_by_name(kind):
    spec = NOT_EXCHANGEABLE[kind]
    with pytest.raises(prior.PriorFitError, match=f"source kind '{kind}' is not exchangeable"):
        prior.probe_prior(BayesPredictor(build_source(spec)), spec, probe_length=2)


class PlantedPredictor(Predictor):
    """A predictor whose next-symbol distribution is a planted mixture's predictive after
    the context's counts, plus a deterministic perturbation of size `noise`."""

    def __init__(self, weights, atoms, noise=0.0):
        self.weights, self.atoms, self.noise = np.asarray(weights), np.asarray(atoms), noise

    def prompt_losses(self, prompts, seqs):
        V = self.atoms.shape[1]
        counts = np.array([[p.count(str(v)) for v in range(V)] for p in prompts])
        q = prior.mixture_predictive(counts, self.weights, self.atoms)
        wobble = self.noise * np.sin(np.arange(q.size).reshape(q.shape) * 1.7)
        q = np.clip(q + wobble - wobble.mean(1, keepdims=True), 1e-9, None)
        q /= q.sum(1, keepdims=True)
        return -np.log(q[:, np.asarray(seqs)[:, 0]])


def test_planted_prior_is_recovered_and_K_chosen_by_held_out_error():
    # Components in the fit's order: lexicographic in their atoms.
    atoms = np.array([[0.15, 0.85], [0.6, 0.4], [0.9, 0.1]])
    weights = np.array([0.4, 0.35, 0.25])
    contexts, counts = prior.probe_contexts(2, 6)
    probs = prior.query(PlantedPredictor(weights, atoms), contexts, 2)
    fits = prior.read_back(counts, probs, 6)
    chosen = prior.choose(fits)
    assert chosen.family == "mixture" and chosen.components == 3
    np.testing.assert_allclose(chosen.atoms, atoms, atol=1e-6)
    np.testing.assert_allclose(chosen.weights, weights, atol=1e-6)
    # Fewer components miss the held-out contexts; more would tie and are not chosen.
    two = prior.fit_mixture(counts[counts.sum(1) < 6], probs[counts.sum(1) < 6], 2,
                            prior._starts(probs, 2, None))
    held = counts.sum(1) == 6
    assert np.abs(prior.mixture_predictive(counts[held], *two) - probs[held]).max() > 1e-4


def test_planted_prior_under_noise_is_near_and_its_errors_say_so():
    atoms = np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    weights = np.array([0.5, 0.5])
    spec = {"kind": "categorical_mixture", "probs": atoms.tolist(), "weights": [0.5, 0.5]}
    cols = prior.probe_prior(PlantedPredictor(weights, atoms, noise=1e-3), spec,
                             probe_length=4, max_components=3)
    chosen = _selected(cols)
    assert chosen["family"].iloc[0] == "mixture"
    assert 1e-4 < chosen["train_error"].iloc[0] < 5e-3  # the noise is seen, not fitted away
    assert chosen["w1"].iloc[0] < 0.02


def test_probe_contexts_are_the_count_classes():
    contexts, counts = prior.probe_contexts(3, 2)
    assert contexts == ["", "0", "1", "2", "00", "01", "11", "02", "12", "22"]
    assert counts.sum(1).tolist() == [0, 1, 1, 1, 2, 2, 2, 2, 2, 2]


def test_query_is_the_bayes_predictive():
    source = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]})
    contexts, counts = prior.probe_contexts(2, 3)
    probs = prior.query(BayesPredictor(source), contexts, 2)
    truth = prior.mixture_predictive(counts, np.array([0.5, 0.5]),
                                     np.array([[0.8, 0.2], [0.3, 0.7]]))
    np.testing.assert_allclose(probs, truth, atol=1e-12)


@pytest.mark.parametrize("K,V", [(1, 2), (3, 2), (2, 3), (3, 4)])
def test_mixture_jacobian_matches_finite_differences(K, V):
    rng = np.random.default_rng(K * 10 + V)
    counts = np.concatenate([prior.compositions(n, V) for n in range(4)])
    x = rng.normal(size=K - 1 + K * (V - 1))
    jac = prior.mixture_jacobian(counts, *prior._unpack(x, K, V))

    def f(y):
        return prior.mixture_predictive(counts, *prior._unpack(y, K, V)).ravel()

    step = 1e-6
    numeric = np.stack([(f(x + step * e) - f(x - step * e)) / (2 * step)
                        for e in np.eye(len(x))], axis=1)
    np.testing.assert_allclose(jac, numeric, atol=1e-8)


def test_w1_on_the_line_matches_transport_and_expectations():
    a = prior.Measure(atoms=np.array([[0.8, 0.2], [0.3, 0.7]]), weights=np.array([0.5, 0.5]))
    b = prior.Measure(atoms=np.array([[0.6, 0.4]]), weights=np.ones(1))
    line = prior.w1(a, b)
    assert line.resolution == 0.0
    assert line.distance == pytest.approx(0.5 * 0.2 + 0.5 * 0.3, abs=1e-12)
    assert prior._transport(a.atoms, a.weights, b.atoms, b.weights) == pytest.approx(
        line.distance, abs=1e-9)
    # Beta(2, 3) against a point mass at t: E|theta - t| by quadrature of the density.
    from scipy import integrate, stats
    beta = prior.Measure(alpha=np.array([3.0, 2.0]))
    t = 0.35
    expected = integrate.quad(lambda x: abs(x - t) * stats.beta.pdf(x, 2, 3), 0, 1,
                              points=[t])[0]
    point = prior.Measure(atoms=np.array([[1 - t, t]]), weights=np.ones(1))
    assert prior.w1(beta, point).distance == pytest.approx(expected, abs=1e-9)


def test_w1_over_three_symbols_is_a_transport_problem():
    a = prior.Measure(atoms=np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]),
                      weights=np.array([0.5, 0.5]))
    b = prior.Measure(atoms=np.array([[0.8, 0.1, 0.1]]), weights=np.ones(1))
    assert prior.w1(a, b).distance == pytest.approx(0.5 * 0.7, abs=1e-9)
    assert prior.w1(a, a).distance == pytest.approx(0.0, abs=1e-12)


def test_fitted_source_is_the_fitted_predictive():
    fit = prior.Fit("mixture", np.array([0.3, 0.7]), np.array([[0.8, 0.1, 0.1],
                                                               [0.2, 0.3, 0.5]]),
                    None, 0.0, 0.0)
    source = build_source(fit.source())
    contexts, counts = prior.probe_contexts(3, 3)
    np.testing.assert_allclose(prior.query(BayesPredictor(source), contexts, 3),
                               fit.predictive(counts), atol=1e-12)
    dirichlet = prior.Fit("dirichlet", np.ones(1), np.array([[0.4, 0.6]]),
                          np.array([2.0, 3.0]), 0.0, 0.0)
    assert dirichlet.source() == {"kind": "beta_coin", "alpha": 3.0, "beta": 2.0}


def test_probe_length_below_one_is_an_error():
    counts = np.zeros((1, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="probe_length == 0, must be >= 1"):
        prior.read_back(counts, np.full((1, 2), 0.5), 0)


def test_stage_writes_the_prior_fit_table_and_refuses_by_name(tmp_path):
    from promptscape.study import tables
    from promptscape.pipeline.stages import prior_stage

    spec = RECOVERABLE["coin_mixture"][0]
    out = tmp_path / "r0.parquet"
    prior_stage.probe_prior(output=str(out), predictor="bayes", replicate=0, family="bayes",
                            pretraining=spec, experiment="e", probe_length=5)
    frame = tables.read(str(out), "prior_fit")
    assert set(frame["probe_length"]) == set(range(1, 6))
    assert frame.loc[frame["selected"], "queries"].unique().tolist() == [prior.num_queries(2, 5)]
    assert prior.num_queries(2, 5) == 21 and prior.num_queries(3, 8) == 165
    source = build_source(prior.selected_source(frame))
    assert source.kind == "coin_mixture"
    np.testing.assert_allclose(sorted(source.thetas), [0.1, 0.5, 0.8], atol=1e-6)
    with pytest.raises(prior.PriorFitError, match="experiment e: pretraining: source kind "
                                                  "'markov' is not exchangeable"):
        prior_stage.probe_prior(output=str(tmp_path / "x.parquet"), predictor="bayes",
                                replicate=0, family="bayes",
                                pretraining=NOT_EXCHANGEABLE["markov"], experiment="e",
                                probe_length=2)


@pytest.mark.parametrize("V, d, K", [(2, 1, 1), (2, 2, 1), (2, 3, 2), (2, 8, 4), (3, 1, 1),
                                     (3, 2, 2), (3, 3, 3)])
def test_identifiable_components_count_parameters_against_moments(V, d, K):
    # K atoms on the simplex: K (V - 1) + K - 1 parameters; moments to order d:
    # C(d + V - 1, V - 1) - 1 numbers.
    assert prior.identifiable_components(d, V) == K
    assert K * (V - 1) + K - 1 <= math.comb(d + V - 1, V - 1) - 1
    assert (K + 1) * (V - 1) + K > math.comb(d + V - 1, V - 1) - 1


def test_a_short_probe_fits_no_more_components_than_it_determines():
    # Two contexts' lengths (0 and 1) fix only the first two moments: one coin. A third
    # component fitted there landed on one machine's kernels and not another's.
    source = build_source({"kind": "coin_mixture", "thetas": [0.2, 0.7]})
    contexts, counts = prior.probe_contexts(2, 2)
    probs = prior.query(BayesPredictor(source), contexts, 2)
    mixture = prior.read_back(counts, probs, 2)[0]
    assert mixture.components == 1
