"""``tracer run``: the built-in scenarios through the real lab, kernel and tshark.

Each test runs ``python -m tracer run`` as a user would (a child process, as root,
in private network namespaces) and checks the saved pcapng with tshark and with
tracer's own JSON export of that file: the causes come back from the file.
Expectations come from the scenarios' code and RFC 9293 (the side that closes
first ends in TIME_WAIT), and the kernel's ``ss`` output recorded in the file.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ns_pids, tshark_fields, wait_for
from helpers.cli import BOOM, run_tracer
from helpers.kernel import witness_instances
from tracer.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PRIVILEGES, EXIT_USAGE
from tracer.lab.netns import CLIENT_IP, SERVER_IP, list_namespaces

pytestmark = pytest.mark.tshark

REPO = Path(__file__).resolve().parents[1]
# tshark 4.0 lists tracer's pcapng Custom Block (calls, kernel states) as one more,
# empty frame: count only the captured packets.
IP_ONLY = ("-Y", "ip or ipv6")
ROW = re.compile(r"^\s*\d+\s+-?\d+\.\d{6}\s")

HANG_PORT = 7001
HANG = f"""
import socket, time
PROTO = "tcp"
PORT = {HANG_PORT}
def server(host, port):
    s = socket.socket()
    s.bind((host, port))
    s.listen()
    c, _ = s.accept()
    time.sleep(100)
def client(host, port):
    s = socket.socket()
    s.connect((host, port))
    s.recv(10)
"""


def rows(ladder: str) -> list[str]:
    return [line for line in ladder.splitlines() if ROW.match(line)]


def export(path: Path) -> dict[str, Any]:
    proc = run_tracer("export", path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def run_ok(name: str, out: Path, *extra: str) -> dict[str, Any]:
    proc = run_tracer("run", name, "--no-tui", "--out", out, *extra)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.is_file()
    data = export(out)
    # `tracer replay` of the saved file prints the same ladder rows, causes included.
    replay = run_tracer("replay", out, "--no-tui")
    assert replay.returncode == 0, replay.stderr
    assert rows(replay.stdout) == rows(proc.stdout) and len(rows(proc.stdout)) == len(data["packets"])
    # Every packet carries its cause as a comment that tshark shows, and the cause
    # written at run time is the one the saved file gives back (calls are in the file).
    comments = [r[0] for r in tshark_fields(out, "frame.comment", extra=IP_ONLY)]
    assert len(comments) == len(data["packets"]) > 0
    for c, p in zip(comments, data["packets"], strict=True):
        cause = p["cause"]
        assert cause["inferred"] is False or cause["by"] != "call", p
        head = f"[{cause['side']} {cause['call'] + '()' if cause['call'] else 'kernel'}]"
        assert c.startswith(head), (c, cause)
    return data


def _established(prefix: str, port: int) -> bool:
    """Whether ``ss`` in one of the lab's namespaces shows a connection to ``port`` ESTABLISHED."""
    for ns in list_namespaces():
        if ns.startswith(prefix):
            out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-tnH", "state", "established",
                                  f"( sport = :{port} )"], capture_output=True, text=True).stdout
            if out.strip():
                return True
    return False


def kernel_at(data: dict[str, Any], label: str, a: str, b: str) -> dict[str, str]:
    """The kernel's TCP state of each endpoint of connection a-b at ``label``; CLOSED if not listed."""
    out = {a: "CLOSED", b: "CLOSED"}
    for k in data["kernel_states"]:
        if k["label"] == label and k["proto"] == "tcp" and {k["local"], k["remote"]} == {a, b}:
            out[k["local"]] = k["state"]
    return out


def first(data: dict[str, Any], flags: str) -> dict[str, Any]:
    return next(p for p in data["packets"] if p["flags"] == flags)


def test_list_shows_the_three_scenarios() -> None:
    for lang, word in (("en", "UDP echo"), ("zh", "UDP 回显")):
        proc = run_tracer("list", "--lang", lang)
        assert proc.returncode == 0, proc.stderr
        names = {line.split()[0] for line in proc.stdout.splitlines()}
        assert {"hello", "refused", "udp-echo"} <= names
        assert word in proc.stdout


@pytest.mark.lab
def test_hello(tmp_path: Path) -> None:
    data = run_ok("hello", tmp_path / "hello.pcapng")
    pk = data["packets"]
    syn = pk[0]
    assert (syn["flags"], syn["src"].rsplit(":", 1)[0]) == ("S", CLIENT_IP)
    cause = syn["cause"]
    assert (cause["side"], cause["call"], cause["inferred"]) == ("client", "connect", False)
    synack = first(data, "SA")
    assert synack["src"].rsplit(":", 1)[0] == SERVER_IP and synack["cause"]["by"] == "kernel"
    fins = [i for i, p in enumerate(pk) if "F" in p["flags"]]
    assert fins and fins[0] > pk.index(synack)
    # The client closes first (scenarios/hello.py): RFC 9293 puts it in TIME_WAIT, and the
    # kernel's own report, recorded at the end, agrees with every inferred final state.
    client_ep, server_ep = syn["src"], syn["dst"]
    assert kernel_at(data, "end", client_ep, server_ep) == {client_ep: "TIME_WAIT", server_ep: "CLOSED"}
    assert pk[-1]["states"] == kernel_at(data, "end", client_ep, server_ep)
    # The client calls mark("connected") after connect() returns: the states inferred
    # after the last packet before that moment are the kernel's.
    t_mark = min(k["t_ns"] for k in data["kernel_states"] if k["label"] == "connected")
    before = [p for p in pk if p["time_ns"] <= t_mark]
    assert [p["flags"] for p in before] == ["S", "SA", "A"]
    assert before[-1]["states"] == kernel_at(data, "connected", client_ep, server_ep)
    # The calls came back from the file, with their source lines.
    calls = [c["call"] for c in data["calls"]]
    assert {"listen", "accept", "connect", "sendall", "recv", "close"} <= set(calls)
    assert all(c["source"]["file"].endswith("hello.py") for c in data["calls"])
    # Nothing lost: every TCP segment the server's kernel counted crossed the sniffer.
    extra = data["meta"]["extra"]
    assert extra["capture.kernel_drops"] == "0" and int(extra["capture.frames"]) == len(pk)
    counted = sum(int(extra[f"kernel.Tcp.{k}"]) for k in ("OutSegs", "RetransSegs", "InSegs"))
    assert counted == sum(1 for p in pk if p["proto"] == "tcp")


@pytest.mark.lab
def test_hello_on_loopback(tmp_path: Path) -> None:
    data = run_ok("hello", tmp_path / "lo.pcapng", "--loopback")
    assert data["packets"][0]["flags"] == "S"
    assert data["packets"][0]["src"].startswith("127.0.0.1:")


@pytest.mark.lab
def test_refused(tmp_path: Path) -> None:
    data = run_ok("refused", tmp_path / "refused.pcapng")
    flags = [(p["src"].rsplit(":", 1)[0], p["flags"]) for p in data["packets"]]
    assert flags[0] == (CLIENT_IP, "S")
    assert any(ip == SERVER_IP and "R" in f for ip, f in flags[1:])
    connect = next(c for c in data["calls"] if c["call"] == "connect")
    assert connect["errno"] == "ECONNREFUSED"


@pytest.mark.lab
def test_udp_echo(tmp_path: Path) -> None:
    out = tmp_path / "udp.pcapng"
    data = run_ok("udp-echo", out)
    assert [(p["proto"], p["src"].rsplit(":", 1)[0]) for p in data["packets"]] == [
        ("udp", CLIENT_IP), ("udp", SERVER_IP)]
    # scenarios/udp-echo.py sends b"hello, udp" and the server answers it in upper case.
    payloads = [bytes.fromhex(r[0].replace(":", "")) for r in tshark_fields(out, "data.data", extra=IP_ONLY)]
    assert payloads == [b"hello, udp", b"HELLO, UDP"]
    assert [p["cause"]["call"] for p in data["packets"]] == ["sendto", "sendto"]


@pytest.mark.lab
def test_without_privileges_one_line_exit_4() -> None:
    proc = run_tracer("run", "hello", "--no-tui", prefix=(
        "setpriv", "--bounding-set", "-net_admin,-net_raw,-sys_admin", "--"))
    assert proc.returncode == EXIT_PRIVILEGES, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracer: error: "), proc.stderr
    assert "CAP_NET_ADMIN+CAP_NET_RAW+CAP_SYS_ADMIN" in lines[0]
    assert "tracer replay captures/hello.pcap" in lines[0]


@pytest.mark.lab
def test_failing_scenario_still_saves(tmp_path: Path) -> None:
    sc = tmp_path / "boom.py"
    sc.write_text(BOOM)
    out = tmp_path / "boom.pcapng"
    proc = run_tracer("run", sc, "--no-tui", "--out", out)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "tracer: error: the scenario's server failed: RuntimeError: boom in the server")
    flags = [r[0] for r in tshark_fields(out, "tcp.flags.str", extra=IP_ONLY)]
    assert len(flags) >= 4  # handshake and the client's data at least


@pytest.mark.lab
def test_hanging_scenario_times_out_and_saves(tmp_path: Path) -> None:
    sc = tmp_path / "hang.py"
    sc.write_text(HANG)
    out = tmp_path / "hang.pcapng"
    proc = run_tracer("run", sc, "--no-tui", "--out", out, "--timeout", "1")
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "did not finish within 1 s" in proc.stderr.splitlines()[-1]
    assert len(tshark_fields(out, "frame.number", extra=IP_ONLY)) >= 3  # the handshake


@pytest.mark.lab
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_and_leaves_nothing_behind(tmp_path: Path, sig: signal.Signals) -> None:
    sc = tmp_path / "hang.py"
    sc.write_text(HANG)
    out = tmp_path / "sig.pcapng"
    child = subprocess.Popen([sys.executable, "-m", "tracer", "run", str(sc), "--no-tui", "--out", str(out),
                              "--timeout", "60"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    prefix = f"trcrun-{child.pid}-"
    try:
        # Wait for the sniffer, the server and the client (3 processes in the lab), then for
        # the handshake to be complete (the server's side ESTABLISHED: its last ACK arrived).
        pids = wait_for(lambda: p if len(p := ns_pids(prefix)) >= 3 else set(), 10,
                        "the sniffer, the server and the client in the lab")
        wait_for(lambda: _established(prefix, HANG_PORT), 10, "the handshake of the hanging scenario")
        child.send_signal(sig)
        _, err = child.communicate(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]
    assert witness_instances(child.pid) == []  # the kernel witness's tracefs instance is gone too
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid
    flags = [r[0] for r in tshark_fields(out, "tcp.flags.str", extra=IP_ONLY)]
    assert len(flags) >= 3  # the handshake was saved


@pytest.mark.lab
def test_a_killed_run_is_cleaned_at_the_next_start(tmp_path: Path) -> None:
    """SIGKILL leaves the lab behind; the next run finds it stale and removes it."""
    sc = tmp_path / "hang.py"
    sc.write_text(HANG)
    child = subprocess.Popen([sys.executable, "-m", "tracer", "run", str(sc), "--no-tui", "--out",
                              str(tmp_path / "k.pcapng"), "--timeout", "60"], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prefix = f"trcrun-{child.pid}-"
    pids = wait_for(lambda: p if len(p := ns_pids(prefix)) >= 3 else set(), 10,
                    "the sniffer, the server and the client in the lab")
    child.kill()  # no clean-up can run
    child.wait()
    left = [ns for ns in list_namespaces() if ns.startswith(prefix)]
    assert left  # the kill really left the lab behind
    data = run_ok("hello", tmp_path / "next.pcapng")  # the next run starts ...
    assert data["packets"][0]["flags"] == "S"
    assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]  # ... and removed it
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), pid


@pytest.mark.lab
def test_unknown_or_invalid_scenario_is_one_line(tmp_path: Path) -> None:
    proc = run_tracer("run", "no-such-scenario")
    assert proc.returncode == EXIT_USAGE
    want = "tracer: error: no scenario named 'no-such-scenario'; see: tracer list"
    assert proc.stderr.splitlines() == [want]
    proc = run_tracer("run", "synack-lsot")  # a typo: the closest names are offered
    assert proc.returncode == EXIT_USAGE
    assert proc.stderr.splitlines() == [
        "tracer: error: no scenario named 'synack-lsot'; did you mean synack-lost? see: tracer list"]
    bad = tmp_path / "bad.py"
    bad.write_text("PORT = 1\n")
    proc = run_tracer("run", bad, "--lang", "zh")
    assert proc.returncode == EXIT_INPUT
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracer: 错误: ") and "client(host, port)" in lines[0]
