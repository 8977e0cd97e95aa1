"""tshark's view of a capture as ladder arrows: one label, sender, receiver and stream per frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oracle.tshark import tshark_fields

FLAG_BITS = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
             (0x40, "ECE"), (0x80, "CWR"))  # fmt: skip


FIELDS = ("frame.time_epoch", "frame.protocols", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst",
          "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.flags", "tcp.seq", "tcp.ack",
          "tcp.len", "udp.length", "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code", "tcp.stream",
          "udp.stream")  # fmt: skip


@dataclass(frozen=True)
class Frame:
    """One frame as tshark reads it (outermost layers)."""

    label: str | None  # the arrow's label a reader expects; None for non-IP frames
    src: str  # sender endpoint, ip:port ([v6]:port) or the bare address for ICMP
    dst: str
    stream: str  # "t3", "u0" or ""


def first_value(v: str) -> str:
    return v.split(",", 1)[0]


def endpoint(ip: str, port: str) -> str:
    if not port:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def tshark_frames(path: Path) -> list[Frame]:
    """tshark's frames of ``path`` (pcapng custom blocks, which have no time, left out)."""
    out: list[Frame] = []
    for row in tshark_fields(path, *FIELDS):
        f = dict(zip(FIELDS, (first_value(v) for v in row), strict=True))
        if not f["frame.time_epoch"]:
            continue
        layers = f["frame.protocols"].split(":")
        proto = next((p for p in layers if p in ("tcp", "udp", "icmp", "icmpv6")), "")
        src_ip = f["ip.src"] or f["ipv6.src"]
        dst_ip = f["ip.dst"] or f["ipv6.dst"]
        label: str | None = None
        src = dst = ""
        stream = ""
        if proto in ("icmp", "icmpv6"):
            label = f"{proto} {src_ip} → {dst_ip} type={f[proto + '.type']} code={f[proto + '.code']}"
            src, dst = src_ip, dst_ip
        elif proto == "tcp":
            bits = int(f["tcp.flags"], 16)
            parts = [",".join(n for b, n in FLAG_BITS if bits & b) or "-", f"seq={f['tcp.seq']}"]
            if bits & 0x10:
                parts.append(f"ack={f['tcp.ack']}")
            label = " ".join([*parts, f"len={f['tcp.len']}"])
            src, dst = endpoint(src_ip, f["tcp.srcport"]), endpoint(dst_ip, f["tcp.dstport"])
            stream = f"t{f['tcp.stream']}"
        elif proto == "udp":
            label = f"UDP len={int(f['udp.length']) - 8}"
            src, dst = endpoint(src_ip, f["udp.srcport"]), endpoint(dst_ip, f["udp.dstport"])
            stream = f"u{f['udp.stream']}"
        out.append(Frame(label, src, dst, stream))
    return out
