"""Code identities (promptscape.pipeline.provenance): static closures, their hash, and a tracing
check that every stage runs only code inside its job's declared identity."""

from __future__ import annotations

import ast
import copy
import shutil
from pathlib import Path

import pytest

from promptscape.study import config as config_lib
from promptscape.neural import families, tuners
from promptscape.study import tables
from promptscape.pipeline import provenance
from promptscape import prior as prior_lib
from promptscape import strategies as strategies_lib
from promptscape.pipeline.stages import aggregate_stage
from promptscape.pipeline.stages import datasets_stage
from promptscape.pipeline.stages import edit_effects_stage
from promptscape.pipeline.stages import edits_stage
from promptscape.pipeline.stages import efficiency_stage
from promptscape.pipeline.stages import figures_stage
from promptscape.report import catalog
from promptscape.pipeline.stages import landscape_stage
from promptscape.pipeline.stages import prediction_stage
from promptscape.pipeline.stages import prior_stage
from promptscape.pipeline.stages import search_stage
from promptscape.pipeline.stages import strategies_stage
from promptscape.pipeline.stages import training_stage
from promptscape.pipeline.stages import tuning_stage

REPO = Path(__file__).resolve().parents[3]
STAGES = REPO / "src" / "promptscape" / "pipeline" / "stages"


# ------------------------------------------------------------------ static closure
def test_closure_follows_functions_not_modules():
    reach = provenance.closure("promptscape.pipeline.stages.search_stage:search_prompts")
    assert "promptscape.search:empirical_losses" in reach
    assert "promptscape.study.tables:write" in reach
    assert "promptscape.pipeline.stages.common:load_predictor" in reach
    # Neither unused functions of the modules it imports, nor the network code that
    # load_predictor imports inside its body (a family entry), nor any source kind.
    assert "promptscape.study.tables:read" not in reach
    assert not any(e.startswith("promptscape.neural.") and not e.startswith("promptscape.neural.families:")
                   for e in reach)
    assert not any(e.startswith(("promptscape.sources.coins:", "promptscape.sources.switching:"))
                   for e in reach)


def test_a_class_counts_whole_with_its_promptscape_bases():
    reach = provenance.closure(provenance.source_kind_entry("switching"))
    assert provenance.source_kind_entry("switching") == "promptscape.sources.switching:Switching"
    for name in ("promptscape.sources.base:Source", "promptscape.sources.base:validate_coins",
                 "promptscape.sources.base:register", "promptscape.validation:check_probability"):
        assert name in reach


def test_job_entries_add_the_declared_kinds_and_family_only():
    entries = provenance.job_entries("search_prompts", pretraining="coin_mixture", task="coin",
                                     family="bayes")
    assert entries == ("promptscape.pipeline.stages.search_stage:search_prompts",
                       "promptscape.predictors:BayesPredictor",
                       "promptscape.sources.coins:CoinMixture")
    with pytest.raises(ValueError, match="needs its task"):
        provenance.job_entries("simulate_tasks")


def test_every_stage_the_scripts_call_is_a_declared_job():
    """The Snakemake scripts call exactly the stage functions `provenance.JOBS` declares."""
    called = set()
    for script in (REPO / "scripts").glob("*.py"):
        tree = ast.parse(script.read_text())
        aliases = {a.asname or a.name: f"promptscape.pipeline.stages.{a.name}" for node in tree.body
                   if isinstance(node, ast.ImportFrom) and node.module == "promptscape.pipeline.stages"
                   for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in aliases:
                called.add(f"{aliases[node.func.value.id]}:{node.func.attr}")
    assert called == {stage for stage, _ in provenance.JOBS.values()}
    stage_modules = {f"promptscape.pipeline.stages.{p.stem}" for p in STAGES.glob("*.py")
                     if p.stem not in ("__init__", "common")}
    assert {entry.split(":")[0] for entry in called} == stage_modules


def _clear_caches():
    for cached in (provenance._module, provenance._references, provenance._closure,
                   provenance._identity):
        cached.cache_clear()


def _identity_after(tmp_path, monkeypatch, path, old, new, *entries):
    """The identity of `entries` computed on a copy of the library with one edit."""
    copy = tmp_path / "promptscape"
    shutil.copytree(provenance.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    _clear_caches()
    monkeypatch.setattr(provenance, "ROOT", copy)
    try:
        return provenance.code_identity(*entries)
    finally:
        monkeypatch.undo()
        _clear_caches()


SEARCH = provenance.job_entries("search_prompts", pretraining="coin_mixture", family="bayes")
EDITS = [
    # (file, old, new, whether the Bayes search's identity changes)
    ("search.py", "def choose(", "def unused():\n    return 1\n\n\ndef choose(", False),
    ("neural/checkpoints.py", "def load_source(", "def unused():\n    return 1\n\n\ndef load_source(", False),
    ("report/figures.py", "def save(", "def unused():\n    return 1\n\n\ndef save(", False),
    ("sources/coins.py", "class Coin(BinarySource):\n", "class Coin(BinarySource):\n    unused = 1\n", False),
    ("sources/coins.py", "class CoinMixture(BinarySource):\n",
     "class CoinMixture(BinarySource):\n    unused = 1\n", True),
    ("search.py", "def choose(", "# a comment\ndef choose(", False),
    ("sources/base.py", '"""Build a source from a config mapping',
     '"""Build a source, any docstring, from a config mapping', False),
    ("sources/base.py", "    spec = dict(spec)\n", "    spec = dict(spec)  # a comment\n", False),
    ("sources/base.py", "    spec = dict(spec)\n", "    spec = dict(spec)\n    spec = dict(spec)\n",
     True),
    ("study/tables.py", "def write(", "def unused():\n    return 1\n\n\ndef write(", False),
    ("pipeline/stages/common.py", "    from promptscape.neural import checkpoints  #",
     "    from promptscape.neural import checkpoints, scoring  #", True),  # its own body
]


@pytest.mark.parametrize("path, old, new, changes", EDITS)
def test_identity_changes_exactly_with_the_code_reached(tmp_path, monkeypatch, path, old, new,
                                                        changes):
    before = provenance.code_identity(*SEARCH)
    after = _identity_after(tmp_path, monkeypatch, path, old, new, *SEARCH)
    assert (after != before) == changes


# ------------------------------------------------------------------ tracing
SOURCES = {
    "bernmix": {"kind": "coin_mixture", "thetas": [0.2, 0.7]},
    "switching": {"kind": "switching", "thetas": [0.2, 0.7], "switch_prob": 0.1},
    "beta": {"kind": "beta_coin", "alpha": 1.0, "beta": 1.0},
    "coin": {"kind": "coin", "theta": 0.7},
}
T, L_MAX = 4, 2
CONFIG = {
    "sources": SOURCES,
    "experiments": {
        "e": {"pretraining": "bernmix", "predictors": ["bayes", "lstm", "transformer"],
              "tasks": [{"source": "coin", "in_meta_distribution": True},
                        {"source": "switching", "in_meta_distribution": False}],
              "max_prompt_length": L_MAX, "task_length": T, "dataset_sizes": [3],
              "num_seeds": 2, "evaluation_size": 40},
    },
    "training": {"device": "cpu", "heldout_size": 100},
    "models": {"lstm": {"family": "lstm", "steps": 2, "batch_size": 4, "hidden_size": 4, "embedding_dim": 2},
               "transformer": {"family": "transformer", "steps": 2, "batch_size": 4, "hidden_size": 4, "num_heads": 1,
                               "num_layers": 1, "warmup_steps": 1}},
    "efficiency": {"max_length": 4, "num_typical": 3},
    "figures": {"panel_width": 60, "panel_height": 50, "png_scale": 1},
}
KIND = {name: spec["kind"] for name, spec in SOURCES.items()}
# The pooled dataset-selection methods, each traced on every predictor.
SELECTIONS = {"pool": {"pool_size": 6},
              "high_variance": {"pool_size": 6, "leading_prompts": 2},
              "high_variance_weighted": {"pool_size": 6, "leading_prompts": 2,
                                         "uniform_share": 0.1}}


class Traced:
    """Runs stage functions in a scratch directory and keeps what each executed."""

    def __init__(self, root: Path):
        self.root = root
        self.runs: list[tuple[str, dict, set]] = []  # (rule, members, executed)

    def __call__(self, rule: str, fn, members: dict, **kwargs):
        _, executed = provenance.trace_calls(fn, **kwargs)
        self.runs.append((rule, members, executed))

    def path(self, name: str) -> str:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return str(target)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """Every rule's stage function on tiny inputs (Bayes on an exchangeable and a hidden
    state pretraining source; both networks trained for 2 steps, used through their
    checkpoint and through their prompt-loss table), each traced."""
    study = config_lib.load(copy.deepcopy(CONFIG))
    run = Traced(tmp_path_factory.mktemp("traced"))
    p = run.path
    tasks = {"coin": SOURCES["coin"], "switching": SOURCES["switching"]}
    for name, spec in tasks.items():
        members = {"task": KIND[name]}
        run("simulate_tasks", datasets_stage.simulate_tasks, members,
            output=p(f"data/{name}.parquet"), experiment="e", tasks={name: spec},
            task_length=T, dataset_sizes=[3], first=0, last=1)
        run("simulate_pool", datasets_stage.simulate_pool, members,
            output=p(f"pool/{name}.parquet"), experiment="e", tasks={name: spec},
            task_length=T, dataset_sizes=[3], pool_size=6, first=0, last=1)
        run("simulate_evaluation", datasets_stage.simulate_evaluation, members,
            output=p(f"evaluation/{name}.parquet"), experiment="e", task_name=name, task=spec, task_length=T,
            size=40)
    # The experiment's block of both tasks, as the workflow writes it.
    datasets_stage.simulate_tasks(output=p("data/all.parquet"), experiment="e", tasks=tasks,
                                  task_length=T, dataset_sizes=[3], first=0, last=1)
    for family in ("lstm", "transformer"):
        members = {"pretraining": "coin_mixture", "family": family}
        run("train_predictor", training_stage.train_predictor, members,
            model=p(f"models/{family}/model.pt"), curve=p(f"models/{family}/curve.parquet"),
            checkpoint=p(f"models/{family}/checkpoint.pt"), name=family,
            identity=study.model_identity(family, "bernmix"), source_name="bernmix",
            pretraining=SOURCES["bernmix"], settings=study.network(family, "bernmix").to_dict(),
            device="cpu", checkpoint_every=1)
        run("evaluate_predictor", training_stage.evaluate_predictor, members,
            model=p(f"models/{family}/model.pt"), output=p(f"models/{family}/regret.parquet"),
            name=family, identity=study.model_identity(family, "bernmix"), source_name="bernmix",
            pretraining=SOURCES["bernmix"], size=20, device="cpu")
        run("score_prompts", training_stage.score_prompts, members,
            model=p(f"models/{family}/model.pt"), output=p(f"prompt_losses/{family}.parquet"),
            name=family, experiment="e", task_length=T, max_prompt_length=L_MAX, device="cpu")
        # Post-trained on coin (a weight tuner each: full, and lora of rank 1).
        tuner = "full" if family == "lstm" else "lora"
        run("post_train_predictor", training_stage.post_train_predictor,
            {**members, "task": KIND["coin"], "tuner": [tuner]},
            base_model=p(f"models/{family}/model.pt"), model=p(f"models/ft_{family}/model.pt"),
            curve=p(f"models/ft_{family}/curve.parquet"), name=f"ft_{family}",
            identity="0123456789", source_name="bernmix", pretraining=SOURCES["bernmix"],
            post_training={"base": family, "source": "coin", "tuner": tuner, "steps": 2,
                           "learning_rate": 0.01, "batch": 4,
                           **({"lora_rank": 1} if tuner == "lora" else {})},
            post_training_source=SOURCES["coin"], device="cpu")

    # (predictor, pretraining source, extra inputs): Bayes on two kinds; networks via
    # their table and via their checkpoint.
    predictors = [("bayes", "bernmix", {}), ("bayes", "switching", {}), ("bayes", "beta", {})]
    for family in ("lstm", "transformer"):
        predictors += [(family, "bernmix", {"table": p(f"prompt_losses/{family}.parquet")}),
                       (family, "bernmix", {"model": p(f"models/{family}/model.pt")})]
    searches, landscapes, efficiencies = [], [], []
    units = {}  # by predictor index: what a batched search or efficiency job gets per predictor
    for i, (family, pre, inputs) in enumerate(predictors):
        units[i] = {"predictor": family, "replicate": 0, "family": family, **inputs}
        for task in tasks:
            # Batched jobs traced one (predictor, task) at a time, so each run's members
            # are one source kind and one family.
            members = {"pretraining": KIND[pre], "task": KIND[task], "family": family}
            common = dict(predictor=family, pretraining=SOURCES[pre], experiment="e",
                          task_name=task, task_length=T, enumeration_budget=2 ** 27)
            batch = dict(predictors=[units[i]], pretraining=SOURCES[pre], experiment="e",
                         task_length=T, dataset_sizes=[3], first=0, last=1,
                         max_prompt_length=L_MAX, enumeration_budget=2 ** 27)
            searches.append(p(f"search/{i}/{task}.parquet"))
            run("search_prompts", search_stage.search_prompts, members, **batch,
                tasks=[task], datasets=p(f"data/{task}.parquet"), output=searches[-1])
            for method, settings in SELECTIONS.items():
                run("search_selected", search_stage.search_selected, members, **batch,
                    tasks={task: tasks[task]}, datasets=p(f"pool/{task}.parquet"),
                    output=p(f"selected_search/{i}/{task}/{method}.parquet"),
                    selection=method, selection_settings=settings,
                    selected=p(f"selected/{i}/{task}/{method}.parquet"))
            landscapes.append(p(f"landscape/{i}/{task}.parquet"))
            run("compute_landscape", landscape_stage.compute_landscape, members, **common,
                **inputs, evaluation=p(f"evaluation/{task}.parquet"), output=landscapes[-1],
                task=tasks[task], max_prompt_length=L_MAX)
            if "table" in inputs:  # the workflow measures networks from their checkpoint
                continue
            efficiencies.append(p(f"efficiency/{i}/{task}.parquet"))
            run("measure_efficiency", efficiency_stage.measure_efficiency, members,
                predictors=[{**units[i], "landscapes": {task: landscapes[-1]}}],
                tasks={task: tasks[task]}, evaluations={task: p(f"evaluation/{task}.parquet")},
                in_meta_distribution={task: True}, pretraining=SOURCES[pre], experiment="e",
                task_length=T, enumeration_budget=2 ** 27, output=efficiencies[-1],
                token_efficiency=p(f"efficiency/{i}/{task}-token.parquet"),
                **study.efficiency)
    # Downstream tables read one predictor per (predictor, task): Bayes on bernmix and the
    # networks through their tables, as in the workflow.
    keep = [j for j, (family, pre, inputs) in enumerate(predictors)
            if (family == "bayes" and pre == "bernmix") or "table" in inputs]
    pick = lambda paths: [x for x in paths if int(Path(x).parent.name) in keep]  # noqa: E731
    imd = {"coin": True, "switching": False}
    # Aggregation checks each file against its path: the kept predictors' searches as the
    # workflow's one job per (experiment, selection, block) writes them, and their
    # landscapes where the workflow would put them.
    search_path = p(tables.ARTIFACTS["search"].path.format(experiment="e", selection="random",
                                                           first=0, last=1))
    search_stage.search_prompts(
        predictors=[units[j] for j in keep], pretraining=SOURCES["bernmix"], experiment="e",
        tasks=list(tasks), task_length=T, dataset_sizes=[3], first=0, last=1,
        max_prompt_length=L_MAX, enumeration_budget=2 ** 27, datasets=p("data/all.parquet"),
        output=search_path)
    def place(artifact, folder):
        """The kept predictors' per-task files of `folder`, copied to their workflow paths."""
        placed = []
        for j in keep:
            for task in tasks:
                target = p(tables.ARTIFACTS[artifact].path.format(
                    experiment="e", predictor=predictors[j][0], replicate=0, task=task))
                shutil.copy(p(f"{folder}/{j}/{task}.parquet"), target)
                placed.append(target)
        return placed

    placed = {"search": [search_path], "landscape": place("landscape", "landscape")}
    grid = {"experiment": "e", "predictors": ["bayes", "lstm", "transformer"],
            "replicates": {"bayes": 1, "lstm": 1, "transformer": 1},
            "tasks": list(tasks), "selections": ["random"], "dataset_sizes": [3],
            "num_seeds": 2, "seed_blocks": [[0, 1]]}
    # Predictions: Bayes on bernmix (count values) and on switching (sequences), networks
    # through their tables and their checkpoints; the kept ones placed for the aggregate.
    predictions = []
    for i, (family, pre, inputs) in enumerate(predictors):
        if family == "bayes" and pre == "beta":
            continue
        for task in tasks:
            members = {"pretraining": KIND[pre], "task": KIND[task], "family": family}
            predictions.append(p(f"prediction/{i}/{task}.parquet"))
            run("predict_reliability", prediction_stage.predict_reliability, members,
                predictor=family, pretraining=SOURCES[pre], experiment="e", task_name=task,
                task=tasks[task], task_length=T, enumeration_budget=2 ** 27, **inputs,
                landscape_path=p(f"landscape/{i}/{task}.parquet"),
                evaluation=p(f"evaluation/{task}.parquet"), output=predictions[-1],
                max_prompt_length=L_MAX, dataset_sizes=[3], draws=200,
                exact_max_outcomes=10_000, reference_N=100)
    placed_predictions = place("predicted_reliability", "prediction")
    run("aggregate_search", aggregate_stage.aggregate_search, {}, searches=placed["search"],
        landscapes=placed["landscape"], predictions=placed_predictions,
        selections=p("aggregate/selections.parquet"),
        reliability=p("aggregate/reliability.parquet"), choices=p("aggregate/choices.parquet"),
        reliability_prediction=p("aggregate/reliability_prediction.parquet"),
        in_meta_distribution=imd, expected=grid)
    # Search strategies on the placed searches (every strategy; gradient, skipped for
    # Bayes, charged without a computation over two symbols), then their aggregate. The
    # second task scores a network from its checkpoint, as where no prompt-loss table
    # exists (T beyond the enumeration budget): the family's code then runs.
    plan = {name: {} for name in strategies_lib.STRATEGIES}
    # The prior read back from each kept predictor (the surrogate strategy ranks by it).
    probe_length = L_MAX + T - 1
    queries = prior_lib.num_queries(2, probe_length)
    prior_fits = {}
    for j in keep:
        family = predictors[j][0]
        model = {} if family == "bayes" else {"model": p(f"models/{family}/model.pt")}
        prior_fits[family] = p(tables.ARTIFACTS["prior_fit"].path.format(
            experiment="e", predictor=family, replicate=0))
        run("probe_prior", prior_stage.probe_prior,
            {"pretraining": "coin_mixture", "family": family}, output=prior_fits[family],
            predictor=family, replicate=0, family=family, pretraining=SOURCES["bernmix"],
            experiment="e", probe_length=probe_length, device="cpu", **model)
    runs, steps, ends = [], [], []
    for j in keep:
        family, _, tabled = predictors[j]
        model = {} if family == "bayes" else {"model": p(f"models/{family}/model.pt")}
        for k, task in enumerate(tasks):
            inputs = {n: v for n, v in tabled.items() if k == 0 or n != "table"}
            runs.append(p(tables.ARTIFACTS["strategy_runs"].path.format(
                experiment="e", predictor=family, task=task, N=3, first=0, last=1)))
            steps.append(p(tables.ARTIFACTS["strategy_steps"].path.format(
                experiment="e", predictor=family, task=task, N=3, first=0, last=1)))
            ends.append(p(tables.ARTIFACTS["hill_climb_ends"].path.format(
                experiment="e", predictor=family, task=task, N=3, first=0, last=1)))
            members = {"pretraining": "coin_mixture", "task": KIND[task], "family": family}
            run("search_strategies", strategies_stage.search_strategies, members,
                landscape=p(tables.ARTIFACTS["landscape"].path.format(
                    experiment="e", predictor=family, replicate=0, task=task)),
                output=runs[-1], steps=steps[-1], hill_climb_ends=ends[-1], predictor=family,
                family=family, replicate=0, pretraining=SOURCES["bernmix"], experiment="e",
                task_name=task, task=tasks[task], task_length=T, N=3, first=0, last=1,
                max_prompt_length=L_MAX, enumeration_budget=2 ** 27, strategies=plan,
                budgets=[2, 5], prior_fit=prior_fits[family], probe_queries=queries,
                device="cpu", **inputs, **model)
    P = 2 ** (L_MAX + 1) - 1
    # The observational estimate, a job per task here (the workflow's covers every task of
    # the experiment; tracing one kind at a time checks each kind's declared code).
    for task in tasks:
        run("edit_effects", edit_effects_stage.edit_effects, {"task": KIND[task]},
            steps=[x for x in steps if f"/{task}/" in x],
            hill_climb_ends=[x for x in ends if f"/{task}/" in x],
            landscapes={predictors[j][0]: {task: p(tables.ARTIFACTS["landscape"].path.format(
                experiment="e", predictor=predictors[j][0], replicate=0, task=task))}
                for j in keep},
            output=p(f"aggregate/edit_effects_{task}.parquet"),
            hill_climb_optima=p(f"aggregate/hill_climb_optima_{task}.parquet"),
            experiment="e", tasks={task: tasks[task]}, task_length=T,
            max_prompt_length=L_MAX, vocab_size=2, in_meta_distribution=imd)
    run("aggregate_strategies", aggregate_stage.aggregate_strategies, {}, runs=runs,
        output=p("aggregate/strategies.parquet"), in_meta_distribution=imd,
        expected={**grid, "runs": {f: [[n, b] for n in plan if f != "bayes" or n != "gradient"
                                       for b in ([P] if n == "exhaustive" else [queries]
                                                 if n == "surrogate" else [2, 5])]
                                   for f in ("bayes", "lstm", "transformer")}})
    # Efficiency as the workflow's one job per experiment: Bayes on bernmix and the
    # networks from their checkpoints.
    measured = [p("efficiency/all.parquet")]
    efficiency_stage.measure_efficiency(
        predictors=[{**units[j], "landscapes": {t: p(f"landscape/{j}/{t}.parquet")
                                                for t in tasks}} for j in (0, 4, 6)],
        tasks=tasks, evaluations={t: p(f"evaluation/{t}.parquet") for t in tasks},
        in_meta_distribution=imd, pretraining=SOURCES["bernmix"], experiment="e",
        task_length=T, enumeration_budget=2 ** 27, output=measured[0],
        token_efficiency=p("aggregate/token_efficiency.parquet"), **study.efficiency)
    # Tuning: every tuner on both networks (from their checkpoints) and both tasks, scored
    # exactly (coin) and on the evaluation set (switching, an enumeration budget of 1), then
    # the experiment's tuning table against the placed landscapes.
    tuning_plan = {"tuners": {name: dict(spec.defaults) for name, spec in tuners.TUNERS.items()},
                   "prompt_length": 2, "steps": 2, "tuning_steps": [0, 2],
                   "learning_rate": 0.05, "init": "search"}
    tuning_plan["tuners"]["lora"] = {"lora_rank": 1}
    optimum_plan = {"tuners": tuning_plan["tuners"], "prompt_length": 2,
                    "optimum": {**tuners.OPTIMUM, "learning_rates": [0.05], "restarts": 1,
                                "max_steps": 2, "batch_size": 8, "check_every": 1}}
    tuning_runs, optima = [], []
    for family in ("lstm", "transformer"):
        for task in tasks:
            members = {"pretraining": "coin_mixture", "task": KIND[task], "family": family,
                       "tuner": list(tuners.TUNERS)}
            tuning_runs.append(p(tables.ARTIFACTS["tuning_runs"].path.format(
                experiment="e", predictor=family, replicate=0, task=task, N=3, first=0,
                last=1)))
            estimated = task == "switching"
            run("tune_network", tuning_stage.tune_network, members,
                datasets=p("data/all.parquet"), search_file=search_path,
                evaluation=p(f"evaluation/{task}.parquet") if estimated else None,
                model=p(f"models/{family}/model.pt"), output=tuning_runs[-1], predictor=family,
                replicate=0, pretraining=SOURCES["bernmix"], experiment="e", task_name=task,
                task=tasks[task], task_length=T, N=3, block=(0, 1), first=0, last=1,
                max_prompt_length=L_MAX, enumeration_budget=1 if estimated else 2 ** 27,
                tuning=tuning_plan, device="cpu")
            optima.append(p(tables.ARTIFACTS["tuner_optima"].path.format(
                experiment="e", predictor=family, replicate=0, task=task)))
            (landscape_file,) = [x for x in placed["landscape"]
                                 if f"/{family}/" in x and Path(x).stem == task]
            run("tune_optimum", tuning_stage.tune_optimum, members, model=p(
                f"models/{family}/model.pt"), landscape_file=landscape_file,
                evaluation=p(f"evaluation/{task}.parquet") if estimated else None,
                output=optima[-1], predictor=family, replicate=0,
                pretraining=SOURCES["bernmix"], experiment="e", task_name=task,
                task=tasks[task], task_length=T, max_prompt_length=L_MAX,
                enumeration_budget=1 if estimated else 2 ** 27, tuning=optimum_plan,
                device="cpu")
    run("aggregate_tuning", aggregate_stage.aggregate_tuning, {}, runs=tuning_runs,
        landscapes=[x for x in placed["landscape"] if "/bayes/" not in x], optima=optima,
        output=p("aggregate/tuning.parquet"), in_meta_distribution=imd)
    # Edits: the workflow's one job per experiment, traced one task at a time (so each
    # run's task member is one kind) on the placed landscapes and the selections.
    edit_tables = {"edits": [], "local_optima": [], "transfer": []}
    for task in tasks:
        outputs = {name: p(f"aggregate/{task}/{name}.parquet") for name in edit_tables}
        run("analyse_edits", edits_stage.analyse_edits, {"task": KIND[task]},
            landscapes=[x for x in placed["landscape"] if Path(x).stem == task], others=[],
            selections=p("aggregate/selections.parquet"), experiment="e",
            tasks={task: tasks[task]}, in_meta_distribution=imd, task_length=T,
            max_prompt_length=L_MAX, **outputs)
        for name, path in outputs.items():
            edit_tables[name].append(path)
    tables_of = {
        "tuning": [p("aggregate/tuning.parquet")],
        "reliability": [p("aggregate/reliability.parquet"),
                        p("aggregate/reliability_prediction.parquet")],
        "posterior": pick(landscapes) + measured,
        "replicates": [p("aggregate/reliability.parquet")],
        "selection": [p("aggregate/reliability.parquet")],
        "choices": [p("aggregate/choices.parquet")],
        "strategies": [p("aggregate/strategies.parquet")],
        "landscape": pick(landscapes),
        **edit_tables,
        "neural_vs_bayes": pick(landscapes),
        "efficiency": measured,
        "training": [p(f"models/{f}/{t}.parquet") for f in ("lstm", "transformer")
                     for t in ("curve", "regret")],
    }
    # Figures: one figure per traced job (so each figure's declared code is held to what
    # drawing it runs), from every table the figures read (as a job of several reads).
    every_table = list(dict.fromkeys(x for paths in tables_of.values() for x in paths))
    # vl-convert's rendering (compiled code, which no trace sees) replaced by stand-ins: the
    # same promptscape code runs, in about two thirds of the time.
    import vl_convert

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vl_convert, "vegalite_to_svg", lambda *a, **k: "<svg></svg>")
        patch.setattr(vl_convert, "svg_to_png", lambda *a, **k: b"\x89PNG")
        patch.setattr(vl_convert, "javascript_bundle", lambda *a, **k: "")
        for figure in catalog.FIGURES:
            run("plot_figures", figures_stage.plot_figures, {"figure": [figure]},
                figures=[figure], tables_in=every_table, directory=p("figures"),
                experiment="e", pretraining="bernmix", tasks=list(tasks), imd=imd,
                predictors=["bayes", "lstm", "transformer"], style=study.figures)
        for figure in catalog.STUDY_FIGURES:
            run("plot_study_figures", figures_stage.plot_study_figures, {"figure": [figure]},
                figures=[figure], tables_in=[p("aggregate/reliability_prediction.parquet")],
                directory=p("study_figures"), experiments=["e"], style=study.figures)
    return run.runs


def test_tracing_covers_every_rule(traced):
    assert {rule for rule, _, _ in traced} == set(provenance.JOBS)


@pytest.mark.parametrize("rule", sorted(provenance.JOBS))
def test_each_job_runs_only_code_inside_its_identity(traced, rule):
    """The hand-declared members of a rule (provenance.JOBS, families.FAMILIES) cover everything its
    stage function really executes, on every kind and family traced."""
    runs = [(members, executed) for r, members, executed in traced if r == rule]
    assert runs
    for members, executed in runs:
        assert any(m.startswith(provenance.JOBS[rule][0].split(":")[0]) for m, _ in executed)
        missing = provenance.uncovered(executed, provenance.job_entries(rule, **members))
        assert not missing, f"{rule} {members} ran code outside its identity: {missing}"


def test_trace_calls_records_promptscape_functions_only():
    result, executed = provenance.trace_calls(provenance.source_kind_entry, "coin")
    assert result == "promptscape.sources.coins:Coin"
    assert ("promptscape.pipeline.provenance", "source_kind_entry") in executed
    assert all(module.startswith("promptscape") for module, _ in executed)


@pytest.mark.parametrize("rule", sorted(provenance.JOBS))
def test_each_declared_member_is_needed_by_some_traced_job(traced, rule):
    """No wider: dropping any member a rule declares leaves code some traced job ran
    outside the identity."""
    stage, declared = provenance.JOBS[rule]
    for member in declared:
        needed = False
        for r, members, executed in traced:
            if r != rule:
                continue
            full = provenance.job_entries(rule, **members)
            if member == "family":
                extra = families.FAMILIES[members["family"]].code
            elif member == "figure":
                extra = tuple(e for name in members["figure"]
                              for e in {**catalog.FIGURES,
                                        **catalog.STUDY_FIGURES}[name].code)
            elif member == "tuner":
                extra = tuple(tuners.TUNERS[name].build for name in members["tuner"])
            else:
                extra = (provenance.source_kind_entry(members[member]),)
            dropped = [e for e in full if e not in extra or e == stage]
            needed |= bool(provenance.uncovered(executed, dropped))
        assert needed, f"{rule} declares {member!r} but no traced job needs it"


@pytest.fixture
def fresh_identity_cache(tmp_path, monkeypatch):
    """The identity cache in `tmp_path`, with nothing of it in memory."""
    monkeypatch.setenv("PROMPTSCAPE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(provenance, "_disk", None)
    provenance._identity.cache_clear()
    yield tmp_path
    provenance._identity.cache_clear()
    provenance._disk = None


def _forget(monkeypatch):
    monkeypatch.setattr(provenance, "_disk", None)
    provenance._identity.cache_clear()


def test_identities_are_read_back_from_the_disk_cache(fresh_identity_cache, monkeypatch):
    entries = provenance.job_entries("compute_landscape", pretraining="coin_mixture",
                                     task="coin", family="bayes")
    computed = provenance._computed_identity(tuple(sorted(set(entries))))
    assert provenance.code_identity(*entries) == computed
    files = list(fresh_identity_cache.glob("code-identities-*.json"))
    assert [f.name for f in files] == [
        f"code-identities-{provenance.source_digest()}.json"]
    # Another process (nothing in memory) reads it back without parsing the package.
    _forget(monkeypatch)

    def parse(_):
        raise AssertionError("parsed although the identity is cached")

    monkeypatch.setattr(provenance, "_computed_identity", parse)
    assert provenance.code_identity(*entries) == computed


def test_another_package_source_computes_its_identities_afresh(fresh_identity_cache, monkeypatch):
    entries = ("promptscape.sources.coins:Coin",)
    provenance.code_identity(*entries)
    _forget(monkeypatch)
    monkeypatch.setattr(provenance, "source_digest", lambda: "an-edited-package")
    calls = []
    real = provenance._computed_identity
    monkeypatch.setattr(provenance, "_computed_identity",
                        lambda e: calls.append(e) or real(e))
    provenance.code_identity(*entries)
    assert calls == [entries]
    assert (fresh_identity_cache / "code-identities-an-edited-package.json").exists()


def test_an_empty_cache_setting_turns_the_disk_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMPTSCAPE_CACHE_DIR", "")
    monkeypatch.setattr(provenance, "_disk", None)
    provenance._identity.cache_clear()
    try:
        assert provenance.cache_dir() is None
        assert provenance.code_identity("promptscape.sources.coins:Coin")
    finally:
        provenance._identity.cache_clear()
        provenance._disk = None
