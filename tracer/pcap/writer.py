"""Write a ``Trace`` as pcapng that tracer, Wireshark and tshark read back.

Layout (one section, little-endian): a Section Header Block (``shb_userappl``
"tracer x.y", the trace's section comment), one Interface Description Block per
interface (nanosecond ``if_tsresol``, ``if_name`` where known), one Enhanced
Packet Block per packet with the captured bytes as read, the original wire
length, the nanosecond timestamp and ``opt_comment`` options (the packet's
original comment and, when an ``Analysis`` is given, its cause and explanation in
the chosen language), and last one tracer Custom Block
(``tracer.pcap.tracer_block``: calls, kernel states, metadata, warnings).  The
Custom Block is last because Wireshark lists it as a frame: anywhere earlier it
would make Wireshark's frame numbers differ from tracer's packet numbers.

Packets are written in chunks: block headers and trailers for a whole chunk are
filled by numpy, only the frame bytes (and comments) are copied per packet, so a
million-packet trace writes in about a second (two with cause comments) and
memory stays bounded by the chunk size.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from tracer import __version__
from tracer.core.analysis import Analysis
from tracer.core.model import CauseBy, Side, endpoint_str
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.i18n import Words
from tracer.i18n.explain import template
from tracer.pcap import tracer_block

BLOCK_SHB = 0x0A0D0D0A
BLOCK_IDB = 0x00000001
BLOCK_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
OPT_SHB_USERAPPL = 4
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
TSRESOL_NS = 9  # 10^-9 s

_OPT_MAX = 0xFFFF  # an option's length field is 16 bits
_EPB_HEAD = 28  # type, length, interface, ts high, ts low, caplen, wirelen
_CHUNK_PACKETS = 65536
_CHUNK_BYTES = 8 << 20

LANGS = ("en", "zh")


# --- block framing -------------------------------------------------------------------


def _pad4(n: int) -> int:
    return -n % 4


def _utf8(text: str) -> bytes:
    """UTF-8, cut at a character boundary so it fits one option (64 KiB - 1)."""
    b = text.encode("utf-8", errors="replace")
    if len(b) <= _OPT_MAX:
        return b
    return b[:_OPT_MAX].decode("utf-8", errors="ignore").encode("utf-8")


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * _pad4(len(value))


def _options(opts: list[bytes]) -> bytes:
    """An option list with its end-of-options marker, or nothing if empty."""
    if not opts:
        return b""
    return b"".join(opts) + struct.pack("<HH", OPT_ENDOFOPT, 0)


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * _pad4(len(body))
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _shb(trace: Trace) -> bytes:
    opts = []
    if trace.meta.section_comment:
        opts.append(_option(OPT_COMMENT, _utf8(trace.meta.section_comment)))
    opts.append(_option(OPT_SHB_USERAPPL, _utf8(f"tracer {__version__}")))
    # Section length -1: unknown, since the file is streamed.
    return _block(BLOCK_SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts))


def _idb(linktype: int, name: str, snaplen: int) -> bytes:
    opts = []
    if name:
        opts.append(_option(OPT_IF_NAME, _utf8(name)))
    opts.append(_option(OPT_IF_TSRESOL, bytes([TSRESOL_NS])))
    return _block(BLOCK_IDB, struct.pack("<HHI", linktype, 0, snaplen) + _options(opts))


def _custom_block(trace: Trace, cause_lang: str | None) -> bytes:
    meta = dict(trace.meta.extra)
    if cause_lang is not None:
        meta[CAUSE_COMMENTS_KEY] = cause_lang
    payload = tracer_block.Payload(
        calls=trace.calls,
        kernel_states=trace.kernel_states,
        meta=meta,
        warnings=trace.warnings,
        kernel=trace.kernel,
    )
    body = struct.pack("<I", tracer_block.PEN) + tracer_block.encode(payload)
    return _block(tracer_block.BLOCK_TYPE_COPYABLE, body)


# --- interfaces ----------------------------------------------------------------------


def _interfaces(trace: Trace) -> tuple[list[tuple[int, str]], npt.NDArray[np.int64]]:
    """The IDBs to write as (linktype, name), and each packet's new interface id.

    When the packets agree with ``trace.meta.interfaces`` (packet interface ``i``
    has that interface's link type) those interfaces are kept as they are, so the
    interface ids round-trip; otherwise one interface per distinct
    (interface, link type) pair of the packets, in order of that pair.
    """
    t = trace.packets
    declared = list(trace.meta.interfaces)
    iface = t.iface.astype(np.int64)
    lt = t.linktype.astype(np.int64)
    if len(t) == 0:
        return declared, iface
    if declared and int(iface.min()) >= 0 and int(iface.max()) < len(declared):
        declared_lt = np.array([k for k, _ in declared], dtype=np.int64)
        if np.array_equal(declared_lt[iface], lt):
            return declared, iface
    # One key per (interface, link type) pair; both fit 32 bits in any real trace.
    keys, inverse = np.unique((iface << 32) | (lt & 0xFFFFFFFF), return_inverse=True)
    # A declared name still applies where the declared link type matches.
    names = {(i, k): name for i, (k, name) in enumerate(declared)}
    pairs = [(int(k) >> 32, int(k) & 0xFFFFFFFF) for k in keys.tolist()]
    out = [(k, names.get((i, k), "")) for i, k in pairs]
    return out, inverse.reshape(-1).astype(np.int64)


def _snaplens(trace: Trace, n_ifaces: int, new_iface: npt.NDArray[np.int64]) -> list[int]:
    """Each interface's snapshot length: the source's (a pcap header's, which the
    reader keeps as ``meta.extra["snaplen"]``) where no frame of the interface is
    longer, else 0 ("no limit", as the spec allows when it is unknown).
    """
    v = trace.meta.extra.get("snaplen", "")
    snap = int(v) if v.isdigit() and int(v) <= 0xFFFFFFFF else 0
    longest = np.zeros(n_ifaces, dtype=np.int64)
    if len(trace.packets):
        np.maximum.at(longest, new_iface, trace.packets.caplen.astype(np.int64))
    return [snap if snap >= m else 0 for m in longest.tolist()]


# --- packet comments -------------------------------------------------------------------

# Metadata key saying the file's packet comments end with a tracer cause line (its
# value is the language).  Such a line is always the last ``opt_comment`` of a
# packet and has no newline, so the reader's comment ends with it as its last line.
CAUSE_COMMENTS_KEY = "tracer.cause_comments"


def _original_comments(trace: Trace) -> dict[int, str]:
    """The packets' comments without cause lines an earlier ``write_pcapng`` added.

    So writing a file tracer wrote, with a new analysis, replaces the old cause
    comments instead of piling a second set on top.
    """
    comments = trace.packets.comments
    if CAUSE_COMMENTS_KEY not in trace.meta.extra:
        return comments
    out = {}
    for i, text in comments.items():
        kept = text.rpartition("\n")[0]
        if kept:
            out[i] = kept
    return out


# The words of a cause comment's head, "[client kernel · inferred]".
_WORDS = Words("pcap.comment.")
_SIDE_WORD: dict[int, str] = {Side.CLIENT: "client", Side.SERVER: "server"}


class _CauseComments:
    """Per packet "[client connect()] explanation" in one language.

    The label and the explanation template are built once per distinct cause;
    only templates with placeholders ({src}, {len}, ...) are formatted per packet,
    with the same values the JSON and ladder exporters use.
    """

    def __init__(self, trace: Trace, analysis: Analysis, lang: str) -> None:
        self.t, self.a, self.lang = trace.packets, analysis, lang
        self.zh = lang == "zh"
        self.heads: dict[tuple[int, int, int, bool], str] = {}
        self.templates: dict[tuple[int, int], str] = {}
        self.endpoints: dict[tuple[int, int], str] = {}

    def _head(self, by: int, side: int, call: int, inferred: bool) -> str:
        zh, w = self.zh, _WORDS[self.lang]
        who = w[_SIDE_WORD[side]] if side in _SIDE_WORD else ""
        if by == CauseBy.CALL and 0 < call < len(CALL_NAMES):
            what = f"{CALL_NAMES[call]}()"
        elif by == CauseBy.KERNEL:
            what = w["kernel"]
        else:
            what = w["unknown"]
        # "client kernel", but "客户端内核": Chinese puts no space between words.
        sep = "" if zh and by == CauseBy.KERNEL else " "
        text = f"{who}{sep}{what}" if who else what
        if inferred and by != CauseBy.UNKNOWN:
            text += f" · {w['inferred']}"
        return f"[{text}]"

    def _template(self, reason: int, side: int) -> str:
        name = REASONS[reason] if 0 <= reason < len(REASONS) else "unknown"
        return template(name, side if side in (0, 1, 2) else Side.NONE, self.lang)

    def _endpoint(self, addr: int, port: int) -> str:
        key = (addr, port)
        ep = self.endpoints.get(key)
        if ep is None:
            ep = self.endpoints[key] = endpoint_str(self.t.address(addr), port)
        return ep

    def rows(self, lo: int, hi: int) -> list[str]:
        """The comments of packets ``lo`` to ``hi - 1``.

        Grouped by distinct cause with numpy; only rows whose explanation has
        placeholders ({src}, {len}, ...) are formatted one by one.
        """
        a = self.a
        side = a.cause_side[lo:hi].astype(np.int64)
        # One int64 key per (by, side, call, inferred, reason); each field is small.
        key = (
            (a.cause_by[lo:hi].astype(np.int64) & 0xFF) << 48
            | (side & 0xFF) << 40
            | (a.cause_call[lo:hi].astype(np.int64) & 0xFFFF) << 24
            | a.cause_inferred[lo:hi].astype(np.int64) << 16
            | (a.cause_reason[lo:hi].astype(np.int64) & 0xFFFF)
        )
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        texts: list[str] = []
        dynamic: list[tuple[str, str]] = []  # (head, template) per distinct key, if formatted per row
        for j in (first + lo).tolist():
            sd = int(a.cause_side[j])
            head = self._head(int(a.cause_by[j]), sd, int(a.cause_call[j]), bool(a.cause_inferred[j]))
            tpl = self._template(int(a.cause_reason[j]), sd)
            texts.append(f"{head} {tpl}")
            dynamic.append((head, tpl) if "{" in tpl else ("", ""))
        inv = inverse.reshape(-1)
        out: list[str] = np.array(texts, dtype=object)[inv].tolist()
        dyn_keys = np.array([bool(t) for _, t in dynamic], dtype=np.bool_)
        for r in np.flatnonzero(dyn_keys[inv]).tolist():
            head, tpl = dynamic[int(inv[r])]
            out[r] = f"{head} {self._format(tpl, lo + r)}"
        return out

    def _format(self, tpl: str, i: int) -> str:
        t, a = self.t, self.a
        seq, ack = int(a.rel_seq[i]), int(a.rel_ack[i])
        try:
            return tpl.format(
                src=self._endpoint(int(t.src[i]), int(t.sport[i])),
                dst=self._endpoint(int(t.dst[i]), int(t.dport[i])),
                len=int(t.payload_len[i]),
                seq=seq if seq >= 0 else "",
                ack=ack if ack >= 0 else "",
            )
        except (KeyError, IndexError, ValueError):
            return tpl


# --- packet blocks -------------------------------------------------------------------------


def _chunks(caplen: npt.NDArray[np.int64]) -> Iterator[tuple[int, int]]:
    """[a, b) packet ranges of at most ~_CHUNK_BYTES and _CHUNK_PACKETS."""
    n = int(caplen.shape[0])
    ends = np.cumsum(caplen)
    a = 0
    while a < n:
        base = int(ends[a - 1]) if a else 0
        b = int(np.searchsorted(ends, base + _CHUNK_BYTES, side="right"))
        b = max(a + 1, min(b, a + _CHUNK_PACKETS, n))
        yield a, b
        a = b


def _epb_chunk(
    trace: Trace,
    new_iface: npt.NDArray[np.int64],
    a: int,
    b: int,
    causes: _CauseComments | None,
    comments: dict[int, str],
    commented: list[int],
) -> bytearray:
    t = trace.packets
    caplen = t.caplen[a:b].astype(np.int64)
    # One slice of the frame source per chunk: a copy, so a capture file that is
    # cut short meanwhile gives a clear error, never a SIGBUS from a stale mapping.
    offs = t.frame_off[a:b]
    lo = int(offs.min())
    hi = int((offs + caplen).max())
    chunk = t.data[lo:hi]
    if len(chunk) < hi - lo:
        raise CaptureError("pcap.changed_while_used")
    src = memoryview(chunk).cast("B")
    # Per-packet option lists (b"" for none): every packet with a cause comment,
    # else only those with an original comment.
    blobs = _option_lists(a, b, causes, comments, commented)
    optlen = np.fromiter(map(len, blobs), dtype=np.int64, count=b - a)
    blen = _EPB_HEAD + caplen + (-caplen % 4) + optlen + 4
    start = np.cumsum(blen) - blen
    out = bytearray(int(blen.sum()))
    w = np.frombuffer(out, dtype="<u4")
    s4 = start // 4
    ts = t.ts_ns[a:b].astype(np.int64).view(np.uint64)  # pre-1970 times keep their bits
    w[s4] = BLOCK_EPB
    w[s4 + 1] = blen
    w[s4 + 2] = new_iface[a:b]
    w[s4 + 3] = ts >> np.uint64(32)
    w[s4 + 4] = ts & np.uint64(0xFFFFFFFF)
    w[s4 + 5] = caplen
    w[s4 + 6] = t.wirelen[a:b]
    w[(start + blen) // 4 - 1] = blen
    del w  # release the buffer export so the caller may use ``out`` freely
    data_at = (start + _EPB_HEAD).tolist()
    for d, s, n in zip(data_at, (offs - lo).tolist(), caplen.tolist(), strict=True):
        out[d : d + n] = src[s : s + n]
    opt_at = (start + _EPB_HEAD + caplen + (-caplen % 4)).tolist()
    for r in np.flatnonzero(optlen).tolist():
        d = opt_at[r]
        out[d : d + len(blobs[r])] = blobs[r]
    return out


def _option_lists(
    a: int, b: int, causes: _CauseComments | None, comments: dict[int, str], commented: list[int]
) -> list[bytes]:
    """Each packet's encoded option list: its original comment, then its cause comment.

    ``commented`` are the chunk's rows that have an original comment.
    """
    blobs = [b""] * (b - a)
    for i in commented:
        blobs[i - a] = _comment_options(comments[i])
    if causes is None:
        return blobs
    memo: dict[str, bytes] = {}  # most packets share a handful of cause texts
    for r, text in enumerate(causes.rows(a, b)):
        if blobs[r]:
            blobs[r] = _comment_options(comments[a + r], text)
            continue
        blob = memo.get(text)
        if blob is None:
            blob = memo[text] = _comment_options(text)
        blobs[r] = blob
    return blobs


def _comment_options(*texts: str) -> bytes:
    return _options([_option(OPT_COMMENT, _utf8(s)) for s in texts])


# --- entry point --------------------------------------------------------------------------


def _check(trace: Trace, analysis: Analysis | None) -> tuple[list[tuple[int, str]], npt.NDArray[np.int64]]:
    """Refuse an inconsistent trace before any byte is written; return the interfaces."""
    t = trace.packets
    n = len(t)
    if analysis is not None and analysis.cause_reason.shape[0] != n:
        raise ValueError(f"analysis has {analysis.cause_reason.shape[0]} rows, trace has {n} packets")
    ifaces, new_iface = _interfaces(trace)
    for linktype, _ in ifaces:
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"link type {linktype} does not fit pcapng's 16-bit field")
    caplen = t.caplen.astype(np.int64)
    off = t.frame_off
    size = len(t.data)
    if n and (int(caplen.min()) < 0 or int(off.min()) < 0 or int((off + caplen).max()) > size):
        raise ValueError("packet table's frame offsets point outside its data buffer")
    return ifaces, new_iface


def _blocks(
    trace: Trace,
    analysis: Analysis | None,
    lang: str,
    ifaces: list[tuple[int, str]],
    new_iface: npt.NDArray[np.int64],
) -> Iterator[bytes | bytearray]:
    """The file, block by block (packets a chunk at a time)."""
    t = trace.packets
    yield _shb(trace)
    snaplens = _snaplens(trace, len(ifaces), new_iface)
    for (linktype, name), snaplen in zip(ifaces, snaplens, strict=True):
        yield _idb(linktype, name, snaplen)
    causes = None
    comments = t.comments
    if analysis is not None:
        causes = _CauseComments(trace, analysis, lang)
        comments = _original_comments(trace)
    rows = np.array(sorted(comments), dtype=np.int64)  # once, not a dict scan per chunk
    for a, b in _chunks(t.caplen.astype(np.int64)):
        lo, hi = np.searchsorted(rows, [a, b]).tolist()
        yield _epb_chunk(trace, new_iface, a, b, causes, comments, rows[lo:hi].tolist())
    # Last, not before the packets: Wireshark/tshark (4.0) list a Custom Block as a
    # frame of its own, which would shift every packet's frame number by one.
    yield _custom_block(trace, lang if analysis is not None else None)


def write_pcapng(
    path_or_stream: str | os.PathLike[str] | BinaryIO,
    trace: Trace,
    analysis: Analysis | None = None,
    lang: str = "en",
) -> int:
    """Write ``trace`` as pcapng; return the number of bytes written.

    ``analysis`` (one row per packet) adds each packet's cause and explanation, in
    ``lang`` ("en" or "zh"), as a packet comment beside any original comment.
    A path is created or truncated; a stream is written from its current position
    and left open.  Raises ``ValueError`` for an unsupported language or an
    inconsistent trace, ``CaptureError`` when the file cannot be written.
    """
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; use one of {', '.join(LANGS)}")
    ifaces, new_iface = _check(trace, analysis)
    blocks = _blocks(trace, analysis, lang, ifaces, new_iface)
    written = 0
    if not isinstance(path_or_stream, (str, os.PathLike)):
        for block in blocks:
            path_or_stream.write(block)
            written += len(block)
        return written
    path = os.fspath(path_or_stream)
    created = not os.path.lexists(path)
    try:
        f = open(path, "wb")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        with f:
            for block in blocks:
                f.write(block)
                written += len(block)
    except OSError as e:
        if created:  # leave no half-written capture behind (but never remove what was there)
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise _write_error(path, e) from e
    return written


def _write_error(path: str, e: OSError) -> CaptureError:
    reason = e.strerror or str(e)
    return CaptureError("pcap.cannot_write", path=path, reason=reason)
