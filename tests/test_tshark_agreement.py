"""Per-packet agreement with ``tshark -2`` (4.0 to 4.4) on streams, seq/ack and analysis flags.

Every readable corpus capture (and a capture made here from the real kernel) is run
through tshark at test time and through tracer; each field is compared frame by
frame.  Nothing here stores what tracer computes: the expectations are tshark's
output.  Deliberate differences are named in ``EXCEPTIONS`` and tested separately.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from conftest import corpus_files, examples, tshark_fields, tshark_version, version_text
from helpers.tables import tiled
from oracle.agreement import (
    FLAG_FIELDS,
    VALUE_FIELDS,
    compare,
    not_compared,
    tunnelled,
)
from tracer.core.model import PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP
from tracer.core.seq_analysis import analyze_tcp, tcp_rows_by_stream
from tracer.core.streams import assign_streams
from tracer.core.table import COLUMNS, PacketTable
from tracer.core.tcp_sequential import analyze_stream
from tracer.core.tcp_vector import vector_analysis
from tracer.lab.netns import Lab
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark


@cache
def _corpus_results() -> dict[str, dict[str, tuple[int, int, list[int]]]]:
    return {p.name: compare(p) for p in corpus_files()}


def agreement_table() -> list[tuple[str, int, int]]:
    """Per field over the whole corpus: (field, rows compared, rows equal)."""
    res = _corpus_results()
    table = []
    for field in VALUE_FIELDS + tuple(FLAG_FIELDS):
        if field in not_compared():
            continue
        compared = sum(r[field][0] for r in res.values())
        equal = sum(r[field][1] for r in res.values())
        table.append((field, compared, equal))
    return table


def test_agreement_table_is_complete(corpus: Path) -> None:
    table = agreement_table()
    width = max(len(f) for f, _, _ in table)
    print(f"\noracle: {version_text()}")
    for field, why in not_compared().items():
        print(f"{field:<{width}}  not compared ({why})")
    for field, compared, equal in table:
        print(f"{field:<{width}}  {equal:>6}/{compared:<6}")
    # The corpus exercises all of these; a field with nothing compared would mean a
    # broken comparison, not agreement.
    exercised = {f for f, c, _ in table if c > 0}
    for field in (
        "tcp.stream",
        "udp.stream",
        "tcp.seq",
        "tcp.ack",
        "tcp.analysis.retransmission",
        "tcp.analysis.duplicate_ack",
        "tcp.analysis.lost_segment",
        "tcp.analysis.zero_window",
    ):
        assert field in exercised, field
    wrong = {f: (c, e) for f, c, e in table if c != e}
    assert not wrong, f"{version_text()}: {wrong}"


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_file_agrees_with_tshark(path: Path) -> None:
    res = _corpus_results()[path.name]
    bad = {f: r[2][:10] for f, r in res.items() if r[0] != r[1]}
    assert not bad, f"frames that differ from {version_text()}: {bad}"


def test_exception_tunnelled_tcp_rows_are_outer_udp(corpus: Path) -> None:
    """EXCEPTIONS["tunnelled_tcp"]: the skipped rows are exactly tshark's TCP-in-UDP
    frames, and on them tracer's row is the outer UDP with tshark's udp.stream."""
    seen = 0
    for path in corpus_files():
        rows = tshark_fields(path, "frame.protocols", "udp.stream")
        t = read_capture(path).packets
        s = assign_streams(t)
        for i, (protocols, udp_stream) in enumerate(rows):
            if tunnelled(protocols):
                seen += 1
                assert t.proto[i] == PROTO_UDP
                assert str(int(s.stream[i])) == udp_stream.split(",")[0]
    assert seen > 0  # dpkt__nb6-http.pcap has IPv6 TCP inside L2TP


def test_exception_icmp_rows_have_no_relative_numbers(corpus: Path) -> None:
    """EXCEPTIONS["icmp_quoted_seq"]: ICMP rows carry a stream but no rel_seq/rel_ack."""
    path = next(p for p in corpus_files() if p.name == "dpkt__nb6-http.pcap")
    t = read_capture(path).packets
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    icmp = np.flatnonzero((t.proto == PROTO_ICMP) | (t.proto == PROTO_ICMPV6))
    assert icmp.size and (a.rel_seq[icmp] == -1).all() and (a.rel_ack[icmp] == -1).all()


# --- crafted edge cases: scapy writes the frames, tshark says what they mean ---------

_A = ("10.0.0.1", 40000)
_B = ("10.0.0.2", 80)
_ISN = {"A": 4294967000, "B": 5000}  # A's sequence space wraps past 2**32
_HS = [("A", "S", 0, 0, 0), ("B", "SA", 0, 1, 0), ("A", "A", 1, 1, 0)]

# (who, flags, relative seq, relative ack, payload length[, window[, seconds since previous]])
CRAFTED: dict[str, list[tuple[object, ...]]] = {
    "ack_unseen_then_gap": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("B", "A", 1, 201, 0),
        ("A", "A", 201, 1, 100),
        ("B", "A", 1, 301, 0),
        ("A", "A", 301, 1, 100),
        ("B", "A", 1, 401, 0),
        ("A", "A", 401, 1, 100),
        ("B", "A", 1, 501, 0),
        ("B", "A", 1, 601, 0),
    ],
    "ack_unseen_after_full_ack": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("B", "A", 1, 101, 0),
        ("A", "A", 101, 1, 100),
        ("B", "A", 1, 201, 0),
        ("B", "A", 1, 301, 0),
    ],
    "dup_acks_after_ack_unseen": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("B", "A", 1, 101, 0),
        ("B", "A", 1, 201, 0),
        ("A", "A", 101, 1, 0),
        ("A", "A", 101, 1, 0),
        ("A", "A", 101, 1, 0),
        ("B", "A", 1, 201, 0),
        ("B", "A", 1, 201, 0),
    ],
    "spurious_before_out_of_order": [
        *_HS,
        ("A", "A", 1, 1, 100, 1000, 0.001),
        ("A", "A", 101, 1, 100, 1000, 0.0005),
        ("B", "A", 1, 201, 0, 1000, 0.0005),
        ("A", "A", 1, 1, 100, 1000, 0.0005),
    ],
    "zero_window_probe_keepalive": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("B", "A", 1, 101, 0, 0),
        ("A", "A", 101, 1, 1),
        ("B", "A", 1, 101, 0, 0),
        ("A", "A", 101, 1, 1, 1000, 0.5),
        ("B", "A", 1, 101, 0, 0),
        ("B", "A", 1, 101, 0, 500),
        ("A", "A", 101, 1, 100),
        ("A", "A", 200, 1, 0, 1000, 5),
        ("B", "A", 1, 201, 0, 500),
        ("A", "A", 200, 1, 1, 1000, 5),
        ("B", "A", 1, 201, 0, 500),
    ],
    "window_full_scaled": [
        ("A", "S", 0, 0, 0, 1000, 0.001, 2),
        ("B", "SA", 0, 1, 0, 1000, 0.001, 3),
        ("A", "A", 1, 1, 0, 100),
        ("A", "A", 1, 1, 100, 100),
        ("B", "A", 1, 101, 0, 50),
        ("A", "A", 101, 1, 300, 100),
        ("A", "A", 401, 1, 100, 100),
        ("B", "A", 1, 401, 0, 50),
        ("A", "A", 401, 1, 100, 100),
    ],
    "window_full": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("B", "A", 1, 101, 0, 300),
        ("A", "A", 101, 1, 300),
        ("A", "A", 401, 1, 100),
        ("B", "A", 1, 401, 0, 300),
    ],
    "fast_retransmission": [
        *_HS,
        ("A", "A", 1, 1, 100),
        ("A", "A", 101, 1, 100),
        ("A", "A", 201, 1, 100),
        ("B", "A", 1, 101, 0),
        ("B", "A", 1, 101, 0),
        ("B", "A", 1, 101, 0),
        ("A", "A", 101, 1, 100, 1000, 0.002),
        ("B", "A", 1, 301, 0),
    ],
    "port_reuse_new_isn": [
        *_HS,
        ("A", "FA", 1, 1, 0),
        ("B", "FA", 1, 2, 0),
        ("A", "A", 2, 2, 0),
        ("A", "S", 77777, 0, 0),
        ("B", "SA", 9999, 77778, 0),
        ("A", "A", 77778, 10000, 0),
        ("A", "S", 77777, 0, 0, 1000, 1.0),
    ],
    "synack_new_isn_and_rst": [
        *_HS,
        ("B", "SA", 4242, 1, 0),
        ("A", "A", 1, 4243, 10),
        ("B", "R", 4243, 0, 0),
        ("A", "RA", 11, 4243, 0),
    ],
    "midstream_start": [
        ("B", "A", 500, 900, 0),
        ("A", "PA", 900, 500, 50),
        ("B", "A", 500, 950, 0),
        ("A", "PA", 950, 500, 50),
        ("A", "PA", 900, 500, 50, 1000, 0.3),
    ],
}


def _craft(spec: list[tuple[object, ...]], path: Path) -> None:
    frames = []
    t = 1_000_000_000.0
    for who, flags, seq, ack, length, *rest in spec:
        window = rest[0] if rest else 1000
        t += float(rest[1]) if len(rest) > 1 else 0.001  # type: ignore[arg-type]
        src, dst = (_A, _B) if who == "A" else (_B, _A)
        other = "B" if who == "A" else "A"
        tcp = TCP(
            sport=src[1],
            dport=dst[1],
            flags=flags,
            window=window,
            seq=(_ISN[str(who)] + int(seq)) % 2**32,  # type: ignore[call-overload]
            ack=(_ISN[other] + int(ack)) % 2**32 if "A" in str(flags) else 0,
            options=[("WScale", int(rest[2]))] if len(rest) > 2 else [],  # type: ignore[call-overload]
        )  # type: ignore[call-overload]
        p = Ether() / IP(src=src[0], dst=dst[0]) / tcp
        if length:
            p = p / Raw(b"x" * int(length))  # type: ignore[call-overload]
        p.time = t
        frames.append(p)
    wrpcap(str(path), frames)


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_edge_case_agrees_with_tshark(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.pcap"
    _craft(CRAFTED[name], path)
    res = compare(path)
    bad = {f: r[2] for f, r in res.items() if r[0] != r[1]}
    assert not bad, f"frames that differ from {version_text()}: {bad}"
    assert res["tcp.seq"][0] == len(CRAFTED[name])  # every frame was compared


# --- the real kernel ----------------------------------------------------------------

SERVER = """
import socket, sys, threading
def serve(port, reply):
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("%(ip)s", port)); ls.listen(8)
    while True:
        c, _ = ls.accept()
        n = 0
        while True:
            b = c.recv(65536)
            if not b or (reply and n + len(b) >= 5):
                break
            n += len(b)
        if reply:
            c.sendall(b"hi")
        c.close()  # the server closes first: its side keeps TIME_WAIT, not the client's
threading.Thread(target=serve, args=(8080, True), daemon=True).start()
threading.Thread(target=serve, args=(8081, False), daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""
CLIENT = """
import fcntl, socket, struct, termios, time
for _ in range(2):  # the same 4-tuple twice in a row: tshark's "port numbers reused"
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("%(cip)s", 40001)); s.connect(("%(ip)s", 8080))
    s.sendall(b"hello"); assert s.recv(10) == b"hi"; s.recv(10); s.shutdown(socket.SHUT_WR)
    # Until the server has ACKed our FIN (SIOCOUTQ counts it): the 4-tuple is free again.
    while struct.unpack("i", fcntl.ioctl(s, termios.TIOCOUTQ, b"\\0" * 4))[0]:
        time.sleep(0.002)
    s.close()
s = socket.create_connection(("%(ip)s", 8081))
for _ in range(400):  # paced, so that tcpdump keeps up with every segment
    s.sendall(b"x" * 2896); time.sleep(0.001)
s.shutdown(socket.SHUT_WR); s.recv(10); s.close()
"""
# Drops happen after tcpdump (on the server) has seen the frames: taps run before
# netfilter.  The server drops every 25th full-size segment to 8081, so the client
# retransmits it quickly (out-of-order) and the server sends duplicate ACKs; the
# client drops every other "hi" from 8080, so the server retransmits on its timer.
NFT_SERVER = """
table inet trc {
    chain in {
        type filter hook input priority 0;
        tcp dport 8081 meta length > 1000 numgen inc mod 25 == 0 drop;
    }
}
"""
NFT_CLIENT = """
table inet trc {
    chain in {
        type filter hook input priority 0;
        tcp sport 8080 meta length > 52 numgen inc mod 2 == 0 drop;
    }
}
"""


@pytest.fixture(scope="module")
def kernel_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pcap = tmp_path_factory.mktemp("kernel") / "reuse_and_loss.pcap"
    with Lab(prefix="trcagree") as lab:
        lab.server.run(["nft", "-f", "-"], input=NFT_SERVER)
        lab.client.run(["nft", "-f", "-"], input=NFT_CLIENT)
        # One wire segment per skb (no 64 KiB GSO super-segments in the capture).
        lab.client.run(["ip", "link", "set", "dev", lab.client.iface, "gso_max_segs", "1"])
        with lab.tcpdump(lab.server, pcap):
            server = lab.server.popen(
                [sys.executable, "-c", SERVER % {"ip": lab.server.ip}],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                # No sleep after it: leaving lab.tcpdump waits until tcpdump has written every frame.
                lab.client.run(
                    [sys.executable, "-c", CLIENT % {"ip": lab.server.ip, "cip": lab.client.ip}], timeout=60
                )
            finally:
                server.kill()
                server.wait()
    return pcap


@pytest.mark.lab
def test_real_kernel_capture_agrees_with_tshark(kernel_capture: Path) -> None:
    res = compare(kernel_capture)
    bad = {f: r[2][:10] for f, r in res.items() if r[0] != r[1]}
    assert not bad, f"frames that differ from {version_text()}: {bad}"
    # The scenario really produced what it is meant to test (per tshark).
    rows = tshark_fields(
        kernel_capture,
        "tcp.stream",
        "tcp.analysis.reused_ports",
        "tcp.analysis.retransmission",
        "tcp.analysis.duplicate_ack",
        "tcp.analysis.out_of_order",
    )
    assert len({r[0] for r in rows if r[0]}) == 3
    for col in range(1, 5):
        assert any(r[col] for r in rows), f"scenario lacks {col}"


# --- the vectorised path against the per-packet rules ---------------------------------


def _both_ways(t: PacketTable) -> tuple[int, int, int]:
    """analyze_tcp (vectorised, patched where needed) against the per-packet rules run on
    every stream from its first packet.  Returns how many streams were clean, patched
    from a bad row on, or fully re-run."""
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    rows, starts = tcp_rows_by_stream(t, s)
    ends = np.append(starts[1:], rows.size)
    sid = np.repeat(np.arange(starts.size), ends - starts)
    cols = [
        s.direction[rows].astype(np.int64),
        t.tcp_flags[rows].astype(np.int64),
        t.seq[rows],
        t.ack[rows],
        t.window[rows].astype(np.int64),
        t.payload_len[rows].astype(np.int64),
        t.wscale[rows].astype(np.int64),
        t.ts_ns[rows],
    ]
    v = vector_analysis(sid, *cols, starts.size)
    lists = [c.tolist() for c in cols]
    for j in range(starts.size):
        lo, hi = int(starts[j]), int(ends[j])
        out_f: list[int] = []
        out_d: list[int] = []
        analyze_stream(*(c[lo:hi] for c in lists), out_f, out_d)
        assert out_f == a.flags[rows[lo:hi]].tolist(), j
        assert out_d == a.dup_ack_num[rows[lo:hi]].tolist(), j
    has_bad = np.bincount(sid[v.bad], minlength=starts.size) > 0
    full = int(v.irregular.sum())
    patched = int((has_bad & ~v.irregular).sum())
    return starts.size - full - patched, patched, full


def test_vectorised_rules_equal_per_packet_rules(corpus: Path, tmp_path: Path) -> None:
    paths = corpus_files()
    for name, spec in CRAFTED.items():
        _craft(spec, tmp_path / f"{name}.pcap")
        paths.append(tmp_path / f"{name}.pcap")
    totals = np.zeros(3, dtype=np.int64)
    for path in paths:
        totals += _both_ways(read_capture(path).packets)
    clean, patched, full = totals.tolist()
    print(f"\nstreams: {clean} vectorised, {patched} patched, {full} re-run per packet")
    assert clean >= 20 and patched >= 3 and full >= 3  # every path is exercised


@pytest.mark.lab
def test_vectorised_rules_on_real_kernel_capture(kernel_capture: Path) -> None:
    clean, patched, _full = _both_ways(read_capture(kernel_capture).packets)
    assert clean + patched >= 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "zeek__tcp__ssh-dups.pcap",  # one long connection per copy
        "zeek__tcp__reassembly.pcap",  # lossy: most rows re-run per packet
        "tcpdump__whois.pcap",  # ~91k short connections: > 2**16 directions
    ],
)
def test_analyze_tcp_on_a_million_rows(corpus: Path, name: str) -> None:
    t = read_capture(corpus / name).packets
    big = tiled(t, 1_000_000 // len(t) + 1)
    t0 = time.perf_counter()
    s = assign_streams(big)
    t1 = time.perf_counter()
    a = analyze_tcp(big, s)
    t2 = time.perf_counter()
    print(
        f"\n{name}: {len(big)} rows, {len(s.tcp_streams)} streams: "
        f"assign_streams {t1 - t0:.2f} s, analyze_tcp {t2 - t1:.2f} s"
    )
    # Every copy is the same connection on other endpoints: the results repeat per copy.
    # (How fast: bench/run.py times it; no wall-clock assertion here.)
    one = analyze_tcp(t, assign_streams(t))
    for col in ("flags", "dup_ack_num", "rel_seq", "rel_ack", "win_scaled"):
        assert (getattr(a, col).reshape(-1, len(t)) == getattr(one, col)).all(), col


# --- random streams: the vectorised path must equal the per-packet rules ------------

_FLAG_CHOICES = (0x10, 0x10, 0x10, 0x18, 0x02, 0x12, 0x11, 0x04, 0x14, 0x00)


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # stream (client port)
            st.booleans(),  # sent by the client
            st.sampled_from(_FLAG_CHOICES),
            st.integers(0, 40),  # seq offset in units of 10 bytes
            st.sampled_from((0, 0, 0, -1)),  # one byte back: keep-alives
            st.integers(0, 40),  # ack offset
            st.sampled_from((0, 1, 0, 10, 100, 9)),  # payload length
            st.sampled_from((1000, 1000, 0, 500)),  # window
            st.sampled_from((-1, -1, -1, 0, 7)),  # window-scale option
            st.sampled_from((0, 1_000, 100_000, 30_000_000)),  # ns since the previous packet
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from((1000, 2**32 - 150)),  # ISNs, the second wraps
)
def test_random_streams_vectorised_equals_per_packet(rows: list[tuple[int, ...]], isn: int) -> None:
    n = len(rows)
    cols = {name: np.zeros(n, dtype=dt) for name, dt in COLUMNS}
    ts = 1_700_000_000_000_000_000
    for i, (port, client, flags, so, back, ao, ln, win, ws, gap) in enumerate(rows):
        ts += gap
        cols["ts_ns"][i] = ts
        cols["src"][i], cols["dst"][i] = (0, 1) if client else (1, 0)
        cols["sport"][i], cols["dport"][i] = (40000 + port, 80) if client else (80, 40000 + port)
        mine, theirs = (isn, 5000) if client else (5000, isn)
        cols["seq"][i] = (mine + 10 * so + back) % 2**32
        cols["ack"][i] = (theirs + 10 * ao) % 2**32
        cols["tcp_flags"][i] = flags
        cols["payload_len"][i] = ln
        cols["window"][i] = win
        cols["wscale"][i] = ws
    for name in ("mss", "ts_val", "ts_ecr", "icmp_type", "icmp_code"):
        cols[name][:] = -1
    cols["ip_version"][:] = 4
    t = PacketTable(**cols, addresses=("10.0.0.1", "10.0.0.2"))  # type: ignore[arg-type]
    _both_ways(t)


def test_icmp_quotes_of_udp_create_streams_like_tshark(tmp_path: Path) -> None:
    """A quoted UDP header of an unseen conversation takes the next udp.stream (ICMP and
    ICMPv6); a quote shorter than the UDP header gets none."""
    from scapy.layers.inet import ICMP, UDP
    from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6

    first = IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=53) / Raw(b"q")
    later = IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=5001, dport=53) / Raw(b"q")
    six = IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=6000, dport=53) / Raw(b"q")
    router = IP(src="10.0.0.9", dst="10.0.0.1") / ICMP(type=3, code=3)
    frames = [
        Ether() / first,
        Ether() / router / Raw(bytes(later)[:28]),
        Ether() / router / Raw(bytes(later)[:24]),
        Ether() / IPv6(src="fd00::9", dst="fd00::1") / ICMPv6DestUnreach() / Raw(bytes(six)),
        Ether() / later,
        Ether() / six,
    ]
    for k, f in enumerate(frames):
        f.time = 1_000_000_000 + k / 1000
    path = tmp_path / "icmp_udp.pcap"
    wrpcap(str(path), frames)
    compared, equal, bad = compare(path)["udp.stream"]
    assert equal == compared == 5, bad


@pytest.mark.slow
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(("A", "B")),
            st.sampled_from(("S", "SA", "A", "A", "PA", "FA", "R", "RA")),
            st.sampled_from((0, 1, 2, 101, 201, 5000)),  # relative seq
            st.sampled_from((0, 1, 2, 101, 201, 5000)),  # relative ack
            st.sampled_from((0, 0, 1, 100)),  # payload length
            st.sampled_from((1000, 0)),  # window
            st.sampled_from((0.0001, 0.001, 0.05)),  # seconds since the previous frame
        ),
        min_size=1,
        max_size=25,
    )
)
def test_random_captures_agree_with_tshark(tmp_path: Path, spec: list[tuple[object, ...]]) -> None:
    """Random frames on one 4-tuple (SYNs with other ISNs start new streams): tshark decides."""
    path = tmp_path / "random.pcap"
    _craft(spec, path)
    res = compare(path)
    bad = {f: r[2] for f, r in res.items() if r[0] != r[1]}
    assert not bad, f"frames that differ from {version_text()}: {bad}"


def test_oracle_is_a_tshark_the_comparisons_are_written_for(
    record_property: Callable[[str, object], None],
) -> None:
    """The comparisons above accept tshark 4.0 (Debian 12) to 4.4 (Debian 13); where a later
    release changed a field's meaning (``oracle.tshark.DIFFERENCES``) that field is left out,
    and said so.  Any other release would make the comparisons meaningless: fail, naming it."""
    from oracle.tshark import NEWEST, OLDEST

    version = tshark_version()
    print(f"\noracle: {version_text()}; not compared: {not_compared() or 'nothing'}")
    record_property("tshark_version", ".".join(map(str, version)))
    assert OLDEST <= version[:2] <= NEWEST, f"{version_text()} is outside 4.0 to 4.4"
