"""The interactive terminal UI (Textual): ``run_tui``, ``replay`` and ``live``.

Textual is imported only when the UI starts, so the command line stays fast for
``--no-tui`` and for errors; the row model (``tracer.ladder``) imports no Textual
at all.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tracer.core.analysis import Analysis
from tracer.core.trace import Trace

if TYPE_CHECKING:
    from tracer.lab.scenarios import Scenario
    from tracer.lab.session import Progress, RunResult
    from tracer.tui.app import LiveOutcome, TracerApp

HEAD_BYTES = 4 << 20  # a bigger file shows its first 4 MiB at once, then the rest


def run_tui(trace: Trace, analysis: Analysis, lang: str = "en", *, stream: tuple[int, int] | None = None,
            raw_seq: bool = False) -> None:
    """Show an analysed trace."""
    from tracer.tui.app import TracerApp

    _run(TracerApp(trace=trace, analysis=analysis, lang=lang, stream=stream, raw_seq=raw_seq,
                   source_name=Path(trace.meta.source).name))


def _run(app: TracerApp) -> None:
    """Run the app; an internal error in it raises its one-line ``TracerError`` (exit 1)
    naming the crash report, once the terminal is restored (``tracer.tui.crash``)."""
    app.run()
    if app.crash is not None:
        raise app.crash


def replay(path: str, lang: str = "en", *, stream: tuple[int, int] | None = None,
           raw_seq: bool = False, present: str = "") -> None:
    """Open a capture file: a small one is read first; a big one shows its head at
    once and loads in a worker.  Errors reading the file raise before the UI starts."""
    from tracer.core.pipeline import analyze
    from tracer.pcap.reader import read_capture, read_capture_head
    from tracer.tui.app import TracerApp

    head = read_capture_head(path, HEAD_BYTES)
    if head is None:
        trace = read_capture(path)
        app = TracerApp(trace=trace, analysis=analyze(trace), lang=lang, stream=stream, raw_seq=raw_seq,
                        source_name=Path(path).name, present=present)
    else:
        app = TracerApp(trace=head, analysis=analyze(head), path=path, lang=lang, stream=stream,
                        raw_seq=raw_seq, present=present)
    _run(app)


def live(scenario: Scenario | None, out: Path | None, *, loopback: bool, timeout: float, lang: str = "en",
         runner: Callable[[Progress, threading.Event], RunResult] | None = None, name: str = "",
         present: str = "") -> LiveOutcome:
    """Run a scenario (or ``runner(progress, cancel)``: tracer trace) in the lab while
    the app shows its rows as they arrive."""
    from tracer.tui.app import LiveSpec, TracerApp

    app = TracerApp(live=LiveSpec(scenario, out, loopback, timeout, runner, name), lang=lang, present=present)
    try:
        app.run()
    finally:
        app.finish_live()
    if app.crash is not None:
        # The run stopped as on Ctrl-C and saved its capture: the command reports the
        # capture, then the crash as the error (exit 1), not as an interruption.
        return dataclasses.replace(app.live_outcome, error=app.crash, interrupted=False)
    return app.live_outcome
