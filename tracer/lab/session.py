"""One lab session: what ``tracer run`` and ``tracer trace`` share, from lab to saved capture.

``run_session(programs, path, ...)`` builds a ``Lab`` (two hosts on a veth pair, or
one host on ``lo``), starts the ``Sniffer`` on the server's interface, lets
``programs`` play (the scenario's parts under the recorder, ``tracer.lab.run``; any
command lines under strace, ``tracer.lab.trace_cmd``), then stops them, takes the
kernel's socket states in each namespace (``kernel_states.snapshot``), builds the
metadata, analyses and writes one pcapng holding packets, comments, calls and
kernel states.  ``Programs`` is all that differs between the two commands: how the
programs start and end, and how their calls, metadata and warnings are recorded.

The kernel witness (``tracer.lab.witness``; not with ``witness=False``, i.e.
``--no-witness``) records the run beside the capture; its account is tied to the
frames (``kernel_account``), and the lab's ListenOverflows/ListenDrops counters, read
at the start and the end, mark the SYNs a full accept queue swallowed
(``listen_overflow_drops``).  The analysis' state disagreements with the kernel are a
warning (``kernel_states_disagree``).

A run that fails or hangs, and SIGINT/SIGTERM (raised as ``KeyboardInterrupt`` by
the caller, see ``signals_as_interrupt``) or ``cancel``, still save the capture so
far; the lab (namespaces, veth, nft tables, processes) is always removed, with
further signals ignored while that happens.  ``progress`` gets the trace so far and
its analysis every ``PROGRESS_EVERY`` s (the TUI's live mode).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.kernel_causes import kernel_call_times
from tracer.core.model import KernelSocketState, SocketCall, TraceWarning
from tracer.core.trace import Trace
from tracer.core.witness import KernelAccount, KernelRecord, account, listen_overflow_drops
from tracer.errors import EXIT_PRIVILEGES, TracerError
from tracer.lab.kernel_states import snapshot
from tracer.lab.netns import Lab
from tracer.lab.sniffer import CaptureStats, Sniffer, counters_delta, parse_snmp
from tracer.lab.witness import Witness, WitnessUnavailable

# Capabilities the lab needs: CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_ADMIN (21).
_NEEDED_CAPS = {12: "CAP_NET_ADMIN", 13: "CAP_NET_RAW", 21: "CAP_SYS_ADMIN"}

Progress = Callable[[Trace, Analysis], None]
PROGRESS_EVERY = 0.1  # seconds between live snapshots


@dataclass(frozen=True, eq=False)
class RunResult:
    """A finished run: where it was saved, what was captured, and what went wrong."""

    path: Path
    trace: Trace
    analysis: Analysis
    error: TracerError | None  # the scenario or a command failed or timed out
    interrupted: bool  # SIGINT/SIGTERM ended the run early


def check_privileges(command: str = "tracer run") -> None:
    """Raise (exit 4) unless this process may build a lab for ``command``."""
    missing = list(_NEEDED_CAPS.values())
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                eff = int(line.split()[1], 16)
                missing = [n for bit, n in _NEEDED_CAPS.items() if not eff >> bit & 1]
    if missing:
        raise TracerError("lab.needs_privileges", command=command, missing="+".join(missing),
                          exit_code=EXIT_PRIVILEGES)


def default_output(name: str, directory: Path = Path("captures")) -> Path:
    """``captures/<name>-<time>.pcapng``, with a suffix if that exists: never overwrites."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.pcapng"
    n = 2
    while os.path.lexists(path):
        path = directory / f"{name}-{stamp}-{n}.pcapng"
        n += 1
    return path


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` like SIGINT does, inside the block."""
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


_Handler = Callable[[int, FrameType | None], Any] | int | None  # what signal.signal returns


def _ignore_signals() -> dict[int, _Handler]:
    """Ignore SIGINT and SIGTERM (while cleaning up); the old handlers, for ``_restore``.

    Only the main thread can set handlers: a run in a worker thread (the TUI's live
    mode) is stopped through ``cancel`` instead, and its caller owns the signals."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore(old: dict[int, _Handler]) -> None:
    for s, h in old.items():
        signal.signal(s, h)


def lab_states(lab: Lab, label: str) -> tuple[KernelSocketState, ...]:
    """Every namespace's kernel socket states now, each host under its stored name."""
    hosts = (("lo", lab.client),) if lab.loopback else (("client", lab.client), ("server", lab.server))
    return tuple(s for name, host in hosts for s in snapshot(host, name, label))


def captured_so_far(sniffer: Sniffer) -> Trace | None:
    """The frames a running capture holds so far (the sniffer flushes its file when idle)."""
    from tracer.pcap.reader import read_capture

    if sniffer.path is None or not sniffer.path.exists() or sniffer.path.stat().st_size < 24:
        return None
    try:
        return read_capture(sniffer.path)
    except TracerError:
        return None


def poller(cancel: threading.Event | None, progress: Progress | None,
           so_far: Callable[[], Trace | None]) -> Callable[[], None]:
    """The ``poll`` of a run: raises ``KeyboardInterrupt`` once ``cancel`` is set, and
    hands ``progress`` the trace so far (``so_far()``), analysed, every ``PROGRESS_EVERY`` s."""
    from tracer.core.pipeline import analyze

    last = [0.0]

    def poll() -> None:
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        if progress is not None and time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            live = so_far()
            if live is not None:
                progress(live, analyze(live))

    return poll


class Programs(abc.ABC):
    """What one command runs in a session's lab, and what it recorded."""

    def prepare(self, stack: contextlib.ExitStack, lab: Lab) -> None:  # noqa: B027 (optional hook)
        """Put what the run needs in force until ``stack`` closes (before ``stop``)."""

    @abc.abstractmethod
    def play(self, lab: Lab, tmp: Path, poll: Callable[[], None]) -> TracerError | None:
        """Run the programs (their files in ``tmp``); the error that ended the run, if any.

        ``poll`` is called between waits (live progress; it may raise ``KeyboardInterrupt``)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """End whatever still runs; called once after ``play``, even if it was interrupted."""

    @abc.abstractmethod
    def meta(self) -> dict[str, str]:
        """The run's metadata kept in the capture (also in the live snapshots)."""

    @abc.abstractmethod
    def calls(self, trace: Trace) -> tuple[SocketCall, ...]:
        """The socket calls recorded so far, numbered, for the packets of ``trace``."""

    def states(self) -> tuple[KernelSocketState, ...]:
        """Kernel socket states recorded while playing (the session adds the end's)."""
        return ()

    def warnings(self) -> tuple[TraceWarning, ...]:
        """Warnings about the programs (a timed one is placed after the packet it follows)."""
        return ()

    def failed_at_ns(self) -> int | None:
        """When the failure ``play`` returned happened, if known (else: when the run stopped)."""
        return None

    def keep(self) -> None:  # noqa: B027 (optional hook)
        """After the capture is saved, before the programs' files are removed."""


def _placed(trace: Trace, w: TraceWarning) -> TraceWarning:
    """A timed warning with the packet it follows."""
    if w.t_ns is None or w.packet_no is not None:
        return w
    n = int(np.count_nonzero(trace.packets.ts_ns <= w.t_ns))
    return dataclasses.replace(w, packet_no=n or None)


_COUNTERS = ("Tcp.OutSegs", "Tcp.RetransSegs", "Tcp.InSegs", "Udp.OutDatagrams", "Udp.InDatagrams",
             "Udp6.OutDatagrams", "Udp6.InDatagrams")


def _capture_meta(st: CaptureStats) -> dict[str, str]:
    """What the capture saw beside the kernel's own counts, kept in the saved file."""
    out = {"capture.frames": str(st.frames)}
    seen = (
        ("capture.received", st.received),
        ("capture.duplicates_removed", st.duplicates),
        ("capture.kernel_packets", st.kernel_packets),
        ("capture.kernel_drops", st.kernel_drops),
    )
    for key, value in seen:
        if value is not None:
            out[key] = str(value)
    for key in _COUNTERS:
        if st.counters is not None and key in st.counters:
            out[f"kernel.{key}"] = str(st.counters[key])
    return out


def _so_far(sniffer: Sniffer, programs: Programs) -> Trace | None:
    """What the run has captured and recorded so far."""
    trace = captured_so_far(sniffer)
    if trace is None:
        return None
    meta = dataclasses.replace(trace.meta, extra={**trace.meta.extra, **programs.meta()})
    # A record cut by the flush in progress is not a warning the user needs: it is read next time.
    return dataclasses.replace(trace, calls=programs.calls(trace), meta=meta, warnings=())


def _start_witness(lab: Lab) -> tuple[Witness | None, TraceWarning | None]:
    """The kernel witness on the lab's devices, or why there is none (the run goes on)."""
    from tracer.i18n import both

    devices = ("lo",) if lab.loopback else (lab.client.iface, lab.server.iface)
    try:
        w = Witness(devices)
        w.start()
    except WitnessUnavailable as e:
        note = both("witness.unavailable", why=e.text("en"))
        return None, TraceWarning("kernel_witness_unavailable", *note)
    return w, None


def kernel_account(lab: Lab, trace: Trace, records: list[KernelRecord], overrun: int) -> KernelAccount:
    """The witness's records tied to the frames of ``trace`` (each frame's sending device
    from its source address: the lab's hosts have fixed ones)."""
    t = trace.packets
    if lab.loopback:
        devs = ["lo"] * len(t)
        addresses = frozenset({lab.client.ip, lab.client.ip6})
    else:
        by_ip = {h.ip: h.iface for h in lab.hosts} | {h.ip6: h.iface for h in lab.hosts}
        devs = [by_ip.get(t.addresses[a], "") if a >= 0 else "" for a in t.src.tolist()]
        addresses = frozenset(by_ip)
    return account(t, records, devs, addresses=addresses, overrun=overrun)


# Where the kernel counts what it drops without a tracepoint (a SYN to a full accept queue).
LISTEN_COUNTERS = ("TcpExt.ListenOverflows", "TcpExt.ListenDrops")


def listen_counters(lab: Lab) -> dict[str, int]:
    """``LISTEN_COUNTERS`` summed over the lab's namespaces (``/proc/net/netstat``); {} if unreadable."""
    total = dict.fromkeys(LISTEN_COUNTERS, 0)
    for h in lab.hosts:
        proc = h.run(["cat", "/proc/net/netstat"], check=False, timeout=10)
        values = parse_snmp(proc.stdout) if proc.returncode == 0 else {}
        if not all(k in values for k in LISTEN_COUNTERS):
            return {}
        for k in LISTEN_COUNTERS:
            total[k] += values[k]
    return total


def _with_overflows(trace: Trace, k: KernelAccount,
                    delta: dict[str, int]) -> tuple[KernelAccount, list[TraceWarning]]:
    """The account with the listen-queue overflow drops the counters prove, or a warning
    that the unanswered SYNs and the kernel's count disagree."""
    from tracer.i18n import both

    counted = delta.get("TcpExt.ListenOverflows")
    if counted is None:
        return k, []
    k, syns = listen_overflow_drops(trace.packets, k, counted)
    if syns == counted:
        return k, []
    note = both("witness.overflow_mismatch", syns=syns, counted=counted)
    return k, [TraceWarning("kernel_listen_overflow_mismatch", *note)]


def _witness_warnings(k: KernelAccount) -> list[TraceWarning]:
    from tracer.i18n import both

    out = []
    if k.overrun:
        out.append(TraceWarning("kernel_witness_overrun", *both("witness.overrun", n=k.overrun)))
    return out


def _state_warnings(analysis: Analysis) -> list[TraceWarning]:
    """The kernel's states disagreeing with the wire rules' (counted, the first placed)."""
    from tracer.i18n import both

    rows = analysis.state_disagreements
    if not rows:
        return []
    note = both("witness.states_disagree", n=len(rows), first=rows[0] + 1)
    return [TraceWarning("kernel_states_disagree", *note, packet_no=rows[0] + 1)]


def run_session(programs: Programs, path: Path, *, name: str, loopback: bool = False, lang: str = "en",
                progress: Progress | None = None, cancel: threading.Event | None = None,
                witness: bool = True) -> RunResult:
    """Play ``programs`` in a fresh lab and save the attributed capture to ``path``
    (see the module docstring).  ``name`` names the lab's namespaces (``trc<name>``)
    and the scratch directory (``tracer-<name>-``); ``witness=False``: no kernel witness
    (``--no-witness``: the run is attributed as before it, and says nothing about it)."""
    from tracer.core.pipeline import analyze
    from tracer.pcap.writer import write_pcapng

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"tracer-{name}-"))
    old: dict[int, _Handler] = {}
    try:
        with Lab(prefix=f"trc{name}", loopback=loopback) as lab:
            sniffer = Sniffer(lab.server)
            error: TracerError | None = None
            interrupted = False
            poll = poller(cancel, progress, lambda: _so_far(sniffer, programs))

            wit, witness_note = _start_witness(lab) if witness else (None, None)
            listen_before = listen_counters(lab) if wit is not None else {}
            try:
                with contextlib.ExitStack() as stack:
                    programs.prepare(stack, lab)
                    sniffer.start()
                    poll()
                    error = programs.play(lab, tmp, poll)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                # From here to the lab's removal, signals must not cut the clean-up short.
                old = _ignore_signals()
                stopped_ns = time.time_ns()
                try:
                    programs.stop()
                finally:  # the instance is removed on every way out
                    records = wit.stop() if wit is not None else []
            if sniffer.proc is None:
                raise KeyboardInterrupt  # interrupted before the capture started: nothing to save
            listen = counters_delta(listen_before, listen_counters(lab)) if listen_before else {}
            cap = sniffer.stop()
            states = (*programs.states(), *lab_states(lab, "end"))
            trace = cap.trace
            kernel = None
            overflow_notes: list[TraceWarning] = []
            if wit is not None:
                kernel = kernel_account(lab, trace, records, wit.overrun)
                kernel, overflow_notes = _with_overflows(trace, kernel, listen)
            warnings = [*trace.warnings, *(_placed(trace, w) for w in programs.warnings()), *overflow_notes]
            if witness_note is not None:
                warnings.append(witness_note)
            warnings += _witness_warnings(kernel or KernelAccount())
            if error is not None:
                t_ns = programs.failed_at_ns()
                warnings.append(_placed(trace, TraceWarning(
                    "scenario_failed", error.message, error.message_zh,
                    t_ns=stopped_ns if t_ns is None else t_ns)))
            meta = dataclasses.replace(trace.meta, extra={
                **trace.meta.extra, **programs.meta(), **_capture_meta(cap.stats),
                **{f"kernel.{k}": str(v) for k, v in listen.items()}})
            calls = programs.calls(trace)
            if kernel is not None:
                calls = kernel_call_times(calls, kernel, trace.packets)
            trace = dataclasses.replace(trace, calls=calls, kernel_states=states, meta=meta,
                                        warnings=tuple(warnings), kernel=kernel)
            analysis = analyze(trace)
            trace = dataclasses.replace(trace, warnings=(*trace.warnings, *_state_warnings(analysis)))
            write_pcapng(path, trace, analysis, lang=lang)
            programs.keep()
    finally:
        _restore(old)
        shutil.rmtree(tmp, ignore_errors=True)
    return RunResult(path, trace, analysis, error, interrupted)
