"""TCP hello: the client sends a greeting, the server replies, both close.

A scenario is a file with ``TITLE``, ``DESCRIPTION`` (English and Simplified
Chinese), ``PROTO`` ("tcp" or "udp"), ``PORT``, and two functions: ``server(host,
port)`` runs in the server's namespace and ``client(host, port)`` in the
client's, once the server listens on ``PORT``.  ``host`` is the server's address.
A part that takes a third parameter, ``mark``, may call ``mark("label")``: tracer
then records the kernel's socket states (as ``ss -tan`` shows them) at that point.
"""

import socket

TITLE = {"en": "TCP hello: handshake, one request, one reply, close",
         "zh": "TCP 问候：三次握手、一次请求、一次应答、关闭"}
DESCRIPTION = {
    "en": "The client connects, sends a greeting and reads the reply; the server accepts, "
          "reads, replies; the client closes first, so it ends in TIME_WAIT.",
    "zh": "客户端连接、发送问候并读取应答；服务器 accept、读取、应答；"
          "客户端先关闭，所以它最后处于 TIME_WAIT。",
}
NOTICE = {
    "en": ["The SYN-ACK comes from the server's kernel before accept() returns: accept() only "
           "takes a finished connection from the queue.",
           "Each sendall() is one data segment; the peer's kernel ACKs it, not its recv().",
           "close() sends the FIN; the side that closes first ends in TIME-WAIT."],
    "zh": ["SYN-ACK 由服务器内核在 accept() 返回之前发出：accept() 只是从队列中取出已完成的连接。",
           "每次 sendall() 是一个数据段；确认它的是对方内核，而不是对方的 recv()。",
           "close() 发出 FIN；先关闭的一方最后处于 TIME-WAIT。"],
}
PROTO = "tcp"
PORT = 7777
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
s      accept()                                 # returns after the handshake
c > s  P?.  len=6    sendall()
s > c  .       kernel:data_ack
s      recv() = 6
s > c  P?.  len=13   sendall()
c > s  .       kernel:data_ack
c > s  F.      close()
s      recv() = 0                               # end of file: the peer closed
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    request = conn.recv(1024)
    conn.sendall(b"hello, " + request)
    conn.recv(1024)  # b"": the client closed
    conn.close()
    listener.close()


def client(host, port, mark):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    mark("connected")  # both kernels: ESTABLISHED, before any data
    s.sendall(b"client")
    s.recv(1024)
    s.close()
