"""Plain frozen value types of the trace model: packets, socket calls, warnings.

The per-packet ``Packet`` dataclass is the *view* of one packet.  Bulk storage is
columnar (``tracer.core.table.PacketTable``) because a million dataclass
instances cost seconds to build; ``PacketTable.packet(i)`` materialises one.
Small enums here are ``IntEnum`` so that the vectorised analysis can store them
in numpy columns and the exporters can turn them back into names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

# --- TCP flags -------------------------------------------------------------

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
NS = 0x100

# scapy's letters, in the order the JSON contract prints them.
_FLAG_LETTERS = (
    (FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "A"), (URG, "U"), (ECE, "E"), (CWR, "C"),
)


def flags_str(bits: int) -> str:
    """TCP flag bits as scapy letters in the order F S R P A U E C (e.g. ``"SA"``)."""
    return "".join(letter for bit, letter in _FLAG_LETTERS if bits & bit)


# --- protocol ids ------------------------------------------------------------

# ``PacketTable.proto`` indexes ``PacketTable.proto_names``; the first four are fixed.
PROTO_TCP = 0
PROTO_UDP = 1
PROTO_ICMP = 2
PROTO_ICMPV6 = 3
FIXED_PROTO_NAMES: tuple[str, ...] = ("tcp", "udp", "icmp", "icmpv6")


class TcpState(IntEnum):
    """RFC 9293 connection states (plus UNKNOWN for an endpoint seen mid-connection)."""

    UNKNOWN = 0
    CLOSED = 1
    LISTEN = 2
    SYN_SENT = 3
    SYN_RECEIVED = 4
    ESTABLISHED = 5
    FIN_WAIT_1 = 6
    FIN_WAIT_2 = 7
    CLOSING = 8
    TIME_WAIT = 9
    CLOSE_WAIT = 10
    LAST_ACK = 11


def rfc_name(state: TcpState) -> str:
    """The RFC 9293 spelling of ``state`` ("TIME-WAIT"), in every language."""
    return state.name.replace("_", "-")


class AnalysisFlag(IntEnum):
    """tshark's TCP analysis flags, as bit numbers of ``Analysis.analysis``.

    ``name.lower()`` is the JSON name, except LOST_SEGMENT ("previous segment not
    captured") and ACK_UNSEEN_SEGMENT ("ACKed unseen segment"), named as tshark's
    ``tcp.analysis.lost_segment`` and ``tcp.analysis.ack_lost_segment`` fields mean.
    """

    RETRANSMISSION = 0
    FAST_RETRANSMISSION = 1
    SPURIOUS_RETRANSMISSION = 2
    DUP_ACK = 3
    OUT_OF_ORDER = 4
    LOST_SEGMENT = 5
    ACK_UNSEEN_SEGMENT = 6
    ZERO_WINDOW = 7
    ZERO_WINDOW_PROBE = 8
    WINDOW_UPDATE = 9
    WINDOW_FULL = 10
    KEEP_ALIVE = 11
    KEEP_ALIVE_ACK = 12
    ZERO_WINDOW_PROBE_ACK = 13

    @property
    def json_name(self) -> str:
        return self.name.lower()


def analysis_names(bits: int) -> list[str]:
    """The JSON names of the analysis flags set in ``bits``, in enum order."""
    return [f.json_name for f in AnalysisFlag if bits >> f.value & 1]


class CauseBy(IntEnum):
    """Who produced a packet."""

    UNKNOWN = 0
    CALL = 1
    KERNEL = 2


class CauseSource(IntEnum):
    """Where a packet's cause came from (``cause.source`` in the JSON, by ``name.lower()``).

    INFERENCE: TCP/UDP rules on what the wire shows (any capture); CALLS: the recorded
    socket calls matched by time and sequence range; KERNEL: the kernel witness's
    account of the frame (its stack, drop and RST reason).
    """

    INFERENCE = 0
    CALLS = 1
    KERNEL = 2


class Side(IntEnum):
    """Which end of a stream: the client (active opener) or the server."""

    NONE = 0
    CLIENT = 1
    SERVER = 2


# --- per-packet view -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpOptions:
    """The TCP options tracer understands; ``None``/empty where absent."""

    mss: int | None = None
    wscale: int | None = None
    sack_permitted: bool = False
    sack_blocks: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None


@dataclass(frozen=True, slots=True)
class DecodeNote:
    """Why a frame was not fully decoded: catalogue key ``decode.<key>`` and its parameters.

    Core stores no sentences; ``tracer.i18n.explain.note_text`` renders one in a language.
    """

    key: str
    params: tuple[tuple[str, int | str], ...] = ()


@dataclass(frozen=True, slots=True)
class IcmpQuote:
    """The IP + transport header quoted inside an ICMP/ICMPv6 error."""

    proto: str
    src_ip: str
    dst_ip: str
    sport: int | None
    dport: int | None
    seq_raw: int | None = None


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame, decoded.

    ``no`` is 1-based in file order.  ``ts_ns`` is nanoseconds since the epoch.
    Transport fields are ``None`` when the frame has no such layer; ``proto`` is
    "tcp", "udp", "icmp", "icmpv6" or the name of what the frame is ("arp", ...).
    """

    no: int
    ts_ns: int
    interface: int
    linktype: int
    caplen: int
    wirelen: int
    proto: str
    ip_version: int | None
    src_ip: str | None
    dst_ip: str | None
    sport: int | None
    dport: int | None
    tcp_flags: int
    seq_raw: int | None
    ack_raw: int | None
    window: int | None
    payload_len: int
    options: TcpOptions | None
    icmp_type: int | None
    icmp_code: int | None
    icmp_quote: IcmpQuote | None
    comment: str | None = None

    @property
    def src(self) -> str:
        return endpoint_str(self.src_ip, self.sport)

    @property
    def dst(self) -> str:
        return endpoint_str(self.dst_ip, self.dport)

    @property
    def flags(self) -> str:
        return flags_str(self.tcp_flags)


def endpoint_str(ip: str | None, port: int | None) -> str:
    """``ip:port``, ``[ipv6]:port``, or the bare address where there is no port."""
    if ip is None:
        return ""
    if port is None or port < 0:
        return ip
    if ":" in ip:
        return f"[{ip}]:{port}"
    return f"{ip}:{port}"


# --- socket calls and kernel truth (filled by the live lab) ------------------------


@dataclass(frozen=True, slots=True)
class SourceLocation:
    file: str
    line: int
    code: str = ""


@dataclass(frozen=True, slots=True)
class SocketCall:
    """One recorded socket call.

    Timestamps are nanoseconds since the epoch on the packet clock.  ``errno`` is
    the symbolic name (``"ECONNREFUSED"``) when the call failed, else ``None``.
    ``local``/``remote`` are endpoint strings as in ``endpoint_str``.
    """

    id: int
    call: str
    side: str
    pid: int
    tid: int
    fd: int | None
    args: tuple[tuple[str, str], ...]
    result: str | None
    errno: str | None
    t_enter_ns: int
    t_exit_ns: int | None
    local: str | None = None
    remote: str | None = None
    proto: str | None = None
    process: str = ""
    source: SourceLocation | None = None

    @property
    def t_ns(self) -> int:
        """When the call's result was known: when it returned (else when it was made)."""
        return self.t_exit_ns if self.t_exit_ns is not None else self.t_enter_ns

    @property
    def error(self) -> str | None:
        """The errno the call failed with (connect_ex() returns it instead of raising)."""
        if self.errno is not None:
            return self.errno
        if self.call == "connect_ex" and self.result and self.result.startswith("E"):
            return self.result
        return None


@dataclass(frozen=True, slots=True)
class KernelSocketState:
    """A socket as the kernel reported it (inet_diag / ``ss``) at a moment."""

    t_ns: int
    host: str
    proto: str
    state: str
    local: str
    remote: str
    recv_q: int = 0
    send_q: int = 0
    label: str = ""


@dataclass(frozen=True, slots=True)
class TraceWarning:
    """Something the user must see: a truncated file, dropped packets, ...

    ``code`` is a stable snake_case name; ``message`` is English, ``message_zh``
    Simplified Chinese.  ``packet_no``/``offset``/``t_ns`` locate it where that applies.
    """

    code: str
    message: str
    message_zh: str
    packet_no: int | None = None
    offset: int | None = None
    t_ns: int | None = None  # when it happened, on the packet clock (live runs)


@dataclass(frozen=True)
class Cause:
    """Why a packet exists.  ``reason`` is a stable snake_case name."""

    by: CauseBy
    side: Side
    call: str | None
    reason: str
    inferred: bool
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """One TCP or UDP conversation, numbered like tshark's tcp.stream/udp.stream.

    ``a`` is the endpoint that sent the stream's first packet, ``b`` the other.
    ``client`` is the endpoint judged to be the client (active opener), or ``None``
    when the capture does not say.
    """

    index: int
    proto: str
    a: str
    b: str
    first_no: int
    last_no: int
    packets: int
    client: str | None = None


@dataclass(frozen=True)
class TraceMeta:
    """Where a trace came from: file format, interfaces, comments, free metadata."""

    source: str = ""
    file_format: str = ""
    section_comment: str | None = None
    interfaces: tuple[tuple[int, str], ...] = ()  # (linktype, name) per interface id
    extra: Mapping[str, str] = field(default_factory=dict)
