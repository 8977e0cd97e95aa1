"""Causes from the kernel's own account: each witnessed frame's origin decides its reason.

The kernel witness (``tracer.core.witness``) says what sent each captured frame: a
system call of one thread, the process's exit, a timer, or the receive path.  Here
that origin, with the segment's shape, becomes the packet's cause through one rules
table (``RULES``: first match wins) and overrides the guesses of ``infer_causes`` and
the time windows of ``attribute_calls``: ``CauseSource.KERNEL``, never inferred.  The
wire rules' reason stays beside it (``Analysis.inferred_reason``) and
``reason_agreement`` counts how often the two agreed.

A frame sent inside a system call is tied to the recorded call of the same thread
(``PacketOrigin.tid == SocketCall.tid``) and syscall family whose window contains, or
else is nearest to, the time the kernel queued the frame, among that thread's calls on
the frame's socket; never by a window of another thread.  A data segment keeps the
send call whose bytes it carries (``attribute_calls``' sequence ranges), also when an
incoming ACK released it later: then ``released_by`` names the peer's segment whose
arrival released it.  Origins naming a packet outside the trace (the account comes
from a file) are ignored.  Pure.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.attribution import CauseColumns, _ep_match, _exit, _target
from tracer.core.model import ACK, FIN, PROTO_TCP, RST, SYN, CauseBy, CauseSource, SocketCall
from tracer.core.reasons import CALL_CODE, REASONS, reason_code
from tracer.core.streams import StreamColumns
from tracer.core.table import I32, I64, Bool, PacketTable
from tracer.core.witness import KernelAccount, PacketOrigin, syscall_name

# --- the rules table ------------------------------------------------------------------

# Segment shapes a rule can ask for (``shape_of``).
SHAPES = ("rst", "syn", "synack", "fin", "fin_data", "data", "pure")


def shape_of(flags: int, payload: int) -> str:
    """The shape of a TCP segment: rst, syn, synack, fin, fin_data (a FIN with data), data, pure."""
    if flags & RST:
        return "rst"
    if flags & SYN:
        return "synack" if flags & ACK else "syn"
    if flags & FIN:
        return "fin_data" if payload > 0 else "fin"
    return "data" if payload > 0 else "pure"


@dataclass(frozen=True, slots=True)
class Rule:
    """When an origin (``kind``, ``what``, ``action``; "*" = any) of a segment of one of
    ``shapes`` has ``stack_has`` (any of these functions, if given) in its stack, the
    reason is ``reason``: a REASONS name, or a ``DECIDERS`` name that looks closer."""

    kind: str
    what: frozenset[str] | str
    action: str
    shapes: frozenset[str]
    reason: str
    stack_has: frozenset[str] = frozenset()

    def matches(self, o: PacketOrigin, shape: str) -> bool:
        what_ok = self.what == "*" or (o.what in self.what if isinstance(self.what, frozenset) else
                                       o.what == self.what)
        return ((self.kind == "*" or o.kind == self.kind) and what_ok
                and (self.action == "*" or o.action == self.action) and shape in self.shapes
                and (not self.stack_has or not self.stack_has.isdisjoint(o.stack)))


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


# Syscall names (as the stack shows them) by what they do to a socket.
SEND_SYSCALLS = _s("sendto", "sendmsg", "sendmmsg", "write", "writev", "send", "pwritev", "pwritev2")
RECV_SYSCALLS = _s("recvfrom", "recvmsg", "recvmmsg", "read", "readv", "recv")
CLOSE_SYSCALLS = _s("close", "shutdown", "close_range")
_ANY = _s(*SHAPES)
_DATA = _s("data", "fin_data")
_FIN = _s("fin", "fin_data")

RULES: tuple[Rule, ...] = (
    # Resets: closing a listener resets the connections still in its accept queue.
    Rule("*", "*", "rst", _s("rst"), "rst_listener_closed", _s("inet_csk_listen_stop")),
    Rule("exit", "*", "*", _s("rst"), "exit_rst"),
    Rule("call", CLOSE_SYSCALLS, "*", _s("rst"), "rst_abort"),
    Rule("*", "*", "*", _s("rst"), "keep"),  # answering RSTs: the wire rules tell them apart
    # Opening.
    Rule("call", "connect", "*", _s("syn"), "connect"),
    Rule("timer", "retransmit", "*", _s("syn"), "syn_retransmission"),
    Rule("timer", "synack", "*", _s("synack"), "synack_retransmission"),
    Rule("receive", "*", "synack", _s("synack"), "synack_resent_for_syn", _s("tcp_check_req")),
    # Closing: the process's exit, or close()/shutdown() (the wire rules say which close).
    Rule("exit", "*", "*", _FIN, "exit_fin"),
    Rule("call", CLOSE_SYSCALLS, "*", _FIN, "close"),
    # Timers.
    Rule("timer", "loss_probe", "*", _ANY, "tail_loss_probe"),
    Rule("timer", "probe", "*", _ANY, "zero_window_probe"),
    Rule("timer", "keepalive", "*", _ANY, "keep_alive"),
    Rule("timer", "retransmit", "*", _DATA, "rto_retransmission"),
    Rule("timer", "retransmit", "*", _s("fin"), "fin_retransmission"),
    Rule("timer", "delayed_ack", "*", _s("pure"), "delayed_ack"),
    # The receive path: data it released, segments it retransmitted, ACKs it sent.
    Rule("receive", "*", "data", _DATA, "data_released_by_ack"),
    Rule("receive", "*", "retransmit", _DATA, "fast_retransmission"),
    Rule("receive", "*", "ack_reply", _s("pure"), "ack_reply"),
    Rule("receive", "*", "*", _s("pure"), "validate", _s("tcp_validate_incoming")),
    # System calls.
    Rule("call", SEND_SYSCALLS, "*", _s("data"), "send_data"),
    Rule("call", RECV_SYSCALLS, "*", _s("pure"), "window_update_by_recv",
         _s("tcp_recvmsg_locked", "tcp_cleanup_rbuf")),
)

_CLOSE_REASONS = _s("close_fin", "close_fin_after_peer", "close_fin_ack", "simultaneous_close_fin",
                    "send_data_fin")
_ANSWERS = _s("dup_ack", "zero_window_probe_ack", "keep_alive_ack")


def _connect(inferred: str, o: PacketOrigin, answered: int) -> str:
    return inferred if inferred == "simultaneous_open_syn" else "connect_syn"


def _close(inferred: str, o: PacketOrigin, answered: int) -> str:
    return inferred if inferred in _CLOSE_REASONS else "close_fin"


def _ack_reply(inferred: str, o: PacketOrigin, answered: int) -> str:
    # tcp_v4_send_ack serves the TIME-WAIT socket and the request socket (tcp_check_req).
    if {"tcp_check_req", "tcp_v4_reqsk_send_ack", "tcp_v6_reqsk_send_ack"}.isdisjoint(o.stack):
        return "time_wait_ack"
    return inferred


def _validate(inferred: str, o: PacketOrigin, answered: int) -> str:
    # tcp_validate_incoming answers a SYN, and a RST out of place, with a challenge ACK
    # (RFC 5961); any other segment outside the window with a duplicate ACK.
    if answered & (SYN | RST):
        return "challenge_ack"
    return inferred if inferred in _ANSWERS else "dup_ack"


DECIDERS: Mapping[str, Callable[[str, PacketOrigin, int], str]] = {
    "keep": lambda inferred, o, answered: inferred,
    "connect": _connect,
    "close": _close,
    "ack_reply": _ack_reply,
    "validate": _validate,
}


def kernel_reason(o: PacketOrigin, flags: int, payload: int, inferred: str, answered: int = 0) -> str:
    """The reason of a TCP segment sent as origin ``o`` says (``RULES``); ``inferred`` is
    the wire rules' reason, ``answered`` the flags of the peer's segment before it."""
    shape = shape_of(flags, payload)
    for rule in RULES:
        if rule.matches(o, shape):
            decide = DECIDERS.get(rule.reason)
            return decide(inferred, o, answered) if decide else rule.reason
    return inferred


# Reasons that name the call which made the frame (the others are the kernel's own doing).
CALL_REASONS = _s("connect_syn", "simultaneous_open_syn", "send_data", "send_data_fin", "close_fin",
                  "close_fin_after_peer", "close_fin_ack", "simultaneous_close_fin", "rst_abort",
                  "window_update_by_recv", "exit_fin", "exit_rst", "rst_listener_closed", "udp_datagram")

# The recorded calls a syscall on the stack can be (recorder and strace names).
_SEND_CALLS = _s("send", "sendall", "sendto", "sendmsg", "write")
FAMILIES: Mapping[str, frozenset[str]] = {
    "connect": _s("connect", "connect_ex"),
    **dict.fromkeys(SEND_SYSCALLS, _SEND_CALLS),
    **dict.fromkeys(RECV_SYSCALLS, _s("recv", "recvfrom", "recv_into", "recvfrom_into", "recvmsg", "read")),
    "close": _s("close"),
    "close_range": _s("close"),
    "exit": _s("close"),  # the recorders note the kernel's closing of a dead process's sockets
    "shutdown": _s("shutdown"),
    "setsockopt": _s("setsockopt"),
}


# --- applying the account ------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class KernelCauses:
    """The cause columns with the kernel's origins applied; ``kernel``: rows whose cause
    came from the kernel; ``released_by``: row of the peer's segment whose arrival
    released this row's data (-1 otherwise)."""

    causes: CauseColumns
    kernel: Bool
    released_by: I32


def _fits(c: SocketCall, src: str, dst: str) -> bool:
    """Whether call ``c``'s socket can be the one that sent ``src`` -> ``dst``."""
    local_ok = c.local is None or c.local.rpartition(":")[2] == "0" or _ep_match(c.local, src)
    remote = _target(c)
    return local_ok and (remote is None or remote == dst)


def tie_call(o: PacketOrigin, by_tid: Mapping[int, Sequence[SocketCall]], src: str, dst: str
             ) -> SocketCall | None:
    """The recorded call of ``o``'s thread that sent its frame: same syscall family, on the
    frame's socket, whose window contains ``o.t_ns`` (the latest such) or is nearest."""
    family = FAMILIES.get(o.what if o.kind == "call" else "exit" if o.kind == "exit" else "")
    if not family:
        return None
    best: SocketCall | None = None
    best_key = (2, 0)
    for c in by_tid.get(o.tid, ()):
        if c.call not in family or not _fits(c, src, dst):
            continue
        if c.t_enter_ns <= o.t_ns <= _exit(c):
            key = (0, -c.t_enter_ns)
        else:
            key = (1, min(abs(o.t_ns - c.t_enter_ns), abs(o.t_ns - _exit(c))))
        if best is None or key < best_key:
            best, best_key = c, key
    return best


class _Peers:
    """The TCP rows of each (stream, direction), in capture order, for finding the peer's
    last segment before a time (built once per analysis, on first use)."""

    def __init__(self, t: PacketTable, s: StreamColumns) -> None:
        tcp = np.flatnonzero((t.proto == PROTO_TCP) & (s.stream >= 0) & (s.direction >= 0))
        key = s.stream[tcp].astype(np.int64) * 2 + s.direction[tcp]
        order = np.lexsort((t.ts_ns[tcp], key))
        self.rows, self.key, self.ts = tcp[order], key[order], t.ts_ns[tcp[order]]
        self.s = s

    def last_before(self, i: int, when: int) -> int:
        """The last row the other end of row ``i``'s stream sent by time ``when``, or -1."""
        if int(self.s.stream[i]) < 0 or int(self.s.direction[i]) < 0:
            return -1
        peer = int(self.s.stream[i]) * 2 + 1 - int(self.s.direction[i])
        lo, hi = np.searchsorted(self.key, peer, "left"), np.searchsorted(self.key, peer, "right")
        k = lo + int(np.searchsorted(self.ts[lo:hi], when, "right")) - 1
        return int(self.rows[k]) if k >= lo else -1


_RELEASE_SLACK_NS = 2_000  # the capture and the trace clock print microseconds


def apply_kernel(t: PacketTable, s: StreamColumns, causes: CauseColumns, account: KernelAccount,
                 calls: Sequence[SocketCall]) -> KernelCauses:
    """``causes`` with every witnessed frame's cause taken from its origin (module docstring)."""
    n = len(t)
    by, call, reason = causes.by.copy(), causes.call.copy(), causes.reason.copy()
    inferred, call_id = causes.inferred.copy(), causes.call_id.copy()
    kernel = np.zeros(n, dtype=bool)
    released_by = np.full(n, -1, dtype=np.int32)
    by_tid: dict[int, list[SocketCall]] = {}
    for c in calls:
        by_tid.setdefault(c.tid, []).append(c)
    origins: dict[int, PacketOrigin] = {}
    for o in account.origins:
        if 1 <= o.packet_no <= n and o.kind != "unknown":
            origins.setdefault(o.packet_no - 1, o)
    peers: _Peers | None = None
    for i, o in sorted(origins.items()):
        src, dst = t.src_endpoint(i), t.dst_endpoint(i)
        was = REASONS[int(reason[i])]
        payload = int(t.payload_len[i])
        now = was
        if int(t.proto[i]) == PROTO_TCP:
            answered = 0
            if "tcp_validate_incoming" in o.stack:
                peers = peers or _Peers(t, s)
                j = peers.last_before(i, int(t.ts_ns[i]))
                answered = int(t.tcp_flags[j]) if j >= 0 else 0
            now = kernel_reason(o, int(t.tcp_flags[i]), payload, was, answered)
        kernel[i] = True
        inferred[i] = False
        reason[i] = reason_code(now)
        keep_bytes = payload > 0 and call_id[i] >= 0  # data keeps the call that queued its bytes
        if now in CALL_REASONS and o.kind in ("call", "exit"):
            tied = None if keep_bytes and now != "exit_fin" else tie_call(o, by_tid, src, dst)
            by[i] = int(CauseBy.CALL)
            if tied is not None:
                call[i], call_id[i] = CALL_CODE.get(tied.call, 0), tied.id
            elif o.kind == "exit" and not keep_bytes:  # no recorded close at exit
                by[i], call[i], call_id[i] = int(CauseBy.KERNEL), 0, -1
            elif not keep_bytes:  # no call of that thread fits: another thread's never does
                call[i], call_id[i] = CALL_CODE.get(_CALL_OF.get(o.what, ""), 0), -1
        else:
            by[i] = int(CauseBy.KERNEL)
            if not keep_bytes and now not in CALL_REASONS:
                call[i], call_id[i] = 0, -1  # a FIN close() queued keeps that close()
        if now == "data_released_by_ack":
            peers = peers or _Peers(t, s)
            released_by[i] = peers.last_before(i, o.t_ns + _RELEASE_SLACK_NS)
    return KernelCauses(CauseColumns(by, causes.side, call, reason, inferred, call_id), kernel, released_by)


# A syscall's own name as a CALL_NAMES entry, when no recorded call of the thread fits.
_CALL_OF: Mapping[str, str] = {
    "connect": "connect", "sendto": "sendto", "sendmsg": "send", "write": "send", "writev": "send",
    "close": "close", "shutdown": "shutdown", "recvfrom": "recvfrom", "recvmsg": "recv", "read": "recv",
    "exit": "close",
}


# --- agreement with the wire rules ------------------------------------------------------


def reason_agreement(analysis: Analysis) -> dict[str, tuple[int, int]]:
    """Per kernel reason: (rows whose wire-rules reason agreed, rows), over the rows whose
    cause came from the kernel (``CauseSource.KERNEL``)."""
    rows: I64 = np.flatnonzero(analysis.cause_source == int(CauseSource.KERNEL))
    out: dict[str, tuple[int, int]] = {}
    r, inf = analysis.cause_reason[rows], analysis.inferred_reason[rows]
    for code in np.unique(r).tolist():
        mine = r == code
        out[REASONS[code]] = (int(np.count_nonzero(inf[mine] == code)), int(np.count_nonzero(mine)))
    return out


# --- the calls' windows, from the kernel's clock ------------------------------------------

CALL_TIME_REACH_NS = 5_000_000  # a recorder's stamps were seen ~1 ms off the kernel's; never stretch further


def _syscall_on_stack(stack: Sequence[str]) -> str | None:
    """The system call the stack ran in (its outermost entry), or None (a timer, softirq)."""
    name = None
    for fn in stack:
        name = syscall_name(fn) or name
    return name


def kernel_call_times(calls: Sequence[SocketCall], account: KernelAccount, packets: PacketTable
                      ) -> tuple[SocketCall, ...]:
    """The calls with each window widened to hold the frames the kernel queued inside it.

    A frame whose stack runs through system call X in thread T was queued while T was in
    X: the recorded call of T's family X on the frame's socket (``tie_call``'s choice)
    entered before and returned after that moment.  strace stamps a call from outside
    the kernel and was seen up to about a millisecond off either way, so ``connect()``
    could be drawn returning before its own SYN; the kernel's clock sets it right.  Only
    windows within ``CALL_TIME_REACH_NS`` of the moment move; the rest stay as recorded.
    """
    by_tid: dict[int, list[SocketCall]] = {}
    for c in calls:
        by_tid.setdefault(c.tid, []).append(c)
    bounds: dict[int, tuple[int, int]] = {}
    n = len(packets)
    for o in account.origins:
        if not 1 <= o.packet_no <= n:
            continue  # a damaged file's account
        name = _syscall_on_stack(o.stack)
        if name is None:
            continue
        i = o.packet_no - 1
        call = tie_call(PacketOrigin(o.packet_no, "call", name, o.action, o.tid, o.process, (), o.t_ns),
                        by_tid, packets.src_endpoint(i), packets.dst_endpoint(i))
        if call is None:
            continue
        inside = call.t_enter_ns <= o.t_ns <= _exit(call)
        if not inside and min(abs(o.t_ns - call.t_enter_ns), abs(o.t_ns - _exit(call))) > CALL_TIME_REACH_NS:
            continue
        lo, hi = bounds.get(call.id, (o.t_ns, o.t_ns))
        bounds[call.id] = (min(lo, o.t_ns), max(hi, o.t_ns))
    out = []
    for c in calls:
        b = bounds.get(c.id)
        if b is None:
            out.append(c)
            continue
        enter = min(c.t_enter_ns, b[0])
        leave = None if c.t_exit_ns is None else max(c.t_exit_ns, b[1])
        out.append(dataclasses.replace(c, t_enter_ns=enter, t_exit_ns=leave))
    return tuple(out)
