"""Markdown tables of a finished run, read from its artifacts (the README's results).

    python -m promptscape.report.summary [--configfile config/config.yaml] [-o docs/results.md]

prints, per experiment of the config: the optimal prompt of each task under each predictor
with its KL, the proportion correct at the largest N, the largest KL difference between each
network's landscape and the Bayes one, each network's regret against Bayes, token
efficiency, and the predicted proportion correct against the measured one with the variance
decomposition; these are of replicate 0 of every network. A model with `replicates: k > 1`
adds a table of every replicate's optimal prompt and proportion correct; a fine-tuned
network (`models.<name>.post_training`) listed beside its base, a table of what fine-tuning
changed (optimal prompts, proportion correct, excess loss and forgetting).

The files read are the config's, listed by `promptscape.study.layout` exactly as the workflow
lists them, never found by globbing the results directory: an experiment, a task or a
predictor removed from the config does not appear, whatever its old files. A missing
results directory or artifact is an error naming it and the command that builds it (exit
status 1); output into a pipe that closes early (``| head``) ends quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from promptscape import prompts as prompts_lib
from promptscape.study import config as config_lib
from promptscape.study import arguments, identity, layout, tables
from promptscape.report import aggregate
from promptscape.validation import ConfigError

DEFAULT_CONFIG = "config/config.yaml"
# The read-back prior counts as recovered within this W1 (docs/science.md).
PRIOR_W1 = 0.01
# Edit effects: a truth smaller than this (nats) has no sign worth comparing.
SIGN_RESOLUTION = 0.01
# Exit status after a closed output pipe, as a process killed by SIGPIPE reports it.
EXIT_BROKEN_PIPE = 141


class SummaryError(Exception):
    """A problem the user can fix (missing results, a bad config): reported without a
    traceback, exit status 1."""


def required(study: config_lib.Study) -> list[tuple[str, str]]:
    """Every (path, artifact) the summary reads for `study`, in reading order."""
    out = [(path, artifact) for _, _, _, tabs in networks(study)
           for artifact, path in tabs.items()]
    for exp in study.experiments.values():
        out += [(path, "landscape") for path in layout.per_task(study, exp, "landscape")]
        out += [(layout.aggregate(study, exp, table), table)
                for table in ("reliability", "token_efficiency", "reliability_prediction",
                              "edits", "local_optima", "transfer")
                + (layout.STRATEGY_TABLES if exp.runs_strategies else ())
                + (("tuning",) if exp.tuning else ())]
        out += [(path, "tuner_optima") for path in layout.optimum_outputs(study, exp)]
        out += [(path, "prior_fit") for path in layout.prior_fits(study, exp)]
    return out


def networks(study: config_lib.Study) -> list[tuple[str, str, int, dict[str, str]]]:
    """(source, predictor, replicate, its tables) of every network the config trains, once
    each, in the config's order of experiments, predictors and replicates."""
    seen, out = set(), []
    for exp in study.experiments.values():
        for predictor, r in study.predictor_replicates(exp):
            if study.is_neural(predictor) and (exp.pretraining_name, predictor, r) not in seen:
                seen.add((exp.pretraining_name, predictor, r))
                out.append((exp.pretraining_name, predictor, r,
                            layout.network_tables(study, exp, predictor, r)))
    return out


def _read(study: config_lib.Study, paths, artifact: str) -> pd.DataFrame:
    """An artifact's files as one table, each first checked to have been built from this
    config (`identity.check_config`: its stored arguments against the config's)."""
    for path in [paths] if isinstance(paths, str) else paths:
        wildcards = layout.wildcards_of(study, artifact, path)
        try:
            identity.check_config(path, arguments.config_arguments(study, wildcards),
                                  study.results_dir)
        except identity.StaleArtifactError as error:
            raise SummaryError(str(error)) from None
    try:  # every file's data against its checksum (edited by hand), or unreadable
        return tables.read(paths, artifact)
    except identity.StaleArtifactError as error:
        raise SummaryError(str(error)) from None


def _shown(prompt: str) -> str:
    return f"`{prompt}`" if prompt else "(empty)"


def _configured(frame: pd.DataFrame, exp: config_lib.Experiment, path: str) -> pd.DataFrame:
    """The rows of the config's predictors and tasks, in the config's predictor order; an
    error when the file lacks one (it is older than the config)."""
    tasks = [t.name for t in exp.tasks]
    present = set(zip(frame["predictor"], frame["task"]))
    lacking = [f"{p}/{t}" for p in exp.predictors for t in tasks if (p, t) not in present]
    if lacking:
        raise SummaryError(f"{path} is older than the config: it has no rows of "
                           f"{', '.join(lacking)}; rebuild it with snakemake")
    frame = frame[frame["predictor"].isin(exp.predictors) & frame["task"].isin(tasks)]
    order = frame["predictor"].map(exp.predictors.index)
    return frame.assign(_order=order).sort_values(["_order", "task"], kind="stable").drop(
        columns="_order")


def kl_shown(row, fmt: str = "{:.4g}") -> str:
    """A landscape row's KL as the summary prints it: "below resolution (< r)" where an exact
    KL is at most its floating-point resolution (`below_resolution`), an estimate with its
    standard error ("0.0123 ± 0.004"), else the number."""
    if row["below_resolution"]:
        return f"below resolution (< {row['kl_resolution']:.1g})"
    if row.get("method") == "monte_carlo" and np.isfinite(row["kl"]):
        return f"{fmt.format(row['kl'])} ± {row['kl_se']:.2g}"
    return fmt.format(row["kl"])


def experiment_tables(study: config_lib.Study, exp: config_lib.Experiment) -> str:
    all_land = _read(study, layout.per_task(study, exp, "landscape"), "landscape")
    rel_path = layout.aggregate(study, exp, "reliability")
    every_rel = _configured(_read(study, rel_path, "reliability"), exp, rel_path)
    lacking = [m for m in exp.selections if m not in set(every_rel["selection"])]
    if lacking:
        raise SummaryError(f"{rel_path} is older than the config: it has no rows of "
                           f"dataset_selection {', '.join(lacking)}; rebuild it with snakemake")
    every_rel = every_rel[every_rel["selection"].isin(exp.selections)]
    all_rel = tables.random_selection(every_rel)
    land, rel = tables.first_replicate(all_land), tables.first_replicate(all_rel)
    out = [f"### `{exp.name}`", ""]
    tasks = sorted(t.name for t in exp.tasks)
    imd = {t.name: t.in_meta_distribution for t in exp.tasks}
    top_n = int(rel["N"].max())
    rel_top = rel[rel["N"] == top_n]
    lines = ["| task | predictor | optimal class | KL(s*) (nats) | of which the first task symbol "
             "| method | proportion correct at "
             f"N={top_n} [95% CI] | within {study.within_epsilon:g} nats of KL(s*) [95% CI] "
             "| mean regret (nats) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for task in tasks:
        for predictor in exp.predictors:
            sub = land[(land["task"] == task) & (land["predictor"] == predictor)]
            best = sub[sub["optimal"]].sort_values(["prompt_length", "prompt"],
                                                   key=prompts_lib.order_key)
            names = ", ".join(_shown(p) for p in best["prompt"][:6]) + (" ..." if len(best) > 6 else "")
            row = rel_top[(rel_top["task"] == task) & (rel_top["predictor"] == predictor)]
            correct = (f"{row['proportion_correct'].iloc[0]:.2f} [{row['ci_low'].iloc[0]:.2f}, "
                       f"{row['ci_high'].iloc[0]:.2f}]" if len(row) else "")
            within = (f"{row['within_epsilon'].iloc[0]:.2f} [{row['within_epsilon_ci_low'].iloc[0]:.2f}, "
                      f"{row['within_epsilon_ci_high'].iloc[0]:.2f}]" if len(row) else "")
            regret = f"{row['regret_mean'].iloc[0]:.2e}" if len(row) else ""
            label = f"{task} ({'IMD' if imd[task] else 'OOMD'})"
            top = best.loc[best["kl"].idxmin()]
            share = top["first_symbol_kl"] / top["kl"] if top["kl"] > 0 else 0.0
            first = ("" if top["below_resolution"] else f"{top['first_symbol_kl']:.3g}"
                     + (f" ({share:.0%})" if top["kl"] > 0 else ""))
            lines.append(f"| {label} | {predictor} | {names} | {kl_shown(top)} | {first} | "
                         f"{sub['method'].iloc[0]} | {correct} | {within} | {regret} |")
    out += lines + [""]
    neural = land[land["predictor"] != "bayes"]
    if "bayes" in exp.predictors and len(neural):
        bayes = land[land["predictor"] == "bayes"].set_index(["task", "prompt"])["kl"]
        diff = neural.assign(bayes_kl=bayes.reindex(pd.MultiIndex.from_frame(neural[["task", "prompt"]])).to_numpy())
        diff["gap"] = (diff["kl"] - diff["bayes_kl"]).abs()
        top = diff.loc[diff.groupby(["task", "predictor"])["gap"].idxmax()]
        top = top.assign(_order=top["predictor"].map(exp.predictors.index)).sort_values(
            ["task", "_order"], kind="stable")
        out += ["| task | network | largest abs(KL_network - KL_bayes) over prompts (nats) | at prompt | KL network / Bayes |",
                "| --- | --- | --- | --- | --- |"]
        for r in top.itertuples():
            out.append(f"| {r.task} | {r.predictor} | {r.gap:.4g} | {_shown(r.prompt)} | "
                       f"{r.kl:.4g} / {r.bayes_kl:.4g} |")
        out.append("")
    te_path = layout.aggregate(study, exp, "token_efficiency")
    te = tables.first_replicate(_configured(_read(study, te_path, "token_efficiency"), exp,
                                                te_path))
    land_rows = {(r["predictor"], r["task"], r["prompt"]): r
                 for r in land[land["below_resolution"]].to_dict("records")}
    out += ["| task | predictor | optimal prompt (length <= L_max) | KL | typical length with median KL <= it | median | ratio |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in te.itertuples():
        typical = (f"> {int(r.max_typical_length)} (none in range)" if pd.isna(r.typical_length)
                   else int(r.typical_length))
        ratio = "" if pd.isna(r.length_ratio) else f"{r.length_ratio:.1f}"
        median = "exact" if r.typical_method == "exact_counts" else "sampled"
        optimal = land_rows.get((r.predictor, r.task, r.optimal_prompt))
        shown = (kl_shown(optimal) if optimal is not None and optimal["below_resolution"]
                 else f"{r.optimal_kl:.4g}")
        out.append(f"| {r.task} | {r.predictor} | {_shown(r.optimal_prompt)} | "
                   f"{shown} | {typical} | {median} | {ratio} |")
    out.append("")
    out += prediction_lines(study, exp)
    out += replicate_lines(exp, all_land, all_rel)
    if len(exp.selections) > 1:
        cho_path = layout.aggregate(study, exp, "choices")
        cho = tables.first_replicate(_configured(_read(study, cho_path, "choices"), exp,
                                                 cho_path))
        out += selection_lines(exp, tables.first_replicate(every_rel), cho)
    if exp.runs_strategies:
        path = layout.aggregate(study, exp, "strategies")
        out += strategy_lines(exp, _configured(_read(study, path, "strategies"), exp, path))
        path = layout.aggregate(study, exp, "edit_effects")
        out += edit_effect_lines(exp, _configured(_read(study, path, "edit_effects"), exp, path))
        path = layout.aggregate(study, exp, "hill_climb_optima")
        out += hill_climb_lines(_configured(_read(study, path, "hill_climb_optima"), exp, path))
    if exp.probes_prior:
        out += prior_lines(exp, _read(study, layout.prior_fits(study, exp), "prior_fit"),
                           land)
    out += post_training_lines(study, exp, land, rel)
    if exp.tuning:
        out += tuning_lines(exp, _read(study, layout.aggregate(study, exp, "tuning"), "tuning"))
        out += optimum_lines(_read(study, layout.optimum_outputs(study, exp), "tuner_optima"))
    out += edit_lines(exp, *(_read(study, layout.aggregate(study, exp, name), name)
                             for name in ("edits", "local_optima", "transfer")),
                      left_out=layout.transfer_left_out(study, exp))
    return "\n".join(out)


def edit_lines(exp: config_lib.Experiment, edits: pd.DataFrame, optima: pd.DataFrame,
               transfer: pd.DataFrame, left_out: list[dict] = ()) -> list[str]:
    """The edit analysis on replicate 0: which edit kinds help IMD and OOMD tasks (the share of a
    kind's single edits that lower the KL, averaged over predictors and tasks, and the median
    ΔKL), whether the networks' optima transfer to Bayes and back, and how many local
    optima and plateaus each landscape has."""
    from promptscape.edits import EDIT_KINDS

    edits = tables.first_replicate(_configured(edits, exp, "edits"))
    optima = tables.first_replicate(_configured(optima, exp, "local_optima"))
    tasks = [t.name for t in exp.tasks]
    transfer = transfer[transfer["source_predictor"].isin(exp.predictors)
                        & transfer["target_predictor"].isin(exp.predictors)
                        & transfer["source_task"].isin(tasks)
                        & transfer["target_task"].isin(tasks)]
    out = ["Single edits (table edits, replicate 0): per edit kind, the share of its edits "
           "that lower the KL (by the landscape's rule, column decided_by: beyond "
           "kl_resolution where exact, by the paired standard error where estimated), "
           "averaged over predictors and tasks, and the median of "
           "the per-(predictor, task) median ΔKL (nats); a kind that needs a tied most or "
           "least probable symbol has no rows for that task.", "",
           "| edit kind | IMD: share improving | IMD: median ΔKL | OOMD: share improving | "
           "OOMD: median ΔKL |", "| --- | --- | --- | --- | --- |"]
    helps = {True: [], False: []}
    for kind in (k for k in EDIT_KINDS if k in set(edits["edit_kind"])):
        cells = []
        for imd in (True, False):
            part = edits[(edits["edit_kind"] == kind) & (edits["in_meta_distribution"] == imd)]
            share = part["share_improving"].astype(float).mean() if len(part) else np.nan
            median = part["delta_median"].astype(float).median() if len(part) else np.nan
            cells += ["" if np.isnan(share) else f"{share:.2f}",
                      "" if np.isnan(median) else f"{median:.3g}"]
            if share > 0.5:
                helps[imd].append(kind)
        out.append(f"| {kind} | " + " | ".join(cells) + " |")
    out += ["", "Kinds most of whose edits help: IMD tasks "
            + (", ".join(helps[True]) or "none") + "; OOMD tasks "
            + (", ".join(helps[False]) or "none") + ".", ""]
    lines = aggregate.transfer_lines(transfer)
    if lines:
        out += ["Transfer of optimal prompts (table transfer, replicate 0): "
                + "; ".join(lines) + ".", ""]
    if left_out:  # layout.transfer_left_out: KLs over other prompt spaces or task lengths
        out += [f"Transfer across pretraining leaves out "
                f"{sum(o['pairs'] for o in left_out)} landscape pair(s) that share a task: "
                + "; ".join(f"experiment {o['experiment']} ({', '.join(o['tasks'])}: "
                            f"{o['pairs']} pairs; {o['reason']})" for o in left_out)
                + ".", ""]
    out += ["| predictor | task | local optima | plateaus | of them global | worst local "
            "optimum above the optimum (nats) | largest basin (prompts) |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for (predictor, task), part in optima.groupby(
            ["predictor", "task"], sort=False):
        glob = part.loc[part["optimal"], "plateau"].nunique()
        out.append(f"| {predictor} | {task} | {len(part)} | {part['plateau'].nunique()} | "
                   f"{glob} | {part['kl_above_optimum'].max():.3g} | "
                   f"{int(part['basin_size'].max())} |")
    return out + [""]


def tuning_lines(exp: config_lib.Experiment, table: pd.DataFrame) -> list[str]:
    """Per (network, task, N) of an experiment that tunes: each tuner's median KL at its
    largest step budget and at its best one (fixed settings), with the seeds below the exact
    hard optimum and below their searched hard prompt, the shares that overfit (against the
    searched prompt, and along the tuner's own path) and that ended above the unprompted
    network; each tuner's own optimum (trained on the task itself) beside it; then, where
    settings were chosen on held-out data, the same for those rows."""
    plan = exp.tuning
    names = [n for n, _ in plan.tuners]
    rates = {n: s.get("learning_rate", plan.learning_rate) for n, s in plan.tuners}
    shown_rates = ", ".join(sorted({f"{r:g}" for n, r in rates.items() if n != "none"}))
    fixed = table[table["settings"] == "fixed"]
    top = fixed[fixed["tuning_steps"]
                == fixed.groupby("tuner")["tuning_steps"].transform("max")]
    best = (fixed.sort_values(["kl_median", "tuning_steps"], kind="stable")
            .groupby(["predictor", "replicate", "task", "N", "tuner"], sort=False).head(1)
            .set_index(["predictor", "replicate", "task", "N", "tuner"]))
    out = [f"Tuning on D_N alone ({int(plan.steps)} Adam steps at learning rate "
           f"{shown_rates}, K = {plan.prompt_length}; docs/science.md): median KL (nats) over "
           f"{plan.num_seeds} seeds at the last step budget, then at the best budget "
           "(steps); in brackets the seeds below the exact hard optimum at L_max / below "
           "their own searched hard prompt, the share that overfit (a lower loss on D_N "
           "than the searched prompt's, a higher KL), the share whose own path overfit (KL "
           "rose while the loss on D_N fell), and the share worse than the unprompted "
           "network; last, the tuner's own optimum (trained on the task itself, N = inf).",
           "", "| network | task | N | hard optimum | searched prompt | "
           + " | ".join(names) + " |",
           "| --- | --- | --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]

    def cell(r, b) -> str:
        return (f"{r['kl_median']:.3g}, best {b['kl_median']:.3g} ({int(b['tuning_steps'])}) "
                f"({int(r['below_optimum'])}/{int(r['below_search'])} of {int(r['seeds'])}; "
                f"overfit {r['proportion_overfit']:.2f}, path "
                f"{r['proportion_overfit_path']:.2f}, worse than none "
                f"{r['proportion_worse_than_none']:.2f}; optimum "
                f"{r['tuner_optimum_kl']:.3g})")

    for (predictor, replicate, task, N), part in top.groupby(
            ["predictor", "replicate", "task", "N"], sort=False):
        part = part.set_index("tuner")
        shown = predictor + (f" r{replicate}" if replicate else "")
        cells = [cell(part.loc[n], best.loc[(predictor, replicate, task, N, n)])
                 if n in part.index else "" for n in names]
        out.append(f"| {shown} | {task} | {int(N)} | {part.at['hard_optimum', 'kl_median']:.3g} | "
                   f"{part.at['hard_search', 'kl_median']:.3g} | " + " | ".join(cells) + " |")
    held = table[table["settings"] == "holdout"]
    if plan.selection is not None:
        out += ["", f"Settings chosen on held-out data (a seeded {plan.selection['holdout']:g} "
                "of D_N held out, each learning rate of "
                f"{plan.selection['learning_rates']} trained on the rest, the rate and step "
                "budget with the least held-out loss, then trained on all of D_N): median KL, "
                "the median chosen rate and steps, the shares overfit along the path and worse "
                "than none. A missing (network, task, N) held nothing out: D_N too small "
                "(the tune_network log says so).", "",
                "| network | task | N | " + " | ".join(n for n in names if n != "none") + " |",
                "| --- | --- | --- | " + " | ".join("---" for n in names if n != "none") + " |"]
        for (predictor, replicate, task, N), part in held.groupby(
                ["predictor", "replicate", "task", "N"], sort=False):
            part = part.set_index("tuner")
            cells = [f"{part.at[n, 'kl_median']:.3g} (rate "
                     f"{part.at[n, 'chosen_learning_rate_median']:.3g}, "
                     f"{part.at[n, 'chosen_steps_median']:g} steps; path "
                     f"{part.at[n, 'proportion_overfit_path']:.2f}, worse than none "
                     f"{part.at[n, 'proportion_worse_than_none']:.2f})"
                     if n in part.index else "" for n in names if n != "none"]
            shown = predictor + (f" r{replicate}" if replicate else "")
            out.append(f"| {shown} | {task} | {int(N)} | " + " | ".join(cells) + " |")
    return out + [""]


def optimum_lines(optima: pd.DataFrame) -> list[str]:
    """Each tuner's own optimum per (network, task), prompt-space tuners at each K: its KL,
    the learning rate and steps that reached it, where it converged, the spread over its
    starts and the start that won."""
    out = ["Each tuner's own optimum (trained on the task itself, N = inf; docs/science.md): "
           "KL (nats), the learning rate and Adam steps of the best run, the step at which it "
           "converged (- : not within max_steps), the objective's range over its starts and "
           "the start that won.", "",
           "| network | task | tuner | K | KL | learning rate | steps | converged | "
           "restart spread | start |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in optima.itertuples():
        shown = r.predictor + (f" r{r.replicate}" if r.replicate else "")
        rate = "-" if pd.isna(r.learning_rate) else f"{r.learning_rate:g}"
        converged = "-" if pd.isna(r.converged_step) else str(int(r.converged_step))
        start = r.start + (f" `{r.start_prompt}`" if isinstance(r.start_prompt, str)
                           and r.start_prompt else "")
        out.append(f"| {shown} | {r.task} | {r.tuner} | {int(r.prompt_length)} | {r.kl:.3g} | "
                   f"{rate} | {int(r.steps)} | {converged} | {r.restart_spread:.3g} | "
                   f"{start} |")
    return out + [""]


def strategy_lines(exp: config_lib.Experiment, table: pd.DataFrame) -> list[str]:
    """Per (task, predictor, N) of an experiment with search strategies: each strategy's
    proportion correct and proportion that found the empirical optimum at its largest
    budget (exhaustive: at all prompts), and its search and estimation errors; then random
    search's found-best count against its exact expectation, per budget."""
    names = [n for n in exp.strategies if n in set(table["strategy"])]
    top = table[table["budget"] == table.groupby("strategy")["budget"].transform("max")]
    budgets = {n: int(top.loc[top["strategy"] == n, "budget"].iloc[0]) for n in names}
    out = ["Search strategies at their largest budget: proportion correct / proportion that "
           "found the empirical optimum (search errors, estimation errors, of the seeds).", "",
           "| task | predictor | N | " + " | ".join(f"{n} ({budgets[n]:,})" for n in names)
           + " |", "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for task in [t.name for t in exp.tasks]:
        for predictor in exp.predictors:
            for N in sorted(top.loc[top["task"] == task, "N"].unique()):
                sub = top[(top["task"] == task) & (top["predictor"] == predictor)
                          & (top["N"] == N)].set_index("strategy")
                cells = [f"{sub.at[n, 'proportion_correct']:.2f} / "
                         f"{sub.at[n, 'proportion_found_best']:.2f} "
                         f"({int(sub.at[n, 'search_error'])}, "
                         f"{int(sub.at[n, 'estimation_error'])})" if n in sub.index else ""
                         for n in names]
                out.append(f"| {task} | {predictor} | {int(N)} | " + " | ".join(cells) + " |")
    rnd = table[table["strategy"] == "random"]
    if len(rnd):
        out += ["", "Random search against its exact law 1 - C(P - m, B) / C(P, B), summed "
                "over every (task, predictor, N): runs that found the empirical optimum, "
                "the expected number and its standard deviation (at most the binomial one "
                "of each cell's mean probability; the seeds' own m vary).", "",
                "| budget | found | expected | sd at most |", "| --- | --- | --- | --- |"]
        for budget, group in rnd.groupby("budget"):
            p, n = group["expected_found_best"], group["seeds"]
            sd = float(np.sqrt((n * p * (1 - p)).sum()))
            out.append(f"| {int(budget):,} | {int(group['found_best'].sum())} of "
                       f"{int(n.sum())} | {float((p * n).sum()):.1f} | {sd:.1f} |")
    return out + [""]


def prior_lines(exp: config_lib.Experiment, fits: pd.DataFrame,
                land: pd.DataFrame) -> list[str]:
    """Per predictor (replicate 0): the prior read back (`prior_fit`), at each probe length
    the family of least held-out error: the fewest queries whose W1 to the true prior is at
    most `PRIOR_W1`, and the selected fit at the largest probe length; beside it the tasks
    where the predictor's optimal class is not within the Bayes predictor's (a network that
    breaks Bayes's ties among permutations keeps part of its class: not a difference)."""
    fits = tables.first_replicate(fits)
    bayes = land[land["predictor"] == "bayes"]
    best = {}
    for (predictor, task), sub in land.groupby(["predictor", "task"]):
        best[predictor, task] = frozenset(sub.loc[sub["optimal"], "prompt"])
    out = [f"The pretraining prior read back from each predictor's next-symbol predictions "
           f"(probe_prior): the fewest queries whose fit (at each probe length, the family of "
           f"least held-out error) lies within W1 {PRIOR_W1:g} of the true prior, and the "
           "selected fit.", "",
           "| predictor | queries to W1 <= 0.01 | selected fit | components | held-out error | "
           "W1 (selected) | tasks whose optimal prompts are not all optimal for Bayes |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for predictor in exp.predictors:
        sub = fits[fits["predictor"] == predictor]
        if sub.empty:
            continue
        per_length = sub.sort_values(["probe_length", "heldout_error", "family"]).groupby(
            "probe_length").head(1)
        within = per_length[per_length["w1"] <= PRIOR_W1]
        first = f"{int(within['queries'].min())}" if len(within) else (
            f"> {int(per_length['queries'].max())}")
        chosen = sub[sub["selected"]].iloc[0]
        resolution = (f" (grid {chosen['w1_resolution']:.2g})"
                      if chosen["w1_resolution"] > 0 else "")
        differs = ("" if predictor == "bayes" or bayes.empty else ", ".join(
            t.name for t in exp.tasks
            if not best.get((predictor, t.name), frozenset())
            <= best.get(("bayes", t.name), frozenset())) or "none")
        out.append(f"| {predictor} | {first} | {chosen['family']} | "
                   f"{int(chosen['components'])} | {chosen['heldout_error']:.2e} | "
                   f"{chosen['w1']:.3g}{resolution} | {differs} |")
    return out + [""]


def edit_effect_lines(exp: config_lib.Experiment, table: pd.DataFrame) -> list[str]:
    """The observational estimate of edit effects against the truth (edit_effects): per
    (task, predictor, N, edit kind) the exact mean ΔKL over all edges of the kind, the
    estimates from the strategies' steps, and the raw mean's error split into D_N noise and
    selection; then one line on how far each estimate is from the truth overall."""
    if not len(table):
        return ["No strategy step was one edit of its parent: no edit effects.", ""]
    out = ["Edit effects, observed against the truth (nats; docs/science.md): the mean exact ΔKL over "
           "all edges of each kind, and what the strategies' single-edit steps estimate of it "
           "from L_N (pooled over seeds and strategies): the raw mean, least squares with "
           "covariates (naive) and propensity-weighted; the raw mean's error split into D_N "
           "noise and selection (which edges the strategies visit).", "",
           "| task | predictor | N | kind | visits | truth | raw | naive | weighted | noise "
           "| selection |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = {t.name: i for i, t in enumerate(exp.tasks)}
    shown = table.assign(_task=table["task"].map(order)).sort_values(
        ["_task", "predictor", "replicate", "N", "edit_kind"], kind="stable")
    for r in shown.itertuples():
        out.append(f"| {r.task} | {r.predictor} | {int(r.N)} | {r.edit_kind} | {int(r.visits)} "
                   f"| {r.all_kl:+.3f} | {r.visited_loss:+.3f} | {r.naive:+.3f} | "
                   f"{r.weighted:+.3f} | {r.noise_error:+.3f} | {r.selection_error:+.3f} |")
    errors = {name: float(table[column].abs().mean()) for name, column in
              (("raw mean", "raw_error"), ("naive", "naive_error"),
               ("weighted", "weighted_error"))}
    noise, selection = table["noise_error"].abs().sum(), table["selection_error"].abs().sum()
    clear = table[table["all_kl"].abs() > SIGN_RESOLUTION]
    sign = int((np.sign(clear["weighted"]) == np.sign(clear["all_kl"])).sum())
    out += ["", "Mean absolute error over the rows: "
            + ", ".join(f"{name} {value:.3f}" for name, value in errors.items())
            + f" nats; selection is {selection / (noise + selection):.0%} of the raw mean's "
            f"absolute error (noise {noise / (noise + selection):.0%}); the weighted estimate "
            f"has the truth's sign in {sign} of the {len(clear)} rows whose truth exceeds "
            f"{SIGN_RESOLUTION:g} nats in size.", ""]
    return out


def hill_climb_lines(table: pd.DataFrame) -> list[str]:
    """One line per predictor: how many hill-climbing runs missed the empirical optimum at
    their largest budget, and how many of those ended on a local optimum of L_N (their own
    neighbourhood) and of the exact landscape."""
    if not len(table):
        return []
    out = []
    for predictor, part in table.groupby("predictor", sort=False):
        budgets = ", ".join(f"{int(b):,}" for b in sorted(part["budget"].unique()))
        missed = int(part["missed"].sum())
        out.append(f"Hill climbing, {predictor} (budget {budgets}): missed the empirical "
                   f"optimum in {missed} of {int(part['runs'].sum())} runs; of those, "
                   f"{int(part['missed_empirical_local_optimum'].sum())} ended on a local "
                   "optimum of L_N on their D_N (their own neighbourhood) and "
                   f"{int(part['missed_exact_local_optimum'].sum())} on one of the exact "
                   f"landscape ({int(part['missed_both_local_optimum'].sum())} on both).")
    return out + [""]


def selection_lines(exp: config_lib.Experiment, rel: pd.DataFrame,
                    cho: pd.DataFrame) -> list[str]:
    """Per (task, predictor, N) of an experiment with several dataset-selection methods:
    each method's proportion correct [95% CI] and mean regret, marked ▲ (▼) where the 95%
    interval of its difference from random's (Newcombe's, for independent samples) lies
    above (below) 0; then per (task, predictor) the prompt each method chooses most often at
    the largest N (★: in the optimal class)."""
    methods = list(exp.selections)
    top_n = int(cho["N"].max())
    modal = ["| task | predictor | " + " | ".join(
                 f"{m}: most chosen at N={top_n} (share)" for m in methods) + " |",
             "| --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for task in sorted(t.name for t in exp.tasks):
        for predictor in exp.predictors:
            cells = []
            for m in methods:
                sub = cho[(cho["task"] == task) & (cho["predictor"] == predictor)
                          & (cho["selection"] == m) & (cho["N"] == top_n)]
                if not len(sub):
                    cells.append("")
                    continue
                row = sub.sort_values(["count", "rank"], ascending=[False, True]).iloc[0]
                star = " ★" if row["optimal"] else ""
                cells.append(f"{_shown(row['prompt'])}{star} ({row['frequency']:.2f})")
            modal.append(f"| {task} | {predictor} | " + " | ".join(cells) + " |")
    out = ["| task | predictor | N | " + " | ".join(
               f"{m}: proportion correct [95% CI], mean regret" for m in methods) + " |",
           "| --- | --- | --- | " + " | ".join("---" for _ in methods) + " |"]
    for task in sorted(t.name for t in exp.tasks):
        for predictor in exp.predictors:
            sub = rel[(rel["task"] == task) & (rel["predictor"] == predictor)]
            for N in sorted(sub["N"].unique()):
                cells = []
                base = sub[(sub["N"] == N) & (sub["selection"] == "random")].iloc[0]
                for m in methods:
                    row = sub[(sub["N"] == N) & (sub["selection"] == m)].iloc[0]
                    low, high = aggregate.newcombe_difference(row["correct"], row["seeds"],
                                                              base["correct"], base["seeds"])
                    mark = " ▲" if low > 0 else " ▼" if high < 0 else ""
                    cells.append(f"{row['proportion_correct']:.2f} "
                                 f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]{mark}, "
                                 f"{row['regret_mean']:.2e}")
                out.append(f"| {task} | {predictor} | {int(N)} | " + " | ".join(cells) + " |")
    return out + [""] + modal + [""]


def prediction_lines(study: config_lib.Study, exp: config_lib.Experiment) -> list[str]:
    """Per (task, predictor): the variance decomposition, the first N at which search is
    predicted right in half and in 90% of datasets, and how many of its N the prediction
    puts inside the measured Wilson interval (by method), with the largest miss."""
    path = layout.aggregate(study, exp, "reliability_prediction")
    pred = tables.first_replicate(_configured(_read(study, path, "reliability_prediction"),
                                              exp, path))
    out = ["| task | predictor | gap (nats) | paired sd (nats) | classes within 2 SE at "
           f"N={study.prediction['reference_N']} | predicted >= 0.5 from N | >= 0.9 from N | "
           "inside the 95% CI: exact, normal | largest miss (N, predicted vs measured) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def shown(value, fmt="{:.3g}"):
        return "-" if pd.isna(value) else fmt.format(value)

    for (task, predictor), sub in pred.groupby(["task", "predictor"], sort=False):
        first = sub.iloc[0]
        inside = ", ".join(
            f"{int(part['inside_interval'].sum())}/{len(part)}" if len(part) else "-"
            for part in (sub[sub["method"] == m] for m in ("exact", "normal")))
        plug_in = sub[sub["method"] == "plug_in"]  # exact over the evaluation set only
        if len(plug_in):
            inside += f" (plug-in {int(plug_in['inside_interval'].sum())}/{len(plug_in)})"
        miss = (sub["predicted_proportion_correct"] - sub["measured_proportion_correct"]).abs()
        worst = sub.loc[miss.idxmax()]
        out.append(f"| {task} | {predictor} | {shown(first['gap'])} | "
                   f"{shown(first['paired_sd'])} | {int(first['classes_within_2se'])} | "
                   f"{shown(first['first_n_half'], '{:.0f}')} | "
                   f"{shown(first['first_n_ninety'], '{:.0f}')} | {inside} | "
                   f"N={int(worst['N'])}: {worst['predicted_proportion_correct']:.2f} vs "
                   f"{worst['measured_proportion_correct']:.2f} ({worst['method']}) |")
    return out + [""]


def replicate_lines(exp: config_lib.Experiment, land: pd.DataFrame,
                    rel: pd.DataFrame) -> list[str]:
    """Per (task, predictor) with more than one replicate: each replicate's optimal prompt
    (its least canonical member) and proportion correct at the largest N, and their range.
    Nothing when every predictor has one replicate."""
    if land["replicate"].max() == 0:
        return []
    top_n = int(rel["N"].max())
    rel_top = rel[rel["N"] == top_n]
    out = [f"| task | predictor | replicates | optimal prompt of each replicate | proportion "
           f"correct at N={top_n}, each replicate | range |",
           "| --- | --- | --- | --- | --- | --- |"]
    for task in sorted(t.name for t in exp.tasks):
        for predictor in exp.predictors:
            sub = land[(land["task"] == task) & (land["predictor"] == predictor)]
            if sub["replicate"].nunique() < 2:
                continue
            best = (sub[sub["optimal"]].sort_values(["replicate", "prompt_length", "prompt"],
                                                    key=prompts_lib.order_key)
                    .groupby("replicate")["prompt"].first())
            shares = (rel_top[(rel_top["task"] == task) & (rel_top["predictor"] == predictor)]
                      .sort_values("replicate")["proportion_correct"])
            out.append(f"| {task} | {predictor} | {len(best)} | "
                       f"{', '.join(_shown(p) for p in best)} | "
                       f"{', '.join(f'{v:.2f}' for v in shares)} | "
                       f"{shares.min():.2f}-{shares.max():.2f} |")
    return out + [""]


def post_training_lines(study: config_lib.Study, exp: config_lib.Experiment,
                        land: pd.DataFrame, rel: pd.DataFrame) -> list[str]:
    """Per fine-tuned network of the experiment (`models.<name>.post_training`) whose base
    is among its predictors (replicate 0): each task's optimal prompt and KL(s*) before and
    after fine-tuning, the proportion correct at the largest N, and the excess loss on the
    post-training source and on the pretraining source (forgetting) against their exact
    Bayes predictors, in nats per symbol."""
    pairs = [(p, study.post_training(p)) for p in exp.predictors
             if study.post_training(p) is not None and study.post_training(p).base
             in exp.predictors]
    if not pairs:
        return []
    top_n = int(rel["N"].max())

    def optimum(predictor, task):
        sub = land[(land["task"] == task) & (land["predictor"] == predictor)]
        best = sub[sub["optimal"]].sort_values(["prompt_length", "prompt"],
                                               key=prompts_lib.order_key)
        row = rel[(rel["task"] == task) & (rel["predictor"] == predictor)
                  & (rel["N"] == top_n)]
        shown = ", ".join(_shown(x) for x in best["prompt"][:3]) + (
            " ..." if len(best) > 3 else "")
        return (set(best["prompt"]), shown, kl_shown(best.loc[best["kl"].idxmin()]),
                f"{row['proportion_correct'].iloc[0]:.2f}" if len(row) else "")

    out = ["| fine-tuned network | base | fine-tuned on | task | optimal class before -> after "
           "| changed | KL(s*) before -> after (nats) | proportion correct at "
           f"N={top_n} before -> after |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, post in pairs:
        for task in sorted(t.name for t in exp.tasks):
            before, after = optimum(post.base, task), optimum(name, task)
            out.append(f"| {name} | {post.base} | {post.source} ({post.tuner}, {post.steps} "
                       f"steps) | {task} | {before[1]} -> {after[1]} | "
                       f"{'no' if before[0] == after[0] else 'yes'} | {before[2]} -> "
                       f"{after[2]} | {before[3]} -> {after[3]} |")
    out += ["", "| fine-tuned network | excess loss on its fine-tuning source, first -> last "
            "10% of steps (nats/symbol) | on the pretraining source (forgetting), first -> "
            "last 10% | final network's held-out regret on the pretraining source: base -> "
            "fine-tuned (nats/symbol) |", "| --- | --- | --- | --- |"]
    for name, post in pairs:
        paths, base = (layout.network_tables(study, exp, m) for m in (name, post.base))
        curve = _read(study, paths["training_curve"], "training_curve")
        regrets = [_read(study, tabs["predictor_regret"], "predictor_regret")["regret"].mean()
                   for tabs in (base, paths)]
        cells = []
        for on in (post.source, exp.pretraining_name):
            rows = curve[curve["evaluated_on"] == on].sort_values("step")["regret"]
            k = max(1, len(rows) // 10)
            cells.append(f"{rows.iloc[:k].mean():.2e} -> {rows.iloc[-k:].mean():.2e}")
        out.append(f"| {name} | {cells[0]} | {cells[1]} | {regrets[0]:.2e} -> "
                   f"{regrets[1]:.2e} |")
    return out + [""]


def regret_table(study: config_lib.Study) -> str:
    rows = []
    replicated = any(r for _, _, r, _ in networks(study))
    for source, predictor, r, paths in networks(study):
        frame = _read(study, paths["predictor_regret"], "predictor_regret")
        curve = _read(study, paths["training_curve"], "training_curve")
        name = f"{predictor} (replicate {r})" if replicated else predictor
        rows.append(f"| {source} | {name} | "
                    f"{frame['regret'].mean():.2e} | {frame['regret'].max():.2e} (t={int(frame['regret'].idxmax())}) | "
                    # 0 for an untrained network (pretrained: false); a post-trained
                    # network's steps on its post-training source
                    f"{int((curve['evaluated_on'] != curve['source']).sum()) or len(curve)} |")
    if not rows:
        return ""
    return "\n".join(["| pretraining source | network | mean per-symbol regret vs Bayes (nats) | "
                      "largest per-position regret | training steps |",
                      "| --- | --- | --- | --- | --- |", *rows, ""])


def summary(study: config_lib.Study, configfile: str = DEFAULT_CONFIG) -> str:
    """The Markdown of the whole study; a SummaryError when an artifact is missing."""
    build = f"snakemake --cores 2 --configfile {configfile}"
    results = study.results_dir
    if not os.path.isdir(results):
        raise SummaryError(f"results directory {results!r} (results_dir of {configfile}) does "
                           f"not exist in {os.getcwd()}; build the results with: {build}")
    missing = [(path, artifact) for path, artifact in required(study) if not os.path.exists(path)]
    if missing:
        # Each by its artifact (docs/artifacts.md); snakemake finds the rule that writes it.
        shown = [f"  {path} (artifact {artifact})" for path, artifact in missing[:20]]
        if len(missing) > 20:
            shown.append(f"  ... and {len(missing) - 20} more")
        raise SummaryError(f"{len(missing)} artifact(s) of {configfile} missing:\n"
                           + "\n".join(shown) + f"\nbuild them with: {build}")
    parts = [regret_table(study)] + [experiment_tables(study, exp)
                                     for exp in study.experiments.values()]
    return "".join(part + "\n" for part in parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m promptscape.report.summary",
        description="Markdown tables of a finished run (docs/results.md), read from the "
                    "artifacts the config lists under its results_dir.")
    p.add_argument("--configfile", default=DEFAULT_CONFIG, metavar="PATH",
                   help=f"the workflow's config file (default: {DEFAULT_CONFIG})")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="write the Markdown to PATH (default: standard output)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="read the artifacts under DIR instead of the config's results_dir")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if not os.path.exists(args.configfile):
            raise SummaryError(f"config file {args.configfile} not found")
        try:
            study = config_lib.load_file(args.configfile)
        except ConfigError as error:
            raise SummaryError(f"{args.configfile}: {error}") from None
        if args.results_dir is not None:
            study = dataclasses.replace(study, raw={**study.raw, "results_dir": args.results_dir})
        text = summary(study, args.configfile)
    except SummaryError as error:
        print(f"promptscape.report.summary: {error}", file=sys.stderr)
        return 1
    if args.output is not None:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        return 0
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader closed the pipe (| head): stop quietly. Point stdout at devnull so that
        # the interpreter's final flush does not report the closed pipe either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
