"""The scenario catalogue: finding, listing and reading scenario files.

A scenario is a Python file (built-in ones in ``scenarios/``, one folder per
topic) with module-level ``TITLE`` and ``DESCRIPTION`` (``{"en": ..., "zh": ...}``),
``PROTO`` ("tcp" or "udp"), ``PORT``, and the functions ``server(host, port)``
(optional) and ``client(host, port)`` (docs/scenarios.md).  Its metadata is read
with ``ast``, without running it (``read_scenario``); ``tracer.lab.run`` runs it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from tracer.core.pysource import literal_assignments
from tracer.errors import EXIT_INPUT, TracerError, UsageError

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"


@dataclass(frozen=True)
class Scenario:
    """A scenario file and the metadata it declares (see docs/scenarios.md)."""

    name: str
    path: Path
    title: dict[str, str]
    description: dict[str, str]
    proto: str
    port: int
    has_server: bool
    notice: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    hosts: str = "two"  # "two" (a veth pair) or "loopback" (one host on lo)
    impair: tuple[str, ...] = ()  # impairment specs (tracer.lab.impair.parse_spec)
    expect: str = ""  # the expected packets and calls (tracer.core.expect)
    timeout: float = 10.0
    topic: str = ""  # the folder under scenarios/ ("tcp", "udp"), "" for others


def _bad(path: Path, why: str, why_zh: str) -> TracerError:
    return TracerError(f"{path} is not a tracer scenario: {why}", f"{path} 不是 tracer 场景：{why_zh}",
                       exit_code=EXIT_INPUT)


def read_scenario(path: Path) -> Scenario:
    """The metadata of the scenario file ``path`` (read with ``ast``, not executed)."""
    try:
        values, funcs = literal_assignments(path.read_bytes(), str(path))
    except OSError as e:
        raise TracerError(f"cannot read the scenario {path}: {e.strerror}",
                          f"无法读取场景 {path}：{e.strerror}", exit_code=EXIT_INPUT) from None
    except (SyntaxError, ValueError) as e:
        raise _bad(path, f"not valid Python ({e})", f"不是有效的 Python（{e}）") from None
    if "client" not in funcs:
        raise _bad(path, "it defines no client(host, port) function", "没有定义 client(host, port) 函数")
    proto, port = values.get("PROTO", "tcp"), values.get("PORT")
    if proto not in ("tcp", "udp") or not isinstance(port, int) or not 0 < port < 65536:
        raise _bad(path, 'it needs PROTO = "tcp" or "udp" and PORT = 1..65535',
                   '需要 PROTO = "tcp" 或 "udp"，以及 PORT = 1..65535')
    name = path.stem

    def texts(key: str) -> dict[str, str]:
        v = values.get(key)
        if isinstance(v, dict):
            en = str(v.get("en", name))
            return {"en": en, "zh": str(v.get("zh", en))}
        return {"en": str(v or name), "zh": str(v or name)}

    notice: dict[str, tuple[str, ...]] = {}
    raw_notice = values.get("NOTICE", {})
    if isinstance(raw_notice, dict):
        en = tuple(str(x) for x in raw_notice.get("en", ()))
        notice = {"en": en, "zh": tuple(str(x) for x in raw_notice.get("zh", en))}
    hosts = values.get("HOSTS", "two")
    if hosts not in ("two", "loopback"):
        raise _bad(path, 'HOSTS must be "two" or "loopback"', 'HOSTS 必须是 "two" 或 "loopback"')
    impair = values.get("IMPAIR", ())
    if not isinstance(impair, (list, tuple)) or not all(isinstance(x, str) for x in impair):
        raise _bad(path, "IMPAIR must be a list of strings", "IMPAIR 必须是字符串列表")
    expect = values.get("EXPECT", "")
    timeout = values.get("TIMEOUT", 10.0)
    if not isinstance(expect, str) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise _bad(path, "EXPECT must be a string and TIMEOUT a number > 0",
                   "EXPECT 必须是字符串，TIMEOUT 必须是大于 0 的数")
    topic = path.parent.name if path.parent.parent == SCENARIO_DIR else ""
    return Scenario(name, path, texts("TITLE"), texts("DESCRIPTION"), str(proto), port, "server" in funcs,
                    notice, str(hosts), tuple(impair), expect, float(timeout), topic)


def _builtin_files() -> list[Path]:
    return sorted(p for p in SCENARIO_DIR.rglob("*.py") if not p.name.startswith("_"))


def list_scenarios() -> list[Scenario]:
    """The built-in scenarios (every topic folder), by topic then name."""
    return sorted((read_scenario(p) for p in _builtin_files()), key=lambda s: (s.topic, s.name))


def find_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    p = Path(name_or_path)
    if p.suffix == ".py" or os.sep in name_or_path:
        if not p.is_file():
            raise UsageError(f"no scenario file {name_or_path}", f"没有场景文件 {name_or_path}")
        return read_scenario(p.resolve())
    found = [f for f in _builtin_files() if f.stem == name_or_path]
    builtin = found[0] if found else SCENARIO_DIR / f"{name_or_path}.py"
    if name_or_path.startswith("_") or not builtin.is_file():
        # Too many to list in one line: the closest names, and where the list is.
        close = difflib.get_close_matches(name_or_path, [f.stem for f in _builtin_files()], n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        hint_zh = f"是否想用 {', '.join(close)}？" if close else ""
        raise UsageError(f"no scenario named {name_or_path!r}; {hint}see: tracer list",
                         f"没有名为 {name_or_path!r} 的场景；{hint_zh}请看：tracer list")
    return read_scenario(builtin)
