"""``tracer.core`` stays sans-IO: no I/O libraries, no threads, no file access.

Two independent checks: a static one (every module's ``ast``: imports and calls
that open files) and a dynamic one (import every core module in a fresh
interpreter and look at what landed in ``sys.modules``).
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

FORBIDDEN = frozenset(
    {"scapy", "textual", "socket", "threading", "asyncio", "subprocess", "os", "io", "pathlib", "mmap"}
)
# Ways to reach the file system or to import dynamically around the rules above.
FORBIDDEN_EXTRA = frozenset({"importlib", "shutil", "tempfile", "multiprocessing", "concurrent", "selectors"})
FORBIDDEN_CALLS = frozenset({"open", "__import__", "exec", "eval"})
# numpy functions that read or write files.
NUMPY_IO = frozenset(
    {
        "load",
        "save",
        "savez",
        "savez_compressed",
        "fromfile",
        "tofile",
        "loadtxt",
        "savetxt",
        "genfromtxt",
        "memmap",
    }
)


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def violations(source: str, filename: str = "<src>") -> list[str]:
    """What in ``source`` breaks the sans-IO rule, as ``file:line: what`` strings."""
    tree = ast.parse(source, filename)
    bad = FORBIDDEN | FORBIDDEN_EXTRA
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in bad:
                out.append(f"{filename}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in FORBIDDEN_CALLS:
                out.append(f"{filename}:{node.lineno}: calls {f.id}()")
            elif isinstance(f, ast.Attribute) and (
                f.attr == "open"
                or (f.attr in NUMPY_IO and isinstance(f.value, ast.Name) and f.value.id in ("np", "numpy"))
            ):
                out.append(f"{filename}:{node.lineno}: calls .{f.attr}()")
            elif isinstance(f, ast.Attribute) and f.attr == "tofile":
                out.append(f"{filename}:{node.lineno}: calls .tofile()")
    return out


def test_core_has_modules() -> None:
    # The check below must have something to check.
    names = {p.name for p in core_modules()}
    assert {"__init__.py", "model.py", "table.py", "trace.py", "analysis.py"} <= names


@pytest.mark.parametrize(
    "src",
    [
        "import socket",
        "import os.path",
        "from pathlib import Path",
        "from scapy.all import rdpcap",
        "import threading as t",
        "def f(p):\n    return open(p).read()",
        "import numpy as np\nx = np.fromfile('x')",
        "m = __import__('subprocess')",
        "def f(a):\n    a.tofile('x')",
    ],
)
def test_checker_catches_violations(src: str) -> None:
    assert violations(src), src


def test_checker_accepts_pure_code() -> None:
    assert violations("import numpy as np\nfrom tracer.core.model import SYN\nx = np.zeros(3)\n") == []


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_is_sans_io(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO))) == []


def test_importing_core_loads_no_io_modules() -> None:
    # A fresh interpreter without site (-S), so that startup hooks do not preload
    # threading/pathlib; numpy (allowed, and it imports os itself) is the baseline.
    site_packages = str(Path(np.__file__).resolve().parents[1])
    mods = [
        "tracer.core"
        + ("" if p.stem == "__init__" else "." + ".".join(p.relative_to(CORE).with_suffix("").parts))
        for p in core_modules()
    ]
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
    bad = FORBIDDEN | FORBIDDEN_EXTRA
    assert [m for m in loaded if m.split(".")[0] in bad] == []
