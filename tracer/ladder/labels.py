"""The ladder's words: every label in English and Simplified Chinese, TCP flag
names, a cause's few words, a packet's arrow label and its explanation sentence."""

from __future__ import annotations

from tracer.core.analysis import Analysis
from tracer.core.model import AnalysisFlag, Side, endpoint_str
from tracer.core.reasons import REASONS
from tracer.core.table import PacketTable
from tracer.core.trace import Trace
from tracer.i18n.explain import explain, label

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
        "legend3": "rows without a number: socket calls that sent no packet, placed when they "
        "returned; \"waited\" = how long the call blocked",
        "fd": "fd {fd}",
        "bytes": "{n} bytes",
        "bytes_from": "{n} bytes from {peer}",
        "eof": "0 bytes (peer closed)",
        "packet": "packet {no}",
        "waited": "waited {d}",
        "warning": "!! warning: {msg}",
        "ms": "{v} ms",
        "s": "{v} s",
        "no_return": "did not return",
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
        "legend3": "没有序号的行：没有发出数据包的套接字调用，位于调用返回的时刻；"
        "“等待了” = 调用阻塞的时长",
        "fd": "描述符 {fd}",
        "bytes": "{n} 字节",
        "bytes_from": "{n} 字节，来自 {peer}",
        "eof": "0 字节（对方已关闭）",
        "packet": "数据包 {no}",
        "waited": "等待了 {d}",
        "warning": "!! 警告：{msg}",
        "ms": "{v} 毫秒",
        "s": "{v} 秒",
        "no_return": "未返回",
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


# Short cause labels for the ladder rows (the full sentences are in tracer.i18n.explain).
def reason_label(name: str, lang: str) -> str:
    """A few words for cause reason ``name`` (see ``tracer.i18n.explain.label``)."""
    return label(name, lang)


def reason_words(code: int, lang: str) -> str:
    """``reason_label`` of a cause reason code; "?" for a code out of range."""
    return reason_label(REASONS[code], lang) if 0 <= code < len(REASONS) else "?"


def tcp_flag_names(bits: int) -> str:
    """Flag names like tshark shows them, e.g. ``SYN,ACK``."""
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit) or "-"


def tcp_label(flags: int, seq: int, ack: int, payload_len: int) -> str:
    """A TCP packet's arrow label: ``SYN,ACK seq=0 ack=1 len=0`` (seq/ack left out when absent)."""
    parts = [tcp_flag_names(flags)]
    if seq >= 0:
        parts.append(f"seq={seq}")
    if ack >= 0 and flags & 0x10:
        parts.append(f"ack={ack}")
    parts.append(f"len={payload_len}")
    return " ".join(parts)


def other_frame_text(t: PacketTable, i: int, lab: dict[str, str]) -> str:
    """A frame outside any TCP/UDP stream, in words: protocol, endpoints, ICMP type and code."""
    src = endpoint_str(t.address(int(t.src[i])), int(t.sport[i]))
    dst = endpoint_str(t.address(int(t.dst[i])), int(t.dport[i]))
    what = t.proto_names[int(t.proto[i])]
    desc = f"{what} {src} → {dst}" if src or dst else f"{what} ({lab['other']})"
    if int(t.icmp_type[i]) >= 0:
        desc += f" type={int(t.icmp_type[i])} code={int(t.icmp_code[i])}"
    return desc


def packet_explanation(trace: Trace, a: Analysis, i: int, lang: str = "en") -> str:
    """The plain-language sentence for row ``i``: its cause's template, filled in."""
    t = trace.packets
    reason = REASONS[int(a.cause_reason[i])]
    return explain(reason, Side(int(a.cause_side[i])), lang, src=t.src_endpoint(i), dst=t.dst_endpoint(i),
                   len=int(t.payload_len[i]), seq=int(a.rel_seq[i]), ack=int(a.rel_ack[i]))
