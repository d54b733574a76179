"""The packages form layers: nothing below the command line imports it, and no package (or
module) imports one that imports it back.

The graph is read from the source (every ``import`` and ``from ... import`` anywhere in a
module, including those inside functions and ``TYPE_CHECKING`` blocks), so an import that only
runs on some code path is caught as well as one at the top.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "retentiond"

Graph = dict[str, dict[str, str]]  # importer -> imported -> "file:line" of one such import


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources(root: Path) -> list[Path]:
    """Modules of the package: ``.py`` files in directories that are packages (Alembic's
    migration scripts are loaded by path, not imported)."""
    return sorted(p for p in root.rglob("*.py")
                  if all((d / "__init__.py").is_file()
                         for d in [p.parent, *p.parent.parents] if root in [d, *d.parents]))


def _imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the file, relative ones resolved."""
    name = _module_name(path, root)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((module, node.lineno))
            # ``from retentiond.x import y`` may import the module retentiond.x.y.
            found.extend((f"{module}.{a.name}", node.lineno) for a in node.names)
    return [(n, line) for n, line in found if n == root.name or n.startswith(root.name + ".")]


def module_graph(root: Path) -> tuple[Graph, set[str]]:
    """Module -> modules it imports (names that are not modules are dropped), and which
    modules are packages (their ``__init__``)."""
    files = {_module_name(p, root): p for p in _sources(root)}
    packages = {n for n, p in files.items() if p.name == "__init__.py"}
    graph: Graph = {n: {} for n in files}
    for name, path in files.items():
        for target, line in _imports(path, root):
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in files and target != name:
                where = f"{path.relative_to(root.parent)}:{line}"
                graph[name].setdefault(target, where)
    return graph, packages


def layer_of(module: str) -> str:
    """The package a module belongs to for layering: ``retentiond.lifecycle.review`` is in
    ``retentiond.lifecycle``; top-level modules (``retentiond.config``) are their own."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: Graph) -> Graph:
    out: Graph = defaultdict(dict)
    for importer, targets in graph.items():
        for target, where in targets.items():
            a, b = layer_of(importer), layer_of(target)
            # The root package's __init__ (which holds __version__) is imported by anything.
            if a != b and b != "retentiond":
                out[a].setdefault(b, where)
    return dict(out)


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _explain(graph: Graph, component: list[str]) -> str:
    members = set(component)
    return "; ".join(f"{a} -> {b} ({where})" for a in component
                     for b, where in sorted(graph.get(a, {}).items()) if b in members)


def test_no_import_cycles_between_packages():
    """No package imports a package that (directly or through others) imports it back."""
    packages = package_graph(module_graph(PACKAGE)[0])
    found = cycles(packages)
    assert not found, "import cycles between packages: " + " | ".join(
        _explain(packages, c) for c in found)


def test_no_import_cycles_between_modules():
    """No module imports one that imports it back; a package's ``__init__`` re-exporting its
    own modules is not counted (importing ``retentiond.policy`` runs it, not a cycle)."""
    graph, packages = module_graph(PACKAGE)
    modules = {a: {b: w for b, w in targets.items() if b not in packages}
               for a, targets in graph.items()}
    found = cycles(modules)
    assert not found, "import cycles between modules: " + " | ".join(
        _explain(modules, c) for c in found)


def test_nothing_below_the_command_line_imports_it():
    """No module outside ``retentiond/cli/`` imports ``retentiond.cli``, even lazily."""
    graph, _ = module_graph(PACKAGE)
    offenders = [f"{a} imports {b} ({where})" for a, targets in sorted(graph.items())
                 if layer_of(a) != "retentiond.cli"
                 for b, where in targets.items() if layer_of(b) == "retentiond.cli"]
    assert not offenders, "\n".join(offenders)


def test_the_graph_sees_imports_inside_functions(tmp_path):
    """The walk finds a lazy import and a relative one, and reports a cycle made only of them
    (so the tests above could fail)."""
    pkg = tmp_path / "retentiond"
    for sub in ("a", "b", "cli"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "one.py").write_text("def f():\n    from retentiond.b.two import g\n")
    (pkg / "b" / "two.py").write_text("from ..a import one\nfrom ..cli import main\n")
    (pkg / "cli" / "main.py").write_text("")
    graph, _ = module_graph(pkg)
    assert graph["retentiond.a.one"] == {"retentiond.b.two": "retentiond/a/one.py:2"}
    assert cycles(package_graph(graph)) == [["retentiond.a", "retentiond.b"]]
    assert "retentiond.cli.main" in graph["retentiond.b.two"]


def _importable() -> list[str]:
    names = sorted({layer_of(m) for m in module_graph(PACKAGE)[0]} - {"retentiond"})
    return [n for n in names if n != "retentiond.cli"]


@pytest.mark.parametrize("name", _importable())
def test_each_package_imports_alone_without_the_command_line(name):
    """Importing one package on its own, in a fresh interpreter, works and loads nothing of
    ``retentiond.cli``."""
    code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
            "print(','.join(sorted(m for m in sys.modules if m.startswith('retentiond.cli'))))")
    done = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing {name} loaded {done.stdout.strip()}"
