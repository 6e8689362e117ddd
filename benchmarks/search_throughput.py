"""Throughput of the prompt search on cpu, for each neural family at its default size.

For all 63 prompts of length <= 5 and every one of the 1024 task sequences of length 10, it
times three ways of computing the same (P, B) losses and prints evaluations per second, an
evaluation being one (prompt, sequence, task symbol):

* search: ``NeuralPredictor.prompt_losses`` (each prompt read once, then continued by every
  sequence, batched over prompts and sequences);
* raw: the model's plain forward over the same number of task symbols, 63 x 1024 sequences
  of 10 symbols with no prompt (the cost floor without prompts);
* naive: one forward per prompt over the concatenation prompt + sequence, prompt positions
  sliced off afterwards.

Run: ``PYTHONPATH=src python benchmarks/search_throughput.py [--repeats 3]``. Each figure is
the best of `--repeats` runs (the least disturbed by other load on the machine).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from promptscape import prompts
from promptscape.neural import base, families, scoring


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def raw_forward(model, tokens: torch.Tensor, max_tokens: int) -> None:
    """Plain forward over (N, T) sequences, in the same chunks of tokens as the search."""
    chunk = max(1, max_tokens // tokens.shape[1])
    for start in range(0, tokens.shape[0], chunk):
        model(tokens[start:start + chunk])


@torch.no_grad()
def naive_losses(model, prompt_list: list[str], seqs: torch.Tensor) -> np.ndarray:
    """One forward per prompt over prompt + sequence; the prompt's positions are dropped."""
    out = np.empty((len(prompt_list), seqs.shape[0]))
    for i, prompt in enumerate(prompt_list):
        L = len(prompt)
        prefix = torch.as_tensor(prompts.to_array(prompt).astype(np.int64))
        joined = torch.cat([prefix.expand(seqs.shape[0], L), seqs], dim=1)  # (B, L + T)
        logp = model(joined)[:, L:]  # (B, T, V): task positions only
        out[i] = -logp.gather(-1, seqs[..., None])[..., 0].sum(1).double().numpy()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-prompt-length", type=int, default=5)
    parser.add_argument("--task-length", type=int, default=10)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    prompt_list = prompts.all_prompts(args.max_prompt_length, 2)
    seqs = prompts.enumerate_sequences(args.task_length, 2, 2)  # (1024, 10) for length 10
    P, (B, T) = len(prompt_list), seqs.shape
    evaluations = P * B * T
    seq_tensor = torch.as_tensor(seqs.astype(np.int64))
    raw_tokens = seq_tensor.repeat(P, 1)  # (P * B, T): the same task symbols, no prompts
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu; "
          f"{P} prompts x {B} sequences x {T} symbols = {evaluations:,} evaluations; "
          f"best of {args.repeats}")
    for family in families.NEURAL_FAMILIES:
        config = families.PredictorConfig(family=family)
        # Weights do not change the cost: an untrained model of the default size will do.
        predictor = scoring.NeuralPredictor(base.build_model(config, 2), config, device="cpu")
        model = predictor.model
        n_params = sum(p.numel() for p in model.parameters())

        search = best_time(lambda: predictor.prompt_losses(prompt_list, seqs), args.repeats)
        raw = best_time(lambda: raw_forward(model, raw_tokens, predictor.max_tokens),
                        args.repeats)
        naive = best_time(lambda: naive_losses(model, prompt_list, seq_tensor), args.repeats)
        gap = np.abs(predictor.prompt_losses(prompt_list, seqs)
                     - naive_losses(model, prompt_list, seq_tensor)).max()

        rate = {name: evaluations / t for name, t in
                (("search", search), ("raw", raw), ("naive", naive))}
        print(f"\n{family} ({n_params:,} parameters; hidden_size {config.hidden_size}, "
              f"{config.num_layers} layer(s))")
        for name, t in (("search", search), ("raw", raw), ("naive", naive)):
            print(f"  {name:<7} {t * 1e3:8.1f} ms  {rate[name]:14,.0f} evaluations/s")
        print(f"  search/raw   {rate['search'] / rate['raw']:.2f}x")
        print(f"  search/naive {rate['search'] / rate['naive']:.2f}x")
        print(f"  max |search - naive| loss: {gap:.2e} nats")


if __name__ == "__main__":
    main()
