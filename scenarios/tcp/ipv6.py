"""TCP over IPv6: the same handshake, data and close as over IPv4, between IPv6 addresses."""

import socket

TITLE = {"en": "TCP over IPv6: handshake, one request, one reply, close",
         "zh": "基于 IPv6 的 TCP：三次握手、一次请求、一次应答、关闭"}
DESCRIPTION = {
    "en": "The same exchange as the TCP hello, but with AF_INET6 sockets between the lab's IPv6 "
          "addresses fd00:77::1 (client) and fd00:77::2 (server).  TCP itself does not change: "
          "only the IP header under it does.",
    "zh": "与 TCP 问候相同的交换，但使用 AF_INET6 套接字，在实验网络的 IPv6 地址 fd00:77::1（客户端）"
          "和 fd00:77::2（服务器）之间进行。TCP 本身没有变化：变的只是它下面的 IP 首部。",
}
NOTICE = {
    "en": ["The only change in the program is AF_INET6 and an IPv6 address; the address tuple is "
           "(host, port, flowinfo, scope_id), and tools write it as [fd00:77::2]:port.",
           "The handshake, the data segments with their ACKs and the FIN exchange are exactly as "
           "over IPv4: TCP does not care which IP carries it.",
           "The IPv6 header is 40 bytes instead of 20, so on the same 1500-byte link the SYN "
           "announces an MSS of 1440 instead of 1460.",
           "The side that closes first (here the client) still ends in TIME-WAIT."],
    "zh": ["程序里唯一的变化是 AF_INET6 和一个 IPv6 地址；地址元组是 (host, port, flowinfo, scope_id)，"
           "工具把它写成 [fd00:77::2]:端口。",
           "握手、数据段及其 ACK、FIN 交换都与 IPv4 上完全一样：TCP 不关心由哪种 IP 承载。",
           "IPv6 首部是 40 字节而不是 20 字节，所以在同样 1500 字节的链路上，"
           "SYN 通告的 MSS 是 1440 而不是 1460。",
           "先关闭的一方（这里是客户端）仍然最后处于 TIME-WAIT。"],
}
PROTO = "tcp"
PORT = 7845
HOSTS = "two"
EXPECT = """
c > s  S       connect()                        # from [fd00:77::1] to [fd00:77::2], MSS 1440
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack   c=ESTABLISHED   s=ESTABLISHED
s      accept()
c > s  P?.  len=4    sendall()
s > c  .       kernel:data_ack
s      recv() = 4
s > c  P?.  len=11   sendall()
c > s  .       kernel:data_ack
c > s  F.      close()
s      recv() = 0
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""

# tracer passes the server's IPv4 address as `host`; the lab also gives each host an IPv6
# address (client fd00:77::1, server fd00:77::2; ::1 with --loopback).
IPV6 = {"10.77.0.2": "fd00:77::2", "127.0.0.1": "::1"}


def server(host, port):
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((IPV6[host], port))
    listener.listen(1)
    conn, peer = listener.accept()
    print("connection from", peer)  # ('fd00:77::1', 43210, 0, 0)
    request = conn.recv(1024)
    conn.sendall(b"hello, " + request)
    conn.recv(1024)  # b"": the client closed
    conn.close()
    listener.close()


def client(host, port, mark):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.connect((IPV6[host], port))
    mark("connected")  # ss shows [fd00:77::1]:port <-> [fd00:77::2]:port, ESTABLISHED
    s.sendall(b"ipv6")
    s.recv(1024)
    s.close()
