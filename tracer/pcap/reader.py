"""Read pcap and pcapng files into a ``Trace``.

A pcap file is read a couple of MiB at a time: a tight Python loop walks the
record headers of the chunk (that walk is inherently sequential), then every
per-packet field is gathered with numpy and ``tracer.core.decode.TableBuilder``
decodes the chunk's frames at once into the final columns.  The file's bytes are
not kept: the trace's frames are served from the mapped file (``MappedCapture``).
A pcapng file is walked whole and decoded in slices of packets.  Bad input never
raises anything but ``CaptureError``: a file that is not a readable capture
raises it with a one-line message; a file cut short or with a corrupt record
keeps every packet before the damage and says where it stopped in a
``TraceWarning``.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from array import array
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from tracer.core.decode import TableBuilder, gather_bytes
from tracer.core.model import KernelSocketState, SocketCall, TraceMeta, TraceWarning
from tracer.core.table import FrameSource, PacketTable
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.pcap import tracer_block

# Largest record tshark accepts in a pcap file (WTAP_MAX_PACKET_SIZE_STANDARD).
MAX_PACKET = 262144
# A pcapng block beyond this is treated as corrupt (tshark's limit is 16 MiB).
MAX_BLOCK = 16 * 1024 * 1024

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16, "pcap"),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16, "pcap"),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16, "pcap-ns"),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16, "pcap-ns"),
    # Alexey Kuznetzov's modified pcap: 8 more bytes per record header.
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24, "pcap-modified"),
    b"\xa1\xb2\xcd\x34": (">", 1000, 24, "pcap-modified"),
}
_PCAPNG_SHB = 0x0A0D0D0A
# pcap records are walked and decoded this many bytes of file at a time: big
# enough that per-chunk overhead vanishes, small enough that decode temporaries
# (tens of bytes per record per column) stay far below the columns themselves.
CHUNK_BYTES = 2 * 1024 * 1024
# The same for pcapng, whose blocks are walked in one go and decoded in slices.
CHUNK_PACKETS = 20_000

I64A = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]
U32A = npt.NDArray[np.uint32]
_ReadAt = Callable[[int, int], bytes | memoryview]
Frames = bytes | memoryview | FrameSource
_BOM = 0x1A2B3C4D

_KNOWN_NOT_CAPTURES = {
    b"\x1f\x8b": ("a gzip-compressed file; decompress it first", "gzip 压缩文件，请先解压"),
    b"PK": ("a zip archive", "zip 压缩包"),
    b"\xfd7zXZ": ("an xz-compressed file; decompress it first", "xz 压缩文件，请先解压"),
    b"\x28\xb5\x2f\xfd": ("a zstd-compressed file; decompress it first", "zstd 压缩文件，请先解压"),
}


Progress = Callable[[int, int], None]


def read_capture(path: str | os.PathLike[str], progress: Progress | None = None) -> Trace:
    """Read a pcap or pcapng file; ``CaptureError`` if it cannot be read as one.

    A regular pcap file is read a chunk at a time and is not kept in memory: the
    trace's frames are served from the file, mapped (see ``MappedCapture``).
    ``progress(bytes_done, bytes_total)`` is called after each chunk of a pcap file.
    """
    name = os.fspath(path)
    try:
        with Path(path).open("rb") as f:
            fd = f.fileno()
            st = os.fstat(fd)
            head = os.pread(fd, 4, 0) if stat.S_ISREG(st.st_mode) else b""
            if head in _PCAP_MAGICS and st.st_size >= 24:
                frames = MappedCapture(fd, 0, access=mmap.ACCESS_READ)

                def read_at(off: int, size: int) -> bytes:
                    return os.pread(fd, size, off)

                return _Pcap(read_at, len(frames), frames, name, name, head, progress).read()
            # pcapng (whose walk needs the blocks as they come), pipes and everything
            # else: parsed from one read, not mmap, so that parsing cannot fault.
            data = f.read()
            if not stat.S_ISREG(st.st_mode) or len(data) != st.st_size or not data:
                return read_bytes(data, source=name)
            trace = read_bytes(data, source=name)
            # Then the frames are served from the file, as for pcap, unless it changed.
            frames = MappedCapture(fd, 0, access=mmap.ACCESS_READ)
            now = os.fstat(fd)
            if (now.st_size, now.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
                return trace
            return replace(trace, packets=replace(trace.packets, data=frames))
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file", f"{name}：文件不存在") from None
    except IsADirectoryError:
        raise CaptureError(
            f"{name}: is a directory, not a capture file", f"{name}：是目录，不是抓包文件"
        ) from None
    except PermissionError:
        raise CaptureError(f"{name}: permission denied", f"{name}：没有读取权限") from None
    except MemoryError:
        raise CaptureError(
            f"{name}: too large to load into memory", f"{name}：文件太大，无法载入内存"
        ) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise CaptureError(f"{name}: cannot read: {reason}", f"{name}：无法读取：{reason}") from None


def read_capture_head(path: str | os.PathLike[str], max_bytes: int) -> Trace | None:
    """The packets in the first ``max_bytes`` of a capture file larger than that
    (None for a smaller file: read it whole).  For showing the start of a big file
    at once; the record cut by the limit is not reported (it is not a fault of the
    file).  ``CaptureError`` as for ``read_capture``."""
    name = os.fspath(path)
    try:
        with Path(path).open("rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size <= max_bytes:
                return None
            data = f.read(max_bytes)
    except OSError:
        return None  # read_capture reports it properly
    trace = read_bytes(data, source=name)
    # Only the last record can be cut short (the limit); a corrupt one stops reading earlier.
    return replace(trace, warnings=tuple(w for w in trace.warnings if w.code != "truncated_file"))


class MappedCapture(mmap.mmap):
    """A capture file mapped read-only: the trace's frames, served on demand.

    Nothing is read until a frame is asked for, so a million frames cost no
    memory; exporters copy runs of frames through the buffer protocol.  Slices
    are clipped to the file's current size: a file that shrank after it was read
    (rotated, overwritten) then gives short frames instead of a SIGBUS.
    """

    @overload
    def __getitem__(self, index: SupportsIndex, /) -> int: ...

    @overload
    def __getitem__(self, index: slice, /) -> bytes: ...

    def __getitem__(self, index: SupportsIndex | slice, /) -> int | bytes:
        size = self.size()
        if isinstance(index, slice) and size < len(self):
            start, stop, step = index.indices(len(self))
            return super().__getitem__(slice(min(start, size), min(stop, size), step))
        return super().__getitem__(index)


def read_bytes(data: bytes | memoryview, source: str = "") -> Trace:
    """Parse a whole capture held in memory (see ``read_capture``)."""
    label = source or "capture"
    n = len(data)
    if n == 0:
        raise CaptureError(f"{label}: file is empty", f"{label}：文件为空")
    head = bytes(data[:4])
    if head in _PCAP_MAGICS:
        view = memoryview(data).cast("B")

        def read_at(off: int, size: int) -> memoryview:
            return view[off : off + size]

        return _Pcap(read_at, n, data, label, source, head).read()
    if n >= 4 and int.from_bytes(head, "little") == _PCAPNG_SHB:
        return _Pcapng(data, label, source).read()
    for magic, (what, what_zh) in _KNOWN_NOT_CAPTURES.items():
        if head.startswith(magic):
            raise CaptureError(f"{label}: not a capture file: {what}", f"{label}：不是抓包文件：{what_zh}")
    hexs = " ".join(f"{b:02x}" for b in head)
    raise CaptureError(
        f"{label}: not a pcap or pcapng file (starts with {hexs})",
        f"{label}：不是 pcap 或 pcapng 文件（开头字节为 {hexs}）",
    )


def _warn(code: str, en: str, zh: str, packet_no: int | None, offset: int | None) -> TraceWarning:
    return TraceWarning(code=code, message=en, message_zh=zh, packet_no=packet_no, offset=offset)


def _truncated(label: str, no: int, off: int, what_en: str, what_zh: str) -> TraceWarning:
    return _warn(
        "truncated_file",
        f"{label} is cut short: packet {no} at byte offset {off} is incomplete ({what_en}); "
        f"loaded the {no - 1} packets before it",
        f"{label} 文件被截断：第 {no} 个包（字节偏移 {off}）不完整（{what_zh}）；已载入之前的 {no - 1} 个包",
        no,
        off,
    )


def _corrupt(label: str, no: int, off: int, what_en: str, what_zh: str) -> TraceWarning:
    return _warn(
        "corrupt_record",
        f"{label} has a corrupt record: packet {no} at byte offset {off}: {what_en}; "
        f"loaded the {no - 1} packets before it and stopped there",
        f"{label} 有损坏的记录：第 {no} 个包（字节偏移 {off}）：{what_zh}；"
        f"已载入之前的 {no - 1} 个包并在此停止",
        no,
        off,
    )


def _u32_cols(buf: npt.NDArray[np.uint8], offs: I64A, width: int, order: str) -> I64A:
    """``width`` consecutive u32 fields at each offset -> (len(offs), width) int64."""
    raw = gather_bytes(buf, offs, width * 4)
    return raw.view(order + "u4").astype(np.int64)


class _Pcap:
    """Classic libpcap format, read and decoded a chunk of records at a time."""

    def __init__(
        self, read_at: _ReadAt, n: int, frames: Frames, label: str, source: str, magic: bytes,
        progress: Progress | None = None,
    ) -> None:
        self.read_at, self.n, self.frames, self.progress = read_at, n, frames, progress
        self.label, self.source = label, source
        self.order, self.frac_ns, self.rec, self.fmt = _PCAP_MAGICS[magic]

    def read(self) -> Trace:
        label, order, n = self.label, self.order, self.n
        if n < 24:
            raise CaptureError(
                f"{label}: pcap file header cut short ({n} of 24 bytes)",
                f"{label}：pcap 文件头被截断（只有 {n} 字节，需要 24 字节）",
            )
        head = bytes(self.read_at(0, 24))
        major, minor, _zone, _sig, snaplen, network = struct.unpack_from(order + "HHiIII", head, 4)
        if major != 2:
            raise CaptureError(
                f"{label}: unsupported pcap version {major}.{minor} (only 2.x exists)",
                f"{label}：不支持的 pcap 版本 {major}.{minor}（仅支持 2.x）",
            )
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
        cols = _u32_cols(buf, o, 4, order)
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
            return _truncated(
                label,
                no,
                pos,
                f"record header has {n - pos} of {rec} bytes",
                f"记录头只有 {n - pos}/{rec} 字节",
            )
        cl = struct.unpack_from(self.order + "I", self.read_at(pos + 8, 4))[0]
        if cl > limit:
            return _corrupt(
                label,
                no,
                pos,
                f"captured length {cl} exceeds the maximum {limit}",
                f"捕获长度 {cl} 超过上限 {limit}",
            )
        have = n - pos - rec
        return _truncated(label, no, pos, f"{have} of {cl} data bytes present", f"数据只有 {have}/{cl} 字节")


class _Iface:
    __slots__ = ("linktype", "name", "snaplen", "tsoffset", "tsresol")

    def __init__(self, linktype: int, snaplen: int) -> None:
        self.linktype, self.snaplen = linktype, snaplen
        self.name = ""
        self.tsresol = 6
        self.tsoffset = 0


class _Pcapng:
    """pcapng: sections, interfaces, enhanced/simple/obsolete packet blocks, comments.

    The hot loop steps from block to block and records packet block offsets only;
    other blocks (section/interface headers, custom blocks, ...) are rare and are
    handled as they come.  Packet blocks are then validated and decoded as arrays;
    the first invalid one cuts the capture there, as if reading had stopped at it.
    """

    def __init__(self, data: bytes | memoryview, label: str, source: str) -> None:
        self.data, self.label, self.source = data, label, source
        self.n = len(data)
        self.ifaces: list[_Iface] = []
        self.if_pos: list[int] = []  # block offset of each IDB
        self.sections: list[tuple[int, str, int]] = []  # (SHB offset, byte order, first interface)
        self.warnings: list[TraceWarning] = []
        self.ts_overflow: npt.NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
        self.section_comment: str | None = None
        self.payloads: list[tuple[int, tracer_block.Payload]] = []
        self.pk_pos = array("q")
        self.comments: dict[int, str] = {}

    # --- the walk ---------------------------------------------------------------------

    def read(self) -> Trace:
        data, n = self.data, self.n
        order = self._shb_order(0)
        pk_pos = self.pk_pos
        append = pk_pos.append
        u2 = struct.Struct(order + "II").unpack_from
        pos, end = 0, n
        stop: TraceWarning | None = None
        while pos + 12 <= end:
            btype, blen = u2(data, pos)
            if btype == 6:
                if blen < 32 or pos + blen > end:
                    break  # diagnosed by _check below
                append(pos)
                pos += blen
                continue
            if btype == _PCAPNG_SHB:
                if pos + 16 > end:
                    stop = _truncated(
                        self.label, len(pk_pos) + 1, pos, "section header block is cut short", "段头块被截断"
                    )
                    break
                try:
                    order = self._shb_order(pos)
                except CaptureError as e:
                    label = self.label
                    en, zh = e.message.removeprefix(f"{label}: "), e.message_zh.removeprefix(f"{label}：")
                    stop = _corrupt(label, len(pk_pos) + 1, pos, en, zh)
                    break
                u2 = struct.Struct(order + "II").unpack_from
                blen = u2(data, pos)[1]
            problem = self._check(pos, order, len(pk_pos) + 1)
            if problem is not None:
                stop = problem
                break
            self._other(pos, btype, blen, order)
            pos += blen
        else:
            if pos < end:
                have = end - pos
                stop = _truncated(
                    self.label,
                    len(pk_pos) + 1,
                    pos,
                    f"block header has {have} of 12 bytes",
                    f"块头只有 {have}/12 字节",
                )
        if stop is None and pos + 12 <= end:
            stop = self._check(pos, order, len(pk_pos) + 1)
        if stop is not None and stop.offset == 0:
            # Not even the first section header is readable: this is no capture.
            raise CaptureError(
                f"{self.label}: not a readable pcapng file: its section header block is cut short or corrupt",
                f"{self.label}：不是可读的 pcapng 文件：段头块被截断或已损坏",
            )
        return self._finish(stop)

    def _check(self, pos: int, order: str, no: int) -> TraceWarning | None:
        """Why the block at ``pos`` cannot be read, or ``None`` if its framing is sound."""
        data, label, n = self.data, self.label, self.n
        btype, blen = struct.unpack_from(order + "II", data, pos)
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            return _corrupt(label, no, pos, f"block length {blen} is invalid", f"块长度 {blen} 无效")
        if pos + blen > n:
            have = n - pos
            return _truncated(
                label,
                no,
                pos,
                f"block needs {blen} bytes, {have} present",
                f"块需要 {blen} 字节，只有 {have} 字节",
            )
        if struct.unpack_from(order + "I", data, pos + blen - 4)[0] != blen:
            return _corrupt(
                label, no, pos, "block trailer length does not match its header", "块尾长度与块头不一致"
            )
        n_local = len(self.ifaces) - (self.sections[-1][2] if self.sections else 0)
        if btype in (6, 2):
            if blen < 32:
                return _corrupt(label, no, pos, "packet block too short", "数据包块太短")
            ifid = struct.unpack_from(order + ("I" if btype == 6 else "H"), data, pos + 8)[0]
            cl = struct.unpack_from(order + "I", data, pos + 20)[0]
            if cl > blen - 32:
                return _corrupt(
                    label,
                    no,
                    pos,
                    f"captured length {cl} exceeds the block's {blen - 32} data bytes",
                    f"捕获长度 {cl} 超过块中的 {blen - 32} 字节数据",
                )
            if ifid >= n_local:
                return _corrupt(
                    label, no, pos, f"interface {ifid} was not described before", f"接口 {ifid} 未定义"
                )
        elif btype == 3:
            if blen < 16:
                return _corrupt(label, no, pos, "simple packet block too short", "简单数据包块太短")
            if n_local == 0:
                return _corrupt(
                    label, no, pos, "simple packet block before any interface", "简单数据包块在任何接口之前"
                )
        elif btype == 1 and blen < 20:
            return _corrupt(label, no, pos, "interface block too short", "接口块太短")
        return None

    def _other(self, pos: int, btype: int, blen: int, order: str) -> None:
        """Handle a block that is not an EPB (its framing was checked)."""
        data, end = self.data, pos + blen
        if btype in (2, 3):  # obsolete PB, SPB
            self.pk_pos.append(pos)
        elif btype == 1:  # IDB
            lt, _res, snap = struct.unpack_from(order + "HHI", data, pos + 8)
            iface = _Iface(lt, snap)
            for code, val in self._options(pos + 16, end - 4, order):
                if code == 2:
                    iface.name = _text(val)
                elif code == 9 and len(val) >= 1:
                    iface.tsresol = val[0]
                elif code == 14 and len(val) >= 8:
                    iface.tsoffset = struct.unpack(order + "q", val[:8])[0]
            self.ifaces.append(iface)
            self.if_pos.append(pos)
        elif btype == _PCAPNG_SHB:
            self.sections.append((pos, order, len(self.ifaces)))
            if self.section_comment is None:
                texts = [v for c, v in self._options(pos + 24, end - 4, order) if c == 1]
                if texts:
                    self.section_comment = "\n".join(_text(t) for t in texts)
        elif btype in (0x00000BAD, 0x40000BAD):
            self._custom(pos, end, order)

    def _options(self, start: int, end: int, order: str) -> list[tuple[int, bytes]]:
        """The options in ``data[start:end]`` as (code, value); stops quietly at garbage."""
        out = []
        data = self.data
        while start + 4 <= end:
            code, ln = struct.unpack_from(order + "HH", data, start)
            if code == 0 or start + 4 + ln > end:
                break
            out.append((code, bytes(data[start + 4 : start + 4 + ln])))
            start += 4 + ((ln + 3) & ~3)
        return out

    def _shb_order(self, pos: int) -> str:
        data, label, n = self.data, self.label, self.n
        if pos + 16 > n:
            raise CaptureError(
                f"{label}: pcapng section header cut short ({n - pos} of 28 bytes)",
                f"{label}：pcapng 段头被截断（只有 {n - pos} 字节）",
            )
        bom = bytes(data[pos + 8 : pos + 12])
        if bom == b"\x4d\x3c\x2b\x1a":
            order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            order = ">"
        else:
            raise CaptureError(
                f"{label}: pcapng section header has a bad byte-order magic",
                f"{label}：pcapng 段头的字节序标记错误",
            )
        major, minor = struct.unpack_from(order + "HH", data, pos + 12)
        if major != 1:
            raise CaptureError(
                f"{label}: unsupported pcapng version {major}.{minor}",
                f"{label}：不支持的 pcapng 版本 {major}.{minor}",
            )
        return order

    def _custom(self, pos: int, end: int, order: str) -> None:
        if end - pos < 16:
            return
        pen = struct.unpack_from(order + "I", self.data, pos + 8)[0]
        if pen != tracer_block.PEN:
            return
        try:
            self.payloads.append((pos, tracer_block.decode(bytes(self.data[pos + 12 : end - 4]))))
        except (ValueError, UnicodeDecodeError) as e:
            self.warnings.append(
                _warn(
                    "bad_tracer_block",
                    f"{self.label}: tracer block at byte offset {pos} is unreadable ({e}); ignored it",
                    f"{self.label}：字节偏移 {pos} 处的 tracer 块无法解析（{e}）；已忽略",
                    None,
                    pos,
                )
            )

    # --- packets as arrays -----------------------------------------------------------------

    def _finish(self, stop: TraceWarning | None) -> Trace:
        data = self.data
        buf = np.frombuffer(data, dtype=np.uint8)
        pos = np.frombuffer(self.pk_pos, dtype=np.int64) if len(self.pk_pos) else np.zeros(0, dtype=np.int64)
        sec_pos = np.array([s[0] for s in self.sections], dtype=np.int64)
        sec = np.searchsorted(sec_pos, pos, side="right") - 1
        big = np.array([s[1] == ">" for s in self.sections], dtype=np.bool_)[sec]
        base = np.array([s[2] for s in self.sections], dtype=np.int64)[sec]
        # Interfaces described before each packet, counted from its section's first one.
        n_local = np.searchsorted(np.array(self.if_pos, dtype=np.int64), pos) - base
        count = pos.shape[0]
        # type, len, ifid, ts_hi, ts_lo, caplen, wirelen as on disk (uint32: half of int64's memory)
        head = np.zeros((count, 7), dtype=np.uint32)
        blen = np.zeros(count, dtype=np.int64)  # -1 where the trailer disagrees
        for is_big, order in ((False, "<"), (True, ">")):
            sel = big == is_big
            if not sel.any():
                continue
            # Files have one byte order almost always: then work on whole columns.
            rows: slice | I64A = slice(None) if sel.all() else np.flatnonzero(sel)
            h = gather_bytes(buf, pos[rows], 28).view(order + "u4").astype(np.uint32, copy=False)
            hl = h[:, 1].astype(np.int64)
            trailer = _u32_cols(buf, pos[rows] + hl - 4, 1, order)[:, 0]
            hl[trailer != hl] = -1
            del trailer
            # The obsolete Packet Block's interface id is 16 bits wide.
            pb = h[:, 0] == 2
            if pb.any():
                h[pb, 2] = h[pb, 2] & 0xFFFF if order == "<" else h[pb, 2] >> 16
            if isinstance(rows, slice):
                head, blen = h, hl
            else:
                head[rows], blen[rows] = h, hl
            del h, hl
        kind = head[:, 0]
        simple = kind == 3
        ifid = np.where(simple, 0, head[:, 2])
        caplen = np.where(simple, 0, head[:, 5])
        bad = (
            (blen < 0)
            | (blen % 4 != 0)
            | (blen > MAX_BLOCK)
            | (~simple & ((blen < 32) | (caplen > blen - 32)))
            | (simple & (blen < 16))
            | (ifid >= n_local)
        )
        first_bad = np.flatnonzero(bad)
        if first_bad.size:
            k = int(first_bad[0])
            p = int(pos[k])
            # Re-diagnose that block with the per-block checks (which know the context).
            self.ifaces = [i for i, ip in zip(self.ifaces, self.if_pos, strict=True) if ip < p]
            self.if_pos = self.if_pos[: len(self.ifaces)]
            self.sections = [s for s in self.sections if s[0] < p]
            order = self.sections[-1][1]
            stop = self._check(p, order, k + 1) or _corrupt(
                self.label, k + 1, p, "invalid packet block", "无效的数据包块"
            )
            pos, kind, ifid, head, big, base, simple = (
                pos[:k],
                kind[:k],
                ifid[:k],
                head[:k],
                big[:k],
                base[:k],
                simple[:k],
            )
            count = k
        del bad, first_bad, n_local, sec, blen, caplen
        if stop is not None:
            cut = stop.offset if stop.offset is not None else self.n
            self.payloads = [pl for pl in self.payloads if pl[0] < cut]
            self.warnings = [w for w in self.warnings if w.offset is None or w.offset < cut]
            self.warnings.append(stop)
        ifs = (base + ifid).astype(np.int32)
        frame_off = pos + 28
        caplen = head[:, 5].copy()
        wirelen = head[:, 6].copy()
        ts = np.zeros(count, dtype=np.int64)
        full = np.flatnonzero(~simple)
        if full.size:
            hi, lo = head[full, 3].astype(np.uint64), head[full, 4].astype(np.uint64)
            ts_raw = ((hi << np.uint64(32)) | lo).view(np.int64)
            ts[full] = self._ts_ns(ts_raw, ifs[full])
            if self.ts_overflow.any():
                rows = full[self.ts_overflow]
                first = int(rows[0]) + 1
                self.warnings.append(_warn(
                    "timestamp_out_of_range",
                    f"{rows.size} packets have timestamps past the year 2262 that do not fit in 64-bit "
                    f"nanoseconds (first: packet {first}); their times are shown wrapped",
                    f"{rows.size} 个包的时间戳超过 2262 年，无法用 64 位纳秒表示（第一个：第 {first} 个包）；"
                    "其时间显示有误",
                    first, None))
        sp = np.flatnonzero(simple)
        if sp.size:
            # SPB: original length at +8, data at +12, captured = min(len, room, snaplen).
            wirelen[sp] = head[sp, 2]
            snap = np.array([self.ifaces[i].snaplen or MAX_BLOCK for i in ifs[sp].tolist()], dtype=np.int64)
            caplen[sp] = np.minimum(np.minimum(head[sp, 2], head[sp, 1] - 16), snap)
            frame_off[sp] = pos[sp] + 12
        self._packet_comments(pos, head, simple, big)
        del head, simple, big, base, kind, ifid
        lts = np.array([i.linktype for i in self.ifaces] or [0], dtype=np.int32)
        caplen32 = caplen.astype(np.int32)
        del caplen
        wirelen32 = np.minimum(wirelen, 0x7FFFFFFF).astype(np.int32)
        del wirelen
        # Decoded a slice of packets at a time so that decode temporaries stay small.
        builder = TableBuilder()
        builder.reserve(count)
        for a in range(0, count, CHUNK_PACKETS):
            r = slice(a, a + CHUNK_PACKETS)
            builder.add(data, frame_off[r], caplen32[r], wirelen32[r], ts[r], ifs[r], lts[ifs[r]])
        table = builder.finish(data)
        if self.comments:
            table = replace(table, comments=self.comments)
        return self._trace(table)

    def _packet_comments(self, pos: I64A, head: U32A, simple: BoolA, big: BoolA) -> None:
        """opt_comment of EPB/PB blocks that have options at all (checked as arrays first)."""
        opt_start = pos + 28 + ((head[:, 5].astype(np.int64) + 3) & ~3)
        opt_end = pos + head[:, 1].astype(np.int64) - 4
        has = np.flatnonzero(~simple & (opt_start + 4 < opt_end))
        rows = zip(
            has.tolist(), opt_start[has].tolist(), opt_end[has].tolist(), big[has].tolist(), strict=True
        )
        for r, s, e, b in rows:
            texts = [v for c, v in self._options(s, e, ">" if b else "<") if c == 1]
            if texts:
                self.comments[r] = "\n".join(_text(t) for t in texts)

    def _trace(self, table: PacketTable) -> Trace:
        calls: list[SocketCall] = []
        states: list[KernelSocketState] = []
        extra: dict[str, str] = {}
        warnings = list(self.warnings)
        for _, p in self.payloads:
            calls += p.calls
            states += p.kernel_states
            extra.update(p.meta)
            # A warning stored by tracer may be detected again on this read
            # (e.g. out-of-range timestamps): show it once.
            warnings += [w for w in p.warnings if w not in warnings]
        meta = TraceMeta(
            source=self.source,
            file_format="pcapng",
            section_comment=self.section_comment,
            interfaces=tuple((i.linktype, i.name) for i in self.ifaces),
            extra=extra,
        )
        return Trace(
            packets=table,
            calls=tuple(calls),
            kernel_states=tuple(states),
            meta=meta,
            warnings=tuple(warnings),
        )

    def _ts_ns(self, raw: npt.NDArray[np.int64], ifs: npt.NDArray[np.int32]) -> npt.NDArray[np.int64]:
        """Timestamps in each interface's units -> ns; 64-bit wrap-around as in C."""
        out = np.zeros(raw.shape, dtype=np.int64)
        bad = np.zeros(raw.shape, dtype=np.bool_)
        used = np.flatnonzero(np.bincount(ifs)) if ifs.size else ifs
        for i in used.tolist():
            sel: slice | BoolA = slice(None) if used.size == 1 else ifs == i
            iface = self.ifaces[i]
            r = raw[sel]
            res = iface.tsresol
            if res & 0x80:
                e = res & 0x7F
                if e <= 30:
                    whole = r >> e
                    part = ((r & ((1 << e) - 1)) * 1_000_000_000) >> e
                    v = whole * 1_000_000_000 + part
                else:
                    v = np.array([(x * 1_000_000_000) >> e for x in r.tolist()], dtype=np.int64)
            elif res <= 9:
                mult = 10 ** (9 - res)
                # Unsigned on disk: a negative int64 view means a value past 2**63.
                bad |= ((raw < 0) | (raw > (2**63 - 1) // mult)) & (ifs == i)
                with np.errstate(over="ignore"):
                    v = r * np.int64(mult)
            else:
                v = r // np.int64(10 ** min(res - 9, 18))
            # Wrap like 64-bit C arithmetic rather than overflow on a corrupt offset.
            off_ns = (iface.tsoffset * 1_000_000_000 + 2**63) % 2**64 - 2**63
            out[sel] = v + np.int64(off_ns)
        self.ts_overflow = bad
        return out


def _text(raw: bytes) -> str:
    """An option string: UTF-8 (bad bytes replaced), up to the first NUL as tshark shows it."""
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace")
