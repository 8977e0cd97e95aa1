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
from tracer.i18n import Msg, both

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



def warning(code: str, text: tuple[str, str], packet_no: int | None, offset: int | None) -> TraceWarning:
    """A reader's warning; ``text`` is the (English, Chinese) pair of a catalogue key (``both``)."""
    return TraceWarning(code=code, message=text[0], message_zh=text[1], packet_no=packet_no, offset=offset)


def truncated(label: str, no: int, off: int, what: Msg) -> TraceWarning:
    """Packet ``no`` at ``off`` is cut short; ``what`` says how (a ``pcap.what.*`` text)."""
    text = both("pcap.truncated", label=label, no=no, off=off, what=what, before=no - 1)
    return warning("truncated_file", text, no, off)


def corrupt(label: str, no: int, off: int, what: Msg) -> TraceWarning:
    """Packet ``no`` at ``off`` is corrupt; ``what`` says how (a ``pcap.what.*`` text)."""
    text = both("pcap.corrupt", label=label, no=no, off=off, what=what, before=no - 1)
    return warning("corrupt_record", text, no, off)


def u32_cols(buf: npt.NDArray[np.uint8], offs: I64A, width: int, order: str) -> I64A:
    """``width`` consecutive u32 fields at each offset -> (len(offs), width) int64."""
    raw = gather_bytes(buf, offs, width * 4)
    return raw.view(order + "u4").astype(np.int64)

