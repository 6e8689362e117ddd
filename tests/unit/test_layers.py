"""The packages are layers (README, "Layout"), each importing only from the layers before
it: the science at the top level, the networks (`neural`), the artifact contract (`study`),
the report, the orchestration (`pipeline`) and the stage entry points (`pipeline.stages`).
Checked on every import statement, at module level or inside a function."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "promptscape"
LAYERS = ("science", "neural", "study", "report", "pipeline", "pipeline.stages")


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("neural", "study", "report", "pipeline"):
        return "pipeline.stages" if parts[1:3] == ["pipeline", "stages"] else parts[1]
    return "science"


# What each layer must not import: every layer after it.
FORBIDDEN = {name: set(LAYERS[i + 1:]) for i, name in enumerate(LAYERS)}


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "promptscape":
                out |= {f"promptscape.{a.name}" for a in node.names}
            elif node.module.startswith("promptscape."):
                out.add(node.module)
                if node.module in ("promptscape.pipeline", "promptscape.pipeline.stages"):
                    out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("promptscape.")}
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_from_a_layer_above_its_own(path):
    module = "promptscape." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own = layer(module)
    bad = {m for m in imports(path) if layer(m) in FORBIDDEN[own]}
    assert not bad, f"{module} ({own}) imports {sorted(bad)}"


def test_the_layers_are_ordered_as_the_readme_says():
    assert FORBIDDEN["science"] == {"neural", "study", "report", "pipeline", "pipeline.stages"}
    assert FORBIDDEN["study"] == {"report", "pipeline", "pipeline.stages"}
    assert FORBIDDEN["report"] == {"pipeline", "pipeline.stages"}
    assert FORBIDDEN["pipeline"] == {"pipeline.stages"}
    assert FORBIDDEN["pipeline.stages"] == set()


@pytest.mark.parametrize("own, source, above", [
    ("science", "def f():\n    from promptscape.study import tables\n", "study"),
    ("neural", "from promptscape.study.config import Study\n", "study"),
    ("study", "from promptscape.report import catalog\n", "report"),
    ("study", "import promptscape.pipeline.plan\n", "pipeline"),
    ("report", "def f():\n    from promptscape.pipeline import plan\n", "pipeline"),
    ("report", "from promptscape.pipeline.stages import figures_stage\n", "pipeline.stages"),
    ("pipeline", "from promptscape.pipeline.stages.common import training_device\n",
     "pipeline.stages"),
])
def test_the_layer_rule_catches_an_upward_import(tmp_path, own, source, above):
    path = tmp_path / "x.py"
    path.write_text(source)
    assert {layer(m) for m in imports(path)} & FORBIDDEN[own] == {above}


def test_a_module_imports_from_its_own_layer_and_below():
    assert layer("promptscape.search") == "science"
    assert layer("promptscape.study.tables") == "study"
    assert layer("promptscape.report.catalog") == "report"
    assert layer("promptscape.pipeline.plan") == "pipeline"
    assert layer("promptscape.pipeline.stages.common") == "pipeline.stages"
    assert not {"science", "neural", "study", "report"} & FORBIDDEN["report"]
