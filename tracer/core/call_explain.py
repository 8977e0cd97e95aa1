"""One plain-language sentence for a socket call, in English and Simplified Chinese.

Packets are explained by their cause (``tracer.core.explain``); a call row needs its
own sentence, above all for the calls that send nothing (listen, accept, recv),
which course diagrams most often get wrong.  Pure: a call in, a sentence out.
"""

from __future__ import annotations

from tracer.core.model import SocketCall

# (call, outcome) -> sentence; outcome is "ok", "eof", "error" or "" (any).
_EN: dict[tuple[str, str], str] = {
    ("socket", ""): "socket() only creates a socket in the kernel and returns its descriptor; "
    "nothing is sent.",
    ("bind", "ok"): "bind() gives the socket its local address and port; nothing is sent.",
    ("bind", "error"): "bind() failed with {errno}: that address and port cannot be used now "
    "(often another socket holds it).",
    ("listen", ""): "listen() turns the socket into a listening socket: from now on the kernel "
    "itself answers incoming SYNs and queues finished connections; nothing is sent.",
    ("accept", "ok"): "accept() only takes a connection the kernel already completed (the handshake "
    "is over) from the listen queue and returns a new socket for it; it sends nothing.",
    ("accept", "error"): "accept() failed with {errno}; no packet is involved.",
    ("connect", "ok"): "connect() returned: the handshake its SYN started is complete.",
    ("connect", "error"): "connect() failed with {errno}: the kernel gave up on the connection.",
    ("send", "ok"): "send() copied the data into the kernel's send buffer; the kernel sends it "
    "when it can.",
    ("send", "error"): "send() failed with {errno}: the connection can no longer carry data.",
    ("sendto", "ok"): "sendto() handed one datagram to the kernel.",
    ("sendto", "error"): "sendto() failed with {errno}.",
    ("recv", "ok"): "recv() returned data that had already arrived and been acknowledged by the "
    "kernel; recv() itself sends nothing.",
    ("recv", "eof"): "recv() returned 0: the peer's FIN arrived, so there is no more data "
    "(end of file); nothing is sent.",
    ("recv", "error"): "recv() failed with {errno}: the kernel reports what happened to the "
    "connection; nothing is sent.",
    ("recvfrom", "ok"): "recvfrom() returned one datagram that had already arrived, with its "
    "sender's address; nothing is sent.",
    ("recvfrom", "error"): "recvfrom() failed with {errno}: the kernel reports an earlier error "
    "(such as an ICMP message) to the socket.",
    ("shutdown", ""): "shutdown() closes one direction of the connection.",
    ("close", ""): "close() releases the descriptor; if data or a FIN must be sent, the kernel does it.",
    ("setsockopt", ""): "setsockopt() changes an option of the socket in the kernel; nothing is sent.",
    ("settimeout", ""): "settimeout() is Python's: it only sets how long later calls may block.",
    ("setblocking", ""): "setblocking() is Python's: it only sets whether later calls may block.",
    ("getsockname", ""): "getsockname() asks the kernel for the socket's local address; "
    "nothing is sent.",
    ("getpeername", ""): "getpeername() asks the kernel for the peer's address; nothing is sent.",
    ("", "error"): "{call}() failed with {errno}.",
    ("", ""): "{call}() returned {result}.",
}

_ZH: dict[tuple[str, str], str] = {
    ("socket", ""): "socket() 只在内核中创建一个套接字并返回其描述符；不发送任何数据包。",
    ("bind", "ok"): "bind() 为套接字指定本地地址和端口；不发送任何数据包。",
    ("bind", "error"): "bind() 失败（{errno}）：这个地址和端口现在不能使用（通常被另一个套接字占用）。",
    ("listen", ""): "listen() 把套接字变成监听套接字：此后由内核自己应答到来的 SYN 并把建立好的连接"
    "放入队列；不发送任何数据包。",
    ("accept", "ok"): "accept() 只是从监听队列中取出内核已经完成握手的连接，并为它返回一个新套接字；"
    "它不发送任何数据包。",
    ("accept", "error"): "accept() 失败（{errno}）；与数据包无关。",
    ("connect", "ok"): "connect() 返回：它的 SYN 开始的三次握手已经完成。",
    ("connect", "error"): "connect() 失败（{errno}）：内核放弃了这个连接。",
    ("send", "ok"): "send() 把数据复制到内核的发送缓冲区；内核在可以的时候发送它。",
    ("send", "error"): "send() 失败（{errno}）：这个连接已不能再传送数据。",
    ("sendto", "ok"): "sendto() 把一个数据报交给内核。",
    ("sendto", "error"): "sendto() 失败（{errno}）。",
    ("recv", "ok"): "recv() 返回的是早已到达并已由内核确认的数据；recv() 本身不发送任何数据包。",
    ("recv", "eof"): "recv() 返回 0：对方的 FIN 已到达，不会再有数据（文件结束）；不发送任何数据包。",
    ("recv", "error"): "recv() 失败（{errno}）：内核报告连接发生了什么；不发送任何数据包。",
    ("recvfrom", "ok"): "recvfrom() 返回一个早已到达的数据报及其发送方地址；不发送任何数据包。",
    ("recvfrom", "error"): "recvfrom() 失败（{errno}）：内核把先前的错误（例如一个 ICMP 报文）报告给套接字。",
    ("shutdown", ""): "shutdown() 关闭连接的一个方向。",
    ("close", ""): "close() 释放描述符；如果还需要发送数据或 FIN，由内核完成。",
    ("setsockopt", ""): "setsockopt() 修改内核中套接字的一个选项；不发送任何数据包。",
    ("settimeout", ""): "settimeout() 是 Python 的功能：只设定之后的调用最多阻塞多久。",
    ("setblocking", ""): "setblocking() 是 Python 的功能：只设定之后的调用是否阻塞。",
    ("getsockname", ""): "getsockname() 向内核查询套接字的本地地址；不发送任何数据包。",
    ("getpeername", ""): "getpeername() 向内核查询对方的地址；不发送任何数据包。",
    ("", "error"): "{call}() 失败（{errno}）。",
    ("", ""): "{call}() 返回 {result}。",
}

# Python's wrappers (and the other system calls that do the same) -> the call they stand for.
SAME_AS = {"connect_ex": "connect", "sendall": "send", "recv_into": "recv", "recvfrom_into": "recvfrom",
            "recvmsg": "recv", "sendmsg": "send", "read": "recv", "write": "send", "accept4": "accept"}


def same_as(call: str) -> str:
    """The call ``call`` does the work of: ``sendall`` -> ``send``, ``connect_ex`` -> ``connect``."""
    return SAME_AS.get(call, call)


def outcome(c: SocketCall) -> str:
    """``error``, ``eof`` (a recv that returned 0) or ``ok``."""
    if c.error is not None:
        return "error"
    name = same_as(c.call)
    if name == "recv" and c.result == "0":
        return "eof"
    return "ok"


def explain_call(c: SocketCall, lang: str = "en") -> str:
    """The sentence for call ``c`` in ``lang`` ("en" or "zh")."""
    table = _ZH if lang == "zh" else _EN
    name = same_as(c.call)
    out = outcome(c)
    for key in ((name, out), (name, ""), ("", "error" if out == "error" else "")):
        if key in table:
            return table[key].format(call=c.call, errno=c.error or "", result=c.result or "")
    raise AssertionError("unreachable: the table has catch-all rows")  # pragma: no cover
