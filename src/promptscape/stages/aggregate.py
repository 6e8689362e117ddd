"""Stage `aggregate_search`: selections, reliability and choices of one experiment."""

from __future__ import annotations

import logging

from promptscape import aggregate, tables

log = logging.getLogger("promptscape")


def aggregate_search(*, searches: list[str], landscapes: list[str], selections: str,
                     reliability: str, choices: str, in_meta_distribution: dict) -> None:
    found = tables.read(searches, "search")
    land = tables.read(landscapes, "landscape")
    unlabelled = sorted(set(found["task"]) - set(in_meta_distribution))
    if unlabelled:
        raise ValueError(f"tasks without an IMD/OOMD label: {unlabelled}")
    sel = aggregate.selections(found, land)
    rel = aggregate.reliability(sel)
    cho = aggregate.choices(sel, land)
    for frame in (rel, cho):
        frame["in_meta_distribution"] = frame["task"].map(in_meta_distribution).astype(bool)
    tables.write(sel, "selections", selections)
    tables.write(rel, "reliability", reliability)
    tables.write(cho, "choices", choices)
    top = rel[rel["N"] == rel["N"].max()]
    for row in top.itertuples():
        log.info("%s %s N=%d: proportion correct %.2f [%.2f, %.2f], mean regret %.2e nats",
                 row.predictor, row.task, row.N, row.proportion_correct, row.ci_low,
                 row.ci_high, row.regret_mean)
