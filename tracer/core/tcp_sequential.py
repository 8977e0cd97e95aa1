"""tshark 4.0's TCP sequence analysis, one packet at a time (the reference).

Twin of ``tracer.core.tcp_vector``: the two state the same rules and must
change together.  ``tests/test_tshark_agreement.py`` compares them
(``test_vectorised_rules_equal_per_packet_rules`` on every capture,
``test_random_streams_vectorised_equals_per_packet`` on generated streams).

This is a direct, readable statement of the rules of Wireshark's
``tcp_analyze_sequence_number`` and the parts of ``dissect_tcp`` around it
(port reuse, window scaling, initial RTT).  ``tracer.core.seq_analysis`` runs the
same rules vectorised and falls back to this module for the streams whose rows it
cannot decide column-wise; the tests check that both agree, and both against tshark.

Everything is modulo 2**32 like the C code; Wireshark's ``GT_SEQ(a, b)`` is written
inline as ``(b - a) & M32 > _HALF`` (and ``LT_SEQ``/``LE_SEQ`` alike).  Where 4.0
differs from later Wireshark releases (the "ACKed unseen segment" rule, the
spurious-retransmission precedence) the behaviour here was established against
tshark 4.0.17 with crafted captures (``CRAFTED`` in tests/test_tshark_agreement.py).
Not modelled: the cap of 10000 unacknowledged segments per direction beyond which
tshark stops adding the SYN/FIN "+1" to nextseq.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tracer.core.model import ACK, FIN, RST, SYN, AnalysisFlag

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1  # tshark subtracts times as unsigned 64-bit nanoseconds
_HALF = 0x7FFFFFFF
_SFR = SYN | FIN | RST
FAST_RETRANS_WINDOW_NS = 20_000_000  # tshark: a fast retransmission follows dup ACKs within 20 ms
OOO_DEFAULT_NS = 3_000_000  # tshark's out-of-order threshold before an initial RTT is known

RETRANS = 1 << AnalysisFlag.RETRANSMISSION
FAST = 1 << AnalysisFlag.FAST_RETRANSMISSION
SPURIOUS = 1 << AnalysisFlag.SPURIOUS_RETRANSMISSION
DUP = 1 << AnalysisFlag.DUP_ACK
OOO = 1 << AnalysisFlag.OUT_OF_ORDER
LOST = 1 << AnalysisFlag.LOST_SEGMENT
ACK_UNSEEN = 1 << AnalysisFlag.ACK_UNSEEN_SEGMENT
ZERO_WIN = 1 << AnalysisFlag.ZERO_WINDOW
ZWP = 1 << AnalysisFlag.ZERO_WINDOW_PROBE
WIN_UPDATE = 1 << AnalysisFlag.WINDOW_UPDATE
WIN_FULL = 1 << AnalysisFlag.WINDOW_FULL
KEEP_ALIVE = 1 << AnalysisFlag.KEEP_ALIVE
KEEP_ALIVE_ACK = 1 << AnalysisFlag.KEEP_ALIVE_ACK
ZWP_ACK = 1 << AnalysisFlag.ZERO_WINDOW_PROBE_ACK


@dataclass
class FlowState:
    """tshark's per-conversation analysis state; lists are indexed by direction."""

    base: list[int] = field(default_factory=lambda: [-1, -1])
    nextseq: list[int] = field(default_factory=lambda: [0, 0])
    nextseqtime: list[int] = field(default_factory=lambda: [0, 0])
    lastack: list[int] = field(default_factory=lambda: [0, 0])
    lastacktime: list[int] = field(default_factory=lambda: [0, 0])
    window: list[int] = field(default_factory=lambda: [M32, M32])  # G_MAXUINT32: "not seen yet"
    win_scale: list[int] = field(default_factory=lambda: [-1, -1])  # -1 unknown, -2 none, else shift
    first_ack: list[bool] = field(default_factory=lambda: [False, False])
    lastsegflags: list[int] = field(default_factory=lambda: [0, 0])
    dupacknum: list[int] = field(default_factory=lambda: [0, 0])
    maxseq: list[int] = field(default_factory=lambda: [0, 0])  # "max seq to be acked"
    first_rtt: int = 0
    mru_syn: int = 0


def analyze_stream(
    dirs: Sequence[int],
    flags: Sequence[int],
    seqs: Sequence[int],
    acks: Sequence[int],
    wins: Sequence[int],
    lens: Sequence[int],
    wscales: Sequence[int],
    tss: Sequence[int],
    out_flags: list[int],
    out_dup: list[int],
    state: FlowState | None = None,
) -> tuple[int, int, int, int]:
    """Analyse one stream's packets in file order; append flags and dup-ACK numbers.

    ``dirs`` are 0/1; ``wscales`` the window-scale option shift or -1.  Returns the
    final base sequence number of directions 0 and 1 (what tshark subtracts for
    relative numbers; -1 if a direction never got one) and their final window
    scale (-1 unknown, -2 none, else the shift), which tshark's second pass shows.
    ``state`` (updated in place) lets a caller continue a stream part-way through.
    """
    st = FlowState() if state is None else state
    base = st.base
    nextseq = st.nextseq
    nextseqtime = st.nextseqtime
    lastack = st.lastack
    lastacktime = st.lastacktime
    window = st.window
    win_scale = st.win_scale
    first_ack = st.first_ack
    lastsegflags = st.lastsegflags
    dupacknum = st.dupacknum
    maxseq = st.maxseq
    first_rtt = st.first_rtt
    mru_syn = st.mru_syn
    for k in range(len(dirs)):
        d = dirs[k]
        r = 1 - d
        fl = flags[k]
        seq = seqs[k]
        ack = acks[k]
        win = wins[k]
        seglen = lens[k]
        ts = tss[k]
        ta = 0
        dupno = 0
        # dissect_tcp, before the analysis: a retransmitted SYN restores nextseq;
        # a SYN-ACK with a new ISN replaces the base (a new SYN ISN is a new stream).
        if base[d] >= 0:
            if fl & (SYN | ACK) == SYN and seq == base[d]:
                nextseq[d] = maxseq[d]
            elif fl & (SYN | ACK) == SYN | ACK and seq != base[d]:
                base[d] = seq
        if base[d] < 0:
            base[d] = seq if fl & SYN else (seq - 1) & M32
        if base[r] < 0 and fl & ACK:
            base[r] = (ack - 1) & M32
        nxt_d = nextseq[d]
        sfr = fl & _SFR
        if seglen == 1 and seq == nxt_d and window[r] == 0:
            ta = ZWP
        else:
            if win == 0 and not sfr:
                ta |= ZERO_WIN
            if nxt_d and (nxt_d - seq) & M32 > _HALF and not fl & RST:  # GT(seq, nextseq)
                ta |= LOST
            if seglen <= 1 and seq == (nxt_d - 1) & M32 and not sfr:
                ta |= KEEP_ALIVE
            same = seglen == 0 and not sfr and seq == nxt_d and ack == lastack[d]
            if same and win and win != window[d]:
                ta |= WIN_UPDATE
            if seglen > 0 and win_scale[r] != -1 and not sfr:
                shift = 0 if first_ack[r] or win_scale[r] == -2 else win_scale[r]
                if (seq + seglen) & M32 == (lastack[r] + ((window[r] << shift) & M32)) & M32:
                    ta |= WIN_FULL
            if same and win and win == window[d] and lastsegflags[r] & KEEP_ALIVE:
                ta |= KEEP_ALIVE_ACK
            elif same and win == 0 and window[d] == 0 and lastsegflags[r] & ZWP:
                ta |= ZWP_ACK
            elif same and win and win == window[d]:
                dupacknum[d] = 1 if dupacknum[d] < 0 else dupacknum[d] + 1
                ta |= DUP
                dupno = dupacknum[d]
        if ack != lastack[d]:
            dupacknum[d] = 0
        if maxseq[r] and (maxseq[r] - ack) & M32 > _HALF and fl & ACK:  # GT(ack, maxseq)
            # tshark 4.0: with a hole before the other side's nextseq, move past it
            # and flag; otherwise flag once until that side's ACK number changes
            # (its dupacknum is parked at -1, which also reads as ">= 2" below).
            if maxseq[r] != nextseq[r]:
                maxseq[r] = nextseq[r]
                ta |= ACK_UNSEEN
            else:
                if dupacknum[r] == 0:
                    ta |= ACK_UNSEEN
                dupacknum[r] = -1
        if (seglen > 0 or fl & (SYN | FIN)) and not ta & KEEP_ALIVE:
            advanced = not (nxt_d and (seq - nxt_d) & M32 > _HALF)  # LT(seq, nextseq)
            if seglen > 1 and (nxt_d - 1) & M32 == seq:
                advanced = True
            if seglen > 0 and lastack[r] and (lastack[r] - seq - seglen) & M32 <= _HALF + 1:  # LE
                ta |= SPURIOUS
            elif advanced:
                pass
            elif (
                (dupacknum[r] >= 2 or dupacknum[r] < 0)
                and lastack[r] == seq
                and (ts - lastacktime[r]) & M64 < FAST_RETRANS_WINDOW_NS
            ):
                ta |= FAST
            elif (ts - nextseqtime[d]) & M64 < (first_rtt or OOO_DEFAULT_NS) & M64 and nxt_d != (
                seq + seglen + (1 if fl & (SYN | FIN) else 0)
            ) & M32:
                ta |= OOO
            else:
                ta |= RETRANS
        nxt = (seq + seglen + (1 if fl & (SYN | FIN) else 0)) & M32
        if not ta & ZWP:
            if (nxt_d - nxt) & M32 > _HALF or not nxt_d:  # GT(nxt, nextseq)
                nextseq[d] = nxt
                nextseqtime[d] = ts
            if seq == maxseq[d] or not maxseq[d]:
                maxseq[d] = nextseq[d]
        window[d] = win
        lastack[d] = ack
        lastacktime[d] = ts
        lastsegflags[d] = ta
        # dissect_tcp, after the analysis: options, window scaling, initial RTT.
        ws = wscales[k]
        if ws >= 0:
            win_scale[d] = min(ws, 14)
        if fl & SYN:
            if win_scale[d] == -1:
                win_scale[d] = win_scale[r] = -2
            elif fl & ACK and win_scale[r] == -2:
                win_scale[d] = -2
            first_ack[d] = True
            if not fl & ACK:
                mru_syn = ts
        elif fl & ACK:
            if mru_syn and not first_rtt:
                first_rtt = ts - mru_syn
            first_ack[d] = False
        out_flags.append(ta)
        out_dup.append(dupno)
    st.first_rtt = first_rtt
    st.mru_syn = mru_syn
    return base[0], base[1], win_scale[0], win_scale[1]
