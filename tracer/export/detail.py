"""One packet in full: summary, cause and explanation, states, scapy's layers, hex.

This is what ``tracer show FILE NO`` prints; the TUI's detail pane shows the same.
"""

from __future__ import annotations

from collections.abc import Iterator

from tracer.core.analysis import Analysis
from tracer.core.explain import label, state_name
from tracer.core.model import AnalysisFlag, CauseBy, Side, TcpState, flags_str
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.dissect import dissect, hexdump
from tracer.ladder.labels import packet_explanation

_LABELS = {
    "en": {"packet": "Packet", "cause": "Cause", "why": "Why", "states": "TCP states after it",
           "analysis": "TCP analysis", "layers": "Layers (scapy)", "bytes": "Bytes",
           "inferred": "inferred from TCP semantics", "kernel": "kernel", "by_call": "called",
           "unknown": "unknown", "stream": "stream", "none": "none",
           Side.CLIENT: "client", Side.SERVER: "server", Side.NONE: ""},
    "zh": {"packet": "数据包", "cause": "原因", "why": "解释", "states": "之后的 TCP 状态",
           "analysis": "TCP 分析", "layers": "协议层（scapy）", "bytes": "字节",
           "inferred": "根据 TCP 语义推断", "kernel": "内核", "by_call": "调用了",
           "unknown": "未知", "stream": "流", "none": "无",
           Side.CLIENT: "客户端", Side.SERVER: "服务器", Side.NONE: ""},
}


def render_detail(trace: Trace, a: Analysis, i: int, lang: str = "en") -> Iterator[str]:
    """Lines describing row ``i`` (0-based) of ``trace`` in ``lang``."""
    t = trace.packets
    L = _LABELS["zh" if lang == "zh" else "en"]
    p = t.packet(i)
    stream = int(a.stream[i])
    head = f"{L['packet']} {p.no}: {p.proto} {p.src} → {p.dst}"
    if p.proto == "tcp":
        seq, ack = int(a.rel_seq[i]), int(a.rel_ack[i])
        head += f" [{flags_str(p.tcp_flags)}] seq={seq} ack={ack} len={p.payload_len}"
    elif p.proto == "udp":
        head += f" len={p.payload_len}"
    if stream >= 0:
        head += f" ({L['stream']} {stream})"
    yield head

    reason = REASONS[int(a.cause_reason[i])]
    side = Side(int(a.cause_side[i]))
    by = CauseBy(int(a.cause_by[i]))
    who = L[side]
    if by == CauseBy.CALL or (by != CauseBy.KERNEL and int(a.cause_call[i]) > 0):
        what = f"{who} {L['by_call']} {CALL_NAMES[int(a.cause_call[i])]}()"
    elif by == CauseBy.KERNEL:
        what = f"{who} {L['kernel']}"
    else:
        what = L["unknown"]
    cause = f"{L['cause']}: {what.strip()} — {label(reason, lang)}"
    if bool(a.cause_inferred[i]):
        cause += f" ({L['inferred']})"
    yield cause
    yield f"{L['why']}: {packet_explanation(trace, a, i, lang)}"

    if p.proto == "tcp" and stream >= 0:
        info = a.tcp_streams[stream]
        sa, sb = int(a.state_a[i]), int(a.state_b[i])
        yield (f"{L['states']}: {info.a} {state_name(TcpState(sa), lang)} · "
               f"{info.b} {state_name(TcpState(sb), lang)}")
        bits = int(a.flags[i])
        names = [f.json_name for f in AnalysisFlag if bits >> f.value & 1]
        yield f"{L['analysis']}: {', '.join(names) if names else L['none']}"
    if p.comment:
        yield f"# {p.comment}"

    yield ""
    yield f"{L['layers']}:"
    for layer in dissect(t.raw(i), p.linktype):
        yield f"  {layer.name}"
        for name, value in layer.fields:
            yield f"    {name} = {value}"
    yield ""
    yield f"{L['bytes']} ({p.caplen}/{p.wirelen}):"
    yield from ("  " + line for line in hexdump(t.raw(i)))
