"""``tracer.core`` stays sans-IO: it imports only core, numpy and a few pure stdlib modules.

Two independent checks:

- static, an allowlist over every module's ``ast``: every import in any form
  (``import a.b``, ``from a import b``, relative imports of any level, imports inside
  functions or ``if TYPE_CHECKING:``) must name a ``tracer.core`` module, numpy (less
  its I/O, random and global-setting parts) or a module of ``ALLOWED_STDLIB``; names
  that do I/O, import dynamically or reach hidden process state (``print``, ``open``,
  ``eval``, ``sys``, ``time``, ``builtins``...) are refused even without an import;
- dynamic: import every core module in a fresh interpreter and look at what landed
  in ``sys.modules``.

Each finding reads ``path:line: what`` with the offending name.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "tracer" / "core"

# The stdlib modules core may import: pure functions and types only.
ALLOWED_STDLIB = frozenset(
    {
        "__future__",
        "ast",  # pysource parses source text handed to it (ast.parse reads no file)
        "bisect",
        "collections.abc",
        "dataclasses",
        "enum",
        # functools: its caches (cache, lru_cache) are allowed only on pure functions of
        # immutable keys, where a memo cannot change a result.
        "functools",
        "ipaddress",
        "itertools",
        "re",  # its compiled-pattern cache is a memo of a pure function, as above
        "types",  # MappingProxyType: read-only views of the tables
        "typing",
    }
)
# numpy is allowed except the parts that read or write files, draw random numbers
# (hidden generator state) or set process-wide options.
NUMPY_FORBIDDEN = frozenset(
    {
        "random",
        "testing",
        "f2py",
        "distutils",
        "ctypeslib",
        "load",
        "save",
        "savez",
        "savez_compressed",
        "fromfile",
        "tofile",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "fromregex",
        "memmap",
        "DataSource",
        "seterr",
        "seterrcall",
        "set_printoptions",
        "setbufsize",
    }
)
# Names that do I/O, run or import code dynamically, or read hidden process state
# (clocks, randomness, the interpreter, the environment), refused wherever they appear
# even without an import: ``getattr(builtins, "open")`` is caught at ``builtins``.
FORBIDDEN_NAMES = frozenset(
    {
        "print",
        "open",
        "input",
        "exec",
        "eval",
        "compile",
        "breakpoint",
        "__import__",
        "globals",
        "locals",
        "vars",
        "help",
        "exit",
        "quit",
        "__builtins__",
        "__file__",
        "__loader__",
        "__spec__",
        "builtins",
        "sys",
        "os",
        "io",
        "time",
        "datetime",
        "random",
        "secrets",
        "uuid",
        "gc",
        "threading",
        "multiprocessing",
        "concurrent",
        "asyncio",
        "subprocess",
        "signal",
        "socket",
        "select",
        "selectors",
        "mmap",
        "pathlib",
        "shutil",
        "tempfile",
        "importlib",
        "inspect",
        "ctypes",
        "logging",
        "atexit",
        "scapy",
        "textual",
    }
)
# Attributes that reach the file system, a module's globals or the import system
# whatever object they hang on.
FORBIDDEN_ATTRS = frozenset(
    {
        "open",
        "tofile",
        "import_module",
        "__builtins__",
        "__globals__",
        "__import__",
        "__subclasses__",
        "__loader__",
    }
)
# getattr-like calls: a constant attribute name is checked like ``obj.name``.
_GETATTRS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def allowed(name: str) -> bool:
    """May core import ``name`` (a module, or ``module.attribute`` of a from-import)?"""
    if name == "tracer.core" or name.startswith("tracer.core."):
        return True
    parts = name.split(".")
    if parts[0] == "numpy":
        return not any(p in NUMPY_FORBIDDEN for p in parts[1:])
    return any(".".join(parts[:i]) in ALLOWED_STDLIB for i in range(1, len(parts) + 1))


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute names an import statement brings in (``module`` is the importer)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        if node.level - 1 >= len(package):
            return [f"{'.' * node.level}{base} (beyond the top-level package)"]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [f"{base}.{a.name}" if a.name != "*" else base for a in node.names]


def _numpy_alias(tree: ast.AST) -> set[str]:
    names = {"numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == "numpy" and a.asname}
    return names


def violations(
    source: str, filename: str = "<src>", module: str = "tracer.core.snippet", is_package: bool = False
) -> list[str]:
    """What in ``source`` breaks the sans-IO rule, as ``file:line: what`` strings."""
    tree = ast.parse(source, filename)
    np_names = _numpy_alias(tree)
    out = []

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            for name in _imported(node, module, is_package):
                if not allowed(name):
                    bad(node, f"imports {name} (core may import only tracer.core, numpy and ALLOWED_STDLIB)")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            bad(node, f"uses {node.id}")
        elif isinstance(node, ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else ""
            if node.attr in FORBIDDEN_ATTRS:
                bad(node, f"uses .{node.attr}")
            elif node.attr in NUMPY_FORBIDDEN and owner in np_names:
                bad(node, f"uses {owner}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _GETATTRS:
            arg = node.args[1] if len(node.args) > 1 else None
            name = arg.value if isinstance(arg, ast.Constant) else None
            if isinstance(name, str) and name in FORBIDDEN_ATTRS | FORBIDDEN_NAMES | NUMPY_FORBIDDEN:
                bad(node, f"uses {node.func.id}(..., {name!r})")
    return out


def test_core_has_modules() -> None:
    # The check below must have something to check.
    names = {p.name for p in core_modules()}
    assert {"__init__.py", "model.py", "table.py", "trace.py", "analysis.py"} <= names


@pytest.mark.parametrize(
    ("src", "found"),
    [
        # imports of every form, anywhere
        ("import socket", ":1: imports socket"),
        ("import os.path", ":1: imports os.path"),
        ("from pathlib import Path", ":1: imports pathlib.Path"),
        ("from scapy.all import rdpcap", ":1: imports scapy.all.rdpcap"),
        ("import threading as t", ":1: imports threading"),
        ("import collections", ":1: imports collections"),
        ("import tracer.export.ladder", ":1: imports tracer.export.ladder"),
        ("from tracer import export", ":1: imports tracer.export"),
        ("from tracer.export.ladder import wrap_cut", ":1: imports tracer.export.ladder.wrap_cut"),
        ("from ..export import x", ":1: imports tracer.export.x"),
        ("from .. import lab", ":1: imports tracer.lab"),
        ("from ....x import y", ":1: imports ....x (beyond the top-level package)"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from tracer.tui.app import App",
            ":3: imports tracer.tui.app.App",
        ),
        ("def f():\n    import time\n    return 0", ":2: imports time"),
        ("from numpy.random import default_rng", ":1: imports numpy.random.default_rng"),
        ("from numpy import load", ":1: imports numpy.load"),
        # dynamic imports
        ("m = __import__('subprocess')", ":1: uses __import__"),
        ("import importlib\nm = importlib.import_module('os')", ":1: imports importlib"),
        ("def f(lib):\n    return lib.import_module('os')", ":2: uses .import_module"),
        # I/O and hidden state without any import
        ("def f(x):\n    print(x)", ":2: uses print"),
        ("def f(p):\n    return open(p).read()", ":2: uses open"),
        ("def f():\n    return time.time()", ":2: uses time"),
        ("def f(s):\n    sys.stdout.write(s)", ":2: uses sys"),
        ("def f():\n    return random.random()", ":2: uses random"),
        ("def f():\n    return getattr(builtins, 'open')", ":2: uses builtins"),
        ("def f(m):\n    return getattr(m, 'open')", ":2: uses getattr(..., 'open')"),
        ("def f(g):\n    return g.__globals__", ":2: uses .__globals__"),
        ("x = eval('1')", ":1: uses eval"),
        ("x = compile('1', 'f', 'eval')", ":1: uses compile"),
        ("def f():\n    breakpoint()", ":2: uses breakpoint"),
        ("def f():\n    gc.disable()", ":2: uses gc"),
        # numpy's files, randomness and global options
        ("import numpy as np\nx = np.fromfile('x')", ":2: uses np.fromfile"),
        ("import numpy as xp\nx = xp.random.rand(3)", ":2: uses xp.random"),
        ("import numpy as np\nnp.seterr(all='ignore')", ":2: uses np.seterr"),
        ("def f(a):\n    a.tofile('x')", ":2: uses .tofile"),
    ],
)
def test_checker_catches_violations(src: str, found: str) -> None:
    # The finding names the line and the offending name.
    found_in = violations(src, "tracer/core/snippet.py", "tracer.core.snippet")
    assert any(v.startswith("tracer/core/snippet.py" + found) for v in found_in), (src, found_in)


def test_checker_accepts_pure_code() -> None:
    src = (
        "from __future__ import annotations\n"
        "import numpy as np\n"
        "import numpy.typing as npt\n"
        "from collections.abc import Mapping\n"
        "from tracer.core.model import SYN\n"
        "from tracer.core import table\n"
        "from . import model\n"
        "from .table import PacketTable\n"
        "x = np.zeros(3)\n"
        "def f(t, name):\n"
        "    return getattr(t, name)\n"
    )
    assert violations(src, module="tracer.core.snippet") == []
    # ``from . import x`` in the package's __init__ is core too.
    assert violations("from . import model\n", module="tracer.core", is_package=True) == []


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_sans_io(path: Path) -> None:
    src = path.read_text(encoding="utf-8")
    assert violations(src, str(path.relative_to(REPO)), module_name(path), path.name == "__init__.py") == []


def test_importing_core_loads_no_io_modules() -> None:
    # A fresh interpreter without site (-S), so that startup hooks do not preload
    # threading/pathlib; numpy (allowed, and it imports os itself) is the baseline.
    site_packages = str(Path(np.__file__).resolve().parents[1])
    mods = [module_name(p) for p in core_modules()]
    script = (
        "import sys, json\n"
        f"sys.path[:0] = [{str(REPO)!r}, {site_packages!r}]\n"
        "import numpy\n"
        "before = set(sys.modules)\n"
        f"for m in {mods!r}:\n"
        "    __import__(m)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    proc = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    assert any(m.startswith("tracer.core.") for m in loaded), loaded
    # Everything that came in is allowed itself, the parent package (``tracer/__init__``:
    # a docstring and a version), or a module an allowed one imports for itself.
    pulled_in = {
        "tracer",
        "_bisect",  # bisect's C half
        "copy",  # dataclasses (for replace/asdict)
        "numpy._typing._add_docstring",  # numpy.typing's
    }
    assert [m for m in loaded if not allowed(m) and m not in pulled_in] == []
