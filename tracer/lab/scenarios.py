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
from tracer.i18n import Msg

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


def _bad(path: Path, why: Msg) -> TracerError:
    return TracerError("scenario.bad", path=path, why=why, exit_code=EXIT_INPUT)


def read_scenario(path: Path) -> Scenario:
    """The metadata of the scenario file ``path`` (read with ``ast``, not executed)."""
    try:
        values, funcs = literal_assignments(path.read_bytes(), str(path))
    except OSError as e:
        raise TracerError("scenario.unreadable", path=path, why=e.strerror, exit_code=EXIT_INPUT) from None
    except (SyntaxError, ValueError) as e:
        raise _bad(path, Msg("scenario.why.not_python", error=e)) from None
    if "client" not in funcs:
        raise _bad(path, Msg("scenario.why.no_client"))
    proto, port = values.get("PROTO", "tcp"), values.get("PORT")
    if proto not in ("tcp", "udp") or not isinstance(port, int) or not 0 < port < 65536:
        raise _bad(path, Msg("scenario.why.proto_port"))
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
        raise _bad(path, Msg("scenario.why.hosts"))
    impair = values.get("IMPAIR", ())
    if not isinstance(impair, (list, tuple)) or not all(isinstance(x, str) for x in impair):
        raise _bad(path, Msg("scenario.why.impair"))
    expect = values.get("EXPECT", "")
    timeout = values.get("TIMEOUT", 10.0)
    if not isinstance(expect, str) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise _bad(path, Msg("scenario.why.expect_timeout"))
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
            raise UsageError("scenario.no_file", path=name_or_path)
        return read_scenario(p.resolve())
    found = [f for f in _builtin_files() if f.stem == name_or_path]
    builtin = found[0] if found else SCENARIO_DIR / f"{name_or_path}.py"
    if name_or_path.startswith("_") or not builtin.is_file():
        # Too many to list in one line: the closest names, and where the list is.
        close = difflib.get_close_matches(name_or_path, [f.stem for f in _builtin_files()], n=3)
        hint = Msg("scenario.did_you_mean", names=", ".join(close)) if close else ""
        raise UsageError("scenario.no_name", name=repr(name_or_path), hint=hint)
    return read_scenario(builtin)
