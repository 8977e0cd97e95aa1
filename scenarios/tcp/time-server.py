"""Time server: the server sends the time and closes first, so the server ends in TIME_WAIT."""

import socket
import time

TITLE = {"en": "Time server: the server closes first and ends in TIME_WAIT",
         "zh": "时间服务器：服务器先关闭，最后处于 TIME_WAIT 的是服务器"}
DESCRIPTION = {
    "en": "As in the daytime protocol, the server sends the current time as soon as a client "
          "connects and closes the connection; the client reads until end of file and closes. "
          "The server closed first, so the server, not the client, ends in TIME_WAIT.",
    "zh": "与 daytime 协议一样，客户端一连上服务器就发送当前时间并关闭连接；"
          "客户端一直读到文件结束再关闭。服务器先关闭，所以最后处于 TIME_WAIT 的是服务器而不是客户端。",
}
NOTICE = {
    "en": ["The server's close() sends the first FIN: it makes the active close.",
           "TIME_WAIT belongs to whoever closes first, not to the client: here the server's end "
           "stays in TIME-WAIT (ss shows it) for 60 s on Linux, the client's end is gone.",
           "A busy server that closes first keeps one TIME-WAIT entry per connection; that is "
           "why protocols such as HTTP/1.1 prefer that the client closes first.",
           "The client learns the end of the reply from the FIN: recv() returns 0."],
    "zh": ["服务器的 close() 发出第一个 FIN：它执行的是主动关闭。",
           "TIME_WAIT 属于先关闭的一方，而不一定是客户端：这里服务器端处于 TIME-WAIT"
           "（ss 可以看到），在 Linux 上持续 60 秒，客户端的连接已经消失。",
           "先关闭连接的繁忙服务器会为每个连接保留一个 TIME-WAIT 条目；"
           "这就是 HTTP/1.1 等协议更希望由客户端先关闭的原因。",
           "客户端通过 FIN 知道应答结束：recv() 返回 0。"],
}
PROTO = "tcp"
PORT = 7802
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
s > c  P?.  len=26   sendall()                  # the time, unasked
c > s  .       kernel:data_ack
s > c  F.      close()          s=FIN-WAIT-1    # the server closes first: active close
c > s  .       kernel:fin_ack   x0-1            # alone only if close() comes late; usually in the FIN
c      recv() = 0                               # end of file: the reply is complete
c > s  F.      close()          c=LAST-ACK   s=TIME-WAIT
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.sendall(time.ctime().encode() + b"\r\n")  # e.g. "Sun Nov 22 02:40:40 2026\r\n"
    conn.close()  # the server closes first
    listener.close()


def client(host, port, mark):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    reply = b""
    while True:
        data = s.recv(1024)
        if not data:  # b"": the server closed
            break
        reply += data
    print(reply.decode().strip())
    s.close()
    time.sleep(0.1)  # let the last ACK arrive
    mark("both closed")  # the server's end is in TIME-WAIT, the client's end is gone
