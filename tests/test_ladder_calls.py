"""Socket calls that send nothing, as rows of the text ladder, on real kernel runs.

Each test runs ``python -m tracer run`` (root, private network namespaces) and reads
the printed ladder.  Expectations come from the scenarios' code (what they send and
read), from the calls recorded in the saved file (``tracer export``), from tshark
(packet numbers, flags) and from how TCP works (RFC 9293: the server's kernel
completes the handshake before accept() returns; recv() returns data that arrived).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CAPTURES, tshark_fields
from tracer.ladder.text import text_width

pytestmark = pytest.mark.tshark

REPO = Path(__file__).resolve().parents[1]
IP_ONLY = ("-Y", "ip or ipv6")
# With several streams a tag (t0, u1, ...) follows the time.
PACKET = re.compile(r"^\s*(\d+)\s+(-?\d+\.\d{6}) (?:[tu]\d+)?\s*(│.*)$")
CALL = re.compile(r"^\s+(-?\d+\.\d{6}) ([tu]\d+)?\s*│ (.*?) │(.*)$")
MORE = re.compile(r"^\s+│ (.*?) │$")  # a call's text that did not fit on one line
ON = ("1", "True")  # a set flag, as tshark 4.0 prints it
WORDS = {"client": "client", "server": "server"}
TWO = """
import socket
PROTO = "tcp"
PORT = 7010
def server(host, port):
    ls = socket.socket()
    ls.bind((host, port))
    ls.listen()
    for _ in range(2):
        c, _ = ls.accept()
        c.recv(10)
        c.close()
    ls.close()
def client(host, port):
    for msg in (b"one", b"four"):
        s = socket.socket()
        s.connect((host, port))
        s.sendall(msg)
        s.recv(10)
        s.close()
"""


@dataclass
class Row:
    kind: str  # "packet" or "call"
    no: int | None
    time: str
    tag: str
    text: str  # packet: the arrow and notes; call: the call's text
    note: str
    line: str


def tracer(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    proc = subprocess.run([sys.executable, "-m", "tracer", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", cwd=REPO, env=env, stdin=subprocess.DEVNULL, timeout=timeout,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def parse(ladder: str) -> list[Row]:
    out: list[Row] = []
    for line in ladder.splitlines():
        if m := PACKET.match(line):
            out.append(Row("packet", int(m.group(1)), m.group(2), "", m.group(3), "", line))
        elif m := CALL.match(line):
            out.append(Row("call", None, m.group(1), m.group(2) or "", m.group(3).strip(), m.group(4).strip(),
                           line))
        elif (m := MORE.match(line)) and out and out[-1].kind == "call":
            out[-1].text += " " + m.group(1).strip()
    return out


def run(name: str | Path, out: Path) -> tuple[list[Row], dict[str, Any]]:
    proc = tracer("run", name, "--no-tui", "--out", out)
    data: dict[str, Any] = json.loads(tracer("export", out, "--format", "json").stdout)
    return parse(proc.stdout), data


def calls_only(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.kind == "call"]


def index(rows: list[Row], pred: Any) -> int:
    return next(i for i, r in enumerate(rows) if pred(r))


def check_every_call_once(rows: list[Row], data: dict[str, Any], side_words: dict[str, str]) -> None:
    """Calls that caused a packet are named on its row; every other call has one row of its own,
    at the moment it returned, in time order with the packets; so has the return of connect()
    and of a call that failed with an errno no packet explains (issue 12)."""
    t0 = data["packets"][0]["time_ns"]
    on_packets = {p["cause"]["call_id"] for p in data["packets"] if p["cause"]["call_id"] is not None}
    for p in data["packets"]:
        c = p["cause"]
        if c["call_id"] is not None:
            prow = next(r for r in rows if r.no == p["no"])
            assert f"{side_words[c['side']]} {c['call']}()" in prow.text, prow.line
    own = [c for c in data["calls"] if c["id"] not in on_packets or (
        c["t_exit_ns"] is not None and c["error_packet"] is None
        and (c["call"] in ("connect", "connect_ex") or c["errno"] is not None))]
    shown = calls_only(rows)
    assert Counter(r.text.split("(", 1)[0] for r in shown) == Counter(
        f"{side_words[c['side']]} {c['call']}" for c in own)
    want_times = Counter(f"{((c['t_exit_ns'] or c['t_enter_ns']) - t0) / 1e9:.6f}" for c in own)
    assert Counter(r.time for r in shown) == want_times
    times = [float(r.time) for r in rows]
    assert times == sorted(times), "rows in time order"
    assert [r.no for r in rows if r.kind == "packet"] == [p["no"] for p in data["packets"]]


def check_lanes(rows: list[Row], client_word: str) -> None:
    """Client calls start at the client's lane, server calls end at the server's, and the
    lanes are the packet rows' lanes."""
    bars = set()
    for r in rows:
        first = r.line.index("│")
        bars.add((text_width(r.line[:first]), text_width(r.line[: r.line.index("│", first + 1) + 1])))
        if r.kind == "call":
            inside = r.line[first + 1: r.line.index("│", first + 1)]
            if r.text.startswith(client_word):
                assert inside.startswith(" " + client_word), r.line
            else:
                assert inside.endswith(" ") and not inside.endswith("  "), r.line  # against the server lane
    assert len(bars) == 1, bars


@pytest.mark.lab
def test_hello_calls_between_packets(tmp_path: Path) -> None:
    out = tmp_path / "hello.pcapng"
    rows, data = run("hello", out)
    check_every_call_once(rows, data, WORDS)
    check_lanes(rows, "client")
    pk = [r for r in rows if r.kind == "packet"]
    flags = tshark_fields(out, "frame.number", "tcp.flags.syn", "tcp.flags.ack", extra=IP_ONLY)
    assert len(flags) == len(pk)
    syn_no = next(int(no) for no, s, a in flags if s in ON and a not in ON)
    synack_no = next(int(no) for no, s, a in flags if s in ON and a in ON)
    syn = index(rows, lambda r: r.no == syn_no)
    synack = index(rows, lambda r: r.no == synack_no)
    listen = index(rows, lambda r: r.text.startswith("server listen("))
    accept = index(rows, lambda r: r.text.startswith("server accept()"))
    assert listen < syn < synack < accept, "the handshake completes before accept() returns"
    # accept() blocked from before the client's connect() until the handshake was done.
    acc = next(c for c in data["calls"] if c["call"] == "accept")
    assert f"fd {acc['result']} ({acc['remote']})" in rows[accept].text
    assert rows[accept].note.startswith("waited ") and rows[accept].note.endswith(" ms")
    waited_ms = float(rows[accept].note.split()[1])
    assert abs(waited_ms - (acc["t_exit_ns"] - acc["t_enter_ns"]) / 1e6) < 0.051
    # scenarios/hello.py: the client sends b"client" (6 bytes), the server answers
    # b"hello, client" (13 bytes); each recv() row follows the segment it read.
    to_server = index(rows, lambda r: r.kind == "packet" and "len=6 " in r.text and "▶" in r.text)
    to_client = index(rows, lambda r: r.kind == "packet" and "len=13 " in r.text and "◀" in r.text)
    fin = index(rows, lambda r: r.kind == "packet" and "FIN" in r.text and "▶" in r.text)
    assert to_server < index(rows, lambda r: r.text.startswith("server recv(1024) → 6 bytes"))
    assert to_client < index(rows, lambda r: r.text.startswith("client recv(1024) → 13 bytes"))
    assert fin < index(rows, lambda r: r.text.startswith("server recv(1024) → 0 bytes (peer closed)"))
    # Calls that return at once carry no duration.
    assert next(r for r in rows if r.text.startswith("server bind(")).note == ""
    # Chinese labels, the same rows; the one TCP stream keeps all its calls.
    zh = parse(tracer("replay", out, "--no-tui", "--lang", "zh").stdout)
    check_every_call_once(zh, data, {"client": "客户端", "server": "服务器"})
    check_lanes(zh, "客户端")
    zh_accept = next(r for r in zh if r.text.startswith("服务器 accept()"))
    assert f"描述符 {acc['result']}" in zh_accept.text and zh_accept.note.startswith("等待了 ")
    assert any(r.text.startswith("服务器 recv(1024) → 0 字节（对方已关闭）") for r in zh)
    assert [(r.kind, r.no, r.time) for r in zh] == [(r.kind, r.no, r.time) for r in rows]
    assert [r.line for r in parse(tracer("replay", out, "--no-tui", "--stream", "0").stdout)] == [
        r.line for r in rows]
    assert not calls_only(parse(tracer("replay", out, "--no-tui", "--stream", "1").stdout))
    # --explain puts the scenario's source line under a call row.
    explained = tracer("replay", out, "--no-tui", "--explain").stdout.splitlines()
    i = next(k for k, line in enumerate(explained) if "server accept()" in line)
    src = acc["source"]
    assert explained[i + 1].strip() == f"{Path(src['file']).name}:{src['line']}  {src['code']}"


@pytest.mark.lab
def test_refused_connect_names_the_rst(tmp_path: Path) -> None:
    out = tmp_path / "refused.pcapng"
    rows, data = run("refused", out)
    check_every_call_once(rows, data, WORDS)
    rst = [int(no) for no, r in tshark_fields(out, "frame.number", "tcp.flags.reset", extra=IP_ONLY) if r in (
        "1", "True")]
    assert len(rst) == 1
    connect = [r for r in rows if "connect()" in r.text]
    assert len(connect) == 1 and connect[0].no == 1, "connect() caused the SYN, packet 1"
    assert f"client connect() → ECONNREFUSED (packet {rst[0]})" in connect[0].text
    close = index(rows, lambda r: r.text.startswith("client close()"))
    assert close > index(rows, lambda r: r.no == rst[0])


@pytest.mark.lab
def test_udp_recvfrom_follows_its_datagram(tmp_path: Path) -> None:
    out = tmp_path / "udp.pcapng"
    rows, data = run("udp-echo", out)
    check_every_call_once(rows, data, WORDS)
    check_lanes(rows, "client")
    src = [f"{ip}:{port}" for ip, port in tshark_fields(out, "ip.src", "udp.srcport", extra=IP_ONLY)]
    # scenarios/udp-echo.py: 10 bytes each way; the server reads the client's datagram
    # (packet 1), the client reads the answer (packet 2).
    for side, no in (("server", 1), ("client", 2)):
        got = index(rows, lambda r, s=side: r.text.startswith(f"{s} recvfrom(2048) → 10 bytes from"))
        assert rows[got].text.endswith(src[no - 1]), rows[got].text
        assert got > index(rows, lambda r, n=no: r.no == n)


def test_capture_without_calls_has_no_call_rows() -> None:
    proc = tracer("replay", CAPTURES / "hello.pcap", "--no-tui")
    assert "socket calls" not in proc.stdout and not calls_only(parse(proc.stdout))


@pytest.mark.lab
def test_two_connections_each_stream_keeps_its_calls(tmp_path: Path) -> None:
    sc = tmp_path / "two.py"
    sc.write_text(TWO)
    out = tmp_path / "two.pcapng"
    rows, data = run(sc, out)
    check_every_call_once(rows, data, WORDS)
    check_lanes(rows, "client")
    f = tshark_fields(out, "tcp.stream", "ip.src", "tcp.srcport", "tcp.flags.syn", "tcp.flags.ack",
                      extra=IP_ONLY)
    clients = {int(st): f"{ip}:{port}" for st, ip, port, syn, ack in f if syn in ON and ack not in ON}
    assert set(clients) == {0, 1}
    for n, client in clients.items():
        # With both streams shown, accept() is tagged with the stream of the connection it returned.
        acc = next(r for r in rows if r.text.startswith("server accept()") and r.text.endswith(f"({client})"))
        assert acc.tag == f"t{n}"
        view = parse(tracer("replay", out, "--no-tui", "--stream", str(n)).stdout)
        assert [r.no for r in view if r.kind == "packet"] == [
            no for no, (st, *_) in enumerate(f, 1) if st == str(n)]
        texts = [r.text for r in view if r.kind == "call"]
        assert [t for t in texts if t.startswith("server accept()")] == [acc.text]
        # The listener serves both connections: its calls are in both views.
        assert sum(t.startswith("server listen(") for t in texts) == 1
        assert sum(t.startswith("client socket(") for t in texts) == 1
        # scenarios above: the server reads b"one" (3 bytes) on the first connection, b"four" on the second.
        assert [t for t in texts if t.startswith("server recv(")] == [f"server recv(10) → {3 + n} bytes"]


@pytest.mark.lab
def test_backlog_full_connect_timeout_is_a_row(tmp_path: Path) -> None:
    """The second client's connect() caused a SYN and its retransmissions and then raised
    TimeoutError: no packet explains it, so its return is a row of its own, after the last
    SYN of its stream (issue 12); the first client's successful connect() returns as a row too."""
    out = tmp_path / "backlog-full.pcapng"
    rows, data = run("backlog-full", out)
    check_every_call_once(rows, data, WORDS)
    (failed,) = [c for c in data["calls"] if c["call"] == "connect" and c["errno"]]
    assert failed["errno"] == "TimeoutError" and failed["error_packet"] is None
    (stream,) = {p["stream"] for p in data["packets"] if p["cause"]["call_id"] == failed["id"]}
    syns = [p["no"] for p in data["packets"] if p["flags"] == "S" and p["stream"] == stream]
    assert len(syns) > 1, "the SYN was retransmitted"
    row = index(rows, lambda r: r.kind == "call" and r.text.startswith("client connect(")
                and "TimeoutError" in r.text)
    assert row > index(rows, lambda r: r.no == syns[-1])
    ok = [r for r in calls_only(rows)
          if r.text.startswith("client connect(") and r.text.endswith("→ connected")]
    assert len(ok) == 1


@pytest.mark.lab
def test_a_run_that_sent_no_packet_shows_all_its_calls(tmp_path: Path) -> None:
    """A client whose connect() fails before any packet (no route): the capture is empty, and the
    ladder still shows every recorded call and its errno, in time order (issue 12); so does a replay."""
    out = tmp_path / "unreachable.pcapng"
    client = "python3 -c \"import socket; s = socket.socket(); s.connect(('10.99.99.1', 80))\""
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    proc = subprocess.run([sys.executable, "-m", "tracer", "trace", "--no-tui", "--out", str(out),
                           "--client", client], capture_output=True, text=True, encoding="utf-8", cwd=REPO,
                          env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)
    # The client's own traceback is forwarded as "[client] ..." lines; tracer's would start a line.
    assert not re.search(r"^Traceback", proc.stderr, re.M) and out.exists(), proc.stderr
    data: dict[str, Any] = json.loads(tracer("export", out, "--format", "json").stdout)
    assert data["packets"] == [] and data["calls"]
    assert any(c["call"] == "connect" and c["errno"] == "ENETUNREACH" for c in data["calls"])
    calls = sorted(data["calls"], key=lambda c: (c["t_exit_ns"] or c["t_enter_ns"], c["id"]))
    for ladder in (proc.stdout, tracer("replay", out, "--no-tui").stdout):
        shown = calls_only(parse(ladder))
        assert [r.text.split("(", 1)[0] for r in shown] == [f"client {c['call']}" for c in calls]
        for r, c in zip(shown, calls, strict=True):
            assert (c["errno"] or "") in r.text, (r.text, c)
        times = [float(r.time) for r in shown]
        assert times == sorted(times) and times[0] == 0.0
