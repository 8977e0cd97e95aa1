"""tshark as the oracle: its fields per frame, and which release answered.

The comparisons accept tshark 4.0 (Debian 12) up to the current Debian release's
4.4 (Debian 13).  Where the releases print different things for a field the tests
read, ``DIFFERENCES`` says so, and the comparisons ask ``differs()`` instead of
assuming one release.
"""

from __future__ import annotations

import os
import re
import subprocess
from functools import cache

# The releases the comparisons are written for: 4.0 (Debian 12 bookworm) to 4.4 (Debian 13 trixie).
OLDEST = (4, 0)
NEWEST = (4, 4)


@cache
def tshark_version() -> tuple[int, int, int]:
    """The installed tshark's release, e.g. ``(4, 0, 17)``; raises if tshark is missing."""
    out = subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=True).stdout
    m = re.match(r"TShark \(Wireshark\) (\d+)\.(\d+)\.(\d+)", out)
    if m is None:
        raise RuntimeError(f"unrecognised `tshark --version`: {out.splitlines()[:1]}")
    return int(m[1]), int(m[2]), int(m[3])


def version_text() -> str:
    """``"tshark 4.0.17"``: for assertion messages, so a failure names its oracle."""
    return "tshark " + ".".join(map(str, tshark_version()))


# field -> (first release that differs from 4.0, what changed).  From Wireshark's issues and
# merge requests (see docs/testing.md); only 4.0 could be run here, so a newer release's
# side is as documented upstream, not observed.
DIFFERENCES: dict[str, tuple[tuple[int, int], str]] = {
    "tcp.analysis.ack_lost_segment": (
        (4, 2),
        "\"ACKed unseen segment\" detection was rewritten after 4.0 (wireshark issue #18558, "
        "merge request !8988: it relies on the unacked-segment list instead of maxseqtobeacked "
        "after a loss); tracer implements the 4.0 rule",
    ),
}


def differs(field: str) -> str | None:
    """Why the installed tshark's ``field`` is not 4.0's (None when it is the same)."""
    entry = DIFFERENCES.get(field)
    if entry is None or tshark_version()[:2] < entry[0]:
        return None
    return f"{version_text()}: {entry[1]}"


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
        assert len(r) == len(fields), f"{version_text()}: {len(r)} fields, expected {len(fields)}: {r!r}"
    return rows


@cache
def _run_tshark(cmd: tuple[str, ...], _mtime_ns: int, _size: int) -> str:
    # Cached per (command, file version): several tests ask for the same fields.
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{version_text()} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return proc.stdout


