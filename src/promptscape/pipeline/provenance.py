"""Code identities: the library code a workflow job runs, as a short hash.

A job's code identity hashes the definitions its stage function reaches, function by
function, rather than whole modules (docs/caching.md has the rules and how to keep them
right). The workflow passes it to the rule as a param, so Snakemake reruns a job when code
it runs changes, and not when unrelated code, a comment or a docstring does.

Static closure. Starting from entries ``"module:name"`` (a top-level function, class or
assignment of a promptscape module), the walk follows every name a definition's body uses
that resolves to another promptscape definition: a module-level name of the same module, a
name imported ``from promptscape.x import y``, and attribute chains through an imported
promptscape module (``tables.write``). A class counts as a whole: every method, its
decorators and bases. Annotations are not followed (they are never evaluated). The
identity hashes the docstring-free AST of every definition reached.

What the walk does not follow, and the workflow adds per job instead (`JOBS`):

* registries, dispatched on config: a source's kind (`sources.SOURCES` via
  `build_source`; `source_kind_entry`) and a predictor family (`families.FAMILIES[...].code`);
* promptscape modules imported inside a function body: such an import is how the library
  defers code that only some jobs run (``stages.common.load_predictor`` imports
  `promptscape.neural.checkpoints` for networks only), so references through it are left to the job's
  family entries.

`trace_calls` records the promptscape functions a call really executes; the tests hold
every stage to its declared identity with it, so a declaration cannot go stale silently.
The static part reads and parses a few files; the Snakefile calls it at parse time and it
imports nothing heavier than the rules' records (no torch, no altair). Its results are kept on disk (`IDENTITY_CACHE`), under a digest of
every source file of the package, so each Snakemake invocation, cluster job and workflow
job after the first reads them instead of parsing the package again (about a second each):
an edit anywhere in the package is another digest, whose identities are computed afresh.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import sys
from pathlib import Path

from promptscape import files
from promptscape.pipeline import rules

PACKAGE = "promptscape"
ROOT = Path(__file__).resolve().parents[1]  # the promptscape package


# Per workflow rule: (its stage function, the registry members its jobs run), from the
# rule's record (`promptscape.pipeline.rules`: `Rule.stage`, `Rule.members`). Members:
# "pretraining" (the kind of the experiment's or network's pretraining source), "task" (the
# kind of the job's task source), "family" (the job's predictor family: the entries of
# `families.FAMILIES[family].code`, what `stages.common.load_predictor` and
# `models.build_model` dispatch to), "tuner" (the builders of the tuners it runs), "figure"
# (the chart builder of each figure the job draws and what `stages.figures_stage.plot_figure`
# runs through its deferred imports, `Figure.code`).
JOBS: dict[str, tuple[str, tuple[str, ...]]] = {
    r.name: (r.stage, r.members) for r in rules.RULES}


# ------------------------------------------------------------------------ modules
def _module_path(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body[0] = ast.Pass()


def _import_bindings(node: ast.Import | ast.ImportFrom) -> dict[str, tuple]:
    """Names an import statement binds to promptscape modules or their members:
    ("module", name) or ("member", module, attribute)."""
    out = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            if alias.asname:
                out[alias.asname] = ("module", alias.name)
            else:
                out[alias.name.split(".")[0]] = ("module", PACKAGE)
    elif node.module and node.level == 0 and node.module.split(".")[0] == PACKAGE:
        for alias in node.names:
            out[alias.asname or alias.name] = ("member", node.module, alias.name)
    return out


class _Module:
    """One parsed promptscape module: its top-level definitions and import bindings."""

    def __init__(self, name: str):
        path = _module_path(name)
        if path is None:
            raise LookupError(f"{name} is not a promptscape module")
        self.name = name
        tree = ast.parse(path.read_text(), filename=str(path))
        _strip_docstrings(tree)
        self.defs: dict[str, list[ast.AST]] = {}
        self.imports: dict[str, tuple] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs.setdefault(node.name, []).append(node)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Name):
                            self.defs.setdefault(sub.id, []).append(node)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                self.imports.update(_import_bindings(node))
        self.dumps = {name: "\n".join(ast.dump(n, include_attributes=False) for n in nodes)
                      for name, nodes in self.defs.items()}


@functools.lru_cache(maxsize=None)
def _module(name: str) -> _Module:
    return _Module(name)


def _is_module(name: str) -> bool:
    return _module_path(name) is not None


def _resolve(binding: tuple, seen: frozenset = frozenset()) -> tuple:
    """A binding -> ("module", name) or ("def", module, name)."""
    if binding[0] == "module":
        return binding
    _, module, attr = binding
    if f"{module}.{attr}" in seen:
        raise LookupError(f"import cycle resolving {module}.{attr}")
    info = _module(module)
    if attr in info.defs:
        return ("def", module, attr)
    if attr in info.imports:
        return _resolve(info.imports[attr], seen | {f"{module}.{attr}"})
    if _is_module(f"{module}.{attr}"):
        return ("module", f"{module}.{attr}")
    raise LookupError(f"{module} has no top-level definition {attr!r}")


class _References(ast.NodeVisitor):
    """The promptscape definitions (and whole modules) one definition refers to."""

    def __init__(self, module: _Module, deferred: set[str]):
        self.module = module
        self.deferred = deferred  # names bound by imports inside function bodies
        self.found: set[tuple] = set()

    def _binding(self, name: str) -> tuple | None:
        if name in self.deferred:
            return None
        if name in self.module.defs:
            return ("def", self.module.name, name)
        if name in self.module.imports:
            return _resolve(self.module.imports[name])
        return None

    def visit_Name(self, node):
        target = self._binding(node.id)
        if target:
            self.found.add(target)

    def visit_Attribute(self, node):
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            self.generic_visit(node)
            return
        target = self._binding(base.id)
        for attr in reversed(chain):
            if target is None or target[0] != "module":
                break
            target = _resolve(("member", target[1], attr))
        if target:
            self.found.add(target)

    def visit_arg(self, node):  # annotations are never evaluated
        pass

    def _function(self, node):
        for expr in node.decorator_list:
            self.visit(expr)
        self.visit(node.args)
        for stmt in node.body:
            self.visit(stmt)

    visit_FunctionDef = visit_AsyncFunctionDef = _function


def _deferred_names(nodes: list[ast.AST]) -> set[str]:
    """Names bound by promptscape imports inside function bodies (see the module doc)."""
    names = set()
    for top in nodes:
        for node in ast.walk(top):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        names.update(_import_bindings(sub))
    return names


@functools.lru_cache(maxsize=None)
def _references(module: str, name: str) -> frozenset[tuple]:
    info = _module(module)
    nodes = info.defs[name]
    visitor = _References(info, _deferred_names(nodes))
    for node in nodes:
        visitor.visit(node)
    return frozenset(visitor.found)


def _parse_entry(entry: str) -> tuple[str, str]:
    module, _, qualname = entry.partition(":")
    name = qualname.split(".")[0]
    if not name or name not in _module(module).defs:
        raise LookupError(f"{entry!r}: no top-level definition {name!r} in {module}")
    return module, name


# ------------------------------------------------------------------------ public API
@functools.lru_cache(maxsize=None)
def _closure(entries: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    seen: set[tuple[str, str]] = set()
    todo = [_parse_entry(e) for e in entries]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        for target in _references(*key):
            if target[0] == "def":
                todo.append(target[1:])
            else:  # a module used as a value: all of it
                todo.extend((target[1], n) for n in _module(target[1]).defs)
    return tuple(sorted(seen))


def closure(*entries: str) -> list[str]:
    """Every promptscape definition ``"module:name"`` that `entries` reach statically."""
    return [f"{m}:{n}" for m, n in _closure(tuple(sorted(set(entries))))]


def _computed_identity(entries: tuple[str, ...]) -> str:
    payload = "\n".join(f"{m}:{n}\n{_module(m).dumps[n]}" for m, n in _closure(entries))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# Identities already computed for this exact package source, one JSON file per source digest
# ({entries joined by spaces: identity}); PROMPTSCAPE_CACHE_DIR moves the folder, and an
# empty value turns the disk cache off. A folder that cannot be written only costs time.
IDENTITY_CACHE = "code-identities-{digest}.json"
CACHE_FILES_KEPT = 32  # the most recent source digests' files are kept, older ones removed


def cache_dir() -> Path | None:
    """The folder of the identity cache (`files.cache_dir`), or None when it is turned off."""
    folder = files.cache_dir()
    return None if folder is None else Path(folder)


def source_digest() -> str:
    """SHA-256 of every Python source file of the package (paths and bytes, in path order):
    what every code identity is a function of, with the entries asked for."""
    return _digest_of(ROOT)


@functools.lru_cache(maxsize=None)
def _digest_of(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


_disk: dict[str, dict[str, str]] | None = None  # per source digest, what its file holds


def _cache_path() -> Path | None:
    folder = cache_dir()
    return None if folder is None else folder / IDENTITY_CACHE.format(digest=source_digest())


def _load_disk() -> dict[str, str]:
    global _disk
    if _disk is None:
        _disk = {}
    digest = source_digest()
    if digest not in _disk:
        _disk[digest] = {}
        path = _cache_path()
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict):
                    _disk[digest] = {str(k): str(v) for k, v in loaded.items()}
            except (OSError, ValueError):
                pass
    return _disk[digest]


def _store_disk(key: str, value: str) -> None:
    known = _load_disk()
    known[key] = value
    path = _cache_path()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        on_disk = {}
        try:
            on_disk = json.loads(path.read_text())  # another process's entries
        except (OSError, ValueError):
            pass
        merged = {**(on_disk if isinstance(on_disk, dict) else {}), **known}

        def put(temp):
            with open(temp, "w") as out:
                json.dump(merged, out, sort_keys=True)

        files.atomic_write(path, put)
        old = sorted(path.parent.glob(IDENTITY_CACHE.format(digest="*")),
                     key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[CACHE_FILES_KEPT:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass


@functools.lru_cache(maxsize=None)
def _identity(entries: tuple[str, ...]) -> str:
    key = " ".join(entries)
    known = _load_disk().get(key)
    if known is not None:
        return known
    value = _computed_identity(entries)
    _store_disk(key, value)
    return value


def code_identity(*entries: str) -> str:
    """A short hash of the definitions `entries` reach (comments and docstrings excluded)."""
    return _identity(tuple(sorted(set(entries))))


def source_kind_entry(kind: str) -> str:
    """The entry of a registered source kind, e.g. ``"promptscape.sources.coins:Coin"``."""
    from promptscape.sources import SOURCES  # numpy only

    cls = SOURCES[kind]
    return f"{cls.__module__}:{cls.__qualname__}"


def job_entries(rule: str, *, pretraining: str | None = None, task=None, family=None,
                figure=None, tuner=None) -> tuple[str, ...]:
    """The entries of one job of `rule` (`JOBS`): its stage function, plus the source kinds
    (`pretraining`; `task`: a kind name, or several for a job of several tasks) and
    predictor families (`family`: one name, or several) and tuners (`tuner`: the builders of
    `promptscape.neural.tuners.TUNERS`, one name or several) and figures (`figure`: the
    figures a job draws, one name or several) the rule declares; the others are ignored, so
    a caller may pass whatever the job's wildcards name."""
    stage, members = JOBS[rule]
    given = {"pretraining": pretraining, "task": task, "family": family, "figure": figure,
             "tuner": tuner}
    entries = [stage]
    for member in members:
        value = given[member]
        if value is None or (not isinstance(value, str) and not value):
            raise ValueError(f"a {rule} job's code identity needs its {member}")
        for name in [value] if isinstance(value, str) else sorted(set(value)):
            if member == "family":
                from promptscape.neural.families import FAMILIES

                entries.extend(FAMILIES[name].code)
            elif member == "figure":
                from promptscape.report.catalog import FIGURES, STUDY_FIGURES

                entries.extend({**FIGURES, **STUDY_FIGURES}[name].code)
            elif member == "tuner":
                from promptscape.neural.tuners import TUNERS

                entries.append(TUNERS[name].build)
            else:
                entries.append(source_kind_entry(name))
    return tuple(sorted(set(entries)))


def job_identity(rule: str, **members: str | None) -> str:
    """The code identity of one job of `rule` (see `job_entries`)."""
    return code_identity(*job_entries(rule, **members))


# ------------------------------------------------------------------------ tracing
def trace_calls(fn, *args, **kwargs) -> tuple[object, set[tuple[str, str]]]:
    """Call `fn`; return its result and the (module, qualname) of every promptscape
    function that ran in this thread meanwhile (nested functions, lambdas and
    comprehensions under the qualname of their enclosing definition's code object).

    The calls are recorded by cProfile, whose hook is compiled code: a hook written in
    Python ran for every call of every library (Altair's chart building is hundreds of
    thousands) and made a traced job several times slower."""
    import cProfile

    previous = sys.getprofile()
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = fn(*args, **kwargs)
    finally:
        profiler.disable()
        sys.setprofile(previous)
    root = str(ROOT) + "/"
    executed = set()
    for entry in profiler.getstats():
        code = entry.code  # a code object, or the name of a built-in function
        if isinstance(code, str) or not code.co_filename.startswith(root):
            continue
        rel = Path(code.co_filename[len(root):]).with_suffix("")
        parts = [PACKAGE, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        executed.add((".".join(parts), code.co_qualname))
    return result, executed


def uncovered(executed: set[tuple[str, str]], entries) -> list[str]:
    """The executed functions (from `trace_calls`) outside the static closure of `entries`."""
    reach = set(closure(*entries))
    out = []
    for module, qualname in executed:
        top = qualname.split(".")[0]
        if qualname == "<module>" or f"{module}:{top}" in reach:
            continue
        out.append(f"{module}:{qualname}")
    return sorted(out)
