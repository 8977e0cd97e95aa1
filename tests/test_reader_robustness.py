"""Bad input: malformed corpus files, captures cut at every byte, random corruption.

The rule under test: nothing but ``CaptureError`` escapes; a file that is not a
readable capture says so in one line; a damaged file keeps every packet before
the damage, identical to the undamaged read, and a warning says where it stopped.
"""

from __future__ import annotations

import struct
import subprocess
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CORPUS, corpus_manifest, examples
from helpers.captures import crafted_pcapng, same_packets
from helpers.decode import compare
from tracer.core.table import check_table
from tracer.core.trace import Trace
from tracer.errors import EXIT_INPUT, CaptureError
from tracer.i18n.explain import note_text
from tracer.pcap.reader import read_bytes, read_capture

pytestmark = pytest.mark.tshark


def test_manifest_names_four_malformed_files(corpus: Path) -> None:
    bad = sorted(n for n, row in corpus_manifest().items() if "MALFORMED" in row["notes"])
    assert bad == [
        "dpkt__truncated_dns_2.pcap",
        "libpcap__pcap-invalid-version-1.pcap",
        "libpcap__pcapng-invalid-vers-1.pcapng",
        "tcpdump__timestamp_invalid_nano.pcap",
    ]


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("libpcap__pcap-invalid-version-1.pcap", "pcap version 1."),
        ("libpcap__pcapng-invalid-vers-1.pcapng", "0.1"),
    ],
)
def test_unsupported_versions_are_one_line_errors(corpus: Path, name: str, version: str) -> None:
    # MANIFEST: tshark refuses both ("major version 1 unsupported", "unknown SHB version 0.1").
    with pytest.raises(CaptureError) as ei:
        read_capture(CORPUS / name)
    assert version in str(ei.value) and "unsupported" in str(ei.value)
    assert ei.value.exit_code == EXIT_INPUT and "\n" not in str(ei.value)
    assert "版本" in ei.value.message_zh


def test_file_cut_mid_record_loads_what_precedes(corpus: Path) -> None:
    path = CORPUS / "dpkt__truncated_dns_2.pcap"
    t = read_capture(path)
    # tshark prints the one complete packet, then fails with "cut short in the middle of a packet".
    proc = subprocess.run(
        ["tshark", "-r", str(path), "-n", "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.srcport"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "cut short in the middle of a packet" in proc.stderr
    want = [line.split("\t") for line in proc.stdout.splitlines()]
    assert len(t.packets) == len(want) == 1
    p = t.packets.packet(0)
    assert p.proto == "udp" and p.sport == int(want[0][1]) == 53  # MANIFEST: one DNS response
    (w,) = t.warnings
    size = path.stat().st_size
    assert w.code == "truncated_file" and w.packet_no == 2
    assert w.offset is not None and 0 < w.offset < size and str(w.offset) in w.message
    assert "\n" not in w.message and "截断" in w.message_zh


def test_out_of_range_nanoseconds_match_tshark(corpus: Path) -> None:
    path = CORPUS / "tcpdump__timestamp_invalid_nano.pcap"
    t = read_capture(path)
    assert t.warnings == ()
    compare(path, t.packets)  # frame.time_epoch as tshark prints it, fields wrap included


# --- truncation at every byte -------------------------------------------------------


def pcap_records(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each record of a little-endian µs pcap, walked independently."""
    out, pos = [], 24
    while pos < len(data):
        cl = struct.unpack_from("<I", data, pos + 8)[0]
        out.append((pos, pos + 16 + cl))
        pos += 16 + cl
    return out


def pcapng_blocks(data: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, is_packet) of each pcapng block (one byte order per file here)."""
    o = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    out, pos = [], 0
    while pos < len(data):
        btype, blen = struct.unpack_from(o + "II", data, pos)
        if btype == 0x0A0D0D0A:
            o = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(o + "II", data, pos)
        out.append((pos, pos + blen, btype in (2, 3, 6)))
        pos += blen
    return out


def check_cut(
    full: Trace, data: bytes, cut: int, blocks: list[tuple[int, int, bool]], header_end: int
) -> None:
    if cut < header_end:
        with pytest.raises(CaptureError):
            read_bytes(data[:cut])
        return
    t = read_bytes(data[:cut])
    done = [b for b in blocks if b[1] <= cut]
    k = sum(1 for b in done if b[2])
    assert len(t.packets) == k, cut
    same_packets(full.packets, t.packets, rows=k)
    assert {i: c for i, c in full.packets.comments.items() if i < k} == t.packets.comments
    boundary = cut == header_end or any(b[1] == cut for b in blocks)
    if boundary:
        assert t.warnings == (), cut
    else:
        (w,) = t.warnings
        start = next(b[0] for b in blocks if b[0] <= cut < b[1])
        assert w.code == "truncated_file" and w.offset == start and w.packet_no == k + 1, (cut, w)
        assert f"offset {start}" in w.message


def test_pcap_cut_at_every_byte(corpus: Path) -> None:
    data = (CORPUS / "tcpdump__whois.pcap").read_bytes()
    full = read_bytes(data)
    recs = [(a, b, True) for a, b in pcap_records(data)]
    assert recs[-1][1] == len(data) and len(full.packets) == 11  # MANIFEST: 11 packets
    for cut in range(len(data) + 1):
        check_cut(full, data, cut, recs, 24)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_cut_at_every_byte(order: str) -> None:
    data = crafted_pcapng(order)
    # One byte order per file for the independent walker: keep the first section only.
    blocks = pcapng_blocks(data)
    full = read_bytes(data)
    assert sum(b[2] for b in blocks) == len(full.packets)
    for cut in range(len(data) + 1):
        check_cut(full, data, cut, blocks, blocks[0][1])


def test_corpus_pcapng_cut_at_every_byte(corpus: Path) -> None:
    data = (CORPUS / "hadrielk__pcapng-test-generator__be_test009.pcapng").read_bytes()
    blocks = pcapng_blocks(data)
    full = read_bytes(data)
    assert len(full.packets) == 2  # MANIFEST
    for cut in range(len(data) + 1):
        check_cut(full, data, cut, blocks, blocks[0][1])


# --- random corruption ------------------------------------------------------------------

SMALL = {
    "pcap": (CORPUS / "tcpdump__whois.pcap").read_bytes() if CORPUS.is_dir() else b"",
    "pcapng": crafted_pcapng("<"),
    "pcapng-be": (CORPUS / "hadrielk__pcapng-test-generator__be_test009.pcapng").read_bytes()
    if CORPUS.is_dir()
    else b"",
}


def survive(data: bytes) -> None:
    """Reading must give a consistent Trace or a one-line CaptureError, and no numpy warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            t = read_bytes(data)
        except CaptureError as e:
            assert "\n" not in str(e) and e.message_zh
            return
        check_table(t.packets)
        for i in range(len(t.packets)):
            t.packets.packet(i)
        for w in t.warnings:
            assert "\n" not in w.message and w.message_zh
        for note in t.packets.decode_notes.values():
            assert note_text(note, "zh") != note_text(note, "en"), note  # every note has its Chinese text


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(sorted(SMALL)),
    edits=st.lists(st.tuples(st.integers(min_value=0, max_value=4000), st.integers(0, 255)), max_size=12),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=4000)),
)
def test_random_corruption_never_escapes(which: str, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(SMALL[which])
    assert data, "corpus missing"
    for pos, val in edits:
        data[pos % len(data)] = val
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    survive(bytes(data))


@settings(max_examples=examples(200), deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from([b"\xd4\xc3\xb2\xa1", b"\x0a\x0d\x0d\x0a", b"\xa1\xb2\x3c\x4d", b""]),
)
def test_random_bytes_behind_a_magic_never_escape(tail: bytes, magic: bytes) -> None:
    survive(magic + tail)
