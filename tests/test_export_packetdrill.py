"""The packetdrill-style export against tshark, the trace's own calls and packetdrill's grammar.

For every packet of the chosen stream the script's line must say what tshark says
about that frame (``#N`` in the line's comment names it): the direction (``>`` when
the side under test sent it, by tshark's ``ip.src``/``tcp.srcport``), the flags
(``tcp.flags``), ``seq:end(len)`` (``tcp.seq``, ``tcp.len``, relative), ``ack``
(``tcp.ack``), ``win`` (``tcp.window_size_value``), the TCP options in wire order
(``tcp.option_kind``) with their values, UDP lengths and ICMP types, in capture
order with no frame missing.  The syscall lines must be the side's recorded calls
in entry order, with their byte counts, errnos and one consistent file descriptor
per socket, and the times must add up to tshark's frame times and the calls'
entry/exit times.  packetdrill itself is not packaged for Debian (checked with
``apt-cache policy packetdrill``), so the lines are also checked against the rules
of its grammar (lexer.l, parser.y, tcp_packet.c), transcribed below.

Live traces (refused, udp-unreachable, data-lost, rst-linger) are made once for
the module with ``tracer run``; the corpus captures are read as they are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import CAPTURES, REPO, corpus_files, tshark_fields
from tracer.core.model import SocketCall
from tracer.core.trace import Trace
from tracer.errors import EXIT_USAGE, UsageError
from tracer.export.packetdrill import render_packetdrill
from tracer.loading import load

pytestmark = pytest.mark.tshark

SCENARIOS = ("refused", "udp-unreachable", "data-lost", "rst-linger")

FIELDS = ("frame.number", "frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "udp.srcport",
          "tcp.stream", "udp.stream", "tcp.flags", "tcp.seq", "tcp.len", "tcp.ack", "tcp.window_size_value",
          "tcp.option_kind", "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
          "tcp.options.timestamp.tsecr", "tcp.options.sack_le", "tcp.options.sack_re", "udp.length",
          "icmp.type", "icmp.code", "icmpv6.type", "icmpv6.code")

# --- packetdrill's grammar, transcribed -------------------------------------------------
TIME = r"(?P<time>0\.\d{6}|\+\d+\.\d{6})(?:\.\.\.(?P<end>\d+\.\d{6}))?"
LINE = re.compile(rf"^{TIME} (?P<body>.*?) *// (?P<comment>.+)$")
TCP = re.compile(r"^(?P<dir>[<>]) (?P<flags>[.FSRPEWAU]+|-) (?P<seq>\d+):(?P<end>\d+)\((?P<len>\d+)\)"
                 r"(?: ack (?P<ack>\d+))?(?: win (?P<win>\d+))?(?: <(?P<opts>[^<>]*)>)?$")
UDP = re.compile(r"^(?P<dir>[<>]) udp \((?P<len>\d+)\)$")
ICMP = re.compile(r"^(?P<dir>[<>]) icmp (?P<type>\w+) (?P<code>\w+)(?: \[udp \((?P<qlen>\d+)\)\])?$")
# result = INTEGER | ..., errno = WORD, note = '(' WORD... ')' (nothing but [A-Za-z0-9_] words)
SYSCALL = re.compile(r"^(?P<name>[a-z_0-9]+)\((?P<args>.*)\) = (?P<result>-?\d+|\.\.\.)"
                     r"(?: (?P<errno>E[A-Z0-9]+) \((?P<note>[A-Za-z0-9_]+(?: [A-Za-z0-9_]+)*)\))?$")
OPTION = re.compile(r"^(?:nop|eol|mss \d+|wscale \d+|sackOK|sack(?: \d+:\d+)+|TS val \d+ ecr \d+|"
                    r"md5 [0-9a-f]+|FO(?: [0-9a-f]+)?|FOEXP(?: [0-9a-f]+)?)$")
OPTION_KIND = {"nop": 1, "eol": 0, "mss": 2, "wscale": 3, "sackOK": 4, "sack": 5, "TS": 8, "md5": 19,
               "FO": 34, "FOEXP": 254}
FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20, "E": 0x40, "W": 0x80,
             "A": 0x100}
# icmp_packet.c's names (IPv4)
ICMP_TYPES = {"echo_reply": 0, "unreachable": 3, "source_quench": 4, "redirect": 5, "echo_request": 8,
              "time_exceeded": 11, "parameter_problem": 12}
ICMP_UNREACH = {"net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2, "port_unreachable": 3,
                "frag_needed": 4}
# What a recorded (Python) call becomes in the script.
SYSCALL_OF = {"sendall": "send", "connect_ex": "connect", "recv_into": "recv", "recvfrom_into": "recvfrom",
              "settimeout": "fcntl", "setblocking": "fcntl"}


def option_bytes(word: str) -> int:
    """Bytes one option word takes on the wire (tcp_options.h sizes)."""
    name, _, rest = word.partition(" ")
    if name == "sack":
        return 2 + 8 * len(rest.split())
    return {"nop": 1, "eol": 1, "mss": 4, "wscale": 3, "sackOK": 2, "TS": 10, "md5": 18}[name]


def us(t_ns: int) -> int:
    return (t_ns + 500) // 1000


def epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def seconds_us(text: str) -> int:
    sec, _, frac = text.lstrip("+").partition(".")
    return int(sec) * 1_000_000 + int(frac)


@dataclass
class Line:
    time_us: int  # since the first event
    end_us: int | None  # a blocking call's end, since the first event
    body: str
    comment: str


@dataclass
class Script:
    text: str
    sut: str
    sut_role: str
    proto: str
    stream: int
    lines: list[Line] = field(default_factory=list)

    @property
    def packets(self) -> list[tuple[int, Line]]:
        return [(int(re.match(r"#(\d+) ", ln.comment)[1]), ln)  # type: ignore[index]
                for ln in self.lines if ln.body[:1] in "<>"]

    @property
    def calls(self) -> list[Line]:
        return [ln for ln in self.lines if ln.body[:1] not in "<>"]


def parse(text: str) -> Script:
    """The script's events, with the grammar checks that need no capture."""
    assert text.endswith("\n")  # lexer.l: a // comment ends with a newline
    head = re.search(r"^// (TCP|UDP) stream (\d+): system under test = (\w+) (\S+), peer = ", text, re.M)
    assert head, text[:400]
    script = Script(text, head[4], head[3], head[1].lower(), int(head[2]))
    now: int | None = None
    for raw in text.splitlines():
        if not raw or raw.startswith("//"):
            continue
        m = LINE.match(raw)
        assert m, raw
        step = seconds_us(m["time"])
        if now is None:
            assert not m["time"].startswith("+"), raw  # the first event has an absolute time
            base, now = 0, step
        else:
            assert m["time"].startswith("+"), raw
            base, now = now, now + step
        end = base + seconds_us(m["end"]) if m["end"] else None
        assert end is None or end >= now, raw  # parser.y: "time range is backwards"
        script.lines.append(Line(now, end, m["body"], m["comment"]))
        body = m["body"]
        if body[:1] in "<>":
            tcp = TCP.match(body)
            assert tcp or UDP.match(body) or ICMP.match(body), raw
            if tcp:
                assert int(tcp["end"]) == int(tcp["seq"]) + int(tcp["len"]), raw  # seq: start:end(len)
                assert tcp["win"] is not None or tcp["dir"] == ">", raw  # inbound needs win
                assert int(tcp["win"] or 0) < 1 << 16 and int(tcp["len"]) < 1 << 16, raw
                if tcp["opts"] is not None and tcp["opts"] != "...":
                    words = tcp["opts"].split(",")
                    assert all(OPTION.match(w) for w in words), raw
                    assert sum(map(option_bytes, words)) % 4 == 0, raw  # "not padded correctly"
                assert tcp["opts"] != "..." or tcp["dir"] == ">", raw  # <...> only outbound
        else:
            assert SYSCALL.match(body), raw
    return script


@dataclass
class Frame:
    no: int
    t_ns: int
    src: str
    host: str
    row: dict[str, str]

    def first(self, name: str) -> str:
        return self.row[name].split(",")[0]


def frames(path: Path | str) -> dict[int, Frame]:
    out = {}
    for r in tshark_fields(path, *FIELDS):
        row = dict(zip(FIELDS, r, strict=True))
        host = (row["ip.src"] or row["ipv6.src"]).split(",")[0]
        if not host:
            continue  # not an IP frame (tracer's calls block shows up as an empty frame)
        port = (row["tcp.srcport"] or row["udp.srcport"]).split(",")[0]
        src = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        no = int(row["frame.number"])
        out[no] = Frame(no, epoch_ns(row["frame.time_epoch"]), src, host, row)
    return out


def check_packets(script: Script, tshark: dict[int, Frame]) -> None:
    """Every frame of the stream, in order, as tshark sees it."""
    key = "tcp.stream" if script.proto == "tcp" else "udp.stream"
    want = [no for no, f in sorted(tshark.items()) if f.first(key) == str(script.stream)]
    shown = [no for no, _ in script.packets]
    elsewhere = [int(n) for n in re.findall(r"^// #(\d+) icmp .*", script.text, re.M)]
    assert sorted(shown + elsewhere) == want and shown == sorted(shown)
    sut_host = script.sut.rpartition(":")[0].strip("[]")
    for no in elsewhere:  # an ICMP error between the peer and a router: the side under test never sees it
        assert sut_host not in (tshark[no].host, tshark[no].row["ip.src"].split(",")[-1])
    for no, line in script.packets:
        f = tshark[no]
        icmp = f.row["icmp.type"] or f.row["icmpv6.type"]
        out = f.host == sut_host if icmp else f.src == script.sut
        assert line.body[0] == (">" if out else "<"), (no, line.body, f.src, script.sut)
        if icmp:
            m = ICMP.match(line.body)
            assert m, line.body
            typ = int(icmp.split(",")[0])
            code = int((f.row["icmp.code"] or f.row["icmpv6.code"]).split(",")[0])
            if not f.row["icmpv6.type"]:
                assert ICMP_TYPES.get(m["type"], -1) == typ or m["type"] == f"type_{typ}"
                if m["type"] == "unreachable":
                    assert ICMP_UNREACH.get(m["code"], -1) == code or m["code"] == f"code_{code}"
            continue
        if script.proto == "udp":
            m = UDP.match(line.body)
            assert m and int(m["len"]) == int(f.first("udp.length")) - 8, (no, line.body)
            continue
        m = TCP.match(line.body)
        assert m, line.body
        bits = sum(FLAG_BITS[c] for c in m["flags"] if c != "-")
        assert bits == int(f.first("tcp.flags"), 16) & 0x1FF, (no, line.body, f.row["tcp.flags"])
        assert (int(m["seq"]), int(m["len"])) == (int(f.first("tcp.seq")), int(f.first("tcp.len"))), no
        if bits & 0x10:
            assert m["ack"] is not None and int(m["ack"]) == int(f.first("tcp.ack")), (no, line.body)
        else:
            assert m["ack"] is None
        assert int(m["win"]) == int(f.first("tcp.window_size_value")), (no, line.body)
        check_options(no, m["opts"], f)


def check_options(no: int, opts: str | None, f: Frame) -> None:
    kinds = [int(k) for k in f.row["tcp.option_kind"].split(",") if k]
    if opts == "...":
        assert kinds, no  # only where there were options it could not write
        return
    words = opts.split(",") if opts else []
    assert [OPTION_KIND[w.split(" ")[0]] for w in words] == kinds, (no, opts, kinds)
    for w in words:
        name, _, rest = w.partition(" ")
        if name == "mss":
            assert rest == f.first("tcp.options.mss_val"), no
        elif name == "wscale":
            assert rest == f.first("tcp.options.wscale.shift"), no
        elif name == "TS":
            val, ecr = re.fullmatch(r"val (\d+) ecr (\d+)", rest).groups()  # type: ignore[union-attr]
            assert val == f.first("tcp.options.timestamp.tsval"), no
            assert ecr == f.first("tcp.options.timestamp.tsecr"), no
        elif name == "sack":
            edges = [e for b in rest.split() for e in b.split(":")]
            le, re_ = f.row["tcp.options.sack_le"].split(","), f.row["tcp.options.sack_re"].split(",")
            assert edges == [x for pair in zip(le, re_, strict=True) for x in pair], (no, w)


def check_times(script: Script, tshark: dict[int, Frame], calls: list[SocketCall] | None = None) -> None:
    """Packet times add up to tshark's frame times; call lines to their entry (and exit) times."""
    packets = script.packets
    assert packets
    # A frame stamped before the one before it (zeek's communityid capture) keeps its
    # place and takes the latest time seen so far.
    latest, when = 0, {}
    for no, _ in packets:
        latest = max(latest, tshark[no].t_ns)
        when[no] = us(latest)
    no0, line0 = packets[0]
    base = when[no0] - line0.time_us  # the first event's time on the packet clock
    for no, line in packets:
        assert line.time_us == when[no] - base, (no, line)
    for line, c in zip(script.calls, calls or [], strict=False):
        assert line.time_us == us(c.t_enter_ns) - base, line
        if line.end_us is not None:
            assert c.t_exit_ns is not None and line.end_us == us(c.t_exit_ns) - base, line


def check_calls(script: Script, calls: list[SocketCall]) -> None:
    """The side's calls in entry order: names, results, errnos, one script fd per socket."""
    lines = script.calls
    assert len(lines) == len(calls), ([ln.body for ln in lines], [c.call for c in calls])
    fd_of: dict[tuple[int, int], str] = {}
    for line, c in zip(lines, calls, strict=True):
        m = SYSCALL.match(line.body)
        assert m, line.body
        assert m["name"] == SYSCALL_OF.get(c.call, c.call), (line.body, c)
        assert f"{c.call}()" in line.comment and (c.fd is None or f"fd {c.fd} " in line.comment + " ")
        args = [a.strip() for a in m["args"].split(",")]
        if c.error is not None:
            assert (m["result"], m["errno"]) == ("-1", c.error), line.body
        else:
            assert m["errno"] is None
        if c.call != "socket":
            assert c.fd is not None
            # the socket's number in the script is the one socket()/accept() returned for it
            assert fd_of.get((c.pid, c.fd), args[0]) == args[0], (line.body, fd_of)
            fd_of[(c.pid, c.fd)] = args[0]
        if c.call in ("socket", "accept") and c.error is None:
            new = m["result"]
            assert int(new) >= 3 and new not in fd_of.values(), line.body  # lowest fds are stdio
            assert c.result is not None
            fd_of[(c.pid, int(c.result))] = new
        if c.call in ("send", "sendall", "sendto") and c.error is None:
            assert m["result"] == dict(c.args)["len"] == args[2], line.body
        if c.call.startswith("recv") and c.error is None:
            assert m["result"] == (c.result or "").partition(" ")[0], line.body
        if c.call == "close":
            fd_of.pop((c.pid, c.fd or -1), None)


def side_calls(trace: Trace, side: str) -> list[SocketCall]:
    return sorted((c for c in trace.calls if c.side == side), key=lambda c: (c.t_enter_ns, c.id))


def server_endpoint(tshark: dict[int, Frame], stream: int) -> str | None:
    """The endpoint the stream's first SYN went to (tshark's view of who listened)."""
    for f in sorted(tshark.values(), key=lambda f: f.no):
        if f.first("tcp.stream") == str(stream) and int(f.first("tcp.flags") or "0", 16) & 0x1FF == 0x002:
            peer = [g for g in tshark.values() if g.first("tcp.stream") == str(stream) and g.src != f.src]
            return peer[0].src if peer else None
    return None


@pytest.fixture(scope="module")
def live(scenario_run: Callable[[str], Path]) -> dict[str, Path]:
    """One real run of each scenario (as root, in the lab), shared by the session's tests."""
    return {name: scenario_run(name) for name in SCENARIOS}


def check_whole(path: Path | str, side: str, stream: int | None = None) -> Script:
    trace, analysis = load(str(path))
    script = parse(render_packetdrill(trace, analysis, side=side, stream=stream))
    tshark = frames(path)
    check_packets(script, tshark)
    calls = side_calls(trace, side)
    check_calls(script, calls)
    check_times(script, tshark, calls)
    if script.proto == "tcp":
        server = server_endpoint(tshark, script.stream)
        if server is not None:
            assert (script.sut == server) == (side == "server"), (script.sut, server)
    return script


@pytest.mark.parametrize("side", ["server", "client"])
def test_hello_with_calls(side: str) -> None:
    script = check_whole(CAPTURES / "hello.pcapng", side)
    names = [SYSCALL.match(ln.body)["name"] for ln in script.calls]  # type: ignore[index]
    if side == "server":
        assert names[:5] == ["socket", "setsockopt", "bind", "listen", "accept"]
        assert script.calls[4].end_us is not None  # accept() waited for the handshake: a blocking call
    else:
        assert names[:2] == ["socket", "connect"] and script.calls[1].end_us is not None


@pytest.mark.lab
@pytest.mark.parametrize("name", SCENARIOS)
@pytest.mark.parametrize("side", ["server", "client"])
def test_live_scenarios(live: dict[str, Path], name: str, side: str) -> None:
    script = check_whole(live[name], side)
    bodies = "\n".join(ln.body for ln in script.lines)
    if name == "refused" and side == "client":
        assert "connect(3, ..., ...) = -1 ECONNREFUSED (Connection refused)" in bodies
    if name == "udp-unreachable":
        assert re.search(r"^[<>] icmp unreachable port_unreachable \[udp \(\d+\)\]$", bodies, re.M)
        if side == "client":
            assert re.search(r"^recv\(3, \.\.\., \d+, 0\) = -1 ECONNREFUSED", bodies, re.M)
    if name == "data-lost":
        assert "[retransmission]" in script.text and "sack " in bodies
    # The kernel witness's drops: said in the comment of exactly those packets' lines (issue 12).
    trace, _ = load(str(live[name]))
    assert trace.kernel is not None
    drops = {d.packet_no: d for d in trace.kernel.drops}
    if name == "data-lost":
        assert "NETFILTER_DROP" in {d.reason for d in drops.values()}
    for line in script.text.splitlines():
        m = re.search(r"// #(\d+) ", line)
        if m is None:
            continue
        d = drops.get(int(m.group(1)))
        said = f"; ✗ dropped by the receiver's kernel: {d.reason} ({d.where})" if d else "✗ dropped"
        assert (said in line) is (d is not None), line
    if name == "rst-linger" and side == "client":
        assert "setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0" in bodies


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_every_stream(path: Path) -> None:
    trace, analysis = load(str(path))
    tshark = frames(path)
    streams: list[int | None] = list(range(len(analysis.tcp_streams))) or [None]
    for stream in streams:
        for side in ("server", "client"):
            script = parse(render_packetdrill(trace, analysis, side=side, stream=stream))
            check_packets(script, tshark)
            if script.packets:
                check_times(script, tshark)


def test_chinese_differs_only_in_comments() -> None:
    trace, analysis = load(str(CAPTURES / "hello.pcapng"))
    en = render_packetdrill(trace, analysis, side="server", lang="en")
    zh = render_packetdrill(trace, analysis, side="server", lang="zh")

    def code(text: str) -> list[str]:
        return [ln.split("//")[0].rstrip() for ln in text.splitlines() if not ln.startswith("//")]

    assert code(en) == code(zh) and en != zh
    assert "被测方" in zh and "服务器" in zh


def test_bad_stream_is_a_usage_error(tmp_path: Path) -> None:
    trace, analysis = load(str(CAPTURES / "hello.pcapng"))
    with pytest.raises(UsageError) as err:
        render_packetdrill(trace, analysis, stream=len(analysis.tcp_streams))
    assert err.value.message_zh != err.value.message
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    export = [sys.executable, "-m", "tracer", "export", str(CAPTURES / "hello.pcapng"),
              "--format", "packetdrill"]
    proc = subprocess.run([*export, "--stream", "7"], capture_output=True, text=True, cwd=REPO, env=env,
                          check=False)
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("tracer: error: ")
    ok = subprocess.run([*export, "--side", "client"], capture_output=True, text=True, cwd=REPO, env=env,
                        check=False)
    assert ok.returncode == 0 and ok.stdout == render_packetdrill(trace, analysis, side="client")
