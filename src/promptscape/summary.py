"""Markdown tables of a finished run, read from its artifacts (the README's results).

    python -m promptscape.summary [results]

prints, per experiment: the optimal prompt of each task under each predictor with its KL,
the proportion correct at the largest N, the largest KL difference between each network's
landscape and the Bayes one, each network's regret against Bayes, and token efficiency.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from promptscape import tables


def _read(paths, artifact):
    paths = sorted(paths)
    return tables.read(paths, artifact) if paths else None


def _shown(prompt: str) -> str:
    return f"`{prompt}`" if prompt else "(empty)"


def experiment_tables(root: Path, experiment: str) -> str:
    base = root / experiment
    land = _read(base.glob("landscape/*/*.parquet"), "landscape")
    rel = _read([base / "aggregate" / "reliability.parquet"], "reliability")
    out = [f"### `{experiment}`", ""]
    tasks = list(dict.fromkeys(rel["task"])) if rel is not None else sorted(land["task"].unique())
    rel_top = rel[rel["N"] == rel["N"].max()] if rel is not None else None
    lines = ["| task | predictor | optimal class | KL(s*) (nats) | method | proportion correct at "
             f"N={int(rel['N'].max())} [95% CI] | mean regret (nats) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    imd = dict(zip(rel["task"], rel["in_meta_distribution"])) if rel is not None else {}
    for task in tasks:
        for predictor in sorted(land["predictor"].unique(), key=["bayes", "lstm", "transformer"].index):
            sub = land[(land["task"] == task) & (land["predictor"] == predictor)]
            best = sub[sub["optimal"]].sort_values(["prompt_length", "prompt"])
            names = ", ".join(_shown(p) for p in best["prompt"][:6]) + (" ..." if len(best) > 6 else "")
            row = rel_top[(rel_top["task"] == task) & (rel_top["predictor"] == predictor)]
            correct = (f"{row['proportion_correct'].iloc[0]:.2f} [{row['ci_low'].iloc[0]:.2f}, "
                       f"{row['ci_high'].iloc[0]:.2f}]" if len(row) else "")
            regret = f"{row['regret_mean'].iloc[0]:.2e}" if len(row) else ""
            label = f"{task} ({'IMD' if imd.get(task) else 'OOMD'})"
            lines.append(f"| {label} | {predictor} | {names} | {best['kl'].min():.4g} | "
                         f"{sub['method'].iloc[0]} | {correct} | {regret} |")
    out += lines + [""]
    bayes = land[land["predictor"] == "bayes"].set_index(["task", "prompt"])["kl"]
    neural = land[land["predictor"] != "bayes"]
    if len(neural):
        diff = neural.assign(bayes_kl=bayes.reindex(pd.MultiIndex.from_frame(neural[["task", "prompt"]])).to_numpy())
        diff["gap"] = (diff["kl"] - diff["bayes_kl"]).abs()
        top = diff.loc[diff.groupby(["task", "predictor"])["gap"].idxmax()]
        out += ["| task | network | largest abs(KL_network - KL_bayes) over prompts (nats) | at prompt | KL network / Bayes |",
                "| --- | --- | --- | --- | --- |"]
        for r in top.itertuples():
            out.append(f"| {r.task} | {r.predictor} | {r.gap:.4g} | {_shown(r.prompt)} | "
                       f"{r.kl:.4g} / {r.bayes_kl:.4g} |")
        out.append("")
    eff = base / "aggregate" / "token_efficiency.parquet"
    if eff.exists():
        te = tables.read(eff)
        out += ["| task | predictor | optimal prompt (length <= L_max) | KL | typical length with median KL <= it | ratio |",
                "| --- | --- | --- | --- | --- | --- |"]
        for r in te.itertuples():
            typical = (f"> {int(r.max_typical_length)} (none in range)" if pd.isna(r.typical_length)
                       else int(r.typical_length))
            ratio = "" if pd.isna(r.length_ratio) else f"{r.length_ratio:.1f}"
            out.append(f"| {r.task} | {r.predictor} | {_shown(r.optimal_prompt)} | "
                       f"{r.optimal_kl:.4g} | {typical} | {ratio} |")
        out.append("")
    return "\n".join(out)


def regret_table(root: Path) -> str:
    rows = []
    for path in sorted((root / "models").glob("*/*/regret.parquet")):
        frame = tables.read(path, "predictor_regret")
        curve = tables.read(path.parent / "training_curve.parquet", "training_curve")
        rows.append(f"| {frame['source'].iloc[0]} | {frame['predictor'].iloc[0]} | "
                    f"{frame['regret'].mean():.2e} | {frame['regret'].max():.2e} (t={int(frame['regret'].idxmax())}) | "
                    f"{int(curve['step'].max()) + 1} |")
    if not rows:
        return ""
    return "\n".join(["| pretraining source | network | mean per-symbol regret vs Bayes (nats) | "
                      "largest per-position regret | training steps |",
                      "| --- | --- | --- | --- | --- |", *rows, ""])


def main(argv=None) -> None:
    root = Path((argv or sys.argv[1:] or ["results"])[0])
    experiments = sorted(p.parent.name for p in root.glob("*/aggregate"))
    print(regret_table(root))
    for experiment in experiments:
        print(experiment_tables(root, experiment))


if __name__ == "__main__":  # pragma: no cover
    main()
