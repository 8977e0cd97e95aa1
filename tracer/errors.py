"""Errors the user sees, each a keyed catalogue text (tracer.i18n) with its parameters.

``CaptureError("pcap.no_file", name=path)`` keeps ``key`` and ``params`` and renders
``text(lang)`` through the catalogue, on one line; ``message`` (also ``str(err)``) is the
English rendering, ``message_zh`` the Chinese one.
The exit codes' meanings are catalogue keys ``exit.*``.

The CLI catches ``TracerError``, prints ``err.text(lang)`` and exits with
``err.exit_code``.  The exit codes are documented and stable.
"""

from __future__ import annotations

from tracer.i18n import both, t

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: anything that is not a TracerError
EXIT_INPUT = 2  # input file missing, unreadable, not a capture, unsupported version
EXIT_USAGE = 3  # bad command line
EXIT_PRIVILEGES = 4  # needs root / CAP_NET_ADMIN
EXIT_MISSING_TOOL = 5  # an external tool (tshark, tcpdump, ...) is missing
EXIT_CHECK_FAILED = 6  # tracer run --check: the run differs from the scenario's EXPECT
EXIT_INTERRUPTED = 130  # Ctrl-C

# Exit code -> its name; the meaning is catalogue key ``exit.<name>``.
EXIT_NAMES: dict[int, str] = {
    EXIT_OK: "ok",
    EXIT_INTERNAL: "internal",
    EXIT_INPUT: "input",
    EXIT_USAGE: "usage",
    EXIT_PRIVILEGES: "privileges",
    EXIT_MISSING_TOOL: "missing_tool",
    EXIT_CHECK_FAILED: "check_failed",
    EXIT_INTERRUPTED: "interrupted",
}
EXIT_CODES: dict[int, tuple[str, str]] = {code: both(f"exit.{name}") for code, name in EXIT_NAMES.items()}


def _one_line(text: str) -> str:
    return " ".join(text.split())


class TracerError(Exception):
    """A failure explained to the user: a catalogue key and its parameters
    (``UsageError("cli.bad_stream", value=v)``); ``str(err)`` is the English message."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, key: str, /, *, exit_code: int | None = None, **params: object) -> None:
        self.key = key
        self.params = params
        self.message = self.text("en")
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__(self.message)

    def text(self, lang: str) -> str:
        """The one-line message in ``lang`` (English for an unknown language)."""
        return _one_line(t(self.key, lang, **self.params))

    @property
    def message_zh(self) -> str:
        """The one-line Simplified Chinese message."""
        return self.text("zh")


class CaptureError(TracerError):
    """The capture file is missing, unreadable, not a capture, or an unsupported version."""

    exit_code = EXIT_INPUT


class UsageError(TracerError):
    """The command line is wrong."""

    exit_code = EXIT_USAGE


class PrivilegeError(TracerError):
    """The operation needs privileges the process does not have."""

    exit_code = EXIT_PRIVILEGES


class MissingToolError(TracerError):
    """An external program tracer needs is not installed."""

    exit_code = EXIT_MISSING_TOOL
