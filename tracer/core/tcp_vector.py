"""tshark's TCP sequence analysis over whole columns, for the common ("regular") case.

The per-packet rules (``tracer.core.tcp_sequential``) carry state from packet to
packet, but in a stream without holes that state is a handful of scans: nextseq is
a running maximum, "max seq to be acked" equals nextseq, lastack/window are the
previous value in one direction or the latest value from the other, dup-ACK numbers
are counts between resets.  ``vector_analysis`` computes all flags that way and
marks the streams where that shortcut is not exact (a segment beyond nextseq or
advancing it from elsewhere, an ACK of unseen data, a possible zero-window probe,
a SYN after a direction's first packet, a window-scale option outside a SYN, a
sequence number that is 0 in tshark's "unset" sense); the caller re-runs those
with the per-packet rules.

Row arrays are in stream order (sorted by stream, then packet number); ``sid`` is
the 0-based stream run of each row, ``d`` its direction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracer.core.model import ACK, FIN, RST, SYN
from tracer.core.table import I64, Bool
from tracer.core.tcp_sequential import (
    ACK_UNSEEN,
    DUP,
    FAST,
    FAST_RETRANS_WINDOW_NS,
    KEEP_ALIVE,
    KEEP_ALIVE_ACK,
    LOST,
    M32,
    OOO,
    OOO_DEFAULT_NS,
    RETRANS,
    SPURIOUS,
    WIN_FULL,
    WIN_UPDATE,
    ZERO_WIN,
)

_HALF = 0x7FFFFFFF
_NONE = 1 << 62


@dataclass(frozen=True, eq=False)
class VectorResult:
    """Flags under the regular-stream shortcut plus what a caller needs to resume it.

    Per row (stream order): ``flags``, ``dup`` (dup-ACK number), ``bad`` (a row the
    shortcut may get wrong), ``count`` (the direction's dup-ACK counter after the
    row), ``n_after`` (raw nextseq after the row), ``nst_ts`` (time of the last row
    that moved nextseq, up to this one), ``last`` (2 x rows: index of the latest row
    of direction 0/1 at or before each row, -1 if none).  Per stream: ``irregular``
    (the shortcut is unusable for the whole stream), ``base`` and ``base_pos``
    (natural base per direction and the row that set it), window-scale states
    ``s0``/``s1``/``s2`` and the SYN rows ``p1``/``p2`` between them, ``syn_pos``
    and ``first_pure`` per direction, and the initial-RTT facts ``syn_at``,
    ``ack_at``, ``rtt``.
    """

    flags: I64
    dup: I64
    bad: Bool
    count: I64
    n_after: I64
    nst_ts: I64
    last: I64
    irregular: Bool
    base: I64
    base_pos: I64
    scale: I64
    s0: I64
    s1: I64
    s2: I64
    p1: I64
    p2: I64
    syn_pos: I64
    first_pure: I64
    syn_at: I64
    ack_at: I64
    rtt: I64


def _gt(a: I64, b: I64) -> Bool:
    """GT_SEQ(a, b) elementwise."""
    return ((b - a) & M32) > _HALF


def _lt(a: I64, b: I64) -> Bool:
    return ((a - b) & M32) > _HALF


def _ffill_last(mask: Bool, start_of_group: I64) -> I64:
    """Per row, the index of the last row at or before it with ``mask`` in its group, or -1."""
    pos = np.arange(mask.size)
    last = np.maximum.accumulate(np.where(mask, pos, -1))
    return np.where(last >= start_of_group, last, -1)


def _group_start(key: I64) -> I64:
    """Per row, the index of the first row of its run of equal ``key`` values."""
    n = key.size
    first = np.zeros(n, dtype=np.int64)
    if n:
        brk = np.flatnonzero(key[1:] != key[:-1]) + 1
        first[brk] = brk
        first = np.maximum.accumulate(first)
    return first


def _segmented_cummax(values: I64, group: I64) -> I64:
    """Running maximum of ``values`` restarting at each new ``group`` (sorted, >= 0).

    One ``maximum.accumulate`` over ``group * span + value``; the groups are taken in
    slices small enough that the keys fit in int64.
    """
    out = np.empty_like(values)
    if values.size == 0:
        return out
    lo = int(values.min())
    span = int(values.max()) - lo + 1
    per = max(1, ((1 << 62) // span) - 1)  # groups per slice
    g0 = int(group[0])
    while True:
        a = int(np.searchsorted(group, g0))
        b = int(np.searchsorted(group, g0 + per))
        key = (group[a:b] - g0) * span + (values[a:b] - lo)
        out[a:b] = np.maximum.accumulate(key) - (group[a:b] - g0) * span + lo
        if b >= group.size:
            return out
        g0 = int(group[b])


def _take(values: I64, idx: I64, default: int) -> I64:
    return np.where(idx >= 0, values[np.maximum(idx, 0)], default)


def vector_analysis(
    sid: I64, d: I64, fl: I64, seq: I64, ack: I64, win: I64, ln: I64, ws: I64, ts: I64, nstreams: int
) -> VectorResult:
    n = sid.size
    pos = np.arange(n)
    sfr = (fl & (SYN | FIN | RST)) != 0
    synfin = ((fl & (SYN | FIN)) != 0).astype(np.int64)
    has_ack = (fl & ACK) != 0
    stream_start = _group_start(sid)
    irregular = np.zeros(nstreams, dtype=bool)

    # --- per direction (D-order: grouped by stream and direction, time order) --------
    g = sid * 2 + d
    perm = np.argsort(g, kind="stable")
    gd = g[perm]
    gstart_d = _group_start(gd)
    first_d = gstart_d == np.arange(n)  # first row of its direction, D-order
    first = np.empty(n, dtype=bool)
    first[perm] = first_d

    # Natural bases: a direction's first packet (ISN, or seq-1) unless an ACK from the
    # other side came first (ack-1).
    ng = nstreams * 2
    own_first = np.full(ng, _NONE, dtype=np.int64)
    np.minimum.at(own_first, g, pos)
    ack_first = np.full(ng, _NONE, dtype=np.int64)
    other_g = sid * 2 + (1 - d)
    np.minimum.at(ack_first, other_g[has_ack], pos[has_ack])
    of = np.minimum(own_first, n - 1)
    af = np.minimum(ack_first, n - 1)
    from_own = np.where((fl[of] & SYN) != 0, seq[of], (seq[of] - 1) & M32)
    base = np.where(own_first <= ack_first, from_own, (ack[af] - 1) & M32)
    base = np.where((own_first == _NONE) & (ack_first == _NONE), -1, base)

    # Unwrapped offsets and nextseq as a running maximum per direction.
    off = (seq - base[g]) & M32
    off_d = off[perm]
    delta = ((np.diff(off_d, prepend=0) + (1 << 31)) & M32) - (1 << 31)
    delta[first_d] = off_d[first_d]
    cs = np.cumsum(delta)
    u_d = cs - (cs - delta)[gstart_d]
    nxt_d = u_d + ln[perm] + synfin[perm]
    n_after_d = _segmented_cummax(nxt_d, gd)  # nextseq after the row (unwrapped)
    n_before_d = np.empty(n, dtype=np.int64)
    n_before_d[1:] = n_after_d[:-1]
    n_before_d[first_d] = 0
    adv_d = first_d | (nxt_d > n_before_d)
    breaking_d = ~first_d & adv_d & (u_d != n_before_d)
    prev_d = np.where(first_d, -1, np.arange(n) - 1)
    nst_d = _ffill_last(adv_d, gstart_d)  # last row that moved nextseq, at or before
    nst_prev_d = np.where(first_d, -1, np.concatenate(([-1], nst_d[:-1])))

    def to_s(x_d: I64) -> I64:
        out = np.empty_like(x_d)
        out[perm] = x_d
        return out

    base_row = base[g]
    has_n = ~first
    n_raw = np.where(has_n, (to_s(n_before_d) + base_row) & M32, 0)
    n_after_raw = (to_s(n_after_d) + base_row) & M32
    breaking = to_s(breaking_d.astype(np.int64)) != 0
    prev = np.where(to_s(prev_d) >= 0, perm[np.maximum(to_s(prev_d), 0)], -1)
    nst_prev = to_s(nst_prev_d)
    nextseqtime = np.where(nst_prev >= 0, ts[perm[np.maximum(nst_prev, 0)]], 0)
    prev_ack = _take(ack, prev, 0)
    prev_win = _take(win, prev, M32)

    # --- the other direction's latest row (S-order) ----------------------------------
    last_of = [_ffill_last(d == r, stream_start) for r in (0, 1)]
    lr = np.where(d == 0, last_of[1], last_of[0])
    rev_seen = lr >= 0
    lastack_r = _take(ack, lr, 0)
    lastacktime_r = _take(ts, lr, 0)
    window_r = _take(win, lr, M32)
    n_after_r = _take(n_after_raw, lr, 0)

    # Rows the shortcut cannot decide: mark their streams.
    # tshark reads a nextseq of 0 as "none yet"; a real one of 0 is left to the per-packet rules.
    zero_seq = has_n & (n_raw == 0)
    zwp_maybe = (ln == 1) & (window_r == 0)
    syn_late = ((fl & SYN) != 0) & ~first
    ws_late = (ws >= 0) & ((fl & SYN) == 0)
    ack_unseen = rev_seen & has_ack & _gt(ack, n_after_r) & (n_after_r != 0)
    # A SYN-ACK whose ISN differs from a base the other side's ACK already set
    # replaces that base (tshark's port-reuse rule): left to the per-packet rules.
    set_before = np.minimum(own_first, ack_first)[g] < pos
    new_isn = ((fl & (SYN | ACK)) == (SYN | ACK)) & set_before & (seq != base[g])
    bad = breaking | zwp_maybe | ack_unseen
    irregular[sid[zero_seq | syn_late | ws_late | new_isn]] = True
    # tshark's initial RTT comes from the latest SYN; with two, or an RTT of exactly 0
    # (which tshark treats as "not measured yet"), leave it to the per-packet rules.
    pure_syn = (fl & (SYN | ACK)) == SYN
    irregular |= np.bincount(sid[pure_syn], minlength=nstreams) > 1

    # --- flags --------------------------------------------------------------------------
    flags = np.zeros(n, dtype=np.int64)
    flags |= np.where((win == 0) & ~sfr, ZERO_WIN, 0)
    flags |= np.where(has_n & _gt(seq, n_raw) & ((fl & RST) == 0), LOST, 0)
    ka = (ln <= 1) & (seq == ((n_raw - 1) & M32)) & ~sfr
    flags |= np.where(ka, KEEP_ALIVE, 0)
    same = (ln == 0) & ~sfr & (seq == n_raw) & (ack == prev_ack)
    flags |= np.where(same & (win != 0) & (win != prev_win), WIN_UPDATE, 0)
    states = _scale_states(sid, d, fl, ws, pos, first, nstreams)
    syn_pos, _, _, _ = _syn_events(sid, d, fl, ws, pos, first, nstreams)
    first_pure = _first_pure(sid, d, fl, pos, nstreams)
    full = _window_full(sid, d, fl, seq, ln, states, syn_pos, first_pure, pos, lastack_r, window_r)
    flags |= np.where(full, WIN_FULL, 0)
    ka_r = rev_seen & ((_take(ka.astype(np.int64), lr, 0)) != 0)
    ka_ack = same & (win != 0) & (win == prev_win) & ka_r
    flags |= np.where(ka_ack, KEEP_ALIVE_ACK, 0)
    is_dup = same & (win != 0) & (win == prev_win) & ~ka_ack
    flags |= np.where(is_dup, DUP, 0)

    # Dup-ACK numbers: duplicates since the direction's ACK number last changed.
    dup_d = is_dup[perm].astype(np.int64)
    reset_d = first_d | (ack[perm] != prev_ack[perm])
    c = np.cumsum(dup_d)
    cb = np.where(reset_d, c - dup_d, 0)
    cb = np.maximum.accumulate(np.where(reset_d, cb, -1))  # non-decreasing: forward fill works
    count = to_s(c - cb)
    dupnum = np.where(is_dup, count, 0)
    dupacknum_r = _take(count, lr, 0)

    # Retransmission / fast / spurious / out-of-order.
    seg = ((ln > 0) | ((fl & (SYN | FIN)) != 0)) & ~ka
    advanced = ~(has_n & _lt(seq, n_raw)) | ((ln > 1) & (((n_raw - 1) & M32) == seq))
    end = (seq + ln) & M32
    spurious = seg & (ln > 0) & (lastack_r != 0) & ((end == lastack_r) | _lt(end, lastack_r))
    t_ack = ts - lastacktime_r
    fast = (
        seg & ~spurious & ~advanced & (dupacknum_r >= 2) & (lastack_r == seq)
        & (t_ack >= 0) & (t_ack < FAST_RETRANS_WINDOW_NS)
    )
    thres, rtt_zero, syn_at, ack_at, rtt = _ooo_threshold(sid, fl, ts, pos, nstreams)
    irregular |= rtt_zero
    t_nxt = ts - nextseqtime
    ooo = (
        seg & ~spurious & ~advanced & ~fast & (t_nxt >= 0) & ((thres < 0) | (t_nxt < thres))
        & (n_raw != ((seq + ln + synfin) & M32))
    )
    retrans = seg & ~spurious & ~advanced & ~fast & ~ooo
    flags |= np.where(spurious, SPURIOUS, 0) | np.where(fast, FAST, 0)
    flags |= np.where(ooo, OOO, 0) | np.where(retrans, RETRANS, 0)
    flags |= np.where(ack_unseen, ACK_UNSEEN, 0)  # (streams with these are redone)

    s0, s1, s2, p1, p2 = states
    nst_ts = to_s(ts[perm[nst_d]])
    base_pos = np.minimum(own_first, ack_first).reshape(nstreams, 2)
    return VectorResult(
        flags=flags, dup=dupnum, bad=bad, count=count, n_after=n_after_raw, nst_ts=nst_ts,
        last=np.stack(last_of), irregular=irregular, base=base.reshape(nstreams, 2), base_pos=base_pos,
        scale=s2, s0=s0, s1=s1, s2=s2, p1=p1, p2=p2, syn_pos=syn_pos,
        first_pure=first_pure, syn_at=syn_at, ack_at=ack_at, rtt=rtt,
    )


def _syn_events(
    sid: I64, d: I64, fl: I64, ws: I64, pos: I64, first: Bool, nstreams: int
) -> tuple[I64, I64, I64, I64]:
    """Per stream: position, option and SYN-ACK-ness of each direction's opening SYN."""
    syn_pos = np.full((nstreams, 2), _NONE, dtype=np.int64)
    opt = np.full((nstreams, 2), -1, dtype=np.int64)
    isack = np.zeros((nstreams, 2), dtype=bool)
    sel = first & ((fl & SYN) != 0)
    syn_pos[sid[sel], d[sel]] = pos[sel]
    opt[sid[sel], d[sel]] = np.minimum(ws[sel], 14)
    isack[sid[sel], d[sel]] = (fl[sel] & ACK) != 0
    return syn_pos, opt, isack, sel


def _apply_syn(state: I64, dd: I64, o: I64, a: Bool, active: Bool) -> I64:
    """tshark's option store + verify_tcp_window_scaling for one SYN per stream."""
    st = state.copy()
    idx = np.arange(st.shape[0])
    own = st[idx, dd]
    own = np.where(active & (o >= 0), o, own)
    other = st[idx, 1 - dd]
    unknown = own == -1
    new_own = np.where(unknown, -2, np.where(a & (other == -2), -2, own))
    new_other = np.where(unknown, -2, other)
    st[idx, dd] = np.where(active, new_own, st[idx, dd])
    st[idx, 1 - dd] = np.where(active, new_other, st[idx, 1 - dd])
    return st


def _scale_states(
    sid: I64, d: I64, fl: I64, ws: I64, pos: I64, first: Bool, nstreams: int
) -> tuple[I64, I64, I64, I64, I64]:
    """Window-scale state before any SYN, after the first, after both; event positions."""
    syn_pos, opt, isack, _ = _syn_events(sid, d, fl, ws, pos, first, nstreams)
    e1 = np.argmin(syn_pos, axis=1)  # direction of the earlier SYN
    e2 = 1 - e1
    idx = np.arange(nstreams)
    s0 = np.full((nstreams, 2), -1, dtype=np.int64)
    p1, p2 = syn_pos[idx, e1], syn_pos[idx, e2]
    s1 = _apply_syn(s0, e1, opt[idx, e1], isack[idx, e1], p1 < _NONE)
    s2 = _apply_syn(s1, e2, opt[idx, e2], isack[idx, e2], p2 < _NONE)
    return s0, s1, s2, p1, p2


def _first_pure(sid: I64, d: I64, fl: I64, pos: I64, nstreams: int) -> I64:
    """Per stream and direction, the first pure ACK's row (or a huge value)."""
    pure_ack = (fl & (SYN | ACK)) == ACK
    first_pure = np.full((nstreams, 2), _NONE, dtype=np.int64)
    np.minimum.at(first_pure, (sid[pure_ack], d[pure_ack]), pos[pure_ack])
    return first_pure


def _window_full(
    sid: I64, d: I64, fl: I64, seq: I64, ln: I64, states: tuple[I64, I64, I64, I64, I64],
    syn_pos: I64, first_pure: I64, pos: I64, lastack_r: I64, window_r: I64,
) -> Bool:
    s0, s1, s2, p1, p2 = states
    r = 1 - d
    st = np.where(
        (pos <= p1[sid])[:, None], s0[sid], np.where((pos <= p2[sid])[:, None], s1[sid], s2[sid])
    )
    ws_r = st[np.arange(sid.size), r]
    # The other side's "first ACK" state: after its SYN, until its first pure ACK.
    first_ack_r = (syn_pos[sid, r] < pos) & (first_pure[sid, r] >= pos)
    shift = np.where(first_ack_r | (ws_r == -2), 0, np.maximum(ws_r, 0))
    edge = (lastack_r + ((window_r << shift) & M32)) & M32
    sfr = (fl & (SYN | FIN | RST)) != 0
    full: Bool = (ln > 0) & (ws_r != -1) & ~sfr & (((seq + ln) & M32) == edge)
    return full


def _ooo_threshold(
    sid: I64, fl: I64, ts: I64, pos: I64, nstreams: int
) -> tuple[I64, Bool, I64, I64, I64]:
    """Per row, tshark's out-of-order threshold: the initial RTT once measured, else 3 ms."""
    pure_syn = (fl & (SYN | ACK)) == SYN
    syn_at = np.full(nstreams, _NONE, dtype=np.int64)
    np.minimum.at(syn_at, sid[pure_syn], pos[pure_syn])
    pure_ack = ((fl & (SYN | ACK)) == ACK) & (pos > syn_at[sid])
    ack_at = np.full(nstreams, _NONE, dtype=np.int64)
    np.minimum.at(ack_at, sid[pure_ack], pos[pure_ack])
    ok = (syn_at < _NONE) & (ack_at < _NONE)
    rtt = np.where(ok, ts[np.minimum(ack_at, ts.size - 1)] - ts[np.minimum(syn_at, ts.size - 1)], 0)
    known = ok[sid] & (pos > ack_at[sid])
    thres = np.where(known & (rtt[sid] != 0), rtt[sid], OOO_DEFAULT_NS)
    return thres, ok & (rtt == 0), syn_at, np.where(ok, ack_at, _NONE), rtt
