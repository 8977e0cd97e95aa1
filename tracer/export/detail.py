"""One packet in full: summary, cause and explanation, the kernel's account (what sent
it, its stack, a drop, the RST's reason, the receiver's figures, where the cause came
from), states, scapy's layers, hex.

This is what ``tracer show FILE NO`` prints; the TUI's detail pane shows the same.
"""

from __future__ import annotations

from collections.abc import Iterator

from tracer.core.analysis import Analysis
from tracer.core.model import AnalysisFlag, CauseBy, Side, TcpState, flags_str
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.dissect import dissect, hexdump
from tracer.i18n import Words
from tracer.i18n.explain import label, state_name
from tracer.ladder.kernel import kernel_lines
from tracer.ladder.labels import packet_explanation

_LABELS = Words("detail.")  # catalogue keys detail.*


def render_detail(trace: Trace, a: Analysis, i: int, lang: str = "en") -> Iterator[str]:
    """Lines describing row ``i`` (0-based) of ``trace`` in ``lang``."""
    t = trace.packets
    L = _LABELS[lang]
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
    who = {Side.CLIENT: L["client"], Side.SERVER: L["server"]}.get(side, "")
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
    yield from kernel_lines(trace, a, i, lang)

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
