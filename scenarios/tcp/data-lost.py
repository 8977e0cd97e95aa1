"""Lost data segments: resent by a timer when nothing follows, by fast retransmission when more data does."""

import socket
import time

TITLE = {"en": "Lost data: resend by timer, and fast retransmission after duplicate ACKs",
         "zh": "数据丢失：定时器重传，以及重复 ACK 之后的快速重传"}
DESCRIPTION = {
    "en": "Two losses in one connection (IMPAIR drops them at the server).  Phase 1: the client "
          "sends one small segment and nothing after it; it is lost, and a timer resends it about "
          "0.2 s later.  Phase 2: the client sends nine segments at once and the third is lost; "
          "segments 4 to 9 each draw a duplicate ACK, and the client resends segment 3 at once: a "
          "fast retransmission.",
    "zh": "同一个连接中的两次丢包（IMPAIR 在服务器端丢弃它们）。第一阶段：客户端发送一个小数据段，"
          "之后不再发送；它丢失了，约 0.2 秒后由定时器重发。第二阶段：客户端一次发送九个数据段，"
          "第三个丢失；第 4 到第 9 段各自引出一个重复 ACK，客户端立即重发第 3 段：快速重传。",
}
NOTICE = {
    "en": ["Phase 1: the lost segment is the last one sent, so no later segment can reveal the gap; "
           "only a timer can.  On Linux that timer is a tail loss probe (RACK-TLP, RFC 8985), not "
           "the RTO: with one segment in flight it waits 2 x RTT + 200 ms (room for the peer's "
           "delayed ACK), about 0.2 s here, and resends the last segment (the kernel counts "
           "TCPLossProbes 1, TCPTimeouts 0).  The RTO stays the last resort.",
           "Phase 2: segments 4-9 arrive after a hole, so the receiver ACKs each at once with the "
           "same ACK number, the first byte it is missing: duplicate ACKs (their SACK blocks tell what "
           "did arrive).",
           "The sender resends segment 3 without waiting for any timer: a fast retransmission "
           "(RFC 5681 acts after 3 duplicate ACKs).  Here all six come first because the client's "
           "kernel reads ACKs only when sendall() lets go of the socket.",
           "The receiver kept segments 4-9; one ACK after the resend covers all nine, and recv() "
           "returns all 4392 bytes in order.  The application sees no loss, only a delay."],
    "zh": ["第一阶段：丢失的是最后发出的数据段，没有后续数据段能暴露这个缺口，只有定时器能发现。"
           "在 Linux 上这个定时器是尾部丢失探测（RACK-TLP，RFC 8985），而不是 RTO："
           "只有一个数据段在途时它等待 2 x RTT + 200 毫秒（给对方的延迟确认留出时间），"
           "这里约 0.2 秒，然后重发最后一个数据段（内核计数 TCPLossProbes 为 1，TCPTimeouts 为 0）。"
           "RTO 仍是最后的手段。",
           "第二阶段：第 4-9 段在一个缺口之后到达，所以接收方对每一段都立即回复相同的确认号，"
           "即它缺少的第一个字节：重复 ACK（其中的 SACK 块说明哪些数据已经到达）。",
           "发送方不等任何定时器就重发第 3 段：快速重传（RFC 5681 在 3 个重复 ACK 之后行动）。"
           "这里六个重复 ACK 都先到，因为客户端内核要等 sendall() 放开套接字后才处理 ACK。",
           "接收方保留了第 4-9 段；重传之后的一个 ACK 就确认了全部九段，recv() "
           "按顺序返回 4392 字节。应用程序看不到丢包，只看到延迟。"],
}
PROTO = "tcp"
PORT = 7824
IMPAIR = [
    "one-segment-per-frame client",  # no TSO/GSO: each segment is its own frame, and can be lost alone
    "drop data to server nth=1",  # phase 1: the first data segment
    "drop data to server nth=4",  # phase 2: counted among the segments the rule above let through
]
TIMEOUT = 5
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=100   sendall()                     # phase 1: lost
c > s  P?.  len=100   dt>=0.15  dt<=0.4  [retransmission]  kernel:retransmission   # tail loss probe
s > c  .       kernel:data_ack
s      recv() = 100
c > s  P?.  len=488   sendall()                     # phase 2: segment 1
s > c  .       kernel:data_ack
c > s  P?.  len=488   sendall()                     # segment 2
s > c  .       kernel:data_ack
c > s  P?.  len=488   sendall()                     # segment 3: lost
c > s  P?.  len=488   sendall()                     # segment 4 ...
s > c  .       [dup_ack]  kernel:dup_ack           # ... still asks for segment 3
c > s  P?.  len=488   sendall()
s > c  .       [dup_ack]  kernel:dup_ack
c > s  P?.  len=488   sendall()
s > c  .       [dup_ack]  kernel:dup_ack
c > s  P?.  len=488   sendall()
s > c  .       [dup_ack]  kernel:dup_ack
c > s  P?.  len=488   sendall()
s > c  .       [dup_ack]  kernel:dup_ack
c > s  P?.  len=488   sendall()                     # segment 9
s > c  .       [dup_ack]  kernel:dup_ack           # the sixth duplicate ACK
c > s  P?.  len=488   dt<=0.05  [fast_retransmission]  kernel:fast_retransmission   # segment 3 again
s > c  .       kernel:data_ack                     # acknowledges all nine
c > s  F.      close()
s > c  .       kernel:fin_ack                      # the server is still busy: its kernel ACKs the FIN
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
    conn.recv(1024)  # phase 1
    time.sleep(0.5)  # busy elsewhere: phase 2 arrives while nobody reads; the kernel ACKs it
    while conn.recv(65536):  # read until the client closes
        pass
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 500)  # small segments: 488 bytes of data each
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # send each write at once
    s.connect((host, port))
    s.sendall(b"a" * 100)  # phase 1: one segment, lost, and nothing after it
    time.sleep(0.4)
    s.sendall(b"b" * 488 * 9)  # phase 2: nine segments at once; the third is lost
    time.sleep(0.1)  # let the resend settle before the FIN
    s.close()
