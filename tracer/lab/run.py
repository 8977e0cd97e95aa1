"""``tracer run``: one scenario from start to a saved, attributed capture.

A scenario (``tracer.lab.scenarios``, docs/scenarios.md) has a ``client(host,
port)`` part and optionally a ``server(host, port)`` part.  A part with a third
parameter gets ``mark``: ``mark("label")`` pauses it while tracer records every
namespace's kernel socket states under that label.

``run_scenario`` runs one lab session (``tracer.lab.session``: lab, sniffer, the
saved pcapng) whose programs are the scenario's parts: it puts the scenario's
impairments in force, runs the server part under the socket-call recorder in the
server's namespace (as the unprivileged user ``nobody`` when it exists), waits
until the kernel shows a socket bound to ``PORT`` (``ss``), runs the client part in
the client's namespace and waits for both (``timeout`` for the whole run).  The
recorded calls, the marks' kernel states and the scenario's source go into the
capture; a part that fails or hangs is the run's error, placed when its code
raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tracer.core.model import KernelSocketState, SocketCall
from tracer.core.trace import Trace
from tracer.errors import EXIT_INPUT, TracerError
from tracer.lab.netns import SIDES, Host, Lab
from tracer.lab.recorder import load_calls
from tracer.lab.scenarios import SCENARIO_DIR, Scenario
from tracer.lab.session import (
    Programs,
    Progress,
    RunResult,
    check_privileges,
    default_output,
    lab_states,
    run_session,
)

LAUNCHER = SCENARIO_DIR / "_launch.py"
_POLL = 0.02
SCENARIO_USER = "nobody"


_FAILED_AT = "tracer-failed-at "


class _Part:
    """One side of the scenario running under the recorder in a host's namespace."""

    def __init__(self, host: Host, side: str, sc: Scenario, server_ip: str, tmp: Path) -> None:
        self.side = side
        self.calls = tmp / f"{side}.jsonl"
        self.err = tmp / f"{side}.stderr"
        # mark(label): the part writes the label on one pipe and waits for a byte on the other.
        self.mark_r, mark_w = os.pipe()
        ack_r, self.ack_w = os.pipe()
        self.buf = b""
        argv = [sys.executable, "-m", "tracer.lab.recorder", "--out", str(self.calls), "--side", side,
                *_user_args(), str(LAUNCHER), str(sc.path), side, server_ip, str(sc.port),
                str(mark_w), str(ack_r)]
        try:
            with open(tmp / f"{side}.stdout", "wb") as out, open(self.err, "wb") as err:
                # Own session: a terminal's Ctrl-C reaches tracer, which ends the parts itself.
                self.proc = subprocess.Popen(host.argv(argv), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                             start_new_session=True, pass_fds=(mark_w, ack_r))
        finally:
            os.close(mark_w)
            os.close(ack_r)
        # The source goes through stdin: the unprivileged part may not be allowed to read the file.
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), self.proc.stdin:
            self.proc.stdin.write(sc.path.read_bytes())

    def failure(self) -> str | None:
        """The last line of the part's error output if it failed, else None."""
        code = self.proc.poll()
        if code in (None, 0):
            return None
        lines = [x for x in self.err.read_text(errors="replace").splitlines()
                 if x.strip() and not x.startswith(_FAILED_AT)]
        return lines[-1].strip() if lines else f"exit status {code}"

    def failed_at_ns(self) -> int | None:
        """When the part's code raised (written by ``scenarios/_launch.py``), if it did."""
        if not self.err.exists():
            return None
        for line in self.err.read_text(errors="replace").splitlines():
            if line.startswith(_FAILED_AT):
                with contextlib.suppress(ValueError):
                    return int(line[len(_FAILED_AT):])
        return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self.mark_r, self.ack_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.mark_r = self.ack_w = -1


def _serve_marks(lab: Lab, parts: list[_Part], states: list[KernelSocketState], wait: float) -> None:
    """Wait up to ``wait`` s for parts' marks; answer each after recording the kernel states."""
    fds = {p.mark_r: p for p in parts if p.mark_r >= 0}
    if not fds:
        time.sleep(max(0.0, wait))
        return
    for fd in select.select(list(fds), [], [], max(0.0, wait))[0]:
        part = fds[fd]
        chunk = os.read(fd, 4096)
        if not chunk:  # the part ended
            os.close(fd)
            part.mark_r = -1
            continue
        part.buf += chunk
        while b"\n" in part.buf:
            line, _, part.buf = part.buf.partition(b"\n")
            label = " ".join(line.decode(errors="replace").split())[:100]
            states.extend(lab_states(lab, label))
            with contextlib.suppress(OSError):
                os.write(part.ack_w, b"k")


def _user_args() -> list[str]:
    """The scenario runs as ``nobody`` where that user exists: it needs no privileges."""
    try:
        pwd.getpwnam(SCENARIO_USER)
    except KeyError:
        return []
    return ["--user", SCENARIO_USER]


def _bound(host: Host, proto: str, port: int) -> bool:
    argv = ["ss", "-tlnH"] if proto == "tcp" else ["ss", "-ulnH"]
    out = host.run(argv, check=False, timeout=5).stdout
    return any(len(p) >= 4 and p[3].endswith(f":{port}") for p in (x.split() for x in out.splitlines()))


def _scenario_error(side: str, what: str) -> TracerError:
    return TracerError("lab.scenario_failed", side=SIDES[side], what=what, exit_code=EXIT_INPUT)


def _play(lab: Lab, sc: Scenario, tmp: Path, parts: list[_Part], states: list[KernelSocketState],
          timeout: float, poll: Callable[[], None] = lambda: None) -> TracerError | None:
    """Run the scenario's parts (marks add to ``states``); the error that ended it, if any.

    ``poll`` is called between waits (live progress; it may raise ``KeyboardInterrupt``)."""
    deadline = time.monotonic() + timeout
    server_ip = lab.server.ip
    if sc.has_server:
        server = _Part(lab.server, "server", sc, server_ip, tmp)
        parts.append(server)
        while not _bound(lab.server, sc.proto, sc.port):
            if server.proc.poll() is not None:
                return _scenario_error("server", server.failure() or f"it ended before using port {sc.port}")
            if time.monotonic() > deadline:
                return _timeout_error(timeout)
            _serve_marks(lab, parts, states, _POLL)
            poll()
    parts.append(_Part(lab.client, "client", sc, server_ip, tmp))
    for part in reversed(parts):  # the client first: a server may wait for it
        while part.proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return _timeout_error(timeout)
            _serve_marks(lab, parts, states, min(left, 0.05))
            poll()
        why = part.failure()
        if why is not None:
            return _scenario_error(part.side, why)
    return None


def _timeout_error(timeout: float) -> TracerError:
    return TracerError("lab.scenario_timeout", timeout=timeout, exit_code=EXIT_INPUT)


def _calls(parts: list[_Part]) -> tuple[SocketCall, ...]:
    calls = [c for p in parts if p.calls.exists() for c in load_calls(p.calls)]
    calls.sort(key=lambda c: (c.t_enter_ns, c.side))
    return tuple(dataclasses.replace(c, id=i) for i, c in enumerate(calls))


def _impair(stack: contextlib.ExitStack, lab: Lab, sc: Scenario) -> None:
    """Put the scenario's impairments in force on its hosts until ``stack`` closes."""
    from tracer.lab import impair

    specs = [impair.parse_spec(s, sc.port) for s in sc.impair]
    hosts = {"client": lab.client, "server": lab.server}
    for name, host in hosts.items():
        rules = [s.impairment for s in specs if s.host == name and s.impairment is not None]
        if rules:
            stack.enter_context(impair.apply(host, rules))
        if any(s.host == name and s.impairment is None for s in specs):
            stack.enter_context(impair.one_segment_per_frame(host))


def _source_text(sc: Scenario) -> str:
    """The scenario's code, kept in the capture so a replay can show the line of each call."""
    try:
        return sc.path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


class _ScenarioParts(Programs):
    """The scenario's parts as a session's programs."""

    def __init__(self, sc: Scenario, loopback: bool, timeout: float) -> None:
        self.sc, self.loopback, self.timeout = sc, loopback, timeout
        self.parts: list[_Part] = []
        self.marks: list[KernelSocketState] = []
        self.raised: list[int] = []

    def prepare(self, stack: contextlib.ExitStack, lab: Lab) -> None:
        _impair(stack, lab, self.sc)

    def play(self, lab: Lab, tmp: Path, poll: Callable[[], None]) -> TracerError | None:
        return _play(lab, self.sc, tmp, self.parts, self.marks, self.timeout, poll)

    def stop(self) -> None:
        self.raised = [t for p in self.parts if (t := p.failed_at_ns()) is not None]
        for part in self.parts:
            part.kill()

    def meta(self) -> dict[str, str]:
        return {"scenario": self.sc.name, "scenario.source": _source_text(self.sc),
                "lab": "loopback" if self.loopback else "veth"}

    def calls(self, trace: Trace) -> tuple[SocketCall, ...]:
        return _calls(self.parts)

    def states(self) -> tuple[KernelSocketState, ...]:
        return tuple(self.marks)

    def failed_at_ns(self) -> int | None:
        return min(self.raised) if self.raised else None


def run_scenario(sc: Scenario, out: Path | None = None, *, loopback: bool = False, lang: str = "en",
                 timeout: float = 10.0, progress: Progress | None = None,
                 cancel: threading.Event | None = None, witness: bool = True) -> RunResult:
    """Run ``sc`` in a fresh lab and save the attributed capture (see the module docstring).

    ``progress`` gets the trace so far and its analysis every ``PROGRESS_EVERY``
    seconds while the scenario runs (the TUI's live mode); setting ``cancel`` stops
    the run as Ctrl-C would, and the capture so far is still saved.  ``witness=False``:
    without the kernel witness (``tracer run --no-witness``)."""
    check_privileges()
    path = out if out is not None else default_output(sc.name)
    return run_session(_ScenarioParts(sc, loopback, timeout), path, name="run", loopback=loopback, lang=lang,
                       progress=progress, cancel=cancel, witness=witness)
