"""Packet tables built for tests: a capture tiled into many copies, one connection each."""

from __future__ import annotations

import numpy as np

from tracer.core.model import PROTO_TCP, PROTO_UDP
from tracer.core.table import COLUMNS, PacketTable


def tiled(t: PacketTable, k: int) -> PacketTable:
    """``k`` copies of a capture's packets, each copy on its own client endpoint.

    The client side is the endpoint with the higher port; copies differ in that port
    and, every 60000 copies, in the client address.  Sequence numbers are shifted
    per copy so that no two copies look like the same connection.
    """
    cols = {name: np.tile(getattr(t, name), k) for name, _ in COLUMNS}
    rep = np.repeat(np.arange(k, dtype=np.int64), len(t))
    transport = np.tile((t.proto == PROTO_TCP) | (t.proto == PROTO_UDP), k)
    src_is_client = transport & (cols["sport"] > cols["dport"])
    dst_is_client = transport & (cols["dport"] > cols["sport"])
    new_port = 1024 + (np.maximum(cols["sport"], cols["dport"]) + rep * 13) % 60000
    new_addr = np.where(rep >= 60000, len(t.addresses) + rep // 60000 - 1, -1)
    cols["sport"] = np.where(src_is_client, new_port, cols["sport"])
    cols["dport"] = np.where(dst_is_client, new_port, cols["dport"])
    cols["src"] = np.where(src_is_client & (new_addr >= 0), new_addr, cols["src"])
    cols["dst"] = np.where(dst_is_client & (new_addr >= 0), new_addr, cols["dst"])
    cols["seq"] = np.where(cols["seq"] >= 0, (cols["seq"] + rep * 7919) % 2**32, cols["seq"])
    cols["ack"] = np.where(cols["ack"] > 0, (cols["ack"] + rep * 7919) % 2**32, cols["ack"])
    cols["ts_ns"] = cols["ts_ns"] + rep * 1_000_000_000
    extra = tuple(f"10.251.{g // 256}.{g % 256}" for g in range(k // 60000 + 1))
    return PacketTable(**cols, addresses=t.addresses + extra, proto_names=t.proto_names)  # type: ignore[arg-type]
