"""Stream numbering, endpoints, direction and client/server, checked against tshark.

tcp.stream/udp.stream agreement per frame is in ``test_tshark_agreement``; here the
per-stream facts (first/last frame, packet count, endpoint ``a``, the client) are
derived from tshark's output or from the RFCs and compared with ``StreamInfo``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import corpus_files, tshark_fields
from helpers.tables import tiled
from tracer.core.model import PROTO_ICMP, PROTO_TCP, StreamInfo, endpoint_str
from tracer.core.streams import assign_streams
from tracer.core.table import PacketTable
from tracer.pcap.reader import read_capture

FIELDS = (
    "frame.protocols",
    "tcp.stream",
    "udp.stream",
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "icmp.type",
)

pytestmark = pytest.mark.tshark


def _tshark_streams(path: Path, proto: str) -> dict[int, dict[str, object]]:
    """Per stream index from tshark: first/last frame, count, first sender, SYN facts."""
    rows = tshark_fields(path, *FIELDS)
    out: dict[int, dict[str, object]] = {}
    for no, r in enumerate(rows, start=1):
        f = dict(zip(FIELDS, r, strict=True))
        value = f[f"{proto}.stream"]
        layers = f["frame.protocols"].split(":")
        tunnel = "udp" in layers and "tcp" in layers
        if not value or f["icmp.type"] or "," in value or tunnel:
            continue  # ICMP errors and tunnels: covered in test_tshark_agreement
        src = (f["ip.src"] or f["ipv6.src"]).split(",")[-1]
        dst = (f["ip.dst"] or f["ipv6.dst"]).split(",")[-1]
        sport = int(f[f"{proto}.srcport"].split(",")[-1])
        dport = int(f[f"{proto}.dstport"].split(",")[-1])
        s = out.setdefault(int(value), {"first": no, "count": 0, "a": endpoint_str(src, sport)})
        s["last"] = no
        s["count"] = int(s["count"]) + 1  # type: ignore[call-overload]
        flags = int(f["tcp.flags"], 16) if f["tcp.flags"] else 0
        if flags & 0x12 == 0x02 and "syn_from" not in s:
            s["syn_from"] = endpoint_str(src, sport)
        if flags & 0x12 == 0x12 and "synack_to" not in s:
            s["synack_to"] = endpoint_str(dst, dport)
    return out


def _has_icmp_or_tunnel(path: Path) -> bool:
    rows = tshark_fields(path, "frame.protocols")
    return any("icmp" in r[0] or r[0].count(":udp") + r[0].count(":tcp") > 1 for r in rows)


def _stream_facts_checked(path: Path) -> int:
    """Compares every stream of ``path`` with tshark's; how many streams it checked."""
    checked = 0
    t = read_capture(path).packets
    s = assign_streams(t)
    plain = not _has_icmp_or_tunnel(path)
    for proto, infos in (("tcp", s.tcp_streams), ("udp", s.udp_streams)):
        theirs = _tshark_streams(path, proto)
        ours: dict[int, StreamInfo] = {i.index: i for i in infos}
        assert [i.index for i in infos] == list(range(len(infos)))
        if plain:
            assert set(ours) == set(theirs), path.name
        for k, fact in theirs.items():
            info = ours[k]
            assert info.a == fact["a"], (path.name, k)
            if plain:
                assert (info.first_no, info.last_no, info.packets) == (
                    fact["first"],
                    fact["last"],
                    fact["count"],
                ), (path.name, k)
            if "syn_from" in fact:
                assert info.client == fact["syn_from"], (path.name, k)
            elif "synack_to" in fact:
                assert info.client == fact["synack_to"], (path.name, k)
            checked += 1
    return checked


# The fast loop's sample of the corpus: tunnelled TCP and ICMP quotes, a split handshake,
# UDP, IPv6, retransmissions. The whole corpus is the slow test below (CI runs both).
STREAM_SAMPLE = (
    "dpkt__nb6-http.pcap",
    "suricata-verify__split-handshake-4whs.pcap",
    "tcpdump__dns_udp.pcap",
    "pcapplusplus__one_ipv6_http_stream.pcap",
    "zeek__tcp__retransmit-fast009.pcap",
)


def test_stream_facts_match_tshark_on_a_sample(corpus: Path) -> None:
    sample = [p for p in corpus_files() if p.name in STREAM_SAMPLE]
    assert len(sample) == len(STREAM_SAMPLE), STREAM_SAMPLE
    assert sum(_stream_facts_checked(p) for p in sample) > 10


@pytest.mark.slow
def test_stream_facts_match_tshark(corpus: Path) -> None:
    assert sum(_stream_facts_checked(p) for p in corpus_files()) > 30


def test_direction_is_relative_to_first_sender(corpus: Path) -> None:
    for path in corpus_files():
        t = read_capture(path).packets
        s = assign_streams(t)
        infos = {("tcp", i.index): i for i in s.tcp_streams} | {("udp", i.index): i for i in s.udp_streams}
        for i in np.flatnonzero((s.stream >= 0) & ~s.is_quote).tolist():
            info = infos[("tcp" if t.proto[i] == PROTO_TCP else "udp", int(s.stream[i]))]
            sender = t.src_endpoint(i)
            assert sender == (info.a if s.direction[i] == 0 else info.b), (path.name, i + 1)
            assert t.dst_endpoint(i) == (info.b if s.direction[i] == 0 else info.a)


def test_dns_client_is_the_side_without_port_53(corpus: Path) -> None:
    """RFC 1035: DNS servers listen on port 53, so the other endpoint is the client."""
    seen = 0
    for path in corpus_files():
        s = assign_streams(read_capture(path).packets)
        for info in s.udp_streams:
            ports = {info.a.rsplit(":", 1)[1], info.b.rsplit(":", 1)[1]}
            if "53" in ports and len(ports) == 2:
                assert info.client is not None and not info.client.endswith(":53")
                seen += 1
    assert seen >= 5


def test_icmp_error_row_joins_the_quoted_stream_travelling_back(corpus: Path) -> None:
    """dpkt__nb6-http.pcap frame 34: ICMP port unreachable quoting a DNS reply."""
    path = corpus / "dpkt__nb6-http.pcap"
    t = read_capture(path).packets
    s = assign_streams(t)
    rows = tshark_fields(path, "udp.stream", "ip.src", "udp.srcport", "icmp.type")
    icmp_rows = [i for i, r in enumerate(rows) if r[3]]
    assert icmp_rows and all(t.proto[i] == PROTO_ICMP for i in icmp_rows)
    for i in icmp_rows:
        assert s.is_quote[i]
        assert str(int(s.stream[i])) == rows[i][0]
        info = s.udp_streams[int(s.stream[i])]
        quoted_sender = endpoint_str(rows[i][1].split(",")[1], int(rows[i][2]))
        # The error travels back towards the quoted packet's sender.
        assert s.direction[i] == (1 if quoted_sender == info.a else 0)


def test_traceroute_probes_and_their_icmp_errors_share_streams(corpus: Path) -> None:
    path = corpus / "tcpdump__mpls-traceroute.pcap"
    t = read_capture(path).packets
    s = assign_streams(t)
    theirs = [r[0] for r in tshark_fields(path, "udp.stream")]
    assert [str(int(v)) if v >= 0 else "" for v in s.stream.tolist()] == theirs
    icmp = np.flatnonzero(t.proto == PROTO_ICMP)
    assert icmp.size == 9 and (s.direction[icmp] == 1).all()


def test_empty_and_non_transport_tables() -> None:
    s = assign_streams(PacketTable.empty())
    assert s.stream.size == 0 and s.tcp_streams == () and s.udp_streams == ()


@pytest.mark.slow
def test_assign_streams_on_a_million_rows_keeps_each_copy_apart(corpus: Path) -> None:
    """A million rows: every tiled copy is its own connection.  How fast is bench/run.py's
    business (its "tracer analysis" row includes assign_streams), not a test's."""
    t = read_capture(corpus / "dpkt__http.pcap").packets
    k = 1_000_000 // len(t) + 1
    s = assign_streams(tiled(t, k))
    assert len(s.tcp_streams) == k * len(assign_streams(t).tcp_streams) > 10_000
