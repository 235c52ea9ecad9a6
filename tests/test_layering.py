"""The package's layering, read from the source with `ast` (nothing is imported):

- no module of lib/ or bench/ imports a private name (one starting with `_`) of another
  module, nor reaches one as an attribute of a module of ours (`jobs._set_status`);
- no module of lib/ or bench/ is imported back, directly or through others, by a module it
  imports. Every import counts: at the top, inside a function (a lazy import hides a cycle,
  it does not remove it), or under `if TYPE_CHECKING:`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lib", "bench")


@dataclass(frozen=True)
class Source:
    name: str  # dotted module name: lib.routes.jobs
    path: Path
    is_package: bool  # an __init__.py


def sources(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, Source]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found[name] = Source(name, path, is_package)
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _absolute(module: str | None, level: int, source: Source) -> str:
    """The absolute module name of `from <level dots><module> import ...` in `source`."""
    if not level:
        return module or ""
    base = source.name.split(".")
    base = base if source.is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


@dataclass(frozen=True)
class Import:
    line: int
    module: str  # the module imported from (or imported)
    name: str | None  # the name taken from it (from ... import name), None for `import module`


def imports(source: Source) -> Iterator[Import]:
    """Every import of the module, wherever it stands."""
    for node in ast.walk(ast.parse(source.path.read_text(), str(source.path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(node.lineno, alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, source)
            for alias in node.names:
                yield Import(node.lineno, module, alias.name)


def _ours(module: str, known: dict[str, Source]) -> str | None:
    """The module of ours that `module` names, or its nearest package of ours."""
    parts = module.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph(known: dict[str, Source]) -> dict[str, set[str]]:
    """module -> the modules of ours that importing it runs (their packages included)."""
    graph: dict[str, set[str]] = {name: set() for name in known}
    for source in known.values():
        for imp in imports(source):
            targets = [imp.module]
            if imp.name is not None and imp.name != "*":
                targets.append(f"{imp.module}.{imp.name}")  # from lib import db: the module lib.db
            for target in targets:
                ours = _ours(target, known)
                while ours:  # lib.parse.detect runs lib/__init__.py and lib/parse/__init__.py too
                    if ours != source.name:
                        graph[source.name].add(ours)
                    ours = _ours(ours.rpartition(".")[0], known) if "." in ours else None
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def private_imports(known: dict[str, Source]) -> list[str]:
    """`path:line: what` for each private name taken from another module."""
    found = []
    for source in known.values():
        rel = source.path.relative_to(ROOT) if source.path.is_relative_to(ROOT) else source.path
        for imp in imports(source):
            names = [*imp.module.split("."), *([imp.name] if imp.name else [])]
            if any(_private(n) for n in names):
                what = f"from {imp.module} import {imp.name}" if imp.name else f"import {imp.module}"
                found.append(f"{rel}:{imp.line}: {what}")
        found += [f"{rel}:{line}: {what}" for line, what in _private_attributes(source, known)]
    return found


def _private_attributes(source: Source, known: dict[str, Source]) -> Iterator[tuple[int, str]]:
    """Private attributes reached through a module of ours bound to a name (`jobs._x`)."""
    tree = ast.parse(source.path.read_text(), str(source.path))
    bound: dict[str, str] = {}  # local name -> module of ours
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name, known):
                    local = alias.asname or alias.name.split(".")[0]
                    bound[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, source)
            for alias in node.names:
                if f"{module}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                module = ".".join([bound[value.id], *reversed(chain)])
                if module in known and module != source.name:
                    yield node.lineno, f"{module}.{node.attr}"


def test_no_private_name_is_imported_across_modules() -> None:
    assert private_imports(sources()) == []


def test_no_module_is_imported_back_by_a_module_it_imports() -> None:
    assert cycles(import_graph(sources())) == []


def test_the_checks_see_a_cycle_and_private_names(tmp_path: Path) -> None:
    """The checks above would fail on a lazy cycle, a TYPE_CHECKING cycle and private names."""
    files = {
        "pkg/__init__.py": "",
        "pkg/app.py": "def create():\n    from pkg.routes import view\n",
        "pkg/routes.py": "from pkg.app import create\nfrom pkg import helpers\nhelpers._hidden()\n",
        "pkg/helpers.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.models import M\n",
        "pkg/models.py": "from pkg.helpers import _hidden\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    known = sources(tmp_path, ("pkg",))
    assert cycles(import_graph(known)) == [["pkg.app", "pkg.routes"], ["pkg.helpers", "pkg.models"]]
    found = [line.split(": ", 1)[1] for line in private_imports(known)]
    assert sorted(found) == ["from pkg.helpers import _hidden", "pkg.helpers._hidden"]
