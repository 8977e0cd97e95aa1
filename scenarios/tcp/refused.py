"""TCP connect to a closed port: the server's kernel answers the SYN with a RST.

No ``server`` function: nothing listens, so connect() fails with ECONNREFUSED.
"""

import socket

TITLE = {"en": "Connection refused: connect() to a port where nothing listens",
         "zh": "连接被拒绝：connect() 到没有程序监听的端口"}
DESCRIPTION = {
    "en": "The client's SYN reaches a port with no listening socket; the server's kernel "
          "answers with RST and connect() fails with ECONNREFUSED.",
    "zh": "客户端的 SYN 到达一个没有监听套接字的端口；服务器内核回复 RST，connect() 以 ECONNREFUSED 失败。",
}
NOTICE = {
    "en": ["Nothing listens on the port, so the server's kernel answers the SYN with RST,ACK.",
           "connect() fails with ECONNREFUSED because of that RST: no retries, no timeout."],
    "zh": ["该端口上没有程序监听，所以服务器内核用 RST,ACK 回应 SYN。",
           "connect() 因为这个 RST 以 ECONNREFUSED 失败：没有重试，也没有超时。"],
}
PROTO = "tcp"
PORT = 7778
EXPECT = """
c > s  S      connect()
s > c  R.     kernel:rst_no_listener
c      connect() = ECONNREFUSED
"""


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect((host, port))
    except ConnectionRefusedError as e:
        print("connect() failed:", e)
    s.close()
