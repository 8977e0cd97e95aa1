"""Three-way handshake: the kernel completes it before the server calls accept()."""

import socket
import time

TITLE = {"en": "Three-way handshake: complete before accept() is called",
         "zh": "三次握手：在调用 accept() 之前就已完成"}
DESCRIPTION = {
    "en": "The server listens, then waits 0.5 s before calling accept(). The client's connect() "
          "returns at once: SYN, SYN-ACK and ACK are exchanged by the kernels, and the finished "
          "connection waits in the accept queue. Then the server accepts and both close.",
    "zh": "服务器开始监听后，等待 0.5 秒才调用 accept()。客户端的 connect() 立即返回："
          "SYN、SYN-ACK 和 ACK 由双方内核交换，建立好的连接在 accept 队列中等待。"
          "随后服务器 accept，双方关闭。",
}
NOTICE = {
    "en": ["listen() is enough for the server's kernel to answer SYNs: the SYN-ACK goes out with "
           "no accept() call at all.",
           "connect() returns when the SYN-ACK arrives, about 0.4 s before the server program "
           "calls accept(); the client could already send data, which the server's kernel would "
           "queue.",
           "The mark before accept() shows both ends ESTABLISHED in the kernels, and the listening "
           "socket's Recv-Q = 1: one finished connection waits in the accept queue.",
           "accept() sends no packet: 0.5 s after the handshake it only takes the connection "
           "from the queue."],
    "zh": ["只要调用了 listen()，服务器内核就会应答 SYN：SYN-ACK 的发出根本不需要调用 accept()。",
           "SYN-ACK 到达时 connect() 就返回，比服务器程序调用 accept() 早约 0.4 秒；"
           "此时客户端已经可以发送数据，服务器内核会把它们排队。",
           "accept() 之前的标记显示两端在内核中都已是 ESTABLISHED，监听套接字的 Recv-Q = 1："
           "有一个已完成的连接在 accept 队列中等待。",
           "accept() 不发送任何数据包：握手完成 0.5 秒后，它只是从队列中取出这个连接。"],
}
PROTO = "tcp"
PORT = 7803
HOSTS = "two"
EXPECT = """
c > s  S       connect()                        c=SYN-SENT
s > c  S.      kernel:listen_queue_synack       s=LISTEN   c=ESTABLISHED   # the listener stays in LISTEN
c > s  .       kernel:handshake_ack             s=ESTABLISHED
c      connect()                                # returned: the handshake is done
s      accept()                                 # 0.4 s later, and it sends nothing
s > c  F.      close()          dt>=0.3         # the first packet after the pause
c > s  .       kernel:fin_ack   x0-1            # alone only if close() comes late; usually in the FIN
c > s  F.      close()
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
"""


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    time.sleep(0.5)  # busy elsewhere: the client connects meanwhile
    mark("before accept()")  # ESTABLISHED already; the listener's Recv-Q = 1
    conn, _ = listener.accept()  # returns at once: the connection was waiting
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))  # returns after the handshake, long before accept()
    s.recv(1024)  # b"": the server closed
    s.close()
