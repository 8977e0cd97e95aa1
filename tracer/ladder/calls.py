"""A recorded socket call as the ladder shows it: its text, where it goes on the
timeline, its error, how long it waited, and which calls get a row of their own:
those that caused no packet, and the return of a call that did when the return says
something its packets do not (connect()'s, and an errno no packet explains, such as
connect()'s TimeoutError after its SYN retransmissions)."""

from __future__ import annotations

from tracer.core.analysis import Analysis
from tracer.core.model import SocketCall
from tracer.core.trace import Trace
from tracer.ladder.labels import LABELS

# Calls that can wait for the peer or the network: their row says how long they took.
_BLOCKING = frozenset({"accept", "connect", "connect_ex", "recv", "recvfrom", "recv_into",
                       "recvfrom_into", "send", "sendall", "sendto"})  # fmt: skip
_CONNECTS = frozenset({"connect", "connect_ex"})
_BLOCKED_NS = 100_000  # below 0.1 ms the call did not really wait
# Arguments shown by value alone: their value says what they are.
_BARE_ARGS = frozenset({"address", "family", "type", "level", "option", "value", "how", "via", "bufsize",
                        "nbytes"})


def call_time(c: SocketCall) -> int:
    """When a call's row goes on the timeline: when it returned (its result is known then)."""
    return c.t_ns


def call_error(c: SocketCall) -> str | None:
    """The errno a call failed with (connect_ex() returns it instead of raising)."""
    return c.error


def _duration(ns: int, lab: dict[str, str]) -> str:
    ms = ns / 1e6
    if ms >= 10_000:
        return lab["s"].format(v=f"{ms / 1000:.1f}")
    return lab["ms"].format(v=f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}")


def _result_text(c: SocketCall, lab: dict[str, str], error_row: int | None) -> str:
    """What the call returned, in words: an fd, a byte count, an errno with its packet."""
    err = call_error(c)
    if err is not None:
        return err + (f" ({lab['packet'].format(no=error_row + 1)})" if error_row is not None else "")
    if c.t_exit_ns is None:
        return lab["no_return"]
    r = c.result
    if r is None:
        return lab["connected"] if c.call in _CONNECTS else ""
    if c.call in _CONNECTS and r in ("0", "None"):
        return lab["connected"]
    if c.call in ("socket", "accept") and r.isdigit():
        fd = lab["fd"].format(fd=r)
        return f"{fd} ({c.remote})" if c.call == "accept" and c.remote else fd
    if c.call in ("recv", "recv_into", "send", "sendto") and r.isdigit():
        return lab["eof"] if r == "0" and c.call.startswith("recv") else lab["bytes"].format(n=r)
    n, sep, peer = r.partition(" from ")
    if c.call in ("recvfrom", "recvfrom_into") and sep and n.isdigit():
        return lab["bytes_from"].format(n=n, peer=peer)
    return r


def call_text(c: SocketCall, lang: str, error_row: int | None = None) -> str:
    """A call as a student reads it in ``lang``, e.g. ``server accept() → fd 5 (10.77.0.1:36948)``."""
    lab = LABELS[lang]
    args = ", ".join(
        v if k in _BARE_ARGS else f"{k}={v}"
        for k, v in c.args
        if not (c.call == "socket" and k == "proto" and v == "0")
    )
    who = lab.get(c.side, c.side) if c.side in ("client", "server") else c.side
    result = _result_text(c, lab, error_row)
    return f"{who} {c.call}({args})" + (f" → {result}" if result else "")



def waited_text(c: SocketCall, lang: str) -> str:
    """"waited 61.0 ms" for a call that blocked (a blocking call that took 0.1 ms or more), else ""."""
    lab = LABELS[lang]
    if c.t_exit_ns is not None and c.call in _BLOCKING and c.t_exit_ns - c.t_enter_ns >= _BLOCKED_NS:
        return lab["waited"].format(d=_duration(c.t_exit_ns - c.t_enter_ns, lab))
    return ""


def calls_without_packets(trace: Trace, a: Analysis) -> list[SocketCall]:
    """The calls that caused no packet (they get a row of their own), in recorded order."""
    if not trace.calls:
        return []
    ids = a.cause_call_id
    on_packets = set(ids[ids >= 0].tolist())
    return [c for c in trace.calls if c.id not in on_packets]


def returns_as_rows(trace: Trace, a: Analysis) -> list[SocketCall]:
    """The calls that caused packets whose return still gets a row of its own: connect()'s
    (when it returned without an errno a packet explains) and a failed call's whose errno
    no packet explains (those are told on the packet's row), in recorded order."""
    if not trace.calls:
        return []
    ids = a.cause_call_id
    on_packets = set(ids[ids >= 0].tolist())
    return [c for c in trace.calls if c.id in on_packets and c.t_exit_ns is not None
            and c.id not in a.error_links and (c.call in _CONNECTS or call_error(c) is not None)]


def calls_with_rows(trace: Trace, a: Analysis) -> list[SocketCall]:
    """``calls_without_packets`` and ``returns_as_rows`` together, in recorded order."""
    back = {c.id for c in returns_as_rows(trace, a)}
    keep = {c.id for c in calls_without_packets(trace, a)} | back
    return [c for c in trace.calls if c.id in keep]
