"""Address already in use: a port held by a TIME-WAIT connection cannot be bound again without
SO_REUSEADDR."""

import socket
import time

TITLE = {"en": "Address already in use: bind() after TIME-WAIT, and SO_REUSEADDR",
         "zh": "地址已被占用：TIME-WAIT 之后的 bind() 与 SO_REUSEADDR"}
DESCRIPTION = {
    "en": "The server answers one client and closes first, so its end of that connection waits in "
          "TIME-WAIT; then it closes its listening socket and \"restarts\": bind() on the same port "
          "without SO_REUSEADDR fails with EADDRINUSE, with SO_REUSEADDR it works, and a second "
          "client connects.",
    "zh": "服务器应答一个客户端后先关闭，所以它那一端在 TIME-WAIT 中等待；随后它关闭监听套接字并“重启”："
          "不设置 SO_REUSEADDR 时对同一端口的 bind() 以 EADDRINUSE 失败，设置后就成功，"
          "第二个客户端连接进来。",
}
NOTICE = {
    "en": ["The server closes first, so its end of the first connection stays in TIME-WAIT (60 s on "
           "Linux) after the last ACK, although no program uses it any more.",
           "When bind() fails, nothing listens on the port any more (see the mark \"time-wait\"): "
           "the TIME-WAIT entry alone makes bind() fail with EADDRINUSE.  bind() sends no packet.",
           "With SO_REUSEADDR the new listening socket may share the port with that TIME-WAIT "
           "entry (on Linux the old socket must have had SO_REUSEADDR as well, which is why servers "
           "always set it); the second client then connects normally.",
           "SO_REUSEADDR does not allow two listening sockets on one port: it only lets old "
           "connections in TIME-WAIT not stand in the way."],
    "zh": ["服务器先关闭，所以它在第一个连接上的那一端在最后一个 ACK 之后"
           "仍停留在 TIME-WAIT（Linux 上 60 秒），尽管已经没有程序在使用它。",
           "bind() 失败时，端口上已经没有程序在监听（见标记 “time-wait”）："
           "仅仅是那个 TIME-WAIT 条目就让 bind() 以 EADDRINUSE 失败。bind() 不发送任何数据包。",
           "设置 SO_REUSEADDR 后，新的监听套接字可以与这个 TIME-WAIT 条目共用端口"
           "（在 Linux 上，旧的套接字也必须设置过 SO_REUSEADDR，所以服务器总是设置它）；"
           "随后第二个客户端正常连接。",
           "SO_REUSEADDR 并不允许一个端口上有两个监听套接字：它只是让处于 TIME-WAIT 的旧连接不再碍事。"],
}
PROTO = "tcp"
PORT = 7846
HOSTS = "two"
EXPECT = """
c > s  S       connect()
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
s > c  P?.  len=13   sendall()
c > s  .       kernel:data_ack
s > c  F.      close()          s=FIN-WAIT-1    # the server closes first
c      recv() = 0
c > s  F.      close()          c=LAST-ACK
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
s      bind() = EADDRINUSE                      # no SO_REUSEADDR: the TIME-WAIT end holds the port
s      bind()                                   # with SO_REUSEADDR
s      listen()
c > s  S       connect()                        # the second client, from another port
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
s > c  P?.  len=14   sendall()
c > s  .       kernel:data_ack
s > c  F.      close()          s=FIN-WAIT-1
c      recv() = 0
c > s  F.      close()          c=LAST-ACK
s > c  .       kernel:fin_ack   s=TIME-WAIT   c=CLOSED
"""


def serve_one(listener, text):
    conn, _ = listener.accept()
    conn.sendall(text)
    conn.close()  # the server closes first: its end will wait in TIME-WAIT


def server(host, port, mark):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    serve_one(listener, b"first server\n")
    listener.close()  # now nothing listens on the port
    time.sleep(0.1)  # the client closes too
    mark("time-wait")  # the server's end of connection 1: TIME-WAIT, on port 7846

    # The server restarts, without SO_REUSEADDR:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((host, port))
    except OSError as e:
        print("bind() failed:", e)  # [Errno 98] Address already in use
    listener.close()

    # Again, with SO_REUSEADDR:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    serve_one(listener, b"second server\n")
    listener.close()


def ask(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))
    print(s.recv(1024))
    s.recv(1024)  # b"": the server closed
    s.close()


def client(host, port):
    ask(host, port)
    time.sleep(0.5)  # give the server time to restart
    ask(host, port)
