"""Four-way close, server first: FIN, ACK, (pause), FIN, ACK; the server ends in TIME_WAIT."""

import socket
import time

TITLE = {"en": "Four-way close: the server closes first",
         "zh": "四次挥手：服务器先关闭"}
DESCRIPTION = {
    "en": "The server accepts the connection and closes it. The client reads end of file, works "
          "0.3 s more, then closes. The four segments of the close are all visible: the server's "
          "FIN, the client kernel's ACK, the client's FIN, the server kernel's ACK.",
    "zh": "服务器 accept 连接后将其关闭。客户端读到文件结束，又工作了 0.3 秒才关闭。"
          "关闭的四个报文段都能看到：服务器的 FIN、客户端内核的 ACK、客户端的 FIN、服务器内核的 ACK。",
}
NOTICE = {
    "en": ["Either end may close first: here the server's close() sends the first FIN, and the "
           "client's kernel ACKs it by itself; the client program reads end of file.",
           "Between the two FINs the mark shows the server in FIN-WAIT-2 and the client in "
           "CLOSE-WAIT: the client could still send data.",
           "The server made the active close, so the server ends in TIME-WAIT (60 s on Linux) "
           "and keeps the pair of addresses and ports busy; the client ends CLOSED.",
           "Four packets only because the client waits before close(); closing at once would "
           "put its ACK into its FIN (three packets)."],
    "zh": ["任何一端都可以先关闭：这里服务器的 close() 发出第一个 FIN，客户端内核自行确认它；"
           "客户端程序读到文件结束。",
           "两个 FIN 之间，标记显示服务器处于 FIN-WAIT-2、客户端处于 CLOSE-WAIT：客户端仍然可以发送数据。",
           "服务器执行主动关闭，所以最后处于 TIME-WAIT 的是服务器（Linux 上为 60 秒），"
           "这对地址和端口在此期间仍被占用；客户端最后为 CLOSED。",
           "之所以有四个数据包，是因为客户端在 close() 前等了一会儿；"
           "如果立即关闭，它的 ACK 会合并到 FIN 中（三个数据包）。"],
}
PROTO = "tcp"
PORT = 7805
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
s > c  F.      close()          s=FIN-WAIT-1   c=CLOSE-WAIT
c > s  .       kernel:fin_ack   s=FIN-WAIT-2    # the client's kernel, not its program
c > s  F.      close()          dt>=0.25   c=LAST-ACK   s=TIME-WAIT
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.close()  # the server closes first
    listener.close()


def client(host, port, mark):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.recv(1024)  # b"": the server closed
    time.sleep(0.3)  # some last work before closing
    mark("half-closed")  # server FIN-WAIT-2, client CLOSE-WAIT
    s.close()
