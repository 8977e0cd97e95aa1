"""Read a classic libpcap file into a ``Trace``, a couple of MiB at a time.

A tight Python loop walks the record headers of the chunk (that walk is
inherently sequential), then every per-packet field is gathered with numpy and
``tracer.core.decode.TableBuilder`` decodes the chunk's frames at once into the
final columns.  The file's bytes are not kept: the caller serves the trace's
frames from the mapped file (``MappedCapture``).
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable

import numpy as np

from tracer.core.decode import TableBuilder
from tracer.core.model import TraceMeta, TraceWarning
from tracer.core.table import FrameSource
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.i18n import Msg
from tracer.pcap.common import I64A, MAX_BLOCK, corrupt, truncated, u32_cols

# Largest record tshark accepts in a pcap file (WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_PACKET = 262144

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16, "pcap"),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16, "pcap"),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16, "pcap-ns"),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16, "pcap-ns"),
    # Alexey Kuznetzov's modified pcap: 8 more bytes per record header.
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24, "pcap-modified"),
    b"\xa1\xb2\xcd\x34": (">", 1000, 24, "pcap-modified"),
}
# pcap records are walked and decoded this many bytes of file at a time: big
# enough that per-chunk overhead vanishes, small enough that decode temporaries
# (tens of bytes per record per column) stay far below the columns themselves.
CHUNK_BYTES = 2 * 1024 * 1024

ReadAt = Callable[[int, int], bytes | memoryview]
Frames = bytes | memoryview | FrameSource
Progress = Callable[[int, int], None]


class PcapReader:
    """Classic libpcap format, read and decoded a chunk of records at a time."""

    def __init__(
        self, read_at: ReadAt, n: int, frames: Frames, label: str, source: str, magic: bytes,
        progress: Progress | None = None,
    ) -> None:
        self.read_at, self.n, self.frames, self.progress = read_at, n, frames, progress
        self.label, self.source = label, source
        self.order, self.frac_ns, self.rec, self.fmt = MAGICS[magic]

    def read(self) -> Trace:
        label, order, n = self.label, self.order, self.n
        if n < 24:
            raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.pcap_header_short", have=n))
        head = bytes(self.read_at(0, 24))
        major, minor, _zone, _sig, snaplen, network = struct.unpack_from(order + "HHiIII", head, 4)
        if major != 2:
            raise CaptureError("pcap.file", label=label,
                               what=Msg("pcap.what.pcap_version", major=major, minor=minor))
        linktype = network & 0xFFFF
        limit = max(MAX_PACKET, min(snaplen, MAX_BLOCK))
        builder = TableBuilder()
        pos, want, corrupt = 24, CHUNK_BYTES, False
        while pos < n and not corrupt:
            chunk = self.read_at(pos, min(want, n - pos))
            if len(chunk) < min(want, n - pos):  # the file shrank while being read
                n = self.n = pos + len(chunk)
            step, corrupt, need = self._chunk(builder, chunk, pos, pos + len(chunk) >= n, limit, linktype)
            if step == 0 and (need == 0 or pos + need > n):
                break  # a record cut short by the end of the file
            pos += step
            want = max(CHUNK_BYTES, need)
            if self.progress is not None:
                self.progress(pos, n)
        warnings = [] if pos >= n else [self._stop_warning(pos, len(builder) + 1, limit)]
        meta = TraceMeta(
            source=self.source,
            file_format=self.fmt,
            interfaces=((linktype, ""),),
            extra={"version": f"{major}.{minor}", "snaplen": str(snaplen)},
        )
        return Trace(packets=builder.finish(self.frames), meta=meta, warnings=tuple(warnings))

    def _chunk(
        self,
        builder: TableBuilder,
        chunk: bytes | memoryview,
        at: int,
        at_eof: bool,
        limit: int,
        linktype: int,
    ) -> tuple[int, bool, int]:
        """Decode the whole records in ``chunk`` (file offset ``at``).

        Returns (bytes consumed, whether a corrupt record stopped it, bytes needed to
        hold the next record when not even one fits).
        """
        order, rec, m = self.order, self.rec, len(chunk)
        # The hot loop only follows the caplen chain; records are validated afterwards,
        # vectorised, and the list is cut at the first bad one.
        unpack_cl = struct.Struct(order + "8xI").unpack_from
        offs = array("q")
        append = offs.append
        pos, last = 0, m - rec
        while pos <= last:
            append(pos)
            pos += rec + unpack_cl(chunk, pos)[0]
        if not offs:
            return 0, False, 0
        buf = np.frombuffer(chunk, dtype=np.uint8)
        o = np.frombuffer(offs, dtype=np.int64)
        cols = u32_cols(buf, o, 4, order)
        over = cols[:, 2] > limit
        bad = np.flatnonzero(over | (o + rec + cols[:, 2] > m))
        k = int(bad[0]) if bad.size else len(offs)
        if k:
            rows = len(builder) + k
            if rows > builder.capacity:
                # Room for the whole file at the density seen so far (+5%), allocated once.
                done = at + int(o[k - 1] + self.rec + cols[k - 1, 2]) - 24
                est = int(rows * (self.n - 24) / done * 1.05) + 16
                builder.reserve(max(est, builder.capacity * 3 // 2))
            self._decode(builder, chunk, o[:k], cols[:k], at, linktype)
        if k == len(offs):
            return pos, False, 0
        corrupt = bool(over[k])
        # A record that runs past the chunk (not the file) is read again with the next one.
        need = 0 if corrupt or at_eof else rec + int(cols[k, 2])
        return int(o[k]), corrupt, need

    def _decode(
        self, builder: TableBuilder, chunk: bytes | memoryview, o: I64A, cols: I64A, at: int, linktype: int
    ) -> None:
        sec, frac, caplen, wirelen = cols[:, 0], cols[:, 1], cols[:, 2], cols[:, 3]
        # As tshark (wiretap): the fraction is stored as a C int of nanoseconds, so an
        # out-of-range field wraps like it does there instead of being rejected.
        ns = (frac * self.frac_ns) & 0xFFFFFFFF
        ns = np.where(ns >= 1 << 31, ns - (1 << 32), ns)
        ts = sec * 1_000_000_000 + ns
        count = o.shape[0]
        builder.add(
            chunk,
            o + self.rec,
            caplen.astype(np.int32),
            np.minimum(wirelen, 0x7FFFFFFF).astype(np.int32),
            ts,
            np.zeros(count, dtype=np.int32),
            np.full(count, linktype, dtype=np.int32),
            shift=at,
        )

    def _stop_warning(self, pos: int, no: int, limit: int) -> TraceWarning:
        """Why reading stopped at ``pos`` before the end of the file."""
        label, rec, n = self.label, self.rec, self.n
        if pos + rec > n:
            return truncated(label, no, pos, Msg("pcap.what.record_header_short", have=n - pos, need=rec))
        cl = struct.unpack_from(self.order + "I", self.read_at(pos + 8, 4))[0]
        if cl > limit:
            return corrupt(label, no, pos, Msg("pcap.what.caplen_over_max", caplen=cl, limit=limit))
        have = n - pos - rec
        return truncated(label, no, pos, Msg("pcap.what.data_short", have=have, caplen=cl))
