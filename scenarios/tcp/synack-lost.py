"""Lost SYN-ACK: both ends' handshake timers fire, and the connection still opens."""

import socket

TITLE = {"en": "Lost SYN-ACK: the client resends its SYN, the server its SYN-ACK",
         "zh": "SYN-ACK 丢失：客户端重发 SYN，服务器重发 SYN-ACK"}
DESCRIPTION = {
    "en": "The server's first SYN-ACK is dropped before it reaches the client (IMPAIR).  Both kernels "
          "wait with a 1 s timer: the server's resends the SYN-ACK, the client's resends the SYN.  "
          "The two retransmissions cross, the server answers the repeated SYN with one more SYN-ACK, "
          "and the client acknowledges both; then the connection works as usual.",
    "zh": "服务器的第一个 SYN-ACK 在到达客户端之前被丢弃（IMPAIR）。两端内核都用 1 秒的定时器等待："
          "服务器的定时器重发 SYN-ACK，客户端的定时器重发 SYN。两个重传在途中交错，服务器对重复的 SYN "
          "再回一个 SYN-ACK，客户端对两个 SYN-ACK 都发出确认；之后连接照常工作。",
}
NOTICE = {
    "en": ["The capture shows the first SYN-ACK leaving the server: it was lost on the way, so "
           "connect() keeps blocking in SYN-SENT while the server's kernel already holds a half-open "
           "connection (SYN-RECEIVED).",
           "Both ends retransmit after the initial RTO of 1 s (RFC 6298).  The two timers expire in "
           "the same kernel timer tick; on this kernel the server's SYN-ACK leaves first and crosses "
           "the client's repeated SYN on the wire.  Which one goes first is a timer race, not a rule.",
           "The server answers the repeated SYN at once with another copy of the same SYN-ACK (same "
           "sequence number: a retransmission).  The client acknowledges each copy it receives; the "
           "second ACK repeats the first: a duplicate ACK.",
           "Only connect() saw the loss, as a 1 s delay; accept(), send() and recv() behave as if "
           "nothing had happened."],
    "zh": ["抓包中可以看到第一个 SYN-ACK 离开了服务器：它在途中丢失，所以 connect() 在 SYN-SENT "
           "状态下继续阻塞，而服务器内核已经持有一个半打开的连接（SYN-RECEIVED）。",
           "两端都在 1 秒的初始 RTO（RFC 6298）之后重传。两个定时器在同一个内核定时器节拍中到期；"
           "在这个内核上，服务器的 SYN-ACK 先发出，并在线路上与客户端重复的 SYN 交错。"
           "谁先谁后是定时器的竞争，并不是规则。",
           "服务器立即用同一个 SYN-ACK 的另一份副本回应重复的 SYN（序号相同：是重传）。"
           "客户端对收到的每一份副本都发出确认；第二个 ACK 与第一个完全相同：重复 ACK。",
           "只有 connect() 察觉到了丢包，表现为 1 秒的延迟；accept()、send() 和 recv() "
           "的行为就像什么都没发生过一样。"],
}
PROTO = "tcp"
PORT = 7823
IMPAIR = ["drop syn-ack to client"]
TIMEOUT = 5
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack   s=LISTEN   # dropped before the client; listener stays LISTEN
s > c  S.      dt>=0.8  dt<=1.5  [retransmission]  kernel:synack_retransmission   # server's timer
c > s  S       dt<=0.1  [retransmission]  kernel:syn_retransmission   # client's timer, same tick
s > c  S.      [retransmission]  kernel:synack_retransmission   # the answer to the repeated SYN
c > s  .       kernel:handshake_ack         s=ESTABLISHED
c > s  .       [dup_ack]  kernel:dup_ack                        # for the second copy
c > s  P?.  len=5    sendall()
s > c  .       kernel:data_ack
c > s  F.      close()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.recv(1024)
    conn.recv(1024)  # b"": the client closed
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))  # blocks until a SYN-ACK gets through
    s.sendall(b"hello")
    s.close()
