"""The package graph of ``tracer`` has no cycles and keeps its layers (docs/architecture.md).

Every module under ``tracer/`` is parsed with ``ast``; every import counts, wherever it
is written (module level, inside a function, under ``if TYPE_CHECKING:``) and in
whatever form (``import a.b``, ``from a import b``, relative imports of any level,
``importlib.import_module("a.b")``).  A module belongs to its sub-package
(``tracer.core``, ``tracer.ladder``, ...) or, at the top, is a node of its own
(``tracer.cli``, ``tracer.serve``, ``tracer.errors``, ...).

The checker is tested on small planted trees too, so that it is known to fail.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Who may import whom: a package listed here imports only these (besides itself) ...
# tracer.i18n (the gettext catalogues, on main since the i18n merge) sits beside the core:
# it reads only the core, and the ladder and lessons may read their words from it.
ONLY: dict[str, frozenset[str]] = {
    "tracer.core": frozenset(),
    "tracer.i18n": frozenset({"tracer.core"}),
    "tracer.ladder": frozenset({"tracer.core", "tracer.i18n"}),
    "tracer.lesson": frozenset({"tracer.core", "tracer.i18n", "tracer.ladder"}),
    "tracer.errors": frozenset({"tracer.i18n"}),
    "tracer.pcap": frozenset({"tracer", "tracer.core", "tracer.i18n", "tracer.errors"}),  # tracer.__version__
    "tracer.lab": frozenset({"tracer.core", "tracer.i18n", "tracer.errors", "tracer.pcap"}),
}
# ... and one listed here never imports these.
NEVER: dict[str, frozenset[str]] = {
    "tracer.export": frozenset({"tracer.tui", "tracer.lab", "tracer.cli", "tracer.serve"}),
    "tracer.tui": frozenset({"tracer.cli", "tracer.serve"}),
    "tracer.serve": frozenset({"tracer.cli"}),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, and where it is written."""

    module: str  # the importing module, e.g. tracer.tui.app
    file: str  # relative to the tree's root
    line: int
    target: str  # the module imported, e.g. tracer.ladder.model

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.module}) imports {self.target}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ... import``, relative levels resolved."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(root: Path, path: Path, known: set[str]) -> list[Import]:
    """Every ``tracer`` module that ``path`` imports, in any form, anywhere in the file."""
    module = module_name(root, path)
    file = str(path.relative_to(root))
    out: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), file)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, path.name == "__init__.py")
            # ``from tracer import cli`` imports the module tracer.cli, not just the package.
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = subs or [base]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            targets = [node.args[0].value]
        out += [Import(module, file, node.lineno, t) for t in targets
                if t == "tracer" or t.startswith("tracer.")]
    return out


def package_of(module: str) -> str:
    """``tracer.core.model`` -> ``tracer.core``; a top-level module (``tracer.cli``) is its own node."""
    return ".".join(module.split(".")[:2])


def package_graph(root: Path) -> dict[tuple[str, str], list[Import]]:
    """(importing package, imported package) -> the imports that make that edge."""
    files = sorted((root / "tracer").rglob("*.py"))
    known = {module_name(root, f) for f in files}
    edges: dict[tuple[str, str], list[Import]] = {}
    for f in files:
        for imp in imports_of(root, f, known):
            src, dst = package_of(imp.module), package_of(imp.target)
            if src != dst:
                edges.setdefault((src, dst), []).append(imp)
    return edges


def cycles(edges: dict[tuple[str, str], list[Import]]) -> list[list[str]]:
    """Closed paths of packages: for each package, the shortest way back to itself, if any
    (one per set of packages)."""
    succ: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        succ.setdefault(a, []).append(b)
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(succ):
        prev: dict[str, str] = {}
        queue = [start]
        while queue and start not in prev:
            v = queue.pop(0)
            for w in succ.get(v, []):
                if w not in prev:
                    prev[w] = v
                    queue.append(w)
        if start in prev:
            path = [start]
            while len(path) == 1 or path[-1] != start:
                path.append(prev[path[-1]])
            found.setdefault(frozenset(path), path[::-1])
    return list(found.values())


def cycle_report(edges: dict[tuple[str, str], list[Import]]) -> list[str]:
    out = []
    for path in cycles(edges):
        why = "; ".join(str(edges[a, b][0]) for a, b in itertools.pairwise(path))
        out.append(f"package cycle {' -> '.join(path)}: {why}")
    return out


def layering_report(edges: dict[tuple[str, str], list[Import]]) -> list[str]:
    out = []
    for (src, dst), imps in sorted(edges.items()):
        if src in ONLY and dst not in ONLY[src]:
            allowed = ", ".join(sorted(ONLY[src])) or "nothing outside itself"
            out += [f"{src} may import only {allowed}: {imp}" for imp in imps]
        if dst in NEVER.get(src, ()):
            out += [f"{src} must not import {dst}: {imp}" for imp in imps]
    return out


def test_no_package_cycles() -> None:
    problems = cycle_report(package_graph(REPO))
    assert not problems, "\n".join(problems)


def test_layers() -> None:
    problems = layering_report(package_graph(REPO))
    assert not problems, "\n".join(problems)


def test_the_graph_sees_the_real_packages() -> None:
    """The walk found the packages the rules are about (a wrong root would pass vacuously)."""
    nodes = {n for edge in package_graph(REPO) for n in edge}
    assert {"tracer.core", "tracer.ladder", "tracer.lesson", "tracer.export", "tracer.tui",
            "tracer.cli", "tracer.serve"} <= nodes


# --- the checker fails when it should ------------------------------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for pkg in ("tracer", "tracer/core", "tracer/ladder", "tracer/export", "tracer/tui"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").touch()
    return tmp_path


@pytest.mark.parametrize(
    "source",
    [
        "import tracer.tui.app\n",
        "from tracer.tui import app\n",
        "from tracer import tui\n",
        "from ..tui import app\n",
        "from ..tui.app import X\n",
        "def f():\n    from tracer.tui.app import X\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tracer.tui.app import X\n",
        "import importlib\nimportlib.import_module('tracer.tui.app')\n",
    ],
)
def test_every_import_form_is_seen(tmp_path: Path, source: str) -> None:
    root = _tree(tmp_path, {"tracer/ladder/model.py": source, "tracer/tui/app.py": "X = 1\n"})
    problems = layering_report(package_graph(root))
    assert len(problems) == 1, problems
    assert problems[0].startswith("tracer.ladder may import only tracer.core, tracer.i18n: "
                                  "tracer/ladder/model.py:")
    assert "(tracer.ladder.model) imports tracer.tui" in problems[0]


def test_relative_imports_resolve_from_a_package_and_a_module(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"tracer/core/__init__.py": "from . import model\nfrom .model import X\n",
                            "tracer/core/model.py": "from . import sub\nfrom .. import errors\nX = 1\n",
                            "tracer/core/sub.py": "",
                            "tracer/errors.py": ""})
    (imp,) = [i for i in imports_of(root, root / "tracer/core/model.py", {"tracer.errors"})
              if i.target != "tracer.core"]
    assert (imp.target, imp.line) == ("tracer.errors", 2)
    assert {i.target for i in imports_of(root, root / "tracer/core/__init__.py", set())} == {
        "tracer.core", "tracer.core.model"}
    assert layering_report(package_graph(root)) == [
        "tracer.core may import only nothing outside itself: "
        "tracer/core/model.py:2 (tracer.core.model) imports tracer.errors"]


def test_a_cycle_names_its_imports(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"tracer/export/ladder.py": "from tracer.tui.rows import X\nY = 1\n",
                            "tracer/tui/rows.py": "X = 1\ndef f():\n    from tracer.export import ladder\n"})
    assert cycle_report(package_graph(root)) == [
        "package cycle tracer.export -> tracer.tui -> tracer.export: "
        "tracer/export/ladder.py:1 (tracer.export.ladder) imports tracer.tui.rows; "
        "tracer/tui/rows.py:3 (tracer.tui.rows) imports tracer.export.ladder"]


def test_top_level_modules_are_nodes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"tracer/cli.py": "def f():\n    import tracer.serve\n",
                            "tracer/serve.py": "from tracer.cli import load\n"})
    (report,) = cycle_report(package_graph(root))
    assert report.startswith("package cycle tracer.cli -> tracer.serve -> tracer.cli: ")
    assert "tracer.serve must not import tracer.cli: tracer/serve.py:1" in layering_report(
        package_graph(root))[0]
