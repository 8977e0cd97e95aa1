"""The stable cause reasons and socket call names stored as codes in ``Analysis``.

``Analysis.cause_reason`` indexes ``REASONS`` and ``Analysis.cause_call`` indexes
``CALL_NAMES``.  The names appear in the JSON output, so they are append-only:
never rename, reorder or remove one; add new ones at the end.
"""

from __future__ import annotations

REASONS: tuple[str, ...] = (
    "unknown",  # 0: nothing better is known
    # Opening.
    "connect_syn",  # connect() made the kernel send the first SYN
    "syn_retransmission",  # no SYN-ACK in time: the kernel sent the SYN again
    "listen_queue_synack",  # server kernel answered from the listen queue (accept() not needed)
    "synack_retransmission",
    "simultaneous_open_syn",  # both ends called connect(); this SYN crossed the other
    "simultaneous_open_synack",
    "handshake_ack",  # the third ACK: the client's kernel completes the handshake
    # Data and acknowledgements.
    "send_data",
    "send_data_fin",  # data and FIN in one segment
    "data_ack",
    "fin_ack",  # the kernel acknowledges the peer's FIN
    "window_update",
    "zero_window",
    "zero_window_probe",
    "zero_window_probe_ack",
    "keep_alive",
    "keep_alive_ack",
    "dup_ack",
    "retransmission",
    "fast_retransmission",
    "spurious_retransmission",
    # Closing.
    "close_fin",  # active close: the first FIN of the connection
    "close_fin_after_peer",  # passive close: the peer's FIN was already acknowledged
    "close_fin_ack",  # passive close: the FIN also carries the ACK of the peer's FIN
    "simultaneous_close_fin",  # both ends closed; the FINs crossed
    "fin_retransmission",
    # Resets.
    "rst_no_listener",  # RST answering a SYN: connect() fails with ECONNREFUSED
    "rst_abort",  # abortive close: close() with unread data, or SO_LINGER 0
    "rst_after_close",  # the application had closed; the kernel aborts the rest
    "rst_unknown_connection",  # a segment for a connection the kernel does not have
    # Other protocols.
    "udp_datagram",
    "icmp_port_unreachable",
    "icmp_error",
    "icmp_message",
    "not_transport",
    "mid_stream",  # first packet of a connection whose start was not captured
    # Appended for the kernel witness's origins (tracer.core.kernel_causes).
    "delayed_ack",  # the delayed-ACK timer sent this ACK
    "rto_retransmission",  # the retransmission timer resent data
    "tail_loss_probe",  # the loss-probe timer resent the last segment (TLP)
    "data_released_by_ack",  # queued data the peer's ACK let the kernel send
    "exit_fin",  # the process exited; closing its socket sent the FIN
    "exit_rst",  # the process exited with unread data; closing its socket sent a RST
    "rst_listener_closed",  # a listener closed with un-accepted connections resets them
    "time_wait_ack",  # the TIME-WAIT socket acknowledged the peer's FIN
    "window_update_by_recv",  # recv() freed buffer space and sent this ACK itself
    "challenge_ack",  # RFC 5961: answer to an unexpected SYN or RST
    "synack_resent_for_syn",  # the SYN was received again; the request socket answers it
)

CALL_NAMES: tuple[str, ...] = (
    "",  # 0: no call
    "socket",
    "bind",
    "listen",
    "accept",
    "connect",
    "send",
    "sendto",
    "recv",
    "recvfrom",
    "shutdown",
    "close",
    "setsockopt",
    # Appended for the recorder's call names (tracer.lab.recorder).
    "connect_ex",
    "sendall",
    "recv_into",
    "recvfrom_into",
    "getsockname",
    "getpeername",
    "settimeout",
    "setblocking",
)

REASON_CODE: dict[str, int] = {name: i for i, name in enumerate(REASONS)}
CALL_CODE: dict[str, int] = {name: i for i, name in enumerate(CALL_NAMES)}


def reason_code(name: str) -> int:
    """The code of reason ``name``; raises ``KeyError`` for an unknown name (a bug)."""
    return REASON_CODE[name]


def call_code(name: str | None) -> int:
    """The code of call ``name`` (0 for ``None``/""); raises ``KeyError`` if unknown."""
    return CALL_CODE[name or ""]
