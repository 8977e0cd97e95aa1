"""Half-close: shutdown(SHUT_WR) sends a FIN, yet the client still receives the reply."""

import socket
import time

TITLE = {"en": "Half-close: shutdown(SHUT_WR), then still read the reply",
         "zh": "半关闭：shutdown(SHUT_WR) 之后仍然读取应答"}
DESCRIPTION = {
    "en": "The client sends its request and calls shutdown(SHUT_WR): a FIN that means \"no more "
          "data from me\". The server reads until end of file, then still sends its reply and "
          "closes; the client reads the reply after its own FIN.",
    "zh": "客户端发送请求后调用 shutdown(SHUT_WR)：发出一个表示\"我不再发送数据\"的 FIN。"
          "服务器一直读到文件结束，然后仍然发送应答并关闭；客户端在自己的 FIN 之后读取应答。",
}
NOTICE = {
    "en": ["shutdown(SHUT_WR) sends the FIN at once, as close() would, but the socket stays open "
           "for reading.",
           "The FIN is how the server knows the request is complete: its recv() returns 0, with "
           "no length prefix or delimiter needed.",
           "The mark shows the half-closed connection: client FIN-WAIT-2 (it may still receive), "
           "server CLOSE-WAIT (it may still send).",
           "Data flows after the client's FIN; the client, which sent the first FIN, ends in "
           "TIME-WAIT."],
    "zh": ["shutdown(SHUT_WR) 与 close() 一样立即发出 FIN，但套接字仍然可以读取。",
           "服务器靠这个 FIN 知道请求已经完整：它的 recv() 返回 0，不需要长度前缀或分隔符。",
           "标记显示半关闭的连接：客户端处于 FIN-WAIT-2（仍可接收），服务器处于 CLOSE-WAIT（仍可发送）。",
           "数据在客户端的 FIN 之后仍在传输；先发出 FIN 的客户端最后处于 TIME-WAIT。"],
}
PROTO = "tcp"
PORT = 7806
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=17   sendall()                  # the request
s > c  .       kernel:data_ack
c > s  F.      shutdown()       c=FIN-WAIT-1   s=CLOSE-WAIT
s      recv() = 0                               # end of file: the request is complete
s > c  .       kernel:fin_ack   c=FIN-WAIT-2   s=CLOSE-WAIT
s > c  P?.  len=17   sendall()  dt>=0.1         # the reply, after the client's FIN
c > s  .       kernel:data_ack  c=FIN-WAIT-2
s > c  F.      close()          c=TIME-WAIT   s=LAST-ACK
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    request = b""
    while True:
        data = conn.recv(1024)
        if not data:  # b"": the client will send nothing more
            break
        request += data
    time.sleep(0.2)  # working on the reply
    mark("half-closed")  # client FIN-WAIT-2, server CLOSE-WAIT
    conn.sendall(request.upper())  # still allowed after end of file
    conn.close()
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"hello, half-close")
    s.shutdown(socket.SHUT_WR)  # FIN: the request is complete; reading goes on
    reply = b""
    while True:
        data = s.recv(1024)
        if not data:  # b"": the server closed
            break
        reply += data
    print(reply)
    s.close()
