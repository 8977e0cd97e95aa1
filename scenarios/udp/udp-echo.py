"""UDP echo: one datagram each way, no handshake and no close on the wire."""

import socket

TITLE = {"en": "UDP echo: sendto() and recvfrom(), the server answers in upper case",
         "zh": "UDP 回显：sendto() 与 recvfrom()，服务器以大写回复"}
DESCRIPTION = {
    "en": "The client sends one datagram; the server receives it and sends it back in upper "
          "case.  Two datagrams, no connection: close() sends nothing.",
    "zh": "客户端发送一个数据报；服务器收到后以大写发回。"
          "只有两个数据报，没有连接：close() 不发送任何数据包。",
}
NOTICE = {
    "en": ["No handshake: the first packet already carries the data.",
           "Each sendto() is exactly one datagram; close() sends nothing."],
    "zh": ["没有握手：第一个数据包就携带数据。",
           "每次 sendto() 恰好是一个数据报；close() 不发送任何数据包。"],
}
PROTO = "udp"
PORT = 7779
EXPECT = """
c > s  udp  len=10   sendto()
s      recvfrom()
s > c  udp  len=10   sendto()
c      recvfrom()
"""


def server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    data, peer = s.recvfrom(2048)
    s.sendto(data.upper(), peer)
    s.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"hello, udp", (host, port))
    s.recvfrom(2048)
    s.close()
