"""Packets tied to the socket calls that made them, on the real kernel.

One run of the two-host lab: a server and a client script, each under the
socket-call recorder in its own namespace, captured by tcpdump on the client's
interface.  The scenarios: a TCP hello (the client send()s and sendall()s, the
server sendall()s twice, both close), a connect() to a closed port (RST,
ECONNREFUSED), a close() with unread data (RST; the peer's recv() fails with
ECONNRESET), a close() with SO_LINGER 0 (RST), a UDP echo by sendto(), and a
connected UDP socket whose recv() fails with ECONNREFUSED (ICMP port unreachable).

Expectations come from the scenario scripts (which bytes each call wrote), from
tshark (relative sequence numbers and payloads, per frame) and from RFC 9293 /
RFC 1122 (who sends what); never from tracer's own output.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import tshark_fields
from tracer.core.analysis import Analysis
from tracer.core.attribution import CauseColumns, attribute_calls, cause_at, infer_causes, link_errors
from tracer.core.model import ACK, FIN, RST, SYN, CauseBy, Side, SocketCall
from tracer.core.pipeline import analyze
from tracer.core.seq_analysis import analyze_tcp
from tracer.core.streams import assign_streams
from tracer.core.tcp_states import track_states
from tracer.core.trace import Trace
from tracer.export.json_export import write_json
from tracer.lab import recorder
from tracer.lab.netns import Lab
from tracer.pcap.reader import read_capture

pytestmark = [pytest.mark.lab, pytest.mark.tshark]

BIG = bytes(range(256)) * 20  # several segments
SERVER_SENDS = (b"hello, client one\n", BIG)
CLIENT_SENDS = (b"client", b" one\n")

SERVER = """
import select
import socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{ip}", 7000))
srv.listen(8)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("{ip}", 9000))
print("ready", flush=True)
conn, _ = srv.accept()
data = b""
while not data.endswith(b"\\n"):
    data += conn.recv(100)
conn.sendall(b"hello, " + data)
conn.sendall(bytes(range(256)) * 20)
conn.close()
conn2, _ = srv.accept()
select.select([conn2], [], [])  # the client's bytes have arrived: close with them unread
conn2.close()
conn3, _ = srv.accept()
try:
    conn3.recv(100)
except ConnectionResetError:
    print("reset", flush=True)
conn3.close()
data, peer = udp.recvfrom(100)
udp.sendto(data.upper(), peer)
udp.close()
srv.close()
"""

CLIENT = """
import socket
import struct
import time
c = socket.create_connection(("{ip}", 7000))
c.send(b"client")
c.sendall(b" one\\n")
got = b""
while True:
    chunk = c.recv(65536)
    if not chunk:
        break
    got += chunk
assert got == b"hello, client one\\n" + bytes(range(256)) * 20, len(got)
c.close()
r = socket.socket()
try:
    r.connect(("{ip}", 7001))
except ConnectionRefusedError:
    pass
r.close()
a = socket.create_connection(("{ip}", 7000))
a.sendall(b"never read")
try:
    a.recv(100)
except ConnectionResetError:
    pass
a.close()
z = socket.create_connection(("{ip}", 7000))
for _ in range(1000):  # until the server blocks in recv() (at most ~5 s)
    if open("/proc/{server_pid}/wchan").read() == "wait_woken":
        break
    time.sleep(0.005)
else:
    raise SystemExit("the server never blocked in recv() (/proc/{server_pid}/wchan)")
z.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
z.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"ping", ("{ip}", 9000))
assert u.recvfrom(100)[0] == b"PING"
u.close()
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.connect(("{ip}", 9001))
v.send(b"anyone?")
try:
    v.recv(100)
except ConnectionRefusedError:
    pass
v.close()
"""


@dataclass(frozen=True)
class Run:
    pcap: Path
    calls: tuple[SocketCall, ...]
    trace: Trace
    an: Analysis
    server_ip: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("attr")
    rec = [sys.executable, "-m", "tracer.lab.recorder"]
    with Lab(prefix="trcatt") as lab:
        srv_py, cli_py = tmp / "server.py", tmp / "client.py"
        srv_py.write_text(SERVER.format(ip=lab.server.ip))
        s_calls, c_calls, pcap = tmp / "server.jsonl", tmp / "client.jsonl", tmp / "run.pcap"
        with lab.tcpdump(lab.client, pcap):
            server = lab.server.popen([*rec, "--out", str(s_calls), "--side", "server", str(srv_py)],
                                      stdout=subprocess.PIPE)
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                # ip netns exec and the recorder exec in place: server.pid is the server program's.
                cli_py.write_text(CLIENT.format(ip=lab.server.ip, server_pid=server.pid))
                client = lab.client.run([*rec, "--out", str(c_calls), "--side", "client", str(cli_py)],
                                        timeout=10, check=False)
                assert client.returncode == 0, client.stderr
                assert server.wait(timeout=10) == 0
                assert server.stdout.read().strip() == "reset"
            finally:
                server.kill()
                server.wait()
        server_ip = lab.server.ip
    client_calls = recorder.load_calls(c_calls, "client")
    calls = client_calls + recorder.load_calls(s_calls, "server", id_offset=len(client_calls))
    trace = Trace(packets=read_capture(pcap).packets, calls=calls)
    return Run(pcap, calls, trace, analyze(trace), server_ip)


def _calls(r: Run, side: str, name: str) -> list[SocketCall]:
    return [c for c in r.calls if c.side == side and c.call == name]


def _call(r: Run, cid: int) -> SocketCall:
    return next(c for c in r.calls if c.id == cid)


def _tcp_stream_rows(r: Run, port: int, nth: int = 0) -> list[int]:
    """Rows of the ``nth`` TCP conversation with the server's ``port``."""
    t = r.trace.packets
    streams = sorted({int(r.an.stream[i]) for i in range(len(t))
                      if t.proto_name(i) == "tcp" and port in (int(t.sport[i]), int(t.dport[i]))})
    st = streams[nth]
    return [i for i in range(len(t)) if t.proto_name(i) == "tcp" and int(r.an.stream[i]) == st]


def _is(t_flags: int, want: int, mask: int = SYN | ACK | FIN | RST) -> bool:
    return t_flags & mask == want


def test_hello_handshake_and_close_are_tied_to_calls(run: Run) -> None:
    r, t = run, run.trace.packets
    rows = _tcp_stream_rows(r, 7000, 0)
    flags = [int(t.tcp_flags[i]) for i in rows]
    syn, synack, third = rows[0], rows[1], rows[2]
    assert _is(flags[0], SYN) and _is(flags[1], SYN | ACK) and _is(flags[2], ACK)

    c = cause_at(_cols(r), syn)
    connect = _calls(r, "client", "connect")[0]
    assert (c.by, c.side, c.call, c.call_id, c.inferred) == (
        CauseBy.CALL, Side.CLIENT, "connect", connect.id, False)
    assert connect.t_enter_ns <= int(t.ts_ns[syn]) <= (connect.t_exit_ns or 0)

    # RFC 9293 3.5: the server's kernel answers from the listen queue; accept() only
    # takes the finished connection, so it returns after the SYN-ACK.
    c = cause_at(_cols(r), synack)
    assert (c.by, c.side, c.call, c.reason, c.inferred) == (CauseBy.KERNEL, Side.SERVER, None,
                                                             "listen_queue_synack", False)
    accept = _calls(r, "server", "accept")[0]
    assert (accept.t_exit_ns or 0) >= int(t.ts_ns[synack])
    c = cause_at(_cols(r), third)
    assert (c.by, c.side, c.reason, c.inferred) == (CauseBy.KERNEL, Side.CLIENT, "handshake_ack", False)

    # Each FIN: the sender's close() (the only one on that socket) entered before it.
    fins = [i for i in rows if int(t.tcp_flags[i]) & FIN]
    assert len(fins) == 2
    for i in fins:
        c = cause_at(_cols(r), i)
        side = "client" if c.side == Side.CLIENT else "server"
        call = _call(r, c.call_id or -1)
        assert (c.by, c.call, c.inferred) == (CauseBy.CALL, "close", False)
        assert (call.call, call.side) == ("close", side)
        assert call.t_enter_ns <= int(t.ts_ns[i])
        sender = call.local if side == "server" else _calls(r, "client", "connect")[0].local
        assert t.src_endpoint(i) == sender
    # Every other packet of the hello is the kernel's or a call's, never a guess.
    assert not any(bool(r.an.cause_inferred[i]) for i in rows)


def _cols(r: Run) -> CauseColumns:
    a = r.an
    return CauseColumns(
        a.cause_by, a.cause_side, a.cause_call, a.cause_reason, a.cause_inferred, a.cause_call_id)


def test_data_segments_belong_to_the_call_that_wrote_their_bytes(run: Run) -> None:
    r = run
    rows = _tcp_stream_rows(r, 7000, 0)
    tsh = tshark_fields(r.pcap, "tcp.seq", "tcp.len", "tcp.payload")
    sends = {"client": [c for c in r.calls if c.side == "client" and c.call in ("send", "sendall")][:2],
             "server": [c for c in r.calls if c.side == "server" and c.call in ("send", "sendall")][:2]}
    wrote = {"client": CLIENT_SENDS, "server": SERVER_SENDS}
    for side in ("client", "server"):
        assert [c.call for c in sends[side]] == (["send", "sendall"] if side == "client" else ["sendall"] * 2)
    covered = {"client": 0, "server": 0}
    for i in rows:
        seq, length, payload = tsh[i]
        if int(length) == 0:
            continue
        c = cause_at(_cols(r), i)
        side = "client" if c.side == Side.CLIENT else "server"
        stream = b"".join(wrote[side])
        start = int(seq) - 1  # byte k (1-based) of the stream is relative seq k (RFC 9293 3.4)
        assert bytes.fromhex(payload) == stream[start : start + int(length)]
        assert (c.by, c.inferred) == (CauseBy.CALL, False)
        k = [s.id for s in sends[side]].index(c.call_id)
        lo = sum(len(b) for b in wrote[side][:k])
        assert lo <= start < lo + len(wrote[side][k]), (i, side, k, start)
        assert c.call == sends[side][k].call
        covered[side] += int(length)
    assert covered == {"client": len(b"".join(CLIENT_SENDS)), "server": len(b"".join(SERVER_SENDS))}


def test_refused_connect_is_linked_to_the_rst(run: Run) -> None:
    r, t = run, run.trace.packets
    rows = _tcp_stream_rows(r, 7001)
    assert len(rows) == 2 and _is(int(t.tcp_flags[rows[0]]), SYN)
    assert int(t.tcp_flags[rows[1]]) & RST
    refused = _calls(r, "client", "connect")[1]
    assert refused.errno == "ECONNREFUSED" and dict(refused.args)["address"] == f"{r.server_ip}:7001"
    c = cause_at(_cols(r), rows[0])
    assert (c.by, c.call, c.call_id, c.inferred) == (CauseBy.CALL, "connect", refused.id, False)
    c = cause_at(_cols(r), rows[1])  # RFC 9293 3.10.7.1: no listener, the kernel resets
    assert (c.by, c.side, c.reason, c.inferred) == (CauseBy.KERNEL, Side.SERVER, "rst_no_listener", False)
    assert r.an.error_links[refused.id] == rows[1]
    # The JSON contract carries the link as the call's error_packet (1-based no).
    out = io.StringIO()
    write_json(r.trace, r.an, out)
    calls = {c["id"]: c for c in json.loads(out.getvalue())["calls"]}
    assert calls[refused.id]["error_packet"] == rows[1] + 1
    assert calls[_calls(r, "client", "connect")[0].id]["error_packet"] is None


def test_close_with_unread_data_sends_rst_by_close(run: Run) -> None:
    r, t = run, run.trace.packets
    rows = _tcp_stream_rows(r, 7000, 1)
    rsts = [i for i in rows if int(t.tcp_flags[i]) & RST]
    assert len(rsts) == 1
    # RFC 2525 2.17 / RFC 1122 4.2.2.13: close() with unread data resets.
    c = cause_at(_cols(r), rsts[0])
    close = _calls(r, "server", "close")[1]  # conn.close(), then conn2.close()
    assert close.remote == t.dst_endpoint(rsts[0])
    assert (c.by, c.side, c.call, c.call_id, c.reason, c.inferred) == (
        CauseBy.CALL, Side.SERVER, "close", close.id, "rst_abort", False)
    reset = next(x for x in _calls(r, "client", "recv") if x.errno == "ECONNRESET")
    assert r.an.error_links[reset.id] == rsts[0]


def test_close_with_so_linger_zero_sends_rst_by_close(run: Run) -> None:
    r, t = run, run.trace.packets
    rows = _tcp_stream_rows(r, 7000, 2)
    rsts = [i for i in rows if int(t.tcp_flags[i]) & RST]
    assert len(rsts) == 1 and not any(int(t.tcp_flags[i]) & FIN for i in rows)
    close = next(c for c in _calls(r, "client", "close") if c.local == t.src_endpoint(rsts[0]))
    assert any(a == ("option", "SO_LINGER") for x in _calls(r, "client", "setsockopt") for a in x.args)
    c = cause_at(_cols(r), rsts[0])
    assert (c.by, c.side, c.call, c.call_id, c.reason, c.inferred) == (
        CauseBy.CALL, Side.CLIENT, "close", close.id, "rst_abort", False)
    reset = next(x for x in _calls(r, "server", "recv") if x.errno == "ECONNRESET")
    assert r.an.error_links[reset.id] == rsts[0]


def test_udp_datagrams_and_refused_recv(run: Run) -> None:
    r, t = run, run.trace.packets
    udp = [i for i in range(len(t)) if t.proto_name(i) == "udp"]
    assert len(udp) == 3  # ping, PING, anyone?
    for i, side in zip(udp, ("client", "server", "client"), strict=True):
        c = cause_at(_cols(r), i)
        call = _call(r, c.call_id or -1)
        assert (c.by, c.inferred, call.side) == (CauseBy.CALL, False, side)
        assert call.call == ("send" if i == udp[2] else "sendto")
        assert call.t_enter_ns <= int(t.ts_ns[i])
    icmp = [i for i in range(len(t)) if t.proto_name(i) == "icmp"]
    assert len(icmp) == 1 and (int(t.icmp_type[icmp[0]]), int(t.icmp_code[icmp[0]])) == (3, 3)
    c = cause_at(_cols(r), icmp[0])
    assert (c.by, c.reason, c.inferred) == (CauseBy.KERNEL, "icmp_port_unreachable", False)
    recv = next(x for x in _calls(r, "client", "recv") if x.errno == "ECONNREFUSED")
    assert r.an.error_links[recv.id] == icmp[0]
    assert t.icmp_quotes[icmp[0]].dport == 9001


def test_without_calls_nothing_changes(run: Run) -> None:
    t = run.trace.packets
    s = assign_streams(t)
    a = analyze_tcp(t, s, extras=False)
    sa, sb = track_states(t, s, a)
    causes = infer_causes(t, s, a, sa, sb)
    assert attribute_calls(t, s, a, causes, ()) is causes
    assert link_errors(t, s, ()) == {}
    assert analyze(Trace(packets=t)).error_links == {}
