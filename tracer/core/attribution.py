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
"""

from __future__ import annotations

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
    TcpState,
)
from tracer.core.reasons import CALL_NAMES, REASONS, call_code, reason_code
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


def _pack(reason: str, by: int, call: str) -> int:
    """(reason, by, call) as one int, so that one ``np.select`` sets all three."""
    return reason_code(reason) << 10 | by << 5 | call_code(call)


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
    packed[first] = (packed[first] & 0x3FF) | reason_code("mid_stream") << 10
    del other

    reason = (packed >> 10).astype(np.int16)
    by = ((packed >> 5) & 31).astype(np.int8)
    packed &= 31
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


def infer_causes(
    t: PacketTable, s: StreamColumns, a: SeqColumns, state_a: I8, state_b: I8
) -> CauseColumns:
    """Infer every packet's cause from protocol semantics (no recorded calls)."""
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

    m = control_marks(t, s, a)
    if m.rows.size:
        r, b, c = _tcp_causes(m, a.flags[m.rows], state_a, state_b)
        reason[m.rows] = r
        by[m.rows] = b
        call[m.rows] = c
        del r, b, c
        side[m.rows] = _sides(tcp_dirs, s.stream[m.rows], m.key & 1)

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
