"""TCP uppercase echo: one recv() is not one message (TCP is a byte stream)."""

import socket
import time

TITLE = {"en": "TCP uppercase echo: one recv() may return only part of a message",
         "zh": "TCP 大写回显：一次 recv() 可能只返回消息的一部分"}
DESCRIPTION = {
    "en": "The client sends the message \"hello, world\" in two sendall() calls 0.1 s apart. "
          "The naive server calls recv() once, gets only \"hello, \", upper-cases it and sends "
          "it back: \"world\" arrives later and is never upper-cased.",
    "zh": "客户端分两次 sendall() 发送消息 \"hello, world\"，中间间隔 0.1 秒。"
          "简单的服务器只调用一次 recv()，只得到 \"hello, \"，把它转成大写后发回："
          "\"world\" 稍后才到达，从未被转成大写。",
}
NOTICE = {
    "en": ["TCP carries a stream of bytes, not messages: the server's first recv() returns 7 "
           "bytes, only what had arrived, not the 12 bytes the client meant as one message.",
           "Each sendall() here is its own segment; recv() returns as soon as any bytes are "
           "there, so where the reader's data is cut depends on timing, not on the sender's intent.",
           "The fix: call recv() in a loop until the whole message is there, which needs a framing "
           "rule (a length prefix, a delimiter such as \"\\n\", or reading until EOF).",
           "The same holds for the client: its single recv() gets the 7 upper-cased bytes, not a "
           "whole reply."],
    "zh": ["TCP 传输的是字节流而不是消息：服务器的第一次 recv() 只返回已到达的 7 个字节，"
           "而不是客户端本意作为一条消息的 12 个字节。",
           "这里每次 sendall() 各成一个数据段；只要有字节到达 recv() 就返回，"
           "所以读取端的数据在哪里被切开取决于时序，而不是发送方的意图。",
           "解决方法：循环调用 recv() 直到整条消息到齐，这需要一个分帧规则"
           "（长度前缀、\"\\n\" 之类的分隔符，或一直读到 EOF）。",
           "客户端也一样：它唯一的一次 recv() 得到的是 7 个大写字节，而不是完整的应答。"],
}
PROTO = "tcp"
PORT = 7801
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=7    sendall()                  # "hello, "
s > c  .       kernel:data_ack
s      recv() = 7                               # only what has arrived: not the whole message
s > c  P?.  len=7    sendall()                  # "HELLO, "
c > s  .       kernel:data_ack
c > s  P?.  len=5    sendall()                  # "world", 0.1 s later
s > c  .       kernel:data_ack  x0-1            # delayed ACK: usually merged into the FIN
s      recv() = 5                               # the rest, read but never upper-cased
s > c  F.      close()
c > s  .       kernel:fin_ack   x0-1            # alone only if close() comes late; usually in the FIN
c      recv() = 0
c > s  F.      close()
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    data = conn.recv(1024)  # naive: assumes one recv() = one message
    conn.sendall(data.upper())
    conn.recv(1024)  # b"world": the rest of the message, never upper-cased
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"hello, ")  # one message, "hello, world", written in two parts
    time.sleep(0.1)
    s.sendall(b"world")
    print(s.recv(1024))  # b"HELLO, ", not b"HELLO, WORLD"
    s.recv(1024)  # b"": the server closed
    s.close()
