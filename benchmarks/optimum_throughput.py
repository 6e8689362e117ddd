"""CPU time of a tuner's optimum (`promptscape.neural.optimum`): every learning rate and start
of one prompt-space tuner at one K trained side by side (`train_side_by_side`, one Tuned of
S copies) against the same runs one after another (`train`), and against those runs on the
forward pass over every sequence (`before`: as tune_optimum ran them before the exact
objective walked the sequences' prefix trie, `Exact.losses`), and side by side on the forward
(as a Transformer's ran before its walk could carry gradients).

The setting is config/tuning_paper.yaml's: binary tasks of T = 10 symbols, the exact
objective over all 1,024 task sequences (coin(0.2)), 2 learning rates x 3 starts (S = 6
copies), each family's default network at its initialisation (an untrained network, as the
config's `*_untrained`). Steps are fixed (`--steps`, patience beyond them: no copy converges),
so the ratio is that of one step's cost; with convergence the side-by-side loop drops copies
as they converge, as the sequential runs stop.

Run: ``PYTHONPATH=src python benchmarks/optimum_throughput.py [--steps 20] [--k 6,24]``.
Figures are CPU seconds of this process (time.process_time), so a busy machine slows both
ways alike; the ratio within one run is what to compare.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from promptscape import prompts
from promptscape.neural import base, families, optimum, tuners, tuning
from promptscape.sources import build_source

T, V = 10, 2


class Forward(optimum.Exact):
    """The exact objective by the forward pass over every sequence, never the trie walk."""

    def losses(self, tuned, max_tokens: int = 1 << 17):
        return tuning.sequence_losses(tuned, self.x[0], max_tokens), self.w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--k", default="6,24", help="prompt lengths, comma-separated")
    parser.add_argument("--tuners", default="soft_prompt,prefix")
    parser.add_argument("--families", default=",".join(families.NEURAL_FAMILIES))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seqs = prompts.enumerate_sequences(T, V)
    probs = np.exp(build_source({"kind": "coin", "theta": 0.2}).log_prob(seqs))
    objective, forward = optimum.Exact(seqs, probs), Forward(seqs, probs)
    rates, starts = [0.005, 0.03], 3
    settings = dict(max_steps=args.steps, patience=args.steps + 1, tolerance=0.0)
    print(f"torch threads {torch.get_num_threads()}, {len(rates)} rates x {starts} starts, "
          f"{args.steps} steps, exact objective over {len(seqs)} sequences of T = {T}")
    print("| family | tuner | K | before CPU-s | sequential CPU-s | side by side, forward "
          "CPU-s | side by side CPU-s | before / side by side | forward / walk, side by side |")
    print("|---|---|---|---|---|---|---|---|---|")
    for family in args.families.split(","):
        config = families.PredictorConfig(family=family, sequence_length=40)
        model = base.build_model(config, V).eval()
        for name in args.tuners.split(","):
            own = {k: v.default for k, v in tuners.TUNERS[name].settings.items()}
            for K in (int(k) for k in args.k.split(",")):
                rng = np.random.default_rng(K)
                rows = rng.integers(0, V, (starts, K))
                pairs = [(rate, row) for rate in rates for row in rows]

                def made(rows_):
                    return tuning.build(name, model, torch.as_tensor(np.asarray(rows_)).long(),
                                        own, torch.Generator().manual_seed(0))

                start = time.process_time()
                old = [optimum.train(made([row]), forward, learning_rate=rate, **settings)
                       for rate, row in pairs]
                before = time.process_time() - start
                start = time.process_time()
                alone = [optimum.train(made([row]), objective, learning_rate=rate, **settings)
                         for rate, row in pairs]
                sequential = time.process_time() - start
                start = time.process_time()
                side = optimum.train_side_by_side(
                    made([row for _, row in pairs]), objective,
                    learning_rates=[rate for rate, _ in pairs], **settings)
                together = time.process_time() - start
                start = time.process_time()
                optimum.train_side_by_side(
                    made([row for _, row in pairs]), forward,
                    learning_rates=[rate for rate, _ in pairs], **settings)
                side_forward = time.process_time() - start
                worst = max(abs(a.objective - b.objective) / abs(a.objective)
                            for a, b in zip(old + old, alone + side))
                assert worst < 1e-5, f"side by side differs from sequential by {worst:.2e}"
                print(f"| {family} | {name} | {K} | {before:.1f} | {sequential:.1f} | "
                      f"{side_forward:.1f} | {together:.1f} | {before / together:.2f} | "
                      f"{side_forward / together:.2f} |", flush=True)


if __name__ == "__main__":
    main()
