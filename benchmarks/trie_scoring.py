"""Trie-batched prompt scoring against one forward pass per (prompt, sequence) pair.

For every prompt of length 0..L_max over V = 2 symbols and every one of the V^T task
sequences (T = 10: 1,024), each neural family at its default size (untrained: weights do not
change the cost), it times three ways of scoring and prints a table:

* trie: ``NeuralPredictor.prompt_losses``, the two-trie path (each prompt prefix read once
  from its parent's state; after each prompt, one step per distinct sequence prefix). Its
  forward steps ("tokens") are the prompt-trie nodes (BOS and every prefix, one step each)
  plus prompts x internal sequence-trie nodes (V^T - V) / (V - 1) = 1,022 at T = 10 (a
  sequence's last symbol is a target only).
* naive: each pair by its own forward pass over BOS + prompt + sequence (L + T model
  inputs, the prompt's positions sliced off), batched over pairs in the rows of the
  fastest raw batch.
* raw: the model's plain batched forward on random sequences of L_max + T symbols, at a few
  batch sizes; the best tokens/s is the throughput floor's reference.

Then the measured speed-up (naive time / trie time), the ideal one (naive tokens / trie
tokens), the fraction of the ideal achieved, the fraction of raw throughput the trie path
runs at (its tokens/s over raw tokens/s), and the peak resident memory of the measuring
process (ru_maxrss, each (L_max, family) in a fresh process: before scoring, after the trie
path, after everything) and the largest tensor the trie path allocates (an untimed rerun of
the timed set under a dispatch mode). An evaluation is one (prompt, sequence) loss l(s, x).

Not timed here: the prompt trie followed by `extend` on every distinct sequence
(``NeuralPredictor.sequence_trie = False``, the previous continuation). At L_max = 10, one
thread, it took 26-28 s (LSTM) and 163-182 s (transformer) where the sequence trie took
1.6-1.8 s and 14-16 s: the sequence trie pays on a cpu.

Sampling, on a cpu. Naive is always timed on a sample: ``--naive-prompts`` random prompts of
each length, every sequence, and its time extrapolated length by length (a naive pair's
cost depends on its length only). From L_max >= ``--sample-from`` (default 13) the trie is
sampled too: all prompts of length <= ``--sample-depth`` d (default 8) are scored in full
("shallow"), and "deep" are all prompts longer than d whose first d symbols are one of
``--sample-prefixes`` k random prefixes (default 4 of 256; their ancestors are read as
internal nodes). The full trie's time is extrapolated as shallow + deep x V^d / k (each
prefix's subtree has the same shape) and printed beside the measured one; the full run also
times the whole L_max = 16 trie of the LSTM as a check of that extrapolation.

Context: the default networks train on sequences of 16 symbols (a transformer's position
table has 16 rows), too short for L_max + T = 22 or 26, so each L_max uses the default
config with ``sequence_length = L_max + T`` (for the LSTM this changes nothing measured).

Clocks. Each figure is the best of ``--repeats`` runs (naive and raw: of 2), by wall time;
the speed-up is also given by process cpu time, which with one thread does not count the
time other jobs on a shared machine take the core. One torch thread by default: on the
2-core development machine two threads ran up to 100x slower whenever another job held the
other core (their spin-waits), so two-thread figures (``--threads 2``) are only meaningful
on a quiet machine. Ratios only, no timed assertions.

Run: ``PYTHONPATH=src python benchmarks/trie_scoring.py`` (L_max 12 and 16, one thread:
615 s on the 2-core development machine while other jobs kept its load average at 6-7), or
``--quick`` (L_max 6 and 8, the trie sampled at 8: 30 s quiet, 56 s at load 6).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import resource
import time

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from promptscape import prompts
from promptscape.neural import base, families, scoring

V = 2


def rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss: KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class LargestTensor(TorchDispatchMode):
    """Records the largest storage (bytes) of any tensor an op returns while active: the
    largest allocation (a view shares its base's storage, so an expanded view does not
    count as large)."""

    def __init__(self):
        super().__init__()
        self.bytes, self.shape = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() > self.bytes:
                self.bytes, self.shape = t.untyped_storage().nbytes(), tuple(t.shape)
        return out


def best_time(fn, repeats: int) -> tuple[np.ndarray, object]:
    """The least (wall, process cpu) seconds of `repeats` runs of fn (each clock's own
    minimum), and fn's result."""
    best, out = np.full(2, np.inf), None
    for _ in range(repeats):
        start = np.array([time.perf_counter(), time.process_time()])
        out = fn()
        best = np.minimum(best, np.array([time.perf_counter(), time.process_time()]) - start)
    return best, out


def trie_nodes(prompt_list: list[str]) -> int:
    """Prompt-trie nodes the trie path reads for `prompt_list`: every distinct prefix,
    the empty one (BOS) included."""
    return len({p[:i] for p in prompt_list for i in range(len(p) + 1)})


@torch.no_grad()
def naive_losses(model, prompt_list: list[str], seqs: torch.Tensor, rows: int) -> np.ndarray:
    """l(s, x) by one forward per pair over prompt + sequence (equal-length prompts),
    `rows` pairs per forward; the prompt's positions are dropped."""
    L, (B, T) = len(prompt_list[0]), seqs.shape
    prefix = torch.as_tensor(prompts.to_arrays(prompt_list, L).astype(np.int64))
    joined = torch.cat([prefix[:, None].expand(-1, B, L), seqs[None].expand(len(prompt_list),
                                                                            B, T)], dim=2)
    joined = joined.reshape(-1, L + T)
    out = torch.empty(joined.shape[0], dtype=torch.float64)
    for start in range(0, joined.shape[0], rows):
        part = joined[start:start + rows]
        logp = model(part)[:, L:]  # (rows, T, V): task positions only
        target = part[:, L:, None]
        out[start:start + rows] = -logp.gather(-1, target)[..., 0].double().sum(1)
    return out.view(len(prompt_list), B).numpy()


@torch.no_grad()
def raw_throughput(model, length: int, batches: list[int], tokens: int) -> tuple[float, int]:
    """Best tokens/s of the plain forward over random (batch, length) sequences, and its
    batch size (about `tokens` tokens timed per batch size, best of 2; a batch size whose one
    forward alone exceeds `tokens` is left out, the smallest is always timed)."""
    rng = np.random.default_rng(0)
    batches = sorted(batches)
    batches = [b for b in batches if b * length <= tokens] or batches[:1]
    best = (0.0, batches[0])
    for batch in batches:
        n = max(1, tokens // (batch * length))
        x = torch.as_tensor(rng.integers(0, V, (batch, length)))
        model(x)  # warm-up

        def run():
            for _ in range(n):
                model(x)
        seconds, _ = best_time(run, 2)
        best = max(best, (n * batch * length / seconds[0], batch))
    return best


def sampled_prompts(L: int, depth: int, k: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(shallow, deep): all prompts of length <= depth, and all longer ones under k random
    prefixes of length `depth`."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(V**depth, size=min(k, V**depth), replace=False))
    heads = prompts.to_strings(prompts.enumerate_sequences(depth, V)[chosen], V)
    tails = prompts.all_prompts(L - depth, V)[1:]
    return prompts.all_prompts(depth, V), [h + t for h in heads for t in tails]


def measure(family: str, L: int, args) -> dict:
    """Every figure of one (L_max, family) row; runs in its own process (peak memory)."""
    torch.set_num_threads(args.threads)
    T = args.task_length
    config = families.PredictorConfig(family=family, sequence_length=max(16, L + T))
    predictor = scoring.NeuralPredictor(base.build_model(config, V), config, device="cpu")
    model = predictor.model
    seqs = prompts.enumerate_sequences(T, V)
    B = len(seqs)
    seq_tensor = torch.as_tensor(seqs.astype(np.int64))
    internal = (V**T - V) // (V - 1)
    full = prompts.num_prompts(L, V)
    res = dict(family=family, L=L, prompts=full, pairs=full * B,
               params=sum(p.numel() for p in model.parameters()),
               trie_tokens=full + full * internal, rss_before=rss_mib())

    # (a) trie: in full, or shallow + deep sample extrapolated.
    if L < args.sample_from:
        trie, _ = best_time(lambda: predictor.prompt_losses(
            prompts.all_prompts(L, V), seqs), args.repeats)
        res["trie_measured_tokens"] = res["trie_tokens"]
    else:
        d, k = args.sample_depth, args.sample_prefixes
        shallow, deep = sampled_prompts(L, d, k)
        t_shallow, _ = best_time(lambda: predictor.prompt_losses(shallow, seqs), args.repeats)
        t_deep, _ = best_time(lambda: predictor.prompt_losses(deep, seqs), args.repeats)
        scale = V**d / min(k, V**d)  # subtrees of the full trie per sampled one
        res.update(sample=dict(depth=d, k=k, shallow=len(shallow), deep=len(deep),
                               t_shallow=t_shallow[0], t_deep=t_deep[0], scale=scale))
        trie = t_shallow + t_deep * scale
        res["trie_measured_s"] = (t_shallow + t_deep)[0]
        res["trie_measured_tokens"] = (trie_nodes(shallow) + len(shallow) * internal
                                       + trie_nodes(deep) + len(deep) * internal)
        if family in args.full_check:
            res["trie_full_s"] = best_time(lambda: predictor.prompt_losses(
                prompts.all_prompts(L, V), seqs), 1)[0][0]
    res["trie_s"], res["trie_cpu_s"] = trie
    res["rss_trie"] = rss_mib()
    # The largest tensor: a second, untimed run of the timed set (the deep sample if sampled).
    tracked = deep if L >= args.sample_from else prompts.all_prompts(L, V)
    with LargestTensor() as largest:
        predictor.prompt_losses(tracked, seqs)
    res["largest"] = (largest.bytes / 2**20, largest.shape)

    # (c) raw: the plain forward at a few batch sizes.
    batches = sorted({256, 1024, 4096, predictor.max_tokens // (L + T)})
    res["raw_tok_s"], res["raw_batch"] = raw_throughput(model, L + T, batches, args.raw_tokens)

    # (b) naive: m prompts per length, extrapolated length by length; checked against trie.
    rng = np.random.default_rng(1)
    naive, naive_tokens, gap = np.zeros(2), 0, 0.0
    for length in range(L + 1):
        count = V**length
        m = min(args.naive_prompts, count)
        pick = prompts.to_strings(prompts.enumerate_sequences(length, V)[
            np.sort(rng.choice(count, size=m, replace=False))], V) if length else [""]
        seconds, losses = best_time(
            lambda: naive_losses(model, pick, seq_tensor, res["raw_batch"]), 2)
        naive += seconds * count / m
        naive_tokens += count * B * (length + T)
        gap = max(gap, float(np.abs(losses - predictor.prompt_losses(pick, seqs)).max()))
    res.update(naive_s=naive[0], naive_cpu_s=naive[1], naive_tokens=naive_tokens, gap=gap,
               rss_all=rss_mib())
    return res


def fmt_s(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.2f}"


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def report(r: dict, args) -> None:
    trie_rate = r["trie_tokens"] / r["trie_s"]
    print(f"\n{r['family']} ({r['params']:,} parameters), L_max = {r['L']}: "
          f"{r['prompts']:,} prompts x {r['pairs'] // r['prompts']:,} sequences = "
          f"{r['pairs']:,} evaluations")
    print(f"  {'path':<28} {'prompts':>9} {'tokens':>14} {'seconds':>9} {'evals/s':>9} "
          f"{'tokens/s':>9}")
    if "sample" in r:
        s = r["sample"]
        n = s["shallow"] + s["deep"]
        evals = n * r["pairs"] / r["prompts"]
        print(f"  {'trie, measured sample':<28} {n:>9,} {r['trie_measured_tokens']:>14,} "
              f"{fmt_s(r['trie_measured_s']):>9} {fmt_rate(evals / r['trie_measured_s']):>9} "
              f"{fmt_rate(r['trie_measured_tokens'] / r['trie_measured_s']):>9}")
        print(f"    (sample: the {s['shallow']:,} prompts of length <= {s['depth']} "
              f"({s['t_shallow']:.2f} s) and the {s['deep']:,} longer ones under {s['k']} "
              f"random prefixes of length {s['depth']} ({s['t_deep']:.2f} s), ancestors read "
              f"as internal nodes)")
        label = f"trie, extrapolated (x{s['scale']:.0f})"
    else:
        label = "trie, measured"
    print(f"  {label:<28} {r['prompts']:>9,} {r['trie_tokens']:>14,} {fmt_s(r['trie_s']):>9} "
          f"{fmt_rate(r['pairs'] / r['trie_s']):>9} {fmt_rate(trie_rate):>9}")
    if "trie_full_s" in r:
        print(f"  {'trie, measured in full':<28} {r['prompts']:>9,} {r['trie_tokens']:>14,} "
              f"{fmt_s(r['trie_full_s']):>9} {fmt_rate(r['pairs'] / r['trie_full_s']):>9} "
              f"{fmt_rate(r['trie_tokens'] / r['trie_full_s']):>9}  "
              f"(extrapolation off by {r['trie_s'] / r['trie_full_s'] - 1:+.1%})")
    print(f"  {'naive, extrapolated':<28} {r['prompts']:>9,} {r['naive_tokens']:>14,} "
          f"{fmt_s(r['naive_s']):>9} {fmt_rate(r['pairs'] / r['naive_s']):>9} "
          f"{fmt_rate(r['naive_tokens'] / r['naive_s']):>9}")
    print(f"    (naive: {args.naive_prompts} random prompt(s) of each length x every sequence, "
          f"{r['raw_batch']} pairs a forward; max |trie - naive| loss {r['gap']:.1e} nats)")
    print(f"  {'raw forward':<28} {'':>9} {'':>14} {'':>9} {'':>9} "
          f"{fmt_rate(r['raw_tok_s']):>9}  "
          f"(best batch: {r['raw_batch']} x {r['L'] + args.task_length})")
    measured = r["naive_s"] / r["trie_s"]
    ideal = r["naive_tokens"] / r["trie_tokens"]
    by_cpu = r["naive_cpu_s"] / r["trie_cpu_s"]
    print(f"  speed-up: measured {measured:.1f}x, ideal {ideal:.1f}x, "
          f"{measured / ideal:.0%} of ideal (by process cpu time: {by_cpu:.1f}x, "
          f"{by_cpu / ideal:.0%})")
    print(f"  trie throughput / raw forward throughput: {trie_rate / r['raw_tok_s']:.2f}")
    print(f"  peak memory (ru_maxrss): {r['rss_before']:.0f} MiB before scoring, "
          f"{r['rss_trie']:.0f} MiB after the trie path, {r['rss_all']:.0f} MiB after all; "
          f"largest tensor of the trie path {r['largest'][0]:.1f} MiB {r['largest'][1]}, "
          f"beside the {r['pairs'] * 8 / 2**20:.0f} MiB float64 (P, B) result")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="L_max 6 and 8, trie sampled at 8 (depth 4, 2 prefixes), "
                             "1 naive prompt per length: a smoke run under a minute")
    parser.add_argument("--lengths", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--task-length", type=int, default=10)
    parser.add_argument("--families", default=",".join(families.NEURAL_FAMILIES))
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: see the module doc)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample-from", type=int)
    parser.add_argument("--sample-depth", type=int)
    parser.add_argument("--sample-prefixes", type=int)
    parser.add_argument("--naive-prompts", type=int)
    parser.add_argument("--raw-tokens", type=int)
    parser.add_argument("--in-process", action="store_true",
                        help="measure in this process, not a fresh one per (L_max, family): "
                             "faster to start, but the peak memory is cumulative")
    parser.add_argument("--full-check", default=None,
                        help="families whose sampled tries are also timed in full "
                             "(default: lstm in the full run, none with --quick)")
    args = parser.parse_args(argv)
    defaults = (dict(lengths=[6, 8], sample_from=8, sample_depth=4, sample_prefixes=2,
                     naive_prompts=1, raw_tokens=100_000, full_check="", repeats=1)
                if args.quick else
                dict(lengths=[12, 16], sample_from=13, sample_depth=8, sample_prefixes=4,
                     naive_prompts=4, raw_tokens=500_000, full_check="lstm"))
    for key, value in defaults.items():
        if getattr(args, key) is None or (key == "repeats" and args.quick):
            setattr(args, key, value)
    args.full_check = [f for f in args.full_check.split(",") if f]
    family_names = args.families.split(",")

    start = time.perf_counter()
    print(f"torch {torch.__version__}, {args.threads} thread(s), cpu "
          f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start); "
          f"V = {V}, T = {args.task_length}: all {V**args.task_length:,} sequences; "
          f"untrained default networks with sequence_length = L_max + T; "
          f"trie figures best of {args.repeats}")
    context = multiprocessing.get_context("spawn")
    for L in args.lengths:
        for family in family_names:
            if args.in_process:
                report(measure(family, L, args), args)
                continue
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
                report(pool.submit(measure, family, L, args).result(), args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
