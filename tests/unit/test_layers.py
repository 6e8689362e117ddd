"""The packages are layers (README, "Layout"): the science at the top level
imports nothing from the networks, the pipeline or the report; the networks nothing from the
pipeline or the report; the report nothing from the stage entry points. Checked on every
import statement, at module level or inside a function."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "promptscape"
SCIENCE_FOUNDATIONS = ("promptscape.files", "promptscape.logs", "promptscape.seeding",
                       "promptscape.special", "promptscape.validation")


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("neural", "study", "pipeline", "report"):
        return "pipeline.stages" if parts[1:3] == ["pipeline", "stages"] else parts[1]
    return "science"


# What each layer must not import.
FORBIDDEN = {
    "science": {"neural", "study", "pipeline", "pipeline.stages", "report"},
    "neural": {"study", "pipeline", "pipeline.stages", "report"},
    "study": set(),
    "report": {"pipeline.stages"},
    "pipeline": set(),
    "pipeline.stages": set(),
}


def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "promptscape":
                out |= {f"promptscape.{a.name}" for a in node.names}
            elif node.module.startswith("promptscape."):
                out.add(node.module)
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


def test_the_layer_rule_catches_an_upward_import(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("def f():\n    from promptscape.pipeline import tables\n")
    assert layer("promptscape.search") == "science"
    assert {layer(m) for m in imports(path)} & FORBIDDEN["science"] == {"pipeline"}
