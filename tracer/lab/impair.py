"""Network impairments inside the lab, with nftables: deterministic drops, random loss, reject.

This kernel has no netem, so loss is made with nftables (``nft``, package nftables)
and ``Delay`` is offered only where netem exists (``netem_available``).

Where the rules sit, and why (what a capture then shows):

* ``Drop`` and ``Loss`` act on the RECEIVING host, in its ``prerouting`` hook.  The
  packet taps (tcpdump, AF_PACKET) of both hosts run before that hook, so the
  sender's capture shows the frame leaving exactly once, as on a wire that loses it,
  and the sender's TCP believes it was sent: its retransmission (timeout, fast
  retransmit, SYN/SYN-ACK retry) is the real behaviour.  Dropping on the sender's
  ``output`` hook instead would hand ``-EPERM`` to the sender's stack, which keeps
  the segment queued and resends it without any visible loss.  A capture on the
  receiver still shows the dropped frame (its tap ran first): lessons capture on
  the sending side, and ``Applied.counters()`` says which frames were dropped.
* ``Reject`` acts in the receiving host's ``input`` hook (the hook where every
  kernel accepts ``reject``): the receiver's kernel answers with a RST (or an ICMP
  error) that both captures show, as a firewall on that host would.
* Rules are evaluated in list order; all ``Drop``/``Loss`` rules run before any
  ``Reject`` (prerouting comes before input).  A packet dropped by one impairment
  is not seen by the later ones.

"The Nth packet matching" is counted by ``numgen inc`` in a chain that only the
matching packets reach, so "drop the first SYN-ACK" drops exactly that packet on
every run.  ``data_segment`` (TCP with payload) has no single nft expression: the
rules branch on ``tcp doff`` (a verdict map) and compare ``ip length`` (IPv4
without options) or ``ip6 length`` (IPv6 without extension headers, as in the lab)
with the header lengths.

"Packet" means what the receiving stack sees: on a veth a sender using TSO/GSO
hands over frames of several MSS each (the captures show the same big frames).
For one TCP segment per frame, wrap the connection's creation in
``one_segment_per_frame(sender)``.

Each host gets ONE table, ``inet tracer_impair``; ``apply`` replaces it atomically.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from tracer.errors import EXIT_MISSING_TOOL, UsageError
from tracer.i18n import Msg
from tracer.lab.netns import Host, LabError, require_tool

TABLE = "tracer_impair"
_NUMGEN_MOD = 1 << 31  # numgen's counter wraps after 2^31 matching packets
_REJECT_KINDS = {
    "tcp reset": "tcp reset",
    "icmpx port-unreachable": "icmpx type port-unreachable",
    "icmpx admin-prohibited": "icmpx type admin-prohibited",
    "icmpx host-unreachable": "icmpx type host-unreachable",
    "icmpx no-route": "icmpx type no-route",
}
_TCP_FLAGS = {"fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"}


def _bad(why: Msg) -> UsageError:
    return UsageError("impair.bad", why=why)


# --- predicates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Which packets an impairment considers (as seen arriving at the host it is on).

    proto: "tcp", "udp" or None (any IPv4/IPv6 packet).
    flags_mask/flags: TCP flag names; the packet matches when
        ``tcp flags & mask == flags`` (e.g. mask syn,ack and flags syn = a SYN).
    payload: TCP segments carrying data only.
    sport/dport: transport ports; family: "ip" (IPv4) or "ip6" or None (both).
    """

    proto: Literal["tcp", "udp"] | None = None
    flags_mask: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    payload: bool = False
    sport: int | None = None
    dport: int | None = None
    family: Literal["ip", "ip6"] | None = None

    def __post_init__(self) -> None:
        for port in (self.sport, self.dport):
            if port is not None and not 0 <= port <= 65535:
                raise _bad(Msg("impair.port_range", port=port))
        if self.proto is None and (self.sport is not None or self.dport is not None):
            raise _bad(Msg("impair.port_needs_proto"))
        unknown = set(self.flags_mask) - _TCP_FLAGS or set(self.flags) - set(self.flags_mask)
        if unknown:
            raise _bad(Msg("impair.unknown_flags", flags=", ".join(sorted(unknown))))
        if self.proto != "tcp" and (self.flags_mask or self.payload):
            raise _bad(Msg("impair.flags_need_tcp"))

    def conditions(self) -> str:
        """The nft match expressions (without the payload test, see ``_match_rules``)."""
        parts = []
        if self.family is not None:
            parts.append(f"meta nfproto {'ipv4' if self.family == 'ip' else 'ipv6'}")
        if self.proto is not None:
            parts.append(f"meta l4proto {self.proto}")
        if self.sport is not None:
            parts.append(f"{self.proto} sport {self.sport}")
        if self.dport is not None:
            parts.append(f"{self.proto} dport {self.dport}")
        if self.flags_mask:
            mask = "|".join(self.flags_mask)
            want = "|".join(self.flags) if self.flags else "0x0"
            parts.append(f"tcp flags & ({mask}) == {want}")
        return " ".join(parts) or "meta nfproto { ipv4, ipv6 }"


def syn(*, sport: int | None = None, dport: int | None = None) -> Match:
    """A SYN (not a SYN-ACK): a connection attempt."""
    return Match("tcp", ("syn", "ack"), ("syn",), sport=sport, dport=dport)


def syn_ack(*, sport: int | None = None, dport: int | None = None) -> Match:
    """A SYN-ACK: the listener's answer (apply on the client host)."""
    return Match("tcp", ("syn", "ack"), ("syn", "ack"), sport=sport, dport=dport)


def fin(*, sport: int | None = None, dport: int | None = None) -> Match:
    """A segment with FIN set."""
    return Match("tcp", ("fin",), ("fin",), sport=sport, dport=dport)


def rst(*, sport: int | None = None, dport: int | None = None) -> Match:
    """A segment with RST set."""
    return Match("tcp", ("rst",), ("rst",), sport=sport, dport=dport)


def data_segment(*, sport: int | None = None, dport: int | None = None) -> Match:
    """A TCP segment carrying payload (``nth=3`` with ``Drop``: data segment 3)."""
    return Match("tcp", payload=True, sport=sport, dport=dport)


def tcp(*, sport: int | None = None, dport: int | None = None) -> Match:
    """Any TCP segment (e.g. to a port)."""
    return Match("tcp", sport=sport, dport=dport)


def udp(*, sport: int | None = None, dport: int | None = None) -> Match:
    """Any UDP datagram (e.g. to a port)."""
    return Match("udp", sport=sport, dport=dport)


# --- impairments ----------------------------------------------------------------------


def _check_window(nth: int, count: int | None) -> None:
    if nth < 1:
        raise _bad(Msg("impair.nth", nth=nth))
    if count is not None and count < 1:
        raise _bad(Msg("impair.count", count=count))
    if nth - 1 + (count or 1) > _NUMGEN_MOD:
        raise _bad(Msg("impair.window_too_large"))


@dataclass(frozen=True)
class Drop:
    """Drop matching packets ``nth`` .. ``nth + count - 1`` (1-based); ``count=None``: all from ``nth``."""

    match: Match
    nth: int = 1
    count: int | None = 1
    name: str = ""

    def __post_init__(self) -> None:
        _check_window(self.nth, self.count)


@dataclass(frozen=True)
class Loss:
    """Drop each matching packet with probability ``percent`` / 100 (steps of 0.01 %)."""

    percent: float
    match: Match = field(default_factory=Match)
    name: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.percent <= 100:
            raise _bad(Msg("impair.loss_percent", percent=self.percent))


@dataclass(frozen=True)
class Reject:
    """Answer matching packets with a RST (``with_="tcp reset"``) or an ICMP error.

    ``with_``: "tcp reset" or "icmpx port-unreachable|admin-prohibited|host-unreachable|no-route".
    ``nth``/``count`` as in ``Drop``; by default every matching packet is rejected.
    """

    match: Match
    with_: str = "tcp reset"
    nth: int = 1
    count: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        _check_window(self.nth, self.count)
        if self.with_ not in _REJECT_KINDS:
            raise _bad(Msg("impair.reject_kind", kind=repr(self.with_), kinds=", ".join(_REJECT_KINDS)))
        if self.with_ == "tcp reset" and self.match.proto != "tcp":
            raise _bad(Msg("impair.reset_needs_tcp"))


@dataclass(frozen=True)
class Delay:
    """Delay everything the host sends by ``ms`` (± ``jitter_ms``) with netem; needs sch_netem."""

    ms: float
    jitter_ms: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.ms < 0 or self.jitter_ms < 0:
            raise _bad(Msg("impair.negative_delay"))


Impairment = Drop | Loss | Reject | Delay


def _name(imp: Impairment, i: int) -> str:
    return imp.name or f"{type(imp).__name__.lower()}{i}"


# --- the nft ruleset ------------------------------------------------------------------


def _match_rules(m: Match, target: str, chains: list[str]) -> list[str]:
    """Rules (for a base chain) that jump to ``target`` for packets matching ``m``.

    ``chains`` receives the helper chains that the payload test needs.
    """
    if not m.payload:
        return [f"{m.conditions()} jump {target}"]
    arms = []
    for doff in range(5, 16):
        sub = f"{target}_d{doff}"
        hdr = 4 * doff
        body = []
        if m.family in (None, "ip"):
            body.append(f"ip hdrlength 5 ip length > {20 + hdr} jump {target}")
        if m.family in (None, "ip6"):
            body.append(f"ip6 length > {hdr} jump {target}")
        chains.append(_chain(sub, body))
        arms.append(f"{doff} : jump {sub}")
    return [f"{m.conditions()} tcp doff vmap {{ {', '.join(arms)} }}"]


def _chain(name: str, rules: Sequence[str], head: str = "") -> str:
    lines = [f"    chain {name} {{"]
    if head:
        lines.append(f"        {head}")
    lines += [f"        {r}" for r in rules]
    lines.append("    }")
    return "\n".join(lines)


def _window(nth: int, count: int | None) -> str:
    lo = nth - 1
    if count is None:
        return f"numgen inc mod {_NUMGEN_MOD} >= {lo} " if lo else ""
    hi = lo + count - 1
    return f"numgen inc mod {_NUMGEN_MOD} {lo}-{hi} " if hi > lo else f"numgen inc mod {_NUMGEN_MOD} {lo} "


def ruleset(impairments: Sequence[Impairment]) -> str:
    """The ``nft -f`` script that (re)creates this host's ``inet tracer_impair`` table.

    ``Delay`` is not part of it (netem is a qdisc, set by ``apply``).
    """
    helpers: list[str] = []
    pre: list[str] = []
    inp: list[str] = []
    for i, imp in enumerate(impairments):
        if isinstance(imp, Delay):
            continue
        target = f"imp{i}"
        if isinstance(imp, Drop):
            action = f"{_window(imp.nth, imp.count)}counter drop"
            pre += _match_rules(imp.match, target, helpers)
        elif isinstance(imp, Loss):
            step = round(imp.percent * 100)
            action = "counter drop" if step >= 10000 else f"numgen random mod 10000 < {step} counter drop"
            pre += _match_rules(imp.match, target, helpers)
        else:
            action = f"{_window(imp.nth, imp.count)}counter reject with {_REJECT_KINDS[imp.with_]}"
            inp += _match_rules(imp.match, target, helpers)
        helpers.append(_chain(target, [
            'counter comment "matched"',
            f'{action} comment "hit"',
        ]))
    base = [
        _chain("pre", pre, "type filter hook prerouting priority raw; policy accept;"),
        _chain("in", inp, "type filter hook input priority raw; policy accept;"),
    ]
    body = "\n".join([*helpers, *base])
    # "add" then "delete" makes the delete succeed whether or not the table exists;
    # the whole script is one transaction, so the replacement is atomic.
    return f"add table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n{body}\n}}\n"


# --- netem ----------------------------------------------------------------------------


def _no_netem() -> LabError:
    return LabError("impair.no_netem", exit_code=EXIT_MISSING_TOOL)


@cache
def netem_available() -> bool:
    """Whether the kernel offers netem: tried on ``lo`` of a scratch namespace."""
    require_tool("tc", "iproute2")
    ns = f"trcnetem-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        raise LabError("impair.netem_probe_failed", why=made.stderr.strip())
    try:
        cmd = ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _set_delay(host: Host, d: Delay) -> None:
    if not netem_available():
        raise _no_netem()
    argv = ["tc", "qdisc", "replace", "dev", host.iface, "root", "netem", "delay", f"{d.ms}ms"]
    if d.jitter_ms:
        argv.append(f"{d.jitter_ms}ms")
    r = host.run(argv, check=False)
    if r.returncode != 0:
        raise LabError("impair.tc_failed", why=r.stderr.strip())


@contextlib.contextmanager
def one_segment_per_frame(host: Host) -> Iterator[None]:
    """Within the block, connections that ``host`` opens send one TCP segment per frame.

    Sets the interface's ``gso_max_segs`` to 1 (a socket reads it when it connects)
    and restores it afterwards; so "data segment N" is the Nth wire segment.
    """
    shown = host.run(["ip", "-d", "link", "show", "dev", host.iface]).stdout
    m = re.search(r"gso_max_segs (\d+)", shown)
    old = m.group(1) if m else "65535"
    host.run(["ip", "link", "set", "dev", host.iface, "gso_max_segs", "1"])
    try:
        yield
    finally:
        host.run(["ip", "link", "set", "dev", host.iface, "gso_max_segs", old], check=False)


# --- scenario specs ---------------------------------------------------------------------

_SPEC_MATCHES = {"syn": syn, "syn-ack": syn_ack, "fin": fin, "rst": rst, "data": data_segment,
                 "tcp": tcp, "udp": udp}
SEGMENTS_SPEC = "one-segment-per-frame"


@dataclass(frozen=True)
class Spec:
    """One scenario impairment: on which host (``"client"``/``"server"``), and what."""

    host: str
    impairment: Impairment | None  # None: one_segment_per_frame(host)


def parse_spec(spec: str, port: int) -> Spec:
    """A scenario's ``IMPAIR`` entry, e.g. ``"drop syn-ack to client"``,
    ``"drop data to server nth=3"``, ``"loss 5% data to server"``,
    ``"reject syn to server"``, ``"one-segment-per-frame client"``.

    ``to server`` acts on the server host on packets to ``port``; ``to client`` on
    the client host on packets from ``port`` (where rules act: see the module
    docstring).  Kinds: syn, syn-ack, fin, rst, data, tcp, udp.  ``nth=N`` (1-based)
    and ``count=N|all`` choose which matching packets.
    """
    words = spec.split()
    bad = _bad(Msg("impair.unreadable_spec", spec=repr(spec)))
    if len(words) == 2 and words[0] == SEGMENTS_SPEC and words[1] in ("client", "server"):
        return Spec(words[1], None)
    if not words or words[0] not in ("drop", "loss", "reject"):
        raise bad
    verb, rest = words[0], words[1:]
    percent = 0.0
    if verb == "loss":
        if not rest or not rest[0].endswith("%"):
            raise bad
        try:
            percent = float(rest[0][:-1])
        except ValueError:
            raise bad from None
        rest = rest[1:]
    if len(rest) < 3 or rest[0] not in _SPEC_MATCHES or rest[1:2] != ["to"]:
        raise bad
    if rest[2] not in ("client", "server"):
        raise bad
    kind, host = rest[0], rest[2]
    opts: dict[str, str] = {}
    for w in rest[3:]:
        k, eq, v = w.partition("=")
        if not eq or k not in ("nth", "count", "with"):
            raise bad
        opts[k] = v.replace("_", " ")
    make = _SPEC_MATCHES[kind]
    m = make(dport=port) if host == "server" else make(sport=port)
    try:
        nth = int(opts.get("nth", "1"))
        count = None if opts.get("count") == "all" else int(opts["count"]) if "count" in opts else 1
    except ValueError:
        raise bad from None
    if verb == "drop":
        return Spec(host, Drop(m, nth=nth, count=count))
    if verb == "loss":
        return Spec(host, Loss(percent, m))
    return Spec(host, Reject(m, with_=opts.get("with", "tcp reset" if m.proto == "tcp" else
                                           "icmpx port-unreachable"),
                             nth=nth, count=None if "count" not in opts else count))


# --- applying -------------------------------------------------------------------------


@dataclass
class Applied:
    """The impairments in force on one host; ``remove()`` (or leaving the ``with``) undoes them."""

    host: Host
    impairments: tuple[Impairment, ...]
    names: tuple[str, ...]
    _delay: bool = False
    _active: bool = True

    def __enter__(self) -> Applied:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _rule_counts(self) -> dict[str, dict[str, int]]:
        r = self.host.run(["nft", "-j", "list", "table", "inet", TABLE], check=False)
        if r.returncode != 0:
            raise LabError("impair.counters_unreadable", why=r.stderr.strip())
        out: dict[str, dict[str, int]] = {}
        for item in json.loads(r.stdout).get("nftables", []):
            rule = item.get("rule")
            if not rule or not rule["chain"].startswith("imp") or "_" in rule["chain"]:
                continue
            packets = next((e["counter"]["packets"] for e in rule["expr"] if "counter" in e), 0)
            out.setdefault(rule["chain"], {})[rule.get("comment", "")] = int(packets)
        return out

    def _per_impairment(self, key: str) -> dict[str, int]:
        counts = self._rule_counts()
        return {name: counts.get(f"imp{i}", {}).get(key, 0)
                for i, (name, imp) in enumerate(zip(self.names, self.impairments, strict=True))
                if not isinstance(imp, Delay)}

    def counters(self) -> dict[str, int]:
        """Packets dropped (or rejected) so far, per impairment name."""
        return self._per_impairment("hit")

    def matched(self) -> dict[str, int]:
        """Packets that reached each impairment and matched its predicate."""
        return self._per_impairment("matched")

    def remove(self) -> None:
        """Delete the table (and the netem qdisc); safe to call twice."""
        if not self._active:
            return
        self._active = False
        self.host.run(["nft", "delete", "table", "inet", TABLE], check=False)
        if self._delay:
            self.host.run(["tc", "qdisc", "del", "dev", self.host.iface, "root"], check=False)


def apply(host: Host, impairments: Sequence[Impairment]) -> Applied:
    """Install ``impairments`` on ``host`` (replacing any earlier set) and return the handle.

    Drops/loss/reject act on packets ARRIVING at ``host``; ``Delay`` delays what it sends.
    """
    require_tool("nft", "nftables")
    imps = tuple(impairments)
    names = tuple(_name(imp, i) for i, imp in enumerate(imps))
    if len(set(names)) != len(names):
        raise _bad(Msg("impair.names_not_unique"))
    delays = [d for d in imps if isinstance(d, Delay)]
    if len(delays) > 1:
        raise _bad(Msg("impair.one_delay"))
    if delays and not netem_available():
        raise _no_netem()
    r = host.run(["nft", "-f", "-"], input=ruleset(imps), check=False)
    if r.returncode != 0:
        raise LabError("impair.nft_failed", why=r.stderr.strip())
    applied = Applied(host, imps, names)
    if delays:
        try:
            _set_delay(host, delays[0])
        except BaseException:
            applied.remove()
            raise
        applied._delay = True
    return applied


__all__ = [
    "TABLE", "Applied", "Delay", "Drop", "Impairment", "Loss", "Match", "Reject", "apply",
    "data_segment", "fin", "netem_available", "one_segment_per_frame", "rst", "ruleset", "syn",
    "syn_ack", "tcp", "udp",
]
