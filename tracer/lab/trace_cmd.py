"""``tracer trace``: programs tracer did not write, in the lab, under strace.

``trace_programs(server, client, out)`` runs one lab session (``tracer.lab.session``:
lab, sniffer, the saved pcapng, exactly as ``tracer run``) whose programs are the
command lines: each runs with ``sh -c`` inside its host's namespace under ``strace``
(``tracer.lab.strace.strace_argv``), with ``TRACER_SERVER`` (and ``TRACER_SERVER6``)
in the environment and ``{server}`` (``{server6}``) in the command replaced by the
server host's address.  The server goes first; the client starts once the server's
namespace has a listening TCP socket or a bound UDP socket (``ss``).  When the client
has ended, the server gets ``DRAIN`` seconds to end by itself and is then stopped
(SIGTERM to every process strace traces, SIGKILL a second later).  The strace
outputs become the calls (``tracer.lab.strace.parse``), the capture the packets.

Errors (exit code 2, the capture is still saved, the error is also a warning in it):
a command that exits with a non-zero status (a server only if it ended by itself),
a server that never listens, the ``timeout`` for the whole run.  Without strace:
``TracerError`` with exit code 5.  Ctrl-C / SIGTERM (as ``KeyboardInterrupt``) and
``cancel`` stop the run and still save the capture.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tracer.core.model import SocketCall, TraceWarning
from tracer.core.trace import Trace
from tracer.errors import EXIT_INPUT, EXIT_MISSING_TOOL, EXIT_PRIVILEGES, TracerError
from tracer.i18n import Msg
from tracer.lab.netns import SIDES, Host, Lab
from tracer.lab.session import (
    Programs,
    Progress,
    RunResult,
    check_privileges,
    default_output,
    run_session,
)
from tracer.lab.strace import Parsed, complete_endpoints, parse, strace_argv

DRAIN = 0.3  # seconds the server may take to end by itself after the client
STOP_GRACE = 1.0  # seconds between SIGTERM and SIGKILL
OUTPUT_KEEP = 16 << 10  # the last bytes of each program's output kept in the capture
_POLL = 0.02
_STOP_SIGNALS = frozenset({"SIGTERM", "SIGKILL"})


def require_strace() -> str:
    """The path of strace, or a ``TracerError`` (exit 5) saying how to install it."""
    path = shutil.which("strace")
    if path is None:
        raise TracerError("lab.strace_missing", exit_code=EXIT_MISSING_TOOL)
    return path


@functools.cache
def strace_has_ns(strace: str) -> bool:
    """Whether this strace prints nanoseconds (``--timestamps=unix,ns``); raises if it cannot trace."""
    why = ""
    for ns in (True, False):
        argv = [*strace_argv(strace, os.devnull, ns=ns), strace, "-V"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
        if proc.returncode == 0:
            return ns
        lines = proc.stderr.strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
    raise TracerError("lab.strace_cannot_trace", why=why, exit_code=EXIT_PRIVILEGES)


def command_name(command: str) -> str:
    """A file-name-safe name for a command line: its program's name (``./a.out x`` -> ``a.out``)."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    name = re.sub(r"[^A-Za-z0-9._-]", "", os.path.basename(words[0]) if words else "")[:40].strip(".")
    return name or "program"


def _tracees(strace_pid: int) -> list[int]:
    """The processes (thread groups) that strace ``strace_pid`` traces."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{entry.name}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    if int(line.split()[1]) == strace_pid:
                        out.append(int(entry.name))
                    break
    return out


class _Program:
    """One command line running under strace in a host's namespace."""

    def __init__(self, host: Host, side: str, command: str, env: dict[str, str], tmp: Path, strace: str,
                 ns: bool) -> None:
        self.side = side
        self.command = command
        self.log = tmp / f"{side}.strace"
        self.out = tmp / f"{side}.out"
        self.signalled = False  # tracer stopped it
        argv = host.argv([*strace_argv(strace, self.log, ns=ns), "sh", "-c", command])
        with open(self.out, "wb") as out:
            # Own session: a terminal's Ctrl-C reaches tracer, which stops the programs itself.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                         start_new_session=True)

    def stop(self) -> None:
        """SIGTERM every traced process, SIGKILL what is left after ``STOP_GRACE``; wait for strace."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                return
            for pid in _tracees(self.proc.pid):
                self.signalled = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_GRACE)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def parsed(self) -> Parsed:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        return parse(text, self.side, expected_signals=_STOP_SIGNALS if self.signalled else frozenset())

    def output(self) -> str:
        """The end of what the command printed (stdout and stderr together)."""
        try:
            with open(self.out, "rb") as f:
                f.seek(max(0, self.out.stat().st_size - OUTPUT_KEEP))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def failure(self) -> Msg | None:
        """How the command failed (its exit status and last line of output), a catalogue text."""
        code = self.proc.poll()
        if code is None or code == 0 or (self.signalled and _killed_by_stop(code)):
            return None
        if code < 0 and -code in _SIGNALS:
            name = signal.Signals(-code).name
            how = Msg("lab.killed_by", signal=name)
        else:
            how = Msg("lab.exit_status", code=code)
        lines = [x.strip() for x in self.output().splitlines() if x.strip()]
        return Msg("lab.failure_output", how=how, line=lines[-1]) if lines else how


_SIGNALS = {s.value for s in signal.Signals}


def _killed_by_stop(code: int) -> bool:
    """An exit status that tracer's own SIGTERM/SIGKILL explains (strace or sh reports it)."""
    return code in (-signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM, 128 + signal.SIGKILL)


def _listening(host: Host) -> bool:
    """Whether the host's namespace has a listening TCP socket or a bound UDP socket."""
    out = host.run(["ss", "-H", "-t", "-u", "-l", "-n"], check=False, timeout=5).stdout
    return any(line.strip() for line in out.splitlines())


def _failed(side: str, why: Msg) -> TracerError:
    return TracerError("lab.command_failed", side=SIDES[side], why=why, exit_code=EXIT_INPUT)


def _timeout_error(timeout: float) -> TracerError:
    return TracerError("lab.trace_timeout", timeout=timeout, exit_code=EXIT_INPUT)


def _never_listened(timeout: float) -> TracerError:
    return TracerError("lab.never_listened", timeout=timeout, exit_code=EXIT_INPUT)


def _play(lab: Lab, server: str | None, client: str, tmp: Path, programs: list[_Program], timeout: float,
          strace: str, ns: bool, poll: Callable[[], None]) -> tuple[TracerError | None, str | None]:
    """Run the commands; the error that ended the run, if any, and the side whose command failed."""
    deadline = time.monotonic() + timeout
    ip, ip6 = lab.server.ip, lab.server.ip6
    env = {**os.environ, "TRACER_SERVER": ip, "TRACER_SERVER6": ip6}

    def start(host: Host, side: str, command: str) -> _Program:
        command = command.replace("{server}", ip).replace("{server6}", ip6)
        prog = _Program(host, side, command, env, tmp, strace, ns)
        programs.append(prog)
        return prog

    srv = None
    if server is not None:
        srv = start(lab.server, "server", server)
        while not _listening(lab.server):
            if srv.proc.poll() is not None:
                how = srv.failure() or Msg("lab.exit_status", code=0)
                return _failed("server", Msg("lab.ended_before_listening", how=how)), "server"
            if time.monotonic() > deadline:
                return _never_listened(timeout), None
            time.sleep(_POLL)
            poll()
    cli = start(lab.client, "client", client)
    while cli.proc.poll() is None:
        if time.monotonic() > deadline:
            return _timeout_error(timeout), None
        time.sleep(_POLL)
        poll()
    if srv is not None:
        end = min(time.monotonic() + DRAIN, deadline)
        while srv.proc.poll() is None and time.monotonic() < end:
            time.sleep(_POLL)
            poll()
    why = cli.failure()
    if why is not None:
        return _failed("client", why), "client"
    if srv is not None and srv.proc.poll() is not None:
        why = srv.failure()
        if why is not None:
            return _failed("server", why), "server"
    return None, None


def _calls(parsed: list[Parsed]) -> tuple[SocketCall, ...]:
    calls = sorted((c for p in parsed for c in p.calls), key=lambda c: (c.t_enter_ns, c.side, c.id))
    return tuple(dataclasses.replace(c, id=i) for i, c in enumerate(calls))


class _Commands(Programs):
    """The command lines under strace as a session's programs."""

    def __init__(self, server: str | None, client: str, loopback: bool, timeout: float, strace: str, ns: bool,
                 strace_dir: Path | None) -> None:
        self.server, self.client, self.loopback, self.timeout = server, client, loopback, timeout
        self.strace, self.ns, self.strace_dir = strace, ns, strace_dir
        self.programs: list[_Program] = []
        self.failed: str | None = None  # the side whose command failed
        self.parsed: list[Parsed] | None = None  # the strace outputs, once the programs have ended

    def play(self, lab: Lab, tmp: Path, poll: Callable[[], None]) -> TracerError | None:
        error, self.failed = _play(lab, self.server, self.client, tmp, self.programs, self.timeout,
                                   self.strace, self.ns, poll)
        return error

    def stop(self) -> None:
        for prog in self.programs:
            prog.stop()
        self.parsed = [p.parsed() for p in self.programs]

    def _parsed(self) -> list[Parsed]:
        return self.parsed if self.parsed is not None else [p.parsed() for p in self.programs]

    def meta(self) -> dict[str, str]:
        out = {"lab": "loopback" if self.loopback else "veth", "trace.clock": "ns" if self.ns else "us"}
        for prog in self.programs:
            out[f"trace.{prog.side}.command"] = prog.command
            out[f"trace.{prog.side}.output"] = prog.output()
        return out

    def calls(self, trace: Trace) -> tuple[SocketCall, ...]:
        return complete_endpoints(_calls(self._parsed()), trace.packets)

    def warnings(self) -> tuple[TraceWarning, ...]:
        return tuple(w for p in self._parsed() for w in p.warnings)

    def failed_at_ns(self) -> int | None:
        """A command's failure is placed where its last process ended."""
        ends = [pr.t_end_ns for prog, p in zip(self.programs, self._parsed(), strict=True)
                if prog.side == self.failed for pr in p.processes if pr.t_end_ns is not None]
        return max(ends) if ends else None

    def keep(self) -> None:
        if self.strace_dir is not None:
            self.strace_dir.mkdir(parents=True, exist_ok=True)
            for prog in self.programs:
                for f in (prog.log, prog.out):
                    if f.exists():
                        shutil.copyfile(f, self.strace_dir / f.name)


def trace_programs(server: str | None, client: str, out: Path | None = None, *, loopback: bool = False,
                   lang: str = "en", timeout: float = 10.0, progress: Progress | None = None,
                   cancel: threading.Event | None = None, strace_dir: Path | None = None,
                   witness: bool = True) -> RunResult:
    """Run ``server`` (optional) and ``client`` under strace in a fresh lab; save the attributed capture.

    See the module docstring.  ``strace_dir``: also keep each side's strace output
    (``server.strace``, ``client.strace``) and printed output (``*.out``) there.
    ``witness=False``: without the kernel witness (``--no-witness``).
    """
    strace = require_strace()
    check_privileges("tracer trace")
    ns = strace_has_ns(strace)
    path = out if out is not None else default_output(f"trace-{command_name(client)}")
    commands = _Commands(server, client, loopback, timeout, strace, ns, strace_dir)
    return run_session(commands, path, name="trace", loopback=loopback, lang=lang, progress=progress,
                       cancel=cancel, witness=witness)
