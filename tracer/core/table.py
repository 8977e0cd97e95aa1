"""Columnar packet storage: one numpy array per decoded header field.

A capture of a million packets is analysed as whole columns (vectorised), so the
bulk representation is a struct of arrays.  ``PacketTable.packet(i)`` gives the
frozen ``Packet`` view of one row for exporters and the UI.

Conventions for every column (length ``n``, row ``i`` is packet ``no = i + 1``):
absent integer fields are ``-1``; addresses are indices into ``addresses``
(``-1`` = none); ``proto`` indexes ``proto_names`` whose first four entries are
``FIXED_PROTO_NAMES``.  ``seq``/``ack`` hold raw 32-bit values as int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tracer.core.model import (
    FIXED_PROTO_NAMES,
    DecodeNote,
    IcmpQuote,
    Packet,
    TcpOptions,
    endpoint_str,
)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
I8 = npt.NDArray[np.int8]
U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
Bool = npt.NDArray[np.bool_]


class FrameSource(Protocol):
    """Where the frames' bytes live when they are not held in memory.

    A capture-file adapter provides it (e.g. the capture file, mapped: see
    ``tracer.pcap.reader.MappedCapture``) so that a million frames need not stay
    resident; the core only slices it.  The buffer protocol lets exporters copy
    runs of frames without a slice each.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> bytes: ...

    def __buffer__(self, flags: int, /) -> memoryview: ...


# (column name, dtype) in a fixed order; ``PacketTable.empty`` and
# ``TableColumns`` use it so that every producer builds the same shape.
COLUMNS: tuple[tuple[str, type[np.generic]], ...] = (
    ("ts_ns", np.int64),
    ("iface", np.int32),
    ("linktype", np.int32),
    ("caplen", np.int32),
    ("wirelen", np.int32),
    ("frame_off", np.int64),  # offset of the frame's first byte in ``data``
    ("proto", np.int16),
    ("ip_version", np.int8),  # 0 = not IP
    ("src", np.int32),
    ("dst", np.int32),
    ("sport", np.int32),
    ("dport", np.int32),
    ("tcp_flags", np.int32),  # 0 for non-TCP
    ("seq", np.int64),
    ("ack", np.int64),
    ("window", np.int32),  # raw window field, unscaled
    ("payload_len", np.int32),  # TCP/UDP payload bytes (from IP lengths, not caplen)
    ("mss", np.int32),
    ("wscale", np.int16),
    ("sack_perm", np.bool_),
    ("ts_val", np.int64),
    ("ts_ecr", np.int64),
    ("icmp_type", np.int16),
    ("icmp_code", np.int16),
)


@dataclass(frozen=True, eq=False)
class PacketTable:
    """All packets of a trace, column by column (see module docstring)."""

    ts_ns: I64
    iface: I32
    linktype: I32
    caplen: I32
    wirelen: I32
    frame_off: I64
    proto: I16
    ip_version: I8
    src: I32
    dst: I32
    sport: I32
    dport: I32
    tcp_flags: I32
    seq: I64
    ack: I64
    window: I32
    payload_len: I32
    mss: I32
    wscale: I16
    sack_perm: Bool
    ts_val: I64
    ts_ecr: I64
    icmp_type: I16
    icmp_code: I16
    addresses: tuple[str, ...] = ()
    proto_names: tuple[str, ...] = FIXED_PROTO_NAMES
    # The captured bytes; frame ``i`` is ``data[frame_off[i] : frame_off[i] + caplen[i]]``.
    data: bytes | memoryview | FrameSource = b""
    sack_blocks: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    icmp_quotes: dict[int, IcmpQuote] = field(default_factory=dict)
    comments: dict[int, str] = field(default_factory=dict)
    # Row -> why the frame could not be decoded fully (truncated header, ...).
    decode_notes: dict[int, DecodeNote] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.ts_ns.shape[0])

    @classmethod
    def empty(cls) -> PacketTable:
        cols = {name: np.zeros(0, dtype=dt) for name, dt in COLUMNS}
        return cls(**cols)  # type: ignore[arg-type]

    def raw(self, i: int) -> bytes:
        """The captured bytes of row ``i``."""
        off = int(self.frame_off[i])
        return bytes(self.data[off : off + int(self.caplen[i])])

    def address(self, idx: int) -> str | None:
        return None if idx < 0 else self.addresses[idx]

    def src_endpoint(self, i: int) -> str:
        return endpoint_str(self.address(int(self.src[i])), int(self.sport[i]))

    def dst_endpoint(self, i: int) -> str:
        return endpoint_str(self.address(int(self.dst[i])), int(self.dport[i]))

    def proto_name(self, i: int) -> str:
        return self.proto_names[int(self.proto[i])]

    def packet(self, i: int) -> Packet:
        """The frozen per-packet view of row ``i`` (0-based)."""
        proto = self.proto_name(i)
        is_tcp = proto == "tcp"

        def opt(col: npt.NDArray[np.generic]) -> int | None:
            v = int(col[i])
            return None if v < 0 else v

        options = None
        if is_tcp:
            options = TcpOptions(
                mss=opt(self.mss),
                wscale=opt(self.wscale),
                sack_permitted=bool(self.sack_perm[i]),
                sack_blocks=self.sack_blocks.get(i, ()),
                ts_val=opt(self.ts_val),
                ts_ecr=opt(self.ts_ecr),
            )
        ipv = int(self.ip_version[i])
        return Packet(
            no=i + 1,
            ts_ns=int(self.ts_ns[i]),
            interface=int(self.iface[i]),
            linktype=int(self.linktype[i]),
            caplen=int(self.caplen[i]),
            wirelen=int(self.wirelen[i]),
            proto=proto,
            ip_version=ipv or None,
            src_ip=self.address(int(self.src[i])),
            dst_ip=self.address(int(self.dst[i])),
            sport=opt(self.sport),
            dport=opt(self.dport),
            tcp_flags=int(self.tcp_flags[i]),
            seq_raw=int(self.seq[i]) if is_tcp else None,
            ack_raw=int(self.ack[i]) if is_tcp else None,
            window=int(self.window[i]) if is_tcp else None,
            payload_len=int(self.payload_len[i]),
            options=options,
            icmp_type=opt(self.icmp_type),
            icmp_code=opt(self.icmp_code),
            icmp_quote=self.icmp_quotes.get(i),
            comment=self.comments.get(i),
        )


def column_names() -> tuple[str, ...]:
    return tuple(name for name, _ in COLUMNS)


def check_table(t: PacketTable) -> None:
    """Raise ``ValueError`` if columns disagree in length or dtype (a producer bug)."""
    n = len(t)
    want = dict(COLUMNS)
    for f in fields(t):
        if f.name in want:
            col = getattr(t, f.name)
            if col.shape != (n,) or col.dtype != np.dtype(want[f.name]):
                raise ValueError(f"column {f.name}: shape {col.shape} dtype {col.dtype}")
