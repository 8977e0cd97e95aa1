"""The kernel's own account of a live run: raw tracepoint records tied to captured frames.

The lab's witness (``tracer.lab.witness``) records ``KernelRecord`` values: each frame a
lab device queued (``net_dev_queue``, with the kernel stack that queued it), each drop
with its reason (``kfree_skb``), each RST's reason (``tcp_send_reset``), each TCP state
change (``inet_sock_set_state``) and the receiver's congestion figures (``tcp_probe``).
``account(packets, records, devices, ...)`` ties them to the captured frames and returns
a ``KernelAccount``: per packet its ``PacketOrigin`` (what sent it: a system call, a
timer, the receive path, the process's exit ...), its ``PacketDrop`` if the receiving
kernel discarded it, the RST's reason, and the ``TcpFigures``; and every state change.
The account is what the pcapng keeps (``tracer.pcap.tracer_block``), so a replay years
later shows it without root.

Frames are tied to ``net_dev_queue`` records per device, in order, by length (the
length there is the whole frame, link header included), each record used once and
never after its frame was captured.  On ``lo``, which every namespace has (the
tracepoint does not say which), other namespaces' frames are recorded too: there a
frame takes the unused record of its length queued nearest before its capture
(``_nearest``); the rest are counted as ``unmatched``.  Drops and ``tcp_probe`` name the skb: veth and ``lo``
hand the very skb they were given to the receiver, so the skb address ties them to the
frame queued last with that address.  The origin rules (``classify``) are tables of
kernel function names.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracer.core.model import RST
from tracer.core.table import PacketTable

# --- raw records ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KernelRecord:
    """One tracepoint hit as the witness read it: time on the packets' clock, the task it
    ran in (``tid``, ``comm``: for softirq and timers that is whoever was on the CPU),
    the event's fields as text, and the kernel stack (innermost first) if one was taken."""

    ts_ns: int
    cpu: int
    tid: int
    comm: str
    event: str
    fields: tuple[tuple[str, str], ...]
    stack: tuple[str, ...] = ()

    def field(self, name: str, default: str = "") -> str:
        for k, v in self.fields:
            if k == name:
                return v
        return default


# --- the account ------------------------------------------------------------------

# PacketOrigin.kind values (stable: they are in the JSON).
ORIGIN_KINDS = ("call", "exit", "timer", "receive", "unknown")


@dataclass(frozen=True, slots=True)
class PacketOrigin:
    """What sent one captured frame, as the kernel's stack says.

    ``kind``: ``call`` (a system call of ``tid``: ``what`` is its name, e.g. ``connect``,
    ``sendto``, ``close``), ``exit`` (the process exited and the kernel closed its socket),
    ``timer`` (``what``: ``delayed_ack``, ``retransmit``, ``probe``, ``keepalive``,
    ``synack``, ``pacing``, ``tsq``), ``receive`` (the kernel answering or releasing
    data as a segment arrived: ``what`` is ``tcp``, ``udp`` ...), or ``unknown``.
    ``action`` is what the innermost TCP/UDP function did (``ACTIONS``): ``syn``,
    ``synack``, ``ack``, ``data``, ``fin``, ``rst``, ``rst_reply``, ``ack_reply``,
    ``retransmit``, ``loss_probe``, ``window_probe``, ``datagram``, ``icmp`` ...
    ``stack`` holds the kernel functions from the innermost TCP/UDP/IP function outward.
    """

    packet_no: int
    kind: str
    what: str
    action: str
    tid: int
    process: str
    stack: tuple[str, ...]
    t_ns: int = 0  # when the kernel queued it


@dataclass(frozen=True, slots=True)
class PacketDrop:
    """The receiving kernel discarded this frame: ``reason`` is its ``skb_drop_reason``
    name (``NETFILTER_DROP``, ``TCP_LISTEN_OVERFLOW`` ...), ``where`` the function."""

    packet_no: int
    reason: str
    where: str
    t_ns: int = 0


@dataclass(frozen=True, slots=True)
class PacketReset:
    """The kernel's reason for sending this RST (``tcp_send_reset``: ``NO_SOCKET``,
    ``TCP_ABORT_ON_DATA`` ...) and the sending socket's state then."""

    packet_no: int
    reason: str
    state: str


@dataclass(frozen=True, slots=True)
class TcpFigures:
    """The receiving socket's figures as this segment arrived (``tcp_probe``)."""

    packet_no: int
    snd_cwnd: int
    ssthresh: int
    srtt_us: int
    snd_wnd: int
    rcv_wnd: int
    snd_nxt: int
    snd_una: int


@dataclass(frozen=True, slots=True)
class KernelStateChange:
    """One TCP socket's state change, from ``inet_sock_set_state``.

    ``local``/``remote`` are endpoint strings (a listener's remote is ``0.0.0.0:0``, so
    the listener and its children are told apart: a child is another socket, created in
    ``SYN_RECEIVED``, and the listener itself stays in ``LISTEN``); ``old``/``new`` are
    TcpState names.  ``sock`` is the kernel's socket address where the record gave one
    (the text form of this tracepoint does not: then "").
    """

    t_ns: int
    sock: str
    local: str
    remote: str
    old: str
    new: str


@dataclass(frozen=True)
class KernelAccount:
    """Everything the witness tied to a run (see the module docstring).

    ``frames_queued``: ``net_dev_queue`` records on the lab's devices; ``unmatched``: of
    those, how many no captured frame took; ``overrun``: events the ring buffer lost.
    """

    origins: tuple[PacketOrigin, ...] = ()
    drops: tuple[PacketDrop, ...] = ()
    resets: tuple[PacketReset, ...] = ()
    figures: tuple[TcpFigures, ...] = ()
    states: tuple[KernelStateChange, ...] = ()
    frames_queued: int = 0
    unmatched: int = 0
    overrun: int = 0

    def origin_of(self) -> dict[int, PacketOrigin]:
        return {o.packet_no: o for o in self.origins}


# --- origin rules ---------------------------------------------------------------------

# The innermost function that says what the frame is (first hit, innermost outward).
ACTIONS: Mapping[str, str] = {
    "tcp_connect": "syn",
    "tcp_v4_send_synack": "synack",
    "tcp_v6_send_synack": "synack",
    "tcp_send_synack": "synack",
    "tcp_send_loss_probe": "loss_probe",
    "tcp_xmit_probe_skb": "window_probe",
    "tcp_write_wakeup": "window_probe",
    "tcp_send_probe0": "window_probe",
    "__tcp_retransmit_skb": "retransmit",
    "tcp_retransmit_skb": "retransmit",
    "tcp_send_fin": "fin",
    "tcp_send_active_reset": "rst",
    "tcp_v4_send_reset": "rst_reply",
    "tcp_v6_send_reset": "rst_reply",
    "tcp_v4_send_ack": "ack_reply",
    "tcp_v6_send_ack": "ack_reply",
    "tcp_send_ack": "ack",
    "__tcp_send_ack": "ack",
    "tcp_write_xmit": "data",
    "udp_send_skb": "datagram",
    "udp_v6_send_skb": "datagram",
    "__icmp_send": "icmp",
    "icmp6_send": "icmp",
    "arp_send_dst": "arp",
    "ndisc_send_skb": "ndisc",
}

# Functions that say who ran the action, innermost outward (first hit wins, after the action).
TIMERS: Mapping[str, str] = {
    "tcp_delack_timer_handler": "delayed_ack",
    "tcp_delack_timer": "delayed_ack",
    "tcp_retransmit_timer": "retransmit",
    "tcp_probe_timer": "probe",
    "tcp_keepalive_timer": "keepalive",
    "reqsk_timer_handler": "synack",
    "tcp_write_timer_handler": "retransmit",
    "tcp_write_timer": "retransmit",
    "tcp_pace_kick": "pacing",
    "tcp_tsq_handler": "tsq",
    "tcp_tasklet_func": "tsq",
    "tw_timer_handler": "time_wait",
}
RECEIVE: Mapping[str, str] = {
    "tcp_rcv_established": "tcp",
    "tcp_rcv_state_process": "tcp",
    "tcp_v4_do_rcv": "tcp",
    "tcp_v6_do_rcv": "tcp",
    "tcp_v4_rcv": "tcp",
    "tcp_v6_rcv": "tcp",
    "tcp_check_req": "tcp",
    "tcp_conn_request": "tcp",
    "__udp4_lib_rcv": "udp",
    "__udp6_lib_rcv": "udp",
    "icmp_rcv": "icmp",
    "ip_local_deliver_finish": "ip",
    "__netif_receive_skb_one_core": "ip",
    "net_rx_action": "ip",
}
# An outer action that says more than the inner one (a loss probe retransmits a segment).
_OUTRANKS: Mapping[str, tuple[str, ...]] = {
    "retransmit": ("loss_probe", "window_probe"),
    "data": ("loss_probe",),
}
EXIT = frozenset({"do_exit", "do_group_exit"})
CLOSE_WORK = frozenset({"__fput", "task_work_run", "____fput"})
_PREFIXES = ("__x64_sys_", "__ia32_sys_", "__arm64_sys_", "__se_sys_", "__do_sys_", "ksys_", "__sys_")
# Stack frames below the protocol (device and IP output), dropped from ``PacketOrigin.stack``.
_BELOW = frozenset({
    "trace_event_raw_event_net_dev_template", "__dev_queue_xmit", "dev_queue_xmit", "ip_finish_output2",
    "__ip_finish_output", "ip_finish_output", "ip_output", "ip_local_out", "__ip_local_out",
    "__ip_queue_xmit", "ip_queue_xmit", "ip6_finish_output2", "__ip6_finish_output", "ip6_finish_output",
    "ip6_output",
    "ip6_xmit", "inet6_csk_xmit", "neigh_hh_output", "neigh_resolve_output", "ip_build_and_send_pkt",
    "ip_send_skb", "ip_push_pending_frames", "ip6_send_skb", "ip6_push_pending_frames", "ip6_local_out",
    "dst_output", "nf_hook_slow", "sch_direct_xmit", "__qdisc_run", "__dev_xmit_skb", "validate_xmit_skb",
})


def syscall_name(fn: str) -> str | None:
    """``__x64_sys_sendto`` -> ``sendto``; None if ``fn`` is not a system call's entry."""
    for p in _PREFIXES[:3]:
        if fn.startswith(p):
            return fn[len(p):]
    return None


def classify(stack: Sequence[str]) -> tuple[str, str, str, tuple[str, ...]]:
    """(kind, what, action, trimmed stack) of a ``net_dev_queue`` stack, innermost first."""
    i = 0
    while i < len(stack) and (stack[i] in _BELOW or stack[i].startswith("trace_")):
        i += 1
    trimmed = tuple(stack[i:])
    action = "unknown"
    # Innermost outward: the first action names what was sent; the first timer, receive
    # path, exit or system call names who ran it (a receive path inside another task's
    # system call, e.g. the peer's segment processed as the sender's send() returned, is
    # the receive path: it is met first).
    for fn in trimmed:
        if fn in ACTIONS and (action == "unknown" or ACTIONS[fn] in _OUTRANKS.get(action, ())):
            action = ACTIONS[fn]
        if fn in TIMERS:
            # The write timer runs retransmissions, loss probes and window probes alike.
            what = {"loss_probe": "loss_probe", "window_probe": "probe"}.get(action, TIMERS[fn])
            return "timer", what, action, trimmed
        if fn in RECEIVE:
            return "receive", RECEIVE[fn], action, trimmed
        if fn in EXIT:
            return "exit", "exit", action, trimmed
        name = syscall_name(fn)
        if name is not None:
            return "call", name, action, trimmed
        if fn in CLOSE_WORK:
            # The socket's last file reference went away on the way out of a system call
            # (close()) or of the process (exit): the outer frames tell which.
            if any(f in EXIT for f in trimmed):
                return "exit", "exit", action, trimmed
            return "call", "close", action, trimmed
    return "unknown", "", action, trimmed


# --- tying records to frames ---------------------------------------------------------

_SLACK_NS = 2_000  # the trace clock prints microseconds: a record may read up to 1 µs late
# kfree_skb reasons that are not drops: a plain free, and a sender purging its own queue.
_NOT_DROPS = frozenset({"NOT_SPECIFIED", "QUEUE_PURGE", ""})
_ETHERTYPE = {4: "2048", 6: "34525"}  # kfree_skb's protocol field (decimal) per IP version
_RX_WINDOW_NS = 50_000_000  # a receive-path record comes within this of the frame's receipt
# Devices whose name every namespace has: their records include other namespaces' frames.
SHARED_DEVICES = frozenset({"lo"})
_SHARED_WINDOW_NS = 5_000_000  # a frame on lo is captured within this of being queued


def _tcp_state(name: str) -> str:
    """``TCP_SYN_RECV`` -> ``SYN_RECEIVED`` (tracer's TcpState names)."""
    s = name.removeprefix("TCP_")
    return {"SYN_RECV": "SYN_RECEIVED", "FIN_WAIT1": "FIN_WAIT_1", "FIN_WAIT2": "FIN_WAIT_2",
            "CLOSE": "CLOSED", "NEW_SYN_RECV": "NEW_SYN_RECEIVED"}.get(s, s)


def _endpoint(addr: str, port: str) -> str:
    if addr.startswith("::ffff:"):
        addr = addr[7:]
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _isp(text: str) -> str:
    """``%pISpc`` text (``10.0.0.1:80``, ``[fd00::1]:80``) as tracer's endpoint string."""
    if text.startswith("[") and "]:" in text:
        addr, port = text[1:].split("]:", 1)
        return _endpoint(addr, port)
    addr, _, port = text.rpartition(":")
    return _endpoint(addr, port)


def account(
    packets: PacketTable,
    records: Sequence[KernelRecord],
    device_of: Sequence[str],
    *,
    addresses: frozenset[str] = frozenset(),
    overrun: int = 0,
) -> KernelAccount:
    """Tie ``records`` to the frames of ``packets`` (see the module docstring).

    ``device_of[i]``: the device that queued frame ``i`` (its sender's), or "" if none of
    the lab's.  ``addresses``: the lab's IP addresses, to keep only the lab's sockets'
    state changes (all sockets when empty).
    """
    n = len(packets)
    queued: dict[str, list[int]] = {}
    for k, r in enumerate(records):
        if r.event == "net_dev_queue":
            queued.setdefault(r.field("dev"), []).append(k)
    frame_rec = [-1] * n
    taken: set[int] = set()
    cursor = dict.fromkeys(queued, 0)
    times = {dev: [records[k].ts_ns for k in lst] for dev, lst in queued.items() if dev in SHARED_DEVICES}
    for i in range(n):
        dev = device_of[i]
        lst = queued.get(dev)
        if not lst:
            continue
        ts, size = int(packets.ts_ns[i]), int(packets.wirelen[i])
        if dev in SHARED_DEVICES:
            k = _nearest(records, lst, times[dev], ts, size, taken)
            if k >= 0:
                frame_rec[i] = k
                taken.add(k)
            continue
        j = cursor[dev]
        while j < len(lst) and lst[j] in taken:
            j += 1
        cursor[dev] = j
        # The first unused record of this device with the frame's length, queued no later
        # than the frame was captured.
        while j < len(lst):
            rec = records[lst[j]]
            if rec.ts_ns > ts + _SLACK_NS:
                break
            if lst[j] not in taken and int(rec.field("len", "-1")) == size:
                frame_rec[i] = lst[j]
                taken.add(lst[j])
                break
            j += 1
    origins = []
    for i, k in enumerate(frame_rec):
        if k < 0:
            continue
        r = records[k]
        kind, what, action, stack = classify(r.stack)
        origins.append(PacketOrigin(i + 1, kind, what, action, r.tid, r.comm, stack, r.ts_ns))

    # A frame's skb reaches the peer's device as the same skb (veth and lo pass it on):
    # its receive record has the queue record's address.  A drop (kfree_skb) or a
    # tcp_probe names the skb by address too, but skb memory is reused at once and
    # freed without a tracepoint where TCP consumes it, so an address alone is not an
    # identity: a record is the frame's only on the CPU that received it, within
    # ``_RX_WINDOW_NS`` of that, and before the address was seen on a lab device again.
    skb_of = {i: records[k].field("skbaddr") for i, k in enumerate(frame_rec) if k >= 0}
    rx_of: dict[int, KernelRecord] = {}
    seen_at: dict[str, list[int]] = {}  # skbaddr -> times it was queued or received on a lab device
    pending: dict[str, list[int]] = {}  # skbaddr -> frames queued with it, not yet received
    for r in records:
        if r.event in ("net_dev_queue", "netif_receive_skb"):
            seen_at.setdefault(r.field("skbaddr"), []).append(r.ts_ns)
    order = sorted(skb_of, key=lambda i: records[frame_rec[i]].ts_ns)
    for i in order:
        pending.setdefault(skb_of[i], []).append(i)
    for r in records:
        if r.event == "netif_receive_skb":
            q = pending.get(r.field("skbaddr"))
            if q and records[frame_rec[q[0]]].ts_ns <= r.ts_ns + _SLACK_NS:
                rx_of[q.pop(0)] = r
    by_rx: dict[str, list[int]] = {}
    for i, r in rx_of.items():
        by_rx.setdefault(r.field("skbaddr"), []).append(i)

    def frame_of(rec: KernelRecord) -> int:
        for i in by_rx.get(rec.field("skbaddr"), ()):
            rx = rx_of[i]
            if rx.cpu != rec.cpu or not rx.ts_ns <= rec.ts_ns <= rx.ts_ns + _RX_WINDOW_NS:
                continue
            if not any(rx.ts_ns < t <= rec.ts_ns for t in seen_at.get(rec.field("skbaddr"), ())):
                return i
        return -1

    drops, figures, states = [], [], []
    dropped: set[int] = set()
    resets_raw: list[KernelRecord] = []
    for r in records:
        if r.event == "kfree_skb":
            i = frame_of(r)
            reason = r.field("reason")
            # An address reused by another skb (a lab host's own output, its quiet rules
            # dropping IPv6 chatter) must not pass for the frame consumed a moment before:
            # the drop names the frame's network protocol and its stack is a receive path's.
            if i >= 0 and (r.field("protocol") != _ETHERTYPE.get(int(packets.ip_version[i]), "")
                           or not _received(r.stack)):
                i = -1
            if i >= 0 and reason not in _NOT_DROPS and i not in dropped:
                dropped.add(i)
                drops.append(PacketDrop(i + 1, reason, r.field("location").split("+", 1)[0], r.ts_ns))
        elif r.event == "tcp_probe":
            i = frame_of(r)
            # The probing socket is the frame's receiver: its local end is the frame's destination.
            if i >= 0 and (_isp(r.field("src")), _isp(r.field("dest"))) == (
                    packets.dst_endpoint(i), packets.src_endpoint(i)):
                num = [int(r.field(f, "0")) for f in ("snd_cwnd", "ssthresh", "srtt", "snd_wnd", "rcv_wnd")]
                seq = [int(r.field(f, "0"), 16) for f in ("snd_nxt", "snd_una")]
                figures.append(TcpFigures(i + 1, *num, *seq))
        elif r.event == "inet_sock_set_state":
            if not _lab_socket(r, addresses):
                continue
            v6 = r.field("family") == "AF_INET6"
            sa = r.field("saddrv6" if v6 else "saddr")
            da = r.field("daddrv6" if v6 else "daddr")
            states.append(KernelStateChange(
                r.ts_ns, r.field("skaddr"), _endpoint(sa, r.field("sport")), _endpoint(da, r.field("dport")),
                _tcp_state(r.field("oldstate")), _tcp_state(r.field("newstate"))))
        elif r.event == "tcp_send_reset":
            resets_raw.append(r)
    resets = _resets(packets, resets_raw, origins)
    return KernelAccount(
        origins=tuple(origins), drops=tuple(drops), resets=tuple(resets), figures=tuple(figures),
        states=tuple(states), frames_queued=sum(len(v) for v in queued.values()),
        unmatched=sum(len(v) for v in queued.values()) - len(taken), overrun=overrun)


def _nearest(records: Sequence[KernelRecord], lst: Sequence[int], times: Sequence[int], ts: int, size: int,
             taken: set[int]) -> int:
    """On a device other namespaces share (``lo``): the unused record of this length queued
    last before the frame was captured, within ``_SHARED_WINDOW_NS``; -1 if none.  (The
    capture's timestamp is taken as the frame is queued, so the nearest is the frame's own;
    the first unused one could be another namespace's, long before.)"""
    j = bisect.bisect_right(times, ts + _SLACK_NS) - 1
    while j >= 0 and times[j] >= ts - _SHARED_WINDOW_NS:
        k = lst[j]
        if k not in taken and int(records[k].field("len", "-1")) == size:
            return k
        j -= 1
    return -1


# Innermost outward, the first of these on a drop's stack says whether the skb was being
# received or sent.
_RX_PATH = frozenset({
    "__netif_receive_skb_core", "__netif_receive_skb_one_core", "__netif_receive_skb", "process_backlog",
    "netif_receive_skb", "ip_rcv", "ip_rcv_finish", "ip6_rcv", "ip6_rcv_finish", "ip_local_deliver",
    "ip_local_deliver_finish", "ip6_input", "ip6_input_finish", "ip_protocol_deliver_rcu",
    "ip6_protocol_deliver_rcu", "tcp_v4_rcv", "tcp_v6_rcv", "tcp_v4_do_rcv", "tcp_v6_do_rcv",
    "tcp_rcv_established", "tcp_rcv_state_process", "__release_sock", "udp_rcv", "udpv6_rcv",
    "__udp4_lib_rcv", "__udp6_lib_rcv",
})
_TX_PATH = frozenset({
    "ip_output", "ip6_output", "__ip_local_out", "__ip6_local_out", "ip_local_out", "ip6_local_out",
    "ip_finish_output", "ip_finish_output2", "ip6_finish_output", "ip6_finish_output2", "__dev_queue_xmit",
    "ip_queue_xmit", "__ip_queue_xmit", "inet6_csk_xmit", "ip6_xmit", "mld_sendpack", "ndisc_send_skb",
})


def _received(stack: Sequence[str]) -> bool:
    """Whether a drop's kernel stack (innermost first) is the receive path's."""
    for fn in stack:
        if fn in _RX_PATH:
            return True
        if fn in _TX_PATH:
            return False
    return False


def _lab_socket(r: KernelRecord, addresses: frozenset[str]) -> bool:
    """Whether an ``inet_sock_set_state`` record is of a socket bound to a lab address."""
    if not addresses:
        return True
    v6 = r.field("family") == "AF_INET6"
    return r.field("saddrv6" if v6 else "saddr").removeprefix("::ffff:") in addresses


def _resets(packets: PacketTable, raw: Sequence[KernelRecord],
            origins: Sequence[PacketOrigin]) -> list[PacketReset]:
    """Each RST frame with the ``tcp_send_reset`` record for its endpoints, just before it."""
    out = []
    used: set[int] = set()
    rst_rows = [o.packet_no - 1 for o in origins if int(packets.tcp_flags[o.packet_no - 1]) & RST]
    for i in rst_rows:
        src, dst, ts = packets.src_endpoint(i), packets.dst_endpoint(i), int(packets.ts_ns[i])
        best = -1
        for k, r in enumerate(raw):
            if k in used or r.ts_ns > ts + _SLACK_NS:
                continue
            s, d = _isp(r.field("src")), _isp(r.field("dest"))
            # An answering RST's record names the segment it answers (reversed endpoints).
            if (s, d) in ((src, dst), (dst, src)):
                best = k
        if best >= 0:
            used.add(best)
            r = raw[best]
            out.append(PacketReset(i + 1, r.field("reason"), _tcp_state(r.field("state"))))
    return out


# --- drops without a tracepoint ---------------------------------------------------------

LISTEN_OVERFLOW = "TCP_LISTEN_OVERFLOW"
_ANY_REMOTE = ("0.0.0.0:0", "[::]:0")


def _listening(k: KernelAccount, endpoint: str, t_ns: int) -> bool:
    """Whether a listener bound to ``endpoint`` (or its port on any address) was in LISTEN at ``t_ns``."""
    port = endpoint.rpartition(":")[2]
    names = (endpoint, f"0.0.0.0:{port}", f"[::]:{port}")
    state = ""
    for c in k.states:  # by time
        if c.t_ns > t_ns:
            break
        if c.remote in _ANY_REMOTE and c.local in names:
            state = c.new
    return state == "LISTEN"


def unanswered_syns(packets: PacketTable, k: KernelAccount) -> list[int]:
    """Rows of SYNs sent to a socket in LISTEN that got no answer (no SYN-ACK, no RST from it
    before the next SYN of the same connection) and no recorded drop."""
    from tracer.core.model import ACK, RST, SYN

    flags = packets.tcp_flags
    dropped = {d.packet_no - 1 for d in k.drops}
    syns = [i for i in range(len(packets)) if int(flags[i]) & (SYN | ACK) == SYN and i not in dropped]
    out = []
    for n, i in enumerate(syns):
        src, dst = packets.src_endpoint(i), packets.dst_endpoint(i)
        if not _listening(k, dst, int(packets.ts_ns[i])):
            continue
        nxt = next((j for j in syns[n + 1:] if packets.src_endpoint(j) == src
                    and packets.dst_endpoint(j) == dst), len(packets))
        answered = any(int(flags[j]) & (SYN | RST) and packets.src_endpoint(j) == dst
                       and packets.dst_endpoint(j) == src for j in range(i + 1, nxt))
        if not answered:
            out.append(i)
    return out


def listen_overflow_drops(packets: PacketTable, k: KernelAccount,
                          overflows: int) -> tuple[KernelAccount, int]:
    """The account with the SYNs a full accept queue dropped, and how many SYNs went unanswered.

    The kernel drops such a SYN without a ``kfree_skb`` reason and counts it in
    ``TcpExt.ListenOverflows`` (``overflows``: its change over the run in the lab's
    namespaces).  The unanswered SYNs to a listener are marked
    ``PacketDrop(reason=TCP_LISTEN_OVERFLOW, where=tcp_conn_request)`` only when their
    number is the counter's: evidence, not a guess.  Otherwise the account is unchanged
    (the caller warns that the counts disagree)."""
    rows = unanswered_syns(packets, k)
    if not rows or len(rows) != overflows:
        return k, len(rows)
    new = [PacketDrop(i + 1, LISTEN_OVERFLOW, "tcp_conn_request", int(packets.ts_ns[i])) for i in rows]
    drops = tuple(sorted((*k.drops, *new), key=lambda d: d.packet_no))
    return dataclasses.replace(k, drops=drops), len(rows)
