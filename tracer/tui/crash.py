"""An internal error inside the terminal UI: a crash report file and a one-line error.

No Textual here.  The app hands its first unhandled error (its own code, a message
handler, a worker) to ``ui_crash``, which writes the traceback to a report file of
its own and returns a ``TracerError`` whose one line names that file; the command
line prints it like any other error and exits 1 (``EXIT_INTERNAL``).

The report goes to ``$XDG_STATE_HOME/tracer`` (``~/.local/state/tracer`` by
default), else the temporary directory; it is created with mode 0600 (a traceback
can show paths and addresses of the user's capture).  When neither is writable
the line says why instead of naming a file.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path

from tracer import __version__
from tracer.errors import EXIT_INTERNAL, TracerError

DETAIL_MAX = 200  # characters of the error's own text on the one line; the report has it all


def report_dirs() -> list[Path]:
    """Where a crash report may go, in order of preference."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return [base / "tracer", Path(tempfile.gettempdir())]


def report_text(error: BaseException, when: datetime) -> str:
    """The report: what ran, where, and the full traceback (chained causes included)."""
    head = [
        f"tracer {__version__}: internal error in the terminal UI at {when.isoformat(timespec='seconds')}",
        f"command: {' '.join(sys.argv)}",
        f"python {platform.python_version()} on {platform.platform()}",
    ]
    return "\n".join(head) + "\n\n" + "".join(traceback.format_exception(error))


def save_report(error: BaseException, when: datetime | None = None) -> tuple[Path | None, str]:
    """Write the report to the first writable place: ``(path, "")``, or ``(None, why)``."""
    when = when or datetime.now()
    text = report_text(error, when)
    why = ""
    for folder in report_dirs():
        path = folder / f"tracer-crash-{when:%Y%m%d-%H%M%S}-{os.getpid()}.txt"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            why = f"{e.filename or folder}: {e.strerror or e}"
            continue
        return path, ""
    return None, why


def ui_crash(error: BaseException) -> TracerError:
    """Save ``error``'s report; the one-line error (exit 1) the command shows for it."""
    path, why = save_report(error)
    detail = " ".join(f"{type(error).__name__}: {error}".split())
    if len(detail) > DETAIL_MAX:
        detail = detail[:DETAIL_MAX - 1] + "…"
    if path is not None:
        return TracerError("tui.crashed", error=detail, path=path, exit_code=EXIT_INTERNAL)
    return TracerError("tui.crashed_unsaved", error=detail, why=why, exit_code=EXIT_INTERNAL)
