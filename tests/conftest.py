"""Shared test fixtures: the real-capture corpus and tshark as the oracle.

The corpus lives beside the repository (``../shared/corpus``), not in it.
``tshark_fields`` runs the real tshark; if tshark is missing the test fails
(CI installs it), it is never skipped.
"""

from __future__ import annotations

import csv
import os
import subprocess
from functools import cache
from pathlib import Path

import pytest

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
