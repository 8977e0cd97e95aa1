"""tshark's TCP sequence analysis over whole columns, for the common ("regular") case.

Twin of ``tracer.core.tcp_sequential``: the two state the same rules and must
change together.  ``tests/test_tshark_agreement.py`` compares them
(``test_vectorised_rules_equal_per_packet_rules`` on every capture,
``test_random_streams_vectorised_equals_per_packet`` on generated streams).

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


def _to_s(perm: I64, x_d: I64) -> I64:
    """A D-order column (grouped by stream and direction) back in S-order."""
    out = np.empty_like(x_d)
    out[perm] = x_d
    return out


def _take(values: I64, idx: I64, default: int) -> I64:
    return np.where(idx >= 0, values[np.maximum(idx, 0)], default)


def vector_analysis(
    sid: I64, d: I64, fl: I64, seq: I64, ack: I64, win: I64, ln: I64, ws: I64, ts: I64, nstreams: int,
    stream_start: I64 | None = None,
) -> VectorResult:
    """The shortcut's flags and resume state for rows grouped by stream (see module doc).

    ``stream_start``: per row, its stream's first row (computed when not given).
    """
    # Temporaries are deleted as soon as they are used: a single long stream can hold
    # a large part of a capture, and this function's peak memory is per row.
    n = sid.size
    pos = np.arange(n)
    sfr = (fl & (SYN | FIN | RST)) != 0
    synfin = (fl & (SYN | FIN)) != 0
    has_ack = (fl & ACK) != 0
    irregular = np.zeros(nstreams, dtype=bool)
    if stream_start is None:
        stream_start = _group_start(sid)
    g = sid * 2 + d
    # The other direction's latest row: the row before this direction's current run,
    # if that run did not open the stream.
    run_start = _group_start(g)
    lr = np.where(run_start > stream_start, run_start - 1, -1)
    del run_start
    last_of = np.empty((2, n), dtype=np.int64)  # latest row of direction 0 / 1
    at_zero = d == 0
    last_of[0] = np.where(at_zero, pos, lr)
    last_of[1] = np.where(at_zero, lr, pos)
    del at_zero

    # --- per direction (D-order: grouped by stream and direction, time order) --------
    perm = np.argsort(g, kind="stable")
    gd = g[perm]
    gstart_d = _group_start(gd)
    first_d = gstart_d == pos  # first row of its direction, D-order
    first = np.empty(n, dtype=bool)
    first[perm] = first_d

    # Natural bases: a direction's first packet (ISN, or seq-1) unless an ACK from the
    # other side came first (ack-1).
    ng = nstreams * 2
    own_first = np.full(ng, _NONE, dtype=np.int64)
    np.minimum.at(own_first, g, pos)
    ack_first = np.full(ng, _NONE, dtype=np.int64)
    other_g = (sid * 2 + (1 - d))[has_ack]
    np.minimum.at(ack_first, other_g, pos[has_ack])
    del other_g
    of = np.minimum(own_first, n - 1)
    af = np.minimum(ack_first, n - 1)
    from_own = np.where((fl[of] & SYN) != 0, seq[of], (seq[of] - 1) & M32)
    base = np.where(own_first <= ack_first, from_own, (ack[af] - 1) & M32)
    base = np.where((own_first == _NONE) & (ack_first == _NONE), -1, base)
    base_row = base[g]
    # A SYN-ACK whose ISN differs from a base the other side's ACK already set
    # replaces that base (tshark's port-reuse rule): left to the per-packet rules.
    set_before = np.minimum(own_first, ack_first)[g] < pos
    del g
    new_isn = ((fl & (SYN | ACK)) == (SYN | ACK)) & set_before & (seq != base_row)
    del set_before
    syn_late = ((fl & SYN) != 0) & ~first
    ws_late = (ws >= 0) & ((fl & SYN) == 0)
    irregular[sid[new_isn | syn_late | ws_late]] = True
    del new_isn, syn_late, ws_late

    # Unwrapped offsets and nextseq as a running maximum per direction.
    off_d = ((seq - base_row) & M32)[perm]
    delta = ((np.diff(off_d, prepend=0) + (1 << 31)) & M32) - (1 << 31)
    delta[first_d] = off_d[first_d]
    del off_d
    cs = np.cumsum(delta)
    u_d = cs - (cs - delta)[gstart_d]
    del cs, delta
    nxt_d = u_d + ln[perm] + synfin[perm]
    n_after_d = _segmented_cummax(nxt_d, gd)  # nextseq after the row (unwrapped)
    n_before_d = np.empty(n, dtype=np.int64)
    n_before_d[1:] = n_after_d[:-1]
    n_before_d[first_d] = 0
    adv_d = first_d | (nxt_d > n_before_d)
    del nxt_d
    breaking_d = ~first_d & adv_d & (u_d != n_before_d)
    del u_d
    nst_d = _ffill_last(adv_d, gstart_d)  # last row that moved nextseq, at or before
    del adv_d

    has_n = ~first
    n_raw = np.where(has_n, (_to_s(perm, n_before_d) + base_row) & M32, 0)
    del n_before_d
    n_after_raw = (_to_s(perm, n_after_d) + base_row) & M32
    del n_after_d, base_row
    breaking = np.empty(n, dtype=bool)
    breaking[perm] = breaking_d
    del breaking_d
    # The previous row of the same direction (S-order), -1 for a direction's first.
    prev = np.where(first, -1, _to_s(perm, np.concatenate(([-1], perm[:-1]))))
    prev_ack = _take(ack, prev, 0)
    prev_win = _take(win, prev, M32)
    del prev
    nst_prev = np.where(first_d, -1, np.concatenate(([-1], nst_d[:-1])))
    nextseqtime = _to_s(perm, np.where(nst_prev >= 0, ts[perm[np.maximum(nst_prev, 0)]], 0))
    del nst_prev
    nst_ts = _to_s(perm, ts[perm[nst_d]])
    del nst_d

    # --- the other direction's latest row (S-order) ----------------------------------
    rev_seen = lr >= 0
    lastack_r = _take(ack, lr, 0)
    window_r = _take(win, lr, M32)

    # Rows the shortcut cannot decide: mark their streams.
    # tshark reads a nextseq of 0 as "none yet"; a real one of 0 is left to the per-packet rules.
    irregular[sid[has_n & (n_raw == 0)]] = True
    n_after_r = _take(n_after_raw, lr, 0)
    ack_unseen = rev_seen & has_ack & _gt(ack, n_after_r) & (n_after_r != 0)
    del n_after_r
    bad = breaking | ((ln == 1) & (window_r == 0)) | ack_unseen
    del breaking
    # tshark's initial RTT comes from the latest SYN; with two, or an RTT of exactly 0
    # (which tshark treats as "not measured yet"), leave it to the per-packet rules.
    pure_syn = (fl & (SYN | ACK)) == SYN
    irregular |= np.bincount(sid[pure_syn], minlength=nstreams) > 1
    del pure_syn

    # --- flags --------------------------------------------------------------------------
    flags = np.zeros(n, dtype=np.int64)
    flags[(win == 0) & ~sfr] |= ZERO_WIN
    flags[has_n & _gt(seq, n_raw) & ((fl & RST) == 0)] |= LOST
    ka = (ln <= 1) & (seq == ((n_raw - 1) & M32)) & ~sfr
    flags[ka] |= KEEP_ALIVE
    same = (ln == 0) & ~sfr & (seq == n_raw) & (ack == prev_ack)
    flags[same & (win != 0) & (win != prev_win)] |= WIN_UPDATE
    same &= (win != 0) & (win == prev_win)
    del prev_win
    ka_ack = same & rev_seen & (_take(ka.astype(np.int64), lr, 0) != 0)
    flags[ka_ack] |= KEEP_ALIVE_ACK
    is_dup = same & ~ka_ack
    del same, ka_ack
    flags[is_dup] |= DUP

    # Dup-ACK numbers: duplicates since the direction's ACK number last changed.
    dup_d = is_dup[perm].astype(np.int64)
    reset_d = first_d | (ack[perm] != prev_ack[perm])
    del prev_ack, first_d
    c = np.cumsum(dup_d)
    cb = np.where(reset_d, c - dup_d, 0)
    cb = np.maximum.accumulate(np.where(reset_d, cb, -1))  # non-decreasing: forward fill works
    del dup_d, reset_d
    count = _to_s(perm, c - cb)
    del c, cb, perm, gd, gstart_d  # the last use of the D-order
    dupnum = np.where(is_dup, count, 0)
    del is_dup

    syn_ev = _syn_events(sid, d, fl, ws, pos, first, nstreams)
    syn_pos = syn_ev[0]
    states = _scale_states(syn_ev, nstreams)
    del syn_ev
    first_pure = _first_pure(sid, d, fl, pos, nstreams)
    full = _window_full(sid, d, fl, seq, ln, states, syn_pos, first_pure, pos, lastack_r, window_r)
    flags[full] |= WIN_FULL
    del full, window_r

    # Retransmission / fast / spurious / out-of-order.
    seg = ((ln > 0) | synfin) & ~ka
    del ka
    advanced = ~(has_n & _lt(seq, n_raw)) | ((ln > 1) & (((n_raw - 1) & M32) == seq))
    end = (seq + ln) & M32
    spurious = seg & (ln > 0) & (lastack_r != 0) & ((end == lastack_r) | _lt(end, lastack_r))
    del end
    flags[spurious] |= SPURIOUS
    # The rest only concerns segments behind nextseq (rare): decided on those rows alone.
    b = np.flatnonzero(seg & ~spurious & ~advanced)
    del seg, spurious, advanced
    lr_b = lr[b]
    t_ack = ts[b] - _take(ts, lr_b, 0)
    fast = (
        (_take(count, lr_b, 0) >= 2) & (lastack_r[b] == seq[b])
        & (t_ack >= 0) & (t_ack < FAST_RETRANS_WINDOW_NS)
    )
    del t_ack, lr_b, lastack_r
    rtt_eff, ack_eff, rtt_zero, syn_at, ack_at, rtt = _ooo_threshold(sid, fl, ts, pos, nstreams)
    irregular |= rtt_zero
    sid_b = sid[b]
    thres = np.where(pos[b] > ack_eff[sid_b], rtt_eff[sid_b], OOO_DEFAULT_NS)
    t_nxt = ts[b] - nextseqtime[b]
    del nextseqtime
    ooo = (
        ~fast & (t_nxt >= 0) & ((thres < 0) | (t_nxt < thres))
        & (n_raw[b] != ((seq[b] + ln[b] + synfin[b]) & M32))
    )
    flags[b[fast]] |= FAST
    flags[b[ooo]] |= OOO
    flags[b[~fast & ~ooo]] |= RETRANS
    flags[ack_unseen] |= ACK_UNSEEN  # (streams with these are redone)

    s0, s1, s2, p1, p2 = states
    base_pos = np.minimum(own_first, ack_first).reshape(nstreams, 2)
    return VectorResult(
        flags=flags, dup=dupnum, bad=bad, count=count, n_after=n_after_raw, nst_ts=nst_ts,
        last=last_of, irregular=irregular, base=base.reshape(nstreams, 2), base_pos=base_pos,
        scale=s2, s0=s0, s1=s1, s2=s2, p1=p1, p2=p2, syn_pos=syn_pos,
        first_pure=first_pure, syn_at=syn_at, ack_at=ack_at, rtt=rtt,
    )


def _syn_events(
    sid: I64, d: I64, fl: I64, ws: I64, pos: I64, first: Bool, nstreams: int
) -> tuple[I64, I64, Bool, Bool]:
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
    syn_ev: tuple[I64, I64, Bool, Bool], nstreams: int
) -> tuple[I64, I64, I64, I64, I64]:
    """Window-scale state before any SYN, after the first, after both; event positions.

    ``syn_ev`` is what ``_syn_events`` returns.
    """
    syn_pos, opt, isack, _ = syn_ev
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
    np.minimum.at(first_pure.reshape(-1), (sid * 2 + d)[pure_ack], pos[pure_ack])
    return first_pure


def _window_full(
    sid: I64, d: I64, fl: I64, seq: I64, ln: I64, states: tuple[I64, I64, I64, I64, I64],
    syn_pos: I64, first_pure: I64, pos: I64, lastack_r: I64, window_r: I64,
) -> Bool:
    s0, s1, s2, p1, p2 = states
    sfr = (fl & (SYN | FIN | RST)) != 0
    c = np.flatnonzero((ln > 0) & ~sfr)  # only data segments can fill the window
    sc, rc, pc = sid[c], 1 - d[c], pos[c]
    ws_r = np.where(pc <= p1[sc], s0[sc, rc], np.where(pc <= p2[sc], s1[sc, rc], s2[sc, rc]))
    # The other side's "first ACK" state: after its SYN, until its first pure ACK.
    first_ack_r = (syn_pos[sc, rc] < pc) & (first_pure[sc, rc] >= pc)
    shift = np.where(first_ack_r | (ws_r == -2), 0, np.maximum(ws_r, 0))
    edge = (lastack_r[c] + ((window_r[c] << shift) & M32)) & M32
    full = np.zeros(sid.size, dtype=bool)
    full[c] = (ws_r != -1) & (((seq[c] + ln[c]) & M32) == edge)
    return full


def _ooo_threshold(
    sid: I64, fl: I64, ts: I64, pos: I64, nstreams: int
) -> tuple[I64, I64, Bool, I64, I64, I64]:
    """tshark's out-of-order threshold: the initial RTT once measured, else 3 ms.

    Per stream: the threshold after the RTT's ACK row and that row (rows at or before
    it use the default), whether the RTT is 0, the SYN and ACK rows and the RTT.
    """
    pure_syn = (fl & (SYN | ACK)) == SYN
    syn_at = np.full(nstreams, _NONE, dtype=np.int64)
    np.minimum.at(syn_at, sid[pure_syn], pos[pure_syn])
    pure_ack = ((fl & (SYN | ACK)) == ACK) & (pos > syn_at[sid])
    ack_at = np.full(nstreams, _NONE, dtype=np.int64)
    np.minimum.at(ack_at, sid[pure_ack], pos[pure_ack])
    ok = (syn_at < _NONE) & (ack_at < _NONE)
    rtt = np.where(ok, ts[np.minimum(ack_at, ts.size - 1)] - ts[np.minimum(syn_at, ts.size - 1)], 0)
    ack_ok = np.where(ok, ack_at, _NONE)
    rtt_eff = np.where(rtt != 0, rtt, OOO_DEFAULT_NS)
    return rtt_eff, ack_ok, ok & (rtt == 0), syn_at, ack_ok, rtt
