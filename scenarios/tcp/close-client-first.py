"""Four-way close, client first: FIN, ACK, (pause), FIN, ACK; the client ends in TIME_WAIT."""

import socket
import time

TITLE = {"en": "Four-way close: the client closes first",
         "zh": "四次挥手：客户端先关闭"}
DESCRIPTION = {
    "en": "The client connects and closes. The server reads end of file, works 0.3 s more, then "
          "closes. The four segments of the close are all visible: the client's FIN, the server "
          "kernel's ACK, the server's FIN, the client kernel's ACK.",
    "zh": "客户端连接后关闭。服务器读到文件结束，又工作了 0.3 秒才关闭。关闭的四个报文段都能看到："
          "客户端的 FIN、服务器内核的 ACK、服务器的 FIN、客户端内核的 ACK。",
}
NOTICE = {
    "en": ["The client's close() sends a FIN; the server's kernel ACKs it by itself, and the "
           "server program sees end of file: recv() returns 0.",
           "Between the two FINs the connection is half-closed: the mark shows the client in "
           "FIN-WAIT-2 and the server in CLOSE-WAIT until the server calls close().",
           "The client made the active close, so it ends in TIME-WAIT (60 s on Linux); the server "
           "goes from LAST-ACK to CLOSED when the last ACK arrives.",
           "Four packets only because the server waits: when it calls close() right after "
           "recv() returns 0, Linux puts its ACK into its FIN and the close takes three packets."],
    "zh": ["客户端的 close() 发出 FIN；服务器内核自行确认它，服务器程序读到文件结束：recv() 返回 0。",
           "两个 FIN 之间连接处于半关闭状态：标记显示客户端处于 FIN-WAIT-2、服务器处于 CLOSE-WAIT，"
           "直到服务器调用 close()。",
           "客户端执行主动关闭，所以最后处于 TIME-WAIT（Linux 上为 60 秒）；"
           "服务器收到最后一个 ACK 后从 LAST-ACK 变为 CLOSED。",
           "之所以有四个数据包，是因为服务器等了一会儿：如果它在 recv() 返回 0 后立即 close()，"
           "Linux 会把 ACK 合并到 FIN 中，关闭只需三个数据包。"],
}
PROTO = "tcp"
PORT = 7804
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  F.      close()          c=FIN-WAIT-1   s=CLOSE-WAIT
s > c  .       kernel:fin_ack   c=FIN-WAIT-2    # the server's kernel, not its program
s > c  F.      close()          dt>=0.25   s=LAST-ACK   c=TIME-WAIT
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.recv(1024)  # b"": the client closed
    time.sleep(0.3)  # some last work before closing
    mark("half-closed")  # client FIN-WAIT-2, server CLOSE-WAIT
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.close()  # the client closes first
