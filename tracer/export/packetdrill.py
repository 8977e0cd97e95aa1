"""One connection as a packetdrill-style script, from the point of view of one side.

The side under test (``side``: "server" or "client") is the machine packetdrill
would run: its recorded socket calls become syscall lines, the packets it sent
are outbound (``>``, what its kernel must send) and its peer's packets inbound
(``<``, what packetdrill injects).  As in packetdrill, sequence numbers are
relative (each side's SYN is 0: inbound seq and outbound ack count from the
peer's initial sequence number, outbound seq and inbound ack from the side under
test's), ``win`` is the raw window field and the first event is at time ``0``,
each later one ``+seconds`` after the one before it.

- TCP options are read from the captured header bytes, in their wire order (so
  the NOPs packetdrill compares byte for byte are kept); an option packetdrill has
  no word for makes an outbound packet's list ``<...>`` (not checked) and is left
  out of an inbound one, with a comment.  SACK blocks are relative like acks.
- A call the peer's packets arrived during (accept() waiting for a connection,
  recv() waiting for data, a blocking connect()) is written as packetdrill's
  blocking call, ``+START...END name(...)``, where both times count from the
  event before it; every other call as a non-blocking one at its entry time.
- Python's wrappers become the syscalls they make: sendall() → send(),
  connect_ex() → connect(), recv_into() → recv(), settimeout()/setblocking() →
  fcntl(F_SETFL).  File descriptors are renumbered from 3, lowest free first, as
  packetdrill's own process gets them; each call's comment gives the traced fd.
- Every line ends with a ``//`` comment saying why it is there (the packet's
  number in the capture and its cause, or the call's source line); a packet the
  receiving kernel dropped (the kernel witness's account) says so there too.

It is a starting point, not a tested script: addresses, timing tolerances and
options that depend on the kernel need review, which the header says.
"""

from __future__ import annotations

import errno as errno_mod
import os
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.model import ACK, PROTO_TCP, PROTO_UDP, AnalysisFlag, CauseBy, SocketCall, StreamInfo
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.errors import UsageError
from tracer.i18n import Words
from tracer.i18n.explain import label as reason_words
from tracer.ladder.kernel import KernelView, drop_text
from tracer.ladder.labels import flag_names
from tracer.ladder.streams import call_streams, caused_streams, lanes_of

MOD32 = 1 << 32

# tcpdump's flag letters in packetdrill's order; "." is ACK, "A" the AccECN bit (ex-NS).
_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
                 (0x40, "E"), (0x80, "W"), (0x100, "A"))

_ICMP4_TYPES = {0: "echo_reply", 3: "unreachable", 4: "source_quench", 5: "redirect", 8: "echo_request",
                11: "time_exceeded", 12: "parameter_problem"}
_ICMP4_UNREACH = {0: "net_unreachable", 1: "host_unreachable", 2: "protocol_unreachable",
                  3: "port_unreachable", 4: "frag_needed", 9: "net_prohibited", 10: "host_prohibited",
                  13: "packet_filtered"}
_ICMP6_TYPES = {1: "unreachable", 2: "packet_too_big", 3: "time_exceeded", 4: "parameter_problem",
                128: "echo_request", 129: "echo_reply"}
_ICMP6_UNREACH = {0: "no_route", 1: "admin_prohibited", 3: "address_unreachable", 4: "port_unreachable"}

_TEXT = Words("packetdrill.")  # the script's comments and errors: catalogue keys packetdrill.*


@dataclass(frozen=True)
class _Event:
    t_ns: int
    order: int  # ties: calls before packets, then capture / call order
    packet: int | None = None
    call: SocketCall | None = None


@dataclass
class _Fds:
    """The traced (pid, fd) -> script fd map: lowest free number from 3, as a process gets them."""

    live: dict[tuple[int, int], int] = field(default_factory=dict)

    def get(self, pid: int, fd: int | None) -> int | str:
        if fd is None or fd < 0:
            return "..."
        return self.live.get((pid, fd)) or self.new(pid, fd)

    def new(self, pid: int, fd: int) -> int:
        used = set(self.live.values())
        n = next(k for k in range(3, 3 + len(used) + 1) if k not in used)
        self.live[(pid, fd)] = n
        return n

    def free(self, pid: int, fd: int | None) -> None:
        if fd is not None:
            self.live.pop((pid, fd), None)


def render_packetdrill(trace: Trace, analysis: Analysis, side: str = "server", stream: int | None = None,
                       lang: str = "en") -> str:
    """The script (ends with a newline) for TCP stream ``stream`` (tshark's ``tcp.stream``)
    seen from ``side``; ``stream=None``: the first TCP stream, else the first UDP one.

    Raises ``UsageError`` when the capture has no such stream."""
    text = _TEXT[lang]
    info = _pick_stream(trace, analysis, stream)
    key = (PROTO_TCP if info.proto == "tcp" else PROTO_UDP, info.index)
    lanes = lanes_of(info)
    sut_left = side == "client"
    sut, peer = (lanes.left, lanes.right) if sut_left else (lanes.right, lanes.left)
    role, peer_role = (lanes.left_role, lanes.right_role) if sut_left else (lanes.right_role, lanes.left_role)
    rows = _stream_rows(trace, analysis, key)
    calls = _stream_calls(trace, analysis, key, side)
    t = trace.packets
    v6 = ":" in sut.rpartition(":")[0]
    out = [
        text["head"].format(source=trace.meta.source or "-"),
        text["stream"].format(proto=info.proto.upper(), index=info.index, role=text.get(role, role), sut=sut,
                              peer_role=text.get(peer_role, peer_role), peer=peer),
        text["arrows"], text["numbers"], text["fds"],
        text["run"].format(ipv="ipv6" if v6 else "ipv4", port_opt="bind_port" if side == "server" else
                           "connect_port", port=lanes.right.rpartition(":")[2]),
    ]
    if not calls:
        out.append(text["no_calls"].format(role=text[side] if side in ("client", "server") else side))
    out.append("")
    events = [_Event(c.t_enter_ns, 0, call=c) for c in calls]
    # Packets stay in capture order: one stamped earlier than the packet before it
    # (an odd capture) is taken to come at that packet's time.
    stamps = np.maximum.accumulate(t.ts_ns[rows]) if rows else np.zeros(0, dtype=np.int64)
    events += [_Event(int(ts), 1, packet=i) for i, ts in zip(rows, stamps.tolist(), strict=True)]
    events.sort(key=lambda e: (e.t_ns, e.order, e.packet if e.packet is not None else 0))
    outbound = {i: t.src_endpoint(i) == sut or _icmp_from(trace, i, sut) for i in rows}
    inbound_times = np.array(sorted(int(t.ts_ns[i]) for i in rows if not outbound[i]), dtype=np.int64)
    fds = _Fds()
    drops = KernelView.of(trace).drops  # frames the receiving kernel discarded: said in their comment
    prev: int | None = None  # the previous event's time in whole microseconds (packetdrill's unit)
    for ev in events:
        if ev.packet is not None and _elsewhere(trace, ev.packet, sut):
            what = _icmp(trace, analysis, ev.packet)
            out.append("// " + text["elsewhere"].format(no=ev.packet + 1, what=what))
            continue
        now = _us(ev.t_ns)
        when = _seconds(0) if prev is None else "+" + _seconds(now - prev)
        if ev.call is not None:
            c = ev.call
            end = c.t_exit_ns
            waited = end is not None and _waits(c) and bool(
                np.any((inbound_times > c.t_enter_ns) & (inbound_times < end)))
            if waited and end is not None:
                when += "..." + _seconds(_us(end) - (prev if prev is not None else now))
            out.append(_pad(f"{when} {_syscall(c, fds)}") + " // " + _call_comment(c, text))
        else:
            assert ev.packet is not None
            line, note = _packet(trace, analysis, ev.packet, outbound[ev.packet], text)
            drop = drops.get(ev.packet)
            out.append(_pad(f"{when} {line}") + " // " + _packet_comment(analysis, ev.packet, lang, text)
                       + (f"; {note}" if note else "") + (f"; ✗ {drop_text(drop, lang)}" if drop else ""))
        prev = now
    return "\n".join(out) + "\n"


# Calls that wait for the peer: accept() for a connection, connect() for the SYN-ACK,
# recv() for data.  Any other call that took this long with the peer's packets
# arriving meanwhile (send() on a full window) waited too; a shorter one merely
# overlapped its own packet's ACK.
_WAITING = frozenset({"accept", "connect", "connect_ex", "recv", "recv_into", "recvfrom", "recvfrom_into"})
_LONG_NS = 10_000_000


def _waits(c: SocketCall) -> bool:
    return c.call in _WAITING or (c.t_exit_ns is not None and c.t_exit_ns - c.t_enter_ns >= _LONG_NS)


def _us(t_ns: int) -> int:
    return (t_ns + 500) // 1000


def _seconds(us: int) -> str:
    """Whole microseconds as seconds with six decimals, exactly (no float rounding)."""
    us = max(0, us)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _pad(line: str) -> str:
    return line.ljust(56)


# --- which stream, which packets, which calls ---------------------------------------


def _pick_stream(trace: Trace, a: Analysis, stream: int | None) -> StreamInfo:
    what = trace.meta.source or "-"
    if stream is not None:
        if 0 <= stream < len(a.tcp_streams):
            return a.tcp_streams[stream]
        raise UsageError("packetdrill.no_stream", what=what, proto="TCP", index=stream,
                               count=len(a.tcp_streams))
    if a.tcp_streams:
        return a.tcp_streams[0]
    if a.udp_streams:
        return a.udp_streams[0]
    raise UsageError("packetdrill.nothing", what=what)


def _stream_rows(trace: Trace, a: Analysis, key: tuple[int, int]) -> list[int]:
    """The stream's packets, and the ICMP errors that quote its header, in capture order."""
    t = trace.packets
    proto, index = key
    mask = (a.stream == index) & ((t.proto == proto) | (t.icmp_type >= 0))
    want = "tcp" if proto == PROTO_TCP else "udp"
    return [int(i) for i in np.flatnonzero(mask)
            if int(t.proto[i]) == proto or ((q := t.icmp_quotes.get(int(i))) is not None and q.proto == want)]


def _stream_calls(trace: Trace, a: Analysis, key: tuple[int, int], side: str) -> list[SocketCall]:
    """The side's calls on the sockets of this stream (a listener's too), in entry order."""
    if not trace.calls:
        return []
    infos = {(PROTO_TCP, s.index): s for s in a.tcp_streams}
    infos.update({(PROTO_UDP, s.index): s for s in a.udp_streams})
    of = call_streams(trace.calls, infos, caused_streams(trace, a))
    alone = len(infos) == 1  # one conversation: a call tied to none is still about it
    keep = [c for c in trace.calls
            if c.side == side and (key in of.get(c.id, ()) or (alone and not of.get(c.id)))]
    return sorted(keep, key=lambda c: (c.t_enter_ns, c.id))


def _elsewhere(trace: Trace, i: int, sut: str) -> bool:
    """An ICMP error about the stream that a router sent to the other side (traceroute)."""
    t = trace.packets
    host = sut.rpartition(":")[0].strip("[]")
    return int(t.icmp_type[i]) >= 0 and host not in (t.address(int(t.src[i])), t.address(int(t.dst[i])))


def _icmp_from(trace: Trace, i: int, sut: str) -> bool:
    """Whether ICMP packet ``i`` comes from the side under test's address."""
    t = trace.packets
    if int(t.icmp_type[i]) < 0:
        return False
    return t.address(int(t.src[i])) == sut.rpartition(":")[0].strip("[]")


# --- packets --------------------------------------------------------------------------


def flag_letters(bits: int) -> str:
    """TCP flags as packetdrill writes them (``S.``, ``F.``, ``R``); ``-`` for none."""
    return "".join(letter for bit, letter in _FLAG_LETTERS if bits & bit) or "-"


def _packet(trace: Trace, a: Analysis, i: int, out: bool, text: dict[str, str]) -> tuple[str, str]:
    """The packet's line and a note on its options ("" when there is nothing to say)."""
    t = trace.packets
    arrow = ">" if out else "<"
    p = int(t.proto[i])
    if p == PROTO_UDP:
        return f"{arrow} udp ({int(t.payload_len[i])})", ""
    if p != PROTO_TCP:
        return f"{arrow} {_icmp(trace, a, i)}", ""
    bits = int(t.tcp_flags[i])
    seq = int(a.rel_seq[i]) % MOD32
    n = int(t.payload_len[i])
    line = f"{arrow} {flag_letters(bits)} {seq}:{seq + n}({n})"
    if bits & ACK:
        line += f" ack {int(a.rel_ack[i]) % MOD32}"
    line += f" win {int(t.window[i])}"
    opts, note = _options(trace, a, i, out, text)
    return (f"{line} {opts}" if opts else line), note


def _icmp(trace: Trace, a: Analysis, i: int) -> str:
    t = trace.packets
    v6 = int(t.proto[i]) == 3
    typ, code = int(t.icmp_type[i]), int(t.icmp_code[i])
    types = _ICMP6_TYPES if v6 else _ICMP4_TYPES
    name = types.get(typ, f"type_{typ}")
    codes = (_ICMP6_UNREACH if v6 else _ICMP4_UNREACH) if name == "unreachable" else {}
    line = f"icmp {name} {codes.get(code, f'code_{code}')}"
    quote = t.icmp_quotes.get(i)
    if quote is not None and quote.proto == "udp":
        # The datagram it quotes: the last one of the stream sent before it, the other way.
        before = [j for j in range(i - 1, -1, -1) if int(t.proto[j]) == PROTO_UDP
                  and int(a.stream[j]) == int(a.stream[i]) and t.address(int(t.dst[j])) == quote.dst_ip]
        if before:
            line += f" [udp ({int(t.payload_len[before[0]])})]"
    return line


def _options(trace: Trace, a: Analysis, i: int, out: bool, text: dict[str, str]) -> tuple[str, str]:
    """The packet's TCP options as packetdrill's ``<...>`` list (wire order) or "", and a note."""
    t = trace.packets
    raw = _raw_options(trace, i)
    sack_base = (int(t.ack[i]) - int(a.rel_ack[i])) % MOD32
    if raw is None:
        words = _rebuilt_options(trace, i, sack_base)
        if not words:
            return "", ""
        return ("<...>" if out else "<" + ",".join(words) + ">"), text["options_rebuilt"]
    words, unknown = _parse_options(raw, sack_base)
    if not unknown:
        return ("<" + ",".join(words) + ">" if words else ""), ""
    note = text["options_left"].format(kinds=", ".join(map(str, unknown)))
    if out:
        return "<...>", note
    size = sum(_word_size(w) for w in words)
    words += ["nop"] * (-size % 4)
    return ("<" + ",".join(words) + ">" if words else ""), note


def _raw_options(trace: Trace, i: int) -> bytes | None:
    """The option bytes of packet ``i``'s TCP header, found by its ports, seq and ack."""
    t = trace.packets
    try:
        frame = t.raw(i)
    except (IndexError, ValueError, TypeError):
        return None
    head = struct.pack("!HHII", int(t.sport[i]) & 0xFFFF, int(t.dport[i]) & 0xFFFF,
                       int(t.seq[i]) % MOD32, int(t.ack[i]) % MOD32)
    at = frame.find(head)
    if at < 0 or at + 13 > len(frame):
        return None
    end = at + (frame[at + 12] >> 4) * 4
    if end > len(frame) or end < at + 20:
        return None
    return frame[at + 20:end]


def _parse_options(raw: bytes, sack_base: int) -> tuple[list[str], list[int]]:
    """(packetdrill words, kinds it has no word for)."""
    words: list[str] = []
    unknown: list[int] = []
    k = 0
    while k < len(raw):
        kind = raw[k]
        if kind == 0:  # end of list: the rest is padding
            words += ["eol"] * (len(raw) - k)
            break
        if kind == 1:
            words.append("nop")
            k += 1
            continue
        size = raw[k + 1] if k + 1 < len(raw) else 0
        body = raw[k + 2:k + size]
        if size < 2 or k + size > len(raw):
            unknown.append(kind)
            break
        word = _option_word(kind, body, sack_base)
        if word is None:
            unknown.append(kind)
        else:
            words.append(word)
        k += size
    return words, unknown


def _option_word(kind: int, body: bytes, sack_base: int) -> str | None:
    if kind == 2 and len(body) == 2:
        return f"mss {struct.unpack('!H', body)[0]}"
    if kind == 3 and len(body) == 1:
        return f"wscale {body[0]}"
    if kind == 4 and not body:
        return "sackOK"
    if kind == 5 and body and len(body) % 8 == 0:
        edges = struct.unpack(f"!{len(body) // 4}I", body)
        return "sack " + " ".join(f"{(edges[j] - sack_base) % MOD32}:{(edges[j + 1] - sack_base) % MOD32}"
                                  for j in range(0, len(edges), 2))
    if kind == 8 and len(body) == 8:
        val, ecr = struct.unpack("!II", body)
        return f"TS val {val} ecr {ecr}"
    if kind == 19 and len(body) == 16:
        return f"md5 {body.hex()}"
    if kind == 34:
        return f"FO {body.hex()}".rstrip()
    if kind == 254 and body[:2] == b"\xf9\x89":
        return f"FOEXP {body[2:].hex()}".rstrip()
    return None


def _word_size(word: str) -> int:
    """Bytes an option word takes on the wire."""
    name, _, rest = word.partition(" ")
    sizes = {"nop": 1, "eol": 1, "mss": 4, "wscale": 3, "sackOK": 2, "TS": 10, "md5": 18}
    if name == "sack":
        return 2 + 8 * len(rest.split())
    if name in ("FO", "FOEXP"):
        return 2 + len(rest) // 2 + (2 if name == "FOEXP" else 0)
    return sizes[name]


def _rebuilt_options(trace: Trace, i: int, sack_base: int) -> list[str]:
    """Options from the decoded columns, in Linux's order, when the header bytes are missing."""
    t = trace.packets
    words: list[str] = []
    if int(t.mss[i]) >= 0:
        words.append(f"mss {int(t.mss[i])}")
    if bool(t.sack_perm[i]):
        words.append("sackOK")
    if int(t.ts_val[i]) >= 0:
        ts = f"TS val {int(t.ts_val[i])} ecr {max(0, int(t.ts_ecr[i]))}"
        words += [ts] if words else ["nop", "nop", ts]
    blocks = t.sack_blocks.get(i, ())
    if blocks:
        words += ["nop", "nop", "sack " + " ".join(f"{(lo - sack_base) % MOD32}:{(hi - sack_base) % MOD32}"
                                                  for lo, hi in blocks)]
    if int(t.wscale[i]) >= 0:
        words += ["nop", f"wscale {int(t.wscale[i])}"]
    size = sum(_word_size(w) for w in words)
    return words + ["nop"] * (-size % 4)


def _packet_comment(a: Analysis, i: int, lang: str, text: dict[str, str]) -> str:
    code = int(a.cause_reason[i])
    why = reason_words(REASONS[code] if 0 <= code < len(REASONS) else "unknown", lang)
    by = int(a.cause_by[i])
    call = int(a.cause_call[i])
    mark = "~" if bool(a.cause_inferred[i]) else ""
    if by == CauseBy.CALL and 0 < call < len(CALL_NAMES):
        who = f"{mark}{CALL_NAMES[call]}(): "
    elif by == CauseBy.KERNEL:
        who = f"{mark}{text['kernel']}: "
    else:
        who = ""
    bits = int(a.flags[i])
    names = flag_names(lang)
    flags = ", ".join(names[f] for f in AnalysisFlag if bits >> f.value & 1)
    return f"#{i + 1} {who}{why}" + (f" [{flags}]" if flags else "")


# --- socket calls ---------------------------------------------------------------------


def _arg(c: SocketCall, name: str) -> str | None:
    return next((v for k, v in c.args if k == name), None)


def _strerror(name: str) -> str:
    """The errno's message as packetdrill's note (words only: its grammar allows nothing else)."""
    code = getattr(errno_mod, name, None)
    words = re.sub(r"[^A-Za-z0-9_ ]+", " ", os.strerror(code) if isinstance(code, int) else name).split()
    return " ".join(words) or name


def _result(c: SocketCall, ok: str) -> str:
    """`` = RESULT`` or `` = -1 ERRNO (message)``; ``ok`` is what success returns."""
    err = c.error
    if err is not None:
        return f"-1 {err} ({_strerror(err)})"
    if c.t_exit_ns is None:
        return "..."
    return ok


def _count(c: SocketCall, default: str) -> str:
    r = (c.result or "").partition(" from ")[0]
    return r if r.isdigit() else default


def _new_fd(c: SocketCall, fds: _Fds) -> str:
    """The script's number for the fd that socket()/accept() returned."""
    if c.result and c.result.isdigit() and c.error is None:
        return str(fds.new(c.pid, int(c.result)))
    return "..."


def _syscall(c: SocketCall, fds: _Fds) -> str:
    """``name(args) = result`` for one recorded call, renumbering its fd."""
    name = c.call
    syscall = _arg(c, "syscall")
    if name == "socket":
        kind = _arg(c, "type") or "SOCK_STREAM"
        proto = "IPPROTO_UDP" if "DGRAM" in kind else "IPPROTO_TCP"
        return f"socket(..., {kind}, {proto}) = {_result(c, _new_fd(c, fds))}"
    fd = fds.get(c.pid, c.fd)
    if name == "close":
        fds.free(c.pid, c.fd)
        return f"close({fd}) = {_result(c, '0')}"
    if name == "accept":
        return f"{syscall or 'accept'}({fd}, ..., ...) = {_result(c, _new_fd(c, fds))}"
    if name in ("connect", "connect_ex"):
        return f"connect({fd}, ..., ...) = {_result(c, '0')}"
    if name == "bind":
        return f"bind({fd}, ..., ...) = {_result(c, '0')}"
    if name == "listen":
        return f"listen({fd}, {_arg(c, 'backlog') or 128}) = {_result(c, '0')}"
    if name in ("send", "sendall"):
        n = _arg(c, "len") or "..."
        if syscall == "write":
            return f"write({fd}, ..., {n}) = {_result(c, _count(c, n))}"
        return f"send({fd}, ..., {n}, 0) = {_result(c, _count(c, n))}"
    if name == "sendto":
        n = _arg(c, "len") or "..."
        return f"sendto({fd}, ..., {n}, 0, ..., ...) = {_result(c, _count(c, n))}"
    if name in ("recv", "recv_into"):
        size = _arg(c, "bufsize") or _arg(c, "nbytes") or _arg(c, "len") or "0"
        size = size if size != "0" else _count(c, "...")
        if syscall == "read":
            return f"read({fd}, ..., {size}) = {_result(c, _count(c, '...'))}"
        return f"recv({fd}, ..., {size}, 0) = {_result(c, _count(c, '...'))}"
    if name in ("recvfrom", "recvfrom_into"):
        size = _arg(c, "bufsize") or _arg(c, "nbytes") or "0"
        size = size if size != "0" else _count(c, "...")
        return f"recvfrom({fd}, ..., {size}, 0, ..., ...) = {_result(c, _count(c, '...'))}"
    if name == "shutdown":
        return f"shutdown({fd}, {_arg(c, 'how') or 'SHUT_RDWR'}) = {_result(c, '0')}"
    if name == "setsockopt":
        return f"setsockopt({fd}, {_arg(c, 'level')}, {_arg(c, 'option')}, {_sockopt_value(c)}) = " \
               f"{_result(c, '0')}"
    if name in ("getsockname", "getpeername"):
        return f"{name}({fd}, ..., ...) = {_result(c, '0')}"
    if name in ("settimeout", "setblocking"):
        value = _arg(c, "timeout") if name == "settimeout" else _arg(c, "blocking")
        blocking = value in ("None", "True")
        return f"fcntl({fd}, F_SETFL, {'O_RDWR' if blocking else 'O_RDWR|O_NONBLOCK'}) = {_result(c, '0')}"
    return f"{syscall or name}({fd}, ...) = {_result(c, _count(c, '0'))}"


def _sockopt_value(c: SocketCall) -> str:
    """``[1], 4`` for an int option, ``{onoff=1, linger=0}, 8`` for SO_LINGER's struct."""
    value = _arg(c, "value") or ""
    if value.lstrip("-").isdigit():
        return f"[{value}], 4"
    if value in ("True", "False"):
        return f"[{int(value == 'True')}], 4"
    m = re.fullmatch(r"b'(.*)'", value)
    if m and _arg(c, "option") == "SO_LINGER":
        try:
            raw = m.group(1).encode("latin-1").decode("unicode_escape").encode("latin-1")
        except (UnicodeError, ValueError):
            raw = b""
        if len(raw) == 8:
            onoff, linger = struct.unpack("=ii", raw)
            return f"{{onoff={onoff}, linger={linger}}}, 8"
    return "..., ..."


def _call_comment(c: SocketCall, text: dict[str, str]) -> str:
    parts = [f"{c.call}()"]
    if c.fd is not None and c.fd >= 0:
        parts.append(text["fd"].format(fd=c.fd))
    timed_connect = c.call in ("connect", "connect_ex") and _arg(c, "timeout") is not None
    if c.call in ("settimeout", "setblocking") or timed_connect:
        parts.append(text["nonblocking"].format(call=c.call))
    by = _arg(c, "by")
    if by:
        parts.append(text["exit_close"].format(by=by))
    if c.t_exit_ns is None:
        parts.append(text["no_return"])
    if c.source is not None:
        code = " ".join(c.source.code.split())
        parts.append(text["line"].format(line=c.source.line) + (f": {code}" if code else ""))
    return "; ".join(parts)
