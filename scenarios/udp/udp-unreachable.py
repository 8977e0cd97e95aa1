"""UDP to a closed port: the server's kernel answers with ICMP port unreachable, recv() gets ECONNREFUSED.

No ``server`` function: nothing listens on the port.
"""

import socket

TITLE = {"en": "UDP to a closed port: ICMP port unreachable, then ECONNREFUSED",
         "zh": "UDP 发往关闭的端口：ICMP 端口不可达，随后 ECONNREFUSED"}
DESCRIPTION = {
    "en": "The client connects a UDP socket (no packet), sends one datagram to a port where "
          "nothing listens and waits in recv().  The server's kernel answers with an ICMP "
          "port-unreachable error; the client's kernel turns it into ECONNREFUSED for recv().",
    "zh": "客户端对 UDP 套接字调用 connect()（不发送数据包），向一个没有程序监听的端口发送一个数据报，"
          "然后在 recv() 中等待。服务器内核回复 ICMP 端口不可达错误；"
          "客户端内核把它变成 recv() 的 ECONNREFUSED。",
}
NOTICE = {
    "en": ["connect() on a UDP socket sends nothing: it only fixes the peer's address in the "
           "client's kernel.",
           "send() succeeds: the datagram left, and UDP cannot know whether anyone will read it.",
           "With no socket bound to the port, the server's kernel answers with ICMP "
           "\"port unreachable\" (it quotes the start of the datagram), not with a UDP packet.",
           "The error arrives after send() returned, so the next call on the socket reports it: "
           "recv() fails with ECONNREFUSED.  Linux reports it only on a connected socket; and "
           "kernels rate-limit these ICMP errors, so this scenario sends a single datagram."],
    "zh": ["对 UDP 套接字调用 connect() 不发送任何数据包：它只是在客户端内核里记下对端地址。",
           "send() 成功了：数据报已经发出，UDP 无法知道是否有人会读取它。",
           "端口上没有绑定的套接字，服务器内核用 ICMP“端口不可达”回应（其中引用了数据报的开头），"
           "而不是用 UDP 数据包。",
           "这个错误在 send() 返回之后才到达，所以由该套接字上的下一个调用报告：recv() 以 ECONNREFUSED 失败。"
           "Linux 只在已连接的套接字上报告它；并且内核会限制这类 ICMP 错误的发送速率，"
           "所以本场景只发送一个数据报。"],
}
PROTO = "udp"
PORT = 7842
HOSTS = "two"
TIMEOUT = 5
EXPECT = """
c      connect()                                # sends nothing
c > s  udp   len=13  send()
s > c  icmp  kernel:icmp_port_unreachable       # from the server's kernel, quoting the datagram
c      recv() = ECONNREFUSED                    # the next call on the socket gets the error
"""


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)  # only a safety net: the ICMP error comes within a millisecond
    s.connect((host, port))  # no packet: only remembers the peer
    s.send(b"anyone there?")
    try:
        s.recv(2048)
    except ConnectionRefusedError as e:
        print("recv() failed:", e)
    s.close()
