"""UDP fire-and-forget: three datagrams to a server that only prints; nothing comes back."""

import socket

TITLE = {"en": "UDP fire-and-forget: datagrams with no reply and no acknowledgement",
         "zh": "UDP 发完即忘：没有应答、也没有确认的数据报"}
DESCRIPTION = {
    "en": "The client sends three datagrams with sendto() and closes; the server receives and "
          "prints them.  The server sends nothing: no reply, no ACK, no close on the wire.",
    "zh": "客户端用 sendto() 发送三个数据报后关闭；服务器接收并打印它们。"
          "服务器不发送任何数据包：没有应答、没有确认，线路上也没有关闭过程。",
}
NOTICE = {
    "en": ["Every packet on the wire goes from client to server: UDP has no handshake and no ACK.",
           "Each sendto() is one datagram, sent at once; sendto() returning says nothing about "
           "whether the server received it.",
           "recvfrom() on the server makes no packet: receiving a datagram is silent.",
           "close() sends nothing either: a UDP socket has no connection to end."],
    "zh": ["线路上的每个数据包都是从客户端发往服务器：UDP 没有握手，也没有 ACK。",
           "每次 sendto() 就是一个数据报，立即发出；sendto() 返回并不说明服务器是否收到。",
           "服务器的 recvfrom() 不产生任何数据包：接收数据报是无声的。",
           "close() 也不发送任何东西：UDP 套接字没有要结束的连接。"],
}
PROTO = "udp"
PORT = 7841
HOSTS = "two"
EXPECT = """
c > s  udp  len=3   sendto()
c > s  udp  len=3   sendto()
c > s  udp  len=5   sendto()
s      recvfrom() = 5                           # the last datagram, whole; no packet follows
"""


def server(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    for _ in range(3):
        data, peer = s.recvfrom(2048)
        print(peer, data.decode())  # no reply: the client hears nothing
    s.close()


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for msg in (b"one", b"two", b"three"):
        s.sendto(msg, (host, port))
    s.close()
