"""Throughput of tuning (forward and backward), for each neural family at its default size.

Tokens are task symbols: one step of a tuner over D_N costs (distinct sequences of D_N) x T
of them per seed. For binary tasks of T = 10 symbols and a soft prompt of K = 5 positions it
prints, per family, tokens per second of one Adam step:

* raw: the network's own forward and backward (all weights trainable, no prompt) on the
  same tokens: the floor a tuner is measured against (target: a tuner at least half of it);
* soft_prompt and full: the tuners' steps, with the seeds of a batch side by side (soft
  prompts: one step for S seeds on the union of their D_N) or one seed at a time;
* at N = 10 (20 seeds of 10 distinct sequences) and N = 1000 (all 1024 sequences per seed).

Run: ``PYTHONPATH=src python benchmarks/tuning_throughput.py [--repeats 3] [--device cpu]``.
Each figure is the best of `--repeats` runs; ratios within one run are what to compare.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from promptscape import prompts
from promptscape.neural import base, families, tuners, tuning

T, K, V = 10, 5, 2


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def step(tuned, seqs, weights, optimizer):
    optimizer.zero_grad(set_to_none=True)
    (tuning.sequence_losses(tuned, seqs) * weights).sum().backward()
    optimizer.step()


def raw_step(model, seqs, optimizer):
    optimizer.zero_grad(set_to_none=True)
    logp = model(seqs)
    (-logp.gather(-1, seqs[..., None])[..., 0].sum()).backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", default=",".join(families.NEURAL_FAMILIES))
    args = parser.parse_args()
    device = base.resolve_device(args.device, "--device")
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    print("| family | N | seeds | way | tokens/step | ms/step | tokens/s | / raw |")
    print("|---|---|---|---|---|---|---|---|")
    everything = torch.as_tensor(prompts.enumerate_sequences(T, V)).long().to(device)
    for family in args.families.split(","):
        config = families.PredictorConfig(family=family, sequence_length=16)
        model = base.build_model(config, V).to(device)
        for N, seeds in ((10, 20), (1000, 4)):
            rng = np.random.default_rng(0)
            # Each seed's distinct sequences: N = 10 draws 10 of the 1024, N = 1000 all of them.
            rows = [np.sort(rng.choice(len(everything), min(N, 1024), replace=False))
                    for _ in range(seeds)]
            union = np.unique(np.concatenate(rows))
            weights = np.zeros((seeds, len(union)))
            for s, r in enumerate(rows):
                weights[s, np.searchsorted(union, r)] = 1.0 / len(r)
            own_tokens = sum(len(r) for r in rows) * T

            raw = base.build_model(config, V).to(device)
            raw_opt = torch.optim.Adam(raw.parameters(), lr=1e-3)
            per_seed = [everything[r] for r in rows]
            raw_time = best_time(lambda: [raw_step(raw, x, raw_opt) for x in per_seed],
                                 args.repeats)
            raw_rate = own_tokens / raw_time
            print(f"| {family} | {N} | {seeds} | raw | {own_tokens} | "
                  f"{1000 * raw_time:.1f} | {raw_rate:,.0f} | 1.00 |")
            init = torch.zeros(seeds, K, dtype=torch.long, device=device)
            # Batched: every seed on its own sequences, padded (tuning.paired), as `tune` does.
            own, own_weights = tuning.paired(everything[union].cpu().numpy(), weights)
            paired_seqs = torch.as_tensor(own, device=device).long()
            w = torch.as_tensor(own_weights, device=device).float()

            def batched():
                tuned = tuning.build("soft_prompt", model, init, {}, None)
                opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], 1e-2)
                return lambda: step(tuned, paired_seqs, w, opt)

            def sequential(name):
                runs = []
                for s, r in enumerate(rows):
                    tuned = tuning.build(name, model, init[s:s + 1], tuners.TUNERS[name].defaults,
                                         torch.Generator().manual_seed(s)).to(device)
                    opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad],
                                           1e-2)
                    x = everything[r]
                    ws = torch.full((1, len(r)), 1.0 / len(r), device=device)
                    runs.append((tuned, x, ws, opt))
                return lambda: [step(*run) for run in runs]

            for way, make in (("soft_prompt batched", batched),
                              ("soft_prompt sequential", lambda: sequential("soft_prompt")),
                              ("full sequential", lambda: sequential("full"))):
                fn = make()
                fn()  # warm up (allocations, first-call overheads)
                elapsed = best_time(fn, args.repeats)
                rate = own_tokens / elapsed
                print(f"| {family} | {N} | {seeds} | {way} | {own_tokens} | "
                      f"{1000 * elapsed:.1f} | {rate:,.0f} | {rate / raw_rate:.2f} |")


if __name__ == "__main__":
    main()
