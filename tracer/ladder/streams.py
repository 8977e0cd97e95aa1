"""Streams on the ladder: a stream's two lanes, and which streams a socket call
belongs to (the streams of its socket, of the packets it caused, of its errors)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP, PROTO_UDP, SocketCall, StreamInfo
from tracer.core.trace import Trace

StreamKey = tuple[int, int]  # (proto, stream index)
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "[::]", "::"})
_CALL_PROTO = {"tcp": PROTO_TCP, "udp": PROTO_UDP}


@dataclass(frozen=True)
class Lanes:
    """A stream's two lanes: left is the client when known.  The roles are
    "client"/"server", or "a"/"b" when the capture cannot tell (keys of the labels)."""

    left: str
    right: str
    left_role: str
    right_role: str
    a_is_left: bool


def lanes_of(info: StreamInfo) -> Lanes:
    """Left lane = the client when the capture says which end that is, else ``a``."""
    if info.client is not None and info.client in (info.a, info.b):
        server = info.b if info.client == info.a else info.a
        return Lanes(info.client, server, "client", "server", info.client == info.a)
    return Lanes(info.a, info.b, "a", "b", True)


def stream_infos(a: Analysis) -> dict[StreamKey, StreamInfo]:
    """Every TCP and UDP stream of an analysis by its key."""
    infos: dict[StreamKey, StreamInfo] = {(PROTO_TCP, s.index): s for s in a.tcp_streams}
    infos.update({(PROTO_UDP, s.index): s for s in a.udp_streams})
    return infos


def _ep_split(ep: str) -> tuple[str, str]:
    host, _, port = ep.rpartition(":")
    return host, port


def call_streams(
    calls: tuple[SocketCall, ...], infos: dict[StreamKey, StreamInfo], caused: dict[int, set[StreamKey]]
) -> dict[int, set[StreamKey]]:
    """Call id → the streams of the call's socket.

    A socket is a (side, pid, fd) from socket() (or first use) to close(); it
    belongs to the streams whose endpoints its calls name (a wildcard local
    address matches by port, so a listener belongs to every connection it
    serves) and to those of the packets its calls caused (``caused``: call id →
    streams, packet causes and error links).  A call that names or caused its
    own streams (accept(), recv(), close()) gets those alone.
    """
    by_ep: dict[str, set[StreamKey]] = {}
    by_port: dict[tuple[int, str], set[StreamKey]] = {}
    for key, info in infos.items():
        for ep in (info.a, info.b):
            by_ep.setdefault(ep, set()).add(key)
            by_port.setdefault((key[0], _ep_split(ep)[1]), set()).add(key)

    def local_streams(ep: str, proto: int | None) -> set[StreamKey]:
        host, port = _ep_split(ep)
        found = set(by_ep.get(ep, ()))
        if host in _WILDCARD_HOSTS:
            for p in (proto,) if proto is not None else (PROTO_TCP, PROTO_UDP):
                found |= by_port.get((p, port), set())
        return {k for k in found if proto is None or k[0] == proto}

    live: dict[tuple[str, int, int], set[StreamKey]] = {}
    socket_of: dict[int, set[StreamKey]] = {}
    for c in sorted(calls, key=lambda c: (c.t_enter_ns, c.id)):
        proto = _CALL_PROTO.get(c.proto or "")
        own: set[StreamKey] = set(caused.get(c.id, ()))
        if c.local:
            found = local_streams(c.local, proto)
            if c.remote:
                found &= by_ep.get(c.remote, set())
            own |= found
        if c.fd is None:
            socket_of[c.id] = own
            continue
        fd_key = (c.side, c.pid, c.fd)
        if fd_key not in live or c.call == "socket":
            live[fd_key] = set()
        streams = live[fd_key]
        streams |= own  # shared by every call of this socket, earlier ones included
        # A call that names its own connection (accept(), recv()) belongs to that one only.
        socket_of[c.id] = own or streams
        if c.call == "close":
            del live[fd_key]
    return socket_of


def caused_streams(trace: Trace, a: Analysis) -> dict[int, set[StreamKey]]:
    """Call id → the streams of the packets it caused or that made it fail."""
    out: dict[int, set[StreamKey]] = {}
    ids = a.cause_call_id
    for r in np.flatnonzero(ids >= 0).tolist():
        out.setdefault(int(ids[r]), set()).add((int(trace.packets.proto[r]), int(a.stream[r])))
    for cid, r in a.error_links.items():
        out.setdefault(cid, set()).add((int(trace.packets.proto[r]), int(a.stream[r])))
    return out
