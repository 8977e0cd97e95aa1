"""Live capture in a lab namespace: raw frames with kernel timestamps, nothing lost silently.

``Sniffer(host, iface)`` runs ``tracer.lab.sniff_worker`` inside the host's namespace
(its own process, so capturing never competes with the caller for the GIL, and
in its own session, so the terminal's Ctrl-C reaches only the caller, whose
``stop`` then drains the capture).  ``start`` returns once the packet socket is
bound; ``stop`` lets the worker drain what the kernel still holds, reads the pcap
it wrote with ``tracer.pcap.reader`` (decoding afterwards, never while capturing)
and returns a ``LiveCapture``: the ``Trace`` plus ``CaptureStats``.  Kernel drops,
an incomplete capture and fewer TCP frames than the host's own counters say
(``tcp_gap_warning``) become warnings in the trace.

``kernel_counters(host)`` reads the namespace's ``/proc/net/snmp`` and
``/proc/net/snmp6`` so a caller can compare what the stack sent and received with
what was captured (``tcp_segments``, ``tcp_gap_warning``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tracer.core.model import TraceWarning
from tracer.core.table import PacketTable
from tracer.core.trace import Trace
from tracer.i18n import both
from tracer.lab.netns import Host, LabError
from tracer.pcap.reader import read_capture

READY_TIMEOUT = 10.0


@dataclass(frozen=True)
class CaptureStats:
    """What the capture saw.  ``kernel_*`` are ``None`` when the worker did not end cleanly."""

    frames: int  # frames in the capture
    received: int | None  # frames read from the socket, duplicates included
    duplicates: int | None  # loopback PACKET_OUTGOING copies removed
    kernel_packets: int | None  # PACKET_STATISTICS tp_packets (offered to the socket)
    kernel_drops: int | None  # PACKET_STATISTICS tp_drops (receive buffer full)
    complete: bool  # the worker drained and reported; False if it was killed
    # The host's SNMP counters' change over the capture (``kernel_counters``), or None.
    counters: Mapping[str, int] | None = None


@dataclass(frozen=True, eq=False)
class LiveCapture:
    """A finished capture: the trace (frames decoded afterwards) and its statistics."""

    trace: Trace
    stats: CaptureStats
    path: Path | None  # the pcap file, if the caller asked to keep it


class Sniffer:
    """Capture frames on ``iface`` (default: the host's) of ``host``'s namespace.

    Use as a context manager (``with Sniffer(h) as s: ...; cap = s.result``) or
    ``start()``/``stop()``.  ``path`` keeps the pcap file (nanosecond pcap); without
    it a temporary file is used and removed.
    """

    def __init__(self, host: Host, iface: str | None = None, path: str | os.PathLike[str] | None = None,
                 *, quiet: float = 0.1, max_drain: float = 5.0, rcvbuf: int = 64 << 20,
                 snaplen: int = 262144, counters: bool = True) -> None:
        self.host = host
        self.iface = iface or host.iface
        self.keep = path is not None
        self.path = Path(path) if path is not None else None
        self.quiet = quiet
        self.max_drain = max_drain
        self.rcvbuf = rcvbuf
        self.snaplen = snaplen
        # The SNMP counters cover every interface: compare only on the host's own.
        self.counters = counters and self.iface == host.iface
        self._before: dict[str, int] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._out = b""
        self.result: LiveCapture | None = None

    @property
    def pid(self) -> int | None:
        """The worker's process id (it runs in the namespace), while started."""
        return self.proc.pid if self.proc else None

    def start(self) -> Sniffer:
        """Start the worker; return once its packet socket is bound."""
        if self.proc is not None:
            raise RuntimeError("sniffer already started")
        if self.path is None:
            fd, name = tempfile.mkstemp(prefix="tracer-live-", suffix=".pcap")
            os.close(fd)
            self.path = Path(name)
        argv = [sys.executable, "-m", "tracer.lab.sniff_worker", "--iface", self.iface,
                "--out", str(self.path), "--rcvbuf", str(self.rcvbuf), "--snaplen", str(self.snaplen),
                "--quiet", str(self.quiet), "--max-drain", str(self.max_drain), "--control-stdin"]
        # Unbuffered: ``_readline`` selects on the pipe, so no line may wait in a buffer.
        self.proc = subprocess.Popen(self.host.argv(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True, bufsize=0)
        line = self._readline(READY_TIMEOUT)
        if not line.startswith("READY"):
            err = line.removeprefix("ERROR ").strip()
            self._kill()
            if not err and self.proc.stderr is not None:
                tail = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                err = tail[-1] if tail else "no answer"
            self._discard()
            self.proc = None
            raise LabError("lab.capture_failed", iface=self.iface, ns=self.host.ns, why=err)
        if self.counters:
            self._before = kernel_counters(self.host)
        return self

    def stop(self, timeout: float | None = None) -> LiveCapture:
        """Drain, stop the worker and return the capture (also kept as ``result``)."""
        if self.result is not None:
            return self.result
        if self.proc is None:
            raise RuntimeError("sniffer not started")
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        limit = timeout if timeout is not None else self.max_drain + 5.0
        report = self._readline(limit)
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self.result = self._collect(report)
        return self.result

    def __enter__(self) -> Sniffer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.result is None:
            self.stop()

    def _readline(self, timeout: float) -> str:
        """The worker's next line, or what came before ``timeout`` or end of file."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._out += chunk
        line, _, self._out = self._out.partition(b"\n")
        return line.decode(errors="replace")

    def _kill(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()

    def _discard(self) -> None:
        if not self.keep and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _collect(self, report: str) -> LiveCapture:
        assert self.path is not None
        try:
            stats = json.loads(report) if report.startswith("{") else None
        except json.JSONDecodeError:
            stats = None
        try:
            trace = read_capture(self.path)
        finally:
            self._discard()  # the reader keeps a mapping: the file may go
        n = len(trace.packets)
        delta = None
        if self._before is not None:
            with contextlib.suppress(LabError, OSError, subprocess.SubprocessError):  # e.g. lab gone
                delta = counters_delta(self._before, kernel_counters(self.host))
        if stats is None:
            cs = CaptureStats(n, None, None, None, None, complete=False, counters=delta)
        else:
            cs = CaptureStats(n, stats["received"], stats["duplicates"], stats["kernel_packets"],
                              stats["kernel_drops"], complete=True, counters=delta)
        warnings = list(trace.warnings)
        if not cs.complete:
            warnings.append(TraceWarning(
                "capture_incomplete", *both("lab.capture_incomplete", iface=self.iface)))
        elif cs.kernel_drops:
            text = both("lab.capture_kernel_drops", drops=cs.kernel_drops, iface=self.iface)
            warnings.append(TraceWarning("capture_kernel_drops", *text))
        gap = tcp_gap_warning(trace.packets, delta, self.host) if delta is not None else None
        if gap is not None:
            warnings.append(gap)
        meta = dataclasses.replace(trace.meta, source=f"live:{self.host.ns}:{self.iface}",
                                   interfaces=tuple((lt, self.iface) for lt, _ in trace.meta.interfaces))
        trace = dataclasses.replace(trace, meta=meta, warnings=tuple(warnings))
        return LiveCapture(trace, cs, self.path if self.keep else None)


# --- kernel counters ----------------------------------------------------------------


def parse_snmp(text: str) -> dict[str, int]:
    """``/proc/net/snmp`` (header/value line pairs) and ``snmp6`` (name value) -> {"Tcp.OutSegs": n}."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    pending: tuple[str, list[str]] | None = None
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0].endswith(":"):
            group = parts[0][:-1]
            if pending is not None and pending[0] == group:
                for name, value in zip(pending[1], parts[1:], strict=False):
                    with contextlib.suppress(ValueError):
                        out[f"{group}.{name}"] = int(value)
                pending = None
            else:
                pending = (group, parts[1:])
        elif len(parts) == 2:
            # snmp6: "Udp6InDatagrams 12" -> "Udp6.InDatagrams"
            key, value = parts
            for group in ("Ip6", "Icmp6", "Udp6", "UdpLite6"):
                if key.startswith(group):
                    key = f"{group}.{key[len(group):]}"
                    break
            with contextlib.suppress(ValueError):
                out[key] = int(value)
    return out


def kernel_counters(host: Host) -> dict[str, int]:
    """The SNMP counters of ``host``'s namespace: "Tcp.OutSegs", "Udp6.InDatagrams", ...

    TCP counts are shared by IPv4 and IPv6 (``/proc/net/snmp6`` has no TCP lines).
    """
    proc = host.run(["cat", "/proc/net/snmp", "/proc/net/snmp6"], check=False, timeout=10)
    if proc.returncode != 0:
        raise LabError("lab.counters_unreadable", ns=host.ns, why=proc.stderr.strip())
    return parse_snmp(proc.stdout)


def counters_delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """``after - before`` for every counter present in both."""
    return {k: v - before[k] for k, v in after.items() if k in before}


def tcp_segments(delta: Mapping[str, int], loopback: bool = False) -> int:
    """TCP frames on the wire of the host whose counters ``delta`` are.

    Linux follows RFC 1213's tcpOutSegs, "excluding those containing only
    retransmitted octets": a retransmission is counted in RetransSegs and not in
    OutSegs (measured in the lab), so sent frames are OutSegs + RetransSegs.
    InSegs counts every segment received.  On loopback one stack both sends and
    receives each segment, so the wire carries only the sent ones.  With GSO/TSO
    or GRO the stack counts wire-size segments while a packet socket sees one
    large frame, so compare only traffic whose segments stay below the MSS.
    """
    sent = delta.get("Tcp.OutSegs", 0) + delta.get("Tcp.RetransSegs", 0)
    return sent if loopback else sent + delta.get("Tcp.InSegs", 0)


def tcp_frames(table: PacketTable) -> int:
    """TCP frames in a captured table (``proto`` 0 is tcp)."""
    return int(np.count_nonzero(table.proto == 0))


def _sent_by(table: PacketTable, host: Host) -> npt.NDArray[np.bool_]:
    """Rows whose source address is one of ``host``'s."""
    ids = [i for i, a in enumerate(table.addresses) if a in (host.ip, host.ip6)]
    return np.isin(table.src, np.asarray(ids, dtype=table.src.dtype))


def tcp_gap_warning(table: PacketTable, delta: Mapping[str, int], host: Host) -> TraceWarning | None:
    """A warning when the capture holds fewer TCP frames than ``host``'s stack handled.

    Received frames are checked against InSegs, which counts one per received
    frame (a GSO/GRO aggregate included; measured), and which can only be lower
    than the wire (a frame dropped by the firewall before TCP is not counted).
    Sent frames are checked against OutSegs + RetransSegs, which count wire-size
    segments: an aggregate larger than the MTU counts several, so the check is
    skipped when the capture shows one.  On loopback each frame is captured once,
    as received.
    """
    tcp = table.proto == 0
    if host.iface == "lo":
        missing = delta.get("Tcp.InSegs", 0) - int(tcp.sum())
    else:
        out = tcp & _sent_by(table, host)
        missing = max(0, delta.get("Tcp.InSegs", 0) - int((tcp & ~out).sum()))
        # Ethernet header 14 bytes: a sent frame above MTU + 14 is a GSO aggregate.
        if not (table.wirelen[out] > _mtu(host) + 14).any():
            sent = delta.get("Tcp.OutSegs", 0) + delta.get("Tcp.RetransSegs", 0)
            missing += max(0, sent - int(out.sum()))
    if missing <= 0:
        return None
    return TraceWarning("capture_gap", *both("lab.capture_gap", ns=host.ns, missing=missing))


def _mtu(host: Host) -> int:
    out = host.run(["cat", f"/sys/class/net/{host.iface}/mtu"], check=False).stdout.strip()
    return int(out) if out.isdigit() else 65536
