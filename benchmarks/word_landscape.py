"""Speed of the exact Bayes landscape of a word source, as the landscape stage computes it:
prompt classes of every prompt of length <= L_max, the loss table of the classes on the
distinct evaluation sequences, the paired evaluation-set estimates and the tie rule.

    PYTHONPATH=src python benchmarks/word_landscape.py [L_max] [M] [oov]

Defaults: L_max 3 (20,440 prompts), M = 2,000 evaluation sequences of T = 10, oov 0.01,
pretraining en/de/fr with 300 words each, task nl (300 words). Prints each part's wall time.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from promptscape import landscape, search
from promptscape import prompts as prompts_lib
from promptscape.predictors import BayesPredictor
from promptscape.sources import build_source


def main(max_length: int = 3, size: int = 2000, oov: float = 0.01) -> None:
    clock = time.perf_counter()
    source = build_source({"kind": "language_mixture", "languages": ["en", "de", "fr"],
                           "words": 300, "oov": oov})
    task = build_source({"kind": "word_stream", "language": "nl", "words": 300, "oov": oov})
    seqs = task.sample(size, 10, np.random.default_rng(0))
    print(f"sources and evaluation set: {time.perf_counter() - clock:.1f} s")
    clock = time.perf_counter()
    pred = BayesPredictor(source)
    prompts = prompts_lib.all_prompts(max_length, 27)
    first, inverse = pred.prompt_classes(prompts)
    print(f"{len(prompts):,} prompts in {len(first):,} classes: "
          f"{time.perf_counter() - clock:.1f} s")
    clock = time.perf_counter()
    table, index = search.sequence_losses(pred, first, seqs, 1 << 27, 27,
                                          decide_on=len(prompts))
    print(f"loss table {table.shape}: {time.perf_counter() - clock:.1f} s")
    clock = time.perf_counter()
    weights, strata = np.full(size, 1.0 / size), np.zeros(size, dtype=np.int64)
    loss, _, kl, kl_se, _ = landscape.evaluation_kl(table, index, task.log_prob(seqs),
                                                    weights, strata)
    rank, optimal, _ = landscape.classify(loss, table[:, index], weights=weights,
                                          strata=strata, comparisons=len(prompts))
    best = [first[i] for i in np.flatnonzero(optimal)][:5]
    print(f"estimates and tie rule: {time.perf_counter() - clock:.1f} s; optimal class "
          f"{best}, KL {kl[optimal].min():.4f} +- {kl_se[optimal][0]:.4f}; "
          f"{int(np.isinf(kl).sum()):,} impossible classes")


if __name__ == "__main__":
    main(*(t(a) for t, a in zip((int, int, float), sys.argv[1:])))
