"""Frame decoding compared field by field with tshark, on real and crafted captures.

Every readable corpus capture is read with ``read_capture`` and each frame is
compared with ``tshark -T fields``.  Deliberate differences, each checked
explicitly rather than skipped:

* Tunnels (L2TP over UDP) are not decoded: tracer reports the outer UDP datagram,
  tshark also shows the inner IPv6/TCP.  The test requires the outer layer to match.
* An ICMP error's own row is ICMP; tshark's second ip.src/udp.srcport occurrence
  is the quoted header, which must equal ``icmp_quotes``.
* pcapng timestamps beyond int64 nanoseconds (year > 2262) wrap modulo 2**64 time
  units like the C arithmetic (see ``ts_from_tshark``).

Crafted frames (built with scapy, written as pcap, checked against tshark) cover
what the corpus lacks: 802.1Q/802.1ad tags, IPv4 options, IPv6 extension headers
and fragments, ICMPv6 errors, SACK blocks, other link types, non-IP frames.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import corpus_files, tshark_fields
from helpers.decode import (
    compare,
    first,
    pcap_bytes,
    scapy_frames,
)
from tracer.core.decode import decode_frames
from tracer.core.table import check_table
from tracer.i18n.explain import note_text
from tracer.pcap.reader import read_bytes, read_capture

pytestmark = pytest.mark.tshark


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_frames_match_tshark(corpus: Path, path: Path) -> None:
    trace = read_capture(path)
    check_table(trace.packets)
    units = {0: 1, 1: 1000} if path.name == "pcapplusplus__pcapng-example.pcapng" else None
    checked = compare(path, trace.packets, units)
    assert sum(checked.values()) > 0


def test_corpus_exercises_every_decoder_feature(corpus: Path) -> None:
    """The corpus comparison above is only as good as what it covered: check it covered enough."""
    total: dict[str, int] = {}
    for path in corpus_files():
        units = {0: 1, 1: 1000} if path.name == "pcapplusplus__pcapng-example.pcapng" else None
        for k, v in compare(path, read_capture(path).packets, units).items():
            total[k] = total.get(k, 0) + v
    for k in ("tcp", "udp", "icmp", "quote", "tunnel", "opts", "sack", "wrapped_ts"):
        assert total[k] > 0, k


# --- crafted frames ---------------------------------------------------------------


def crafted(tmp_path: Path, name: str, linktype: int, frames: list[bytes], cut: int | None = None) -> Path:
    p = tmp_path / name
    p.write_bytes(pcap_bytes(linktype, frames, cut=cut))
    return p


def test_crafted_ethernet_frames_match_tshark(tmp_path: Path) -> None:
    frames = scapy_frames()
    path = crafted(tmp_path, "crafted.pcap", 1, frames)
    t = read_capture(path).packets
    checked = compare(path, t)
    assert checked["sack"] == 1 and checked["quote"] == 3, checked
    names = [t.proto_name(i) for i in range(len(t))]
    # Names for what is not TCP/UDP/ICMP (tshark has no such single field; facts of the frames).
    # Fragments are not decoded further (tshark without a complete reassembly neither).
    assert names[5] == names[6] == "ipv4 fragment" and names[7] == "ipv4 proto 47"
    assert names[10] == names[11] == "ipv6 fragment"
    assert names[14] == "malformed ipv4" and "total length 12" in note_text(t.decode_notes[14], "en")
    assert names[-3:] == ["arp", "ethertype 0x88cc", "llc"]
    assert t.packet(13).icmp_quote is not None and t.packet(13).icmp_quote.src_ip == "::ffff:192.0.2.9"


@pytest.mark.parametrize("snap", [14, 20, 30, 40, 54, 60, 70])
def test_snaplen_cut_frames_keep_true_lengths(tmp_path: Path, snap: int) -> None:
    frames = scapy_frames()
    path = crafted(tmp_path, f"cut{snap}.pcap", 1, frames, cut=snap)
    t = read_capture(path).packets
    rows = tshark_fields(path, "tcp.len", "udp.length", "tcp.srcport", "udp.srcport", "ip.src", "ipv6.src")
    for i, (tlen, ulen, tport, uport, ip4, ip6) in enumerate(rows):
        p = t.packet(i)
        if p.proto == "tcp":
            assert p.payload_len == int(first(tlen)) and p.sport == int(first(tport))
        elif p.proto == "udp":
            assert p.payload_len == int(first(ulen)) - 8 and p.sport == int(first(uport))
        elif p.proto == "truncated":
            assert i in t.decode_notes and "cut short" in note_text(t.decode_notes[i], "en")
            assert note_text(t.decode_notes[i], "zh") != note_text(t.decode_notes[i], "en")
        if p.ip_version == 4:
            assert p.src_ip == first(ip4)
        if p.ip_version == 6:
            assert p.src_ip == first(ip6)


LINK_CASES = [
    # (linktype, header builder)
    (0, lambda ip, v6: struct.pack("<I", 30 if v6 else 2) + ip),  # BSD loopback, little-endian host
    (0, lambda ip, v6: struct.pack(">I", 24 if v6 else 2) + ip),  # big-endian host
    (108, lambda ip, v6: struct.pack(">I", 24 if v6 else 2) + ip),  # OpenBSD loop
    (101, lambda ip, v6: ip),
    (228 + 0, lambda ip, v6: ip),
    (113, lambda ip, v6: struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 6, 0x86DD if v6 else 0x0800) + ip),
    (276, lambda ip, v6: struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6, b"\x02" * 6) + ip),
    (9, lambda ip, v6: b"\xff\x03" + struct.pack(">H", 0x57 if v6 else 0x21) + ip),
    (9, lambda ip, v6: struct.pack(">H", 0x57 if v6 else 0x21) + ip),
    (147, lambda ip, v6: ip),  # a user link type: not decoded
]


@pytest.mark.parametrize(
    ("linktype", "build"), LINK_CASES, ids=lambda x: str(x) if isinstance(x, int) else ""
)
def test_link_types_match_tshark(tmp_path: Path, linktype: int, build: object) -> None:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6

    tcp = TCP(sport=1234, dport=80, flags="S", options=[("MSS", 1400)])
    ip4 = bytes(IP(src="10.1.1.1", dst="10.2.2.2") / tcp)
    ip6 = bytes(IPv6(src="2001:db8::a", dst="2001:db8::b") / tcp)
    assert callable(build)
    frames = [build(ip4, False)] + ([] if linktype == 228 else [build(ip6, True)])
    path = crafted(tmp_path, f"lt{linktype}.pcap", linktype, frames)
    t = read_capture(path).packets
    compare(path, t)
    if linktype == 147:
        assert {t.proto_name(i) for i in range(len(t))} == {"linktype 147"}
    else:
        assert {t.proto_name(i) for i in range(len(t))} == {"tcp"}


def test_decode_never_raises_on_garbage_frames() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    n = 5000
    off = np.sort(rng.integers(0, len(data) - 100, n)).astype(np.int64)
    cap = rng.integers(0, 100, n).astype(np.int32)
    lts = np.array([0, 1, 9, 101, 108, 113, 228, 229, 276, 147], dtype=np.int32)
    t = decode_frames(
        data,
        off,
        cap,
        cap + rng.integers(0, 3000, n).astype(np.int32),
        np.arange(n, dtype=np.int64),
        np.zeros(n, dtype=np.int32),
        lts[rng.integers(0, len(lts), n)],
    )
    check_table(t)
    assert len(t) == n
    for i in range(0, n, 7):
        t.packet(i)  # every row has a valid view
    assert all(0 <= x < len(t.proto_names) for x in t.proto.tolist())


def test_frames_past_end_of_buffer_are_truncated_not_errors() -> None:
    raw = read_bytes(pcap_bytes(1, scapy_frames()[:1])).packets
    t = decode_frames(
        raw.data[:50],
        np.array([40], dtype=np.int64),
        np.array([60], dtype=np.int32),
        np.array([60], dtype=np.int32),
        np.zeros(1, dtype=np.int64),
        np.zeros(1, dtype=np.int32),
        np.ones(1, dtype=np.int32),
    )
    assert t.proto_name(0) == "truncated" and "10 of 14" in note_text(t.decode_notes[0], "en")
