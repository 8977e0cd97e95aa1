"""``tracer trace``: programs tracer did not write, on the real kernel, under the real strace.

C programs in the classic textbook style (``tests/c/``, compiled here with gcc) and
Python programs run as plain processes in the lab's two namespaces.  Each trace is
checked against views that do not come from tracer's parser: tshark for the
packets, the programs' own printed lines (pids, fds, ports, bytes), and strace's
output file read by the small oracle below.  No mocks: real processes, real kernel.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import ns_pids, tshark_fields
from tracer.core.analysis import Analysis
from tracer.core.model import SocketCall
from tracer.core.pipeline import analyze
from tracer.core.reasons import CALL_NAMES
from tracer.core.trace import Trace
from tracer.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_MISSING_TOOL
from tracer.export.json_export import write_json
from tracer.lab import strace as st
from tracer.lab.netns import CLIENT_IP, SERVER_IP, Lab, list_namespaces
from tracer.lab.trace_cmd import strace_has_ns, trace_programs
from tracer.pcap.reader import read_capture

pytestmark = [pytest.mark.lab, pytest.mark.tshark]

REPO = Path(__file__).resolve().parents[1]
C_DIR = Path(__file__).resolve().parent / "c"
IP_ONLY = ("-Y", "ip or ipv6")
PY = sys.executable


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C programs of tests/c, compiled with gcc."""
    out = tmp_path_factory.mktemp("cbin")
    for src in sorted(C_DIR.glob("*.c")):
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out / src.stem), str(src)],
                       check=True)
    return out


def tracer(*args: str | Path, timeout: float = 60, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    return subprocess.run([PY, "-m", "tracer", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", cwd=REPO, env=env or base, stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False)


def export(path: Path) -> dict[str, Any]:
    """The saved file read back and exported as JSON: the calls and causes come from the file."""
    trace = read_capture(path)
    buf = io.StringIO()
    write_json(trace, analyze(trace), buf)
    data: dict[str, Any] = json.loads(buf.getvalue())
    return data


# --- the oracle: strace's file, read with nothing but a few regular expressions -------------

_HEAD = re.compile(r"^(\d+) +\d+\.\d+ (.*)$")
_SOCK_ARG = re.compile(r"^(\w+)\((\d+)<(?:TCP|UDP|TCPv6|UDPv6):\[")
_SOCKET_RET = re.compile(r"^socket\(.*\) += (\d+)<(?:TCP|UDP|TCPv6|UDPv6):\[")


def oracle(path: Path) -> dict[int, list[tuple[str, int, str | None]]]:
    """Per thread: (syscall, fd, errno) of each syscall on a TCP/UDP socket, in order.

    Without getsockopt, and fcntl/ioctl other than the O_NONBLOCK switches (not calls
    in tracer's vocabulary).
    """
    pending: dict[str, str] = {}
    out: dict[int, list[tuple[str, int, str | None]]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        m = _HEAD.match(raw)
        if not m:
            continue
        tid, rest = m.groups()
        if rest.endswith(" <unfinished ...>"):
            pending[tid] = rest[: -len(" <unfinished ...>")]
            continue
        r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
        if r:
            rest = pending.pop(tid) + r.group(1)
        if " = ? ERESTART" in rest:
            continue
        errno = re.search(r"\) += -1 (E[A-Z]+) ", rest)
        s = _SOCKET_RET.match(rest)
        a = _SOCK_ARG.match(rest)
        if s:
            call, fd = "socket", int(s.group(1))
        elif a:
            call, fd = a.group(1), int(a.group(2))
            if call == "getsockopt" or (call == "fcntl" and ", F_SETFL, " not in rest) or (
                    call == "ioctl" and ", FIONBIO, " not in rest):
                continue
        else:
            continue
        out.setdefault(int(tid), []).append((call, fd, errno.group(1) if errno else None))
    return out


def syscalls_of(calls: list[dict[str, Any]], side: str) -> dict[int, list[tuple[str, int, str | None]]]:
    """The same view of tracer's calls (those a program made, not the kernel's closes at exit)."""
    out: dict[int, list[tuple[str, int, str | None]]] = {}
    for c in sorted(calls, key=lambda c: (c["tid"], c["t_enter_ns"])):
        if c["side"] == side and "by" not in c["args"] and c["args"].get("syscall") != "close_range":
            out.setdefault(c["tid"], []).append((c["args"].get("syscall", c["call"]), c["fd"], c["errno"]))
    return out


def check_against_strace(data: dict[str, Any], logs: Path, sides: tuple[str, ...]) -> None:
    for side in sides:
        expected = oracle(logs / f"{side}.strace")
        assert expected and syscalls_of(data["calls"], side) == expected, side


# --- helpers over the exported JSON ----------------------------------------------------------


def calls_by_id(data: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["id"]: c for c in data["calls"]}


def caller(data: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """The call a packet is attributed to (it must be one, not an inference)."""
    cause = p["cause"]
    assert cause["by"] == "call" and cause["inferred"] is False and cause["call_id"] is not None, p
    c: dict[str, Any] = calls_by_id(data)[cause["call_id"]]
    assert c["call"] == cause["call"]
    return c


def grab(pattern: str, text: str) -> tuple[str, ...]:
    """The groups of ``pattern``'s first match in ``text`` (which must match)."""
    m = re.search(pattern, text, re.M)
    assert m is not None, (pattern, text)
    return m.groups()


def outputs(data: dict[str, Any], side: str) -> str:
    text: str = data["meta"]["extra"][f"trace.{side}.output"]
    return text


def ip_port(ep: str) -> tuple[str, int]:
    host, _, port = ep.rpartition(":")
    return host, int(port)


def check_wire(path: Path, data: dict[str, Any]) -> None:
    """tshark reads the same packets, in the same order, as the export has."""
    rows = tshark_fields(path, "ip.src", "tcp.srcport", "udp.srcport", extra=IP_ONLY)
    assert len(rows) == len(data["packets"]) > 0
    for (src, tport, uport), p in zip(rows, data["packets"], strict=True):
        assert p["src"] == f"{src}:{tport or uport}", (p, src, tport, uport)


# --- the tests --------------------------------------------------------------------------------


def test_tcp_hello_in_c(bins: Path, tmp_path: Path) -> None:
    out, logs = tmp_path / "hello.pcapng", tmp_path / "logs"
    res = trace_programs(f"{bins}/tcp_server", f"{bins}/tcp_client {{server}}", out, strace_dir=logs)
    assert res.error is None and not res.interrupted
    data = export(out)
    check_wire(out, data)
    check_against_strace(data, logs, ("server", "client"))
    srv_out, cli_out = outputs(data, "server"), outputs(data, "client")
    # The programs' own words: "pid N: connected fd 3 to ...", "pid N: accepted fd 4 from IP:PORT".
    cpid, cfd = map(int, grab(r"pid (\d+): connected fd (\d+) to ", cli_out))
    spid, afd, peer = grab(r"pid (\d+): accepted fd (\d+) from (\S+)$", srv_out)
    pk = data["packets"]
    syn = pk[0]
    assert syn["flags"] == "S" and syn["src"] == peer and ip_port(peer)[0] == CLIENT_IP
    c = caller(data, syn)
    assert (c["call"], c["side"], c["pid"], c["process"], c["fd"]) == (
        "connect", "client", cpid, "tcp_client", cfd)
    assert c["args"]["address"] == f"{SERVER_IP}:7777" and c["errno"] is None
    synack = next(p for p in pk if p["flags"] == "SA")
    assert synack["cause"]["by"] == "kernel" and synack["cause"]["side"] == "server"
    assert synack["cause"]["reason"] == "listen_queue_synack" and synack["cause"]["inferred"] is False
    accept = next(c for c in data["calls"] if c["call"] == "accept")
    assert (accept["pid"], accept["result"], accept["remote"]) == (int(spid), afd, peer)
    # The data: the client's write() of "client\n" and the server's write() of "hello, client\n".
    data_pk = [p for p in pk if p["len"] > 0]
    assert [p["len"] for p in data_pk] == [7, 14]
    sends = [caller(data, p) for p in data_pk]
    assert [(s["call"], s["args"]["syscall"], s["pid"]) for s in sends] == [
        ("send", "write", cpid), ("send", "write", int(spid))]
    assert "hello, client" in cli_out
    # FINs: the server closes first (it answers and closes), then the client after read() == 0.
    fins = [p for p in pk if "F" in p["flags"]]
    closers = [caller(data, p) for p in fins]
    assert [(c["call"], c["side"], c["pid"]) for c in closers] == [("close", "server", int(spid)),
                                                                   ("close", "client", cpid)]
    assert fins[0]["cause"]["reason"] == "close_fin" and closers[0]["fd"] == int(afd)
    assert all(c["process"] == "tcp_server" for c in data["calls"] if c["side"] == "server")
    # The kernel's own view at the end (ss): the server closed first, so it is in TIME_WAIT
    # (RFC 9293), and the states tracer inferred after the last packet are the kernel's.
    server_ep = syn["dst"]
    end = {k["local"]: k["state"] for k in data["kernel_states"]
           if k["label"] == "end" and k["proto"] == "tcp" and {k["local"], k["remote"]} == {peer, server_ep}}
    assert end == {server_ep: "TIME_WAIT"}
    assert pk[-1]["states"] == {server_ep: "TIME_WAIT", peer: "CLOSED"}


def test_udp_echo_in_c(bins: Path, tmp_path: Path) -> None:
    out, logs = tmp_path / "udp.pcapng", tmp_path / "logs"
    res = trace_programs(f"{bins}/udp_server -n 2", f"{bins}/udp_client {{server}} 9000 one two", out,
                         strace_dir=logs)
    assert res.error is None
    data = export(out)
    check_wire(out, data)
    check_against_strace(data, logs, ("server", "client"))
    payloads = [bytes.fromhex(r[0].replace(":", "")) for r in tshark_fields(out, "data.data", extra=IP_ONLY)]
    assert payloads == [b"one", b"ONE", b"two", b"TWO"]
    senders = [caller(data, p) for p in data["packets"]]
    assert [(s["call"], s["side"]) for s in senders] == [("sendto", "client"), ("sendto", "server")] * 2
    client_ep = data["packets"][0]["src"]
    for s, p in zip(senders, data["packets"], strict=True):
        assert s["args"]["address"] == p["dst"] and s["result"] == "3"
    srv_pid = int(grab(r"pid (\d+): bound fd 3 to port 9000", outputs(data, "server"))[0])
    recvs = [c for c in data["calls"] if c["side"] == "server" and c["call"] == "recvfrom"]
    assert [(c["pid"], c["result"]) for c in recvs] == [(srv_pid, f"3 from {client_ep}")] * 2
    assert outputs(data, "client").count("received 3 bytes") == 2


def test_forking_server_fin_comes_from_the_child(bins: Path, tmp_path: Path) -> None:
    out, logs = tmp_path / "fork.pcapng", tmp_path / "logs"
    # Each client writes 0.2 s after connecting: the child waits in read() while the parent
    # closes its copy, as in the textbook.  (The other order, a child done before its parent
    # closed, is a limit of attribution: docs/trace.md.)
    client = f"{bins}/tcp_client -d 200 {{server}} & {bins}/tcp_client -d 200 {{server}}; wait"
    res = trace_programs(f"{bins}/tcp_server -f -n 2", client, out, strace_dir=logs)
    assert res.error is None
    data = export(out)
    check_wire(out, data)
    check_against_strace(data, logs, ("server", "client"))
    srv_out = outputs(data, "server")
    parent = int(grab(r"pid (\d+): listening", srv_out)[0])
    # The parent says "accepted fd 4 from IP:PORT" then "forked child C", per client (a child's
    # own lines may come between).
    mine = "\n".join(line for line in srv_out.splitlines() if line.startswith(f"pid {parent}: "))
    children = dict(re.findall(r"accepted fd 4 from (\S+)\npid \d+: forked child (\d+)", mine))
    assert len(children) == 2
    for peer, child in children.items():
        stream = [p for p in data["packets"] if peer in (p["src"], p["dst"])]
        from_server = [p for p in stream if p["dst"] == peer]
        reply = next(p for p in from_server if p["len"] > 0)
        fin = next(p for p in from_server if "F" in p["flags"])
        for p, call in ((reply, "send"), (fin, "close")):
            c = caller(data, p)
            assert (c["call"], c["pid"], c["process"]) == (call, int(child), "tcp_server"), (p, c)
        # The parent closed its copy first: a close() that sent nothing and says who still had it.
        closes = [c for c in data["calls"] if c["pid"] == parent and c["call"] == "close" and c["fd"] == 4
                  and c["args"].get("still_open_in") == f"pid {child}"]
        assert len(closes) == 1 and closes[0]["local"] is None


SERVER_PY = """
import os, socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("", 7777))
srv.listen()
print("pid", os.getpid(), flush=True)
def handle(conn, peer):
    print("thread", threading.get_native_id(), "serves", "%s:%d" % peer, flush=True)
    with conn:
        conn.sendall(b"hello, " + conn.recv(100))
threads = []
for _ in range(2):
    conn, peer = srv.accept()
    threads.append(threading.Thread(target=handle, args=(conn, peer)))
    threads[-1].start()
for t in threads:
    t.join()
srv.close()
"""

CLIENT_PY = """
import os, select, socket
# Non-blocking connect: EINPROGRESS, then wait until writable.
s = socket.socket()
s.setblocking(False)
print("connect_ex", s.connect_ex((os.environ["TRACER_SERVER"], 7777)), flush=True)
select.select([], [s], [], 5)
s.setblocking(True)
s.sendall(b"one\\n")
print(s.recv(100), flush=True)
s.close()
with socket.create_connection((os.environ["TRACER_SERVER"], 7777)) as t:
    t.sendall(b"two\\n")
    print(t.recv(100), flush=True)
"""


def test_threaded_python_server_and_nonblocking_python_client(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(SERVER_PY)
    (tmp_path / "client.py").write_text(CLIENT_PY)
    out, logs = tmp_path / "py.pcapng", tmp_path / "logs"
    res = trace_programs(f"{PY} {tmp_path}/server.py", f"{PY} {tmp_path}/client.py", out, strace_dir=logs)
    assert res.error is None
    data = export(out)
    check_wire(out, data)
    check_against_strace(data, logs, ("server", "client"))
    srv_out = outputs(data, "server")
    pid = int(grab(r"^pid (\d+)$", srv_out)[0])
    serving = {peer: int(tid) for tid, peer in re.findall(r"thread (\d+) serves (\S+)", srv_out)}
    assert len(serving) == 2 and pid not in serving.values()
    name = Path(PY).name
    for peer, tid in serving.items():
        from_server = [p for p in data["packets"] if p["dst"] == peer]
        for p, call in ((next(p for p in from_server if p["len"] > 0), "send"),
                        (next(p for p in from_server if "F" in p["flags"]), "close")):
            c = caller(data, p)
            assert (c["call"], c["pid"], c["tid"], c["process"]) == (call, pid, tid, name), (p, c)
    # The client's first connect() was non-blocking: EINPROGRESS, and still the SYN's cause.
    assert "connect_ex 115" in outputs(data, "client")  # EINPROGRESS
    syns = [p for p in data["packets"] if p["flags"] == "S"]
    connects = [caller(data, p) for p in syns]
    assert [c["errno"] for c in connects] == ["EINPROGRESS", None]
    assert all(c["call"] == "connect" and c["process"] == name for c in connects)
    blocking = [c["args"]["blocking"] for c in data["calls"]
                if c["call"] == "setblocking" and c["side"] == "client"]
    assert blocking[:2] == ["False", "True"]


def test_nonblocking_connect_in_c(bins: Path, tmp_path: Path) -> None:
    out, logs = tmp_path / "nb.pcapng", tmp_path / "logs"
    res = trace_programs(f"{bins}/tcp_server", f"{bins}/tcp_client -b {{server}}", out, strace_dir=logs)
    assert res.error is None
    data = export(out)
    check_against_strace(data, logs, ("client",))
    assert "connect: EINPROGRESS" in outputs(data, "client")
    c = caller(data, data["packets"][0])
    assert (c["call"], c["errno"], c["result"]) == ("connect", "EINPROGRESS", None)
    # The kernel queued the SYN inside this very call: its stack runs through connect() in the
    # client's thread.  (Not a time window: strace's stamps of the call were seen 1 ms off the
    # kernel's queue time either way, and the capture stamps the SYN where it arrives.)
    origin = data["packets"][0]["origin"]
    assert (origin["kind"], origin["what"], origin["tid"]) == ("call", "connect", c["tid"])
    assert "tcp_connect" in origin["stack"]
    modes = [(x["args"]["syscall"], x["args"]["blocking"]) for x in data["calls"]
             if x["call"] == "setblocking"]
    assert modes == [("fcntl", "False"), ("fcntl", "True")]


def test_crash_still_saves_with_a_warning(bins: Path, tmp_path: Path) -> None:
    out = tmp_path / "crash.pcapng"
    proc = tracer("trace", "--server", f"{bins}/tcp_server", "--client", f"{bins}/tcp_client -c {{server}}",
                  "--no-tui", "--out", out)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr
    err = proc.stderr.splitlines()
    assert err[-1] == "tracer: error: the client command failed (exit status 139: Segmentation fault)"
    data = export(out)
    check_wire(out, data)
    cpid = int(grab(r"pid (\d+): connected", outputs(data, "client"))[0])
    crash = [w for w in data["warnings"] if w["code"] == "program_crashed"]
    assert len(crash) == 1 and f"tcp_client (pid {cpid}) crashed: killed by SIGSEGV" in crash[0]["message"]
    assert any("crashed: killed by SIGSEGV" in line for line in err if line.startswith("tracer: warning: "))
    # The kernel closed the socket of the dead process: that close sent the client's FIN.
    fin = next(p for p in data["packets"] if "F" in p["flags"] and p["src"].startswith(CLIENT_IP))
    c = caller(data, fin)
    assert (c["call"], c["pid"], c["args"]) == ("close", cpid, {"by": "SIGSEGV"})
    assert proc.stdout.count("\n") > 5  # the ladder was printed


def test_single_program_udp_refused(tmp_path: Path) -> None:
    out = tmp_path / "one.pcapng"
    code = ("import os, socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.connect((os.environ['TRACER_SERVER'], 9)); s.send(b'x'); s.recv(1)")
    proc = tracer("trace", "--no-tui", "--out", out, "--", PY, "-c", code)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "ConnectionRefusedError" in proc.stderr.splitlines()[-1]
    data = export(out)
    protos = [(p["proto"], p["src"].rpartition(":")[0] or p["src"]) for p in data["packets"]]
    assert protos[:2] == [("udp", CLIENT_IP), ("icmp", SERVER_IP)]
    send = caller(data, data["packets"][0])
    assert (send["call"], send["side"], send["remote"]) == ("send", "client", f"{SERVER_IP}:9")
    recv = next(c for c in data["calls"] if c["call"] == "recv")
    assert recv["errno"] == "ECONNREFUSED" and recv["error_packet"] == 2


SEEDS = REPO.parent / "shared" / "seeds"


def test_the_course_cpp_client_that_never_sets_its_address(tmp_path: Path) -> None:
    """The course's own C++ pair (../shared/seeds, compiled here): its client never sets the
    server's address, so it sends no packet at all; every call and error is still a row."""
    text = next(SEEDS.glob("000_*.txt")).read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```cpp\n(.*?)```", text, re.S) if "int main" in b]
    server = next(b for b in blocks if "accept(" in b)
    client = next(b for b in blocks if "connect(" in b and "accept(" not in b)
    assert "sin_addr" not in client  # the bug the course leaves in
    for name, src in (("srv", server), ("cli", client)):
        (tmp_path / f"{name}.cpp").write_text(src)
        subprocess.run(["g++", "-o", str(tmp_path / name), str(tmp_path / f"{name}.cpp")], check=True)
    out = tmp_path / "seed.pcapng"
    proc = tracer("trace", "--server", tmp_path / "srv", "--client", tmp_path / "cli", "--no-tui",
                  "--out", out)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert "Traceback" not in proc.stderr
    data = export(out)
    assert data["packets"] == []
    client_calls = [(c["call"], c["errno"]) for c in data["calls"] if c["side"] == "client"]
    assert [c for c, _ in client_calls][:3] == ["socket", "connect", "send"], client_calls
    assert client_calls[1][1] is not None and client_calls[2][1] == "EPIPE", client_calls
    # Each of them is a row of the ladder, with its error.
    ladder = proc.stdout
    assert "(no packets)" in ladder
    for call, errno in client_calls[1:3]:
        assert re.search(rf"client {call}\(.*\) → {errno}", ladder), (call, errno, ladder)
    assert any("killed by SIGPIPE" in w["message"] for w in data["warnings"])


def test_server_that_never_listens(tmp_path: Path) -> None:
    out = tmp_path / "never.pcapng"
    proc = tracer("trace", "--server", "sleep 5", "--client", "true", "--timeout", "1", "--no-tui",
                  "--out", out)
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "tracer: error: the server command did not listen on any TCP or UDP port within 1 s (--timeout); "
        "the client was not started")
    assert out.is_file()


def test_missing_strace_one_line_exit_5(tmp_path: Path) -> None:
    # Every tool the lab needs, but no strace.
    path = tmp_path / "bin"
    path.mkdir()
    for tool in ("ip", "nft", "ss", "sh", "tcpdump"):
        found = shutil.which(tool)
        if found:
            (path / tool).symlink_to(found)
    env = {**{k: v for k, v in os.environ.items() if k != "TRACER_DEBUG"}, "PATH": str(path)}
    for lang, words in (("en", "'strace' not found"), ("zh", "找不到 'strace'")):
        proc = tracer("trace", "--lang", lang, "--client", "true", "--no-tui", env=env)
        assert proc.returncode == EXIT_MISSING_TOOL, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and words in lines[0] and "apt-get install strace" in lines[0], lines


def _comms(pids: set[int]) -> set[str]:
    out = set()
    for pid in pids:
        try:
            out.add(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            continue
    return out


def test_sigterm_saves_and_leaves_nothing_behind(bins: Path, tmp_path: Path) -> None:
    out = tmp_path / "term.pcapng"
    child = subprocess.Popen([PY, "-m", "tracer", "trace", "--server", f"{bins}/tcp_server",
                              "--client", "sleep 60", "--no-tui", "--out", str(out), "--timeout", "60"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prefix = f"trctrace-{child.pid}-"
    try:
        deadline = time.monotonic() + 15
        # The sniffer, strace and tcp_server in the server host, and the client's sleep.
        while not {"sleep", "tcp_server", "strace"} <= _comms(pids := ns_pids(prefix)):
            assert time.monotonic() < deadline, _comms(pids)
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and out.is_file()
    assert not [ns for ns in list_namespaces() if ns.startswith(prefix)]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/status").read_text().find(
            "State:\tZ") >= 0, pid
    data = export(out)
    assert any(c["call"] == "listen" for c in data["calls"])


def test_live_progress_and_cancel(bins: Path, tmp_path: Path) -> None:
    """``progress`` sees the packets and calls so far (the TUI's live mode); ``cancel`` stops
    the run as Ctrl-C would, and the capture is still saved."""
    out = tmp_path / "live.pcapng"
    cancel = threading.Event()
    seen: list[tuple[int, set[str]]] = []

    def progress(trace: Trace, _analysis: Analysis) -> None:
        seen.append((len(trace.packets), {c.call for c in trace.calls}))
        if len(trace.packets) >= 3 and "connect" in seen[-1][1]:
            cancel.set()

    res = trace_programs(f"{bins}/tcp_server", f"{bins}/tcp_client {{server}}; sleep 30", out,
                         progress=progress, cancel=cancel, timeout=30)
    assert res.interrupted and res.error is None and cancel.is_set()
    assert seen and seen[0][0] <= seen[-1][0] <= len(res.trace.packets)
    assert len(read_capture(out).packets) == len(res.trace.packets) >= 3  # the handshake at least
    assert {"listen", "accept", "connect", "close"} <= {c.call for c in res.trace.calls}


# --- the parser on real strace output ----------------------------------------------------------


def _run_traced(lab: Lab, out: Path, argv: list[str], *, ns: bool) -> None:
    strace = subprocess.run(["sh", "-c", "command -v strace"], capture_output=True, text=True).stdout.strip()
    subprocess.run(lab.client.argv([*st.strace_argv(strace, out, ns=ns), *argv]), check=True, timeout=30,
                   capture_output=True)


IPV6_PY = """
import os, socket, threading
srv = socket.socket(socket.AF_INET6)
srv.bind(("::1", 0))
srv.listen()
port = srv.getsockname()[1]
def serve():
    c, _ = srv.accept()
    c.recv(10)
    c.close()
t = threading.Thread(target=serve)
t.start()
s = socket.create_connection(("::1", port))
s.sendall(b"six")
s.recv(10)
with open(__file__, "rb") as f:
    s.sendfile(f, count=4)
os.closerange(s.fileno(), s.fileno() + 1)  # close_range(2)
t.join()
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u.sendto(b"u", ("::1", port))
u.close()
"""


@pytest.mark.parametrize("ns", [True, False], ids=["ns", "us"])
def test_parse_real_output_ipv6_threads_both_clocks(tmp_path: Path, ns: bool) -> None:
    if ns and not strace_has_ns(subprocess.run(["sh", "-c", "command -v strace"], capture_output=True,
                                               text=True).stdout.strip()):
        pytest.fail("this strace cannot print nanoseconds")
    script = tmp_path / "six.py"
    script.write_text(IPV6_PY)
    log = tmp_path / "six.strace"
    with Lab(prefix="trcparse", loopback=True) as lab:
        _run_traced(lab, log, [PY, str(script)], ns=ns)
    text = log.read_text()
    # strace pads the pid column; with threads, calls are cut into <unfinished ...>/<... resumed>.
    digits = 9 if ns else 6
    assert re.search(rf"^\d+ +\d+\.\d{{{digits}}} ", text, re.M)
    parsed = st.parse(text, "client")
    calls = parsed.calls
    # Against the oracle: the same syscalls per thread.
    as_json = [{"side": c.side, "tid": c.tid, "t_enter_ns": c.t_enter_ns, "args": dict(c.args),
                "call": c.call, "fd": c.fd, "errno": c.errno} for c in calls]
    expected = oracle(log)
    assert len(expected) == 2 and syscalls_of(as_json, "client") == expected  # two threads
    assert all(c.local is None or c.local.startswith("[::1]:") for c in calls if c.proto == "tcp")
    accept = next(c for c in calls if c.call == "accept")
    connect = next(c for c in calls if c.call == "connect")
    sendall = next(c for c in calls if c.call == "send" and c.tid == connect.tid)
    assert accept.remote == sendall.local and accept.local == sendall.remote
    assert sendall.remote is not None and sendall.remote.startswith("[::1]:")
    # The server thread: a thread of the same process.
    recv = next(c for c in calls if c.call == "recv" and c.fd == int(accept.result or -1))
    assert recv.pid == connect.pid and recv.tid != connect.tid
    sendfile = next(c for c in calls if dict(c.args).get("syscall") == "sendfile")
    closed = next(c for c in calls if dict(c.args).get("syscall") == "close_range")
    assert (sendfile.call, dict(sendfile.args)["len"], sendfile.fd) == ("send", "4", connect.fd)
    assert (closed.call, closed.fd, closed.local) == ("close", connect.fd, sendall.local)
    udp = next(c for c in calls if c.call == "sendto")
    assert udp.proto == "udp" and dict(udp.args)["address"] == accept.local
    for c in calls:
        assert c.t_exit_ns is not None and c.t_enter_ns <= c.t_exit_ns, c
    assert all(c.process == Path(PY).name for c in calls)
    assert parsed.warnings == ()


# tests/c/tcp_server-fork.strace: lines of real strace 6.1 output (tcp_server -f; a Python
# server killed in accept4()), as they really look.  One change: the child's read() is cut
# into the two halves strace prints when another process's line comes between (as in the
# threaded test above), here so that it starts before the parent's close() of the same
# connection, which happens about every other run.
REAL = (C_DIR / "tcp_server-fork.strace").read_text()


def test_parse_real_lines_fork_restart_kill() -> None:
    parsed = st.parse(REAL, "server")
    calls = {(c.pid, c.call, c.fd, c.args): c for c in parsed.calls}
    # The child's read() began before the parent's close(), and still: the parent's close
    # leaves the connection open in the child (no endpoints), the child's close is the last.
    parent_close = calls[(25866, "close", 4, (("still_open_in", "pid 25894"),))]
    assert parent_close.local is None and parent_close.remote is None
    child_close = calls[(25894, "close", 4, ())]
    assert child_close.remote == "10.77.0.1:43994" and child_close.process == "tcp_server"
    read = calls[(25894, "recv", 4, (("syscall", "read"), ("bufsize", "256")))]
    assert (read.t_enter_ns, read.t_exit_ns, read.result) == (1795315138768100000, 1795315138768389004, "7")
    accept = calls[(25866, "accept", 3, ())]
    assert (accept.result, accept.local, accept.remote) == ("4", "10.77.0.2:7777", "10.77.0.1:43994")
    # An accept4() interrupted by the SIGTERM that killed it never returned; the listener it
    # held was closed by the kernel (by=SIGTERM), and SIGTERM was expected: no warning.
    assert st.parse(REAL, "server", expected_signals=frozenset({"SIGTERM"})).warnings == ()
    killed = [c for c in parsed.calls if c.pid == 31472]
    assert [(c.call, c.t_exit_ns is None) for c in killed] == [("accept", True), ("close", False)]
    assert dict(killed[1].args) == {"by": "SIGTERM"} and killed[1].local == "[::]:7777"
    assert [w.code for w in parsed.warnings] == ["program_killed"]
    assert {p.pid: (p.name, p.parent) for p in parsed.processes}[25894] == ("tcp_server", 25866)



def _docstring_table() -> list[tuple[list[str], str]]:
    """The rows of strace.py's syscall table: (syscall names, the call cell's text)."""
    lines = (st.__doc__ or "").splitlines()
    borders = [i for i, line in enumerate(lines) if re.fullmatch(r"=+ +=+", line)]
    assert len(borders) == 3, "strace.py's docstring has no syscall table"
    col = lines[borders[0]].index(" =") + 1
    rows: list[tuple[str, str]] = []
    for line in lines[borders[1] + 1 : borders[2]]:
        left, right = line[:col].strip(), line[col:].strip()
        if left and right:  # a row starts; a line with one cell continues the row above
            rows.append((left, right))
        else:
            rows[-1] = (f"{rows[-1][0]} {left}".strip(), f"{rows[-1][1]} {right}".strip())
    return [([name.strip().split("(")[0] for name in left.split(",")], right) for left, right in rows]


def test_syscall_table_is_the_dispatch_table() -> None:
    """The docstring's table (what a reader is told) and RULES (what parse does) agree."""
    told: set[str] = set()
    vocabulary = set(CALL_NAMES) - {""}
    for names, cell in _docstring_table():
        for name in names:
            calls = st.RULES[name].calls
            if cell == "the same name":
                assert calls == (name,), name
            else:
                assert re.findall(r"\w+", cell)[0] == calls[0], (name, cell)
                assert set(re.findall(r"\w+", cell)) & vocabulary == set(calls), (name, cell)
        told.update(names)
    assert told == {name for name, rule in st.RULES.items() if rule.calls}
    # And each call parsed from real output is one its syscall's rule says it becomes.
    for c in st.parse(REAL, "server").calls:
        args = dict(c.args)
        if "by" not in args:  # the kernel's closes at a process's end have no syscall
            assert c.call in st.RULES[args.get("syscall", c.call)].calls, c


def test_split_args() -> None:
    assert st.split_args('3<TCP:[1.2.3.4:5->6.7.8.9:10]>, "a, \\"b\\"", 7') == [
        "3<TCP:[1.2.3.4:5->6.7.8.9:10]>", '"a, \\"b\\""', "7"]
    assert st.split_args("1</dev/null<char 1:3>>, {a=1, b=[2, 3]}, [128 => 16]") == [
        "1</dev/null<char 1:3>>", "{a=1, b=[2, 3]}", "[128 => 16]"]
    six = ('{sa_family=AF_INET6, sin6_port=htons(7777), sin6_flowinfo=htonl(0), '
           'inet_pton(AF_INET6, "fd00:77::2", &sin6_addr), sin6_scope_id=0}')
    assert st.sockaddr(six) == "[fd00:77::2]:7777"


def test_calls_are_socket_calls(bins: Path, tmp_path: Path) -> None:
    """Loopback: one namespace; every call names a TCP/UDP socket and is in the JSON vocabulary."""
    out = tmp_path / "lo.pcapng"
    res = trace_programs(f"{bins}/tcp_server", f"{bins}/tcp_client {{server}}", out, loopback=True)
    assert res.error is None
    vocabulary = {"socket", "bind", "listen", "accept", "connect", "send", "sendto", "recv", "recvfrom",
                  "shutdown", "close", "setsockopt", "getsockname", "getpeername", "setblocking"}
    calls: tuple[SocketCall, ...] = read_capture(out).calls
    assert calls and {c.call for c in calls} <= vocabulary
    assert all(c.proto in ("tcp", "udp") for c in calls)
    assert res.trace.packets.src_endpoint(0).startswith("127.0.0.1:")
