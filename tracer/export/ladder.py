"""The text ladder: one line per packet between two endpoint lanes.

Each row: packet number, time since the first packet, an arrow between the
stream's two lanes (left = client when known) labelled with flags, seq/ack and
length, then the state changes, tshark's analysis flags and the packet's cause.
Lanes are keyed by ``ip:port`` so two sockets on one address are two lanes.
All labels exist in English and Simplified Chinese; widths count CJK characters
as two columns so the zh ladder lines up too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.explain import label, state_name, template
from tracer.core.model import (
    PROTO_TCP,
    PROTO_UDP,
    AnalysisFlag,
    CauseBy,
    Side,
    StreamInfo,
    TcpState,
    endpoint_str,
)
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace

_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
               (0x40, "ECE"), (0x80, "CWR"))  # fmt: skip

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "tracer ladder — {source}: {n} packets; TCP streams: {tcp}, UDP streams: {udp}",
        "legend1": "no = packet number; time = seconds since the first packet; "
        "the arrow shows who sent it: flags, seq/ack (relative to each side's ISN), payload length",
        "legend1_raw": "no = packet number; time = seconds since the first packet; "
        "the arrow shows who sent it: flags, raw seq/ack numbers, payload length",
        "legend2": "after the arrow: new TCP states, [analysis flags], cause "
        "(~ = inferred from TCP semantics, not from a recorded socket call)",
        "no": "no",
        "time": "time(s)",
        "client": "client",
        "server": "server",
        "a": "A",
        "b": "B",
        "kernel": "kernel",
        "unknown": "unknown",
        "stream": "{proto} stream {index}",
        "no_packets": "(no packets)",
        "other": "not TCP/UDP",
    },
    "zh": {
        "title": "tracer 阶梯图 — {source}：{n} 个数据包，{tcp} 条 TCP 流，{udp} 条 UDP 流",
        "legend1": "序号 = 数据包编号；时间 = 距第一个数据包的秒数；"
        "箭头表示发送方向：标志位、seq/ack（相对各自的初始序号）、载荷长度",
        "legend1_raw": "序号 = 数据包编号；时间 = 距第一个数据包的秒数；"
        "箭头表示发送方向：标志位、原始 seq/ack、载荷长度",
        "legend2": "箭头之后：新的 TCP 状态、[分析标记]、"
        "原因（~ = 根据 TCP 语义推断，而非记录到的套接字调用）",
        "no": "序号",
        "time": "时间(秒)",
        "client": "客户端",
        "server": "服务器",
        "a": "A",
        "b": "B",
        "kernel": "内核",
        "unknown": "未知",
        "stream": "{proto} 流 {index}",
        "no_packets": "（没有数据包）",
        "other": "非 TCP/UDP",
    },
}

ANALYSIS_LABELS: dict[str, dict[AnalysisFlag, str]] = {
    "en": {f: f.json_name.replace("_", " ") for f in AnalysisFlag},
    "zh": {
        AnalysisFlag.RETRANSMISSION: "重传",
        AnalysisFlag.FAST_RETRANSMISSION: "快速重传",
        AnalysisFlag.SPURIOUS_RETRANSMISSION: "虚假重传",
        AnalysisFlag.DUP_ACK: "重复 ACK",
        AnalysisFlag.OUT_OF_ORDER: "乱序",
        AnalysisFlag.LOST_SEGMENT: "前一段未被捕获",
        AnalysisFlag.ACK_UNSEEN_SEGMENT: "确认了未见的段",
        AnalysisFlag.ZERO_WINDOW: "零窗口",
        AnalysisFlag.ZERO_WINDOW_PROBE: "零窗口探测",
        AnalysisFlag.WINDOW_UPDATE: "窗口更新",
        AnalysisFlag.WINDOW_FULL: "窗口已满",
        AnalysisFlag.KEEP_ALIVE: "保活",
        AnalysisFlag.KEEP_ALIVE_ACK: "保活 ACK",
        AnalysisFlag.ZERO_WINDOW_PROBE_ACK: "零窗口探测 ACK",
    },
}


# Short cause labels for the ladder rows (the full sentences are in tracer.core.explain).
def reason_label(name: str, lang: str) -> str:
    """A few words for cause reason ``name`` (see ``tracer.core.explain.label``)."""
    return label(name, lang)


def text_width(s: str) -> int:
    """Terminal columns of ``s``: East Asian wide/fullwidth characters count 2."""
    if s.isascii():
        return len(s)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def pad(s: str, width: int, right: bool = False) -> str:
    """``s`` padded with spaces to ``width`` columns (on the left if ``right``)."""
    fill = " " * max(0, width - text_width(s))
    return fill + s if right else s + fill


def wrap(text: str, width: int, indent: str = "") -> Iterator[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces (or anywhere in CJK text)."""
    line = indent
    for word in _words(text):
        if text_width(line) + text_width(word) > width and line.strip():
            yield line.rstrip()
            line = indent + word.lstrip()
        else:
            line += word
    if line.strip():
        yield line.rstrip()


def _words(text: str) -> Iterator[str]:
    """Break points: after spaces, and between any two wide (CJK) characters."""
    word = ""
    for c in text:
        wide = unicodedata.east_asian_width(c) in "WF"
        if word and (wide or word[-1] == " "):
            yield word
            word = ""
        word += c
    if word:
        yield word


def _clip(s: str, width: int) -> str:
    """``s`` cut to ``width`` columns, ending in "…" when cut."""
    out = ""
    for c in s:
        if text_width(out + c) > width - 1:
            return out + "…"
        out += c
    return out


def tcp_flag_names(bits: int) -> str:
    """Flag names like tshark shows them, e.g. ``SYN,ACK``."""
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit) or "-"


@dataclass(frozen=True)
class _Lanes:
    left: str
    right: str
    left_role: str
    right_role: str
    a_is_left: bool


def _lanes(info: StreamInfo, lab: dict[str, str]) -> _Lanes:
    if info.client is not None and info.client in (info.a, info.b):
        server = info.b if info.client == info.a else info.a
        return _Lanes(info.client, server, lab["client"], lab["server"], info.client == info.a)
    return _Lanes(info.a, info.b, lab["a"], lab["b"], True)


def _arrow(label: str, left_to_right: bool, width: int) -> str:
    body = f" {label} "
    dashes = max(2, width - text_width(body) - 1)
    if left_to_right:
        return "─" + body + "─" * (dashes - 1) + "▶"
    return "◀" + "─" * (dashes - 1) + body + "─"


def _reason_words(code: int, lang: str) -> str:
    return reason_label(REASONS[code], lang) if 0 <= code < len(REASONS) else "?"


def render_ladder(
    trace: Trace,
    analysis: Analysis,
    lang: str = "en",
    width: int = 100,
    stream: int | None = None,
    raw_seq: bool = False,
    explain: bool = False,
) -> Iterator[str]:
    """Yield the ladder's lines (header first, then one line per packet).

    ``stream`` keeps only the packets of that TCP stream (tshark's ``tcp.stream``
    number); ``raw_seq`` shows raw sequence numbers; ``explain`` adds an
    indented line with the full explanation under each packet.
    """
    lab = LABELS.get(lang, LABELS["en"])
    lang = lang if lang in LABELS else "en"
    flag_labels = ANALYSIS_LABELS[lang]
    t = trace.packets
    a = analysis
    n = len(t)

    infos: dict[tuple[int, int], StreamInfo] = {}
    for s in a.tcp_streams:
        infos[(PROTO_TCP, s.index)] = s
    for s in a.udp_streams:
        infos[(PROTO_UDP, s.index)] = s

    rows = np.arange(n)
    if stream is not None:
        rows = rows[(t.proto == PROTO_TCP) & (a.stream == stream)]
    shown_streams = {
        (int(p), int(s))
        for p, s in zip(t.proto[rows].tolist(), a.stream[rows].tolist(), strict=True)
        if s >= 0
    }
    multi = len(shown_streams) > 1

    yield lab["title"].format(
        source=trace.meta.source or "-", n=n, tcp=len(a.tcp_streams), udp=len(a.udp_streams)
    )
    for legend in ("legend1_raw" if raw_seq else "legend1", "legend2"):
        yield from wrap(lab[legend], max(40, width), indent="  ")
    if rows.size == 0:
        yield lab["no_packets"]
        return

    no_w = max(len(str(n)), text_width(lab["no"]))
    # Wide enough for the extremes (odd captures have times far apart or out of order).
    rel = (t.ts_ns[rows] - t.ts_ns[0]) / 1e9
    time_w = max(
        10, text_width(lab["time"]), *(len(f"{x:.6f}") for x in (float(rel.min()), float(rel.max())))
    )
    tag_w = 6 if multi else 0
    prefix_w = no_w + 1 + time_w + 1 + (tag_w + 1 if multi else 0)
    arrow_w = max(30, min(60, width - prefix_w - 34))

    def lane_header(lanes: _Lanes) -> str:
        left = f"{lanes.left_role} {lanes.left}"
        right = f"{lanes.right} {lanes.right_role}"
        span = arrow_w + 2
        if text_width(left) + text_width(right) + 1 <= span:
            return pad(left, span - text_width(right)) + right
        return left + "  ⇄  " + right

    head = pad(lab["no"], no_w, right=True) + " " + pad(lab["time"], time_w, right=True) + " "
    if multi:
        head += " " * (tag_w + 1)
    single_lanes = None
    if not multi and shown_streams:
        (only,) = shown_streams
        info = infos.get(only)
        if info is not None:
            single_lanes = _lanes(info, lab)
    yield head + (lane_header(single_lanes) if single_lanes else "")

    ts = t.ts_ns.tolist()
    t0 = ts[0]
    proto = t.proto.tolist()
    strm = a.stream.tolist()
    direction = a.direction.tolist()
    tflags = t.tcp_flags.tolist()
    seq_col = (t.seq if raw_seq else a.rel_seq).tolist()
    ack_col = (t.ack if raw_seq else a.rel_ack).tolist()
    plen = t.payload_len.tolist()
    aflags = a.flags.tolist()
    st_a = a.state_a.tolist()
    st_b = a.state_b.tolist()
    by = a.cause_by.tolist()
    side = a.cause_side.tolist()
    call = a.cause_call.tolist()
    reason = a.cause_reason.tolist()
    inferred = a.cause_inferred.tolist()
    icmp_type = t.icmp_type.tolist()
    icmp_code = t.icmp_code.tolist()

    last_states: dict[int, tuple[int, int]] = {}
    lane_cache: dict[tuple[int, int], _Lanes] = {}
    current: tuple[int, int] | None = None
    side_label = {1: lab["client"], 2: lab["server"]}
    for i in rows.tolist():
        p, s = proto[i], strm[i]
        key = (p, s)
        info = infos.get(key) if s >= 0 and p in (PROTO_TCP, PROTO_UDP) else None
        if multi and info is not None and key != current:
            lanes = _lanes(info, lab)
            title = lab["stream"].format(proto=info.proto.upper(), index=info.index)
            yield pad(f"[{title}]", prefix_w - 1, right=True) + " " + lane_header(lanes)
            current = key
        line = (
            pad(str(i + 1), no_w, right=True)
            + " "
            + pad(f"{(ts[i] - t0) / 1e9:.6f}", time_w, right=True)
            + " "
        )
        if multi:
            tag = f"{info.proto[0]}{info.index}" if info is not None else ""
            line += pad(tag, tag_w) + " "
        notes: list[str] = []
        if info is not None:
            lanes = lane_cache.get(key) or lane_cache.setdefault(key, _lanes(info, lab))
            from_a = direction[i] == 0
            left_to_right = from_a == lanes.a_is_left
            if p == PROTO_TCP:
                parts = [tcp_flag_names(tflags[i])]
                if seq_col[i] >= 0:
                    parts.append(f"seq={seq_col[i]}")
                if ack_col[i] >= 0 and tflags[i] & 0x10:
                    parts.append(f"ack={ack_col[i]}")
                parts.append(f"len={plen[i]}")
                label = " ".join(parts)
            else:
                label = f"UDP len={plen[i]}"
            line += "│" + _arrow(label, left_to_right, arrow_w) + "│"
            if p == PROTO_TCP and st_a[i] >= 0:
                prev = last_states.get(s)
                role_a = lanes.left_role if lanes.a_is_left else lanes.right_role
                role_b = lanes.right_role if lanes.a_is_left else lanes.left_role
                for role, old, new in (
                    (role_a, prev[0] if prev else None, st_a[i]),
                    (role_b, prev[1] if prev else None, st_b[i]),
                ):
                    if new != old and new != TcpState.UNKNOWN:
                        notes.append(f"{role} {state_name(TcpState(new), lang)}")
                last_states[s] = (st_a[i], st_b[i])
        else:
            src = endpoint_str(t.address(int(t.src[i])), int(t.sport[i]))
            dst = endpoint_str(t.address(int(t.dst[i])), int(t.dport[i]))
            what = t.proto_names[p]
            desc = f"{what} {src} → {dst}" if src or dst else f"{what} ({lab['other']})"
            if icmp_type[i] >= 0:
                desc += f" type={icmp_type[i]} code={icmp_code[i]}"
            quote = t.icmp_quotes.get(i)
            if s >= 0 and quote is not None:
                notes.append("[" + lab["stream"].format(proto=quote.proto.upper(), index=s) + "]")
            if text_width(desc) > arrow_w - 2:
                desc = _clip(desc, arrow_w - 2)
            line += "│ " + pad(desc, arrow_w - 1) + "│"
        if aflags[i]:
            notes.append(
                "[" + ", ".join(flag_labels[f] for f in AnalysisFlag if aflags[i] >> f.value & 1) + "]"
            )
        if by[i] != CauseBy.UNKNOWN or reason[i] > 0:
            who = side_label.get(side[i], "")
            mark = "~" if inferred[i] else ""
            if by[i] == CauseBy.CALL and 0 <= call[i] < len(CALL_NAMES) and CALL_NAMES[call[i]]:
                cause = f"{who} {CALL_NAMES[call[i]]}()"
            elif by[i] == CauseBy.KERNEL:
                cause = f"{who} {lab['kernel']}: {_reason_words(reason[i], lang)}"
            else:
                cause = f"{who} {_reason_words(reason[i], lang)}"
            notes.append(mark + cause.strip())
        yield line + ("  " + " · ".join(notes) if notes else "")
        if explain and reason[i] >= 0:
            yield (
                " " * prefix_w
                + "  "
                + _explanation(i, reason[i], side[i], lang, trace, plen, seq_col, ack_col)
            )


def _explanation(
    i: int, reason: int, side: int, lang: str, trace: Trace, plen: list[int], seq: list[int], ack: list[int]
) -> str:
    name = REASONS[reason] if 0 <= reason < len(REASONS) else "unknown"
    tpl = template(name, Side(side) if side in (0, 1, 2) else Side.NONE, lang)
    try:
        return tpl.format(
            src=trace.packets.src_endpoint(i),
            dst=trace.packets.dst_endpoint(i),
            len=plen[i],
            seq=seq[i] if seq[i] >= 0 else "",
            ack=ack[i] if ack[i] >= 0 else "",
        )
    except (KeyError, IndexError, ValueError):
        return tpl
