"""Decoding checked against tshark: crafted pcap bytes, scapy frames, and the field-by-field comparison."""

from __future__ import annotations

import struct
from pathlib import Path

from oracle.tshark import tshark_fields
from tracer.core.table import PacketTable

FIELDS = (
    "frame.time_epoch",
    "frame.len",
    "frame.cap_len",
    "frame.protocols",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
    "tcp.flags",
    "tcp.seq_raw",
    "tcp.seq",
    "tcp.ack_raw",
    "tcp.window_size_value",
    "tcp.len",
    "udp.length",
    "tcp.options.mss_val",
    "tcp.options.wscale.shift",
    "tcp.options.sack_perm",
    "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
)


# SACK edges as raw sequence numbers, like tracer stores them.
RAW_SEQ = ("-o", "tcp.relative_sequence_numbers:FALSE")


NS = 1_000_000_000


def ts_from_tshark(text: str) -> int:
    """tshark's frame.time_epoch as integer ns.

    tshark prints ``secs.nsecs`` with nsecs as an integer (more than 9 digits when a
    pcap's fraction field is out of range) and a leading ``-`` when nsecs < 0.
    A frame without a time (pcapng Simple Packet Block) prints nothing; tracer
    stores 0 for it (``compare`` maps "" to 0).
    """
    neg = text.startswith("-")
    secs, frac = text.lstrip("-").split(".")
    return int(secs) * NS + (-1 if neg else 1) * int(frac)


def first(v: str) -> str:
    return v.split(",")[0]


def occ(v: str) -> list[str]:
    return v.split(",") if v else []


def opt_int(v: str) -> int:
    return int(first(v)) if v else -1


def compare(path: Path, table: PacketTable, unit_ns: dict[int, int] | None = None) -> dict[str, int]:
    """Assert every frame of ``table`` agrees with tshark; return counts of what was checked."""
    rows = tshark_fields(path, *FIELDS, extra=RAW_SEQ)
    assert len(rows) == len(table), "frame count differs from tshark"
    checked = {"tcp": 0, "udp": 0, "icmp": 0, "quote": 0, "tunnel": 0, "opts": 0, "sack": 0, "wrapped_ts": 0}
    for i, r in enumerate(rows):
        f = dict(zip(FIELDS, r, strict=True))
        p = table.packet(i)
        where = f"{path.name} frame {i + 1}"
        want_ts = ts_from_tshark(f["frame.time_epoch"]) if f["frame.time_epoch"] else 0
        if want_ts >= 2**63:
            # Deliberate: beyond int64 ns the C-style 64-bit arithmetic wraps.
            unit = (unit_ns or {}).get(p.interface, 1)
            assert p.ts_ns == want_ts - 2**64 * unit, where
            checked["wrapped_ts"] += 1
        else:
            assert p.ts_ns == want_ts, where
        assert p.wirelen == int(f["frame.len"]) and p.caplen == int(f["frame.cap_len"]), where
        layers = f["frame.protocols"].split(":")
        if p.ip_version == 4:
            assert (p.src_ip, p.dst_ip) == (first(f["ip.src"]), first(f["ip.dst"])), where
        elif p.ip_version == 6:
            assert (p.src_ip, p.dst_ip) == (first(f["ipv6.src"]), first(f["ipv6.dst"])), where
        else:
            assert not f["ip.src"] and not f["ipv6.src"], where
            assert p.proto in layers or p.proto.startswith(
                ("ethertype", "linktype", "llc", "ppp", "trunc", "malformed")
            ), where
        if p.proto == "tcp":
            checked["tcp"] += 1
            assert (p.sport, p.dport) == (int(first(f["tcp.srcport"])), int(first(f["tcp.dstport"]))), where
            assert p.tcp_flags == int(first(f["tcp.flags"]), 16), where
            assert p.seq_raw == int(first(f["tcp.seq_raw"])), where
            if f["tcp.ack_raw"]:
                assert p.ack_raw == int(first(f["tcp.ack_raw"])), where
            assert p.window == int(first(f["tcp.window_size_value"])), where
            assert p.payload_len == int(first(f["tcp.len"])), where
            o = p.options
            assert o is not None
            assert o.mss == (opt_int(f["tcp.options.mss_val"]) if f["tcp.options.mss_val"] else None), where
            assert (o.wscale if o.wscale is not None else -1) == opt_int(f["tcp.options.wscale.shift"]), where
            assert o.sack_permitted == bool(f["tcp.options.sack_perm"]), where
            assert (o.ts_val if o.ts_val is not None else -1) == opt_int(f["tcp.options.timestamp.tsval"]), (
                where
            )
            assert (o.ts_ecr if o.ts_ecr is not None else -1) == opt_int(f["tcp.options.timestamp.tsecr"]), (
                where
            )
            edges = list(zip(occ(f["tcp.options.sack_le"]), occ(f["tcp.options.sack_re"]), strict=True))
            assert list(o.sack_blocks) == [(int(a), int(b)) for a, b in edges], where
            checked["opts"] += o.mss is not None or o.ts_val is not None
            checked["sack"] += bool(edges)
        elif p.proto == "udp":
            checked["udp"] += 1
            assert (p.sport, p.dport) == (int(first(f["udp.srcport"])), int(first(f["udp.dstport"]))), where
            assert p.payload_len == int(first(f["udp.length"])) - 8, where
            if f["tcp.srcport"] or (f["ipv6.src"] and p.ip_version == 4):
                # Deliberate: the tunnelled inner packet (L2TP) is not decoded.
                assert "l2tp" in layers and 1701 in (p.sport, p.dport), where
                checked["tunnel"] += 1
        elif p.proto in ("icmp", "icmpv6"):
            checked["icmp"] += 1
            t, c = f[f"{p.proto}.type"], f[f"{p.proto}.code"]
            assert (p.icmp_type, p.icmp_code) == (int(first(t)), int(first(c))), where
            q = p.icmp_quote
            if q is not None:
                checked["quote"] += 1
                fam = "ip" if p.ip_version == 4 else "ipv6"
                assert (q.src_ip, q.dst_ip) == (occ(f[f"{fam}.src"])[1], occ(f[f"{fam}.dst"])[1]), where
                if q.proto in ("tcp", "udp"):
                    assert (q.sport, q.dport) == (
                        int(first(f[f"{q.proto}.srcport"])),
                        int(first(f[f"{q.proto}.dstport"])),
                    ), where
                    if q.proto == "tcp":
                        # tshark shows only tcp.seq (raw, see RAW_SEQ) for an 8-byte quote.
                        assert q.seq_raw == int(first(f["tcp.seq_raw"] or f["tcp.seq"])), where
        if p.proto not in ("tcp", "udp"):
            assert p.payload_len == 0, where
            if p.proto not in ("icmp", "icmpv6"):
                assert not f["tcp.srcport"] and not f["udp.srcport"], where
    return checked


def pcap_bytes(linktype: int, frames: list[bytes], snaplen: int = 65535, cut: int | None = None) -> bytes:
    """A little-endian µs pcap; ``cut`` caps the captured length (like tcpdump -s)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for i, fr in enumerate(frames):
        cap = fr if cut is None else fr[:cut]
        out.append(struct.pack("<IIII", 1_700_000_000 + i, i * 7, len(cap), len(fr)) + cap)
    return b"".join(out)


def scapy_frames() -> list[bytes]:
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
    from scapy.layers.inet6 import (
        ICMPv6DestUnreach,
        ICMPv6PacketTooBig,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
    )
    from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
    from scapy.packet import Raw

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    syn = TCP(
        sport=40000,
        dport=80,
        flags="SEC",
        seq=123456789,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (11, 0)), ("NOP", None), ("WScale", 7)],
    )
    sack = TCP(
        sport=80,
        dport=40000,
        flags="A",
        seq=1,
        ack=2,
        options=[("NOP", None), ("NOP", None), ("SAck", (1000, 2000, 3000, 4000))],
    )
    inner = IP(src="10.0.0.2", dst="10.9.9.9") / TCP(sport=5555, dport=443, seq=0xDEADBEEF)
    return [
        bytes(e / IP(src="10.0.0.1", dst="10.0.0.2") / syn),
        bytes(e / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / sack / Raw(b"x" * 10)),
        bytes(e / Dot1AD(vlan=7) / Dot1Q(vlan=9) / IPv6(src="2001:db8::1", dst="2001:db8::2") / syn),
        bytes(
            e
            / IP(src="10.0.0.3", dst="10.0.0.4", options=[IPOption_RR(routers=["1.2.3.4"])])
            / UDP(sport=5, dport=53)
        ),
        bytes(e / IP(src="192.0.2.1", dst="10.0.0.2") / ICMP(type=3, code=3) / bytes(inner)[:28]),
        bytes(e / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF", frag=0, proto=17) / Raw(b"\x00" * 16)),
        bytes(e / IP(src="10.0.0.1", dst="10.0.0.2", frag=100, proto=17) / Raw(b"\x00" * 16)),
        bytes(e / IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / Raw(b"\x00" * 8)),
        bytes(
            e
            / IPv6(src="fe80::1", dst="ff02::1")
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / UDP(sport=546, dport=547)
        ),
        bytes(e / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrRouting(addresses=[]) / syn),
        bytes(
            e
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrFragment(offset=0, m=1, id=5)
            / UDP()
            / b"x"
        ),
        bytes(
            e
            / IPv6(src="2001:db8::1", dst="2001:db8::2")
            / IPv6ExtHdrFragment(offset=8, id=5, nh=17)
            / (b"y" * 16)
        ),
        bytes(
            e
            / IPv6(src="2001:db8::ff", dst="2001:db8::1")
            / ICMPv6PacketTooBig(mtu=1280)
            / IPv6(src="2001:db8::1", dst="2001:db8::3")
            / UDP(sport=7, dport=9)
        ),
        bytes(
            e
            / IPv6(src="2001:db8::ff", dst="2001:db8::1")
            / ICMPv6DestUnreach(code=4)
            / IPv6(src="::ffff:192.0.2.9", dst="2001:db8::3")
            / TCP(sport=1, dport=2, seq=77)
        ),
        bytes(e / IP(src="10.0.0.7", dst="10.0.0.8", len=12) / TCP(sport=1, dport=2)),  # bogus total length
        bytes(e / ARP(psrc="10.0.0.1", pdst="10.0.0.2")),
        bytes(
            Ether(dst="01:80:c2:00:00:0e", src="02:00:00:00:00:01", type=0x88CC)
            / Raw(b"\x02\x07\x04" + b"\x00" * 40)
        ),
        bytes(Ether(dst="01:80:c2:00:00:00", type=38) / Raw(b"\x42\x42\x03" + b"\x00" * 35)),
    ]
