"""Close with unread data: the kernel sends RST, not FIN, and the peer's recv() fails."""

import socket

TITLE = {"en": "close() with unread data: RST instead of FIN",
         "zh": "带未读数据的 close()：发出 RST 而不是 FIN"}
DESCRIPTION = {
    "en": "The client sends two requests in one sendall(). The server reads only the first "
          "(7 bytes) and closes: the second is still in its receive buffer, so its kernel "
          "aborts the connection with a RST, and the client's recv() fails with ECONNRESET.",
    "zh": "客户端在一次 sendall() 中发送两个请求。服务器只读取第一个（7 字节）就关闭："
          "第二个仍在它的接收缓冲区中，所以它的内核用 RST 中止连接，客户端的 recv() 以 ECONNRESET 失败。",
}
NOTICE = {
    "en": ["close() with unread bytes in the receive buffer makes the kernel send RST, not FIN "
           "(RFC 2525 §2.17): the peer must learn that data was lost.",
           "The server's kernel had ACKed the 14 bytes: an ACK says the kernel received them, "
           "not that the program read them.",
           "The client's next recv() fails with ECONNRESET (\"connection reset by peer\") instead "
           "of returning 0; neither side goes through TIME-WAIT.",
           "To close cleanly, read what the peer sent (or shutdown(SHUT_WR) and read until end of "
           "file) before close()."],
    "zh": ["接收缓冲区中还有未读字节时调用 close()，内核发出的是 RST 而不是 FIN（RFC 2525 §2.17）："
           "对方必须知道有数据丢失了。",
           "服务器内核已经确认了这 14 个字节：ACK 表示内核收到了它们，而不是程序读取了它们。",
           "客户端的下一次 recv() 以 ECONNRESET（\"connection reset by peer\"）失败，而不是返回 0；"
           "双方都不经过 TIME-WAIT。",
           "要干净地关闭，应先读完对方发来的数据（或先 shutdown(SHUT_WR) 再读到文件结束），再调用 close()。"],
}
PROTO = "tcp"
PORT = 7807
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=14   sendall()                  # two requests
s > c  .       kernel:data_ack                  # the kernel has all 14 bytes
s      recv() = 7                               # the program reads only 7
s > c  R.      close()          s=CLOSED   c=CLOSED    # RST, not FIN: 7 bytes unread
c      recv() = ECONNRESET
"""


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    conn, _ = listener.accept()
    conn.recv(7)  # b"GET /a\n": the first request only
    conn.close()  # b"GET /b\n" is still unread
    listener.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    s.sendall(b"GET /a\nGET /b\n")  # two requests, 14 bytes
    try:
        s.recv(1024)
    except ConnectionResetError as e:  # ECONNRESET: the server's RST
        print("recv() failed:", e)
    s.close()
