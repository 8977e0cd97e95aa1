"""Read a pcapng file into a ``Trace``: sections, interfaces, enhanced/simple/obsolete
packet blocks, comments and tracer's own custom blocks (``tracer_block``).

The file is walked whole (its blocks as they come) and its packets are then
validated and decoded as arrays, in slices of packets.
"""

from __future__ import annotations

import struct
from array import array
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from tracer.core.decode import TableBuilder, gather_bytes
from tracer.core.model import KernelSocketState, SocketCall, TraceMeta, TraceWarning
from tracer.core.table import PacketTable
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.i18n import Msg, both
from tracer.pcap import tracer_block
from tracer.pcap.common import I64A, MAX_BLOCK, U32A, BoolA, corrupt, truncated, u32_cols, warning

# Block type of the Section Header Block, which starts every pcapng file.
SHB_TYPE = 0x0A0D0D0A
# The same for pcapng, whose blocks are walked in one go and decoded in slices.
CHUNK_PACKETS = 20_000


class _Iface:
    __slots__ = ("linktype", "name", "snaplen", "tsoffset", "tsresol")

    def __init__(self, linktype: int, snaplen: int) -> None:
        self.linktype, self.snaplen = linktype, snaplen
        self.name = ""
        self.tsresol = 6
        self.tsoffset = 0


class PcapngReader:
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
            if btype == SHB_TYPE:
                if pos + 16 > end:
                    stop = truncated(self.label, len(pk_pos) + 1, pos, Msg("pcap.what.shb_cut"))
                    break
                try:
                    order = self._shb_order(pos)
                except CaptureError as e:  # a later section's header: its "what" becomes the warning's
                    what = e.params["what"]
                    assert isinstance(what, Msg)
                    stop = corrupt(self.label, len(pk_pos) + 1, pos, what)
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
                what = Msg("pcap.what.block_header_short", have=have)
                stop = truncated(self.label, len(pk_pos) + 1, pos, what)
        if stop is None and pos + 12 <= end:
            stop = self._check(pos, order, len(pk_pos) + 1)
        if stop is not None and stop.offset == 0:
            # Not even the first section header is readable: this is no capture.
            raise CaptureError("pcap.file", label=self.label, what=Msg("pcap.what.first_shb_bad"))
        return self._finish(stop)

    def _check(self, pos: int, order: str, no: int) -> TraceWarning | None:
        """Why the block at ``pos`` cannot be read, or ``None`` if its framing is sound."""
        data, label, n = self.data, self.label, self.n
        btype, blen = struct.unpack_from(order + "II", data, pos)
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            return corrupt(label, no, pos, Msg("pcap.what.block_length", blen=blen))
        if pos + blen > n:
            have = n - pos
            return truncated(label, no, pos, Msg("pcap.what.block_short", blen=blen, have=have))
        if struct.unpack_from(order + "I", data, pos + blen - 4)[0] != blen:
            return corrupt(label, no, pos, Msg("pcap.what.trailer_mismatch"))
        n_local = len(self.ifaces) - (self.sections[-1][2] if self.sections else 0)
        if btype in (6, 2):
            if blen < 32:
                return corrupt(label, no, pos, Msg("pcap.what.epb_short"))
            ifid = struct.unpack_from(order + ("I" if btype == 6 else "H"), data, pos + 8)[0]
            cl = struct.unpack_from(order + "I", data, pos + 20)[0]
            if cl > blen - 32:
                return corrupt(label, no, pos, Msg("pcap.what.caplen_over_block", caplen=cl, room=blen - 32))
            if ifid >= n_local:
                return corrupt(label, no, pos, Msg("pcap.what.unknown_interface", ifid=ifid))
        elif btype == 3:
            if blen < 16:
                return corrupt(label, no, pos, Msg("pcap.what.spb_short"))
            if n_local == 0:
                return corrupt(label, no, pos, Msg("pcap.what.spb_no_interface"))
        elif btype == 1 and blen < 20:
            return corrupt(label, no, pos, Msg("pcap.what.idb_short"))
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
        elif btype == SHB_TYPE:
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
            raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.shb_header_short", have=n - pos))
        bom = bytes(data[pos + 8 : pos + 12])
        if bom == b"\x4d\x3c\x2b\x1a":
            order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            order = ">"
        else:
            raise CaptureError("pcap.file", label=label, what=Msg("pcap.what.bad_bom"))
        major, minor = struct.unpack_from(order + "HH", data, pos + 12)
        if major != 1:
            raise CaptureError("pcap.file", label=label,
                               what=Msg("pcap.what.pcapng_version", major=major, minor=minor))
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
                warning("bad_tracer_block", both("pcap.bad_tracer_block", label=self.label, off=pos, why=e),
                        None, pos)
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
            trailer = u32_cols(buf, pos[rows] + hl - 4, 1, order)[:, 0]
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
            invalid = Msg("pcap.what.invalid_packet_block")
            stop = self._check(p, order, k + 1) or corrupt(self.label, k + 1, p, invalid)
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
                text = both("pcap.timestamp_out_of_range", count=rows.size, first=first)
                self.warnings.append(warning("timestamp_out_of_range", text, first, None))
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
        kernel = None
        for _, p in self.payloads:
            # One account per capture: a merged file keeps the first (its packet numbers).
            kernel = kernel if kernel is not None else p.kernel
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
            kernel=kernel,
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
