"""Shared test fixtures: the real-capture corpus and tshark as the oracle.

The corpus lives beside the repository (``../shared/corpus``), not in it.
``tshark_fields`` runs the real tshark; if tshark is missing the test fails
(CI installs it), it is never skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from tracer.lesson.steps import Lesson

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CAPTURES = REPO / "captures"


@cache
def corpus_manifest() -> dict[str, dict[str, str]]:
    """``MANIFEST.tsv`` rows keyed by file name."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        raise FileNotFoundError(f"capture corpus missing at {CORPUS}: tests need ../shared beside the clone")
    with (CORPUS / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def corpus_files(*, malformed: bool | None = False) -> list[Path]:
    """Corpus captures, sorted by name.

    ``malformed=False``: only the readable ones; ``True``: only the MALFORMED ones;
    ``None``: all.
    """
    out = []
    for name, row in sorted(corpus_manifest().items()):
        is_bad = "MALFORMED" in row["notes"]
        if malformed is None or malformed == is_bad:
            out.append(CORPUS / name)
    return out


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus directory; fails (not skips) when it is absent."""
    assert (CORPUS / "MANIFEST.tsv").is_file(), f"capture corpus missing at {CORPUS}"
    return CORPUS


def tshark_fields(
    path: str | os.PathLike[str], *fields: str, two_pass: bool = True, extra: tuple[str, ...] = ()
) -> list[list[str]]:
    """One row per frame, one string per field, as ``tshark -T fields`` prints them.

    Several occurrences of a field are joined with ``,``; an absent field is ``""``.
    Name resolution is off (``-n``).  ``extra`` are further tshark arguments
    (e.g. ``("-o", "tcp.relative_sequence_numbers:FALSE")``).  Raises if tshark
    fails, so a broken oracle never passes silently.
    """
    cmd = ["tshark", "-r", os.fspath(path), "-n", "-T", "fields"]
    if two_pass:
        cmd.append("-2")
    cmd += ["-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "quote=n"]
    for fld in fields:
        cmd += ["-e", fld]
    cmd += list(extra)
    st = os.stat(path)
    proc = _run_tshark(tuple(cmd), st.st_mtime_ns, st.st_size)
    lines = proc.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = [line.split("\t") for line in lines]
    for r in rows:
        assert len(r) == len(fields), f"tshark row has {len(r)} fields, expected {len(fields)}: {r!r}"
    return rows


@cache
def _run_tshark(cmd: tuple[str, ...], _mtime_ns: int, _size: int) -> str:
    # Cached per (command, file version): several tests ask for the same fields.
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def scenario_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``scenario_run(NAME)``: the capture of one real ``tracer run NAME`` in the lab, made
    once per test session and shared by every module that asks for it (root: CI is root)."""
    made: dict[str, Path] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}

    def get(name: str) -> Path:
        if name not in made:
            if os.geteuid() != 0:
                pytest.skip("the live lab needs root (CI runs as root)")
            path = tmp_path_factory.mktemp("runs") / f"{name}.pcapng"
            argv = [sys.executable, "-m", "tracer", "run", name, "--no-tui", "--out", str(path)]
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                                  check=False)
            assert proc.returncode == 0, proc.stderr
            made[name] = path
        return made[name]

    return get


def tiled_lesson(n: int, lang: str = "en") -> Lesson:
    """A big lesson of ``n`` real steps: those of a 1,556-packet corpus capture, repeated."""
    from tracer.lesson.steps import build_lesson
    from tracer.loading import load

    trace, analysis = load(str(CORPUS / "zeek__http__206_example_b.pcap"))
    base = build_lesson(trace, analysis, lang)
    reps = -(-n // len(base.steps))
    steps = tuple(dataclasses.replace(s, index=k) for k, s in enumerate((base.steps * reps)[:n]))
    return Lesson(steps, lang, "large", base.t0_ns)


def ns_pids(prefix: str) -> set[int]:
    """The processes still inside the network namespaces whose names start with ``prefix``."""
    from tracer.lab.netns import list_namespaces

    pids: set[int] = set()
    for ns in list_namespaces():
        if ns.startswith(prefix):
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            pids.update(int(p) for p in out.split())
    return pids
