"""A small RFC 9293 state diagram as text, with where each state's name sits.

Pure: ``DIAGRAM`` is the picture and ``spans(state)`` the (line, column, width)
of every place that state is drawn, so the explanation pane can highlight the
two ends' current states.  Transitions read left to right; the labels on the
arrows are what moves a socket along (a call or a segment).
"""

from __future__ import annotations

from tracer.core.model import TcpState

DIAGRAM: tuple[str, ...] = (
    "CLOSED ─listen▶ LISTEN ─SYN▶ SYN-RECEIVED",
    " └connect▶ SYN-SENT ─SYN,ACK▶ ESTABLISHED",
    "close▶ FIN-WAIT-1 ─ACK▶ FIN-WAIT-2 ─FIN┐",
    "  └FIN▶ CLOSING ─ACK▶ TIME-WAIT ◀──────┘",
    "FIN▶ CLOSE-WAIT ─close▶ LAST-ACK ─▶ CLOSED",
)
WIDTH = max(len(line) for line in DIAGRAM)

_NAMES: dict[TcpState, str] = {st: st.name.replace("_", "-") for st in TcpState if st != TcpState.UNKNOWN}


def spans(state: TcpState | int) -> list[tuple[int, int, int]]:
    """Where ``state`` is drawn: (line, start column, width) for each occurrence."""
    try:
        name = _NAMES.get(TcpState(int(state)))
    except ValueError:
        return []
    if name is None:
        return []
    out = []
    for y, line in enumerate(DIAGRAM):
        start = 0
        while (x := line.find(name, start)) >= 0:
            end = x + len(name)
            # Whole names only: FIN-WAIT-1 must not light up inside another name.
            before = line[x - 1] if x else " "
            after = line[end] if end < len(line) else " "
            if not (before.isalnum() or before == "-") and not (after.isalnum() or after == "-"):
                out.append((y, x, len(name)))
            start = end
    return out
