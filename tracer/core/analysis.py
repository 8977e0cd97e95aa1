"""The result of analysing a trace, column by column (one row per packet).

Produced by ``tracer.core.pipeline.analyze``; read by exporters and the UI.
Codes in the int columns are the ``IntEnum`` values of ``tracer.core.model``
(``TcpState``, ``CauseBy``, ``Side``), ``AnalysisFlag`` bits, and indices into
``tracer.core.reasons.REASONS`` / ``CALL_NAMES``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.core.model import StreamInfo
from tracer.core.table import I8, I16, I32, I64, Bool


@dataclass(frozen=True, eq=False)
class Analysis:
    """Per-packet analysis columns plus the stream list.

    stream: tcp.stream or udp.stream index (per protocol, like tshark), -1 if none;
        an ICMP error carries the stream of the header it quotes.
    direction: 0 = sent by the stream's endpoint ``a``, 1 = by ``b``, -1 = none.
    rel_seq/rel_ack: relative to each direction's ISN like tshark; -1 = not TCP.  As
        tshark does, a segment without the ACK flag shows its raw ack field.
    flags: bit set of ``AnalysisFlag``.
    state_a/state_b: ``TcpState`` of endpoints a and b after this packet; -1 = not TCP.
        From the kernel's state changes where the trace has the witness's account
        (``tracer.core.kernel_states``), else the wire rules'.
    inferred_state_a/inferred_state_b: the wire rules' states (``tracer.core.tcp_states``),
        kept beside the kernel's to compare them.
    cause_*: why the packet exists (see ``tracer.core.model.Cause``).
    cause_source: ``CauseSource`` of each row's cause.
    inferred_reason: the REASONS code the wire rules alone give (kept beside a cause
        from the calls or the kernel, to compare them).
    released_by: for data the kernel sent when the peer's segment arrived (reason
        ``data_released_by_ack``: held by Nagle's algorithm, the congestion or the
        receive window), the row of that segment; -1 otherwise.  The row's
        ``cause_call_id`` still names the send call that queued the bytes.
    error_links: recorded call id -> row of the packet that caused its errno (the RST
        behind ECONNREFUSED/ECONNRESET, the ICMP port unreachable behind a UDP
        ECONNREFUSED); empty without recorded calls.
    state_disagreements: rows (0-based) where the kernel's state differs from the wire
        rules' (see ``tracer.core.kernel_states``); empty without the kernel's account.
    """

    stream: I32
    direction: I8
    rel_seq: I64
    rel_ack: I64
    flags: I32
    state_a: I8
    state_b: I8
    cause_by: I8
    cause_side: I8
    cause_call: I16
    cause_reason: I16
    cause_inferred: Bool
    cause_call_id: I32
    cause_source: I8
    inferred_reason: I16
    released_by: I32
    inferred_state_a: I8
    inferred_state_b: I8
    tcp_streams: tuple[StreamInfo, ...]
    udp_streams: tuple[StreamInfo, ...]
    error_links: dict[int, int] = field(default_factory=dict)
    state_disagreements: tuple[int, ...] = ()
