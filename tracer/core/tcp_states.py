"""RFC 9293 TCP state machine: one transition table, tracked per endpoint.

Twins that must change together: ``_event_matrix`` (every row's events as columns,
applied by ``_scan``) and ``walk`` (the same events found and applied row by row, the
readable reference behind ``track_states_reference``).  Tests in
``tests/test_tcp_states.py`` compare them: ``test_event_matrix_is_the_twin_of_walk``
event row by event row on every corpus capture and ``captures/``;
``test_corpus_final_states_agree_with_tshark_completeness`` and
``test_any_packet_sequence`` the whole ``track_states`` against
``track_states_reference``.

``TRANSITIONS`` is RFC 9293 §3.3.2 (figure 5) written as a table keyed by
(state, event), where an event is what the wire shows for *one* endpoint
("sends FIN", "receives SYN+ACK", ...).  A pair missing from the table leaves the
state unchanged: that is how retransmitted SYNs/FINs, duplicate RSTs and
segments that change nothing are handled without double transitions.

States are those *after* each packet as seen at the capture point: the packet is
taken as sent and, unless the wire shows otherwise, received at once.  A
listener's receipt of a SYN is shown with its SYN-ACK (figure 5's "rcv SYN / snd
SYN,ACK" is one arrow): the server is LISTEN until it answers, so a SYN that a
full listen queue dropped, or that is still in flight, leaves it in LISTEN.  The wire
shows otherwise when the receiver sends something that does not acknowledge a
SYN/FIN it supposedly had (crossing SYNs in a simultaneous open, crossing FINs in
a simultaneous close, a lost FIN that is retransmitted): then the receiver got
the copy it later acknowledges, i.e. the last copy before its first
acknowledging packet, or, if it sent a non-acknowledging packet after that copy,
just before that acknowledging packet.

Choices documented for students:

* Initial states come from each endpoint's first packet: an endpoint that opens
  with a SYN starts CLOSED (connect() makes it SYN-SENT), one that opens with a
  SYN+ACK was LISTENing, one that answers a SYN with a RST is CLOSED (no
  listener); anything else started before the capture and is UNKNOWN until its
  first ACK-bearing segment shows it ESTABLISHED.
* A RST received in SYN-RECEIVED that came from LISTEN returns the server
  endpoint to LISTEN (RFC 9293 §3.10.7.4): the half-open connection is dropped
  from the listen queue, the listening socket carries on and accept() never
  sees it.  Every other RST leads to CLOSED (including TIME-WAIT, as in RFC 9293
  and Linux's default ``tcp_rfc1337=0``).
* TIME-WAIT is final in a capture (the 2*MSL timer is not on the wire).

Vectorised: only SYN/FIN/RST rows, the first ACKs of each SYN and FIN and the
first row of each direction carry events (a small fixed matrix of event slots
per row).  The table, as an array, is applied to the j-th event row of every
stream at once, so Python loops only as often as the busiest stream has event
rows; every other row takes its stream's state by a forward fill.
``track_states_reference`` computes the same with a plain row-by-row walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Protocol

import numpy as np

from tracer.core.model import ACK, FIN, RST, SYN, TcpState
from tracer.core.streams import StreamColumns
from tracer.core.table import I8, I16, I32, I64, Bool, PacketTable


class SeqColumns(Protocol):
    """What this module needs of ``seq_analysis.TcpAnalysisColumns``."""

    @property
    def rel_seq(self) -> I64: ...

    @property
    def rel_ack(self) -> I64: ...

    @property
    def flags(self) -> I32: ...


class Event(IntEnum):
    """What the wire shows happening to one endpoint."""

    SND_SYN = 0
    RCV_SYN = 1
    SND_SYN_ACK = 2
    RCV_SYN_ACK = 3
    SND_ACK_OF_SYN = 4  # first segment acknowledging the peer's SYN
    RCV_ACK_OF_SYN = 5  # the peer acknowledges this endpoint's SYN
    SND_FIN = 6
    RCV_FIN = 7
    RCV_FIN_ACK_OF_FIN = 8  # the peer's FIN also acknowledges this endpoint's FIN
    RCV_ACK_OF_FIN = 9  # the peer acknowledges this endpoint's FIN
    SND_RST = 10
    RCV_RST = 11
    SND_SEGMENT = 12  # first ACK-bearing segment sent (capture began mid-connection)
    RCV_SEGMENT = 13  # first ACK-bearing segment received (capture began mid-connection)


_S = TcpState
_E = Event

_TABLE: dict[tuple[TcpState, Event], TcpState] = {
    # Opening (figure 5, upper half).
    (_S.CLOSED, _E.SND_SYN): _S.SYN_SENT,  # active OPEN: connect()
    (_S.UNKNOWN, _E.SND_SYN): _S.SYN_SENT,
    (_S.LISTEN, _E.RCV_SYN): _S.SYN_RECEIVED,  # rcv SYN / snd SYN,ACK
    (_S.SYN_SENT, _E.RCV_SYN): _S.SYN_RECEIVED,  # simultaneous open
    (_S.LISTEN, _E.SND_SYN_ACK): _S.SYN_RECEIVED,  # its SYN was not captured
    (_S.UNKNOWN, _E.SND_SYN_ACK): _S.SYN_RECEIVED,
    (_S.SYN_SENT, _E.SND_SYN_ACK): _S.SYN_RECEIVED,  # simultaneous open, peer SYN unseen
    (_S.SYN_SENT, _E.RCV_SYN_ACK): _S.ESTABLISHED,  # rcv SYN,ACK / snd ACK
    (_S.SYN_RECEIVED, _E.RCV_SYN_ACK): _S.ESTABLISHED,  # simultaneous open
    (_S.UNKNOWN, _E.RCV_SYN_ACK): _S.ESTABLISHED,  # its SYN was not captured
    (_S.SYN_RECEIVED, _E.RCV_ACK_OF_SYN): _S.ESTABLISHED,  # rcv ACK of SYN
    (_S.SYN_SENT, _E.SND_ACK_OF_SYN): _S.ESTABLISHED,  # the SYN,ACK was not captured
    (_S.SYN_SENT, _E.RCV_ACK_OF_SYN): _S.ESTABLISHED,  # the SYN,ACK was not captured
    (_S.UNKNOWN, _E.SND_ACK_OF_SYN): _S.ESTABLISHED,
    (_S.UNKNOWN, _E.SND_SEGMENT): _S.ESTABLISHED,  # inferred: started before the capture
    (_S.UNKNOWN, _E.RCV_SEGMENT): _S.ESTABLISHED,
    # Closing (figure 5, lower half).
    (_S.ESTABLISHED, _E.SND_FIN): _S.FIN_WAIT_1,  # CLOSE / snd FIN
    (_S.SYN_RECEIVED, _E.SND_FIN): _S.FIN_WAIT_1,
    (_S.UNKNOWN, _E.SND_FIN): _S.FIN_WAIT_1,
    (_S.CLOSE_WAIT, _E.SND_FIN): _S.LAST_ACK,  # passive close
    (_S.ESTABLISHED, _E.RCV_FIN): _S.CLOSE_WAIT,  # rcv FIN / snd ACK
    (_S.SYN_RECEIVED, _E.RCV_FIN): _S.CLOSE_WAIT,
    (_S.UNKNOWN, _E.RCV_FIN): _S.CLOSE_WAIT,
    (_S.FIN_WAIT_1, _E.RCV_FIN): _S.CLOSING,  # simultaneous close
    (_S.FIN_WAIT_2, _E.RCV_FIN): _S.TIME_WAIT,
    (_S.FIN_WAIT_1, _E.RCV_FIN_ACK_OF_FIN): _S.TIME_WAIT,  # rcv FIN,ACK of FIN
    (_S.FIN_WAIT_2, _E.RCV_FIN_ACK_OF_FIN): _S.TIME_WAIT,
    (_S.CLOSING, _E.RCV_FIN_ACK_OF_FIN): _S.TIME_WAIT,
    (_S.FIN_WAIT_1, _E.RCV_ACK_OF_FIN): _S.FIN_WAIT_2,
    (_S.CLOSING, _E.RCV_ACK_OF_FIN): _S.TIME_WAIT,
    (_S.LAST_ACK, _E.RCV_ACK_OF_FIN): _S.CLOSED,
}
# Reset (RFC 9293 §3.10.7): every state goes to CLOSED; a RST is ignored in LISTEN.
for _st in TcpState:
    _TABLE[(_st, _E.SND_RST)] = _S.CLOSED
    _TABLE[(_st, _E.RCV_RST)] = _S.LISTEN if _st is _S.LISTEN else _S.CLOSED

TRANSITIONS: Mapping[tuple[TcpState, Event], TcpState] = MappingProxyType(_TABLE)


def next_state(state: TcpState, event: Event, passive: bool = False) -> TcpState:
    """The state after ``event``; ``passive`` marks an endpoint that came from LISTEN.

    The one rule outside the table: a RST received in a SYN-RECEIVED reached from
    LISTEN returns to LISTEN (see the module docstring).
    """
    if passive and state is _S.SYN_RECEIVED and event is _E.RCV_RST:
        return _S.LISTEN
    return TRANSITIONS.get((state, event), state)


# --- vectorised preparation ----------------------------------------------------


def first_per_key(keys: I32 | I64, mask: Bool, nkeys: int, pos: I64 | None = None) -> I64:
    """Smallest position of a ``mask`` row per key, -1 if none.

    A row's position is its index, or ``pos[index]`` when ``pos`` is given.
    """
    big = np.iinfo(np.int64).max
    out = np.full(nkeys, big, dtype=np.int64)
    idx = np.flatnonzero(mask)
    np.minimum.at(out, keys[idx], idx if pos is None else pos[idx])
    out[out == big] = -1
    return out


@dataclass(frozen=True, eq=False)
class ControlMarks:
    """TCP rows and where each direction's SYN and FIN are sent and acknowledged.

    Positions index ``rows``: the TCP rows sorted by (stream, row), as
    ``StreamColumns.tcp_rows`` (so each stream is one run, in packet order).  A *key*
    is one direction of one stream: ``stream * 2 + direction``; ``key ^ 1`` is the
    reverse.  Per-key arrays hold a position or -1.
    """

    rows: I64
    key: I32
    flags: I16
    plen: I32
    nkeys: int
    first_pos: I64  # first row sent in this direction
    first_syn: I64  # first SYN (with or without ACK)
    first_plain_syn: I64  # first SYN without ACK
    first_synack: I64
    first_fin: I64
    syn_acked_at: I64  # first row of the peer that acknowledges this direction's SYN
    fin_acked_at: I64  # first row of the peer that acknowledges this direction's FIN
    b_sent: I32  # per position: rows sent by b up to it (a running count)

    def prev_in_stream(self, p: I64) -> I64:
        """For positions ``p``: the previous position of the same stream, -1 if none."""
        q = np.maximum(p - 1, 0)
        same = (p >= 1) & ((self.key[q] >> 1) == (self.key[p] >> 1))
        out: I64 = np.where(same, q, -1)
        return out

    def sent_between(self, key: I64, lo: I64, hi: I64) -> I64:
        """Rows sent in direction ``key`` strictly between positions ``lo`` < ``hi`` of its stream."""
        by_b = self.b_sent[hi - 1].astype(np.int64) - self.b_sent[lo]
        out: I64 = np.where((key & 1) == 1, by_b, hi - lo - 1 - by_b)
        return out


_SLICE = 1 << 18  # rows per slice where a pass needs several full-length temporaries


def control_marks(t: PacketTable, s: StreamColumns, a: SeqColumns) -> ControlMarks:
    """Find the SYN/FIN rows of every direction and their first acknowledgements."""
    rows = s.tcp_rows
    d = s.direction[rows]
    key = s.stream[rows] * 2  # int32, like the stream numbers: half the memory of int64
    key += d
    b_sent = np.cumsum(d, dtype=np.int32)
    del d
    nkeys = (int(key.max()) | 1) + 1 if rows.size else 0
    flags = t.tcp_flags[rows].astype(np.int16)  # 9 flag bits
    plen = np.maximum(t.payload_len[rows], 0)
    is_syn = (flags & SYN) != 0
    is_fin = (flags & FIN) != 0
    has_ack = (flags & ACK) != 0

    # Positions are grouped by stream, so a key first appears at the start of a run.
    runs = np.flatnonzero(np.diff(key, prepend=-1))  # keys are >= 0
    first_pos = first_per_key(key[runs], np.ones(runs.size, dtype=bool), nkeys, runs)
    del runs
    first_syn = first_per_key(key, is_syn, nkeys)
    first_plain_syn = first_per_key(key, is_syn & ~has_ack, nkeys)
    first_synack = first_per_key(key, is_syn & has_ack, nkeys)
    first_fin = first_per_key(key, is_fin, nkeys)
    del is_syn, is_fin

    # The first row of each direction acknowledging the reverse direction's SYN (FIN):
    # an ACK at or beyond the sequence number just after it.  In slices of rows, so
    # that the temporaries stay small.
    big = np.iinfo(np.int64).max
    ack_ends = []
    for first, extra in ((first_syn, None), (first_fin, plen)):
        seen = first >= 0
        fp = rows[np.where(seen, first, 0)]
        end = a.rel_seq[fp] + 1
        if extra is not None:
            end += extra[np.where(seen, first, 0)]
        end[~seen] = big  # nothing to acknowledge
        ack_ends.append((first, end))
    syn_acked_at = np.full(nkeys, big, dtype=np.int64)
    fin_acked_at = np.full(nkeys, big, dtype=np.int64)
    for lo in range(0, rows.size, _SLICE):
        hi = min(lo + _SLICE, rows.size)
        rk = key[lo:hi] ^ 1
        pos = np.arange(lo, hi)
        ra = a.rel_ack[rows[lo:hi]]
        ok = has_ack[lo:hi] & (ra >= 0)
        for (first, end), out in zip(ack_ends, (syn_acked_at, fin_acked_at), strict=True):
            hit = np.flatnonzero(ok & (ra >= end[rk]) & (pos > first[rk]))
            np.minimum.at(out, rk[hit], hit + lo)
    for out in (syn_acked_at, fin_acked_at):
        out[out == big] = -1
    del has_ack

    return ControlMarks(
        rows=rows,
        key=key,
        flags=flags,
        plen=plen,
        nkeys=nkeys,
        first_pos=first_pos,
        first_syn=first_syn,
        first_plain_syn=first_plain_syn,
        first_synack=first_synack,
        first_fin=first_fin,
        syn_acked_at=syn_acked_at,
        fin_acked_at=fin_acked_at,
        b_sent=b_sent,
    )


def _receipts(
    m: ControlMarks, copies: Bool, acked_at: I64, listening: Bool | None = None
) -> tuple[I64, I64, Bool]:
    """Where the receiver got each direction's SYN (or FIN): one row per key.

    Returns (keys, copy position received, receipt deferred to the receiver's
    acknowledging row).  See the module docstring for the rule.  ``listening``
    (per key) defers a listener's receipt of a SYN to its SYN-ACK.
    """
    idx = np.flatnonzero(copies)
    if idx.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=bool)
    k = m.key[idx]
    ack = acked_at[k]
    # Copies the receiver could have answered: all before its first acknowledgement.
    before = (ack < 0) | (idx < ack)
    last = np.full(m.nkeys, -1, dtype=np.int64)
    np.maximum.at(last, k[before], idx[before])
    first = first_per_key(m.key, copies, m.nkeys)
    keys = np.flatnonzero(first >= 0)
    ack_k = acked_at[keys]
    got = np.where(ack_k >= 0, last[keys], first[keys])
    # The receiver sent something after that copy that does not acknowledge it.
    acked = ack_k >= 0
    deferred = np.zeros(keys.size, dtype=bool)
    deferred[acked] = m.sent_between(keys[acked] ^ 1, got[acked], ack_k[acked]) > 0
    if listening is not None:
        deferred |= (ack_k >= 0) & listening[keys ^ 1]
    return keys, got, deferred


def track_states(
    t: PacketTable,
    s: StreamColumns,
    a: SeqColumns,
    *,
    vector_steps: int = 256,
    marks: ControlMarks | None = None,
) -> tuple[I8, I8]:
    """``state_a``, ``state_b``: ``TcpState`` of each stream's endpoints after every row.

    -1 for rows that are not TCP (or have no stream).  ``vector_steps``: event rows
    per stream done by the vector scan; a stream's further ones are walked in Python.
    ``marks``: ``control_marks(t, s, a)`` when the caller already has them (the
    pipeline passes them on to ``infer_causes`` too), so they are found once.
    """
    n = len(t)
    state_a = np.full(n, -1, dtype=np.int8)
    state_b = np.full(n, -1, dtype=np.int8)
    m = control_marks(t, s, a) if marks is None else marks
    if m.rows.size == 0:
        return state_a, state_b
    init, passive = initial_states(m)
    ev_pos = _event_positions(m)
    snd, rcv = _event_matrix(m, passive, ev_pos)
    ev_a, ev_b = _scan(m, ev_pos, snd, rcv, init, passive, max(vector_steps, 0))
    _fill(m, ev_pos, ev_a, ev_b, state_a, state_b)
    return state_a, state_b


def track_states_reference(t: PacketTable, s: StreamColumns, a: SeqColumns) -> tuple[I8, I8]:
    """``track_states`` by a plain Python walk over the event rows: the readable spec.

    Tests check that the vectorised ``track_states`` gives the same result.
    """
    n = len(t)
    state_a = np.full(n, -1, dtype=np.int8)
    state_b = np.full(n, -1, dtype=np.int8)
    m = control_marks(t, s, a)
    if m.rows.size == 0:
        return state_a, state_b
    ev_a, ev_b, ev_pos = walk(m)
    _fill(m, ev_pos, ev_a, ev_b, state_a, state_b)
    return state_a, state_b


# _NEXT[passive, state, event]: TRANSITIONS plus the back-to-LISTEN rule, as an
# array; the extra last event column is "no event" (state unchanged).
_NOOP = len(Event)
_NEXT = np.array(
    [[[int(next_state(st, ev, bool(p))) for ev in Event] + [int(st)] for st in TcpState] for p in (0, 1)],
    dtype=np.int8,
)


def _event_positions(m: ControlMarks) -> I64:
    """Positions that can change a state: SYN/FIN/RST rows, first rows, first ACKs."""
    ev_mask = (m.flags & (SYN | FIN | RST)) != 0
    for arr in (m.first_pos, m.syn_acked_at, m.fin_acked_at):
        ev_mask[arr[arr >= 0]] = True
    return np.flatnonzero(ev_mask)


def _event_matrix(m: ControlMarks, passive: Bool, p: I64) -> tuple[I8, I8]:
    """Per event row: the sender's events (6 slots) and the receiver's (7), in order.

    Empty slots hold ``_NOOP``.  The same events, in the same order, as ``walk``
    applies: deferred receipts first, then SYN / ACK of SYN, first segment, FIN,
    receipts and ACK of FIN, RST.
    """
    is_syn = (m.flags & SYN) != 0
    is_fin = (m.flags & FIN) != 0
    syn_keys, syn_got, syn_def = _receipts(m, is_syn, m.syn_acked_at, passive)
    fin_keys, fin_got, fin_def = _receipts(m, is_fin, m.fin_acked_at)
    k = m.key[p]
    r = k ^ 1
    f = m.flags[p]
    syn = (f & SYN) != 0
    ack = (f & ACK) != 0
    fin = ((f & FIN) != 0) & ~syn
    rst = (f & RST) != 0
    acks_syn = ~syn & (m.syn_acked_at[r] == p)
    first_seg = ~syn & ack & (m.first_pos[k] == p)
    acks_fin = m.fin_acked_at[r] == p
    # Every position below is an event position: find its event row by bisection.
    got_fin = np.zeros(p.size, dtype=bool)
    got_fin[np.searchsorted(p, fin_got[~fin_def])] = True
    got_syn = np.zeros(p.size, dtype=bool)
    got_syn[np.searchsorted(p, syn_got[~syn_def])] = True
    got_syn &= ~got_fin

    def index(pos: I64) -> I64:
        out: I64 = np.searchsorted(p, pos)
        return out

    def syn_kind(rows: I64) -> I64:
        out: I64 = np.where((m.flags[rows] & ACK) != 0, int(Event.RCV_SYN_ACK), int(Event.RCV_SYN))
        return out

    E = Event
    snd = np.full((p.size, 6), _NOOP, dtype=np.int8)
    rcv = np.full((p.size, 7), _NOOP, dtype=np.int8)
    # Receipts deferred to the receiver's acknowledging row come first in that row.
    snd[index(m.syn_acked_at[syn_keys[syn_def]]), 0] = syn_kind(syn_got[syn_def])
    snd[index(m.fin_acked_at[fin_keys[fin_def]]), 1] = int(E.RCV_FIN)
    snd[syn, 2] = np.where(ack, int(E.SND_SYN_ACK), int(E.SND_SYN))[syn]
    snd[acks_syn, 2] = int(E.SND_ACK_OF_SYN)
    snd[first_seg, 3] = int(E.SND_SEGMENT)
    snd[fin, 4] = int(E.SND_FIN)
    snd[rst, 5] = int(E.SND_RST)
    rcv[acks_syn, 2] = int(E.RCV_ACK_OF_SYN)
    rcv[first_seg, 3] = int(E.RCV_SEGMENT)
    rcv[got_fin, 4] = np.where(acks_fin, int(E.RCV_FIN_ACK_OF_FIN), int(E.RCV_FIN))[got_fin]
    rcv[got_syn, 4] = syn_kind(p)[got_syn]
    rcv[~got_fin & acks_fin, 5] = int(E.RCV_ACK_OF_FIN)
    rcv[rst, 6] = int(E.RCV_RST)
    return snd, rcv


def _scan(
    m: ControlMarks, p: I64, snd: I8, rcv: I8, init: I8, passive: Bool, steps: int
) -> tuple[I8, I8]:
    """States of a and b after each event row, applying the table to all streams at once.

    Step ``j`` handles the ``j``-th event row of every stream (streams are
    independent), so Python loops only as often as the busiest stream has event
    rows; beyond ``steps`` the rare remainder is walked in Python.
    """
    e = p.size
    out_a = np.empty(e, dtype=np.int8)
    out_b = np.empty(e, dtype=np.int8)
    eo = np.arange(e)  # event rows, already in (stream, position) order
    key = m.key[p]
    stream = key[eo] >> 1
    starts = np.flatnonzero(np.concatenate(([True], stream[1:] != stream[:-1])))
    counts = np.diff(np.append(starts, e))
    busiest = np.argsort(-counts, kind="stable")
    cnt, st0 = counts[busiest], starts[busiest]
    neg = -cnt
    state = init.astype(np.intp)
    pas = passive.astype(np.intp)
    for j in range(min(int(cnt[0]), steps)):
        na = int(np.searchsorted(neg, -j, side="left"))  # streams with more than j event rows
        rows = eo[st0[:na] + j]
        ks = key[rows]
        for who, slots in ((ks, snd), (ks ^ 1, rcv)):
            for c in range(slots.shape[1]):
                evs = slots[rows, c]
                if (evs != _NOOP).any():
                    state[who] = _NEXT[pas[who], state[who], evs]
        a_key = ks & ~1
        out_a[rows] = state[a_key]
        out_b[rows] = state[a_key | 1]
    heavy = int(np.searchsorted(neg, -steps, side="left"))
    if heavy:
        table = _NEXT.tolist()
        st_l, pas_l = state.tolist(), pas.tolist()
        for g in range(heavy):
            first = int(st0[g])
            for i in eo[first + steps : first + int(cnt[g])].tolist():
                k = int(key[i])
                for w, slots_w in ((k, snd), (k ^ 1, rcv)):
                    for ev in slots_w[i].tolist():
                        st_l[w] = table[pas_l[w]][st_l[w]][ev]
                out_a[i] = st_l[k & ~1]
                out_b[i] = st_l[k | 1]
    return out_a, out_b


def initial_states(m: ControlMarks) -> tuple[I8, Bool]:
    """Per key: the state before its first packet, and whether it was LISTENing."""
    init = np.full(m.nkeys, int(TcpState.UNKNOWN), dtype=np.int8)
    fp = m.first_pos
    seen = fp >= 0
    f = np.where(seen, m.flags[np.maximum(fp, 0)], 0)
    rev_first = fp[np.arange(m.nkeys, dtype=np.int64) ^ 1]
    rf = np.where(rev_first >= 0, m.flags[np.maximum(rev_first, 0)], 0)
    plain_syn = seen & ((f & (SYN | ACK)) == SYN)
    synack = seen & ((f & (SYN | ACK)) == (SYN | ACK))
    # A RST answering the peer's opening SYN: nothing listens on that port.
    refused = seen & ((f & (RST | SYN)) == RST) & ((rf & (SYN | ACK)) == SYN) & (rev_first < fp)
    init[plain_syn | refused] = int(TcpState.CLOSED)
    init[synack] = int(TcpState.LISTEN)
    return init, synack


def walk(m: ControlMarks) -> tuple[I8, I8, I64]:
    """The table walk, row by row, over the event rows (the reference for ``_scan``).

    Returns the states of a and b after each event row, and the rows' positions.
    """
    is_syn = (m.flags & SYN) != 0
    is_fin = (m.flags & FIN) != 0

    init, passive_arr = initial_states(m)
    syn_keys, syn_got, syn_def = _receipts(m, is_syn, m.syn_acked_at, passive_arr)
    fin_keys, fin_got, fin_def = _receipts(m, is_fin, m.fin_acked_at)

    ev_pos = _event_positions(m)

    # Receipt kind per position (received at the copy's own row) and deferred receipts
    # (received just before the receiver's acknowledging row).
    rcpt: dict[int, Event] = {}
    pre: dict[int, list[Event]] = {}
    flags_l = m.flags

    def kind(p: int, fin: bool) -> Event:
        if fin:
            return Event.RCV_FIN
        return Event.RCV_SYN_ACK if flags_l[p] & ACK else Event.RCV_SYN

    for keys, got, deferred, acked, fin in (
        (syn_keys, syn_got, syn_def, m.syn_acked_at, False),
        (fin_keys, fin_got, fin_def, m.fin_acked_at, True),
    ):
        for k, g, dfr in zip(keys.tolist(), got.tolist(), deferred.tolist(), strict=True):
            ev = kind(g, fin)
            if dfr:
                pre.setdefault(int(acked[k]), []).append(ev)
            elif fin:
                rcpt[g] = Event.RCV_FIN
            else:
                rcpt.setdefault(g, ev)

    state = [TcpState(int(v)) for v in init.tolist()]
    passive = passive_arr.tolist()
    keys_l = m.key[ev_pos].tolist()
    first_pos = m.first_pos.tolist()
    syn_acked = m.syn_acked_at.tolist()
    fin_acked = m.fin_acked_at.tolist()
    out_a = np.empty(ev_pos.size, dtype=np.int8)
    out_b = np.empty(ev_pos.size, dtype=np.int8)
    fl = m.flags[ev_pos].tolist()

    def apply(k: int, evs: list[Event]) -> None:
        st = state[k]
        for e in evs:
            st = next_state(st, e, passive[k])
        state[k] = st

    for j, (p, k, f) in enumerate(zip(ev_pos.tolist(), keys_l, fl, strict=True)):
        r = k ^ 1
        syn = bool(f & SYN)
        ack = bool(f & ACK)
        snd: list[Event] = list(pre.get(p, ()))
        rcv: list[Event] = []
        first_here = first_pos[k] == p
        if syn:
            snd.append(Event.SND_SYN_ACK if ack else Event.SND_SYN)
        else:
            if syn_acked[r] == p:
                snd.append(Event.SND_ACK_OF_SYN)
                rcv.append(Event.RCV_ACK_OF_SYN)
            if first_here and ack:
                snd.append(Event.SND_SEGMENT)
                rcv.append(Event.RCV_SEGMENT)
            if f & FIN:
                snd.append(Event.SND_FIN)
        recv_ev = rcpt.get(p)
        acks_fin = fin_acked[r] == p
        if recv_ev is Event.RCV_FIN:
            rcv.append(Event.RCV_FIN_ACK_OF_FIN if acks_fin else Event.RCV_FIN)
        else:
            if recv_ev is not None:
                rcv.append(recv_ev)
            if acks_fin:
                rcv.append(Event.RCV_ACK_OF_FIN)
        if f & RST:
            snd.append(Event.SND_RST)
            rcv.append(Event.RCV_RST)
        apply(k, snd)
        apply(r, rcv)
        a_key = k & ~1
        out_a[j] = state[a_key]
        out_b[j] = state[a_key | 1]
    return out_a, out_b, ev_pos


def _fill(m: ControlMarks, ev_pos: I64, ev_a: I8, ev_b: I8, state_a: I8, state_b: I8) -> None:
    """Forward-fill the event rows' states over every row of the same stream."""
    is_ev = np.zeros(m.rows.size, dtype=bool)
    is_ev[ev_pos] = True
    val_a = np.zeros(m.rows.size, dtype=np.int8)
    val_b = np.zeros(m.rows.size, dtype=np.int8)
    val_a[ev_pos] = ev_a
    val_b[ev_pos] = ev_b
    # Positions are in stream order and each stream's first row is an event row, so
    # the fill never crosses streams.
    src = np.where(is_ev, np.arange(m.rows.size), 0)
    del is_ev
    np.maximum.accumulate(src, out=src)
    state_a[m.rows] = val_a[src]
    state_b[m.rows] = val_b[src]
