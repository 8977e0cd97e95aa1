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
PROTO = "tcp"
PORT = 7778


def client(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.connect((host, port))
    except ConnectionRefusedError as e:
        print("connect() failed:", e)
    s.close()
