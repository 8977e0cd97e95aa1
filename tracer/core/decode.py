"""Raw captured frames -> ``PacketTable``, vectorised over all frames at once.

Input is the capture's bytes plus one offset/length/link type per frame, in one
batch (``decode_frames``) or several (``TableBuilder``, for large files).  Every
layer is decoded for whole columns with numpy gathers (``np.take`` of byte blocks
at per-row offsets); only rare rows (SACK blocks, ICMP error quotes, notes) take
a per-row Python path.  Nothing is dropped and nothing raises on bad bytes: a
frame that cannot be decoded gets a ``proto`` name saying what it is ("arp",
"ethertype 0x88cc", "ipv4 proto 47", "linktype 147", "truncated", ...) and a
``decode_notes`` entry when it was cut short or malformed.

Lengths follow tshark: ``payload_len`` is tcp.len (IP length minus headers,
where the IP length is capped by the frame's on-the-wire length) or udp.length-8,
never derived from the captured length, so snaplen-cut frames keep their size.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from tracer.core.model import FIXED_PROTO_NAMES, DecodeNote, IcmpQuote
from tracer.core.table import COLUMNS, I32, I64, FrameSource, PacketTable

U8A = npt.NDArray[np.uint8]
IntA = npt.NDArray[np.int64]
BoolA = npt.NDArray[np.bool_]
_V = TypeVar("_V")

# Link types (LINKTYPE_* numbers from the pcap/pcapng registry).
LT_NULL = 0
LT_ETHERNET = 1
LT_PPP = 9
LT_PPP_HDLC = 50
LT_RAW = 101
LT_LOOP = 108
LT_SLL = 113
LT_IPV4 = 228
LT_IPV6 = 229
LT_SLL2 = 276

ET_IPV4 = 0x0800
ET_IPV6 = 0x86DD
_ET_VLAN = (0x8100, 0x88A8, 0x9100)
_ET_PPPOE = 0x8864
_ET_MPLS = (0x8847, 0x8848)
# Pseudo ethertype for "look at the IP version nibble" (raw IP, after MPLS).
_ET_GUESS = -2

_PPP_TO_ET = {0x0021: ET_IPV4, 0x0057: ET_IPV6, 0x0281: 0x8847, 0x0283: 0x8848}

# Categories of frames that are not TCP/UDP/ICMP/ICMPv6: key = category << 32 | value.
_C_LINKTYPE = 1
_C_ETHERTYPE = 2
_C_LLC = 3
_C_IP4PROTO = 4
_C_IP6PROTO = 5
_C_FRAG4 = 6
_C_FRAG6 = 7
_C_TRUNC = 8
_C_BADIP = 9
_C_PPP = 10
_C_NULLAF = 11
_C_MPLS = 12

_ICMP4_ERRORS = (3, 4, 5, 11, 12)
_ICMP6_ERRORS = (1, 2, 3, 4)
_IP6_EXT = (0, 43, 44, 51, 60, 135, 139, 140)


def _proto_name(key: int) -> str:
    cat, v = key >> 32, key & 0xFFFFFFFF
    if cat == _C_ETHERTYPE:
        return "arp" if v == 0x0806 else f"ethertype 0x{v:04x}"
    names = {
        _C_LINKTYPE: f"linktype {v}",
        _C_LLC: "llc",
        _C_IP4PROTO: f"ipv4 proto {v}",
        _C_IP6PROTO: f"ipv6 proto {v}",
        _C_FRAG4: "ipv4 fragment",
        _C_FRAG6: "ipv6 fragment",
        _C_TRUNC: "truncated",
        _C_BADIP: f"malformed ipv{v}",
        _C_PPP: f"ppp protocol 0x{v:04x}",
        _C_NULLAF: f"null family {v}",
        _C_MPLS: "mpls",
    }
    return names.get(cat, f"unknown {key}")


# --- decode notes ------------------------------------------------------------------


def _note(key: str, **params: int | str) -> DecodeNote:
    """A note rendered from catalogue key ``decode.<key>`` (``tracer.i18n.explain.note_text``)."""
    return DecodeNote(key, tuple(params.items()))


# --- gathers ------------------------------------------------------------------------


def gather_bytes(buf: U8A, base: IntA, width: int) -> U8A:
    """``width`` bytes at each offset in ``base`` -> (len(base), width); clipped at EOF.

    Rows of a sliding-window view are copied whole, several times faster than a
    gather of ``base[:, None] + arange(width)``; only the last few frames of a
    buffer (where a window would run past its end) take the clipped gather.
    """
    last = buf.shape[0] - width
    if last < 0 or base.size == 0:
        return np.take(buf, base[:, None] + np.arange(width, dtype=np.int64), mode="clip")
    win = sliding_window_view(buf, width)
    if int(base.max()) <= last:
        whole: U8A = win[base]
        return whole
    out: U8A = win[np.minimum(base, last)]
    tail = np.flatnonzero(base > last)
    out[tail] = np.take(buf, base[tail, None] + np.arange(width, dtype=np.int64), mode="clip")
    return out


def _be16(b: U8A, i: int) -> IntA:
    return (b[:, i].astype(np.int64) << 8) | b[:, i + 1]


def _be32(b: U8A, i: int) -> IntA:
    return np.ascontiguousarray(b[:, i : i + 4]).view(">u4")[:, 0].astype(np.int64)


def _sel(mask: BoolA, *arrs: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """``[a[mask] for a in arrs]``, without copying when every row is selected (the common case)."""
    if mask.all():
        return list(arrs)
    return [a[mask] for a in arrs]


def _u8(buf: U8A, off: IntA) -> IntA:
    return np.take(buf, off, mode="clip").astype(np.int64)


# Decoded columns and their "absent" value (every other column comes from the reader).
_FILLS = {
    "proto": -1,
    "ip_version": 0,
    "src": -1,
    "dst": -1,
    "sport": -1,
    "dport": -1,
    "tcp_flags": 0,
    "seq": -1,
    "ack": -1,
    "window": -1,
    "payload_len": 0,
    "mss": -1,
    "wscale": -1,
    "sack_perm": False,
    "ts_val": -1,
    "ts_ecr": -1,
    "icmp_type": -1,
    "icmp_code": -1,
}


class _Decoder:
    """Holds the output columns while the layers are decoded (one instance per call)."""

    def __init__(
        self,
        data: bytes | memoryview,
        frame_off: I64,
        caplen: I32,
        wirelen: I32,
        out: dict[str, npt.NDArray[Any]],
    ) -> None:
        self.buf: U8A = np.frombuffer(data, dtype=np.uint8)
        n = int(frame_off.shape[0])
        self.n = n
        self.off = frame_off.astype(np.int64)
        cap = np.minimum(caplen.astype(np.int64), np.maximum(len(self.buf) - self.off, 0))
        self.capend = self.off + cap
        self.wireend = self.off + np.maximum(wirelen.astype(np.int64), cap)
        self.key = np.zeros(n, dtype=np.int64)  # category key for non-fixed protos
        # The output columns are views of the builder's final columns (no copy later).
        for name, fill in _FILLS.items():
            out[name].fill(fill)
        self.proto: npt.NDArray[np.int16] = out["proto"]
        self.ip_version: npt.NDArray[np.int8] = out["ip_version"]
        self.src: I32 = out["src"]
        self.dst: I32 = out["dst"]
        self.sport: I32 = out["sport"]
        self.dport: I32 = out["dport"]
        self.tcp_flags: I32 = out["tcp_flags"]
        self.seq: I64 = out["seq"]
        self.ack: I64 = out["ack"]
        self.window: I32 = out["window"]
        self.payload_len: I32 = out["payload_len"]
        self.mss: I32 = out["mss"]
        self.wscale: npt.NDArray[np.int16] = out["wscale"]
        self.sack_perm: BoolA = out["sack_perm"]
        self.ts_val: I64 = out["ts_val"]
        self.ts_ecr: I64 = out["ts_ecr"]
        self.icmp_type: npt.NDArray[np.int16] = out["icmp_type"]
        self.icmp_code: npt.NDArray[np.int16] = out["icmp_code"]
        self.notes: dict[int, DecodeNote] = {}
        self.sack_blocks: dict[int, tuple[tuple[int, int], ...]] = {}
        self.icmp_quotes: dict[int, IcmpQuote] = {}
        # IP layer results (rows, values) for address interning.
        self.v4_rows: list[IntA] = []
        self.v4_addr: list[IntA] = []  # src then dst, concatenated per batch
        self.v6_rows: list[IntA] = []
        self.v6_addr: list[U8A] = []  # (2k, 16) src rows then dst rows

    # --- helpers ----------------------------------------------------------------------

    def _whole(self, layer: str, need: IntA | int, rows: IntA, start: IntA,
               *more: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
        """``rows``, ``start`` and ``more`` for the rows whose ``need`` header bytes from
        ``start`` were captured; the others are marked cut short at ``layer``."""
        ok = start + need <= self.capend[rows]
        if not ok.all():
            self._cut(rows[~ok], layer, start[~ok], need if isinstance(need, int) else need[~ok])
        return _sel(ok, rows, start, *more)

    def _cut(self, rows: IntA, layer: str, start: IntA, need: IntA | int) -> None:
        """Mark ``rows`` as truncated at ``layer`` (header needs ``need`` bytes from ``start``)."""
        if rows.size == 0:
            return
        self.key[rows] = _C_TRUNC << 32
        have = np.maximum(self.capend[rows] - start, 0)
        needs = np.broadcast_to(np.asarray(need, dtype=np.int64), rows.shape)
        for r, h, nd in zip(rows.tolist(), have.tolist(), needs.tolist(), strict=True):
            self.notes[r] = _note("cut", layer=layer, have=h, need=nd)

    # --- link layer -------------------------------------------------------------------

    def link(self, linktype: I32) -> tuple[IntA, IntA]:
        """Per row: offset of the network header (-1 = none) and its ethertype."""
        n = self.n
        l3 = np.full(n, -1, dtype=np.int64)
        et = np.full(n, -1, dtype=np.int64)
        lt = linktype.astype(np.int64)
        self.key[:] = (_C_LINKTYPE << 32) | (lt & 0xFFFFFFFF)
        buf, off = self.buf, self.off
        # One link type per file is the rule: skip the sort np.unique would do.
        lts = lt[:1] if n and (lt == lt[0]).all() else np.unique(lt)
        for v in lts.tolist():
            rows = np.arange(n, dtype=np.int64) if lts.size == 1 else np.flatnonzero(lt == v)
            o = off[rows]
            if v == LT_ETHERNET:
                hdr, name = 14, "Ethernet"
            elif v == LT_SLL:
                hdr, name = 16, "Linux cooked (SLL)"
            elif v == LT_SLL2:
                hdr, name = 20, "Linux cooked (SLL2)"
            elif v in (LT_NULL, LT_LOOP):
                hdr, name = 4, "Loopback"
            elif v in (LT_RAW, LT_IPV4, LT_IPV6):
                hdr, name = 0, ""
            elif v in (LT_PPP, LT_PPP_HDLC):
                hdr, name = 2, "PPP"
            else:
                continue  # unknown link type: stays "linktype N"
            rows, o = self._whole(name or "IP", max(hdr, 1), rows, o)
            if v == LT_ETHERNET:
                b = gather_bytes(buf, o + 12, 2)
                e = _be16(b, 0)
                l3[rows], et[rows] = o + 14, e
            elif v == LT_SLL:
                b = gather_bytes(buf, o + 14, 2)
                l3[rows], et[rows] = o + 16, _be16(b, 0)
            elif v == LT_SLL2:
                b = gather_bytes(buf, o, 2)
                l3[rows], et[rows] = o + 20, _be16(b, 0)
            elif v in (LT_NULL, LT_LOOP):
                b = gather_bytes(buf, o, 4)
                le = np.ascontiguousarray(b).view("<u4")[:, 0].astype(np.int64)
                be = np.ascontiguousarray(b).view(">u4")[:, 0].astype(np.int64)
                # BSD AF_ values are in the capturing host's byte order: accept either.
                fam = np.where(le < 0x10000, le, be) if v == LT_NULL else be
                e = np.full(rows.shape, -1, dtype=np.int64)
                e[fam == 2] = ET_IPV4
                e[np.isin(fam, (24, 28, 30))] = ET_IPV6  # BSD, FreeBSD, Darwin AF_INET6
                bad = e < 0
                self.key[rows[bad]] = (_C_NULLAF << 32) | (fam[bad] & 0xFFFFFFFF)
                l3[rows[~bad]], et[rows[~bad]] = o[~bad] + 4, e[~bad]
            elif v in (LT_RAW, LT_IPV4, LT_IPV6):
                l3[rows], et[rows] = o, {LT_RAW: _ET_GUESS, LT_IPV4: ET_IPV4, LT_IPV6: ET_IPV6}[v]
            else:  # PPP, with or without the ff 03 HDLC address/control bytes
                b = gather_bytes(buf, o, 2)
                p = o + np.where((b[:, 0] == 0xFF) & (b[:, 1] == 0x03), 2, 0)
                l3[rows], et[rows] = p, -1
                self._ppp(rows, p, l3, et)
        self._encapsulations(l3, et)
        return l3, et

    def _ppp(self, rows: IntA, p: IntA, l3: IntA, et: IntA) -> None:
        """PPP protocol field at ``p`` (1 byte if compressed) -> ethertype and l3 offset."""
        rows, p = self._whole("PPP", 2, rows, p)
        b = gather_bytes(self.buf, p, 2)
        short = (b[:, 0] & 1) == 1
        proto = np.where(short, b[:, 0], _be16(b, 0))
        l3[rows] = p + np.where(short, 1, 2)
        e = np.full(rows.shape, -1, dtype=np.int64)
        for pp, ee in _PPP_TO_ET.items():
            e[proto == pp] = ee
        et[rows] = e
        bad = e < 0
        self.key[rows[bad]] = (_C_PPP << 32) | proto[bad]
        l3[rows[bad]] = -1

    def _encapsulations(self, l3: IntA, et: IntA) -> None:
        """Peel VLAN tags, PPPoE session headers and MPLS label stacks (rare rows, looped)."""
        buf, capend = self.buf, self.capend
        for _ in range(16):
            rows = np.flatnonzero(np.isin(et, (*_ET_VLAN, _ET_PPPOE, *_ET_MPLS)) & (l3 >= 0))
            if rows.size == 0:
                break
            e, p = et[rows], l3[rows]
            vlan = np.isin(e, _ET_VLAN)
            need = np.where(vlan, 4, np.where(e == _ET_PPPOE, 8, 4))
            ok = p + need <= capend[rows]
            names = np.where(vlan, "802.1Q", np.where(e == _ET_PPPOE, "PPPoE", "MPLS"))
            for nm in ("802.1Q", "PPPoE", "MPLS"):
                sel = ~ok & (names == nm)
                self._cut(rows[sel], nm, p[sel], need[sel])
            l3[rows[~ok]] = -1
            et[rows[~ok]] = -1
            rows, e, p, vlan = rows[ok], e[ok], p[ok], vlan[ok]
            b = gather_bytes(buf, p, 8)
            new_et = np.where(vlan, _be16(b, 2), -1)
            new_l3 = p + 4
            pppoe = e == _ET_PPPOE
            if pppoe.any():
                proto = _be16(b, 6)
                pe = np.full(rows.shape, -1, dtype=np.int64)
                for pp, ee in _PPP_TO_ET.items():
                    pe[proto == pp] = ee
                new_et = np.where(pppoe, pe, new_et)
                new_l3 = np.where(pppoe, p + 8, new_l3)
                badp = pppoe & (pe < 0)
                self.key[rows[badp]] = (_C_PPP << 32) | proto[badp]
            mpls = np.isin(e, _ET_MPLS)
            if mpls.any():
                bos = (b[:, 2] & 1) == 1
                # Below the bottom of the stack there is no type field: guess from the IP version.
                new_et = np.where(mpls, np.where(bos, _ET_GUESS, e), new_et)
                self.key[rows[mpls]] = _C_MPLS << 32
            et[rows] = new_et
            l3[rows] = np.where(new_et == -1, -1, new_l3)
        # Raw IP and MPLS payloads: the version nibble says which IP.
        rows = np.flatnonzero(et == _ET_GUESS)
        if rows.size:
            ok = l3[rows] < capend[rows]
            self._cut(rows[~ok], "IP", l3[rows[~ok]], 1)
            rows = rows[ok]
            ver = _u8(buf, l3[rows]) >> 4
            e = np.where(ver == 4, ET_IPV4, np.where(ver == 6, ET_IPV6, -1))
            bad = e < 0
            self.key[rows[bad]] = (_C_BADIP << 32) | ver[bad]
            for r, vv in zip(rows[bad].tolist(), ver[bad].tolist(), strict=True):
                self.notes[r] = _note("bad_any_version", v=vv)
            et[rows] = e
            l3[rows[bad]] = -1
        # What is left and not IP gets named by its ethertype.
        other = np.flatnonzero((l3 >= 0) & (et != ET_IPV4) & (et != ET_IPV6) & (et >= 0))
        e = et[other]
        self.key[other] = np.where(e < 0x600, _C_LLC << 32, (_C_ETHERTYPE << 32) | e)

    # --- network layer ----------------------------------------------------------------

    def ipv4(self, rows: IntA, l3: IntA) -> tuple[IntA, IntA, IntA, IntA]:
        """Decode IPv4 headers; returns (rows, l4 offset, transport proto, IP payload length)."""
        rows, l3 = self._whole("IPv4", 20, rows, l3)
        b = gather_bytes(self.buf, l3, 20)
        ver = b[:, 0] >> 4
        ihl = (b[:, 0] & 0x0F).astype(np.int64) * 4
        badv = ver != 4
        badi = ~badv & (ihl < 20)
        for sel, fmt in ((badv, "v"), (badi, "ihl")):
            if sel.any():
                for r, x in zip(rows[sel].tolist(), (ver if fmt == "v" else ihl)[sel].tolist(), strict=True):
                    note = _note("bad_version", v=x, want=4) if fmt == "v" else _note("bad_ihl", ihl=x)
                    self.notes[r] = note
                self.key[rows[sel]] = (_C_BADIP << 32) | 4
        # A total length shorter than the header is bogus; tshark stops before the addresses.
        tot = _be16(b, 2)
        short = ~badv & ~badi & (tot != 0) & (tot < ihl)
        if short.any():
            self.key[rows[short]] = (_C_BADIP << 32) | 4
            for r, t_, h in zip(rows[short].tolist(), tot[short].tolist(), ihl[short].tolist(), strict=True):
                self.notes[r] = _note("bad_totlen", tot=t_, ihl=h)
        good = ~(badv | badi | short)
        rows, l3, b, ihl = _sel(good, rows, l3, b, ihl)
        self.ip_version[rows] = 4
        src, dst = _be32(b, 12), _be32(b, 16)
        self.v4_rows.append(rows)
        self.v4_addr.append(np.concatenate([src, dst]))
        rows, l3, b, ihl = self._whole("IPv4", ihl, rows, l3, b, ihl)
        tot = _be16(b, 2)
        wire_left = self.wireend[rows] - l3
        # TSO captures have total length 0; tshark then uses the frame's length.
        iplen = np.where(tot == 0, wire_left, np.minimum(tot, wire_left))
        proto = b[:, 9].astype(np.int64)
        # Any fragment (MF set or offset > 0) is not decoded further, as tshark does
        # without reassembly; tracer does not reassemble.
        frag = (_be16(b, 6) & 0x3FFF) != 0
        self.key[rows] = (_C_IP4PROTO << 32) | proto
        self.key[rows[frag]] = _C_FRAG4 << 32
        keep = ~frag
        r4, l4, p4, n4 = _sel(keep, rows, l3 + ihl, proto, iplen - ihl)
        return r4, l4, p4, n4

    def ipv6(self, rows: IntA, l3: IntA) -> tuple[IntA, IntA, IntA, IntA]:
        """Decode IPv6 headers and extension headers; same return shape as ``ipv4``."""
        rows, l3 = self._whole("IPv6", 40, rows, l3)
        b = gather_bytes(self.buf, l3, 40)
        ver = b[:, 0] >> 4
        bad = ver != 6
        if bad.any():
            for r, x in zip(rows[bad].tolist(), ver[bad].tolist(), strict=True):
                self.notes[r] = _note("bad_version", v=x, want=6)
            self.key[rows[bad]] = (_C_BADIP << 32) | 6
            rows, l3, b = rows[~bad], l3[~bad], b[~bad]
        self.ip_version[rows] = 6
        self.v6_rows.append(rows)
        self.v6_addr.append(np.concatenate([b[:, 8:24], b[:, 24:40]]))
        plen = _be16(b, 4)
        wire_left = self.wireend[rows] - l3 - 40
        iplen = np.where(plen == 0, wire_left, np.minimum(plen, wire_left))
        nh = b[:, 6].astype(np.int64)
        l4 = l3 + 40
        live = np.ones(rows.shape, dtype=np.bool_)
        for _ in range(16):
            ext = np.flatnonzero(live & np.isin(nh, _IP6_EXT))
            if ext.size == 0:
                break
            p = l4[ext]
            okx = p + 8 <= self.capend[rows[ext]]
            self._cut(rows[ext[~okx]], "IPv6 extension", p[~okx], 8)
            live[ext[~okx]] = False
            ext, p = ext[okx], p[okx]
            eb = gather_bytes(self.buf, p, 8)
            h = nh[ext]
            hl = np.where(
                h == 44,
                8,
                np.where(h == 51, (eb[:, 1].astype(np.int64) + 2) * 4, (eb[:, 1].astype(np.int64) + 1) * 8),
            )
            later_frag = (h == 44) & ((_be16(eb, 2) & 0xFFF9) != 0)
            self.key[rows[ext[later_frag]]] = _C_FRAG6 << 32
            live[ext[later_frag]] = False
            nh[ext] = eb[:, 0]
            l4[ext] = p + hl
            iplen[ext] -= hl
        rows, l4, nh, iplen = _sel(live, rows, l4, nh, iplen)
        still_ext = np.isin(nh, _IP6_EXT)
        self.key[rows] = np.where(still_ext, _C_TRUNC << 32, (_C_IP6PROTO << 32) | nh)
        keep = ~still_ext
        r6, l6, p6, n6 = _sel(keep, rows, l4, nh, iplen)
        return r6, l6, p6, n6

    # --- transport layer -------------------------------------------------------------

    def tcp(self, rows: IntA, l4: IntA, iplen: IntA) -> None:
        rows, l4, iplen = self._whole("TCP", 20, rows, l4, iplen)
        b = gather_bytes(self.buf, l4, 20)
        thl = (b[:, 12] >> 4).astype(np.int64) * 4
        self.proto[rows] = 0
        self.sport[rows] = _be16(b, 0)
        self.dport[rows] = _be16(b, 2)
        self.seq[rows] = _be32(b, 4)
        self.ack[rows] = _be32(b, 8)
        self.tcp_flags[rows] = ((b[:, 12].astype(np.int32) & 1) << 8) | b[:, 13]
        self.window[rows] = _be16(b, 14)
        self.payload_len[rows] = np.maximum(iplen - np.maximum(thl, 20), 0)
        badh = thl < 20
        for r, x in zip(rows[badh].tolist(), thl[badh].tolist(), strict=True):
            self.notes[r] = _note("bad_thl", thl=x)
        has = np.flatnonzero(thl > 20)
        if has.size:
            self._tcp_options(rows[has], l4[has] + 20, thl[has] - 20)

    def _tcp_options(self, rows: IntA, start: IntA, olen: IntA) -> None:
        """Walk the options of all rows at once, one option per iteration."""
        avail = np.minimum(olen, self.capend[rows] - start)
        cut = avail < olen
        for r, h, nd in zip(rows[cut].tolist(), avail[cut].tolist(), olen[cut].tolist(), strict=True):
            self.notes[r] = _note("opts_cut", have=max(h, 0), need=nd)
        ob = gather_bytes(self.buf, start, 40)
        k = rows.shape[0]
        pos = np.zeros(k, dtype=np.int64)
        # Fast path: Linux's data-segment layout NOP NOP TS(10).
        nnts = (avail >= 12) & (ob[:, 0] == 1) & (ob[:, 1] == 1) & (ob[:, 2] == 8) & (ob[:, 3] == 10)
        if nnts.any():
            i = np.flatnonzero(nnts)
            self.ts_val[rows[i]] = _be32(ob[i], 4)
            self.ts_ecr[rows[i]] = _be32(ob[i], 8)
            pos[i] = 12
        act = np.flatnonzero(pos < avail)
        sack_rows: list[tuple[int, int, int]] = []
        while act.size:
            p = pos[act]
            kind = ob[act, p]
            one = (kind == 1) | (kind == 0)
            ln = np.where(one, 1, ob[act, np.minimum(p + 1, 39)]).astype(np.int64)
            # Stop at EOL, at a bad length, or where the option runs past the captured bytes.
            stop = (kind == 0) | (~one & ((ln < 2) | (p + ln > avail[act])))
            m = ~stop & ~one
            if m.any():
                a, pk, kk, lk = act[m], p[m], kind[m], ln[m]
                r = rows[a]
                s = (kk == 2) & (lk == 4)
                if s.any():
                    v = (ob[a[s], pk[s] + 2].astype(np.int64) << 8) | ob[a[s], pk[s] + 3]
                    self.mss[r[s]] = np.where(self.mss[r[s]] < 0, v, self.mss[r[s]])
                s = (kk == 3) & (lk == 3)
                if s.any():
                    v = ob[a[s], pk[s] + 2].astype(np.int16)
                    self.wscale[r[s]] = np.where(self.wscale[r[s]] < 0, v, self.wscale[r[s]])
                s = (kk == 4) & (lk == 2)
                self.sack_perm[r[s]] = True
                s = (kk == 8) & (lk == 10)
                if s.any():
                    idx = pk[s][:, None] + np.arange(2, 10)
                    tb = ob[a[s][:, None], idx]
                    tsv, tse = _be32(tb, 0), _be32(tb, 4)
                    self.ts_val[r[s]] = np.where(self.ts_val[r[s]] < 0, tsv, self.ts_val[r[s]])
                    self.ts_ecr[r[s]] = np.where(self.ts_ecr[r[s]] < 0, tse, self.ts_ecr[r[s]])
                s = kk == 5
                if s.any():
                    sack_rows += zip(a[s].tolist(), pk[s].tolist(), lk[s].tolist(), strict=True)
            pos[act] = p + ln
            act = act[~stop]
            act = act[pos[act] < avail[act]]
        for a_i, p_i, l_i in sack_rows:
            raw = ob[a_i, p_i + 2 : p_i + l_i].tobytes()
            blocks = tuple(
                (int.from_bytes(raw[j : j + 4], "big"), int.from_bytes(raw[j + 4 : j + 8], "big"))
                for j in range(0, len(raw) - 7, 8)
            )
            r_i = int(rows[a_i])
            self.sack_blocks[r_i] = self.sack_blocks.get(r_i, ()) + blocks

    def udp(self, rows: IntA, l4: IntA, iplen: IntA) -> None:
        rows, l4, iplen = self._whole("UDP", 8, rows, l4, iplen)
        b = gather_bytes(self.buf, l4, 8)
        ulen = _be16(b, 4)
        self.proto[rows] = 1
        self.sport[rows] = _be16(b, 0)
        self.dport[rows] = _be16(b, 2)
        self.payload_len[rows] = np.where(ulen >= 8, ulen - 8, np.maximum(iplen - 8, 0))

    def icmp(self, rows: IntA, l4: IntA, v6: bool) -> None:
        rows, l4 = self._whole("ICMPv6" if v6 else "ICMP", 4, rows, l4)
        b = gather_bytes(self.buf, l4, 2)
        self.proto[rows] = 3 if v6 else 2
        self.icmp_type[rows] = b[:, 0]
        self.icmp_code[rows] = b[:, 1]
        err = np.isin(b[:, 0], _ICMP6_ERRORS if v6 else _ICMP4_ERRORS)
        data = self.buf
        for r, p in zip(rows[err].tolist(), l4[err].tolist(), strict=True):
            q = _quote(data[p + 8 : int(self.capend[r])].tobytes())
            if q is not None:
                self.icmp_quotes[r] = q

    # --- addresses --------------------------------------------------------------------

    def intern_addresses(self, book: dict[int | bytes, int]) -> None:
        """Set ``src``/``dst`` to ids in ``book`` (raw address -> id, shared by all batches).

        Only each batch's distinct addresses touch the dict; ``TableBuilder.finish``
        renumbers the ids into sorted order at the end.
        """
        if self.v4_rows:
            rows = np.concatenate(self.v4_rows)
            # uint32 sorts faster than int64 inside np.unique.
            vals = np.concatenate([a.reshape(2, -1) for a in self.v4_addr], axis=1).ravel().astype(np.uint32)
            uniq, inv = np.unique(vals, return_inverse=True)
            ids = np.array([book.setdefault(v, len(book)) for v in uniq.tolist()], dtype=np.int32)
            inv4 = ids[inv].reshape(2, -1)
            self.src[rows], self.dst[rows] = inv4[0], inv4[1]
        if self.v6_rows:
            rows = np.concatenate(self.v6_rows)
            k = rows.shape[0]
            parts = [a.reshape(2, -1, 16) for a in self.v6_addr]
            allv = np.ascontiguousarray(np.concatenate(parts, axis=1).reshape(-1, 16))
            uniq6, inv6 = np.unique(allv.view("V16").ravel(), return_inverse=True)
            ids = np.array([book.setdefault(bytes(u), len(book)) for u in uniq6.tolist()], dtype=np.int32)
            ids6 = ids[inv6].reshape(2, k)
            self.src[rows], self.dst[rows] = ids6[0], ids6[1]


def format_ipv6(raw: bytes) -> str:
    """An IPv6 address as tshark prints it (RFC 5952; IPv4-mapped as ``::ffff:a.b.c.d``)."""
    a = ipaddress.IPv6Address(raw)
    m = a.ipv4_mapped
    return f"::ffff:{m}" if m is not None else str(a)


def _quote(inner: bytes) -> IcmpQuote | None:
    """The IP + transport header quoted in an ICMP error (``None`` if too short)."""
    if len(inner) < 1:
        return None
    ver = inner[0] >> 4
    if ver == 4 and len(inner) >= 20:
        ihl = (inner[0] & 0x0F) * 4
        proto = inner[9]
        src, dst = str(ipaddress.IPv4Address(inner[12:16])), str(ipaddress.IPv4Address(inner[16:20]))
        t = inner[max(ihl, 20) :]
    elif ver == 6 and len(inner) >= 40:
        proto = inner[6]
        src, dst = format_ipv6(inner[8:24]), format_ipv6(inner[24:40])
        t = inner[40:]
        while proto in (0, 43, 60) and len(t) >= 8:
            proto, t = t[0], t[(t[1] + 1) * 8 :]
    else:
        return None
    sport = dport = seq = None
    if proto in (6, 17) and len(t) >= 4:
        sport, dport = int.from_bytes(t[0:2], "big"), int.from_bytes(t[2:4], "big")
        if proto == 6 and len(t) >= 8:
            seq = int.from_bytes(t[4:8], "big")
    names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
    pname = names.get(proto, f"ipv{ver} proto {proto}")
    return IcmpQuote(proto=pname, src_ip=src, dst_ip=dst, sport=sport, dport=dport, seq_raw=seq)


def _shifted(rows: dict[int, _V], base: int) -> dict[int, _V]:
    return {k + base: v for k, v in rows.items()} if base else rows


def _address_order(book: dict[int | bytes, int]) -> tuple[tuple[str, ...], npt.NDArray[np.int32]]:
    """Names in tshark-stable order (IPv4 numerically, then IPv6 bytewise) and old id -> new id."""
    v4 = sorted((k, i) for k, i in book.items() if isinstance(k, int))
    v6 = sorted((k, i) for k, i in book.items() if isinstance(k, bytes))
    names = [f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}" for v, _ in v4]
    names += [format_ipv6(v) for v, _ in v6]
    # One spare slot holding -1 so that ``new[col]`` maps "no address" (-1) to itself.
    new = np.full(len(book) + 1, -1, dtype=np.int32)
    new[[i for _, i in v4] + [i for _, i in v6]] = np.arange(len(book), dtype=np.int32)
    return tuple(names), new


def _proto_order(keys: dict[int, int]) -> tuple[tuple[str, ...], npt.NDArray[np.int16]]:
    """``proto_names`` (fixed names, then the others by category key) and key id -> proto id."""
    names = list(FIXED_PROTO_NAMES)
    ids = np.zeros(len(keys), dtype=np.int16)
    for key, kid in sorted(keys.items()):
        nm = _proto_name(key)
        # Different keys can share a name (e.g. two "truncated" spellings): merge.
        if nm not in names:
            names.append(nm)
        ids[kid] = names.index(nm)
    return tuple(names), ids


class TableBuilder:
    """Decodes frames batch by batch into one ``PacketTable``.

    A reader feeds a large capture a few MiB at a time so that decoding
    temporaries stay small; addresses and protocol names are interned across
    batches and renumbered once in ``finish`` so that the result does not depend
    on how the frames were split.  Batches are decoded straight into the final
    columns, allocated once for ``reserve``'s estimate: growing them piecemeal
    (or joining per-batch columns) fragments the heap and costs ~100 MiB of
    resident memory per million packets.  Unused capacity is never touched, so
    it is virtual memory only.
    """

    def __init__(self) -> None:
        self._cols: dict[str, npt.NDArray[Any]] = {name: np.empty(0, dtype=dt) for name, dt in COLUMNS}
        self._n = 0
        self._book: dict[int | bytes, int] = {}
        self._keys: dict[int, int] = {}
        self.sack_blocks: dict[int, tuple[tuple[int, int], ...]] = {}
        self.icmp_quotes: dict[int, IcmpQuote] = {}
        self.notes: dict[int, DecodeNote] = {}

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return int(self._cols["ts_ns"].shape[0])

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in total (a larger estimate costs only address space)."""
        if rows <= self.capacity:
            return
        for name, dt in COLUMNS:
            old = self._cols[name]
            new = np.empty(rows, dtype=dt)
            new[: self._n] = old[: self._n]
            self._cols[name] = new
            del old

    def add(
        self,
        data: bytes | memoryview,
        frame_off: I64,
        caplen: I32,
        wirelen: I32,
        ts_ns: I64,
        iface: I32,
        linktype: I32,
        shift: int = 0,
    ) -> None:
        """Decode one batch; ``frame_off`` is relative to ``data``, stored plus ``shift``."""
        n, base = int(frame_off.shape[0]), self._n
        if base + n > self.capacity:
            self.reserve(max(base + n, base + base // 4))
        out = {name: col[base : base + n] for name, col in self._cols.items()}
        out["ts_ns"][:] = ts_ns
        out["iface"][:] = iface
        out["linktype"][:] = linktype
        out["caplen"][:] = caplen
        out["wirelen"][:] = wirelen
        np.add(frame_off, shift, out=out["frame_off"])
        d = _Decoder(data, frame_off, caplen, wirelen, out)
        l3, et = d.link(linktype)
        for ether, fn in ((ET_IPV4, d.ipv4), (ET_IPV6, d.ipv6)):
            rows = np.flatnonzero((et == ether) & (l3 >= 0))
            if rows.size == 0:
                continue
            rows, l4, tp, iplen = fn(rows, l3[rows])
            v6 = ether == ET_IPV6
            for code, sel in _split(tp, (6, 17, 58 if v6 else 1)):
                if code == 6:
                    d.tcp(rows[sel], l4[sel], iplen[sel])
                elif code == 17:
                    d.udp(rows[sel], l4[sel], iplen[sel])
                else:
                    d.icmp(rows[sel], l4[sel], v6)
        del l3, et
        d.intern_addresses(self._book)
        rest = np.flatnonzero(d.proto < 0)
        if rest.size:
            # Placeholder -2 - (key id) until ``finish`` knows every key.
            uniq, inv = np.unique(d.key[rest], return_inverse=True)
            kids = [self._keys.setdefault(k, len(self._keys)) for k in uniq.tolist()]
            d.proto[rest] = (-2 - np.asarray(kids, dtype=np.int16))[inv]
        self.sack_blocks.update(_shifted(d.sack_blocks, base))
        self.icmp_quotes.update(_shifted(d.icmp_quotes, base))
        self.notes.update(_shifted(d.notes, base))
        self._n += n

    def finish(self, data: bytes | memoryview | FrameSource) -> PacketTable:
        """The table of every batch added, whose frames are in ``data``."""
        n = self._n
        out = {name: col[:n] for name, col in self._cols.items()}
        addresses, new = _address_order(self._book)
        if not np.array_equal(new[:-1], np.arange(len(self._book))):
            np.take(new, out["src"], out=out["src"])
            np.take(new, out["dst"], out=out["dst"])
        proto = out["proto"]
        names = FIXED_PROTO_NAMES
        if self._keys:
            names, ids = _proto_order(self._keys)
            rest = np.flatnonzero(proto < 0)
            proto[rest] = ids[-2 - proto[rest].astype(np.int64)]
        return PacketTable(
            **out,  # type: ignore[arg-type]
            addresses=addresses,
            proto_names=names,
            data=data,
            sack_blocks=self.sack_blocks,
            icmp_quotes=self.icmp_quotes,
            decode_notes=self.notes,
        )


def decode_frames(
    data: bytes | memoryview,
    frame_off: I64,
    caplen: I32,
    wirelen: I32,
    ts_ns: I64,
    iface: I32,
    linktype: I32,
) -> PacketTable:
    """Decode every frame; row ``i`` describes ``data[frame_off[i] : frame_off[i] + caplen[i]]``.

    Never raises on frame contents.  Comments are left empty (the reader adds them).
    """
    b = TableBuilder()
    b.add(data, frame_off, caplen, wirelen, ts_ns, iface, linktype)
    return b.finish(data)


def _split(values: IntA, codes: Iterable[int]) -> list[tuple[int, BoolA]]:
    out = []
    for c in codes:
        sel = values == c
        if sel.any():
            out.append((c, sel))
    return out
