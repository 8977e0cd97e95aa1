"""What the classic pcap and the pcapng readers share: size limits, the mapped file
that serves a trace's frames, the warnings for a capture cut short or corrupt, and
gathering u32 record fields as arrays."""

from __future__ import annotations

import mmap
from typing import SupportsIndex, overload

import numpy as np
import numpy.typing as npt

from tracer.core.decode import gather_bytes
from tracer.core.model import TraceWarning

# A pcapng block beyond this is treated as corrupt (tshark's limit is 16 MiB); a pcap
# file's snaplen is capped there too.
MAX_BLOCK = 16 * 1024 * 1024

I64A = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]
U32A = npt.NDArray[np.uint32]


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



def warning(code: str, en: str, zh: str, packet_no: int | None, offset: int | None) -> TraceWarning:
    return TraceWarning(code=code, message=en, message_zh=zh, packet_no=packet_no, offset=offset)


def truncated(label: str, no: int, off: int, what_en: str, what_zh: str) -> TraceWarning:
    return warning(
        "truncated_file",
        f"{label} is cut short: packet {no} at byte offset {off} is incomplete ({what_en}); "
        f"loaded the {no - 1} packets before it",
        f"{label} 文件被截断：第 {no} 个包（字节偏移 {off}）不完整（{what_zh}）；已载入之前的 {no - 1} 个包",
        no,
        off,
    )


def corrupt(label: str, no: int, off: int, what_en: str, what_zh: str) -> TraceWarning:
    return warning(
        "corrupt_record",
        f"{label} has a corrupt record: packet {no} at byte offset {off}: {what_en}; "
        f"loaded the {no - 1} packets before it and stopped there",
        f"{label} 有损坏的记录：第 {no} 个包（字节偏移 {off}）：{what_zh}；"
        f"已载入之前的 {no - 1} 个包并在此停止",
        no,
        off,
    )


def u32_cols(buf: npt.NDArray[np.uint8], offs: I64A, width: int, order: str) -> I64A:
    """``width`` consecutive u32 fields at each offset -> (len(offs), width) int64."""
    raw = gather_bytes(buf, offs, width * 4)
    return raw.view(order + "u4").astype(np.int64)

