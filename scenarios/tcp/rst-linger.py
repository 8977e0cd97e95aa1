"""Abortive close: SO_LINGER {on, 0} makes close() send RST; no FIN, no TIME_WAIT."""

import socket
import struct

TITLE = {"en": "Abortive close: SO_LINGER with a zero timeout sends RST",
         "zh": "中止式关闭：超时为 0 的 SO_LINGER 发出 RST"}
DESCRIPTION = {
    "en": "After one request and reply, the client sets SO_LINGER to {on, 0 s} and closes: its "
          "kernel sends a RST instead of a FIN and forgets the connection at once. The server's "
          "recv() fails with ECONNRESET. No FIN exchange, and no TIME_WAIT on either side.",
    "zh": "一次请求和应答之后，客户端把 SO_LINGER 设为 {开启, 0 秒} 并关闭：它的内核发出 RST 而不是 FIN，"
          "并立即丢弃这个连接。服务器的 recv() 以 ECONNRESET 失败。没有 FIN 交换，双方都没有 TIME_WAIT。",
}
NOTICE = {
    "en": ["With SO_LINGER {on, 0}, close() aborts: one RST replaces the FIN/ACK exchange.",
           "The client closed first yet has no TIME-WAIT: the mark after the RST shows no socket "
           "left for this connection on either host, only the server's listener.",
           "The server's recv() fails with ECONNRESET, so the peer can tell an abort from a "
           "normal end of file (recv() = 0).",
           "It is a way to skip TIME-WAIT, but an abort: data still unsent is thrown away, and "
           "TIME-WAIT's protection against old duplicate segments is lost."],
    "zh": ["设置 SO_LINGER {开启, 0} 后，close() 执行中止：一个 RST 取代了 FIN/ACK 交换。",
           "客户端先关闭，却没有 TIME-WAIT：RST 之后的标记显示两台主机上都不再有这个连接的套接字，"
           "只剩服务器的监听套接字。",
           "服务器的 recv() 以 ECONNRESET 失败，所以对方能区分中止与正常的文件结束（recv() = 0）。",
           "这是一种跳过 TIME-WAIT 的方法，但它是中止：尚未发送的数据会被丢弃，"
           "TIME-WAIT 对旧的重复报文段的保护也没有了。"],
}
PROTO = "tcp"
PORT = 7808
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=5    sendall()
s > c  .       kernel:data_ack
s > c  P?.  len=5    sendall()
c > s  .       kernel:data_ack
c      setsockopt()                             # SO_LINGER {1, 0}
c > s  R.      close()          c=CLOSED   s=CLOSED    # no FIN, no TIME-WAIT
s      recv() = ECONNRESET
"""


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    request = conn.recv(1024)
    conn.sendall(request.upper())
    try:
        conn.recv(1024)
    except ConnectionResetError as e:  # ECONNRESET: the client aborted
        print("recv() failed:", e)
    mark("after the RST")  # no TIME-WAIT anywhere: only the listener is left
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"hello")
    s.recv(1024)
    # l_onoff = 1, l_linger = 0 s: close() will abort the connection
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
