"""The live capture path on the real kernel: raw frames, kernel timestamps, no loss.

Oracles: tcpdump capturing the same frames in the same namespace (read back by
tshark), the namespace's own SNMP counters, and tshark's retransmission analysis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import tshark_fields, wait_for
from tracer.errors import CaptureError
from tracer.lab.netns import Host, Lab, LabError
from tracer.lab.sniffer import (
    LiveCapture,
    Sniffer,
    counters_delta,
    kernel_counters,
    tcp_frames,
    tcp_gap_warning,
    tcp_segments,
)
from tracer.pcap.reader import read_capture

pytestmark = [pytest.mark.lab, pytest.mark.tshark]

PORT = 9000
# Echo server: answers each message (below the MSS, so no GSO super-frames) and
# closes when the client does.
ECHO_SERVER = f"""
import socket
s = socket.create_server(("", {PORT}), family=socket.AF_INET6, dualstack_ipv6=True)
print("ready", flush=True)
c, _ = s.accept()
while data := c.recv(1000):
    c.sendall(data.upper())
c.close()
"""
CLIENT = f"""
import socket, sys
c = socket.create_connection((sys.argv[1], {PORT}))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for i in range(int(sys.argv[2])):
    msg = b"message %d" % i
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        got += c.recv(1000)
    assert got == msg.upper(), got
c.close()
"""
UDP_BURST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[2])):
    s.sendto(b"%08d" % i, (sys.argv[1], 9999))
"""
FIELDS = ("frame.time_epoch", "frame.len", "frame.cap_len", "ip.src", "ipv6.src", "tcp.srcport",
          "tcp.seq_raw", "tcp.flags", "udp.length", "icmp.type")


DROP_FIRST_REPLY = f"""
table inet l1drop {{
    chain inp {{
        type filter hook input priority 0; policy accept;
        tcp sport {PORT} tcp flags & syn == 0 meta length > 52 quota until 100 bytes drop
    }}
}}
"""


def _ns(epoch: str) -> int:
    sec, _, frac = epoch.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0"))


def _same_as_tcpdump(ours: Path, theirs: Path, exact_from: str | None) -> None:
    """The same frames as tcpdump's, per tshark, with kernel timestamps.

    Each packet socket stamps a received frame when the frame is handed to it
    (tcpdump's ring a microsecond after ours), so those agree within 100 us; a
    frame the host sends (source ``exact_from``) is stamped once for every tap,
    so those agree to the nanosecond.
    """
    mine, ref = tshark_fields(ours, *FIELDS), tshark_fields(theirs, *FIELDS)
    assert [r[1:] for r in mine] == [r[1:] for r in ref]
    for a, b in zip(mine, ref, strict=True):
        if exact_from is not None and exact_from in (a[3], a[4]):
            assert a[0] == b[0], (a, b)
        assert abs(_ns(a[0]) - _ns(b[0])) < 100_000, (a, b)
    assert abs(_ns(mine[0][0]) / 1e9 - time.time()) < 60  # the real-time clock, not a counter


def _exchange(lab: Lab, server_addr: str, messages: int) -> None:
    srv = lab.server.popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        lab.client.run([sys.executable, "-c", CLIENT, server_addr, str(messages)], timeout=20)
        assert srv.wait(timeout=10) == 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def _udp(cap: LiveCapture) -> int:
    """UDP frames captured (the closed port's ICMP answers, rate-limited, are not counted)."""
    return int((cap.trace.packets.proto == 1).sum())


def _udp_written(path: Path | None) -> int:
    """UDP frames already in the worker's capture file (which it may be writing)."""
    try:
        return int((read_capture(path).packets.proto == 1).sum()) if path is not None else 0
    except CaptureError:
        return 0


def _nft(host: Host, rules: str) -> None:
    host.run(["nft", "-f", "-"], input=rules)


def test_loopback_frames_counted_once_with_tcpdumps_timestamps(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours.pcap", tmp_path / "tcpdump.pcap"
    with Lab(prefix="trcsn", loopback=True) as lab:
        h = lab.server
        before = kernel_counters(h)
        with lab.tcpdump(h, theirs, extra=["--time-stamp-precision=nano"]), Sniffer(h, path=ours) as s:
            _exchange(lab, "::1", 3)
            _exchange(lab, "127.0.0.1", 2)
            lab.client.run([sys.executable, "-c", UDP_BURST, "127.0.0.1", "3"])
        delta = counters_delta(before, kernel_counters(h))
    cap = s.result
    assert cap is not None and cap.path == ours and cap.stats.complete
    st = cap.stats
    # lo hands the packet socket every frame twice; each is kept once.
    assert st.duplicates == st.frames and st.received == 2 * st.frames
    assert st.kernel_packets == st.received and st.kernel_drops == 0
    # TCP: one stack sends and receives each segment; UDP datagrams to a closed port
    # each draw an ICMP port unreachable.
    assert delta["Tcp.RetransSegs"] == 0
    assert tcp_frames(cap.trace.packets) == delta["Tcp.OutSegs"] == tcp_segments(delta, loopback=True)
    assert delta["Udp.OutDatagrams"] == 3 and delta["Udp.NoPorts"] == 3
    assert st.frames == delta["Tcp.OutSegs"] + 3 + delta["Icmp.OutMsgs"]
    assert tcp_gap_warning(cap.trace.packets, delta, h) is None
    assert cap.trace.warnings == ()
    _same_as_tcpdump(ours, theirs, exact_from=None)
    assert len(tshark_fields(ours, "frame.len")) == st.frames


def test_veth_tcp_frames_equal_kernel_segments_with_a_retransmission(tmp_path: Path) -> None:
    pcap, theirs = tmp_path / "server.pcap", tmp_path / "tcpdump.pcap"
    with Lab(prefix="trcsn") as lab:
        # The client's input drops the server's first reply once: the server
        # retransmits it.  Impair the peer, not the sniffed host: a segment dropped
        # in the sniffed host's own output hook is counted in OutSegs but never
        # reaches the wire.
        # Data segments from the server are > 52 bytes (IP 20 + TCP 32); the quota
        # (bytes seen by the rule) lets the rule match only the first one.
        _nft(lab.client, DROP_FIRST_REPLY)
        before = kernel_counters(lab.server)
        with lab.tcpdump(lab.server, theirs, extra=["--time-stamp-precision=nano"]), \
                Sniffer(lab.server, path=pcap) as s:
            _exchange(lab, lab.server.ip, 4)
        delta = counters_delta(before, kernel_counters(lab.server))
    cap = s.result
    assert cap is not None and cap.stats.complete and cap.stats.kernel_drops == 0
    assert cap.stats.duplicates == 0
    assert delta["Tcp.RetransSegs"] >= 1
    # A retransmission counts in RetransSegs, not OutSegs (RFC 1213 tcpOutSegs).
    sent = delta["Tcp.OutSegs"] + delta["Tcp.RetransSegs"]
    assert tcp_frames(cap.trace.packets) == tcp_segments(delta) == sent + delta["Tcp.InSegs"]
    assert cap.stats.frames == tcp_frames(cap.trace.packets)
    assert cap.trace.warnings == ()
    retrans = [r for r in tshark_fields(pcap, "tcp.analysis.retransmission") if r[0]]
    assert len(retrans) == delta["Tcp.RetransSegs"]
    _same_as_tcpdump(pcap, theirs, exact_from=lab.server.ip)


def test_frames_the_socket_could_not_hold_are_counted_and_warned() -> None:
    with Lab(prefix="trcsn") as lab:
        s = Sniffer(lab.server, rcvbuf=1).start()  # the kernel's minimum: a few frames
        assert s.pid is not None
        os.kill(s.pid, signal.SIGSTOP)  # a reader too slow: the socket's queue fills up
        try:
            _exchange(lab, lab.server.ip, 5)
        finally:
            os.kill(s.pid, signal.SIGCONT)
        cap = s.stop()
    st = cap.stats
    assert st.complete and st.counters is not None and st.kernel_drops is not None
    assert st.kernel_drops > 0
    # Every frame on the wire was either read or dropped by the kernel, per the
    # kernel's two counters (packet socket statistics and the TCP MIB).
    assert st.frames == st.received
    assert st.frames + st.kernel_drops == st.kernel_packets == tcp_segments(st.counters)
    assert [w.code for w in cap.trace.warnings] == ["capture_kernel_drops", "capture_gap"]
    assert all(f"{st.kernel_drops} " in w.message and f"{st.kernel_drops} " in w.message_zh
               for w in cap.trace.warnings)


def test_burst_of_datagrams_is_captured_whole() -> None:
    n = 20000
    with Lab(prefix="trcsn") as lab:
        before = kernel_counters(lab.client)
        with Sniffer(lab.client) as s:
            t0 = time.monotonic()
            lab.client.run([sys.executable, "-c", UDP_BURST, lab.server.ip, str(n)])
            rate = n / (time.monotonic() - t0)
        delta = counters_delta(before, kernel_counters(lab.client))
    cap = s.result
    assert cap is not None and cap.stats.kernel_drops == 0
    assert delta["Udp.OutDatagrams"] == n
    assert _udp(cap) == n, (_udp(cap), rate)
    assert cap.trace.warnings == ()


def test_sigterm_to_the_worker_keeps_what_was_captured() -> None:
    with Lab(prefix="trcsn") as lab:
        s = Sniffer(lab.client).start()
        lab.client.run([sys.executable, "-c", UDP_BURST, lab.server.ip, "50"])
        assert s.pid is not None
        os.kill(s.pid, signal.SIGTERM)  # as a user's kill or a dying terminal would
        cap = s.stop()
    assert cap.stats.complete and _udp(cap) == 50
    assert [w.code for w in cap.trace.warnings] == []


def test_worker_stops_by_itself_when_its_parent_goes() -> None:
    with Lab(prefix="trcsn") as lab:
        s = Sniffer(lab.client).start()
        lab.client.run([sys.executable, "-c", UDP_BURST, lab.server.ip, "20"])
        assert s.proc is not None and s.proc.stdin is not None
        s.proc.stdin.close()  # what a dead parent leaves: the worker must not run on forever
        assert s.proc.wait(timeout=5) == 0
        cap = s.stop()
    assert cap.stats.complete and _udp(cap) == 20


def test_killed_worker_still_leaves_frames_and_says_so() -> None:
    with Lab(prefix="trcsn") as lab:
        s = Sniffer(lab.client).start()
        lab.client.run([sys.executable, "-c", UDP_BURST, lab.server.ip, "30"])
        wait_for(lambda: _udp_written(s.path) >= 30, 10, "the worker to write the 30 datagrams out")
        assert s.pid is not None
        os.kill(s.pid, signal.SIGKILL)
        cap = s.stop()
    assert not cap.stats.complete and cap.stats.kernel_drops is None
    assert _udp(cap) == 30
    (w,) = cap.trace.warnings
    assert w.code == "capture_incomplete" and w.message and w.message_zh


CALLER = """
import sys, time
from tracer.lab.netns import Lab
from tracer.lab.sniffer import Sniffer
with Lab(prefix="trcsn") as lab:
    s = Sniffer(lab.client)
    try:
        with s:
            lab.client.run([sys.executable, "-c", sys.argv[1], lab.server.ip, "40"])
            print("sent", flush=True)
            time.sleep(30)
    except KeyboardInterrupt:
        assert s.result is not None
        print("udp", int((s.result.trace.packets.proto == 1).sum()), s.result.stats.complete, flush=True)
"""


def test_ctrl_c_in_the_caller_still_returns_the_capture() -> None:
    # A terminal's Ctrl-C signals the caller's whole process group; the worker runs
    # in its own session, so the caller's unwinding (``with`` exit) drains it.
    caller = subprocess.Popen([sys.executable, "-c", CALLER, UDP_BURST], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert caller.stdout is not None and caller.stdout.readline().strip() == "sent"
        os.killpg(caller.pid, signal.SIGINT)
        out, _ = caller.communicate(timeout=15)
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    assert out.split() == ["udp", "40", "True"]
    assert caller.returncode == 0


def test_unknown_interface_is_a_lab_error() -> None:
    with Lab(prefix="trcsn", loopback=True) as lab, pytest.raises(LabError) as e:
        Sniffer(lab.client, "nosuch0").start()
    assert "nosuch0" in str(e.value) and "nosuch0" in e.value.message_zh
