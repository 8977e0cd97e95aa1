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
grouped with one stable sort (of a single int64 key when it fits, else a
``lexsort``); Python runs only over 4-tuples that contain a SYN after their first
packet, over the rare ICMP rows, and once per stream to build its ``StreamInfo``.
The same sort gives the TCP rows grouped by stream (``StreamColumns.tcp_rows``),
the order the later stages work in.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
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
    ``tcp_rows`` are the TCP rows (not quotes) sorted by (stream, row) and
    ``tcp_starts`` where each stream's run begins: the order every later stage
    works in, computed once here from the grouping sort.
    ``tcp_client_dir``/``udp_client_dir``: per stream index, the direction sent by
    the stream's client (0/1), -1 when unknown.
    """

    stream: I32
    direction: I8
    tcp_streams: tuple[StreamInfo, ...]
    udp_streams: tuple[StreamInfo, ...]
    is_quote: Bool
    tcp_rows: I64
    tcp_starts: I64
    tcp_client_dir: I8
    udp_client_dir: I8


@dataclass(frozen=True, eq=False)
class _Events:
    """Rows that belong to a conversation: transport rows and ICMP quotes.

    ``ep_s``/``ep_d``: source and destination endpoint keys (address index *
    ``_PORT_SPAN`` + port; an address index may exceed ``len(addresses)`` for a
    quote-only address).
    """

    row: I64
    proto: I8  # PROTO_TCP or PROTO_UDP
    ep_s: I64
    ep_d: I64
    quote: Bool


def _endpoint_keys(addr: npt.NDArray[np.integer], port: npt.NDArray[np.integer]) -> I64:
    key: I64 = addr.astype(np.int64)
    key *= _PORT_SPAN
    key += port
    return key


def _events(t: PacketTable) -> tuple[_Events, list[str]]:
    proto = t.proto
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
    del ok
    if not q_rows:
        ev = _Events(
            row=rows.astype(np.int64, copy=False),
            proto=proto[rows].astype(np.int8),
            ep_s=_endpoint_keys(t.src[rows], t.sport[rows]),
            ep_d=_endpoint_keys(t.dst[rows], t.dport[rows]),
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
        proto=np.concatenate([proto[rows], qa[:, 0]])[order].astype(np.int8),
        ep_s=cat(t.src, 1) * _PORT_SPAN + cat(t.sport, 3),
        ep_d=cat(t.dst, 2) * _PORT_SPAN + cat(t.dport, 4),
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


def _group_order(ev: _Events) -> I64:
    """Event positions sorted by (protocol, lower endpoint, higher endpoint, row)."""
    lo = np.minimum(ev.ep_s, ev.ep_d)
    hi = np.maximum(ev.ep_s, ev.ep_d)
    span = int(hi.max()) + 1
    if 2 * span * span < 1 << 62:  # one int64 key: a single stable sort
        lo *= span
        lo += hi
        del hi
        lo += ev.proto.astype(np.int64) * (span * span)
        return np.argsort(lo, kind="stable")
    return np.lexsort((hi, lo, ev.proto))  # lexsort is stable: rows stay in order


def assign_streams(t: PacketTable) -> StreamColumns:
    """Number TCP and UDP streams like tshark and give every row its direction."""
    n = len(t)
    stream = np.full(n, -1, dtype=np.int32)
    direction = np.full(n, -1, dtype=np.int8)
    is_quote = np.zeros(n, dtype=bool)
    ev, names = _events(t)
    m = ev.row.size
    if m == 0:
        none = np.zeros(0, dtype=np.int64)
        no_dir = np.zeros(0, dtype=np.int8)
        return StreamColumns(stream, direction, (), (), is_quote, none, none, no_dir, no_dir)
    order = _group_order(ev)
    # Sorted copies of what the rest needs; the event columns go as soon as they are used.
    p_s = ev.proto[order]
    src_ep_s = ev.ep_s[order]
    dst_ep_s = ev.ep_d[order]
    rows_s = ev.row[order]
    quote_s = ev.quote[order]
    del order, ev
    new_group = np.ones(m, dtype=bool)
    same = src_ep_s[1:] == src_ep_s[:-1]
    same &= dst_ep_s[1:] == dst_ep_s[:-1]
    cross = src_ep_s[1:] == dst_ep_s[:-1]
    cross &= dst_ep_s[1:] == src_ep_s[:-1]
    same |= cross
    del cross
    same &= p_s[1:] == p_s[:-1]
    new_group[1:] = ~same
    del same
    new_conv = new_group.copy()

    # TCP 4-tuples with a pure SYN after their first event may hold several streams.
    flags_s = t.tcp_flags[rows_s]
    pure_syn = (p_s == PROTO_TCP) & ~quote_s & ((flags_s & (SYN | ACK)) == SYN) & ~new_group
    if pure_syn.any():
        starts = np.flatnonzero(new_group)
        ends = np.append(starts[1:], m)
        gid = np.cumsum(new_group) - 1
        for g in np.unique(gid[pure_syn]).tolist():
            a, b = int(starts[g]), int(ends[g])
            r = rows_s[a:b]
            is_lo = src_ep_s[a:b] <= dst_ep_s[a:b]
            cols = (t.tcp_flags[r], t.seq[r], t.ack[r], is_lo, quote_s[a:b])
            for k in _split_reused(*(c.tolist() for c in cols)):
                new_conv[a + k] = True
        del starts, ends, gid
    del new_group, pure_syn

    conv_first = np.flatnonzero(new_conv)  # sorted position of each conversation's first event
    del new_conv
    counts = np.diff(np.append(conv_first, m))  # a conversation is a run of sorted events
    first_row = rows_s[conv_first]
    last_row = rows_s[conv_first + counts - 1]  # rows ascend inside a conversation
    conv_proto = p_s[conv_first]
    # Number per protocol in order of first appearance (first row of the conversation).
    number = np.empty(conv_first.size, dtype=np.int64)
    for p in (PROTO_TCP, PROTO_UDP):
        sel = np.flatnonzero(conv_proto == p)
        number[sel[np.argsort(first_row[sel], kind="stable")]] = np.arange(sel.size)

    # Endpoint a = sender of the conversation's first event (for a quote: quoted src).
    sent_by_b = src_ep_s != np.repeat(src_ep_s[conv_first], counts)
    sent_by_b ^= quote_s
    sent_by_b &= src_ep_s != dst_ep_s
    direction[rows_s] = sent_by_b
    del sent_by_b
    is_quote[rows_s] = quote_s
    sides = _client_sides(src_ep_s, dst_ep_s, quote_s, p_s, flags_s, conv_first)
    del src_ep_s, dst_ep_s, flags_s

    ev_stream = np.repeat(number.astype(np.int32), counts)
    stream[rows_s] = ev_stream
    tcp_rows, tcp_starts = _tcp_order(rows_s, ev_stream, (p_s == PROTO_TCP) & ~quote_s)
    del ev_stream, rows_s, p_s, quote_s
    tcp_infos, udp_infos, tcp_dir, udp_dir = _stream_infos(
        names, *sides, first_row, last_row, counts, number, conv_proto
    )
    return StreamColumns(
        stream, direction, tcp_infos, udp_infos, is_quote, tcp_rows, tcp_starts, tcp_dir, udp_dir
    )


def _tcp_order(rows_s: I64, ev_stream: I32, tcp: Bool) -> tuple[I64, I64]:
    """TCP rows sorted by (stream, row) and each stream's start, from the grouped order.

    The events are grouped by conversation with rows in order inside each group, so
    reordering whole groups by stream number needs no further sort of the rows.
    """
    at = np.flatnonzero(tcp)
    if at.size == 0:
        return at.astype(np.int64), at.astype(np.int64)
    c = ev_stream[at]
    gs = np.flatnonzero(np.concatenate(([True], c[1:] != c[:-1])))
    gl = np.diff(np.append(gs, at.size))
    go = np.argsort(c[gs], kind="stable")
    del c
    starts = np.zeros(go.size, dtype=np.int64)
    np.cumsum(gl[go][:-1], out=starts[1:])
    src = np.repeat(gs[go] - starts, gl[go])
    src += np.arange(at.size)
    at = at[src]
    del src
    return rows_s[at], starts


def _client_sides(
    src_ep_s: I64, dst_ep_s: I64, quote_s: Bool, p_s: I8, flags_s: I32, conv_first: I64
) -> tuple[I64, I64, I64]:
    """Per conversation: endpoint keys of a and b, and the client's side.

    The side is 0 when the client is a, 1 when b, -1 when unknown.  The client is the
    sender of the first SYN without ACK, else the receiver of the first SYN-ACK.
    """
    real_tcp = (p_s == PROTO_TCP) & ~quote_s
    syn_bits = flags_s & (SYN | ACK)
    fs = _first_per_conv(conv_first, real_tcp & (syn_bits == SYN))
    fsa = _first_per_conv(conv_first, real_tcp & (syn_bits == (SYN | ACK)))
    del real_tcp, syn_bits

    # Client side: 0 = the conversation's first-event sender, 1 = the other, -1 unknown.
    f = conv_first
    first_ep = src_ep_s[f]
    client_side = np.where(
        fs >= 0,
        np.where(src_ep_s[np.maximum(fs, 0)] == first_ep, 0, 1),
        np.where(fsa >= 0, np.where(src_ep_s[np.maximum(fsa, 0)] == first_ep, 1, 0), -1),
    )
    q_f = quote_s[f]
    client_side = np.where(q_f & (client_side >= 0), 1 - client_side, client_side)
    # Endpoints a and b: a quote row travels towards the quoted sender.
    a_ep = np.where(q_f, dst_ep_s[f], first_ep)
    b_ep = np.where(q_f, first_ep, dst_ep_s[f])
    a_port, b_port = a_ep % _PORT_SPAN, b_ep % _PORT_SPAN
    # A guess when no SYN was captured: the lower port is the server's.
    guess = np.where(a_port == b_port, -1, np.where(b_port < a_port, 0, 1))
    client_side = np.where(client_side >= 0, client_side, guess)
    return a_ep, b_ep, client_side


def _stream_infos(
    names: list[str],
    a_ep: I64,
    b_ep: I64,
    client_side: I64,
    first_row: I64,
    last_row: I64,
    counts: I64,
    number: I64,
    conv_proto: I8,
) -> tuple[tuple[StreamInfo, ...], tuple[StreamInfo, ...], I8, I8]:
    """The TCP and UDP stream lists (in index order) and each stream's client direction."""
    k = a_ep.size
    # Endpoint strings once per distinct endpoint (streams share their servers'), built
    # from one "address:" prefix per address (``endpoint_str`` with port 0, minus the 0).
    uniq, inv = np.unique(np.concatenate([a_ep, b_ep]), return_inverse=True)
    addr, port = np.divmod(uniq, _PORT_SPAN)
    prefix = [endpoint_str(name, 0)[:-1] for name in names]
    text = [prefix[x] + str(y) for x, y in zip(addr.tolist(), port.tolist(), strict=True)]
    a_i, b_i = inv[:k], inv[k:]
    # Distinct endpoint keys have distinct strings: client == a exactly when side 0 or a == b.
    client_dir = np.where(client_side < 0, -1, np.where((client_side == 0) | (a_i == b_i), 0, 1))
    lists: list[tuple[tuple[StreamInfo, ...], I8]] = []
    for p, name in ((PROTO_TCP, "tcp"), (PROTO_UDP, "udp")):
        sel = np.flatnonzero(conv_proto == p)
        sel = sel[np.argsort(number[sel])]
        a_s = [text[i] for i in a_i[sel].tolist()]
        b_s = [text[i] for i in b_i[sel].tolist()]
        cd = client_dir[sel].astype(np.int8)
        pairs = zip(cd.tolist(), a_s, b_s, strict=True)
        client = [None if c < 0 else (x if c == 0 else y) for c, x, y in pairs]
        infos = map(  # in index order, so no sort
            StreamInfo,
            range(sel.size),
            itertools.repeat(name),
            a_s,
            b_s,
            (first_row[sel] + 1).tolist(),
            (last_row[sel] + 1).tolist(),
            counts[sel].tolist(),
            client,
        )
        lists.append((tuple(infos), cd))
    (tcp, tcp_dir), (udp, udp_dir) = lists
    return tcp, udp, tcp_dir, udp_dir


def _first_per_conv(conv_first: I64, mask: Bool) -> I64:
    """Sorted position of the first masked event per conversation, -1 if none.

    ``conv_first`` holds each conversation's first sorted position (ascending).
    """
    out = np.full(conv_first.size, -1, dtype=np.int64)
    idx = np.flatnonzero(mask)
    if idx.size:
        g, first = np.unique(np.searchsorted(conv_first, idx, side="right") - 1, return_index=True)
        out[g] = idx[first]
    return out
