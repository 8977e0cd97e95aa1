"""scapy's one-packet dissection against tshark's view of the same frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import corpus_files, tshark_fields
from tracer.dissect import dissect, hexdump
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark

# tshark's protocol names for the layers scapy calls differently.
_TSHARK_TO_SCAPY = {
    "eth": "Ethernet",
    "ip": "IP",
    "ipv6": "IPv6",
    "tcp": "TCP",
    "udp": "UDP",
    "sll": "cooked linux",
    "icmp": "ICMP",
}


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_layers_and_fields_agree_with_tshark(path: Path) -> None:
    trace = read_capture(path)
    t = trace.packets
    rows = tshark_fields(path, "frame.protocols", "ip.ttl", "tcp.window_size_value", two_pass=False)
    assert len(rows) == len(t)
    for i in range(min(len(t), 40)):  # the first frames of each capture cover its kinds
        layers = dissect(t.raw(i), int(t.linktype[i]))
        names = [layer.name for layer in layers]
        protos = rows[i][0].split(":")
        for tsh, scapy_name in _TSHARK_TO_SCAPY.items():
            # Only the outer stack: tshark also lists layers quoted inside ICMP errors.
            outer = protos[: protos.index("icmp") + 1] if "icmp" in protos else protos
            if tsh in outer and tsh != "sll":
                assert scapy_name in names, (i + 1, names, protos)
        fields = {(layer.name, k): v for layer in layers for k, v in layer.fields}
        ttl, win = rows[i][1], rows[i][2]
        if ttl and "," not in ttl and ("IP", "ttl") in fields:
            assert fields[("IP", "ttl")] == ttl
        if win and "," not in win and ("TCP", "window") in fields:
            assert fields[("TCP", "window")] == win


def test_garbage_and_unknown_linktype_give_raw_bytes() -> None:
    assert dissect(b"\x00\x01\x02", 147)[0].fields[0][1] != ""
    layers = dissect(b"\xff" * 3, 1)  # too short for Ethernet: scapy still shows something
    assert layers


def test_hexdump_layout() -> None:
    lines = hexdump(bytes(range(20)))
    assert lines[0].startswith("0000  00 01 02")
    assert lines[1].startswith("0010  10 11 12 13")
    assert len(lines) == 2
