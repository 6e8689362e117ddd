"""Hidden-state Bayes losses by the forward algorithm down the sequence trie.

`BayesPredictor._hidden_state_losses` steps each (prompt, sequence prefix) once; it is checked
against the generic base-class path (scoring the concatenation with `log_predictive`) and
against an HMM written here (explicit transition matrix over (coin, rate), unnormalised
forward probabilities), for prompts of mixed lengths in no particular order and sequences
with duplicates.
"""

from __future__ import annotations

import numpy as np
import pytest

from promptscape import predictors
from promptscape.predictors import BayesPredictor, Predictor, _prefix_trie
from promptscape.prompts import enumerate_sequences, to_array
from promptscape.sources import build_source
from promptscape.sources.switching import Switching

SPECS = [
    {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.05},
    {"kind": "switching", "thetas": [0.1, 0.6, 0.9], "weights": [0.5, 0.25, 0.25],
     "switch_prob": 0.3},
    {"kind": "switching", "thetas": [0.2, 0.7], "switch_probs": [0.02, 0.3]},
    {"kind": "switching", "thetas": [0.1, 0.6, 0.9], "switch_probs": [0.05, 0.2, 0.5],
     "switch_weights": [0.5, 0.3, 0.2]},
]
IDS = ["fixed-2", "fixed-3", "rates-2x2", "rates-3x3"]


def _prompts(rng, n=40, max_length=7):
    """Random prompts of lengths 0..max_length, "" and a repeat included, shuffled (not in
    canonical order)."""
    prompts = ["".join(map(str, rng.integers(0, 2, rng.integers(0, max_length + 1))))
               for _ in range(n)]
    prompts += ["", "1" * max_length, prompts[3]]
    return [prompts[i] for i in rng.permutation(len(prompts))]


def _seqs(rng, n=30, T=6):
    """Random sequences with duplicate rows, not sorted."""
    seqs = rng.integers(0, 2, (n, T)).astype(np.uint8)
    seqs = np.concatenate([seqs, seqs[[0, 4, 4, 7]]])
    return seqs[rng.permutation(len(seqs))]


def _hmm_log_prob(src, symbols) -> float:
    """log P(symbols) by the forward algorithm on the explicit (coin, rate) chain."""
    theta, w = np.asarray(src.thetas), np.asarray(src.weights)
    if src.switch_prob is not None:
        rates, rate_weights = np.array([src.switch_prob]), np.array([1.0])
    else:
        rates, rate_weights = np.asarray(src.switch_probs), np.asarray(src.switch_weights)
    K, R = len(theta), len(rates)
    move = np.zeros((K * R, K * R))  # P(z', rho' | z, rho), index z * R + rho
    for z in range(K):
        for r in range(R):
            for z2 in range(K):
                move[z * R + r, z2 * R + r] = (1 - rates[r]) * (z == z2) + rates[r] * w[z2]
    alpha = np.outer(w, rate_weights).ravel()
    for t, x in enumerate(symbols):
        if t:
            alpha = alpha @ move
        alpha = alpha * np.repeat(theta if x == 1 else 1 - theta, R)
    return float(np.log(alpha.sum()))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_trie_losses_equal_generic_path_and_explicit_hmm(spec):
    src = build_source(spec)
    rng = np.random.default_rng(7)
    prompts, seqs = _prompts(rng), _seqs(rng)
    pred = BayesPredictor(src)
    losses = pred.prompt_losses(prompts, seqs)
    assert losses.shape == (len(prompts), len(seqs)) and losses.dtype == np.float64
    generic = Predictor.prompt_losses(pred, prompts, seqs)
    np.testing.assert_allclose(losses, generic, rtol=0, atol=1e-10)
    for i in rng.choice(len(prompts), 12, replace=False):
        p = [int(c) for c in prompts[i]]
        for b in rng.choice(len(seqs), 6, replace=False):
            expected = _hmm_log_prob(src, p) - _hmm_log_prob(src, p + list(seqs[b]))
            assert losses[i, b] == pytest.approx(expected, abs=1e-10), (prompts[i], seqs[b])
    # The empty prompt scores the sequence alone; duplicate sequences get equal columns.
    np.testing.assert_allclose(losses[prompts.index("")], -src.log_prob(seqs), rtol=0,
                               atol=1e-10)
    _, first, inverse = np.unique(seqs, axis=0, return_index=True, return_inverse=True)
    assert len(first) < len(seqs)
    np.testing.assert_array_equal(losses, losses[:, first[inverse.ravel()]])


@pytest.mark.parametrize("spec", SPECS[1:3], ids=IDS[1:3])
def test_tiny_chunks_give_the_same_losses(spec, monkeypatch):
    src = build_source(spec)
    rng = np.random.default_rng(3)
    prompts, seqs = _prompts(rng), _seqs(rng)
    whole = BayesPredictor(src).prompt_losses(prompts, seqs)
    rows = []
    advance = Switching.advance

    def counted(self, state, symbols):
        rows.append(len(state))
        return advance(self, state, symbols)

    monkeypatch.setattr(Switching, "advance", counted)
    monkeypatch.setattr(predictors, "TRIE_STATES_PER_CHUNK", 1)
    monkeypatch.setattr(predictors, "MAX_SYMBOLS_PER_BATCH", 1)
    chunked = BayesPredictor(src).prompt_losses(prompts, seqs)
    # One prompt at a time: no step holds more rows than the widest trie level.
    assert max(rows) <= len(seqs)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-13)


def test_edge_cases_shapes():
    src = build_source(SPECS[2])
    pred = BayesPredictor(src)
    seqs = enumerate_sequences(3, 2)
    empty_seqs = pred.prompt_losses(["", "01", "1"], np.zeros((4, 0), dtype=np.uint8))
    assert empty_seqs.shape == (3, 4) and empty_seqs.dtype == np.float64
    np.testing.assert_array_equal(empty_seqs, 0.0)  # T = 0: nothing scored
    assert pred.prompt_losses(["", "1"], np.zeros((0, 3), dtype=np.uint8)).shape == (2, 0)
    assert pred.prompt_losses([], seqs).shape == (0, len(seqs))
    one = pred.prompt_losses(["0110"], seqs[5:6])
    joined = np.concatenate([to_array("0110"), seqs[5]])[None]
    expected = -(src.log_prob(joined) - src.log_prob(to_array("0110")[None]))
    np.testing.assert_allclose(one[0], expected, rtol=0, atol=1e-10)


def test_prefix_trie_levels():
    distinct = enumerate_sequences(4, 2)
    levels = _prefix_trie(distinct)
    assert [len(parent) for parent, _ in levels] == [2, 4, 8, 16]
    for t, (parent, symbol) in enumerate(levels, start=1):
        # Node j at depth t is the prefix of length t with code j: parent j // 2, symbol j % 2.
        np.testing.assert_array_equal(parent, np.arange(2**t) // 2)
        np.testing.assert_array_equal(symbol, np.arange(2**t) % 2)
    rows = np.unique(np.array([[0, 1, 1], [0, 1, 0], [1, 1, 1], [0, 0, 1]], np.uint8), axis=0)
    levels = _prefix_trie(rows)  # prefixes 0, 1 | 00, 01, 11 | the four rows
    assert [len(parent) for parent, _ in levels] == [2, 3, 4]
    np.testing.assert_array_equal(levels[1][0], [0, 0, 1])
    np.testing.assert_array_equal(levels[2][0], [0, 1, 1, 2])
    np.testing.assert_array_equal(levels[2][1], [1, 0, 1, 1])


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_step_api_matches_filter_states(spec):
    src = build_source(spec)
    seqs = enumerate_sequences(5, 2)
    states = src.filter_states(seqs)
    logq = src.log_predictive(seqs)
    for t in range(seqs.shape[1]):
        np.testing.assert_array_equal(src.advance(states[:, t], seqs[:, t]), states[:, t + 1])
        np.testing.assert_allclose(src.step_log_predictive(states[:, t]), logq[:, t],
                                   rtol=0, atol=1e-14)
