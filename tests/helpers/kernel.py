"""The real kernel as the oracle of TCP states.

Scripted exchanges in the lab, captured, analysed, and ``ss`` in both namespaces.
The ``lab`` fixture they run in is in conftest.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP, TcpState
from tracer.core.pipeline import analyze
from tracer.core.trace import Trace
from tracer.lab.netns import CLIENT_IP, SERVER_IP, Host, Lab
from tracer.pcap.reader import read_capture

S = TcpState

SS_STATES = {
    "ESTAB": S.ESTABLISHED,
    "SYN-SENT": S.SYN_SENT,
    "SYN-RECV": S.SYN_RECEIVED,
    "FIN-WAIT-1": S.FIN_WAIT_1,
    "FIN-WAIT-2": S.FIN_WAIT_2,
    "CLOSING": S.CLOSING,
    "TIME-WAIT": S.TIME_WAIT,
    "CLOSE-WAIT": S.CLOSE_WAIT,
    "LAST-ACK": S.LAST_ACK,
}


PORT = 5000


SERVER = {
    # Reads to end-of-file, then closes: the client closes first.
    "eof_close": """
c, _ = ls.accept()
while c.recv(100):
    pass
c.close()
""",
    # Sends and closes at once: the server closes first.
    "send_close": """
c, _ = ls.accept()
c.sendall(b"hello")
c.close()
""",
    # Waits until the peer resets the connection.
    "until_reset": """
c, _ = ls.accept()
try:
    while c.recv(100):
        pass
except ConnectionResetError:
    c.close()
    sys.exit(0)
sys.exit(3)  # the client did not reset the connection
""",
    # Closes without reading what the client sent: close() with unread data.
    "close_unread": """
c, _ = ls.accept()
assert sys.stdin.readline().strip() == "go"
c.close()
""",
    # Closes when told to (for the simultaneous close).
    "close_on_cue": """
c, _ = ls.accept()
print("accepted", flush=True)
assert sys.stdin.readline().strip() == "close"
c.close()
print("closed", flush=True)
""",
}


SERVER_HEAD = """
import socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("{ip}", {port}))
ls.listen(8)
print("ready", flush=True)
"""


CLIENT = {
    "send_close": """
s = socket.create_connection(("{ip}", {port}))
s.sendall(b"hi")
s.close()
""",
    "read_close": """
s = socket.create_connection(("{ip}", {port}))
while s.recv(100):
    pass
s.close()
""",
    "refused": """
try:
    socket.create_connection(("{ip}", {port}))
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(3)  # the connection was not refused
""",
    "linger0": """
s = socket.create_connection(("{ip}", {port}))
s.sendall(b"hi")
wait_acked(s)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()
""",
    "send_wait": """
s = socket.create_connection(("{ip}", {port}))
s.sendall(b"unread data")
wait_acked(s)  # it lies unread in the server's receive queue
print("sent", flush=True)
try:
    while s.recv(100):
        pass
except ConnectionResetError:  # the server closed without reading: RST
    sys.exit(0)
sys.exit(3)
""",
    "close_on_cue": """
s = socket.create_connection(("{ip}", {port}))
print("connected", flush=True)
assert sys.stdin.readline().strip() == "close"
s.close()
print("closed", flush=True)
""",
}


CLIENT_HEAD = """
import fcntl, socket, struct, sys, termios, time
def wait_acked(s):
    # Until the peer has ACKed every byte sent (SIOCOUTQ: bytes not yet acknowledged).
    while struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\\0" * 4))[0]:
        time.sleep(0.002)
"""


@dataclass
class KernelRun:
    """A finished real exchange: the analysed capture and ``ss`` in both namespaces."""

    trace: Trace
    an: Analysis
    ss_client: str
    ss_server: str

    def stream(self) -> int:
        """The one TCP stream of the exchange."""
        assert len(self.an.tcp_streams) == 1, self.an.tcp_streams
        return 0

    def final(self) -> dict[str, TcpState]:
        """Our final state per endpoint ("ip:port")."""
        info = self.an.tcp_streams[self.stream()]
        rows = np.flatnonzero((self.trace.packets.proto == PROTO_TCP) & (self.an.stream == info.index))
        last = int(rows[-1])
        return {info.a: TcpState(int(self.an.state_a[last])), info.b: TcpState(int(self.an.state_b[last]))}

    def kernel(self, ss: tuple[str, str] | None = None) -> dict[str, TcpState]:
        """The kernel's state per endpoint of the stream; CLOSED where ss lists nothing."""
        info = self.an.tcp_streams[self.stream()]
        out = {info.a: S.CLOSED, info.b: S.CLOSED}
        for text in ss or (self.ss_client, self.ss_server):
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 5 and {parts[3], parts[4]} == {info.a, info.b}:
                    out[parts[3]] = SS_STATES[parts[0]]
        return out

    def at(self, t_ns: int) -> dict[str, TcpState]:
        """Our state per endpoint after the last packet captured before ``t_ns``."""
        info = self.an.tcp_streams[self.stream()]
        before = np.flatnonzero(self.trace.packets.ts_ns <= t_ns)
        last = int(before[-1])
        return {info.a: TcpState(int(self.an.state_a[last])), info.b: TcpState(int(self.an.state_b[last]))}


def _ss(lab: Lab) -> tuple[str, str]:
    return (
        lab.client.run(["ss", "-tanH", "state", "all"]).stdout,
        lab.server.run(["ss", "-tanH", "state", "all"]).stdout,
    )


def _nft(host: Host, *rules: str) -> None:
    host.run(["nft", "-f", "-"], input="\n".join(rules) + "\n")


def _popen(host: Host, code: str) -> subprocess.Popen[str]:
    return host.popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _line(p: subprocess.Popen[str]) -> str:
    assert p.stdout is not None
    return p.stdout.readline().strip()


def _say(p: subprocess.Popen[str], text: str) -> None:
    assert p.stdin is not None
    p.stdin.write(text + "\n")
    p.stdin.flush()


def _reap(procs: list[subprocess.Popen[str]]) -> None:
    """Kill and wait for the scenario processes that are still running."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def _settle(lab: Lab, want: dict[str, set[str]], timeout: float = 5.0) -> None:
    """Wait until ``ss`` shows each wanted endpoint in one of the wanted ss states."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = "\n".join(_ss(lab))
        states = {p[3]: p[0] for p in (line.split() for line in text.splitlines()) if len(p) >= 5}
        if all(states.get(ep, "") in ok for ep, ok in want.items()):
            return
        time.sleep(0.05)


# ss states in which a socket still waits for its peer's ACK (of a SYN or a FIN).
AWAITING_ACK = frozenset({"SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "CLOSING", "LAST-ACK"})


def _states_on(lab: Lab, port: int) -> list[str]:
    """The ss states of the sockets, in both namespaces, with ``port`` at either end."""
    out = []
    for line in "\n".join(_ss(lab)).splitlines():
        p = line.split()
        if len(p) >= 5 and any(ep.rsplit(":", 1)[-1] == str(port) for ep in p[3:5]):
            out.append(p[0])
    return out


def _wait_states(lab: Lab, port: int, want: list[str], timeout: float = 5.0) -> None:
    """Wait until the sockets on ``port`` are in exactly the ss states ``want`` (in any order).
    Falls through after ``timeout``, like ``_settle``: the test then compares what ss shows."""
    deadline = time.monotonic() + timeout
    while sorted(_states_on(lab, port)) != sorted(want) and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_acked(lab: Lab, port: int, timeout: float = 5.0) -> None:
    """Wait until no socket on ``port`` waits for an ACK any more: the last ACKs have landed.
    Falls through after ``timeout``, like ``_settle``: the test then compares what ss shows."""
    deadline = time.monotonic() + timeout
    while AWAITING_ACK.intersection(_states_on(lab, port)) and time.monotonic() < deadline:
        time.sleep(0.02)


def _ended(lab: Lab, procs: list[subprocess.Popen[str]], port: int) -> tuple[str, str]:
    """Wait for the programs to succeed and the last ACKs to land; then ``ss`` in both namespaces."""
    for p in procs:
        assert p.wait(timeout=10) == 0
    _wait_acked(lab, port)
    return _ss(lab)


def kernel_run(lab: Lab, tmp: Path, server: str | None, client: str, *, port: int = PORT) -> KernelRun:
    """Run a server and a client program in the lab and capture on the client's side."""
    pcap = tmp / "run.pcap"
    procs: list[subprocess.Popen[str]] = []
    try:
        with lab.tcpdump(lab.client, pcap, extra=["tcp"]):
            if server is not None:
                srv = _popen(lab.server, SERVER_HEAD.format(ip=SERVER_IP, port=port) + SERVER[server])
                procs.append(srv)
                assert _line(srv) == "ready"
            cli = _popen(lab.client, CLIENT_HEAD + CLIENT[client].format(ip=SERVER_IP, port=port))
            procs.append(cli)
            if server == "close_unread":
                assert _line(cli) == "sent"
                _say(procs[0], "go")
            ss_c, ss_s = _ended(lab, procs, port)
    finally:
        _reap(procs)
    tr = read_capture(pcap)
    return KernelRun(tr, analyze(tr), ss_c, ss_s)


def simultaneous_close(lab: Lab, tmp_path: Path, port: int) -> tuple[KernelRun, tuple[str, str], int]:
    """Both FINs cross: the server drops the client's FINs until it has sent its own.

    Returns the run, ``ss`` taken midway (after both close() calls) and its time.
    """
    pcap = tmp_path / "simclose.pcap"
    procs: list[subprocess.Popen[str]] = []
    try:
        with lab.tcpdump(lab.client, pcap, extra=["tcp"]):
            srv = _popen(lab.server, SERVER_HEAD.format(ip=SERVER_IP, port=port) + SERVER["close_on_cue"])
            procs.append(srv)
            assert _line(srv) == "ready"
            cli = _popen(lab.client, CLIENT_HEAD + CLIENT["close_on_cue"].format(ip=SERVER_IP, port=port))
            procs.append(cli)
            assert _line(cli) == "connected" and _line(srv) == "accepted"
            _nft(
                lab.server,
                "table inet h3sc {",
                " chain in { type filter hook input priority 0; tcp flags & fin == fin drop; }",
                "}",
            )
            _say(cli, "close")
            assert _line(cli) == "closed"
            _wait_states(lab, port, ["FIN-WAIT-1", "ESTAB"])  # the client's FIN is out (and dropped)
            _say(srv, "close")
            assert _line(srv) == "closed"
            # The server's FIN reaches the client, which is in FIN-WAIT-1; the client ACKs it.
            _wait_states(lab, port, ["CLOSING", "FIN-WAIT-2"])
            mid = _ss(lab)
            mid_ns = time.time_ns()
            _nft(lab.server, "delete table inet h3sc")
            for p in procs:
                p.wait(timeout=10)
            _settle(lab, {f"{SERVER_IP}:{port}": {"TIME-WAIT"}})
            ss_c, ss_s = _ss(lab)
    finally:
        _reap(procs)
        lab.server.run(["nft", "delete", "table", "inet", "h3sc"], check=False)
    tr = read_capture(pcap)
    return KernelRun(tr, analyze(tr), ss_c, ss_s), mid, mid_ns


SIMOPEN = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{me}", {my_port}))
print("bound", flush=True)
s.connect(("{peer}", {peer_port}))
print("connected", flush=True)
sys.stdin.readline()
"""


def simultaneous_open(lab: Lab, tmp_path: Path, cport: int, sport: int) -> KernelRun:
    """Both call connect(); the server drops the client's SYN so that the SYNs cross."""
    pcap = tmp_path / "simopen.pcap"
    procs: list[subprocess.Popen[str]] = []
    try:
        with lab.tcpdump(lab.client, pcap, extra=["tcp"]):
            _nft(
                lab.server,
                "table inet h3so {",
                " chain in { type filter hook input priority 0; tcp flags & (syn | ack) == syn drop; }",
                "}",
            )
            code = SIMOPEN.format(me=CLIENT_IP, my_port=cport, peer=SERVER_IP, peer_port=sport)
            cli = _popen(lab.client, code)
            procs.append(cli)
            assert _line(cli) == "bound"
            _wait_states(lab, sport, ["SYN-SENT"])  # the client's SYN is on the wire (and dropped)
            code = SIMOPEN.format(me=SERVER_IP, my_port=sport, peer=CLIENT_IP, peer_port=cport)
            srv = _popen(lab.server, code)
            procs.append(srv)
            assert _line(srv) == "bound"
            assert _line(srv) == "connected" and _line(cli) == "connected"
            _nft(lab.server, "delete table inet h3so")
            _wait_acked(lab, sport)
            ss_c, ss_s = _ss(lab)
    finally:
        _reap(procs)
        lab.server.run(["nft", "delete", "table", "inet", "h3so"], check=False)
    tr = read_capture(pcap)
    return KernelRun(tr, analyze(tr), ss_c, ss_s)


HALF_SERVER = """
c, _ = ls.accept()
while c.recv(100):
    pass
print("eof", flush=True)
assert sys.stdin.readline().strip() == "reply"
c.sendall(b"bye")
c.close()
"""


HALF_CLIENT = """
s = socket.create_connection(("{ip}", {port}))
s.shutdown(socket.SHUT_WR)
while s.recv(100):
    pass
s.close()
"""


def half_close(lab: Lab, tmp_path: Path, port: int) -> tuple[KernelRun, tuple[str, str], int]:
    """The client calls shutdown(SHUT_WR) and reads; the server replies after EOF, then closes."""
    pcap = tmp_path / "half.pcap"
    procs: list[subprocess.Popen[str]] = []
    try:
        with lab.tcpdump(lab.client, pcap, extra=["tcp"]):
            srv = _popen(lab.server, SERVER_HEAD.format(ip=SERVER_IP, port=port) + HALF_SERVER)
            procs.append(srv)
            assert _line(srv) == "ready"
            cli = _popen(lab.client, CLIENT_HEAD + HALF_CLIENT.format(ip=SERVER_IP, port=port))
            procs.append(cli)
            assert _line(srv) == "eof"
            _wait_acked(lab, port)  # the client's FIN is ACKed: FIN-WAIT-2 / CLOSE-WAIT
            mid = _ss(lab)
            mid_ns = time.time_ns()
            _say(srv, "reply")
            ss_c, ss_s = _ended(lab, procs, port)
    finally:
        _reap(procs)
    tr = read_capture(pcap)
    return KernelRun(tr, analyze(tr), ss_c, ss_s), mid, mid_ns


def witness_instances(owner_pid: int) -> list[str]:
    """The kernel witness's tracefs instances a process left (``tracer-PID-N``), looked up
    in a tracefs mounted for the purpose where none is (a fresh machine mounts none)."""
    import os
    import tempfile

    from tracer.lab.witness import find_tracefs

    root, where = find_tracefs(), None
    if root is None:
        where = tempfile.mkdtemp(prefix="tracer-test-tracefs-")
        subprocess.run(["mount", "-t", "tracefs", "nodev", where], check=True)
        root = Path(where)
    try:
        names = (d.name for d in (root / "instances").iterdir())
        return sorted(n for n in names if n.startswith(f"tracer-{owner_pid}-"))
    finally:
        if where is not None:
            subprocess.run(["umount", where], check=False)
            os.rmdir(where)


def assert_kernel_coverage(out: Path, label: str, *, netfilter: bool = True) -> None:
    """The saved run ``out`` has the kernel's account of every TCP frame: an origin for each,
    no witness event lost (overrun), the sockets' state changes, and the listen-queue
    counters in agreement with the unanswered SYNs (a SYN no listener answered is one the
    kernel counted as an overflow).  ``netfilter=False``: the run had no nft drop rule
    (no IMPAIR), so no frame may be said dropped by netfilter (an skb address the kernel
    reused must not pass for a frame's)."""
    from tracer.pcap.reader import read_capture

    trace = read_capture(out)
    k = trace.kernel
    assert k is not None, [w.message for w in trace.warnings]
    assert k.overrun == 0
    assert not [w.message for w in trace.warnings if w.code == "kernel_listen_overflow_mismatch"]
    t = trace.packets
    tcp = [i + 1 for i in range(len(t)) if t.proto_name(i) == "tcp"]
    origins = k.origin_of()
    missing = [n for n in tcp if n not in origins]
    assert not missing, f"{label}: TCP frames without a kernel origin: {missing}"
    if tcp:  # every TCP connection's sockets changed state in the kernel's record
        assert k.states
    if not netfilter:
        assert not [d for d in k.drops if d.reason == "NETFILTER_DROP"], f"{label}: {k.drops}"
