"""``tracer show FILE NO``: one packet in full, checked against tshark."""

from __future__ import annotations

import re

import pytest

from conftest import CORPUS, tshark_fields
from helpers.cli import run_tracer

pytestmark = pytest.mark.tshark

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(
    ("name", "no"),
    [("tcpdump__whois.pcap", 2), ("pcapplusplus__one_tcp_rst.pcap", 2), ("dpkt__nb6-http.pcap", 20)],
)
def test_show_matches_tshark(name: str, no: int) -> None:
    path = CORPUS / name
    proc = run_tracer("show", path, no)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    row = tshark_fields(path, "tcp.seq", "tcp.ack", "ip.ttl", "frame.len")[no - 1]
    seq, ack, ttl, flen = row
    first = out.splitlines()[0]
    assert first.startswith(f"Packet {no}: ")
    if seq:
        assert f" seq={seq} ack={ack} " in first
    if ttl:
        assert f"    ttl = {ttl.split(',')[0]}\n" in out
    assert f"Bytes ({flen}/" in out or f"/{flen}):" in out
    # The hex dump covers every captured byte: 16 per line.
    hexlines = [line for line in out.splitlines() if re.match(r"  [0-9a-f]{4}  ", line)]
    assert hexlines and len(hexlines) == -(-int(out.split("Bytes (")[1].split("/")[0]) // 16)
    assert "Cause: " in out and "Why: " in out


def test_show_in_chinese() -> None:
    proc = run_tracer("show", CORPUS / "tcpdump__whois.pcap", 1, "--lang", "zh")
    assert proc.returncode == 0
    head = proc.stdout.split("\n\n")[0]
    assert all(CJK.search(line) for line in head.splitlines()[1:]), head


@pytest.mark.parametrize("no", ["0", "12", "-1"])
def test_show_out_of_range_is_a_usage_error(no: str) -> None:
    proc = run_tracer("show", CORPUS / "tcpdump__whois.pcap", no)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "1 to 11" in proc.stderr or "usage" in proc.stderr.lower() or "expected" in proc.stderr
