"""Captures made for the reader's tests: crafted pcapng blocks, and packet-table equality."""

from __future__ import annotations

import struct

import numpy as np

from helpers.decode import scapy_frames
from tracer.core.table import column_names
from tracer.pcap import tracer_block


def same_packets(a: object, b: object, rows: int | None = None) -> None:
    """Every column and dict of two tables agree (on the first ``rows`` rows)."""
    from tracer.core.table import PacketTable

    assert isinstance(a, PacketTable) and isinstance(b, PacketTable)
    k = len(a) if rows is None else rows
    for name in column_names():
        # Offsets depend on the container; src/dst/proto index per-table lists, so
        # they are compared as strings through the packet views below.
        if name in ("frame_off", "src", "dst", "proto"):
            continue
        assert np.array_equal(getattr(a, name)[:k], getattr(b, name)[:k]), name
    for i in range(k):
        assert a.packet(i) == b.packet(i), i


def crafted_pcapng(o: str, payload: bytes | None = None, foreign: bool = False) -> bytes:
    """Two sections; interfaces with ns, binary 2^-20 (plus an offset) and ms resolutions.

    ``payload``: add a tracer Custom Block; ``foreign``: add another vendor's Custom
    Block.  (tshark 4.0 lists a Custom Block as a frame of its own, so the files
    compared frame by frame with tshark have none.)
    """
    fr = scapy_frames()
    ip_only = fr[0][14:]
    sec = 1_700_000_000
    s1 = [
        shb(o, (1, b"first section"), (1, b"second comment")),
        idb(o, 1, (2, b"eth0"), (9, bytes([9]))),
        idb(o, 101, (2, b"raw0"), (9, bytes([0x80 | 20])), (14, struct.pack(o + "q", 100))),
        block(o, 4, struct.pack(o + "HH", 0, 0)),  # name resolution block: ignored
        epb(o, 0, sec * 10**9 + 123456789, fr[0], (1, b"hello"), (1, "你好".encode())),
        epb(o, 1, (sec << 20) + (1 << 19), ip_only),
        spb(o, fr[3]),
        pb(o, 0, sec * 10**9 + 5, fr[1]),
        epb(o, 0, sec * 10**9 + 7, fr[2], cut=40),
    ]
    if foreign:
        s1.append(block(o, 0x40000BAD, struct.pack(o + "I", 12345) + b"someone else's block"))
    if payload is not None:
        s1.append(block(o, 0x00000BAD, struct.pack(o + "I", tracer_block.PEN) + payload))
    other = ">" if o == "<" else "<"
    s2 = [
        shb(other),
        idb(other, 1, (2, b"eth1"), (9, bytes([3]))),
        epb(other, 0, sec * 1000 + 42, fr[4]),
        block(other, 5, struct.pack(other + "III", 0, 0, 0)),  # interface statistics: ignored
    ]
    return b"".join(s1 + s2)


def _pad(b: bytes) -> bytes:
    return b + b"\x00" * (-len(b) % 4)


def opts(o: str, *pairs: tuple[int, bytes]) -> bytes:
    if not pairs:
        return b""
    return b"".join(struct.pack(o + "HH", c, len(v)) + _pad(v) for c, v in pairs) + struct.pack(
        o + "HH", 0, 0
    )


def block(o: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack(o + "II", btype, total) + body + struct.pack(o + "I", total)


def shb(o: str, *options: tuple[int, bytes]) -> bytes:
    return block(o, 0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts(o, *options))


def idb(o: str, linktype: int, *options: tuple[int, bytes], snaplen: int = 0) -> bytes:
    return block(o, 1, struct.pack(o + "HHI", linktype, 0, snaplen) + opts(o, *options))


def epb(
    o: str, ifid: int, ts: int, frame: bytes, *options: tuple[int, bytes], cut: int | None = None
) -> bytes:
    cap = frame[:cut] if cut is not None else frame
    head = struct.pack(o + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(cap), len(frame))
    return block(o, 6, head + _pad(cap) + opts(o, *options))


def spb(o: str, frame: bytes) -> bytes:
    return block(o, 3, struct.pack(o + "I", len(frame)) + frame)


def pb(o: str, ifid: int, ts: int, frame: bytes) -> bytes:
    head = struct.pack(o + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame))
    return block(o, 2, head + frame)
