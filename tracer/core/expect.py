"""Expected packet/cause sequences: a compact notation, and a matcher with a diff.

A scenario states what its run must show, one line per packet (in the spirit of
packetdrill scripts); ``tracer run --check`` and the catalogue tests match it
against the real run.  Notation (``#`` starts a comment; columns are free)::

    c > s  S                connect()              a packet: sender > receiver, flags, cause
    s > c  S.               kernel:listen_queue_synack
    c > s  .                kernel                 any reason, as long as the kernel sent it
    s      accept()                                a call row: side, call(), optional result
    c > s  P?.  len=6       sendall()              P? = PSH or not; len=, len>0
    ...                                            any packets (as few as possible)
    c > s  S  x2+  dt>=0.8  kernel:syn_retransmission
    s > c  icmp  kernel:icmp_port_unreachable
    c      recv() = ECONNREFUSED
    s      recv() = 0  later                      returns after the packet above, maybe after more

- Sender/receiver: ``c`` (client), ``s`` (server) or ``*``.  The server is the end
  whose port is the scenario's ``PORT`` (for an ICMP error: the host the quoted
  datagram was sent to).
- Flags in tcpdump's letters: ``S`` SYN, ``F`` FIN, ``R`` RST, ``P`` PSH, ``U`` URG,
  ``E`` ECE, ``W`` CWR, ``.`` ACK; a letter followed by ``?`` may or may not be set,
  every other flag must be exactly as written; ``*`` any flags.  ``udp``, ``icmp``,
  ``icmpv6`` (or any protocol name tracer gives, spaces as ``-``) for other protocols.
- Cause: ``name()`` (the recorded call that made it, or that queued the bytes the
  kernel sent later), ``call`` (any call), ``kernel`` or ``kernel:REASON`` (a reason
  name of ``tracer.core.reasons``: the kernel's, or the wire rules' ``inferred_reason``
  where the kernel witness gave another), ``*`` or nothing (any cause).
- Extras: ``len=N``, ``len>0``, ``win=0``, ``ip=4``/``ip=6``, ``stream=N`` (tshark's
  tcp.stream/udp.stream), ``[flag]`` (a tshark analysis flag that
  must be set, e.g. ``[retransmission]``, ``[dup_ack]``; ``[-flag]`` must not be),
  ``c=STATE``/``s=STATE`` (that end's TCP state after the packet, e.g.
  ``c=TIME-WAIT``), ``xN``, ``xN+``, ``xN-M`` (repeat), ``dt>=T``/``dt<=T``
  (seconds since the previous matched packet).
- Packets are matched strictly, in order, every one (``...`` skips any number).
  Call lines are matched in order among the recorded calls, each after the packet
  line above it and before the packet line below it (``later``: any time after the
  one above); calls that are not written down are ignored.

Pure: the core's data in, a ``Match`` out; ``describe`` writes a trace's packets
in the notation (a starting point for a new scenario's expectation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP, AnalysisFlag, CauseBy, SocketCall, TcpState, rfc_name
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace

_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40, "W": 0x80}
_LETTERS = "SFRPUEW."  # the order describe() writes them in
_STATES = {st.name.replace("_", "-"): st for st in TcpState} | {st.name: st for st in TcpState}
_FLAGS = {f.json_name: f for f in AnalysisFlag}


class ExpectError(ValueError):
    """A line of an expectation that does not parse (line number and why)."""


@dataclass(frozen=True)
class PacketLine:
    lineno: int
    text: str
    sender: str  # "c", "s" or "*"
    proto: str  # "tcp", "udp", "icmp", "icmpv6" or "*"
    must: int = 0  # TCP flag bits that must be set
    may: int = 0  # bits that may be set
    any_flags: bool = False
    cause: str = "*"  # "*", "call", "kernel", "kernel:REASON" or a call name
    length: str | None = None  # "=N", ">0"
    win: int | None = None
    ip: int | None = None  # 4 or 6
    stream: int | None = None  # tcp.stream / udp.stream index
    flags_set: tuple[AnalysisFlag, ...] = ()
    flags_unset: tuple[AnalysisFlag, ...] = ()
    states: tuple[tuple[str, TcpState], ...] = ()
    lo: int = 1
    hi: int | None = 1  # None: no upper bound
    dt_min: float | None = None
    dt_max: float | None = None


@dataclass(frozen=True)
class CallLine:
    lineno: int
    text: str
    side: str  # "c", "s" or "*"
    call: str
    result: str | None = None  # an errno name, a value, ">0" or None for any
    later: bool = False  # may return after the packets of the lines below it too


@dataclass(frozen=True)
class AnyLine:
    lineno: int
    text: str = "..."


Line = PacketLine | CallLine | AnyLine


def parse(text: str) -> list[Line]:
    """The lines of an expectation; ``ExpectError`` names the first bad one."""
    out: list[Line] = []
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            out.append(_parse_line(no, line))
        except ExpectError as e:
            raise ExpectError(f"line {no}: {e}: {line}") from None
    return out


def _parse_line(no: int, line: str) -> Line:
    if line == "...":
        return AnyLine(no)
    tok = line.split()
    if tok[0] not in ("c", "s", "*"):
        raise ExpectError("a line starts with c, s, * or is ...")
    if len(tok) >= 2 and tok[1] == ">":
        return _packet_line(no, line, tok)
    usage = "a call line is: SIDE name() [= RESULT] [later]"
    later = tok[-1] == "later"
    if later:
        tok = tok[:-1]
    if len(tok) < 2 or not tok[1].endswith("()"):
        raise ExpectError(usage)
    result = None
    if len(tok) == 4 and tok[2] == "=":
        result = tok[3]
    elif len(tok) != 2:
        raise ExpectError(usage)
    return CallLine(no, line, tok[0], tok[1][:-2], result, later)


def _packet_line(no: int, line: str, tok: list[str]) -> PacketLine:
    if len(tok) < 4 or tok[2] not in ("c", "s", "*"):
        raise ExpectError("a packet line is: SENDER > RECEIVER FLAGS [extras] [cause]")
    kw: dict[str, object] = {"lineno": no, "text": line, "sender": tok[0], "proto": "tcp"}
    what = tok[3]
    if re.fullmatch(r"[a-z][a-z0-9\-]*", what):
        kw["proto"] = what  # udp, icmp, icmpv6, or any other protocol tracer names (arp, ...)
    elif what == "*":
        kw["any_flags"] = True
        kw["proto"] = "*"
    else:
        must = may = 0
        i = 0
        while i < len(what):
            ch = what[i]
            if ch not in _FLAG_BITS:
                raise ExpectError(f"unknown flag letter {ch!r}")
            optional = i + 1 < len(what) and what[i + 1] == "?"
            if optional:
                may |= _FLAG_BITS[ch]
                i += 2
            else:
                must |= _FLAG_BITS[ch]
                i += 1
        kw["must"], kw["may"] = must, may
    flags_set: list[AnalysisFlag] = []
    flags_unset: list[AnalysisFlag] = []
    states: list[tuple[str, TcpState]] = []
    for t in tok[4:]:
        if t.startswith("len="):
            if not t[4:].isdigit():
                raise ExpectError("len=N needs a number")
            kw["length"] = "=" + t[4:]
        elif t == "len>0":
            kw["length"] = ">0"
        elif t.startswith("win="):
            if not t[4:].isdigit():
                raise ExpectError("win=N needs a number")
            kw["win"] = int(t[4:])
        elif t in ("ip=4", "ip=6"):
            kw["ip"] = int(t[3])
        elif t.startswith("stream="):
            if not t[7:].isdigit():
                raise ExpectError("stream=N needs a number")
            kw["stream"] = int(t[7:])
        elif t.startswith("[") and t.endswith("]"):
            name = t[1:-1]
            neg = name.startswith("-")
            flag = _FLAGS.get(name.lstrip("-"))
            if flag is None:
                raise ExpectError(f"unknown analysis flag {name!r} (one of {', '.join(_FLAGS)})")
            (flags_unset if neg else flags_set).append(flag)
        elif re.fullmatch(r"[cs]=[A-Z_\-0-9]+", t):
            st = _STATES.get(t[2:])
            if st is None:
                raise ExpectError(f"unknown TCP state {t[2:]!r}")
            states.append((t[0], st))
        elif m := re.fullmatch(r"x(\d+)(\+|-(\d+))?", t):
            lo = int(m.group(1))
            kw["lo"] = lo
            kw["hi"] = None if m.group(2) == "+" else int(m.group(3)) if m.group(3) else lo
        elif m := re.fullmatch(r"dt(>=|<=)(\d+(?:\.\d+)?)", t):
            kw["dt_min" if m.group(1) == ">=" else "dt_max"] = float(m.group(2))
        elif t in ("*", "call", "kernel") or t.startswith("kernel:") or t.endswith("()"):
            if t.startswith("kernel:") and t[7:] not in REASONS:
                raise ExpectError(f"unknown reason {t[7:]!r}")
            if t.endswith("()") and t[:-2] not in CALL_NAMES:
                raise ExpectError(f"unknown call {t!r}")
            kw["cause"] = t[:-2] if t.endswith("()") else t
        else:
            raise ExpectError(f"cannot read {t!r}")
    kw["flags_set"], kw["flags_unset"], kw["states"] = tuple(flags_set), tuple(flags_unset), tuple(states)
    return PacketLine(**kw)  # type: ignore[arg-type]


# --- the trace as matchable rows ---------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """The packets of a trace with what the notation can say of them."""

    trace: Trace
    analysis: Analysis
    port: int
    sender: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, trace: Trace, analysis: Analysis, port: int) -> _Rows:
        t = trace.packets
        sender = []
        for i in range(len(t)):
            quote = t.icmp_quotes.get(i)
            if quote is not None:
                sender.append("s" if quote.dport == port else "c")
            else:
                sender.append("s" if int(t.sport[i]) == port else "c")
        return cls(trace, analysis, port, sender)

    def proto(self, i: int) -> str:
        # One word, as in the notation ("ethertype 0x88cc" -> "ethertype-0x88cc").
        return self.trace.packets.proto_name(i).replace(" ", "-")

    def end_state(self, i: int, side: str) -> TcpState | None:
        """The TCP state of the client (``c``) or server end after packet ``i``."""
        a, t = self.analysis, self.trace.packets
        if int(t.proto[i]) != PROTO_TCP or int(a.state_a[i]) < 0:
            return None
        # Endpoint a sent the stream's first packet; find whether a is the client.
        first = a.tcp_streams[int(a.stream[i])].first_no - 1
        a_is_client = self.sender[first] == "c"
        want_a = (side == "c") == a_is_client
        return TcpState(int(a.state_a[i] if want_a else a.state_b[i]))


def _cause_ok(want: str, rows: _Rows, i: int) -> bool:
    a = rows.analysis
    if want == "*":
        return True
    by = int(a.cause_by[i])
    if want == "call":
        return by == CauseBy.CALL
    if want == "kernel":
        return by == CauseBy.KERNEL
    if want.startswith("kernel:"):
        # The wire rules' reason stays an accepted answer beside the kernel's own (a FIN's
        # ACK the delayed-ACK timer sent is both ``fin_ack`` and ``delayed_ack``).
        return (by == CauseBy.KERNEL and REASONS[int(a.cause_reason[i])] == want[7:]) or (
            REASONS[int(a.inferred_reason[i])] == want[7:])
    # Data the kernel sent later (released by an ACK) still names the call that queued it.
    return (by == CauseBy.CALL or int(a.cause_call_id[i]) >= 0) and CALL_NAMES[int(a.cause_call[i])] == want


def _why_not(p: PacketLine, rows: _Rows, i: int, prev_t: int | None) -> str | None:
    """Why packet ``i`` does not match ``p`` (None if it does)."""
    t, a = rows.trace.packets, rows.analysis
    if p.sender != "*" and rows.sender[i] != p.sender:
        return "sent by the other side"
    proto = rows.proto(i)
    if p.proto != "*" and proto != p.proto:
        return f"{proto}, not {p.proto}"
    if p.proto == "tcp" and not p.any_flags:
        bits = int(t.tcp_flags[i]) & 0xFF
        if bits & p.must != p.must or bits & ~(p.must | p.may):
            return f"flags {_letters(bits)}"
    if p.length is not None:
        n = int(t.payload_len[i])
        if (p.length == ">0" and n <= 0) or (p.length.startswith("=") and n != int(p.length[1:])):
            return f"len={n}"
    if p.win is not None and int(t.window[i]) != p.win:
        return f"win={int(t.window[i])}"
    if p.ip is not None and int(t.ip_version[i]) != p.ip:
        return f"ip={int(t.ip_version[i])}"
    if p.stream is not None and int(a.stream[i]) != p.stream:
        return f"stream={int(a.stream[i])}"
    bits = int(a.flags[i])
    for f in p.flags_set:
        if not bits >> f.value & 1:
            return f"not [{f.json_name}]"
    for f in p.flags_unset:
        if bits >> f.value & 1:
            return f"[{f.json_name}]"
    for side, st in p.states:
        got = rows.end_state(i, side)
        if got != st:
            return f"{side}={rfc_name(got) if got is not None else '?'}"
    if not _cause_ok(p.cause, rows, i):
        return f"cause {_cause_text(rows, i)}"
    if prev_t is not None and (p.dt_min is not None or p.dt_max is not None):
        dt = (int(t.ts_ns[i]) - prev_t) / 1e9
        if (p.dt_min is not None and dt < p.dt_min) or (p.dt_max is not None and dt > p.dt_max):
            return f"dt={dt:.3f}"
    return None


def _letters(bits: int) -> str:
    return "".join(ch for ch in _LETTERS if bits & _FLAG_BITS[ch]) or "-"


def _cause_text(rows: _Rows, i: int) -> str:
    a = rows.analysis
    by = int(a.cause_by[i])
    if by == CauseBy.CALL:
        return f"{CALL_NAMES[int(a.cause_call[i])]}()"
    if by == CauseBy.KERNEL:
        return f"kernel:{REASONS[int(a.cause_reason[i])]}"
    return "*"


def describe_packet(rows: _Rows, i: int) -> str:
    """Packet ``i`` in the notation (exact flags, length, analysis flags, cause)."""
    t, a = rows.trace.packets, rows.analysis
    other = "s" if rows.sender[i] == "c" else "c"
    proto = rows.proto(i)
    what = _letters(int(t.tcp_flags[i])) if proto == "tcp" else proto
    parts = [f"{rows.sender[i]} > {other}", f"{what:<4}"]
    n = int(t.payload_len[i])
    if proto in ("tcp", "udp") and n:
        parts.append(f"len={n}")
    bits = int(a.flags[i])
    parts += [f"[{f.json_name}]" for f in AnalysisFlag if bits >> f.value & 1]
    parts.append(_cause_text(rows, i))
    return "  ".join(parts)


def describe(trace: Trace, analysis: Analysis, port: int) -> list[str]:
    """Every packet of ``trace`` as a line of the notation."""
    rows = _Rows.of(trace, analysis, port)
    return [describe_packet(rows, i) for i in range(len(trace.packets))]


# --- matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """The outcome: ``ok``, and the lines of a readable report (the diff when not ok)."""

    ok: bool
    report: tuple[str, ...]


def match(trace: Trace, analysis: Analysis, expect: str | list[Line], port: int) -> Match:
    """Match ``expect`` against ``trace`` (see the module docstring)."""
    lines = parse(expect) if isinstance(expect, str) else expect
    rows = _Rows.of(trace, analysis, port)
    n = len(trace.packets)
    pkt_lines = [ln for ln in lines if not isinstance(ln, CallLine)]
    ts = trace.packets.ts_ns
    memo: dict[tuple[int, int, int | None], list[tuple[int, int]] | None] = {}
    best = [0, 0]  # the furthest (line, packet) reached, for the report

    def go(k: int, i: int, prev: int | None) -> list[tuple[int, int]] | None:
        """Assignments (line index, packet) matching lines[k:] to packets[i:]."""
        key = (k, i, prev)
        if key in memo:
            return memo[key]
        # Lines that match exactly one packet leave no choice: walk them without recursing
        # (a capture's own description has a line per packet).
        done: list[tuple[int, int]] = []
        while k < len(pkt_lines):
            ln = pkt_lines[k]
            if not (isinstance(ln, PacketLine) and ln.lo == 1 and ln.hi == 1):
                break
            if (k, i) > (best[0], best[1]):
                best[0], best[1] = k, i
            prev_t = int(ts[prev]) if prev is not None else None
            if i >= n or _why_not(ln, rows, i, prev_t) is not None:
                memo[key] = None
                return None
            done.append((k, i))
            prev, i, k = i, i + 1, k + 1
        if (k, i) > (best[0], best[1]):
            best[0], best[1] = k, i
        res: list[tuple[int, int]] | None = None
        if k == len(pkt_lines):
            res = [] if i == n else None
        else:
            ln = pkt_lines[k]
            if isinstance(ln, AnyLine):
                for j in range(i, n + 1):
                    rest = go(k + 1, j, prev if j == i else j - 1)
                    if rest is not None:
                        res = rest
                        break
            else:
                assert isinstance(ln, PacketLine)
                j, taken = i, list[int]()
                prev_t = int(ts[prev]) if prev is not None else None
                while j < n and (ln.hi is None or len(taken) < ln.hi):
                    if _why_not(ln, rows, j, prev_t) is not None:
                        break
                    taken.append(j)
                    prev_t = int(ts[j])
                    j += 1
                # Longest run first, then shorter ones (the next line may want some).
                for m in range(len(taken), ln.lo - 1, -1):
                    rest = go(k + 1, i + m, taken[m - 1] if m else prev)
                    if rest is not None:
                        res = [(k, x) for x in taken[:m]] + rest
                        break
        res = None if res is None else done + res
        memo[key] = res
        return res

    found = go(0, 0, None)
    if found is None:
        return Match(False, tuple(_report(lines, pkt_lines, rows, best[0], best[1])))
    return _check_calls(lines, pkt_lines, found, rows)


def _report(lines: list[Line], pkt_lines: Sequence[Line], rows: _Rows, k: int, i: int) -> list[str]:
    out = ["the capture differs from the expectation:"]
    n = len(rows.trace.packets)
    if k < len(pkt_lines):
        ln = pkt_lines[k]
        if i < n and isinstance(ln, PacketLine):
            why = _why_not(ln, rows, i, None) or "the lines after it do not match"
            out.append(f"  line {ln.lineno}: expected  {ln.text}")
            out.append(f"  packet {i + 1}: got     {describe_packet(rows, i)}  ({why})")
        elif i >= n:
            out.append(f"  line {ln.lineno}: expected  {ln.text}")
            out.append(f"  but the capture ended after packet {n}")
        else:
            out.append(f"  line {ln.lineno}: {ln.text}: no way to match the rest")
    else:
        out.append(f"  every line matched, but packets {i + 1}..{n} are left over:")
        out += [f"    {j + 1}: {describe_packet(rows, j)}" for j in range(i, min(n, i + 8))]
    out.append("the capture, in the same notation:")
    out += [f"  {j + 1:>3}  {describe_packet(rows, j)}" for j in range(n)]
    return out


def _check_calls(lines: list[Line], pkt_lines: Sequence[Line], found: list[tuple[int, int]],
                 rows: _Rows) -> Match:
    """Call lines: in order among the calls, between the packets of the lines around them."""
    ts = rows.trace.packets.ts_ns
    by_line: dict[int, list[int]] = {}
    for k, i in found:
        by_line.setdefault(pkt_lines[k].lineno, []).append(i)
    calls = sorted(rows.trace.calls, key=lambda c: (c.t_ns, c.id))
    pos = 0
    for idx, ln in enumerate(lines):
        if not isinstance(ln, CallLine):
            continue
        after = _bound(lines[:idx][::-1], by_line, last=True)
        before = None if ln.later else _bound(lines[idx + 1:], by_line, last=False)
        lo = int(ts[after]) if after is not None else None
        hi = int(ts[before]) if before is not None else None
        hit = None
        for j in range(pos, len(calls)):
            c = calls[j]
            t = c.t_ns
            if hi is not None and t > hi:
                break
            if lo is not None and t < lo:
                continue
            if _call_ok(ln, c):
                hit = j
                break
        if hit is None:
            where = (f" after packet {after + 1}" if after is not None else "") + (
                f" and before packet {before + 1}" if before is not None else "")
            seen = [f"{_side(c)} {c.call}() = {c.errno or c.result}" for c in calls
                    if (lo is None or c.t_ns >= lo) and (hi is None or c.t_ns <= hi)]
            report = [f"the calls differ from the expectation: line {ln.lineno}: {ln.text}",
                      f"  no such call{where}; the calls there:"] + [f"    {s}" for s in seen[:12]]
            return Match(False, tuple(report))
        pos = hit + 1
    return Match(True, (f"matched {len(found)} packets and "
                        f"{sum(isinstance(ln, CallLine) for ln in lines)} calls",))


def _bound(lines: list[Line], by_line: dict[int, list[int]], *, last: bool) -> int | None:
    """The packet matched by the nearest packet line in ``lines`` (its last or first packet)."""
    for ln in lines:
        if isinstance(ln, PacketLine) and ln.lineno in by_line:
            got = by_line[ln.lineno]
            return got[-1] if last else got[0]
        if isinstance(ln, AnyLine):
            return None
    return None


def _side(c: SocketCall) -> str:
    return {"client": "c", "server": "s"}.get(c.side, "*")


def _call_ok(ln: CallLine, c: SocketCall) -> bool:
    if ln.side != "*" and _side(c) != ln.side:
        return False
    if c.call != ln.call:
        return False
    if ln.result is None:
        return True
    err = c.error
    if err is not None or ln.result.startswith("E") or ln.result.endswith("Error"):
        return err == ln.result  # an errno name, or an exception without one (TimeoutError)
    if ln.result == ">0":
        return err is None and (c.result or "").split(" ")[0].isdigit() and int(
            (c.result or "0").split(" ")[0]) > 0
    return err is None and (c.result or "").split(" ")[0] == ln.result

