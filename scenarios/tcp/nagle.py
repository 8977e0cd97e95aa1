"""Nagle's algorithm vs TCP_NODELAY: small writes coalesce while an ACK is outstanding."""

import socket
import time

TITLE = {"en": "Nagle's algorithm vs TCP_NODELAY: five small send() calls, twice",
         "zh": "Nagle 算法与 TCP_NODELAY：两轮各五次小的 send() 调用"}
DESCRIPTION = {
    "en": "After one quick request and reply, the client makes five 10-byte send() calls, twice: "
          "first with Nagle's algorithm (the default), then with TCP_NODELAY.  With Nagle only the "
          "first write leaves at once; the other four wait in the client's kernel for its ACK, "
          "which the server's kernel delays about 40 ms, and then travel as one 40-byte segment.  "
          "With TCP_NODELAY the five writes are five segments, sent at once.",
    "zh": "在一次快速的请求和应答之后，客户端分两轮各调用五次 send()，每次 10 字节："
          "第一轮使用 Nagle 算法（默认），第二轮使用 TCP_NODELAY。使用 Nagle 时只有第一次写入立即发出；"
          "其余四次在客户端内核中等待第一段的 ACK，而服务器内核把这个 ACK 推迟了约 40 毫秒，"
          "之后它们合成一个 40 字节的数据段发出。使用 TCP_NODELAY 时，五次写入就是立即发出的五个数据段。",
}
NOTICE = {
    "en": ["Nagle's algorithm (RFC 896, on by default) holds small writes back while sent data is "
           "still unacknowledged, and merges them.  The first send() leaves at once; the next four "
           "return at once too, but their bytes wait in the client's kernel.",
           "They wait for an ACK that the server's kernel delays: after its quick \"hi\" reply it "
           "treats the connection as interactive and holds ACKs up to 40 ms, hoping to carry them on "
           "a reply.  Nagle plus delayed ACK is the classic 40 ms stall; then the four writes travel "
           "as one 40-byte segment.",
           "With TCP_NODELAY every send() is its own segment at once: five 10-byte segments, each "
           "with about 50 bytes of headers, but no waiting.  The server now ACKs each at once: the "
           "delayed ACK that fired took its kernel out of interactive mode.",
           "Without a delayed ACK Nagle changes nothing on a fast link: at the start of a connection "
           "Linux ACKs the first segments at once (quick ACKs), and the ACK is back before the next "
           "send().  Rather than TCP_NODELAY, build the message and send it with one sendall()."],
    "zh": ["Nagle 算法（RFC 896，默认开启）在已发送的数据尚未被确认时扣住小的写入，并把它们合并。"
           "第一次 send() 立即发出；后四次 send() 也立即返回，但它们的字节在客户端内核中等待。",
           "它们在等待一个被服务器内核推迟的 ACK：服务器很快回复了 \"hi\"，此后它的内核把连接视为交互式，"
           "把 ACK 最多推迟 40 毫秒，希望能搭在应答上一起发出。Nagle 加上延迟确认就是经典的 40 毫秒停顿；"
           "之后四次写入合成一个 40 字节的数据段发出。",
           "使用 TCP_NODELAY 时，每次 send() 都立即成为一个独立的数据段：五个 10 字节的数据段，"
           "每个都带着约 50 字节的首部，但没有等待。这时服务器对每一段都立即确认："
           "那次到期的延迟确认定时器让它的内核退出了交互模式。",
           "没有延迟确认时，在快速链路上 Nagle 不起作用：连接刚开始时 Linux 会立即确认最初的几个数据段"
           "（快速确认），ACK 在下一次 send() 之前就回来了。与其使用 TCP_NODELAY，"
           "不如先组好整条消息，再用一次 sendall() 发出。"],
}
PROTO = "tcp"
PORT = 7827
TIMEOUT = 5
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=5    sendall()                      # "hello"
s > c  .       kernel:data_ack
s > c  P?.  len=2    sendall()                      # "hi" at once: now an interactive connection
c > s  .       kernel:data_ack
c > s  P?.  len=10   send()                         # round 1, Nagle: only the first write leaves
s > c  .       dt>=0.03  dt<=0.25  kernel:data_ack  # the server's delayed ACK, ~40 ms later
c > s  P?.  len=40   dt<=0.01  send()               # the four held-back writes, in one segment
s > c  .       kernel:data_ack
s > c  P?.  len=2    sendall()                      # "ok"
c > s  P?.  len=10   send()                         # round 2, TCP_NODELAY: every write at once
s > c  .       kernel:data_ack
c > s  P?.  len=10   send()
s > c  .       kernel:data_ack
c > s  P?.  len=10   send()
s > c  .       kernel:data_ack
c > s  P?.  len=10   send()
s > c  .       kernel:data_ack
c > s  P?.  len=10   send()
s > c  .       kernel:data_ack
s > c  P?.  len=2    sendall()                      # "ok"
c > s  F.      close()
s      recv() = 0
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.recv(1024)  # b"hello"
    conn.sendall(b"hi")  # a quick reply: the kernel now takes the connection as interactive
    for _ in range(2):  # round 1: Nagle; round 2: TCP_NODELAY
        time.sleep(0.1)  # busy: the small writes arrive while nobody reads
        got = b""
        while len(got) < 50:
            got += conn.recv(1024)
        conn.sendall(b"ok")
    conn.recv(1024)  # b"": the client closed
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"hello")
    s.recv(1024)
    for nodelay in (0, 1):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)  # 0: Nagle's algorithm (the default)
        for _ in range(5):
            s.send(b"0123456789")  # ten bytes: far less than a full segment
        s.recv(1024)  # b"ok"
    s.close()
