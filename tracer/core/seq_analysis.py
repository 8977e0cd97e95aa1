"""Relative sequence numbers and tshark's TCP analysis flags for every TCP row.

``analyze_tcp`` gives, per row, what ``tshark -2`` prints as tcp.seq, tcp.ack,
tcp.window_size and the tcp.analysis.* flags (see ``AnalysisFlag``).  The rules are
those of ``tracer.core.tcp_sequential`` (the readable per-packet statement of
tshark 4.0's logic).  They run in three ways, all giving the same answer:

* column-wise (``tracer.core.tcp_vector``) for every stream;
* from each "bad" row on (a hole, an ACK of unseen data, a possible zero-window
  probe) per packet, starting from the state read off the columns, until that state
  agrees with the columns again - usually a few dozen packets;
* per packet for the whole stream when the shortcut cannot be used at all (a SYN
  after a direction's first packet, ...).

Streams are independent, so they are analysed in batches of whole streams of about
``_BATCH_ROWS`` rows: the column-wise temporaries stay proportional to a batch
rather than to the capture (and fit in the CPU caches).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from tracer.core.model import ACK, SYN
from tracer.core.streams import StreamColumns
from tracer.core.table import I32, I64, PacketTable
from tracer.core.tcp_sequential import KEEP_ALIVE, M32, ZWP, FlowState, analyze_stream
from tracer.core.tcp_vector import VectorResult, vector_analysis


@dataclass(frozen=True, eq=False)
class TcpAnalysisColumns:
    """Per-row TCP analysis; -1 on rows that are not (analysed) TCP.

    rel_seq / rel_ack: tcp.seq / tcp.ack as tshark prints them (relative to each
        direction's base; tcp.ack is the raw field when the ACK flag is clear).
    flags: bit set of ``AnalysisFlag``.
    dup_ack_num: tcp.analysis.duplicate_ack_num (0 where not a duplicate ACK).
    win_scaled: tcp.window_size (the window after the stream's final scale factor).
    (Both are empty when ``analyze_tcp`` was asked for no extras.)
    """

    rel_seq: I64
    rel_ack: I64
    flags: I32
    dup_ack_num: I32
    win_scaled: I64


def tcp_rows_by_stream(t: PacketTable, s: StreamColumns) -> tuple[I64, I64]:
    """TCP rows sorted by (stream, row) and the start offsets of each stream's run.

    ``assign_streams`` derives them from its grouping sort (``StreamColumns.tcp_rows``).
    """
    return s.tcp_rows, s.tcp_starts


def _display_bases(sid: I64, d: I64, fl: I64, seq: I64, final: I64, start: I64) -> tuple[I64, I64]:
    """Per row, the bases tshark's second pass subtracts: (own direction, other).

    The second pass starts from the final bases of the first, but re-running its
    SYN-ACK rule sets a direction's base to the ISN of each SYN-ACK it re-reads, so
    rows after a SYN-ACK use that SYN-ACK's sequence number.  ``start`` is each
    row's stream's first row.
    """
    synack = (fl & (SYN | ACK)) == (SYN | ACK)
    pos = np.arange(sid.size)
    by_dir = []
    for direction in (0, 1):
        b = final[:, direction][sid]
        last = np.maximum.accumulate(np.where(synack & (d == direction), pos, -1))
        after = np.flatnonzero(last >= start)  # rows after a SYN-ACK of this direction
        b[after] = seq[last[after]]
        by_dir.append(b)
    zero = d == 0
    own: I64 = np.where(zero, by_dir[0], by_dir[1])
    other: I64 = np.where(zero, by_dir[1], by_dir[0])
    return own, other


_CHUNK = 16  # rows re-run per step before checking whether the shortcut holds again
_PROBE_FLAGS = KEEP_ALIVE | ZWP  # the flags later rows read back from a direction


_Cols = tuple[list[int], list[int], list[int], list[int], list[int], list[int], list[int], list[int]]


def _slice(cols: list[I64], a: int, b: int) -> _Cols:
    d, fl, seq, ack, win, ln, ws, ts = (c[a:b].tolist() for c in cols)
    return d, fl, seq, ack, win, ln, ws, ts


def _state_at(v: VectorResult, cols: list[I64], flags: I64, j: int, a: int, k: int) -> FlowState:
    """tshark's state just before row ``k`` of stream ``j`` (starting at row ``a``),
    read off the vectorised columns, which are exact for rows before a bad row
    (``flags`` holds the final flags of rows already patched)."""
    _d, _fl, _seq, ack, win, _ln, _ws, ts = cols
    st = FlowState()
    for x in (0, 1):
        last = int(v.last[x, k - 1]) if k > a else -1
        if int(v.base_pos[j, x]) < k:
            st.base[x] = int(v.base[j, x])
        if last >= 0:
            st.nextseq[x] = st.maxseq[x] = int(v.n_after[last])
            st.nextseqtime[x] = int(v.nst_ts[last])
            st.lastack[x] = int(ack[last])
            st.lastacktime[x] = int(ts[last])
            st.window[x] = int(win[last])
            st.lastsegflags[x] = int(flags[last])
            st.dupacknum[x] = int(v.count[last])
        sc = v.s0 if k <= v.p1[j] else v.s1 if k <= v.p2[j] else v.s2
        st.win_scale[x] = int(sc[j, x])
        st.first_ack[x] = bool(v.syn_pos[j, x] < k <= v.first_pure[j, x])
    if v.ack_at[j] < k:
        st.first_rtt = int(v.rtt[j])
    if v.syn_at[j] < k:
        st.mru_syn = int(ts[int(v.syn_at[j])])
    return st


def _synced(st: FlowState, v: VectorResult, a: int, e: int) -> bool:
    """Whether the vectorised columns are exact again from row ``e`` on."""
    for x in (0, 1):
        last = int(v.last[x, e - 1])
        if last < a:
            continue  # nothing from this direction yet: its state is still the initial one
        if (
            st.nextseq[x] != v.n_after[last]
            or st.maxseq[x] != st.nextseq[x]
            or st.dupacknum[x] != v.count[last]
            or st.nextseqtime[x] != v.nst_ts[last]
            or (st.lastsegflags[x] ^ int(v.flags[last])) & _PROBE_FLAGS
        ):
            return False
    return True


def _patch(
    v: VectorResult, cols: list[I64], sid: I64, starts: I64, ends: I64, bad_rows: I64,
    f_rows: I64, dup_rows: I64,
) -> None:
    """Re-run the per-packet rules from each bad row until the shortcut holds again."""
    bad_list = bad_rows.tolist()
    i = 0
    while i < len(bad_list):
        k = bad_list[i]
        j = int(sid[k])
        a, b = int(starts[j]), int(ends[j])
        st = _state_at(v, cols, f_rows, j, a, k)
        e = k
        while True:
            stop = min(b, e + _CHUNK)
            out_f: list[int] = []
            out_d: list[int] = []
            analyze_stream(*_slice(cols, e, stop), out_f, out_d, st)
            f_rows[e:stop] = out_f
            dup_rows[e:stop] = out_d
            e = stop
            nxt = bisect.bisect_left(bad_list, e)
            if e >= b or ((nxt >= len(bad_list) or bad_list[nxt] != e) and _synced(st, v, a, e)):
                break
        i = bisect.bisect_left(bad_list, e)


_BATCH_ROWS = 1 << 16  # rows per batch of whole streams: bounds the temporaries' memory


def _batches(starts: I64, total: int) -> list[tuple[int, int]]:
    """Consecutive runs of whole streams, each of about ``_BATCH_ROWS`` rows at most.

    Streams are independent, so each run is analysed on its own.  A run starts at the
    stream holding each multiple of ``_BATCH_ROWS``, and a stream longer than a
    quarter of that is a run by itself: so a run of several streams has at most
    1.25 * ``_BATCH_ROWS`` rows, and a longer run is one long stream.
    """
    lengths = np.diff(np.append(starts, total))
    cuts = np.arange(_BATCH_ROWS, total, _BATCH_ROWS)
    at_cut = np.searchsorted(starts, cuts, side="right") - 1
    long = np.flatnonzero(lengths > _BATCH_ROWS // 4)
    bounds = np.unique(np.concatenate(([0], at_cut, long, long + 1, [starts.size])))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def analyze_tcp(t: PacketTable, s: StreamColumns, *, extras: bool = True) -> TcpAnalysisColumns:
    """tshark's tcp.seq/tcp.ack/tcp.window_size and analysis flags for every TCP row.

    ``extras=False`` leaves ``dup_ack_num`` and ``win_scaled`` empty (length 0):
    ``analyze`` does not use them and saves their memory.
    """
    n = len(t)
    rel_seq = np.full(n, -1, dtype=np.int64)
    rel_ack = np.full(n, -1, dtype=np.int64)
    flags = np.zeros(n, dtype=np.int32)
    dup = np.zeros(n if extras else 0, dtype=np.int32)
    win_scaled = np.full(n if extras else 0, -1, dtype=np.int64)
    out = TcpAnalysisColumns(rel_seq, rel_ack, flags, dup, win_scaled)
    rows, starts = tcp_rows_by_stream(t, s)
    for j0, j1 in _batches(starts, rows.size):
        a = int(starts[j0])
        b = int(starts[j1]) if j1 < starts.size else rows.size
        _analyze_batch(t, s, rows[a:b], starts[j0:j1] - a, out)
    return out


def _analyze_batch(
    t: PacketTable, s: StreamColumns, rows: I64, starts: I64, out: TcpAnalysisColumns
) -> None:
    """Analyse the whole streams in ``rows`` (grouped by stream, runs at ``starts``)."""
    d = s.direction[rows].astype(np.int64)
    fl = t.tcp_flags[rows].astype(np.int64)
    seq = t.seq[rows]
    ack = t.ack[rows]
    win = t.window[rows].astype(np.int64)
    ends = np.append(starts[1:], rows.size)
    ln = t.payload_len[rows].astype(np.int64)
    ws = t.wscale[rows].astype(np.int64)
    ts = t.ts_ns[rows]
    nstreams = starts.size
    lengths = ends - starts
    sid = np.repeat(np.arange(nstreams), lengths)
    start = np.repeat(starts, lengths)
    v = vector_analysis(sid, d, fl, seq, ack, win, ln, ws, ts, nstreams, start)
    # Copies: the patches below must not change what the vectorised path assumed.
    f_rows, dup_rows, base, scale = v.flags.copy(), v.dup.copy(), v.base.copy(), v.scale.copy()
    cols = [d, fl, seq, ack, win, ln, ws, ts]
    bad_rows = np.flatnonzero(v.bad & ~v.irregular[sid])
    for j in np.flatnonzero(v.irregular).tolist():
        a, b = int(starts[j]), int(ends[j])
        out_f: list[int] = []
        out_d: list[int] = []
        res = analyze_stream(*_slice(cols, a, b), out_f, out_d)
        f_rows[a:b] = out_f
        dup_rows[a:b] = out_d
        base[j] = res[:2]
        scale[j] = res[2:]
    if bad_rows.size:
        _patch(v, cols, sid, starts, ends, bad_rows, f_rows, dup_rows)
    del v, cols
    out.flags[rows] = f_rows
    if out.dup_ack_num.size:
        out.dup_ack_num[rows] = dup_rows
    del f_rows, dup_rows
    own, other = _display_bases(sid, d, fl, seq, base, start)
    out.rel_seq[rows] = (seq - own) & M32
    out.rel_ack[rows] = np.where((fl & ACK) != 0, (ack - other) & M32, ack)
    del own, other
    if out.win_scaled.size:
        sc = scale[sid, d]
        out.win_scaled[rows] = np.where(((fl & SYN) == 0) & (sc >= 0), win << np.maximum(sc, 0), win)
