"""Stream vs datagram: two UDP datagrams stay two messages, two TCP sends arrive as one byte stream."""

import socket
import time

TITLE = {"en": "Stream vs datagram: UDP keeps message boundaries, TCP does not",
         "zh": "字节流与数据报：UDP 保留消息边界，TCP 不保留"}
DESCRIPTION = {
    "en": "The server uses the same port number for UDP and TCP, then waits a moment before "
          "reading.  Meanwhile the client sends two datagrams with sendto(), then two messages over "
          "TCP with send().  Both datagrams are queued, yet the server needs two recvfrom() calls, "
          "one per datagram; both TCP messages are queued too, and one recv() returns them together.",
    "zh": "服务器在同一个端口号上同时使用 UDP 和 TCP，然后稍等片刻再读取。在此期间，客户端先用 sendto() "
          "发送两个数据报，再通过 TCP 用 send() 发送两条消息。两个数据报都已在队列中，服务器仍需两次 "
          "recvfrom()，每次一个数据报；两条 TCP 消息也都在队列中，一次 recv() 就把它们一起返回。",
}
NOTICE = {
    "en": ["UDP: each sendto() is one datagram, and each recvfrom() returns exactly one datagram, "
           "whole, even when several are waiting: the message boundaries are kept.",
           "TCP: each send() here leaves as its own segment, but the receiver's kernel puts the "
           "bytes in one receive queue, and one recv() returns all 10 bytes queued.",
           "So a TCP application must mark where its messages end itself (a length prefix, a "
           "newline, ...); it cannot count on one recv() per send().",
           "A TCP port and a UDP port with the same number are two different ports: one program "
           "can bind both."],
    "zh": ["UDP：每次 sendto() 是一个数据报，每次 recvfrom() 恰好返回一个完整的数据报，"
           "即使有多个在等待：消息边界被保留。",
           "TCP：这里每次 send() 各成一个数据段发出，但接收方内核把字节放进同一个接收队列，"
           "一次 recv() 返回队列中的全部 10 个字节。",
           "所以 TCP 应用程序必须自己标出消息在哪里结束（长度前缀、换行符……）；"
           "不能指望一次 send() 对应一次 recv()。",
           "同一个号码的 TCP 端口和 UDP 端口是两个不同的端口：一个程序可以同时绑定它们。"],
}
PROTO = "tcp"
PORT = 7844
HOSTS = "two"
EXPECT = """
c > s  udp  len=5   sendto()
c > s  udp  len=5   sendto()
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=5   send()
s > c  .       kernel:data_ack
c > s  P?.  len=5   send()
s > c  .       kernel:data_ack
c > s  F.      close()
s > c  .       kernel:fin_ack   c=FIN-WAIT-2      # delayed ACK: the server is still asleep
s      recvfrom() = 5                             # one datagram, although both are queued
s      recvfrom() = 5                             # the second one needs its own call
s      recv() = 10                                # both TCP messages in one call
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def server(host, port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((host, port))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))  # the same number, another protocol: no conflict
    listener.listen(1)

    time.sleep(0.2)  # meanwhile everything the client sends waits in the kernel's queues
    print(udp.recvfrom(1024))  # (b'hello', ...): one datagram
    print(udp.recvfrom(1024))  # (b'world', ...): the next one
    udp.close()

    conn, _ = listener.accept()
    print(conn.recv(1024))  # b'helloworld': both messages at once
    conn.recv(1024)  # b"": the client closed
    conn.close()
    listener.close()


def client(host, port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(b"hello", (host, port))
    udp.sendto(b"world", (host, port))
    udp.close()

    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.connect((host, port))
    tcp.send(b"hello")
    tcp.send(b"world")
    tcp.close()

