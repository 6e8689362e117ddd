"""Code fingerprints: what a stage's result depends on in the library.

A stage's fingerprint hashes the abstract syntax tree of its module and of every
promptscape module it imports, transitively (imports inside functions included), with
docstrings removed. Comments are not in the tree either. The workflow passes it to the rule
as a param, so Snakemake reruns a stage when its logic changes and never when only a
comment or a docstring does. It reads and parses a few files; the Snakefile calls it at
parse time.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "promptscape"
ROOT = Path(__file__).resolve().parent


def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _parsed(name: str) -> tuple[str, tuple[str, ...]]:
    """(hash of the docstring-free AST, promptscape modules it imports) of one module."""
    path = _module_path(name)
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body[0] = ast.Pass()
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imports.add(node.module)
            imports.update(f"{node.module}.{alias.name}" for alias in node.names)
    # Parents of a module are imported with it.
    closure = set()
    for imp in imports:
        parts = imp.split(".")
        for i in range(1, len(parts) + 1):
            closure.add(".".join(parts[:i]))
    local = tuple(sorted(m for m in closure if _module_path(m) is not None and m != name))
    digest = hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()
    return digest, local


@functools.lru_cache(maxsize=None)
def fingerprint(module: str) -> str:
    """A short hash of `module` and every promptscape module it reaches."""
    seen, todo = {}, [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name], deps = _parsed(name)
        todo.extend(deps)
    payload = "\n".join(f"{k} {v}" for k, v in sorted(seen.items()))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def modules(module: str) -> list[str]:
    """The promptscape modules `module` reaches (for documentation and tests)."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_parsed(name)[1])
    return sorted(seen)
