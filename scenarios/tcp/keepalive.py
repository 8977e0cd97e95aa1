"""TCP keep-alive with 1 s timers: an idle connection is probed every second; the peer's kernel answers."""

import socket
import time

TITLE = {"en": "Keep-alive: probes on an idle connection, answered by the peer's kernel",
         "zh": "保活（keep-alive）：空闲连接上的探测，由对方内核应答"}
DESCRIPTION = {
    "en": "The client turns on SO_KEEPALIVE with 1 s timers, sends a greeting and then stays silent "
          "for 3.5 s.  After each second of silence its kernel sends a keep-alive probe, an empty "
          "segment that repeats the last byte already acknowledged; the server's kernel answers each "
          "with an ACK while the server itself sleeps in recv().",
    "zh": "客户端以 1 秒的定时器打开 SO_KEEPALIVE，发送一句问候，然后沉默 3.5 秒。"
          "每沉默一秒，客户端内核就发送一个保活探测：一个不带数据、序号指向已被确认的最后一个字节的报文段；"
          "服务器内核对每个探测回一个 ACK，而服务器程序本身一直阻塞在 recv() 中。",
}
NOTICE = {
    "en": ["Keep-alive is off by default and, when on, waits 2 hours (tcp_keepalive_time 7200 s) "
           "before the first probe; TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT set it per socket, "
           "here to 1 s, 1 s and 3.",
           "A probe carries no data and uses sequence number SND.NXT - 1, a byte the peer already "
           "has, so the peer must answer with an ACK (RFC 1122 4.2.3.6).  tshark flags the pair as "
           "[keep-alive] and [keep-alive ACK].",
           "The answers come from the server's kernel: recv() stays blocked and the application "
           "never sees the probes.  The connection carries no data, yet the client learns the peer "
           "is still there.",
           "An answered probe restarts the idle timer, so probes come every TCP_KEEPIDLE (1 s here).  "
           "TCP_KEEPINTVL only spaces unanswered probes; after TCP_KEEPCNT of them the kernel drops "
           "the connection and the next call fails with ETIMEDOUT."],
    "zh": ["保活默认是关闭的；打开后也要等 2 小时（tcp_keepalive_time 7200 秒）才发第一个探测。"
           "TCP_KEEPIDLE、TCP_KEEPINTVL 和 TCP_KEEPCNT 可以按套接字设置，这里分别设为 1 秒、1 秒和 3 次。",
           "探测不带数据，序号为 SND.NXT - 1，即对方已经收到的一个字节，所以对方必须回一个 ACK"
           "（RFC 1122 4.2.3.6）。tshark 把这一对报文标为 [keep-alive] 和 [keep-alive ACK]。",
           "应答来自服务器内核：recv() 一直阻塞，应用程序完全看不到这些探测。"
           "连接上没有任何数据，客户端却知道了对方仍然在线。",
           "得到应答的探测会重新开始空闲计时，所以探测每隔 TCP_KEEPIDLE（这里是 1 秒）出现一次。"
           "TCP_KEEPINTVL 只决定未得到应答的探测之间的间隔；连续 TCP_KEEPCNT 个探测都没有应答时，"
           "内核断开连接，下一次调用以 ETIMEDOUT 失败。"],
}
PROTO = "tcp"
PORT = 7825
TIMEOUT = 8
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=2    sendall()
s > c  .       kernel:data_ack
c > s  .   len=0   dt>=0.9  dt<=1.5  [keep_alive]  kernel:keep_alive       # 1 s of silence: a probe
s > c  .   len=0   [keep_alive_ack]  kernel:keep_alive_ack                 # from the server's kernel
c > s  .   len=0   dt>=0.9  dt<=1.5  [keep_alive]  kernel:keep_alive
s > c  .   len=0   [keep_alive_ack]  kernel:keep_alive_ack
c > s  .   len=0   dt>=0.9  dt<=1.5  [keep_alive]  kernel:keep_alive
s > c  .   len=0   [keep_alive_ack]  kernel:keep_alive_ack
c > s  F.      close()
s      recv() = 0                                  # blocked through all the probes
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.recv(1024)  # b"hi"
    conn.recv(1024)  # b"": blocks through the idle time until the client closes
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)  # first probe after 1 s idle (default 7200)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)  # 1 s between unanswered probes (default 75)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)  # give up after 3 unanswered probes (default 9)
    s.connect((host, port))
    s.sendall(b"hi")
    time.sleep(3.5)  # idle: no call, no data
    s.close()
