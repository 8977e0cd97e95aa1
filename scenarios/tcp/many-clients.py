"""Many clients, one server port: connections told apart by the client's port; an iterative server,
then a thread per client."""

import socket
import threading

TITLE = {"en": "Many clients, one server: an iterative server, then a thread per client",
         "zh": "多个客户端、一个服务器：先是迭代服务器，再是每个客户端一个线程"}
DESCRIPTION = {
    "en": "Six connections to one server port, three at a time.  First the server is iterative: it "
          "serves one connection after another, in the order they were accepted, although the "
          "client asks on its third connection first.  Then it starts a thread per client: each "
          "connection is answered as soon as its client asks, the third one first.",
    "zh": "六个连接到服务器的同一个端口，每次三个。起初服务器是迭代式的："
          "它按 accept 的顺序一个接一个地服务各连接，尽管客户端先在第三个连接上提出请求。"
          "随后它为每个客户端启动一个线程：每个连接在其客户端提出请求后立即得到应答，第三个最先。",
}
NOTICE = {
    "en": ["Every connection goes to the same server port; the kernel tells them apart by the whole "
           "address pair, so the client's port (a new ephemeral port for each connect()) is what "
           "differs: one TCP stream each, t0 to t5 in the ladder (and in ss at the mark \"three "
           "connected\": three ESTABLISHED pairs that differ only in the client's port).",
           "The kernel completes all three handshakes at once from the listen queue, whatever the "
           "server program is doing; accept() only takes them in order.",
           "The iterative server is busy with t0 until it closes: t2's request (sent first) waits in "
           "the kernel's queue, and the answers go out t0, t1, t2.  Had the client waited for t2's "
           "answer before asking on t0, both programs would wait forever.",
           "With a thread per client (a forked process per client works the same way), each "
           "connection has its own blocked recv(): t5, asked first, is answered at once while t3 "
           "and t4 are still open."],
    "zh": ["每个连接都到服务器的同一个端口；内核按整个地址对区分它们，所以不同的是客户端的端口"
           "（每次 connect() 都是一个新的临时端口）：每个连接一个 TCP 流，即阶梯图中的 t0 到 t5"
           "（在标记 “three connected” 处的 ss 中：三对 ESTABLISHED 连接，只有客户端端口不同）。",
           "无论服务器程序在做什么，内核都会从监听队列一下子完成全部三次握手；accept() 只是按顺序取走它们。",
           "迭代服务器在关闭 t0 之前一直忙于 t0：t2 的请求（最先发出）在内核队列里等待，"
           "应答按 t0、t1、t2 的顺序发出。如果客户端先等待 t2 的应答再在 t0 上提问，两个程序都会永远等下去。",
           "每个客户端一个线程（每个客户端 fork 一个进程也一样）时，每个连接都有自己阻塞着的 recv()："
           "最先提问的 t5 立即得到应答，而 t3 和 t4 仍然开着。"],
}
PROTO = "tcp"
PORT = 7843
HOSTS = "two"
EXPECT = """
# 1. The iterative server.
c > s  S       connect()                        # t0
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  S       connect()                        # t1
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  S       connect()                        # t2
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=9    send()                     # t2 asks first,
s > c  .       kernel:data_ack                  # (its request waits in the server's kernel)
c > s  P?.  len=9    send()                     # t1
s > c  .       kernel:data_ack
c > s  P?.  len=9    send()                     # t0 last
s > c  .       kernel:data_ack
s      recv() = 9                               # the server is still busy with t0
s > c  P?.  len=19   sendall()                  # t0 is answered first
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
s      accept()                                 # only now the server takes t1
s > c  P?.  len=19   sendall()                  # t1
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
s      accept()
s > c  P?.  len=19   sendall()                  # t2, last
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
# 2. A thread per client.
c > s  S       connect()                        # t3
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  S       connect()                        # t4
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  S       connect()                        # t5
s > c  S.      kernel:listen_queue_synack
c > s  .       kernel:handshake_ack
c > s  P?.  len=9    send()                     # t5 asks first
s > c  .       kernel:data_ack
s > c  P?.  len=19   sendall()                  # t5's thread answers at once
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
c > s  P?.  len=9    send()                     # t4
s > c  .       kernel:data_ack
s > c  P?.  len=19   sendall()
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
c > s  P?.  len=9    send()                     # t3
s > c  .       kernel:data_ack
s > c  P?.  len=19   sendall()
c > s  .       kernel:data_ack
c > s  F.      shutdown()
s > c  F.      close()
c > s  .       kernel:fin_ack   c=TIME-WAIT   s=CLOSED
"""


def handle(conn):
    request = conn.recv(1024)
    conn.sendall(b"answer to " + request)
    conn.recv(1024)  # b"": the client is done
    conn.close()


def server(host, port):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(8)

    # 1. Iterative: one client at a time, in the order accept() returns them.
    for _ in range(3):
        conn, peer = listener.accept()
        print("serving", peer)  # the same server port; the client's port differs
        handle(conn)

    # 2. Concurrent: a thread per client.
    threads = []
    for _ in range(3):
        conn, peer = listener.accept()
        t = threading.Thread(target=handle, args=(conn,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    listener.close()


def finish(s):
    print(s.recv(1024))  # the answer
    s.shutdown(socket.SHUT_WR)  # FIN: no more requests
    s.recv(1024)  # b"": wait until the server has closed too
    s.close()


def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect((host, port))  # the kernel picks a new client port for each
    return s


def client(host, port, mark):
    # 1. Three connections to the iterative server; ask on the third first.
    conns = [connect(host, port) for _ in range(3)]
    mark("three connected")  # three ESTABLISHED pairs, three client ports, one server port
    for i in (2, 1, 0):
        conns[i].send(b"request %d" % i)
    for s in conns:
        finish(s)

    # 2. Three connections to the threaded server; ask on the third first, and wait for it.
    conns = [connect(host, port) for _ in range(3)]
    for i in (2, 1, 0):
        conns[i].send(b"request %d" % (i + 3))
        finish(conns[i])
