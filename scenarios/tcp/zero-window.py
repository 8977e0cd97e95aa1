"""Zero window: the receiver stops reading, its buffer fills, the sender probes until a window update."""

import socket
import time

TITLE = {"en": "Zero window: a receiver that does not read stops the sender",
         "zh": "零窗口：不读取数据的接收方让发送方停下"}
DESCRIPTION = {
    "en": "The server shrinks its receive buffer (SO_RCVBUF) before listen() and then does not read "
          "for 1 s.  The client's 5000 bytes fill the small window at once; the server's kernel "
          "announces a zero window, the client's kernel probes it (after 0.2 s, then 0.4 s later), "
          "and when the server finally calls recv() its kernel sends a window update and the rest "
          "of the data flows.",
    "zh": "服务器在 listen() 之前缩小接收缓冲区（SO_RCVBUF），然后 1 秒内不读取数据。"
          "客户端的 5000 字节立刻填满了这个小窗口；服务器内核通告零窗口，客户端内核发送探测"
          "（0.2 秒后一次，再过 0.4 秒又一次）；服务器终于调用 recv() 时，它的内核发出窗口更新，"
          "其余数据继续传输。",
}
NOTICE = {
    "en": ["The window is the free space in the receiver's buffer, announced in every ACK.  With "
           "SO_RCVBUF 2048 it is only 1448 bytes, and the client even cuts its segments to half of "
           "it (724 bytes).  Two segments fill it: tshark marks the second [window full].",
           "Nobody reads, so the buffer stays full and the server's kernel answers win=0: "
           "[zero window].  The client's sendall() returned long ago; the rest of the data waits in "
           "the client's kernel (ss at the mark: Send-Q on the client, Recv-Q on the server).",
           "While the window is zero the client's persist timer probes it, with backoff (0.2 s, then "
           "0.4 s).  Linux probes with an empty segment that repeats the last acknowledged byte, not "
           "the textbook one-byte probe, so tshark (which wants exactly 1 byte) calls it a "
           "keep-alive although SO_KEEPALIVE is off.  The second probe gets no answer: Linux answers "
           "such old segments at most every 0.5 s (net.ipv4.tcp_invalid_ratelimit).",
           "recv() frees the buffer and the server's kernel at once sends a window update (an ACK "
           "that only changes the window); the client resumes, and the close() it called long ago "
           "rides on the last data segment as FIN."],
    "zh": ["窗口是接收方缓冲区中的空闲空间，在每个 ACK 中通告。SO_RCVBUF 为 2048 时窗口只有 1448 字节，"
           "客户端甚至把数据段切成窗口的一半（724 字节）。两个数据段就把它填满：tshark 把第二个标为"
           " [window full]。",
           "没有人读取，缓冲区一直是满的，服务器内核回复 win=0：[zero window]。客户端的 sendall() "
           "早已返回；其余数据在客户端内核中等待（标记处的 ss：客户端的 Send-Q，服务器的 Recv-Q）。",
           "窗口为零期间，客户端的持续（persist）定时器发送探测，并且退避（0.2 秒，然后 0.4 秒）。"
           "Linux 的探测是一个不带数据、重复最后一个已确认字节的报文段，而不是教科书上的一字节探测，"
           "所以 tshark（它要求恰好 1 字节）把它叫作 keep-alive，尽管 SO_KEEPALIVE 并没有打开。"
           "第二个探测没有得到应答：Linux 对这种旧序号报文段最多每 0.5 秒应答一次"
           "（net.ipv4.tcp_invalid_ratelimit）。",
           "recv() 释放了缓冲区，服务器内核立即发送窗口更新（只改变窗口的 ACK）；客户端继续发送，"
           "它早先调用的 close() 以 FIN 的形式搭在最后一个数据段上。"],
}
PROTO = "tcp"
PORT = 7826
IMPAIR = ["one-segment-per-frame client"]
TIMEOUT = 6
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=724  sendall()
s > c  .       kernel:data_ack
c > s  P?.  len=724  [window_full]  sendall()                  # the 1448-byte window is full
s > c  .   win=0  [zero_window]  kernel:zero_window            # nobody reads
# Linux probes a zero window with an empty segment at SND.UNA-1, the keep-alive format:
# tshark flags it [keep_alive]; tracer names it for what it is, as the peer's window is 0.
c > s  .   len=0  dt>=0.15  dt<=0.4   kernel:zero_window_probe
s > c  .   win=0  [zero_window]  kernel:zero_window_probe_ack
c > s  .   len=0  dt>=0.3   dt<=0.7   kernel:zero_window_probe     # 0.4 s later: the backoff doubled
s > c  .   [window_update]  kernel:window_update               # no answer to the 2nd probe; recv() at last
...                                                            # the rest, a small window at a time
c > s  FP?.  len>0   sendall()                                 # the last data, with the FIN of close()
s > c  .       x0-1  kernel:fin_ack                            # unless the server's FIN comes first
s      recv() = 0
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before listen(): inherited by accept()
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    time.sleep(0.5)  # not reading: the receive buffer stays full
    mark("not reading")  # Recv-Q full on the server, Send-Q waiting on the client
    time.sleep(0.5)
    while conn.recv(65536):  # read until the client closes
        pass
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"x" * 5000)  # returns once the kernel has the bytes, not when they are delivered
    s.close()
