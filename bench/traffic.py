"""Traffic programs for the benchmark capture, run inside the lab's namespaces.

Roles (first argument):
  short-server  request/response server on several ports (one selectors loop);
  bulk-server   bulk sink/source (one thread per connection);
  short-client  many short connections: handshake, request, response, close;
  bulk-client   one long paced transfer, upload or download.

Every role stops by itself (count, byte budget or ``--deadline`` seconds) and on
SIGTERM/SIGINT finishes its current exchange and exits; servers print ``ready``
once listening.  Only the standard library is used, so this file runs under any
Python in the namespaces.
"""

from __future__ import annotations

import argparse
import random
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from types import FrameType

STOP = threading.Event()
CHUNK = 65536
FILL = b"x" * (1 << 20)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    STOP.set()


def _stopping(deadline: float) -> bool:
    return STOP.is_set() or time.monotonic() > deadline


def _listen(host: str, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(4096)
    return s


# ---------------------------------------------------------------- short server


def short_server(host: str, ports: list[int], deadline: float) -> None:
    """Answer ``<size> <mode> <padding>\\n`` with ``size`` bytes; mode ``s`` = server closes first."""
    sel = selectors.DefaultSelector()
    for port in ports:
        ls = _listen(host, port)
        ls.setblocking(False)
        sel.register(ls, selectors.EVENT_READ, None)
    bufs: dict[socket.socket, bytearray] = {}
    print("ready", flush=True)
    while not _stopping(deadline):
        for key, _ in sel.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data is None:  # listening socket: accept everything pending
                while True:
                    try:
                        conn, _addr = sock.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    bufs[conn] = bytearray()
                    sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # reset by the client (its abortive close)
                data = b""
            if not data:  # peer closed (or reset): close our side too
                sel.unregister(sock)
                del bufs[sock]
                sock.close()
                continue
            buf = bufs[sock]
            buf += data
            if b"\n" not in buf:
                continue
            line = bytes(buf[: buf.index(b"\n")])
            buf.clear()
            fields = line.split()
            try:
                size, mode = int(fields[0]), fields[1]
            except (IndexError, ValueError):
                size, mode = 0, b"s"
            _send_all(sock, FILL[:size])
            if mode == b"s":  # server-initiated close
                sel.unregister(sock)
                del bufs[sock]
                sock.close()


def _send_all(sock: socket.socket, data: bytes) -> None:
    """Send on a non-blocking socket; responses fit the send buffer, so waiting is rare."""
    view = memoryview(data)
    while view:
        try:
            n = sock.send(view)
        except BlockingIOError:
            select.select([], [sock], [], 1.0)
            continue
        except OSError:
            return
        view = view[n:]


# ---------------------------------------------------------------- bulk server


def bulk_server(host: str, port: int, deadline: float) -> None:
    """Header ``up <bytes> <rate>\\n`` = drain; ``down <bytes> <rate>\\n`` = send, paced."""
    ls = _listen(host, port)
    ls.settimeout(0.2)
    print("ready", flush=True)
    while not _stopping(deadline):
        try:
            conn, _addr = ls.accept()
        except TimeoutError:
            continue
        threading.Thread(target=_bulk_conn, args=(conn, deadline), daemon=True).start()


def _bulk_conn(conn: socket.socket, deadline: float) -> None:
    with conn:
        conn.settimeout(10)
        try:
            header = b""
            while b"\n" not in header:
                part = conn.recv(256)
                if not part:
                    return
                header += part
            line, _rest = header.split(b"\n", 1)
            direction, nbytes, rate = line.split()
            if direction == b"up":
                while conn.recv(CHUNK):
                    pass
            else:
                _paced_send(conn, int(nbytes), float(rate), deadline, watch_peer=True)
        except (OSError, ValueError):
            return


def _paced_send(sock: socket.socket, nbytes: int, rate: float, deadline: float,
                watch_peer: bool = False) -> None:
    """Send ``nbytes`` at ``rate`` bytes/s; stop early on STOP, deadline or the peer's FIN."""
    t0 = time.monotonic()
    sent = 0
    while sent < nbytes and not _stopping(deadline):
        if watch_peer and select.select([sock], [], [], 0)[0] and not sock.recv(CHUNK):
            return  # the client half-closed: it wants the transfer to end
        n = min(CHUNK, nbytes - sent)
        sock.sendall(FILL[:n])
        sent += n
        ahead = t0 + sent / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


# ---------------------------------------------------------------- clients


def short_client(host: str, ports: list[int], closed_port: int, count: int, seed: int,
                 deadline: float) -> None:
    """``count`` connections: mostly client-closes-first, some server-first, some RST."""
    rng = random.Random(seed)
    done = refused = errors = 0
    for i in range(count):
        if _stopping(deadline):
            break
        r = rng.random()
        if r < 0.01:  # connection refused: SYN answered by RST
            port, mode = closed_port, b"c"
        else:
            port = ports[i % len(ports)]
            mode = b"c" if r < 0.80 else (b"s" if r < 0.95 else b"r")
        size = rng.choice((64, 200, 512, 1200, 1400, 2900, 4000))
        pad = b"p" * rng.randrange(60, 400)  # requests big enough to be "data" for the loss rule
        try:
            _one_exchange(host, port, size, mode, pad)
            done += 1
        except ConnectionRefusedError:
            refused += 1
        except OSError:
            errors += 1
    print(f"short-client done={done} refused={refused} errors={errors}", flush=True)


def _one_exchange(host: str, port: int, size: int, mode: bytes, pad: bytes) -> None:
    s = socket.create_connection((host, port), timeout=10)
    try:
        s.sendall(b"%d %s %s\n" % (size, mode, pad))
        got = 0
        while got < size:
            part = s.recv(CHUNK)
            if not part:
                break
            got += len(part)
        if mode == b"s":  # wait for the server's FIN before closing
            while s.recv(CHUNK):
                pass
        elif mode == b"r":  # abortive close: linger 0 sends RST
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    finally:
        s.close()


def bulk_client(host: str, port: int, direction: str, nbytes: int, rate: float,
                deadline: float) -> None:
    s = socket.create_connection((host, port), timeout=10)
    with s:
        s.sendall(f"{direction} {nbytes} {rate}\n".encode())
        if direction == "up":
            _paced_send(s, nbytes, rate, deadline)
            s.shutdown(socket.SHUT_WR)
            while s.recv(CHUNK):
                pass
        else:
            s.settimeout(0.2)
            half_closed = False
            while True:
                if not half_closed and _stopping(deadline):
                    s.shutdown(socket.SHUT_WR)  # ask the server to stop; drain to its FIN
                    half_closed = True
                try:
                    if not s.recv(CHUNK):
                        break
                except TimeoutError:
                    continue
    print(f"bulk-client {direction} done", flush=True)


def _ports(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("role", choices=["short-server", "bulk-server", "short-client", "bulk-client"])
    p.add_argument("--host", required=True)
    p.add_argument("--ports", default="5000-5007")
    p.add_argument("--closed-port", type=int, default=4999)
    p.add_argument("--bulk-port", type=int, default=6000)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--direction", choices=["up", "down"], default="up")
    p.add_argument("--bytes", type=int, default=10_000_000)
    p.add_argument("--rate", type=float, default=10e6, help="bytes per second")
    p.add_argument("--deadline", type=float, default=120.0, help="seconds from start")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    deadline = time.monotonic() + a.deadline
    if a.role == "short-server":
        short_server(a.host, _ports(a.ports), deadline)
    elif a.role == "bulk-server":
        bulk_server(a.host, a.bulk_port, deadline)
    elif a.role == "short-client":
        short_client(a.host, _ports(a.ports), a.closed_port, a.count, a.seed, deadline)
    else:
        bulk_client(a.host, a.bulk_port, a.direction, a.bytes, a.rate, deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
