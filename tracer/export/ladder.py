"""The text ladder: one line per packet between two endpoint lanes.

Each row: packet number, time since the first packet, an arrow between the
stream's two lanes (left = client when known) labelled with flags, seq/ack and
length, then the state changes, tshark's analysis flags and the packet's cause.
Lanes are keyed by ``ip:port`` so two sockets on one address are two lanes.
A trace with recorded socket calls also gets a row, without a number or an
arrow, for each call that caused no packet (socket, listen, accept, recv, ...),
against its side's lane at the moment it returned (a blocking call's result is
known only then: accept() returns after the handshake); a failed call names the
packet that made it fail.  Calls that caused packets stay on those packets' rows.
All labels exist in English and Simplified Chinese; widths count CJK characters
as two columns so the zh ladder lines up too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.model import (
    PROTO_TCP,
    PROTO_UDP,
    AnalysisFlag,
    CauseBy,
    Side,
    SocketCall,
    StreamInfo,
    TcpState,
    endpoint_str,
)
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.i18n.explain import label, state_name, template

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


def wrap_cut(text: str, width: int) -> list[str]:
    """``wrap``, and a word wider than a line cut up (an address, a long CJK-free token)."""
    out: list[str] = []
    for line in wrap(text, width):
        while text_width(line) > width:
            k = 0
            while text_width(line[: k + 1]) <= width:
                k += 1
            out.append(line[:k])
            line = line[k:]
        out.append(line)
    return out


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


def clip(s: str, width: int) -> str:
    """``s`` cut to ``width`` columns, ending in "…" when cut."""
    if text_width(s) <= width:
        return s
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


def arrow(label: str, left_to_right: bool, width: int) -> str:
    """An arrow ``width`` columns long with ``label`` on it, pointing right or left."""
    # Clipped so that the right lane stays in its column: label + 2 spaces + 3 arrow cells.
    body = f" {clip(label, width - 5) if text_width(label) > width - 5 else label} "
    dashes = max(2, width - text_width(body) - 1)
    if left_to_right:
        return "─" + body + "─" * (dashes - 1) + "▶"
    return "◀" + "─" * (dashes - 1) + body + "─"


def _reason_words(code: int, lang: str) -> str:
    return reason_label(REASONS[code], lang) if 0 <= code < len(REASONS) else "?"


# --- socket calls that sent nothing ----------------------------------------------

# Calls that can wait for the peer or the network: their row says how long they took.
_BLOCKING = frozenset({"accept", "connect", "connect_ex", "recv", "recvfrom", "recv_into",
                       "recvfrom_into", "send", "sendall", "sendto"})  # fmt: skip
_BLOCKED_NS = 100_000  # below 0.1 ms the call did not really wait
# Arguments shown by value alone: their value says what they are.
_BARE_ARGS = frozenset({"address", "family", "type", "level", "option", "value", "how", "via", "bufsize",
                        "nbytes"})
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "[::]", "::"})
_CALL_PROTO = {"tcp": PROTO_TCP, "udp": PROTO_UDP}
_StreamKey = tuple[int, int]


def call_time(c: SocketCall) -> int:
    """When a call's row goes on the timeline: when it returned (its result is known then)."""
    return c.t_ns


def call_error(c: SocketCall) -> str | None:
    """The errno a call failed with (connect_ex() returns it instead of raising)."""
    return c.error


def _duration(ns: int, lab: dict[str, str]) -> str:
    ms = ns / 1e6
    if ms >= 10_000:
        return lab["s"].format(v=f"{ms / 1000:.1f}")
    return lab["ms"].format(v=f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}")


def _result_text(c: SocketCall, lab: dict[str, str], error_row: int | None) -> str:
    """What the call returned, in words: an fd, a byte count, an errno with its packet."""
    err = call_error(c)
    if err is not None:
        return err + (f" ({lab['packet'].format(no=error_row + 1)})" if error_row is not None else "")
    if c.t_exit_ns is None:
        return lab["no_return"]
    r = c.result
    if r is None:
        return ""
    if c.call in ("socket", "accept") and r.isdigit():
        fd = lab["fd"].format(fd=r)
        return f"{fd} ({c.remote})" if c.call == "accept" and c.remote else fd
    if c.call in ("recv", "recv_into", "send", "sendto") and r.isdigit():
        return lab["eof"] if r == "0" and c.call.startswith("recv") else lab["bytes"].format(n=r)
    n, sep, peer = r.partition(" from ")
    if c.call in ("recvfrom", "recvfrom_into") and sep and n.isdigit():
        return lab["bytes_from"].format(n=n, peer=peer)
    return r


def call_text(c: SocketCall, lab: dict[str, str], error_row: int | None = None) -> str:
    """A call as a student reads it, e.g. ``server accept() → fd 5 (10.77.0.1:36948)``."""
    args = ", ".join(
        v if k in _BARE_ARGS else f"{k}={v}"
        for k, v in c.args
        if not (c.call == "socket" and k == "proto" and v == "0")
    )
    who = lab.get(c.side, c.side) if c.side in ("client", "server") else c.side
    result = _result_text(c, lab, error_row)
    return f"{who} {c.call}({args})" + (f" → {result}" if result else "")


def _ep_split(ep: str) -> tuple[str, str]:
    host, _, port = ep.rpartition(":")
    return host, port


def call_streams(
    calls: tuple[SocketCall, ...], infos: dict[_StreamKey, StreamInfo], caused: dict[int, set[_StreamKey]]
) -> dict[int, set[_StreamKey]]:
    """Call id → the streams of the call's socket.

    A socket is a (side, pid, fd) from socket() (or first use) to close(); it
    belongs to the streams whose endpoints its calls name (a wildcard local
    address matches by port, so a listener belongs to every connection it
    serves) and to those of the packets its calls caused (``caused``: call id →
    streams, packet causes and error links).  A call that names or caused its
    own streams (accept(), recv(), close()) gets those alone.
    """
    by_ep: dict[str, set[_StreamKey]] = {}
    by_port: dict[tuple[int, str], set[_StreamKey]] = {}
    for key, info in infos.items():
        for ep in (info.a, info.b):
            by_ep.setdefault(ep, set()).add(key)
            by_port.setdefault((key[0], _ep_split(ep)[1]), set()).add(key)

    def local_streams(ep: str, proto: int | None) -> set[_StreamKey]:
        host, port = _ep_split(ep)
        found = set(by_ep.get(ep, ()))
        if host in _WILDCARD_HOSTS:
            for p in (proto,) if proto is not None else (PROTO_TCP, PROTO_UDP):
                found |= by_port.get((p, port), set())
        return {k for k in found if proto is None or k[0] == proto}

    live: dict[tuple[str, int, int], set[_StreamKey]] = {}
    socket_of: dict[int, set[_StreamKey]] = {}
    for c in sorted(calls, key=lambda c: (c.t_enter_ns, c.id)):
        proto = _CALL_PROTO.get(c.proto or "")
        own: set[_StreamKey] = set(caused.get(c.id, ()))
        if c.local:
            found = local_streams(c.local, proto)
            if c.remote:
                found &= by_ep.get(c.remote, set())
            own |= found
        if c.fd is None:
            socket_of[c.id] = own
            continue
        fd_key = (c.side, c.pid, c.fd)
        if fd_key not in live or c.call == "socket":
            live[fd_key] = set()
        streams = live[fd_key]
        streams |= own  # shared by every call of this socket, earlier ones included
        # A call that names its own connection (accept(), recv()) belongs to that one only.
        socket_of[c.id] = own or streams
        if c.call == "close":
            del live[fd_key]
    return socket_of


def render_ladder(
    trace: Trace,
    analysis: Analysis,
    lang: str = "en",
    width: int = 100,
    stream: int | None = None,
    raw_seq: bool = False,
    explain: bool = False,
) -> Iterator[str]:
    """Yield the ladder's lines (header first, then one line per packet, with the
    recorded calls that caused no packet between them in time order).

    ``stream`` keeps only the packets of that TCP stream (tshark's ``tcp.stream``
    number) and the calls of its sockets; ``raw_seq`` shows raw sequence numbers; ``explain`` adds an
    indented line with the full explanation under each packet (and the source
    line under each call row).
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
    calls = _shown_calls(trace, a, infos, stream)
    error_links = a.error_links if trace.calls else {}

    yield lab["title"].format(
        source=trace.meta.source or "-", n=n, tcp=len(a.tcp_streams), udp=len(a.udp_streams)
    )
    legends = ["legend1_raw" if raw_seq else "legend1", "legend2"] + (["legend3"] if calls else [])
    for legend in legends:
        yield from wrap(lab[legend], max(40, width), indent="  ")
    if rows.size == 0:
        yield lab["no_packets"]
        return

    no_w = max(len(str(n)), text_width(lab["no"]))
    # Wide enough for the extremes (odd captures have times far apart or out of order).
    rel = (t.ts_ns[rows] - t.ts_ns[0]) / 1e9
    extremes = [float(rel.min()), float(rel.max())]
    extremes += [(call_time(c) - int(t.ts_ns[0])) / 1e9 for c in calls[:1] + calls[-1:]]
    time_w = max(10, text_width(lab["time"]), *(len(f"{x:.6f}") for x in extremes))
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
    call_id = a.cause_call_id.tolist() if error_links else []
    calls_by_id = {c.id: c for c in trace.calls} if error_links else {}
    errors_told: set[int] = set()

    def call_rows(c: SocketCall, tag: str) -> Iterator[str]:
        """One call as its own row: no arrow, its text against its side's lane."""
        lead = pad("", no_w) + " " + pad(f"{(call_time(c) - t0) / 1e9:.6f}", time_w, right=True) + " "
        if multi:
            lead += pad(tag, tag_w) + " "
        inner = arrow_w - 2
        text = call_text(c, lab, error_links.get(c.id))
        note = ""
        if c.t_exit_ns is not None and c.call in _BLOCKING and c.t_exit_ns - c.t_enter_ns >= _BLOCKED_NS:
            note = "  " + lab["waited"].format(d=_duration(c.t_exit_ns - c.t_enter_ns, lab))
        for k, part in enumerate(wrap(text, inner) if text_width(text) > inner else [text]):
            body = pad(part, inner, right=c.side == "server")
            yield (lead if k == 0 else " " * prefix_w) + "│ " + body + " │" + (note if k == 0 else "")
        if explain and c.source is not None:
            where = f"{c.source.file.rsplit('/', 1)[-1]}:{c.source.line}"
            yield " " * prefix_w + "  " + (f"{where}  {c.source.code}" if c.source.code else where)

    def stream_header(info: StreamInfo) -> str:
        title = lab["stream"].format(proto=info.proto.upper(), index=info.index)
        return pad(f"[{title}]", prefix_w - 1, right=True) + " " + lane_header(_lanes(info, lab))

    streams_of = call_streams(trace.calls, infos, caused_streams(trace, a)) if calls and multi else {}
    current: tuple[int, int] | None = None  # the stream whose header was printed last

    def call_block(c: SocketCall) -> Iterator[str]:
        """A call's rows; with several streams, under its stream's header when it has one."""
        nonlocal current
        keys = streams_of.get(c.id, set())
        info = infos.get(next(iter(keys))) if len(keys) == 1 else None
        if info is not None and (PROTO_TCP if info.proto == "tcp" else PROTO_UDP, info.index) != current:
            yield stream_header(info)
            current = (PROTO_TCP if info.proto == "tcp" else PROTO_UDP, info.index)
        yield from call_rows(c, f"{info.proto[0]}{info.index}" if info is not None else "")

    # Warnings sit on the timeline after the packet they name (a scenario's error,
    # out-of-range times, ...); the others come first, or last if their packet is not shown.
    # Those with a time (a live run's error) stand at that time among calls and packets.
    placed: dict[int, list[str]] = {}
    timed: list[tuple[int, str]] = []
    for w in trace.warnings:
        msg = lab["warning"].format(msg=" ".join((w.message_zh if lang == "zh" else w.message).split()))
        if w.t_ns is not None:
            timed.append((w.t_ns, msg))
        else:
            placed.setdefault(w.packet_no if w.packet_no is not None else 0, []).append(msg)
    timed.sort()
    for msg in placed.pop(0, []):
        yield from wrap(msg, max(40, width), indent="  ")

    pending = 0
    last_states: dict[int, tuple[int, int]] = {}
    lane_cache: dict[tuple[int, int], _Lanes] = {}
    side_label = {1: lab["client"], 2: lab["server"]}
    def events_before(t_ns: float) -> Iterator[str]:
        """Call rows and timed warnings earlier than ``t_ns``, in time order."""
        nonlocal pending
        while True:
            tc = call_time(calls[pending]) if pending < len(calls) else None
            tw = timed[0][0] if timed else None
            if tw is not None and tw < t_ns and (tc is None or tw <= tc):
                yield from wrap(timed.pop(0)[1], max(40, width), indent=" " * prefix_w)
            elif tc is not None and tc < t_ns:
                yield from call_block(calls[pending])
                pending += 1
            else:
                return

    due: list[str] = []  # warnings of the previous packet: after the calls that followed it
    for i in rows.tolist():
        yield from events_before(ts[i])
        for msg in due:
            yield from wrap(msg, max(40, width), indent=" " * prefix_w)
        due = []
        p, s = proto[i], strm[i]
        key = (p, s)
        info = infos.get(key) if s >= 0 and p in (PROTO_TCP, PROTO_UDP) else None
        if multi and info is not None and key != current:
            yield stream_header(info)
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
            line += "│" + arrow(label, left_to_right, arrow_w) + "│"
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
                desc = clip(desc, arrow_w - 2)
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
                cid = call_id[i] if error_links else -1
                failed = calls_by_id.get(cid) if cid in error_links and cid not in errors_told else None
                if failed is not None and (err := call_error(failed)) is not None:
                    # The call failed later because of another packet: say which one.
                    errors_told.add(cid)
                    cause += f" → {err} ({lab['packet'].format(no=error_links[cid] + 1)})"
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
        due = placed.pop(i + 1, [])
    yield from events_before(float("inf"))
    for msg in due:
        yield from wrap(msg, max(40, width), indent=" " * prefix_w)
    for no in sorted(placed):  # their packet is not shown (filtered, or past the end)
        for msg in placed[no]:
            yield from wrap(msg, max(40, width), indent="  ")


def caused_streams(trace: Trace, a: Analysis) -> dict[int, set[_StreamKey]]:
    """Call id → the streams of the packets it caused or that made it fail."""
    out: dict[int, set[_StreamKey]] = {}
    ids = a.cause_call_id
    for r in np.flatnonzero(ids >= 0).tolist():
        out.setdefault(int(ids[r]), set()).add((int(trace.packets.proto[r]), int(a.stream[r])))
    for cid, r in a.error_links.items():
        out.setdefault(cid, set()).add((int(trace.packets.proto[r]), int(a.stream[r])))
    return out


def _shown_calls(
    trace: Trace, a: Analysis, infos: dict[_StreamKey, StreamInfo], stream: int | None
) -> list[SocketCall]:
    """The calls that get their own row, in time order: those that caused no packet
    row, and with a stream filter only those of a socket of that TCP stream."""
    if not trace.calls:
        return []
    ids = a.cause_call_id
    on_packets = set(ids[ids >= 0].tolist())
    keep = [c for c in trace.calls if c.id not in on_packets]
    if stream is not None:
        streams_of = call_streams(trace.calls, infos, caused_streams(trace, a))
        keep = [c for c in keep if (PROTO_TCP, stream) in streams_of.get(c.id, set())]
    return sorted(keep, key=lambda c: (call_time(c), c.id))


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
