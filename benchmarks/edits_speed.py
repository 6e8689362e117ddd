"""Time of the edit analysis (`promptscape.edits`) on the largest landscapes it must handle.

For binary L_max = 12 (8,191 prompts) and 16 (131,071) and V = 10, L_max = 4 (11,111), with
a random KL vector (every prompt distinct, so descent paths are long and optima many), it
times each step: the edge list, ΔKL, the kind summaries and the local structure, and prints
seconds (best of `--repeats`, the least disturbed by other load on the machine).

Run: ``PYTHONPATH=src python benchmarks/edits_speed.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from promptscape import edits


def best_time(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'L_max':>5} {'V':>3} {'prompts':>8} {'edges':>9} {'edges s':>8} {'ΔKL s':>7} "
          f"{'kinds s':>8} {'local s':>8} {'optima':>7}")
    for max_length, vocab_size in [(12, 2), (16, 2), (4, 10)]:
        t_edges, e = best_time(lambda: edits.edit_edges(max_length, vocab_size), args.repeats)
        kl = np.random.default_rng(0).random(e.num_prompts)
        marginals = np.r_[0.4, np.full(vocab_size - 1, 0.6 / (vocab_size - 1))]
        marginals[-1] -= 0.01
        marginals[0] += 0.01
        t_delta, _ = best_time(lambda: edits.delta_kl(e, kl), args.repeats)
        t_kinds, _ = best_time(lambda: edits.summarise_kinds(e, kl, marginals), args.repeats)
        t_local, s = best_time(lambda: edits.local_structure(e, kl), args.repeats)
        print(f"{max_length:>5} {vocab_size:>3} {e.num_prompts:>8} {len(e):>9} {t_edges:>8.3f} "
              f"{t_delta:>7.3f} {t_kinds:>8.3f} {t_local:>8.3f} {int(s.local_optimum.sum()):>7}")


if __name__ == "__main__":
    main()
