"""Trie-batched prompt scoring (`NeuralPredictor.prompt_losses`) against a brute-force
reference: every (prompt, sequence) pair scored by `log_predictive` on the concatenation
prompt + sequence, the prompt's positions sliced off. Both families, V = 2 and 3, complete
and arbitrary prompt sets, complete and partial sequence sets with repeated and shuffled
rows, and budgets small enough to force every kind of chunk; then the benchmark's smoke run.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from promptscape import prompts, seeding
from promptscape.neural import base, families, scoring, trie

from network_helpers import scrambled_predictor

FAMILIES = families.NEURAL_FAMILIES
RTOL, ATOL = 1e-5, 1e-6
ROOT = Path(__file__).resolve().parents[3]


def default_predictor(family, V=2):
    """An untrained network of the default size (4 heads of 16, 2 layers; an LSTM of 64)."""
    config = families.PredictorConfig(family=family, sequence_length=16)
    return scoring.NeuralPredictor(base.build_model(config, V), config, device="cpu")


def brute_force(predictor, prompt_list, seqs):
    """l(s, x) of each pair: -sum of log q(x_t | BOS s x_<t) over the task positions of the
    concatenation s + x, one forward per pair (batched over the sequences of a prompt)."""
    seqs = np.asarray(seqs, dtype=np.uint8)
    out = np.empty((len(prompt_list), len(seqs)))
    for i, prompt in enumerate(prompt_list):
        L = len(prompt)
        joined = np.concatenate([np.broadcast_to(prompts.to_array(prompt), (len(seqs), L)),
                                 seqs], axis=1)
        logp = predictor.log_predictive(joined)[:, L:]  # (B, T, V): task positions only
        out[i] = -np.take_along_axis(logp, seqs[..., None].astype(np.int64), -1)[..., 0].sum(1)
    return out


def rng_for(*key):
    return seeding.numpy_generator("test_trie_scoring", *key)


def every_sequence_shuffled(T, V, key):
    """All V^T sequences, some twice, in a random order."""
    rng = rng_for("seqs", T, V, key)
    seqs = prompts.enumerate_sequences(T, V)
    seqs = np.concatenate([seqs, seqs[rng.choice(len(seqs), 5)]])
    return seqs[rng.permutation(len(seqs))]


def some_sequences(T, V, key, n=12):
    """n random sequences (a partial trie), one repeated, in a random order."""
    rng = rng_for("some", T, V, key)
    seqs = rng.integers(0, V, (n, T)).astype(np.uint8)
    return np.concatenate([seqs, seqs[:1]])[rng.permutation(n + 1)]


def arbitrary_prompts(L_max, V, key, n=10):
    """Random prompts of lengths 2..L_max (their ancestors mostly absent), shuffled, one
    repeated, plus the empty prompt last."""
    rng = rng_for("prompts", L_max, V, key)
    out = [prompts.to_strings(rng.integers(0, V, (1, rng.integers(2, L_max + 1)))
                              .astype(np.uint8), V)[0] for _ in range(n)]
    return out + [out[3], ""]


# (max_tokens, step_inputs): the defaults; tiny ones (a prompt per batch, a node per step);
# in between (several prompt groups and node slices per depth).
BUDGETS = [(1 << 17, None), (1, 1), (7, 3), (60, 8)]


@pytest.mark.parametrize("V", [2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_complete_prompt_set_on_every_sequence_equals_brute_force(family, V):
    predictor = scrambled_predictor(family, V, sequence_length=16, device="cpu")
    T, L_max = (5, 4) if V == 2 else (3, 3)
    prompt_list = prompts.all_prompts(L_max, V)
    seqs = every_sequence_shuffled(T, V, family)
    expected = brute_force(predictor, prompt_list, seqs)
    assert expected.std(axis=0).mean() > 0.05, "prompts must matter for this test to mean much"
    for max_tokens, step_inputs in BUDGETS:
        predictor.max_tokens = max_tokens
        predictor.step_inputs = step_inputs
        got = predictor.prompt_losses(prompt_list, seqs)
        assert got.shape == expected.shape and got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL,
                                   err_msg=f"max_tokens {max_tokens}, step {step_inputs}")


@pytest.mark.parametrize("V", [2, 3])
@pytest.mark.parametrize("family", FAMILIES)
def test_arbitrary_prompts_on_partial_sequence_sets_equal_brute_force(family, V):
    predictor = scrambled_predictor(family, V, sequence_length=16, device="cpu")
    prompt_list = arbitrary_prompts(6, V, family)
    for T in [1, 2, 6]:
        seqs = some_sequences(T, V, family)
        expected = brute_force(predictor, prompt_list, seqs)
        for max_tokens, step_inputs in BUDGETS:
            predictor.max_tokens = max_tokens
            predictor.step_inputs = step_inputs
            np.testing.assert_allclose(predictor.prompt_losses(prompt_list, seqs), expected,
                                       rtol=RTOL, atol=ATOL,
                                       err_msg=f"T {T}, max_tokens {max_tokens}")


@pytest.mark.parametrize("family", FAMILIES)
def test_default_size_networks_equal_brute_force(family):
    """Default widths (several heads of 16), complete and partial sequence tries, slices of
    whole subtrees (ancestors read in place) and of parts of them (gathered)."""
    predictor = default_predictor(family)
    prompt_list = prompts.all_prompts(3, 2) + ["010110"]
    for seqs in [every_sequence_shuffled(6, 2, "default"), some_sequences(6, 2, "default")]:
        expected = brute_force(predictor, prompt_list, seqs)
        for step_inputs in [None, 16, 3]:
            predictor.step_inputs = step_inputs
            np.testing.assert_allclose(predictor.prompt_losses(prompt_list, seqs), expected,
                                       rtol=RTOL, atol=ATOL, err_msg=f"step {step_inputs}")


@pytest.mark.parametrize("family", FAMILIES)
def test_sequence_trie_and_extend_paths_agree_and_repeat_exactly(family):
    predictor = scrambled_predictor(family, 2, sequence_length=16, device="cpu")
    prompt_list = prompts.all_prompts(4, 2)[::-1]  # any order
    seqs = every_sequence_shuffled(6, 2, "paths")
    trie = predictor.prompt_losses(prompt_list, seqs)
    np.testing.assert_array_equal(predictor.prompt_losses(prompt_list, seqs), trie)
    predictor.sequence_trie = False
    np.testing.assert_allclose(predictor.prompt_losses(prompt_list, seqs), trie,
                               rtol=RTOL, atol=ATOL)
    # A row's losses do not depend on the other rows or prompts scored with it.
    predictor.sequence_trie = True
    np.testing.assert_allclose(predictor.prompt_losses(prompt_list[:3], seqs[5:9]),
                               trie[:3, 5:9], rtol=RTOL, atol=ATOL)


def test_degenerate_inputs():
    predictor = scrambled_predictor("lstm", 2, sequence_length=16, device="cpu")
    seqs = some_sequences(4, 2, "degenerate")
    assert predictor.prompt_losses([], seqs).shape == (0, len(seqs))
    assert predictor.prompt_losses(["01"], seqs[:0]).shape == (1, 0)
    np.testing.assert_array_equal(predictor.prompt_losses(["01"], seqs[:, :0]),
                                  np.zeros((1, len(seqs))))
    np.testing.assert_allclose(predictor.prompt_losses(["", ""], seqs),
                               brute_force(predictor, ["", ""], seqs), rtol=RTOL, atol=ATOL)


def test_sequence_trie_structure():
    seqs = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 1, 1]], dtype=np.uint8)
    seq_trie = trie.SequenceTrie(seqs, 2, torch.device("cpu"))
    assert seq_trie.sizes == [1, 2, 3, 3] and seq_trie.internal == 5
    assert seq_trie.parents[2].tolist() == [0, 0, 1] and seq_trie.symbols[2].tolist() == [0, 1, 0]
    assert seq_trie.leaves.tolist() == [2, 0, 2, 1]  # 001, 011, 101 in order; row 2 = row 0
    assert seq_trie.ancestors[2].tolist() == [[0], [0], [1]]
    assert seq_trie.complete == [True, True, False, False]
    full = trie.SequenceTrie(prompts.enumerate_sequences(3, 3), 3, torch.device("cpu"))
    assert full.complete == [True] * 4 and full.internal == 3 + 9


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_equals_cpu(family):
    predictor = scrambled_predictor(family, 2, sequence_length=16, device="cpu")
    prompt_list, seqs = prompts.all_prompts(3, 2), every_sequence_shuffled(5, 2, "cuda")
    on_cpu = predictor.prompt_losses(prompt_list, seqs)
    gpu = scoring.NeuralPredictor(predictor.model, predictor.config, device="cuda")
    np.testing.assert_allclose(gpu.prompt_losses(prompt_list, seqs), on_cpu,
                               rtol=RTOL, atol=1e-5)


def test_benchmark_quick_mode_prints_its_ratios(capsys):
    """The benchmark's smoke run, smaller still: L_max 3 in full and 5 sampled, T = 4 (in
    this process, which has torch loaded already; its thread count is restored)."""
    spec = importlib.util.spec_from_file_location("trie_scoring_benchmark",
                                                  ROOT / "benchmarks" / "trie_scoring.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    threads = torch.get_num_threads()
    try:
        benchmark.main(["--quick", "--lengths", "3,5", "--task-length", "4", "--sample-from",
                        "5", "--sample-depth", "2", "--threads", "1", "--raw-tokens", "20000",
                        "--in-process"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert out.count("speed-up: measured") == 4, out
    assert out.count("trie throughput / raw forward throughput") == 4, out
    assert "trie, extrapolated (x2)" in out and "peak memory (ru_maxrss)" in out, out
