"""Listen backlog full: nobody calls accept(), so a later SYN is dropped and retransmitted with backoff."""

import socket
import time

TITLE = {"en": "Listen backlog full: the server never accepts, a new SYN goes unanswered",
         "zh": "监听队列已满：服务器从不 accept，新的 SYN 得不到应答"}
DESCRIPTION = {
    "en": "The server listens with backlog 0 and never calls accept().  The client's first "
          "connection completes anyway and waits in the accept queue, which is now full; the "
          "second connection's SYN is silently dropped by the server's kernel, so the client's "
          "kernel resends it, first every second, then after 2 s, until the application's 7.5 s "
          "timeout gives up.  Closing the listener resets the connection nobody accepted.",
    "zh": "服务器以 backlog 0 监听，并且从不调用 accept()。客户端的第一个连接照样完成，"
          "在全连接（accept）队列中等待，队列因此已满；第二个连接的 SYN 被服务器内核悄悄丢弃，"
          "客户端内核于是重发它：先是每秒一次，然后隔 2 秒，直到应用程序 7.5 秒的超时放弃。"
          "关闭监听套接字时，没有被 accept 的连接被重置。",
}
NOTICE = {
    "en": ["The server's kernel completes the first handshake without accept(): the connection "
           "waits in the accept queue (ss shows the listener with Recv-Q 1).  Linux counts the queue "
           "full only when it holds more than the backlog, so even listen(0) admits one connection.",
           "With the queue full the kernel drops the next SYN without a word (no SYN-ACK, no RST: "
           "net.ipv4.tcp_abort_on_overflow is 0; the ListenOverflows counter goes up).  To the client "
           "this looks exactly like a lost SYN, so its kernel retransmits it.",
           "The textbook doubles the SYN timeout (1, 2, 4 s ...).  Linux 6.5 and later first retry "
           "every 1 s (net.ipv4.tcp_syn_linear_timeouts = 4: five retransmissions 1 s apart here) and "
           "only then double (2 s, 4 s ...); a blocking connect() would fail with ETIMEDOUT after "
           "about 131 s.  Here the application's own timeout (settimeout 7.5 s) ends it first.",
           "If a SYN is answered but the third ACK meets a full queue, the server drops that ACK and "
           "keeps the connection half-open, resending its SYN-ACK 1 s, 2 s, 4 s apart (doubling at once).  "
           "Closing the listener resets every connection still waiting in its queue: the final RST."],
    "zh": ["服务器内核不需要 accept() 就完成了第一次握手：连接在 accept 队列中等待"
           "（ss 显示监听套接字的 Recv-Q 为 1）。Linux 只有在队列长度超过 backlog 时才认为队列已满，"
           "所以即使 listen(0) 也能容纳一个连接。",
           "队列满时，内核一声不响地丢弃下一个 SYN（不回 SYN-ACK，也不回 RST："
           "net.ipv4.tcp_abort_on_overflow 为 0；ListenOverflows 计数器增加）。"
           "在客户端看来这和 SYN 丢失完全一样，所以它的内核重传 SYN。",
           "教科书上 SYN 的超时每次加倍（1、2、4 秒……）。Linux 6.5 及以后先每隔 1 秒重试"
           "（net.ipv4.tcp_syn_linear_timeouts = 4：这里是 5 次间隔 1 秒的重传），然后才加倍"
           "（2 秒、4 秒……）；阻塞的 connect() 大约 131 秒后才以 ETIMEDOUT 失败。"
           "这里是应用程序自己的超时（settimeout 7.5 秒）先结束了它。",
           "如果 SYN 得到了应答，但第三个 ACK 到达时队列已满，服务器会丢弃这个 ACK，让连接保持半打开，"
           "并以 1 秒、2 秒、4 秒的间隔重发 SYN-ACK（一开始就加倍）。"
           "关闭监听套接字会重置队列中所有仍在等待的连接：这就是最后的 RST。"],
}
PROTO = "tcp"
PORT = 7821
TIMEOUT = 12
EXPECT = """
c > s  S       connect()                                       # the first connection
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack   s=ESTABLISHED            # done without accept(): queue full
c > s  S       connect()                                       # the second connection: no answer
c > s  S  x5   dt>=0.8  dt<=1.5  [retransmission]  kernel:syn_retransmission    # 1 s apart
c > s  S       dt>=1.8  dt<=2.6  [retransmission]  kernel:syn_retransmission    # then doubled: 2 s
c      connect() = TimeoutError                                 # settimeout(7.5) ran out
c > s  F.      close()                                         # the first connection
s > c  .       kernel:fin_ack         s=CLOSE-WAIT
s > c  R.      close()                c=CLOSED   s=CLOSED      # the listener's close() resets it
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(0)  # the smallest accept queue
    time.sleep(8.8)  # never calls accept(); ends 1.3 s after the client gave up (a slow start)
    listener.close()


def client(host, port, mark):
    first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    first.connect((host, port))  # the kernel completes it: it waits in the accept queue
    mark("queue full")
    second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    second.settimeout(7.5)
    try:
        second.connect((host, port))
    except TimeoutError:
        print("second connect() timed out")
    second.close()
    first.close()
