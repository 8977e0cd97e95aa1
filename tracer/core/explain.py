"""Explanations of causes and TCP states, in English and Simplified Chinese.

``template(reason, side, lang)`` is a ``str.format`` template that may use the
placeholders ``{src}``, ``{dst}``, ``{len}``, ``{seq}`` and ``{ack}``; exporters
cache it per (reason, side, lang) and format it per packet.  ``explain`` does
both at once.  The texts are written for students of socket programming: they
say which call (or which kernel mechanism) produced the packet and what the
application sees.

In the source texts ``<S>``/``<Sc>`` stand for the sender ("the client",
capitalised for ``<Sc>``) and ``<P>``/``<Pc>`` for its peer; they are replaced
when the template is built, so the cached templates contain plain text.
"""

from __future__ import annotations

from functools import cache

from tracer.core.model import Side, TcpState
from tracer.core.reasons import REASONS

LANGS: tuple[str, ...] = ("en", "zh")

# (sender, peer) nouns per side and language.
_NOUNS: dict[str, dict[Side, tuple[str, str]]] = {
    "en": {
        Side.CLIENT: ("the client", "the server"),
        Side.SERVER: ("the server", "the client"),
        Side.NONE: ("the sender", "the receiver"),
    },
    "zh": {
        Side.CLIENT: ("客户端", "服务器"),
        Side.SERVER: ("服务器", "客户端"),
        Side.NONE: ("发送方", "接收方"),
    },
}

_EN: dict[str, str] = {
    "unknown": "tracer cannot tell why this packet was sent.",
    "connect_syn": (
        "<Sc> called connect(): its kernel sends this SYN from {src} to {dst} to open a connection, "
        "and connect() blocks until the handshake completes or fails."
    ),
    "syn_retransmission": (
        "No SYN-ACK arrived in time, so <S>'s kernel sent the SYN again (retransmission timer); "
        "connect() is still waiting."
    ),
    "listen_queue_synack": (
        "<Sc>'s kernel answered the SYN from the listen queue of the socket that called listen(); "
        "accept() is not needed for this and sends nothing."
    ),
    "synack_retransmission": (
        "The last ACK of the handshake did not arrive in time, so <S>'s kernel sent its SYN-ACK again."
    ),
    "simultaneous_open_syn": (
        "<Sc> also called connect() for the same pair of addresses and ports, and its SYN crossed "
        "<P>'s SYN on the wire (simultaneous open)."
    ),
    "simultaneous_open_synack": (
        "Simultaneous open: <S>'s kernel received <P>'s SYN while its own SYN was unanswered, "
        "so it answers with a SYN-ACK."
    ),
    "handshake_ack": (
        "<Sc>'s kernel acknowledges <P>'s SYN: the three-way handshake is complete. The client's "
        "connect() returned when the SYN-ACK arrived; the server's accept() can now return this connection."
    ),
    "send_data": "<Sc> called send() (or write()): its kernel sends these {len} bytes to {dst}.",
    "send_data_fin": (
        "<Sc>'s kernel sends its last {len} bytes together with a FIN: the application called send() "
        "and then close() (or shutdown(SHUT_WR))."
    ),
    "data_ack": (
        "<Sc>'s kernel acknowledges data it received; it does so whether or not the application "
        "has called recv() yet (applications never send ACKs themselves)."
    ),
    "fin_ack": (
        "<Sc>'s kernel acknowledges <P>'s FIN. The application will read end-of-file: recv() "
        "returns 0 (b'' in Python)."
    ),
    "window_update": (
        "<Sc>'s kernel announces a larger receive window, usually because the application called "
        "recv() and freed buffer space."
    ),
    "zero_window": (
        "<Sc>'s receive buffer is full (window 0): its application is not calling recv() fast "
        "enough, so <P> must stop sending."
    ),
    "zero_window_probe": (
        "<Pc> advertised a zero window, so <S>'s kernel probes with one byte to learn when it "
        "reopens; no send() call caused this packet."
    ),
    "zero_window_probe_ack": "<Sc>'s kernel answers a zero-window probe; its window is still closed.",
    "keep_alive": (
        "<Sc>'s kernel sends a keep-alive probe (SO_KEEPALIVE): the connection has been idle, and the "
        "probe checks that <P> is still there."
    ),
    "keep_alive_ack": "<Sc>'s kernel answers a keep-alive probe: the connection is still alive.",
    "dup_ack": (
        "<Sc>'s kernel repeats its last acknowledgement because a segment arrived that it cannot use "
        "yet (out of order: earlier data is missing) or already had; three duplicate ACKs make "
        "<P> retransmit at once (fast retransmission)."
    ),
    "retransmission": (
        "<Sc>'s kernel sends data again because it was not acknowledged in time (retransmission "
        "timeout); the application made no call for this."
    ),
    "fast_retransmission": (
        "Duplicate ACKs showed that data was lost, so <S>'s kernel resends it at once, without "
        "waiting for the retransmission timer (fast retransmission)."
    ),
    "spurious_retransmission": (
        "<Sc>'s kernel resent data that <P> had already acknowledged: an unnecessary retransmission."
    ),
    "close_fin": (
        "<Sc> called close() (or shutdown(SHUT_WR)): its kernel sends a FIN to say it will send no "
        "more data. This is the active close, so this side will end in TIME-WAIT."
    ),
    "close_fin_after_peer": (
        "<Sc> read end-of-file (recv() returned 0) after <P>'s FIN and then called close(); its "
        "kernel sends its own FIN (passive close)."
    ),
    "close_fin_ack": (
        "<Sc> called close() after <P>'s FIN arrived; its kernel sends the FIN together with the "
        "acknowledgement of <P>'s FIN (passive close)."
    ),
    "simultaneous_close_fin": (
        "<Sc> also called close() before <P>'s FIN arrived; the two FINs crossed (simultaneous "
        "close), so both sides go through CLOSING and end in TIME-WAIT."
    ),
    "fin_retransmission": "<Sc>'s kernel sends its FIN again because it was not acknowledged in time.",
    "rst_no_listener": (
        "No socket listens on {src}, so <S>'s kernel refuses the connection with a RST; "
        "<P>'s connect() fails with ECONNREFUSED."
    ),
    "rst_abort": (
        "<Sc> aborted the connection: close() with unread received data, or with SO_LINGER set to 0, "
        "makes the kernel send a RST instead of a FIN (and skip TIME-WAIT). <Pc>'s next recv() or "
        "send() fails with ECONNRESET."
    ),
    "rst_after_close": (
        "<Sc>'s application had already closed the socket, and its kernel now resets the connection "
        "(for example data arrived after close(), or the FIN-WAIT-2 timer expired)."
    ),
    "rst_unknown_connection": (
        "<Sc>'s kernel has no connection for the segment it received (already closed, or never "
        "existed), so it answers with a RST."
    ),
    "udp_datagram": (
        "<Sc> called sendto() (or send() on a connected UDP socket): one datagram of {len} bytes, "
        "with no connection, acknowledgement or retransmission."
    ),
    "icmp_port_unreachable": (
        "No socket is bound to the datagram's destination port, so <S>'s kernel answers with ICMP "
        "port unreachable; on a connected UDP socket the sender's next recv() fails with ECONNREFUSED."
    ),
    "icmp_error": (
        "A router or host reports a delivery problem with ICMP (for example TTL exceeded or "
        "destination unreachable); the kernel passes it to the socket as an error."
    ),
    "icmp_message": (
        "An ICMP message that is not an error (for example a ping echo request or reply); it belongs "
        "to no TCP or UDP conversation."
    ),
    "not_transport": (
        "Not TCP, UDP or ICMP (for example ARP resolving an address); no socket call sends this directly."
    ),
    "mid_stream": (
        "The capture starts in the middle of this connection: its handshake was not captured, so "
        "tracer infers from this first packet that both ends are ESTABLISHED."
    ),
}

_ZH: dict[str, str] = {
    "unknown": "无法判断发送这个数据包的原因。",
    "connect_syn": (
        "<S>调用了 connect()：其内核从 {src} 向 {dst} 发送这个 SYN 以建立连接；"
        "connect() 会阻塞，直到握手完成或失败。"
    ),
    "syn_retransmission": "SYN-ACK 没有按时到达，<S>的内核（重传定时器）再次发送 SYN；connect() 仍在等待。",
    "listen_queue_synack": (
        "<S>的内核从调用了 listen() 的套接字的监听队列应答这个 SYN；这一步不需要 accept()，"
        "accept() 也不发送任何数据包。"
    ),
    "synack_retransmission": "握手的最后一个 ACK 没有按时到达，<S>的内核再次发送 SYN-ACK。",
    "simultaneous_open_syn": (
        "<S>也对同一对地址和端口调用了 connect()，它的 SYN 与<P>的 SYN 在网络上交叉（同时打开）。"
    ),
    "simultaneous_open_synack": (
        "同时打开：<S>的内核在自己的 SYN 尚未得到应答时收到了<P>的 SYN，于是回复 SYN-ACK。"
    ),
    "handshake_ack": (
        "<S>的内核确认<P>的 SYN，三次握手完成。客户端的 connect() 在收到 SYN-ACK 时已经返回；"
        "服务器的 accept() 现在可以返回这个连接。"
    ),
    "send_data": "<S>调用了 send()（或 write()）：其内核把这 {len} 字节数据发往 {dst}。",
    "send_data_fin": (
        "<S>的内核把最后 {len} 字节数据和 FIN 一起发送：应用程序先调用了 send()，"
        "然后调用了 close()（或 shutdown(SHUT_WR)）。"
    ),
    "data_ack": (
        "<S>的内核确认收到的数据；无论应用程序是否已经调用 recv()，内核都会发送这个 ACK"
        "（应用程序从不自己发送 ACK）。"
    ),
    "fin_ack": "<S>的内核确认<P>的 FIN。应用程序将读到文件结束：recv() 返回 0（Python 中为 b''）。",
    "window_update": "<S>的内核通告更大的接收窗口，通常是因为应用程序调用了 recv()，腾出了缓冲区空间。",
    "zero_window": "<S>的接收缓冲区已满（窗口为 0）：它的应用程序调用 recv() 不够快，<P>必须暂停发送。",
    "zero_window_probe": (
        "<P>通告了零窗口，<S>的内核用一个字节探测窗口何时重新打开；这个数据包不是 send() 调用引起的。"
    ),
    "zero_window_probe_ack": "<S>的内核应答零窗口探测；它的窗口仍然关闭。",
    "keep_alive": "<S>的内核发送保活探测（SO_KEEPALIVE）：连接已空闲，探测用来检查<P>是否仍然存在。",
    "keep_alive_ack": "<S>的内核应答保活探测：连接仍然有效。",
    "dup_ack": (
        "<S>的内核重复上一个确认号：收到的报文段暂时无法使用（乱序，前面的数据缺失）或者已经收到过；"
        "三个重复 ACK 会使<P>立即重传（快速重传）。"
    ),
    "retransmission": "数据没有按时得到确认（重传超时），<S>的内核再次发送；应用程序没有为此调用任何函数。",
    "fast_retransmission": "重复 ACK 表明数据丢失，<S>的内核不等重传定时器就立即重发（快速重传）。",
    "spurious_retransmission": "<S>的内核重发了<P>已经确认过的数据：这是一次不必要的重传。",
    "close_fin": (
        "<S>调用了 close()（或 shutdown(SHUT_WR)）：其内核发送 FIN，表示不再发送数据。"
        "这是主动关闭，这一端最终会进入 TIME-WAIT。"
    ),
    "close_fin_after_peer": (
        "<S>在<P>的 FIN 之后读到文件结束（recv() 返回 0），然后调用 close()；"
        "其内核发送自己的 FIN（被动关闭）。"
    ),
    "close_fin_ack": "<S>在<P>的 FIN 到达后调用 close()；其内核发送 FIN，同时确认<P>的 FIN（被动关闭）。",
    "simultaneous_close_fin": (
        "<S>在<P>的 FIN 到达之前也调用了 close()；两个 FIN 在网络上交叉（同时关闭），"
        "双方都会经过 CLOSING 并进入 TIME-WAIT。"
    ),
    "fin_retransmission": "FIN 没有按时得到确认，<S>的内核再次发送 FIN。",
    "rst_no_listener": (
        "{src} 上没有套接字在监听，<S>的内核用 RST 拒绝连接；<P>的 connect() 失败，返回 ECONNREFUSED。"
    ),
    "rst_abort": (
        "<S>中止了连接：在还有未读数据时调用 close()，或把 SO_LINGER 设为 0 后调用 close()，"
        "内核会发送 RST 而不是 FIN（也不进入 TIME-WAIT）。"
        "<P>随后的 recv() 或 send() 会失败，返回 ECONNRESET。"
    ),
    "rst_after_close": (
        "<S>的应用程序已经关闭了套接字，其内核现在重置连接"
        "（例如 close() 之后又收到数据，或 FIN-WAIT-2 超时）。"
    ),
    "rst_unknown_connection": "<S>的内核没有收到的报文段所属的连接（已经关闭或从未存在），因此回复 RST。",
    "udp_datagram": (
        "<S>调用了 sendto()（或在已连接的 UDP 套接字上调用 send()）：一个 {len} 字节的数据报，"
        "没有连接、确认或重传。"
    ),
    "icmp_port_unreachable": (
        "数据报的目的端口上没有绑定套接字，<S>的内核回复 ICMP 端口不可达；"
        "如果发送方使用已连接的 UDP 套接字，它的下一次 recv() 会失败，返回 ECONNREFUSED。"
    ),
    "icmp_error": (
        "路由器或主机用 ICMP 报告投递问题（例如 TTL 超时或目的不可达）；内核把它作为错误交给套接字。"
    ),
    "icmp_message": "不是差错报文的 ICMP 消息（例如 ping 的回显请求或应答）；它不属于任何 TCP 或 UDP 会话。",
    "not_transport": "不是 TCP、UDP 或 ICMP（例如用于解析地址的 ARP）；没有套接字调用直接发送它。",
    "mid_stream": (
        "抓包开始时这个连接已经在进行：握手没有被捕获，"
        "因此根据这第一个数据包推断两端都处于 ESTABLISHED。"
    ),
}

_TEXTS: dict[str, dict[str, str]] = {"en": _EN, "zh": _ZH}

_STATE_ZH: dict[TcpState, str] = {
    TcpState.UNKNOWN: "未知",
    TcpState.CLOSED: "关闭",
    TcpState.LISTEN: "监听",
    TcpState.SYN_SENT: "同步已发送",
    TcpState.SYN_RECEIVED: "同步已接收",
    TcpState.ESTABLISHED: "已建立",
    TcpState.FIN_WAIT_1: "终止等待 1",
    TcpState.FIN_WAIT_2: "终止等待 2",
    TcpState.CLOSING: "同时关闭",
    TcpState.TIME_WAIT: "时间等待",
    TcpState.CLOSE_WAIT: "关闭等待",
    TcpState.LAST_ACK: "最后确认",
}


def _lang(lang: str) -> str:
    return lang if lang in _TEXTS else "en"


def _side(side: Side | int) -> Side:
    try:
        return Side(int(side))
    except (TypeError, ValueError):
        return Side.NONE


@cache
def _template(reason: str, side: Side, lang: str) -> str:
    texts = _TEXTS[lang]
    text = texts.get(reason) or texts["unknown"]
    sender, peer = _NOUNS[lang][side]
    return (
        text.replace("<Sc>", sender[:1].upper() + sender[1:])
        .replace("<Pc>", peer[:1].upper() + peer[1:])
        .replace("<S>", sender)
        .replace("<P>", peer)
    )


def template(reason: str, side: Side | int, lang: str) -> str:
    """The ``str.format`` template for ``reason`` sent by ``side``, in ``lang``.

    Unknown reasons get the "unknown" text and unknown languages English, so a
    bad value never raises.
    """
    return _template(reason, _side(side), _lang(lang))


class _Values(dict[str, object]):
    """Format values where an absent placeholder prints as "?"."""

    def __missing__(self, key: str) -> object:
        return "?"


def explain(reason: str, side: Side | int, lang: str, **values: object) -> str:
    """One or two sentences saying why a packet with this cause exists."""
    return template(reason, side, lang).format_map(_Values(values))


def state_name(state: TcpState | int, lang: str) -> str:
    """The RFC 9293 name of ``state`` ("TIME-WAIT"); in Chinese with a translation."""
    try:
        st = TcpState(int(state))
    except (TypeError, ValueError):
        st = TcpState.UNKNOWN
    name = st.name.replace("_", "-")
    if _lang(lang) == "zh":
        return f"{name}（{_STATE_ZH[st]}）"
    return name


# A few words per reason, for ladder rows and lists (the sentences are above).
LABELS: dict[str, tuple[str, str]] = {
    "unknown": ("cause unknown", "原因未知"),
    "connect_syn": ("SYN opening a connection", "发起连接的 SYN"),
    "syn_retransmission": ("SYN retransmitted", "SYN 重传"),
    "listen_queue_synack": ("SYN-ACK from the listen queue", "监听队列回应 SYN-ACK"),
    "synack_retransmission": ("SYN-ACK retransmitted", "SYN-ACK 重传"),
    "simultaneous_open_syn": ("simultaneous-open SYN", "同时打开的 SYN"),
    "simultaneous_open_synack": ("simultaneous-open SYN-ACK", "同时打开的 SYN-ACK"),
    "handshake_ack": ("last ACK of the handshake", "握手的最后一个 ACK"),
    "send_data": ("data", "发送数据"),
    "send_data_fin": ("data and FIN", "发送数据并 FIN"),
    "data_ack": ("ACK of data", "确认数据"),
    "fin_ack": ("ACK of the peer's FIN", "确认对方的 FIN"),
    "window_update": ("window update", "窗口更新"),
    "zero_window": ("zero window", "零窗口"),
    "zero_window_probe": ("zero-window probe", "零窗口探测"),
    "zero_window_probe_ack": ("ACK of a zero-window probe", "零窗口探测的确认"),
    "keep_alive": ("keep-alive probe", "保活探测"),
    "keep_alive_ack": ("ACK of a keep-alive", "保活探测的确认"),
    "dup_ack": ("duplicate ACK", "重复 ACK"),
    "retransmission": ("retransmission", "重传"),
    "fast_retransmission": ("fast retransmission", "快速重传"),
    "spurious_retransmission": ("spurious retransmission", "虚假重传"),
    "close_fin": ("FIN of the active close", "主动关闭的 FIN"),
    "close_fin_after_peer": ("FIN of the passive close", "被动关闭的 FIN"),
    "close_fin_ack": ("FIN of the passive close (with ACK)", "被动关闭的 FIN（带 ACK）"),
    "simultaneous_close_fin": ("simultaneous-close FIN", "同时关闭的 FIN"),
    "fin_retransmission": ("FIN retransmitted", "FIN 重传"),
    "rst_no_listener": ("RST: no listener", "无监听者，回复 RST"),
    "rst_abort": ("RST: abortive close", "异常关闭的 RST"),
    "rst_after_close": ("RST: data after close", "关闭后收到数据，回复 RST"),
    "rst_unknown_connection": ("RST: unknown connection", "未知连接的 RST"),
    "udp_datagram": ("UDP datagram", "UDP 数据报"),
    "icmp_port_unreachable": ("ICMP port unreachable", "ICMP 端口不可达"),
    "icmp_error": ("ICMP error", "ICMP 差错"),
    "icmp_message": ("ICMP message", "ICMP 消息"),
    "not_transport": ("not TCP/UDP", "非传输层帧"),
    "mid_stream": ("capture starts mid-connection", "连接中途开始捕获"),
}


def label(reason: str, lang: str) -> str:
    """A few words for ``reason`` in ``lang`` (the snake_case name for an unlabelled one)."""
    pair = LABELS.get(reason)
    if pair is None:
        return reason.replace("_", " ")
    return pair[1] if _lang(lang) == "zh" else pair[0]


def reasons_missing_text() -> list[tuple[str, str]]:
    """(lang, reason) pairs without a text; empty when every reason is explained."""
    return [(lang, r) for lang in LANGS for r in REASONS if not _TEXTS[lang].get(r)]
