"""Per-frame agreement of tracer with tshark on streams, seq/ack and analysis flags.

The comparison the tests (tests/test_tshark_agreement.py) and bench/agreement.py both
run.  A field whose meaning changed after tshark 4.0 (``oracle.tshark.DIFFERENCES``)
is left out of the result when the installed tshark is such a release: tracer's rules
are 4.0's, and ``not_compared()`` says which fields and why.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oracle.tshark import differs, tshark_fields
from tracer.core.model import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, AnalysisFlag
from tracer.core.seq_analysis import TcpAnalysisColumns, analyze_tcp
from tracer.core.streams import StreamColumns, assign_streams
from tracer.core.table import PacketTable
from tracer.pcap.reader import read_capture

# tshark field -> the AnalysisFlag whose presence it means.  tshark adds the generic
# "retransmission" expert to fast and spurious retransmissions as well, so that
# field is compared with the union of the three.
FLAG_FIELDS: dict[str, tuple[AnalysisFlag, ...]] = {
    "tcp.analysis.retransmission": (
        AnalysisFlag.RETRANSMISSION,
        AnalysisFlag.FAST_RETRANSMISSION,
        AnalysisFlag.SPURIOUS_RETRANSMISSION,
    ),
    "tcp.analysis.fast_retransmission": (AnalysisFlag.FAST_RETRANSMISSION,),
    "tcp.analysis.spurious_retransmission": (AnalysisFlag.SPURIOUS_RETRANSMISSION,),
    "tcp.analysis.duplicate_ack": (AnalysisFlag.DUP_ACK,),
    "tcp.analysis.out_of_order": (AnalysisFlag.OUT_OF_ORDER,),
    "tcp.analysis.lost_segment": (AnalysisFlag.LOST_SEGMENT,),
    "tcp.analysis.ack_lost_segment": (AnalysisFlag.ACK_UNSEEN_SEGMENT,),
    "tcp.analysis.zero_window": (AnalysisFlag.ZERO_WINDOW,),
    "tcp.analysis.zero_window_probe": (AnalysisFlag.ZERO_WINDOW_PROBE,),
    "tcp.analysis.zero_window_probe_ack": (AnalysisFlag.ZERO_WINDOW_PROBE_ACK,),
    "tcp.analysis.window_update": (AnalysisFlag.WINDOW_UPDATE,),
    "tcp.analysis.window_full": (AnalysisFlag.WINDOW_FULL,),
    "tcp.analysis.keep_alive": (AnalysisFlag.KEEP_ALIVE,),
    "tcp.analysis.keep_alive_ack": (AnalysisFlag.KEEP_ALIVE_ACK,),
}


VALUE_FIELDS = (
    "tcp.stream",
    "udp.stream",
    "tcp.seq",
    "tcp.ack",
    "tcp.window_size",
    "tcp.analysis.duplicate_ack_num",
)


FIELDS = ("frame.protocols", *VALUE_FIELDS, *FLAG_FIELDS)


# Deliberate differences: (field, reason).  The rows they cover are left out of the
# agreement counts and checked by their own tests below.
EXCEPTIONS = {
    "tunnelled_tcp": (
        "tcp.*",
        "TCP carried inside a tunnel (L2TP over UDP): tracer decodes the outer UDP "
        "header only, so such rows have udp.stream but no TCP fields",
    ),
    "icmp_quoted_seq": (
        "tcp.seq/tcp.ack/tcp.window_size",
        "on ICMP errors tshark prints the quoted TCP header's raw numbers; tracer keeps "
        "rel_seq/rel_ack for the packets of the stream only (-1 on the ICMP row)",
    ),
}


def _ours(t: PacketTable, s: StreamColumns, a: TcpAnalysisColumns, field: str) -> list[str]:
    """What tracer says for one tshark field, row by row, formatted like tshark."""
    n = len(t)
    quoted = {i: q.proto for i, q in t.icmp_quotes.items()}
    if field in ("tcp.stream", "udp.stream"):
        want = PROTO_TCP if field == "tcp.stream" else PROTO_UDP
        name = "tcp" if want == PROTO_TCP else "udp"
        out = []
        for i in range(n):
            mine = (t.proto[i] == want and not s.is_quote[i]) or (s.is_quote[i] and quoted.get(i) == name)
            out.append(str(int(s.stream[i])) if mine and s.stream[i] >= 0 else "")
        return out
    col = {
        "tcp.seq": a.rel_seq,
        "tcp.ack": a.rel_ack,
        "tcp.window_size": a.win_scaled,
        "tcp.analysis.duplicate_ack_num": np.where(a.dup_ack_num > 0, a.dup_ack_num, -1),
    }.get(field)
    if col is not None:
        return [str(int(v)) if v >= 0 else "" for v in col.tolist()]
    mask = sum(1 << f for f in FLAG_FIELDS[field])
    return ["1" if v & mask else "" for v in a.flags.tolist()]


def tunnelled(protocols: str) -> bool:
    """A frame with TCP inside UDP (e.g. ``...:udp:l2tp:ppp:ipv6:tcp``)."""
    layers = protocols.split(":")
    return "udp" in layers and "tcp" in layers and layers.index("udp") < layers.index("tcp")


def _theirs(value: str, field: str) -> str:
    if field in FLAG_FIELDS:
        return "1" if value else ""
    return value


def compare(path: Path) -> dict[str, tuple[int, int, list[int]]]:
    """Per field: (rows compared, rows equal, frame numbers that differ)."""
    rows = tshark_fields(path, *FIELDS)
    t = read_capture(path).packets
    assert len(rows) == len(t), f"{path.name}: tshark {len(rows)} frames, tracer {len(t)}"
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    icmp = (t.proto == PROTO_ICMP) | (t.proto == PROTO_ICMPV6)
    in_tunnel = [tunnelled(row[0]) for row in rows]
    out: dict[str, tuple[int, int, list[int]]] = {}
    for j, field in enumerate(VALUE_FIELDS + tuple(FLAG_FIELDS), start=1):
        if differs(field) is not None:
            continue  # see not_compared()
        ours = _ours(t, s, a, field)
        compared = equal = 0
        bad: list[int] = []
        for i, row in enumerate(rows):
            theirs = _theirs(row[j], field)
            if field in ("tcp.seq", "tcp.ack", "tcp.window_size") and icmp[i]:
                continue  # EXCEPTIONS["icmp_quoted_seq"]
            if field.startswith("tcp.") and in_tunnel[i]:
                continue  # EXCEPTIONS["tunnelled_tcp"]
            if not theirs and not ours[i]:
                continue
            compared += 1
            if theirs == ours[i]:
                equal += 1
            else:
                bad.append(i + 1)
        out[field] = (compared, equal, bad)
    return out


def not_compared() -> dict[str, str]:
    """The fields ``compare`` leaves out with the installed tshark, and why (empty on 4.0 and 4.1)."""
    return {f: why for f in VALUE_FIELDS + tuple(FLAG_FIELDS) if (why := differs(f)) is not None}
