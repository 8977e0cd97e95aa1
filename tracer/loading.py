"""Loading a capture file for the commands: read it, analyse it, and turn every
failure into a one-line ``TracerError``."""

from __future__ import annotations

from pathlib import Path

from tracer.core.analysis import Analysis
from tracer.core.trace import Trace
from tracer.errors import CaptureError, TracerError


def load(path: str) -> tuple[Trace, Analysis]:
    """Read and analyse a capture file; every failure is a ``TracerError``."""
    from tracer.core.pipeline import analyze
    from tracer.pcap.reader import read_capture

    p = Path(path)
    try:
        trace = read_capture(p)
    except TracerError:
        raise
    except OSError as e:
        why = e.strerror or str(e)
        raise CaptureError("cli.cannot_read", path=path, why=why) from e
    return trace, analyze(trace)
