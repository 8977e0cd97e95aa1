"""Simultaneous close: both ends send a FIN before receiving the other's (CLOSING state)."""

import socket
import time

TITLE = {"en": "Simultaneous close: the two FINs cross",
         "zh": "同时关闭：两个 FIN 交叉而过"}
DESCRIPTION = {
    "en": "Both programs close the connection without waiting for the other. The client's first "
          "FIN is lost on the way (IMPAIR), so when the server closes 0.1 s later its FIN crosses "
          "the client's: the client receives a FIN while still waiting for the ACK of its own, "
          "and goes through CLOSING. The client's kernel resends its FIN; both ends end in "
          "TIME_WAIT.",
    "zh": "双方程序都不等待对方就关闭连接。客户端的第一个 FIN 在途中丢失（IMPAIR），"
          "所以服务器在 0.1 秒后关闭时，它的 FIN 与客户端的 FIN 交叉而过：客户端在等待自己 FIN 的 ACK 时"
          "收到了对方的 FIN，于是进入 CLOSING。客户端内核重传它的 FIN；双方最后都处于 TIME_WAIT。",
}
NOTICE = {
    "en": ["Each end sent its FIN before it received the other's: that is a simultaneous close, "
           "whatever the clocks say. On this lab's link a FIN takes microseconds, so the lost "
           "first FIN stands in for a long path.",
           "The client, in FIN-WAIT-1, receives the server's FIN, which does not ACK its own FIN: "
           "it goes to CLOSING (the mark shows it) instead of FIN-WAIT-2.",
           "The client's kernel resends the FIN after about 0.2 s; its ACK takes the client from "
           "CLOSING to TIME-WAIT.",
           "Both ends closed actively, so both end in TIME-WAIT."],
    "zh": ["双方都在收到对方的 FIN 之前发出了自己的 FIN：这就是同时关闭，与时钟无关。"
           "在本实验的链路上 FIN 只需几微秒，所以用丢失的第一个 FIN 来模拟一条很长的路径。",
           "处于 FIN-WAIT-1 的客户端收到了服务器的 FIN，而它并没有确认客户端自己的 FIN："
           "客户端进入 CLOSING（标记中可以看到），而不是 FIN-WAIT-2。",
           "客户端内核约 0.2 秒后重传 FIN；对它的 ACK 使客户端从 CLOSING 进入 TIME-WAIT。",
           "双方都执行了主动关闭，所以双方最后都处于 TIME-WAIT。"],
}
PROTO = "tcp"
PORT = 7809
HOSTS = "two"
IMPAIR = ["drop fin to server"]  # the client's first FIN is lost
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  F.      close()          c=FIN-WAIT-1   s=ESTABLISHED   # lost before the server's TCP
s > c  F.      close()          dt>=0.05   s=FIN-WAIT-1   c=CLOSING   # the FINs have crossed
c > s  .       kernel:fin_ack   c=CLOSING   s=FIN-WAIT-2
c > s  F.      [retransmission]  kernel:fin_retransmission   dt>=0.05   s=TIME-WAIT
s > c  .       kernel:fin_ack   c=TIME-WAIT   s=TIME-WAIT
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    time.sleep(0.2)  # the client's FIN has not arrived: the server closes too
    conn.close()
    listener.close()


def client(host, port, mark):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    time.sleep(0.1)
    s.close()  # this FIN is lost (IMPAIR) and resent about 0.2 s later
    time.sleep(0.15)  # meanwhile the server closes: its FIN arrives
    mark("FINs crossed")  # client CLOSING, server FIN-WAIT-2
    time.sleep(0.3)  # the client's kernel resends its FIN; the server ACKs it
    mark("both closed")  # both ends in TIME-WAIT
