"""One owner per piece of knowledge (issue 25): the registries that own a figure's inputs,
applicability and caption, a strategy's settings, a family's memory formula and module
interface, and the named constants that code and schema share."""

from __future__ import annotations

import inspect
import re

import pytest
import yaml

from promptscape import landscape
from promptscape import strategies as st
from promptscape.neural import families
from promptscape.study import config as config_lib
from promptscape.study import layout, tables
from promptscape.pipeline import plan
from promptscape.report import catalog
from promptscape.validation import ConfigError
from workflow_helpers import REPO

CONFIGS = sorted((REPO / "tests" / "data").glob("*/config.yaml"))
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda p: p.parent.name)
def study(request):
    return config_lib.load_file(str(request.param))


# ------------------------------------------------------------------------------ figures
def test_every_figure_names_its_artifacts_and_caption():
    for name, spec in {**catalog.FIGURES, **catalog.STUDY_FIGURES}.items():
        assert spec.tables and set(spec.tables) <= set(tables.ARTIFACTS), name
        assert spec.caption.strip(), f"figure {name} has no caption"


def test_figure_inputs_are_found_from_the_artifacts(study):
    for exp in study.experiments.values():
        for figure in catalog.figures_of(study, exp):
            for artifact in catalog.FIGURES[figure].tables:
                assert layout.experiment_files(study, exp, artifact), (figure, artifact)
        # The training figure reads what the training rules write, every network replicate.
        files = [p for artifact in catalog.FIGURES["training"].tables
                 for p in layout.experiment_files(study, exp, artifact)]
        assert sorted(files) == sorted(layout.training_tables(study, exp))
        assert layout.experiment_files(study, exp, "landscape") == layout.per_task(
            study, exp, "landscape")
        assert layout.experiment_files(study, exp, "reliability") == [
            layout.aggregate(study, exp, "reliability")]


def test_applicability_comes_from_the_entry(study):
    for exp in study.experiments.values():
        traits = catalog.experiment_traits(study, exp)
        expected = [name for name, spec in catalog.FIGURES.items()
                    if all(traits[t] or not getattr(spec, t) for t in catalog.TRAITS)]
        assert catalog.figures_of(study, exp) == expected
        assert ("training" in expected) == traits["neural"]


def test_the_training_caption_leaves_the_networks_to_the_report():
    assert "{models}" in catalog.FIGURES["training"].caption


def test_docs_figures_md_is_in_sync_with_the_registry():
    docs = REPO / "docs" / "figures.md"
    assert docs.read_text() == catalog.markdown(), (
        "docs/figures.md is stale; run: "
        "python -m promptscape.report.catalog > docs/figures.md")


def test_docs_figures_md_has_a_section_per_entry_with_its_caption_and_inputs(monkeypatch):
    new = catalog.Figure("new_chart", ("landscape", "edits"), "A new | figure",
                               tuning=True, caption="What it shows: q(v* | prompt).")
    monkeypatch.setitem(catalog.FIGURES, "new", new)
    page = catalog.markdown()
    section = page.split("### `new`\n", 1)[1].split("###", 1)[0]
    assert "**A new \\| figure.** Drawn for experiments with a `tuning` section" in section
    assert "reads `landscape`, `edits`" in section
    assert "What it shows: q(v\\* \\| prompt)." in section
    for name in [*catalog.FIGURES, *catalog.STUDY_FIGURES]:
        assert f"### `{name}`" in page


def test_the_report_templates_show_the_entry_caption():
    for rst in ("figure.rst", "study_figure.rst"):
        text = (REPO / "workflow" / "report" / rst).read_text()
        assert "snakemake.params.entries[figure].caption" in text
        assert 'figure == "' not in text  # no caption chain of its own


# ------------------------------------------------------------------------------ strategies
@pytest.mark.parametrize("strategies, message", [
    ({"exhaustive": {"max_budget": 10}}, "experiments.x.strategies.exhaustive.max_budget == 10, "
                                         "must be null"),
    ({"random": {"max_budget": 0}}, "experiments.x.strategies.random.max_budget == 0"),
    ({"evolutionary": {"crossover": 1.5}}, "experiments.x.strategies.evolutionary.crossover "
                                           "== 1.5, must be a number in [0, 1]"),
    ({"gradient": {"top_k": True}}, "experiments.x.strategies.gradient.top_k == True"),
    ({}, "is empty"),
])
def test_strategies_check_their_own_settings(strategies, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        st.parse(strategies, [1], "experiments.x")


def test_every_setting_of_a_strategy_has_a_check():
    for strategy in st.STRATEGIES.values():
        for setting, default in strategy.defaults.items():
            test, _ = strategy.checks.get(setting) or st.CHECKS[setting]
            assert test(default), (strategy.name, setting)


def test_the_schema_keeps_only_the_shape_of_strategies():
    schema = yaml.safe_load(SCHEMA.read_text())
    forms = schema["$defs"]["experiment"]["properties"]["strategies"]["oneOf"]
    text = yaml.safe_dump(forms)
    for name in st.STRATEGIES:
        assert name not in text
    for setting in st.CHECKS:
        assert setting not in text


# ------------------------------------------------------------------------------ plan
def test_every_stage_has_an_estimator():
    assert set(plan.STAGES) == set(plan.ESTIMATORS)
    assert set(plan.HEAVY) <= set(plan.STAGES)


def test_every_heavy_rule_declares_its_estimate():
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for rule in plan.HEAVY:
        assert f'mem_mb=mem_mb("{rule}")' in rules, rule


def test_every_network_family_states_its_memory_per_token():
    for name in families.NEURAL_FAMILIES:
        net = families.PredictorConfig(family=name)
        assert families.FAMILIES[name].activations_per_token(net) > 0


def test_a_family_without_a_memory_formula_is_an_error(monkeypatch):
    import dataclasses

    study = config_lib.load_file(str(REPO / "tests" / "data" / "neural" / "config.yaml"))
    monkeypatch.setitem(families.FAMILIES, "lstm", dataclasses.replace(
        families.FAMILIES["lstm"], activations_per_token=None))
    with pytest.raises(ValueError, match="states no memory per token"):
        plan.jobs(study)


# ------------------------------------------------------------------------------ constants
def test_the_schema_default_enumeration_budget_is_the_named_one():
    schema = yaml.safe_load(SCHEMA.read_text())
    budget = schema["properties"]["landscape"]["properties"]["enumeration_budget"]
    assert budget["default"] == landscape.DEFAULT_ENUMERATION_BUDGET


def test_the_networks_chunk_is_the_named_one():
    pytest.importorskip("torch")
    from promptscape.neural import checkpoints, scoring

    for function in (scoring.NeuralPredictor.__init__, checkpoints.load_predictor):
        assert inspect.signature(function).parameters["max_tokens"].default == (
            families.MAX_TOKENS)


# ------------------------------------------------------------------------------ networks
def test_both_families_provide_what_the_scoring_uses():
    torch = pytest.importorskip("torch")
    from promptscape.neural import base

    protocol = base.NetworkFamily
    methods = {name: member for name, member in vars(protocol).items()
               if inspect.isfunction(member)
               and (not name.startswith("_") or name == "__call__")}
    attributes = inspect.get_annotations(protocol)
    assert {"prefix", "prefix_embedded", "extend", "trie_root", "trie_select", "trie_step",
            "trie_losses", "check_context", "cache_positions", "__call__"} <= set(methods)
    assert {"vocab_size", "embed", "cpu_step_inputs"} <= set(attributes)
    for name in families.NEURAL_FAMILIES:
        model = base.build_model(families.PredictorConfig(family=name), 2)
        for method, spec in methods.items():
            if method == "__call__":
                assert callable(model)
                continue
            member = getattr(model, method, None)
            assert inspect.ismethod(member), (name, method)
            expected = list(inspect.signature(spec).parameters)[1:]
            assert list(inspect.signature(member).parameters) == expected, (name, method)
        assert isinstance(model.vocab_size, int) and model.vocab_size == 2
        assert isinstance(model.embed, torch.nn.Embedding)
        assert isinstance(type(model).cpu_step_inputs, int)
