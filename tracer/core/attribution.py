"""Why each packet exists: causes inferred from TCP/UDP/ICMP semantics.

Without recorded socket calls every cause is an inference (``inferred=True``)
from what the wire shows: the first SYN means the client called connect(), a
SYN-ACK was sent by the server's kernel from the listen queue, data means the
sender called send(), a pure ACK comes from the receiver's kernel, the first FIN
means close() (or shutdown(SHUT_WR)), and so on (see ``tracer.core.reasons``).

Vectorised: plain data and plain ACKs (the bulk) are two mask writes; the rare
rows (SYN, FIN, tshark analysis flags, first ACKs of a SYN or FIN) go through a
priority table with ``np.select``; RST rows look their reason up in a table built
from ``rst_reason`` (indexed by the states just before the packet); Python only
runs over ICMP errors.

RSTs are told apart by the endpoints' states just before them: answering a SYN
where nothing listened (``rst_no_listener``), from a synchronised endpoint
(``rst_abort``: close() with unread data or SO_LINGER 0), from one whose
application had already closed (``rst_after_close``), or from one without the
connection (``rst_unknown_connection``).

With recorded socket calls (the live lab), ``attribute_calls`` replaces those
guesses by facts: each packet an application call made is tied to that call
(``call_id``, ``inferred=False``), and ``link_errors`` ties a failed call's errno
to the packet behind it.  Python loops there run over sockets, streams and rare
rows only; data segments find their send() call with one ``searchsorted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracer.core.model import (
    ACK,
    FIN,
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    RST,
    SYN,
    AnalysisFlag,
    Cause,
    CauseBy,
    Side,
    SocketCall,
    StreamInfo,
    TcpState,
    endpoint_str,
)
from tracer.core.reasons import CALL_CODE, CALL_NAMES, REASONS, call_code, reason_code
from tracer.core.streams import StreamColumns
from tracer.core.table import I8, I16, I32, I64, Bool, PacketTable
from tracer.core.tcp_states import ControlMarks, SeqColumns, control_marks


@dataclass(frozen=True, eq=False)
class CauseColumns:
    """Per-row cause: codes of ``CauseBy``, ``Side`` (of the sender), CALL_NAMES, REASONS."""

    by: I8
    side: I8
    call: I16
    reason: I16
    inferred: Bool
    call_id: I32


def cause_at(cols: CauseColumns, i: int) -> Cause:
    """The ``Cause`` of row ``i``."""
    call = CALL_NAMES[int(cols.call[i])]
    cid = int(cols.call_id[i])
    return Cause(
        by=CauseBy(int(cols.by[i])),
        side=Side(int(cols.side[i])),
        call=call or None,
        reason=REASONS[int(cols.reason[i])],
        inferred=bool(cols.inferred[i]),
        call_id=None if cid < 0 else cid,
    )


_K = int(CauseBy.KERNEL)
_C = int(CauseBy.CALL)
_U = int(CauseBy.UNKNOWN)


def _bit(flag: AnalysisFlag) -> int:
    return 1 << flag.value


def _sides(client_dir: I8, stream: npt.NDArray[np.integer], direction: npt.NDArray[np.integer]) -> I8:
    """``Side`` of each row's sender, from its stream's client direction."""
    if client_dir.size == 0:
        return np.full(stream.size, int(Side.NONE), dtype=np.int8)
    cd = client_dir[stream]
    side = np.where(direction == cd, np.int8(Side.CLIENT), np.int8(Side.SERVER))
    side[cd < 0] = int(Side.NONE)
    return side


_SYNCHRONISED_OPEN = frozenset({TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.SYN_RECEIVED})
_AFTER_CLOSE = frozenset(
    {TcpState.FIN_WAIT_1, TcpState.FIN_WAIT_2, TcpState.CLOSING, TcpState.LAST_ACK, TcpState.TIME_WAIT}
)


def rst_reason(sender_before: TcpState, receiver_before: TcpState, known: bool) -> str:
    """Why a RST was sent, from both endpoints' states just before it.

    ``known``: the stream had packets before this RST.
    """
    if not known:
        return "rst_unknown_connection"
    if receiver_before is TcpState.SYN_SENT and sender_before in (
        TcpState.CLOSED,
        TcpState.UNKNOWN,
        TcpState.LISTEN,
    ):
        return "rst_no_listener"
    if sender_before in _SYNCHRONISED_OPEN or sender_before is TcpState.UNKNOWN:
        return "rst_abort"
    if sender_before in _AFTER_CLOSE:
        return "rst_after_close"
    return "rst_unknown_connection"


# _pack's fields, low to high: call (CALL_NAMES code), by (CauseBy), reason (REASONS
# code), in an int32; the reason is then kept in an int16 column.
_CALL_BITS = 5
_BY_BITS = 5
_BY_SHIFT = _CALL_BITS
_REASON_SHIFT = _CALL_BITS + _BY_BITS
_REASON_LIMIT = 1 << 15


def check_pack_fields(calls: int, bys: int, reasons: int) -> None:
    """Raise if that many codes no longer fit ``_pack``'s fields.

    CALL_NAMES and REASONS are append-only: the 33rd call name must widen a field,
    not wrap silently into the next one.
    """
    for what, count, limit in (
        ("CALL_NAMES", calls, 1 << _CALL_BITS),
        ("CauseBy", bys, 1 << _BY_BITS),
        ("REASONS", reasons, _REASON_LIMIT),
    ):
        if count > limit:
            raise ValueError(f"{count} {what} do not fit _pack's field of {limit} codes: widen the field")


check_pack_fields(len(CALL_NAMES), len(CauseBy), len(REASONS))


def _pack(reason: str, by: int, call: str) -> int:
    """(reason, by, call) as one int, so that one ``np.select`` sets all three."""
    return reason_code(reason) << _REASON_SHIFT | by << _BY_SHIFT | call_code(call)


_RELEVANT = 0
for _f in (
    AnalysisFlag.RETRANSMISSION,
    AnalysisFlag.FAST_RETRANSMISSION,
    AnalysisFlag.SPURIOUS_RETRANSMISSION,
    AnalysisFlag.DUP_ACK,
    AnalysisFlag.ZERO_WINDOW,
    AnalysisFlag.ZERO_WINDOW_PROBE,
    AnalysisFlag.ZERO_WINDOW_PROBE_ACK,
    AnalysisFlag.WINDOW_UPDATE,
    AnalysisFlag.KEEP_ALIVE,
    AnalysisFlag.KEEP_ALIVE_ACK,
):
    _RELEVANT |= _bit(_f)


_SLICE = 1 << 16  # rare rows per pass of the (wide) priority table


def _tcp_causes(m: ControlMarks, aflags: I32, state_a: I8, state_b: I8) -> tuple[I16, I8, I16]:
    """(reason, by, call) codes for every TCP row in ``m``.

    Plain data and plain ACKs (the bulk) are set by two mask writes; only the rare
    rows (SYN, FIN, analysis flags, first ACKs of a SYN or FIN) go through the
    priority table.
    """
    f = m.flags
    rst = (f & RST) != 0
    other = (f & (SYN | FIN | RST)) == 0
    data = m.plen > 0
    packed = np.full(m.rows.size, _pack("unknown", _U, ""), dtype=np.int32)
    packed[other & data] = _pack("send_data", _C, "send")
    packed[other & ~data & ((f & ACK) != 0)] = _pack("data_ack", _K, "")
    del data
    rare = ~other | ((aflags & _RELEVANT) != 0)
    for firsts in (m.syn_acked_at, m.fin_acked_at):
        rare[firsts[firsts >= 0]] = True
    rare &= ~rst
    idx = np.flatnonzero(rare)
    del rare
    for lo in range(0, idx.size, _SLICE):
        part = idx[lo : lo + _SLICE]
        packed[part] = _rare_causes(m, aflags, part)

    # The first packet of a stream that did not start with a SYN: start not captured.
    fa, fb = m.first_pos[0::2], m.first_pos[1::2]
    first = np.where((fa >= 0) & ((fb < 0) | (fa < fb)), fa, fb)
    first = first[first >= 0]
    first = first[other[first]]
    packed[first] = (packed[first] & ((1 << _REASON_SHIFT) - 1)) | reason_code("mid_stream") << _REASON_SHIFT
    del other

    reason = (packed >> _REASON_SHIFT).astype(np.int16)
    by = ((packed >> _BY_SHIFT) & ((1 << _BY_BITS) - 1)).astype(np.int8)
    packed &= (1 << _CALL_BITS) - 1
    call = packed.astype(np.int16)
    del packed
    _rst_causes(m, np.flatnonzero(rst), state_a, state_b, reason, by, call)
    return reason, by, call


def _rare_causes(m: ControlMarks, aflags_all: I32, pos: I64) -> I64:
    """Packed causes of the rare rows at positions ``pos`` (no RSTs), by priority."""
    f = m.flags[pos]
    key = m.key[pos]
    rkey = key ^ 1
    af = aflags_all[pos]
    syn = (f & SYN) != 0
    ackf = (f & ACK) != 0
    fin = ((f & FIN) != 0) & ~syn
    data = m.plen[pos] > 0
    plain = syn & ~ackf
    synack = syn & ackf
    other = ~syn & ~fin
    pure = other & ~data & ackf
    seg = other & data

    def flag(fl: AnalysisFlag) -> Bool:
        out: Bool = (af & _bit(fl)) != 0
        return out

    def before(arr: I64) -> Bool:
        out: Bool = (arr >= 0) & (arr < pos)
        return out

    retrans = flag(AnalysisFlag.RETRANSMISSION)
    peer_fin = m.first_fin[rkey]
    acks_peer_fin = m.fin_acked_at[rkey] == pos
    ka, ka_ack = flag(AnalysisFlag.KEEP_ALIVE), flag(AnalysisFlag.KEEP_ALIVE_ACK)
    first_plain = pos == m.first_plain_syn[key]
    first_synack = pos == m.first_synack[key]
    table: list[tuple[Bool, int]] = [
        (first_plain & before(m.first_plain_syn[rkey]), _pack("simultaneous_open_syn", _C, "connect")),
        (plain & first_plain, _pack("connect_syn", _C, "connect")),
        (plain, _pack("syn_retransmission", _K, "")),
        (first_synack & before(m.first_plain_syn[key]), _pack("simultaneous_open_synack", _K, "")),
        (synack & first_synack, _pack("listen_queue_synack", _K, "")),
        (synack, _pack("synack_retransmission", _K, "")),
        (fin & ((pos != m.first_fin[key]) | retrans), _pack("fin_retransmission", _K, "")),
        (fin & data, _pack("send_data_fin", _C, "close")),
        (fin & before(peer_fin) & acks_peer_fin, _pack("close_fin_ack", _C, "close")),
        (fin & before(peer_fin) & before(m.fin_acked_at[rkey]), _pack("close_fin_after_peer", _C, "close")),
        (fin & before(peer_fin), _pack("simultaneous_close_fin", _C, "close")),
        (fin, _pack("close_fin", _C, "close")),
        ((seg | pure) & ka, _pack("keep_alive", _K, "")),
        (seg & flag(AnalysisFlag.ZERO_WINDOW_PROBE), _pack("zero_window_probe", _K, "")),
        (seg & flag(AnalysisFlag.SPURIOUS_RETRANSMISSION), _pack("spurious_retransmission", _K, "")),
        (seg & flag(AnalysisFlag.FAST_RETRANSMISSION), _pack("fast_retransmission", _K, "")),
        (seg & retrans, _pack("retransmission", _K, "")),
        (seg, _pack("send_data", _C, "send")),
        (pure & ka_ack, _pack("keep_alive_ack", _K, "")),
        (pure & flag(AnalysisFlag.ZERO_WINDOW_PROBE_ACK), _pack("zero_window_probe_ack", _K, "")),
        (pure & (m.syn_acked_at[rkey] == pos), _pack("handshake_ack", _K, "")),
        (pure & acks_peer_fin, _pack("fin_ack", _K, "")),
        (pure & flag(AnalysisFlag.ZERO_WINDOW), _pack("zero_window", _K, "")),
        (pure & flag(AnalysisFlag.WINDOW_UPDATE), _pack("window_update", _K, "")),
        (pure & flag(AnalysisFlag.DUP_ACK), _pack("dup_ack", _K, "")),
        (pure & retrans, _pack("retransmission", _K, "")),
        (pure, _pack("data_ack", _K, "")),
    ]
    out: I64 = np.select([c for c, _ in table], [v for _, v in table], _pack("unknown", _U, ""))
    return out


# rst_reason as a table: [sender state before, receiver state before] -> reason code.
_RST_CODE = np.array(
    [[reason_code(rst_reason(snd, rcv, True)) for rcv in TcpState] for snd in TcpState], dtype=np.int16
)


def _rst_causes(
    m: ControlMarks, rst_pos: I64, state_a: I8, state_b: I8, reason: I16, by: I8, call: I16
) -> None:
    """Classify RST rows from the endpoints' states after the stream's previous row."""
    if rst_pos.size == 0:
        return
    prev = m.prev_in_stream(rst_pos)
    known = prev >= 0
    before = m.rows[np.maximum(prev, 0)]
    unknown = np.int8(TcpState.UNKNOWN)
    sa = np.where(known, state_a[before], unknown)
    sb = np.where(known, state_b[before], unknown)
    by_a = (m.key[rst_pos] & 1) == 0
    snd, rcv = np.where(by_a, sa, sb), np.where(by_a, sb, sa)
    r = np.where(known, _RST_CODE[snd, rcv], reason_code("rst_unknown_connection"))
    abort = r == reason_code("rst_abort")
    reason[rst_pos] = r
    by[rst_pos] = np.where(abort, _C, _K)
    call[rst_pos] = np.where(abort, call_code("close"), 0)


def _is_port_unreachable(proto: int, icmp_type: int, code: int) -> bool:
    return (proto == PROTO_ICMP and icmp_type == 3 and code == 3) or (
        proto == PROTO_ICMPV6 and icmp_type == 1 and code == 4
    )


def _is_icmp_error(proto: int, icmp_type: int) -> bool:
    if proto == PROTO_ICMP:
        return icmp_type in (3, 4, 5, 11, 12)
    return 0 <= icmp_type < 128  # ICMPv6 error messages are types 0-127


_PROBE_LOOKBACK = 10_000  # rows searched back for the peer's last segment (probes are rare)


def _zero_window_probes(t: PacketTable, s: StreamColumns, reason: I16) -> None:
    """Keep-alive-shaped segments sent while the peer's window is closed are zero-window
    probes: Linux's persist timer probes with an empty segment at SND.UNA-1, the shape
    tshark calls a keep-alive (it only knows one-byte probes).  Their answers follow."""
    ka, ka_ack = reason_code("keep_alive"), reason_code("keep_alive_ack")
    zwp, zwp_ack, zw = (reason_code(r) for r in ("zero_window_probe", "zero_window_probe_ack", "zero_window"))
    for i in np.flatnonzero(reason == ka).tolist():
        j = _peer_before(t, s, i)
        if j >= 0 and int(t.window[j]) == 0:
            reason[i] = zwp
    probes = np.flatnonzero(reason == zwp)
    if not probes.size:
        return
    # The answers: a keep-alive ACK, or (as tshark flags it) a zero-window ACK, after a probe.
    answers = np.flatnonzero((reason == ka_ack) | (reason == zw))
    for i in answers[answers > probes[0]].tolist():
        j = _peer_before(t, s, i)
        if j >= 0 and reason[j] == zwp:
            reason[i] = zwp_ack


def _peer_before(t: PacketTable, s: StreamColumns, i: int) -> int:
    """The last row before ``i`` sent by the other end of ``i``'s TCP stream, or -1."""
    st, d = int(s.stream[i]), int(s.direction[i])
    lo = max(0, i - _PROBE_LOOKBACK)
    peer = (s.stream[lo:i] == st) & (s.direction[lo:i] == 1 - d) & (t.proto[lo:i] == PROTO_TCP)
    cand = np.flatnonzero(peer)
    return lo + int(cand[-1]) if cand.size else -1


def infer_causes(
    t: PacketTable,
    s: StreamColumns,
    a: SeqColumns,
    state_a: I8,
    state_b: I8,
    *,
    marks: ControlMarks | None = None,
) -> CauseColumns:
    """Infer every packet's cause from protocol semantics (no recorded calls).

    ``marks``: ``control_marks(t, s, a)`` if the caller already has them.
    """
    n = len(t)
    by = np.full(n, _U, dtype=np.int8)
    side = np.zeros(n, dtype=np.int8)
    call = np.zeros(n, dtype=np.int16)
    reason = np.full(n, reason_code("not_transport"), dtype=np.int16)
    inferred = np.ones(n, dtype=bool)
    call_id = np.full(n, -1, dtype=np.int32)
    proto = t.proto
    tcp_dirs = s.tcp_client_dir
    udp_dirs = s.udp_client_dir

    # TCP/UDP rows without a stream (no addresses or ports) have nothing to say.
    reason[(proto == PROTO_TCP) | (proto == PROTO_UDP)] = reason_code("unknown")

    m = control_marks(t, s, a) if marks is None else marks
    if m.rows.size:
        r, b, c = _tcp_causes(m, a.flags[m.rows], state_a, state_b)
        reason[m.rows] = r
        by[m.rows] = b
        call[m.rows] = c
        del r, b, c
        side[m.rows] = _sides(tcp_dirs, s.stream[m.rows], m.key & 1)
        _zero_window_probes(t, s, reason)

    udp = np.flatnonzero((proto == PROTO_UDP) & (s.stream >= 0) & (s.direction >= 0))
    reason[udp] = reason_code("udp_datagram")
    by[udp] = _C
    call[udp] = call_code("sendto")
    side[udp] = _sides(udp_dirs, s.stream[udp], s.direction[udp])

    icmp = np.flatnonzero((proto == PROTO_ICMP) | (proto == PROTO_ICMPV6))
    reason[icmp] = reason_code("icmp_message")
    for i in icmp.tolist():
        p, ty, code = int(proto[i]), int(t.icmp_type[i]), int(t.icmp_code[i])
        if not _is_icmp_error(p, ty):
            continue
        by[i] = _K
        if not _is_port_unreachable(p, ty, code):
            reason[i] = reason_code("icmp_error")
            continue
        reason[i] = reason_code("icmp_port_unreachable")
        # Sent by the kernel of the host the datagram was for (not by a router).
        q = t.icmp_quotes.get(i)
        st, d = int(s.stream[i]), int(s.direction[i])
        if q is None or st < 0 or d < 0 or t.address(int(t.src[i])) != q.dst_ip:
            continue
        dirs = tcp_dirs if q.proto == "tcp" else udp_dirs
        if st < dirs.size and dirs[st] >= 0:
            side[i] = int(Side.CLIENT) if d == dirs[st] else int(Side.SERVER)
    return CauseColumns(by=by, side=side, call=call, reason=reason, inferred=inferred, call_id=call_id)


# --- attribution to recorded socket calls ------------------------------------

_CONNECT_CALLS = frozenset({"connect", "connect_ex"})
_SEND_CALLS = frozenset({"send", "sendall", "sendto"})
_CONNECT_REASONS = frozenset({"connect_syn", "simultaneous_open_syn"})
_DATA_REASONS = frozenset({"send_data", "send_data_fin"})
_FIN_REASONS = frozenset({"close_fin", "close_fin_after_peer", "close_fin_ack", "simultaneous_close_fin"})
_WILDCARDS = frozenset({"0.0.0.0", "[::]"})
_NEVER = 1 << 62  # the exit time of a call that never returned


def _ep_match(call_ep: str | None, pkt_ep: str) -> bool:
    """``call_ep`` (a socket's address) is the packet's endpoint ``pkt_ep``.

    A socket bound to the wildcard address sends from a real one: the port decides.
    """
    if call_ep is None:
        return False
    if call_ep == pkt_ep:
        return True
    host, _, port = call_ep.rpartition(":")
    return host in _WILDCARDS and pkt_ep.rpartition(":")[2] == port


def _target(c: SocketCall) -> str | None:
    """Where a call was aimed: its remote, else (a failed connect()) the address argument."""
    return c.remote or dict(c.args).get("address") or None


def _exit(c: SocketCall) -> int:
    return _NEVER if c.t_exit_ns is None else c.t_exit_ns


@dataclass
class _Sock:
    """One socket's life in a process: its calls from creation (or first use) to close()."""

    side: str
    proto: str | None
    local: str | None
    remote: str | None
    calls: list[SocketCall]


def _sockets(calls: Sequence[SocketCall]) -> list[_Sock]:
    """The recorded calls grouped by socket: by (side, pid, fd), split at close()."""
    live: dict[tuple[str, int, int], _Sock] = {}
    out: list[_Sock] = []
    for c in sorted(calls, key=lambda c: (c.t_enter_ns, c.id)):
        if c.fd is None:
            continue
        key = (c.side, c.pid, c.fd)
        sk = live.get(key)
        if sk is None or c.call == "socket":
            sk = live[key] = _Sock(c.side, c.proto, None, None, [])
            out.append(sk)
        sk.calls.append(c)
        sk.proto = c.proto or sk.proto
        if c.call != "accept":  # accept's record shows the new connection's addresses
            sk.local = c.local or sk.local
            sk.remote = c.remote or sk.remote
        if c.call == "close":
            del live[key]
    return out


def _stream_rows(s: StreamColumns, proto: I16, which: int) -> dict[int, I64]:
    """Rows of each stream of protocol ``which`` (not ICMP quotes), in file order."""
    rows = np.flatnonzero((proto == which) & (s.stream >= 0) & (s.direction >= 0) & ~s.is_quote)
    st = s.stream[rows]
    order = np.argsort(st, kind="stable")
    rows, st = rows[order], st[order]
    cuts = np.flatnonzero(np.diff(st)) + 1
    parts = zip(np.split(rows, cuts), np.split(st, cuts), strict=True)
    return {int(part_st[0]): part for part, part_st in parts if part.size}


def _pick(socks: list[_Sock], t_last: int) -> _Sock | None:
    """The socket of a stream when its 4-tuple was used more than once: the latest
    one whose first call came before the stream ended."""
    best = None
    for sk in socks:
        if sk.calls[0].t_enter_ns <= t_last or best is None:
            best = sk
    return best


def _side_code(sk_side: str, client: str | None, src: str) -> int:
    """Client/server by the stream's client endpoint, else by the recorded side label."""
    if client is not None:
        return int(Side.CLIENT) if src == client else int(Side.SERVER)
    return {"client": int(Side.CLIENT), "server": int(Side.SERVER)}.get(sk_side, int(Side.NONE))


def _sent_bytes(c: SocketCall) -> int | None:
    """How many bytes a send-like call handed to the kernel (None: unknown)."""
    if c.errno is not None:
        return None if c.call == "sendall" else 0
    value = dict(c.args).get("len", "") if c.call == "sendall" else c.result or ""
    return int(value) if value.isdigit() else None


class _Writer:
    """Sets call causes into copies of the cause columns."""

    def __init__(self, causes: CauseColumns) -> None:
        self.by = causes.by.copy()
        self.side = causes.side.copy()
        self.call = causes.call.copy()
        self.inferred = causes.inferred.copy()
        self.call_id = causes.call_id.copy()
        self.reason = causes.reason

    def set(self, rows: I64 | list[int], c: SocketCall, side: int) -> None:
        self.by[rows] = _C
        self.call[rows] = CALL_CODE.get(c.call, 0)  # 0: a call this version has no name for
        self.call_id[rows] = c.id
        self.inferred[rows] = False
        if side != int(Side.NONE):
            self.side[rows] = side

    def columns(self) -> CauseColumns:
        return CauseColumns(self.by, self.side, self.call, self.reason, self.inferred, self.call_id)


def _closer(sk: _Sock, ts: int, rst: bool) -> SocketCall | None:
    """The close() (or, for a FIN, shutdown(SHUT_WR/SHUT_RDWR)) entered last before ``ts``."""
    best = None
    for c in sk.calls:
        if c.t_enter_ns > ts:
            break
        if c.call == "close" or (
            not rst and c.call == "shutdown" and dict(c.args).get("how") in ("SHUT_WR", "SHUT_RDWR")
        ):
            best = c
    return best


def _tcp_direction(
    w: _Writer, t: PacketTable, a: SeqColumns, rows: I64, sk: _Sock, side: int
) -> None:
    """Data segments, FINs and abortive RSTs of one direction, sent by socket ``sk``."""
    reasons = w.reason[rows]
    data = rows[np.isin(reasons, [reason_code(r) for r in _DATA_REASONS]) & (t.payload_len[rows] > 0)]
    if data.size:
        sends: list[SocketCall] = []
        ends: list[int] = []
        total = 0
        for c in sk.calls:
            if c.call not in _SEND_CALLS:
                continue
            n = _sent_bytes(c)
            if n is None:
                break  # a sendall() that failed part-way: later bytes cannot be placed
            if n:
                total += n
                sends.append(c)
                ends.append(total)
        # The k-th byte written (1-based) travels as relative sequence number k.
        j = np.searchsorted(np.asarray(ends, dtype=np.int64), a.rel_seq[data] - 1, side="right")
        for k in np.unique(j[j < len(sends)]).tolist():
            w.set(data[j == k], sends[k], side)
    fin_codes = [reason_code(r) for r in _FIN_REASONS]
    ctl = np.flatnonzero(np.isin(reasons, fin_codes) | (reasons == reason_code("rst_abort")))
    for i in rows[ctl].tolist():
        closer = _closer(sk, int(t.ts_ns[i]), bool(t.tcp_flags[i] & RST))
        if closer is not None:
            w.set([i], closer, side)


def _connects(w: _Writer, t: PacketTable, s: StreamColumns, calls: Sequence[SocketCall],
              infos: Sequence[StreamInfo]) -> set[int]:
    """SYNs sent by connect(): window contains the SYN, remote is its destination.

    The local address is checked when known (a refused connect() never learns it).
    Returns the streams whose SYN a call explains.
    """
    codes = [reason_code(r) for r in _CONNECT_REASONS]
    syns = np.flatnonzero((t.proto == PROTO_TCP) & np.isin(w.reason, codes) & (s.stream >= 0))
    connects = [(c, _target(c)) for c in calls if c.call in _CONNECT_CALLS]
    known: set[int] = set()
    for i in syns.tolist():
        ts, src, dst = int(t.ts_ns[i]), t.src_endpoint(i), t.dst_endpoint(i)
        for c, remote in connects:
            if remote == dst and c.t_enter_ns <= ts <= _exit(c) and (
                c.local is None or c.local.rpartition(":")[2] == "0" or _ep_match(c.local, src)
            ):
                st = int(s.stream[i])
                w.set([i], c, _side_code(c.side, infos[st].client, src))
                known.add(st)
                break
    return known


def _udp_direction(w: _Writer, t: PacketTable, rows: I64, sends: list[SocketCall], side_of: dict[int, int]
                   ) -> None:
    """Datagrams of one direction matched in order to the send calls that can have sent them."""
    k = 0
    for i in rows.tolist():
        ts = int(t.ts_ns[i])
        # Skip a call whose datagram is not in the capture: it returned before this
        # datagram and the next call had started by then too.
        while k + 1 < len(sends) and _exit(sends[k]) < ts and sends[k + 1].t_enter_ns <= ts:
            k += 1
        if k < len(sends) and sends[k].t_enter_ns <= ts:
            w.set([i], sends[k], side_of[sends[k].id])
            k += 1


def attribute_calls(
    t: PacketTable, s: StreamColumns, a: SeqColumns, causes: CauseColumns, calls: Sequence[SocketCall]
) -> CauseColumns:
    """Tie packets to the recorded socket calls that made them (``inferred=False``).

    connect() → its SYN; send()/sendall() → the data segments carrying its bytes
    (by sequence range, even when sent after the call returned); close()/shutdown()
    → the FIN, close() → an abortive RST; sendto()/send() on UDP → the datagram.
    Packets the kernel sends on its own keep their reason and become certain
    (``inferred=False``) in streams whose sockets were recorded.  Pure; returns
    ``causes`` itself when there are no calls.
    """
    if not calls:
        return causes
    w = _Writer(causes)
    socks = _sockets(calls)
    by_remote: dict[tuple[str, str], list[_Sock]] = {}  # a dict: streams x sockets stays cheap
    for sk in socks:
        if sk.remote is not None:
            by_remote.setdefault((sk.proto or "", sk.remote), []).append(sk)
    known_tcp = _connects(w, t, s, calls, s.tcp_streams)

    def find(proto: str, src: str, dst: str, rows: I64) -> _Sock | None:
        cands = [sk for sk in by_remote.get((proto, dst), ()) if _ep_match(sk.local, src)]
        return _pick(cands, int(t.ts_ns[rows[-1]])) if cands else None

    for st, rows in _stream_rows(s, t.proto, PROTO_TCP).items():
        info = s.tcp_streams[st]
        for d, (src, dst) in enumerate(((info.a, info.b), (info.b, info.a))):
            drows = rows[s.direction[rows] == d]
            if drows.size == 0:
                continue
            owner = find("tcp", src, dst, drows)
            if owner is not None:
                known_tcp.add(st)
                _tcp_direction(w, t, a, drows, owner, _side_code(owner.side, info.client, src))
    known_udp: set[int] = set()
    udp_socks: dict[str, list[_Sock]] = {}  # by local port
    for sk in socks:
        if sk.proto == "udp" and sk.local is not None:
            udp_socks.setdefault(sk.local.rpartition(":")[2], []).append(sk)
    for st, rows in _stream_rows(s, t.proto, PROTO_UDP).items():
        info = s.udp_streams[st]
        for d, (src, dst) in enumerate(((info.a, info.b), (info.b, info.a))):
            drows = rows[s.direction[rows] == d]
            side_of: dict[int, int] = {}
            sends: list[SocketCall] = []
            for sk in udp_socks.get(src.rpartition(":")[2], ()):
                if not _ep_match(sk.local, src):
                    continue
                for c in sk.calls:
                    to = dict(c.args).get("address") if c.call == "sendto" else sk.remote
                    if c.call in _SEND_CALLS and to == dst and c.errno is None:
                        sends.append(c)
                        side_of[c.id] = _side_code(sk.side, info.client, src)
            if sends and drows.size:
                known_udp.add(st)
                sends.sort(key=lambda c: (c.t_enter_ns, c.id))
                _udp_direction(w, t, drows, sends, side_of)
    _certain_kernel_rows(w, t, s, known_tcp, known_udp)
    return w.columns()


def _certain_kernel_rows(w: _Writer, t: PacketTable, s: StreamColumns, known_tcp: set[int],
                         known_udp: set[int]) -> None:
    """Kernel-sent packets of streams with recorded sockets are facts, not guesses."""
    kernel = w.by == _K
    for proto, known in ((PROTO_TCP, known_tcp), (PROTO_UDP, known_udp)):
        if known:
            rows = kernel & (t.proto == proto) & np.isin(s.stream, np.fromiter(known, dtype=np.int64))
            w.inferred[rows & ~s.is_quote] = False
    for i in np.flatnonzero(kernel & s.is_quote).tolist():
        q = t.icmp_quotes.get(i)
        st = int(s.stream[i])
        if q is not None and st in (known_tcp if q.proto == "tcp" else known_udp):
            w.inferred[i] = False


def link_errors(t: PacketTable, s: StreamColumns, calls: Sequence[SocketCall]) -> dict[int, int]:
    """Call id → row of the packet that made the call fail.

    connect() ECONNREFUSED ↔ the RST answering its SYN; ECONNREFUSED on a UDP
    socket (recv()/recvfrom()/send() of a connected socket) ↔ the ICMP port
    unreachable quoting its datagram; ECONNRESET ↔ the RST from the peer.
    """
    failed = [(c, e) for c in calls if (e := c.error) in ("ECONNREFUSED", "ECONNRESET")]
    if not failed:
        return {}
    tcp = t.proto == PROTO_TCP
    rsts = np.flatnonzero(tcp & ((t.tcp_flags & RST) != 0)).tolist()
    syns = np.flatnonzero(tcp & ((t.tcp_flags & (SYN | ACK)) == SYN)).tolist()
    unreach = [
        i for i in np.flatnonzero((t.proto == PROTO_ICMP) | (t.proto == PROTO_ICMPV6)).tolist()
        if _is_port_unreachable(int(t.proto[i]), int(t.icmp_type[i]), int(t.icmp_code[i]))
    ]
    out: dict[int, int] = {}
    for c, e in failed:
        end = _exit(c)
        if c.proto == "udp" and e == "ECONNREFUSED":
            row = None
            for i in unreach:
                q = t.icmp_quotes.get(i)
                if q is None or int(t.ts_ns[i]) > end:
                    continue
                if _ep_match(c.local, endpoint_str(q.src_ip, q.sport)) and (
                    c.remote is None or c.remote == endpoint_str(q.dst_ip, q.dport)
                ):
                    row = i  # the latest one before the call returned
            if row is not None:
                out[c.id] = row
        elif c.call in _CONNECT_CALLS and e == "ECONNREFUSED":
            for i in syns:
                ts = int(t.ts_ns[i])
                remote = _target(c)
                if not (c.t_enter_ns <= ts <= end and t.dst_endpoint(i) == remote):
                    continue
                st = int(s.stream[i])
                rst = next((r for r in rsts if int(s.stream[r]) == st and ts <= int(t.ts_ns[r]) <= end
                            and t.src_endpoint(r) == remote), None)
                if rst is not None:
                    out[c.id] = rst
                    break
        elif e == "ECONNRESET" and c.remote is not None:
            row = None
            for r in rsts:
                if int(t.ts_ns[r]) <= end and t.src_endpoint(r) == c.remote and _ep_match(
                    c.local, t.dst_endpoint(r)
                ):
                    row = r
            if row is not None:
                out[c.id] = row
    return out
