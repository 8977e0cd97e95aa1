"""TCP states from the kernel's own record (``KernelStateChange``), per packet and endpoint.

Where a live run has the kernel witness's account, the states shown after each packet
are the kernel's, not the wire rules' (``tracer.core.tcp_states``).  A socket is named
by (local, remote) endpoints: a listener's remote is ``0.0.0.0:0`` / ``[::]:0`` and it
stays in LISTEN (a connection is another socket, cloned from it and recorded as
LISTEN -> SYN_RECEIVED -> ESTABLISHED when the handshake's ACK arrives; the request
socket before that has no tracepoint); a client socket's first change
(CLOSED -> SYN_SENT) has local port 0, as connect() picks the port after it.

Each change is put on the packet that caused it: a change that precedes what the
socket sends (SYN_SENT before the SYN, FIN_WAIT_1/LAST_ACK before the FIN, CLOSED
before an active RST) on that packet, the first that endpoint queued at or after it;
any other change (the receive path's) on the last packet captured towards that
endpoint before it (within ``_RX_WINDOW_NS``).  A change no packet caused (close() with
data still queued behind a zero window: FIN_WAIT_1 long before the FIN; a listener
opening) shows from the first packet captured after it.  The state of an endpoint
after a packet is then its socket's state after the changes put on that packet or
earlier; before its first change, the first change's old state (the listener's LISTEN
for a server's connection).

Two things the kernel does not record are taken from the wire rules, and are not
disagreements: a server endpoint between the SYN-ACK and the child socket (the
request socket: the rules say SYN_RECEIVED, the kernel's socket is the listener in
LISTEN), and a socket handed to a TIME-WAIT socket (the full socket's FIN_WAIT_2 or
CLOSING -> CLOSED without a RST: the timewait socket has no tracepoint).  An endpoint
with no recorded change keeps the rules' states.  Every other row where the kernel's
state differs from the rules' is a disagreement (``KernelStates.disagree``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tracer.core.model import FIN, RST, SYN, StreamInfo, TcpState
from tracer.core.streams import StreamColumns
from tracer.core.table import I8, I32, I64, Bool, PacketTable
from tracer.core.trace import Trace
from tracer.core.witness import KernelAccount, KernelStateChange

_US = 1_000  # the trace clock prints microseconds: a change's time is up to 1 µs early
# Changes the socket makes before sending, and the flag of the packet that follows them.
_BEFORE_SEND = {"SYN_SENT": SYN, "FIN_WAIT_1": FIN, "LAST_ACK": FIN, "CLOSED": RST}
_TO_TIME_WAIT = frozenset({"FIN_WAIT_2", "CLOSING"})
_UNSPECIFIED = ("0.0.0.0", "[::]", "::")
_ANY_REMOTE = ("0.0.0.0:0", "[::]:0")
_RX_WINDOW_NS = 50_000_000  # a change the receive path made comes within this of the segment's capture


@dataclass(frozen=True)
class KernelStates:
    """Per-row kernel states of endpoints a and b (-1 = not TCP) and the rows (0-based)
    where they differ from the wire rules' states."""

    state_a: I8
    state_b: I8
    disagree: tuple[int, ...]


def _port(endpoint: str) -> str:
    return endpoint.rpartition(":")[2]


def _host(endpoint: str) -> str:
    return endpoint.rpartition(":")[0]


def _changes_of(local: str, remote: str, changes: Sequence[KernelStateChange],
                first_sent_ns: int, claimed: set[int]) -> list[KernelStateChange]:
    """The changes of the socket (local, remote), by time, with its connect()'s port-0
    change: the latest unclaimed one to ``remote`` before the endpoint's first packet."""
    own = [c for c in changes if c.local == local and c.remote == remote]
    best = -1
    for k, c in enumerate(changes):
        if (k not in claimed and c.remote == remote and _port(c.local) == "0" and c.new == "SYN_SENT"
                and _host(c.local) in (_host(local), *_UNSPECIFIED) and c.t_ns <= first_sent_ns):
            best = k
    if best >= 0:
        claimed.add(best)
        own.insert(0, changes[best])
    if not own:  # no socket of its own (a SYN the listener never answered): the listener's
        port = _port(local)
        own = [c for c in changes if c.remote in _ANY_REMOTE
               and c.local in (local, f"0.0.0.0:{port}", f"[::]:{port}")]
    return sorted(own, key=lambda c: c.t_ns)


def _place(c: KernelStateChange, sent: Bool, queued: I64, captured: I64, flags: I32) -> int | None:
    """Index into the stream's rows of the packet that caused change ``c`` (see the module
    docstring); a change no packet caused shows from the next packet on; None: after the last."""
    after = np.flatnonzero(sent & (queued >= c.t_ns))
    flag = _BEFORE_SEND.get(c.new, 0)
    if after.size and int(flags[int(after[0])]) & flag:
        return int(after[0])
    if c.new in _BEFORE_SEND and c.new != "CLOSED":
        # close() with data still queued: FIN_WAIT_1 now, the FIN later (zero window).
        first = int(np.searchsorted(captured, c.t_ns + _US))
        return first if first < len(captured) else None
    before = np.flatnonzero(~sent & (captured < c.t_ns + _US))
    if before.size and c.t_ns - int(captured[before[-1]]) <= _RX_WINDOW_NS:
        return int(before[-1])
    # A listener opening or closing, close() of a socket that never connected ...
    first = int(np.searchsorted(captured, c.t_ns + _US))
    return first if first < len(captured) else None


def shown_states(trace: Trace, s: StreamColumns, inferred_a: I8, inferred_b: I8) -> KernelStates:
    """The states to show: the kernel's where ``trace`` has its account, else the inferred."""
    if trace.kernel is None:
        return KernelStates(inferred_a, inferred_b, ())
    return kernel_states(trace.packets, s.stream, s.direction, s.tcp_streams, trace.kernel,
                         inferred_a, inferred_b)


def kernel_states(t: PacketTable, stream: np.ndarray, direction: np.ndarray,
                  streams: Sequence[StreamInfo], kernel: KernelAccount,
                  inferred_a: I8, inferred_b: I8) -> KernelStates:
    """The kernel's states per row where ``kernel`` recorded them, else the inferred ones."""
    out_a, out_b = inferred_a.copy(), inferred_b.copy()
    queued = t.ts_ns.astype(np.int64).copy()
    for o in kernel.origins:
        if 1 <= o.packet_no <= len(t) and o.t_ns:  # an account from a file is not trusted blindly
            queued[o.packet_no - 1] = o.t_ns
    tcp = [s for s in sorted(streams, key=lambda s: s.first_no) if s.proto == "tcp"]
    claimed: set[int] = set()
    disagree: set[int] = set()
    for k, info in enumerate(tcp):
        rows = np.flatnonzero((stream == info.index) & (inferred_a >= 0) & (direction >= 0))
        if not rows.size:
            continue
        dirs = direction[rows]
        captured = t.ts_ns[rows].astype(np.int64)
        flags = t.tcp_flags[rows]
        # A reused 4-tuple: this stream's own changes begin with its first packet and end
        # where the next stream on it begins.
        nxt = [s.first_no for s in tcp[k + 1:] if {s.a, s.b} == {info.a, info.b}]
        end = int(t.ts_ns[nxt[0] - 1]) if nxt else None
        reused = any({s.a, s.b} == {info.a, info.b} for s in tcp[:k])
        begin = int(queued[rows].min()) if reused else None
        for side, (local, remote), out, inferred in (
            (0, (info.a, info.b), out_a, inferred_a), (1, (info.b, info.a), out_b, inferred_b),
        ):
            sent = dirs == side
            first_sent = int(queued[rows[sent][0]]) if sent.any() else int(captured[-1])
            changes = [c for c in _changes_of(local, remote, kernel.states, first_sent, claimed)
                       if (end is None or c.t_ns < end)
                       and (begin is None or c.t_ns >= begin or c.local != local or c.remote != remote)]
            if not changes:
                continue
            col, ok = _fill(changes, sent, queued[rows], captured, flags, inferred[rows])
            out[rows] = col
            disagree.update(int(r) for r in rows[~ok])
    return KernelStates(out_a, out_b, tuple(sorted(disagree)))


def _fill(changes: Sequence[KernelStateChange], sent: Bool, queued: I64, captured: I64,
          flags: I32, inferred: I8) -> tuple[I8, Bool]:
    """One endpoint's column over its stream's rows, and which rows agree with ``inferred``."""
    n = len(sent)
    col = np.full(n, int(_state(changes[0].old)), dtype=np.int8)
    handed = n  # first row shown by the rules after a handover to a TIME-WAIT socket
    for c in changes:
        i = _place(c, sent, queued, captured, flags)
        if i is None:
            continue
        if c.new == "CLOSED" and c.old in _TO_TIME_WAIT and not int(flags[i]) & RST:
            handed = min(handed, i)
            continue
        col[i:] = int(_state(c.new))
    ok = col == inferred
    # The request socket: the rules' SYN_RECEIVED where the kernel's socket is still the
    # listener; and the rules not knowing (UNKNOWN) contradicts nothing.
    ok |= (col == int(TcpState.LISTEN)) & (inferred == int(TcpState.SYN_RECEIVED))
    ok |= inferred == int(TcpState.UNKNOWN)
    col[handed:] = inferred[handed:]
    ok[handed:] = True
    return col, ok


def _state(name: str) -> TcpState:
    return TcpState[name] if name in TcpState.__members__ else TcpState.UNKNOWN
