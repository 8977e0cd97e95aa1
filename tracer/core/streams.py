"""tcp.stream / udp.stream numbering, per-packet direction, client/server guess.

Numbering follows tshark 4.0: a conversation is the unordered pair of
(address, port) endpoints; TCP and UDP have separate counters and streams are
numbered in order of first appearance.  A TCP 4-tuple starts a *new* stream when a
SYN without ACK arrives whose sequence number differs from the ISN already known
for that direction of the current conversation (tshark's "TCP port numbers reused"
rule in ``dissect_tcp``); a SYN-ACK with a different ISN keeps the stream but
replaces that direction's base sequence number.

``StreamInfo.client`` is the sender of the stream's first SYN without ACK, else the
receiver of its first SYN-ACK; with neither in the capture it is only a guess: the
endpoint with the higher port is taken as the client (servers usually listen on
the lower, well-known port), and ``None`` when both ports are equal.

ICMP/ICMPv6 errors that quote a TCP/UDP header get the stream of the quoted
header; like tshark, a quoted header whose conversation was never seen creates one
(and so takes a stream number at that point), and a quote too short for tshark to
read (under 16 bytes of TCP or 8 of UDP header) gets no stream.  The direction of
such a row is the reverse of the quoted packet's: the error travels back towards
the quoted sender.

Vectorised: rows are keyed by (protocol, lower endpoint, higher endpoint) and
grouped with one ``lexsort``; Python runs only over 4-tuples that contain a SYN
after their first packet and over the rare ICMP rows.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracer.core.model import ACK, PROTO_TCP, PROTO_UDP, SYN, IcmpQuote, StreamInfo, endpoint_str
from tracer.core.table import I8, I32, I64, Bool, PacketTable

_PORT_SPAN = 1 << 17  # endpoint key = address index * span + port (ports < 2**16)


@dataclass(frozen=True, eq=False)
class StreamColumns:
    """Per-row stream index and direction, plus the TCP and UDP stream lists.

    ``stream`` is tcp.stream for TCP rows, udp.stream for UDP rows (separate
    counters), the quoted header's stream for ICMP errors, else -1.
    ``direction`` is 0 when the row was sent by the stream's endpoint ``a`` (the
    sender of its first packet), 1 when sent by ``b``, -1 without a stream.
    ``is_quote`` marks ICMP rows whose stream comes from a quoted header.
    """

    stream: I32
    direction: I8
    tcp_streams: tuple[StreamInfo, ...]
    udp_streams: tuple[StreamInfo, ...]
    is_quote: Bool


@dataclass(frozen=True, eq=False)
class _Events:
    """Rows that belong to a conversation: transport rows and ICMP quotes."""

    row: I64
    proto: I64  # PROTO_TCP or PROTO_UDP
    src: I64  # address index (may exceed len(addresses) for quote-only addresses)
    dst: I64
    sport: I64
    dport: I64
    quote: Bool


def _events(t: PacketTable) -> tuple[_Events, list[str]]:
    proto = t.proto.astype(np.int64)
    ok = ((proto == PROTO_TCP) | (proto == PROTO_UDP)) & (t.src >= 0) & (t.dst >= 0)
    ok &= (t.sport >= 0) & (t.dport >= 0)
    rows = np.flatnonzero(ok)
    names = list(t.addresses)
    index = {a: i for i, a in enumerate(names)}
    q_rows: list[int] = []
    q_cols: list[tuple[int, int, int, int, int]] = []
    for i, q in sorted(t.icmp_quotes.items()):
        if ok[i] or q.sport is None or q.dport is None or q.proto not in ("tcp", "udp"):
            continue
        if _quoted_len(t.raw(i), q) < (16 if q.proto == "tcp" else 8):
            continue  # tshark stops on the short header before it looks up the conversation
        ids = []
        for ip in (q.src_ip, q.dst_ip):
            if ip not in index:
                index[ip] = len(names)
                names.append(ip)
            ids.append(index[ip])
        q_rows.append(i)
        q_cols.append((PROTO_TCP if q.proto == "tcp" else PROTO_UDP, ids[0], ids[1], q.sport, q.dport))
    if not q_rows:
        ev = _Events(
            row=rows.astype(np.int64),
            proto=proto[rows],
            src=t.src[rows].astype(np.int64),
            dst=t.dst[rows].astype(np.int64),
            sport=t.sport[rows].astype(np.int64),
            dport=t.dport[rows].astype(np.int64),
            quote=np.zeros(rows.size, dtype=bool),
        )
        return ev, names
    qa = np.array(q_cols, dtype=np.int64).reshape(-1, 5)
    qr = np.array(q_rows, dtype=np.int64)
    all_rows = np.concatenate([rows.astype(np.int64), qr])
    order = np.argsort(all_rows, kind="stable")

    def cat(col: npt.NDArray[np.generic], k: int) -> I64:
        return np.concatenate([col[rows].astype(np.int64), qa[:, k]])[order]

    ev = _Events(
        row=all_rows[order],
        proto=np.concatenate([proto[rows], qa[:, 0]])[order],
        src=cat(t.src, 1),
        dst=cat(t.dst, 2),
        sport=cat(t.sport, 3),
        dport=cat(t.dport, 4),
        quote=np.concatenate([np.zeros(rows.size, dtype=bool), np.ones(qr.size, dtype=bool)])[order],
    )
    return ev, names


def _quoted_len(raw: bytes, q: IcmpQuote) -> int:
    """Bytes of the quoted transport header present in an ICMP error frame.

    tshark only gives the quote a stream when the header reaches the TCP window
    field (16 bytes) or the full UDP header (8 bytes).  The quoted IP header is the
    last place in the frame holding its source then destination address.
    """
    try:
        v4 = ipaddress.ip_address(q.src_ip).version == 4
        pair = ipaddress.ip_address(q.src_ip).packed + ipaddress.ip_address(q.dst_ip).packed
    except ValueError:
        return 0
    at = raw.rfind(pair)
    if at < 0:
        return 0
    if v4:
        start = at - 12
        return len(raw) - (start + max((raw[start] & 0x0F) * 4, 20)) if start >= 0 else 0
    return len(raw) - (at - 8 + 40)


def _split_reused(
    flags: list[int], seq: list[int], ack: list[int], is_lo: list[bool], quote: list[bool]
) -> list[int]:
    """Positions (in one 4-tuple's event list) where tshark starts a new conversation.

    Replays how tshark sets each direction's base sequence number (first own
    packet: its ISN, or seq-1 without SYN; first ACK from the other side: ack-1).
    Once both are set only SYN events can matter, so the scan jumps between them.
    """
    syn_at = [k for k, f in enumerate(flags) if f & SYN and not quote[k]]
    splits: list[int] = []
    base: list[int | None] = [None, None]
    k = 0
    n = len(flags)
    while k < n:
        if quote[k]:
            k += 1
            continue
        f = flags[k]
        d = 0 if is_lo[k] else 1
        bd = base[d]
        if bd is not None and f & SYN and seq[k] != bd:
            if f & ACK:
                base[d] = seq[k]
            else:
                splits.append(k)
                base = [None, None]
        if base[d] is None:
            base[d] = seq[k] if f & SYN else (seq[k] - 1) & 0xFFFFFFFF
        if base[1 - d] is None and f & ACK:
            base[1 - d] = (ack[k] - 1) & 0xFFFFFFFF
        k += 1
        if base[0] is not None and base[1] is not None:
            i = bisect.bisect_left(syn_at, k)
            k = syn_at[i] if i < len(syn_at) else n
    return splits


def assign_streams(t: PacketTable) -> StreamColumns:
    """Number TCP and UDP streams like tshark and give every row its direction."""
    n = len(t)
    stream = np.full(n, -1, dtype=np.int32)
    direction = np.full(n, -1, dtype=np.int8)
    is_quote = np.zeros(n, dtype=bool)
    ev, names = _events(t)
    m = ev.row.size
    if m == 0:
        return StreamColumns(stream, direction, (), (), is_quote)
    ep_s = ev.src * _PORT_SPAN + ev.sport
    ep_d = ev.dst * _PORT_SPAN + ev.dport
    lo = np.minimum(ep_s, ep_d)
    hi = np.maximum(ep_s, ep_d)
    order = np.lexsort((np.arange(m), hi, lo, ev.proto))
    p_s, lo_s, hi_s = ev.proto[order], lo[order], hi[order]
    new_group = np.ones(m, dtype=bool)
    new_group[1:] = (p_s[1:] != p_s[:-1]) | (lo_s[1:] != lo_s[:-1]) | (hi_s[1:] != hi_s[:-1])
    new_conv = new_group.copy()

    # TCP 4-tuples with a pure SYN after their first event may hold several streams.
    rows_s = ev.row[order]
    quote_s = ev.quote[order]
    flags_s = t.tcp_flags[rows_s].astype(np.int64)
    pure_syn = (p_s == PROTO_TCP) & ~quote_s & ((flags_s & (SYN | ACK)) == SYN) & ~new_group
    if pure_syn.any():
        starts = np.flatnonzero(new_group)
        ends = np.append(starts[1:], m)
        gid = np.cumsum(new_group) - 1
        is_lo_s = ep_s[order] == lo_s
        for g in np.unique(gid[pure_syn]).tolist():
            a, b = int(starts[g]), int(ends[g])
            r = rows_s[a:b]
            cols = (t.tcp_flags[r], t.seq[r], t.ack[r], is_lo_s[a:b], quote_s[a:b])
            for k in _split_reused(*(c.tolist() for c in cols)):
                new_conv[a + k] = True

    conv = np.cumsum(new_conv) - 1  # conversation id per sorted event
    conv_first = np.flatnonzero(new_conv)  # sorted position of each conversation's first event
    # Number per protocol in order of first appearance (first row of the conversation).
    first_row = rows_s[conv_first]
    conv_proto = p_s[conv_first]
    number = np.empty(conv_first.size, dtype=np.int64)
    for p in (PROTO_TCP, PROTO_UDP):
        sel = np.flatnonzero(conv_proto == p)
        number[sel[np.argsort(first_row[sel], kind="stable")]] = np.arange(sel.size)

    # Endpoint a = sender of the conversation's first event (for a quote: quoted src).
    src_ep_s = ep_s[order]
    a_ep = src_ep_s[conv_first]
    sent_by_a = src_ep_s == a_ep[conv]
    dir_s = np.where(sent_by_a, 0, 1)
    dir_s = np.where(quote_s, 1 - dir_s, dir_s)
    dir_s = np.where(lo_s == hi_s, 0, dir_s)
    stream[rows_s] = number[conv]
    direction[rows_s] = dir_s
    is_quote[rows_s] = quote_s

    infos = _stream_infos(t, names, ev, order, conv, conv_first, number, conv_proto, flags_s)
    tcp_infos = tuple(sorted((s for s in infos if s.proto == "tcp"), key=lambda s: s.index))
    udp_infos = tuple(sorted((s for s in infos if s.proto == "udp"), key=lambda s: s.index))
    return StreamColumns(stream, direction, tcp_infos, udp_infos, is_quote)


def _stream_infos(
    t: PacketTable,
    names: list[str],
    ev: _Events,
    order: I64,
    conv: I64,
    conv_first: I64,
    number: I64,
    conv_proto: I64,
    flags_s: I64,
) -> list[StreamInfo]:
    rows_s = ev.row[order]
    quote_s = ev.quote[order]
    k = conv_first.size
    counts = np.bincount(conv, minlength=k)
    last_row = np.full(k, -1, dtype=np.int64)
    np.maximum.at(last_row, conv, rows_s)
    f = conv_first
    src, dst = ev.src[order], ev.dst[order]
    sport, dport = ev.sport[order], ev.dport[order]
    # Client: sender of the first SYN without ACK, else receiver of the first SYN-ACK.
    real_tcp = (ev.proto[order] == PROTO_TCP) & ~quote_s
    syn_only = real_tcp & ((flags_s & (SYN | ACK)) == SYN)
    syn_ack = real_tcp & ((flags_s & (SYN | ACK)) == (SYN | ACK))
    first_syn = _first_per_group(conv, syn_only, k)
    first_synack = _first_per_group(conv, syn_ack, k)

    # Client side: 0 = the conversation's first-event sender, 1 = the other, -1 unknown.
    fs, fsa = first_syn, first_synack
    ep_s = src * _PORT_SPAN + sport
    first_ep = ep_s[f]
    client_side = np.where(
        fs >= 0,
        np.where(ep_s[np.maximum(fs, 0)] == first_ep, 0, 1),
        np.where(fsa >= 0, np.where(ep_s[np.maximum(fsa, 0)] == first_ep, 1, 0), -1),
    )
    client_side = np.where(quote_s[f] & (client_side >= 0), 1 - client_side, client_side)
    a_port = np.where(quote_s[f], dport[f], sport[f])
    b_port = np.where(quote_s[f], sport[f], dport[f])
    # A guess when no SYN was captured: the lower port is the server's.
    guess = np.where(a_port == b_port, -1, np.where(b_port < a_port, 0, 1))
    client_side = np.where(client_side >= 0, client_side, guess)

    cols = [c.tolist() for c in (src[f], sport[f], dst[f], dport[f], quote_s[f], number, conv_proto,
                                 rows_s[f], last_row, counts, client_side)]
    out: list[StreamInfo] = []
    for s_addr, s_port, d_addr, d_port, q, num, p, first, last, cnt, cs in zip(*cols, strict=True):
        a = endpoint_str(names[s_addr], s_port)
        b = endpoint_str(names[d_addr], d_port)
        if q:
            a, b = b, a  # a quote row travels towards the quoted sender
        out.append(
            StreamInfo(
                index=num,
                proto="tcp" if p == PROTO_TCP else "udp",
                a=a,
                b=b,
                first_no=first + 1,
                last_no=last + 1,
                packets=cnt,
                client=None if cs < 0 else (a if cs == 0 else b),
            )
        )
    return out


def _first_per_group(group: I64, mask: Bool, k: int) -> I64:
    """Index (into the sorted events) of the first masked event per group, -1 if none."""
    out = np.full(k, -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if idx.size:
        g, first = np.unique(group[idx], return_index=True)
        out[g] = idx[first]
    return out
