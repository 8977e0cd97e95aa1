"""Kernel socket states from ``ss`` in real lab namespaces.

A server listens with a backlog of 4 and never calls accept(); a client opens two
connections.  ss(8) documents that for a listening socket Recv-Q is the accept
queue's length and Send-Q the backlog, so the kernel must report LISTEN 2/4 on the
server and two ESTABLISHED sockets on each side.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from conftest import wait_for
from tracer.lab.kernel_states import parse_ss, snapshot
from tracer.lab.netns import CLIENT_IP, SERVER_IP, Lab

pytestmark = pytest.mark.lab

PORT = 7300
SERVER = f"""
import socket, time
s = socket.socket()
s.bind(("{SERVER_IP}", {PORT}))
s.listen(4)
print("listening", flush=True)
time.sleep(30)
"""
CLIENT = f"""
import socket, time
a = socket.create_connection(("{SERVER_IP}", {PORT}))
b = socket.create_connection(("{SERVER_IP}", {PORT}))
print("connected", flush=True)
time.sleep(30)
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with Lab(prefix="trcks") as lab:
        yield lab


def test_listen_queue_and_established(lab: Lab) -> None:
    procs = []
    try:
        for host, code, word in ((lab.server, SERVER, "listening"), (lab.client, CLIENT, "connected")):
            p = host.popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
            procs.append(p)
            assert p.stdout is not None and p.stdout.readline().strip() == word
        wait_for(lambda: sum(s.state == "ESTABLISHED" for s in snapshot(lab.server, "server", "mid")) == 2,
                 5, "the server's kernel to have both handshakes' last ACKs (ss: 2 ESTABLISHED)")
        t0 = time.time_ns()
        server = snapshot(lab.server, "server", "mid")
        client = snapshot(lab.client, "client", "mid")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    listen = [s for s in server if s.state == "LISTEN"]
    assert len(listen) == 1
    assert (listen[0].local, listen[0].recv_q, listen[0].send_q) == (f"{SERVER_IP}:{PORT}", 2, 4)
    est_server = {s.remote for s in server if s.state == "ESTABLISHED"}
    est_client = {s.local for s in client if s.state == "ESTABLISHED" and s.proto == "tcp"}
    assert len(est_client) == 2 and est_server == est_client
    assert all(ep.startswith(f"{CLIENT_IP}:") for ep in est_client)
    assert all(s.host == "client" and s.label == "mid" and s.t_ns >= t0 for s in client)


def test_parse_ss_real_output_with_ipv6_and_scopes(lab: Lab) -> None:
    # A UDP socket bound to an IPv6 address and one to a scoped address, as ss prints them.
    code = "import socket, time\n" \
           "u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(('fd00:77::2', 7301))\n" \
           "v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n" \
           "v.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'lo'); v.bind(('127.0.0.1', 7302))\n" \
           "print('ok', flush=True); time.sleep(30)\n"
    p = lab.server.popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ok"
        text = lab.server.run(["ss", "-uanH"]).stdout
    finally:
        p.kill()
        p.wait()
    assert "%lo" in text  # the scoped form really occurs
    states = parse_ss(text, "udp", "server", 1)
    got = {(s.state, s.local) for s in states}
    assert got >= {("UNCONN", "[fd00:77::2]:7301"), ("UNCONN", "127.0.0.1:7302")}
