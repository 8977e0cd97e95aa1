"""Detailed dissection of ONE packet with scapy, for detail views.

Bulk decoding never goes through scapy (``tracer.core.decode`` is vectorised);
scapy is where it shines: every field of every layer of one selected packet.
scapy is imported lazily because importing it takes about half a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Layer:
    """One protocol layer: its scapy name and (field, shown value) pairs."""

    name: str
    fields: tuple[tuple[str, str], ...]


def _layer_class(linktype: int) -> Any:
    import scapy.layers.all  # noqa: F401  (registers every link type and layer)
    from scapy.config import conf

    _bind_extras()
    return conf.l2types.get(linktype)


_bound = False


def _bind_extras() -> None:
    """Bindings scapy lacks by default but real captures need.

    MPLS over PPP, and the BSD/macOS AF_INET6 values (24, 28, 30) of the null/loopback
    link type, which scapy only knows as Linux's 10.
    """
    global _bound
    if _bound:
        return
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Loopback
    from scapy.layers.ppp import PPP
    from scapy.packet import bind_layers

    bind_layers(PPP, MPLS, proto=0x0281)  # RFC 3032: MPLS unicast over PPP
    for af_inet6 in (24, 28, 30):  # NetBSD/OpenBSD, FreeBSD, macOS
        bind_layers(Loopback, IPv6, type=af_inet6)
    _bound = True


def dissect(raw: bytes, linktype: int) -> list[Layer]:
    """The layers of ``raw`` (captured with ``linktype``), outermost first.

    Unknown link types and undecodable bytes come back as one ``Raw`` layer, so
    the caller always has something to show.
    """
    from scapy.packet import NoPayload, Packet, Raw

    cls = _layer_class(linktype)
    try:
        pkt: Packet = cls(raw) if cls is not None else Raw(raw)
    except Exception:  # scapy raises many types on garbage; show the bytes instead
        pkt = Raw(raw)
    layers: list[Layer] = []
    layer: Any = pkt
    while layer is not None and not isinstance(layer, NoPayload):
        shown = []
        for f in layer.fields_desc:
            try:
                value = f.i2repr(layer, layer.getfieldval(f.name))
            except Exception:  # a field scapy cannot render: keep going
                value = "?"
            shown.append((f.name, str(value)))
        layers.append(Layer(layer.name, tuple(shown)))
        layer = layer.payload
    return layers


def hexdump(raw: bytes, width: int = 16) -> list[str]:
    """``offset  hex bytes  ascii`` lines, like Wireshark's bytes pane."""
    lines = []
    for off in range(0, len(raw), width):
        chunk = raw[off : off + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04x}  {hexes:<{width * 3 - 1}}  {text}")
    return lines
