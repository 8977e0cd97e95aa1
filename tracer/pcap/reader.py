"""Read pcap and pcapng files into a ``Trace``: the entry points.

They tell the format by its first bytes and hand the file to its reader:
``tracer.pcap.classic`` (libpcap, read a couple of MiB at a time; the file's bytes
are not kept, the trace's frames are served from the mapped file,
``MappedCapture``) or ``tracer.pcap.pcapng`` (walked whole, decoded in slices of
packets).  Bad input never raises anything but ``CaptureError``: a file that is
not a readable capture raises it with a one-line message; a file cut short or
with a corrupt record keeps every packet before the damage and says where it
stopped in a ``TraceWarning``.
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import replace
from pathlib import Path

from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.i18n import Msg
from tracer.pcap.classic import MAGICS, PcapReader, Progress
from tracer.pcap.common import MappedCapture
from tracer.pcap.pcapng import SHB_TYPE, PcapngReader

__all__ = ["MappedCapture", "Progress", "read_bytes", "read_capture", "read_capture_head"]

_KNOWN_NOT_CAPTURES = {
    b"\x1f\x8b": Msg("pcap.what.gzip"),
    b"PK": Msg("pcap.what.zip"),
    b"\xfd7zXZ": Msg("pcap.what.xz"),
    b"\x28\xb5\x2f\xfd": Msg("pcap.what.zstd"),
}


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
            if head in MAGICS and st.st_size >= 24:
                frames = MappedCapture(fd, 0, access=mmap.ACCESS_READ)

                def read_at(off: int, size: int) -> bytes:
                    return os.pread(fd, size, off)

                return PcapReader(read_at, len(frames), frames, name, name, head, progress).read()
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
        raise CaptureError("pcap.file", label=name, what=Msg("pcap.what.no_file")) from None
    except IsADirectoryError:
        raise CaptureError("pcap.file", label=name, what=Msg("pcap.what.directory")) from None
    except PermissionError:
        raise CaptureError("pcap.file", label=name, what=Msg("pcap.what.permission")) from None
    except MemoryError:
        raise CaptureError("pcap.file", label=name, what=Msg("pcap.what.too_large")) from None
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        what = Msg("pcap.what.cannot_read", reason=reason)
        raise CaptureError("pcap.file", label=name, what=what) from None


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



def read_bytes(data: bytes | memoryview, source: str = "") -> Trace:
    """Parse a whole capture held in memory (see ``read_capture``)."""
    label = source or "capture"
    n = len(data)
    if n == 0:
        raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.empty"))
    head = bytes(data[:4])
    if head in MAGICS:
        view = memoryview(data).cast("B")

        def read_at(off: int, size: int) -> memoryview:
            return view[off : off + size]

        return PcapReader(read_at, n, data, label, source, head).read()
    if n >= 4 and int.from_bytes(head, "little") == SHB_TYPE:
        return PcapngReader(data, label, source).read()
    for magic, what in _KNOWN_NOT_CAPTURES.items():
        if head.startswith(magic):
            raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.not_capture", what=what))
    hexs = " ".join(f"{b:02x}" for b in head)
    raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.unknown_magic", hexs=hexs))
