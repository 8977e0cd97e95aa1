"""The socket-call recorder against strace, the oracle, on the real kernel.

Scenarios run in the two-host lab under both the recorder and
``strace -f -ttt -T -yy -e trace=network,close``; every recorded call must match
strace's socket syscalls: the same sequence per process, results, errnos, fds,
4-tuples, and our [entry, exit] window must bracket strace's syscall times.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import wait_for
from tracer.core.model import SocketCall
from tracer.errors import TracerError
from tracer.lab import recorder
from tracer.lab.netns import Lab

SERVER = """
import socket
import threading
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("{ip}", 7777))
srv.listen(8)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("{ip}", 9000))
srv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
srv6.bind(("{ip6}", 7779))
srv6.listen()
print("ready", flush=True)
conn, peer = srv.accept()
data = conn.recv(100)
conn.sendall(b"hello, " + data)
conn.close()
data, peer = udp.recvfrom(100)
udp.sendto(data.upper(), peer)
udp.close()
def serve6():
    conn6, peer6 = srv6.accept()
    conn6.recv_into(bytearray(100))
    conn6.shutdown(socket.SHUT_WR)
    conn6.close()
    srv6.close()
t = threading.Thread(target=serve6)
t.start()
t.join()
srv.close()
"""

CLIENT = """
import socket
with socket.create_connection(("{ip}", 7777)) as c:
    c.sendall(b"client\\n")
    assert c.recv(100) == b"hello, client\\n"
r = socket.socket()
try:
    r.connect(("{ip}", 7778))
except ConnectionRefusedError:
    pass
r.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"ping", ("{ip}", 9000))
assert u.recvfrom(100)[0] == b"PING"
u.close()
v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v.connect(("{ip}", 9001))
v.send(b"anyone?")
try:
    v.recv(100)
except ConnectionRefusedError:
    print("refused", flush=True)
v.close()
g = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
g.connect(("{ip}", 9002))
del g  # closed by the garbage collector
with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as w:
    w.settimeout(5)
    w.connect(("{ip6}", 7779))
    w.send(b"six")
    assert w.recv(100) == b""
"""

# Python call -> the syscalls CPython makes for it (accept: accept4, then the new
# socket object's own getsockname).
SYSCALLS = {
    "socket": ["socket"], "bind": ["bind"], "listen": ["listen"], "accept": ["accept4", "getsockname"],
    "connect": ["connect"], "connect_ex": ["connect"], "send": ["sendto"], "sendall": ["sendto"],
    "sendto": ["sendto"], "recv": ["recvfrom"], "recv_into": ["recvfrom"], "recvfrom": ["recvfrom"],
    "recvfrom_into": ["recvfrom"], "shutdown": ["shutdown"], "close": ["close"],
    "setsockopt": ["setsockopt"], "getsockname": ["getsockname"], "getpeername": ["getpeername"],
    "settimeout": [], "setblocking": [],
}

# strace pads the pid column ("2833  1795311097.043788 ..."): one or more spaces.
_LINE = re.compile(r"^(\d+) +(\d+)\.(\d{6}) (\w+)\((.*)\) += (.*?) <(\d+)\.(\d{6})>$")
_FD = re.compile(r"^(-?\d+)<(TCP|UDP|TCPv6|UDPv6):\[(.*?)\]>")


@dataclass
class Sys:
    pid: int
    t_ns: int
    dur_ns: int
    name: str
    fd: int | None
    addrs: str  # strace -yy's socket decoration: "inode", "l" or "l->r"
    ret: str
    args: str


def parse_strace(path: Path) -> list[Sys]:
    """The socket syscalls on socket fds, with <unfinished>/<resumed> halves joined."""
    pending: dict[str, str] = {}
    out = []
    for raw in path.read_text().splitlines():
        m = re.match(r"^(\d+) +(\S+) (.*)$", raw)
        if not m:
            continue
        pid, ts, rest = m.groups()
        if rest.endswith("<unfinished ...>"):
            pending[pid] = f"{pid} {ts} {rest[: -len('<unfinished ...>')].rstrip()}"
            continue
        r = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
        if r:
            raw = pending.pop(pid) + r.group(1)
        line = _LINE.match(raw)
        if not line:
            continue
        pid_s, sec, usec, name, args, ret, dsec, dusec = line.groups()
        fdm = _FD.match(ret if name == "socket" else args)
        if fdm is None:
            continue  # a file, pipe or netlink fd: not a scenario socket
        ret_fd = _FD.match(ret)
        # accept4's interesting tuple is that of the new connection.
        addrs = ret_fd.group(3) if name.startswith("accept") and ret_fd else fdm.group(3)
        out.append(Sys(int(pid_s), int(sec) * 10**9 + int(usec) * 1000, int(dsec) * 10**9 + int(dusec) * 1000,
                       name, int(fdm.group(1)), addrs, ret, args))
    return out


def _strace_argv(out: Path, calls: Path, side: str, script: Path, *extra: str) -> list[str]:
    return ["strace", "-f", "-ttt", "-T", "-yy", "-e", "trace=network,close", "-o", str(out),
            sys.executable, "-m", "tracer.lab.recorder", "--out", str(calls), "--side", side,
            *extra, str(script)]


def _aux(path: Path) -> dict[tuple[int, int], list[str]]:
    """The recorder's own syscalls after each call, by (pid, entry time), from the raw lines."""
    out = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["ev"] == "exit":
            out[(rec["pid"], rec["t0"])] = rec.get("aux", [])
    return out


def syscalls(c: SocketCall) -> list[str]:
    """The syscalls CPython makes for call ``c``."""
    args = dict(c.args)
    if c.call in ("connect", "connect_ex") and args.get("timeout", "0.0") != "0.0":
        return ["connect", "getsockopt"]  # non-blocking connect, poll, SO_ERROR
    if c.call == "close" and args.get("by") == "garbage collector":
        return ["getsockname", "getpeername", "close"]  # the ResourceWarning's repr(), then close
    return SYSCALLS[c.call]


def main_syscall(c: SocketCall) -> str:
    """The syscall that carries the call's result, errno and fd."""
    names = syscalls(c)
    return "close" if c.call == "close" else names[0]


def compare(calls: tuple[SocketCall, ...], raw: Path, strace: list[Sys]) -> int:
    """Assert that ``calls`` are exactly strace's syscalls; return how many were checked."""
    aux = _aux(raw)
    expected: list[tuple[SocketCall, str, int]] = []  # (call, syscall, index; -1: the recorder's own)
    # Per thread (strace's pid is the thread id), each thread's calls in order.
    for c in sorted(calls, key=lambda c: (c.tid, c.t_enter_ns)):
        expected += [(c, name, i) for i, name in enumerate(syscalls(c))]
        expected += [(c, name, -1) for name in aux[(c.pid, c.t_enter_ns)]]
    got = sorted((s for s in strace if s.pid in {c.tid for c in calls}), key=lambda s: s.pid)
    pairs = zip(expected, got, strict=False)
    assert [(c.call, n) for c, n, _ in expected] == [(c.call, s.name) for (c, _, _), s in pairs]
    assert len(expected) == len(got), got[len(expected):]
    assert len(got) == len(strace), "strace saw socket syscalls in a thread we did not record"
    checked = 0
    before, after = [], []
    for (c, name, index), s in zip(expected, got, strict=True):
        ctx = (c, s)
        assert c.tid == s.pid, ctx
        if index < 0:
            continue
        # Our window brackets each of the call's syscalls (strace prints microseconds).
        assert c.t_exit_ns is not None, ctx
        assert c.t_enter_ns <= s.t_ns + 1000, ctx
        assert s.t_ns + s.dur_ns <= c.t_exit_ns + 2000, ctx
        if index == 0:
            before.append(s.t_ns - c.t_enter_ns)
        if index == len(syscalls(c)) - 1:
            after.append(c.t_exit_ns - s.t_ns - s.dur_ns)
        if name != main_syscall(c):
            if name == "getsockopt":  # the outcome of a connect with a timeout
                so_error = re.search(r"SO_ERROR, \[(\w+)\]", s.args)
                assert so_error and so_error.group(1) == (c.errno or "0"), ctx
            continue
        checked += 1
        # Results and errnos.
        m = re.match(r"^-1 (E[A-Z]+) ", s.ret)
        if len(syscalls(c)) > 1 and name == "connect":
            assert m and m.group(1) == "EINPROGRESS", ctx
        else:
            assert c.errno == (m.group(1) if m else None), ctx
        if not m:
            if c.call in ("socket", "accept"):
                assert c.result == s.ret.split("<")[0], ctx
            elif c.call in ("send", "sendto", "recv", "recv_into"):
                assert c.result == s.ret, ctx
            elif c.call == "recvfrom":
                assert c.result is not None and c.result.split(" ")[0] == s.ret, ctx
        # fds: the call's socket (socket(): the one it returned).
        assert c.fd == s.fd, ctx
        # 4-tuples wherever strace could show one (not at connect's entry: not yet connected).
        if "->" in s.addrs:
            local, remote = s.addrs.split("->")
            assert (c.local, c.remote) == (local, remote), ctx
        elif ":" in s.addrs:
            assert c.local == s.addrs, ctx
    print(f"{checked} calls; our entry precedes strace's first syscall by {min(before) / 1000:.0f}.."
          f"{max(before) / 1000:.0f} us, our exit follows its last by {min(after) / 1000:.0f}.."
          f"{max(after) / 1000:.0f} us")
    return checked


@pytest.mark.lab
def test_calls_match_strace(tmp_path: Path) -> None:
    with Lab(prefix="trcrec") as lab:
        srv_py, cli_py = tmp_path / "server.py", tmp_path / "client.py"
        srv_py.write_text(SERVER.format(ip=lab.server.ip, ip6=lab.server.ip6))
        cli_py.write_text(CLIENT.format(ip=lab.server.ip, ip6=lab.server.ip6))
        s_calls, c_calls = tmp_path / "server.jsonl", tmp_path / "client.jsonl"
        s_st, c_st = tmp_path / "server.strace", tmp_path / "client.strace"
        server = lab.server.popen(_strace_argv(s_st, s_calls, "server", srv_py), stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            client = lab.client.run(_strace_argv(c_st, c_calls, "client", cli_py), timeout=10, check=False)
            assert client.returncode == 0, client.stderr
            assert client.stdout.strip() == "refused"
            assert server.wait(timeout=10) == 0
        finally:
            server.kill()
            server.wait()
    client_calls = recorder.load_calls(c_calls, "client")
    server_calls = recorder.load_calls(s_calls, "server", id_offset=len(client_calls))
    assert len({c.id for c in client_calls + server_calls}) == len(client_calls) + len(server_calls)
    assert compare(client_calls, c_calls, parse_strace(c_st)) == sum(1 for c in client_calls if syscalls(c))
    assert compare(server_calls, s_calls, parse_strace(s_st)) == sum(1 for c in server_calls if syscalls(c))
    # The calls the brief names, by what the kernel said (strace already agreed).
    by_call = [(c.call, c.proto, c.errno) for c in client_calls]
    assert ("connect", "tcp", "ECONNREFUSED") in by_call
    assert ("recv", "udp", "ECONNREFUSED") in by_call
    assert ("settimeout", "tcp", None) in by_call
    assert any(("by", "garbage collector") in c.args for c in client_calls)
    assert len({c.tid for c in server_calls}) == 2  # the IPv6 connection is served by a thread
    v6 = next(c for c in client_calls if c.call == "send" and c.remote and c.remote.startswith("["))
    assert v6.remote == f"[{lab.server.ip6}]:7779"
    # Source lines: the scenario's own lines, with create_connection noted.
    first = client_calls[0]
    assert first.source is not None and first.source.file == str(cli_py) and first.source.line == 3
    assert ("via", "create_connection") in first.args
    assert "create_connection" in first.source.code
    accept = next(c for c in server_calls if c.call == "accept")
    connect = next(c for c in client_calls if c.call == "connect" and c.errno is None)
    assert (accept.local, accept.remote) == (connect.remote, connect.local)


@pytest.mark.lab
def test_runs_as_nobody_and_still_connects(tmp_path: Path) -> None:
    with Lab(prefix="trcrec") as lab:
        srv_py, cli_py = tmp_path / "server.py", tmp_path / "client.py"
        srv_py.write_text(SERVER.format(ip=lab.server.ip, ip6=lab.server.ip6))
        cli_py.write_text("import os\nprint(os.getuid(), os.getgid(), os.getgroups(), flush=True)\n"
                          + CLIENT.format(ip=lab.server.ip, ip6=lab.server.ip6))
        s_calls, c_calls = tmp_path / "server.jsonl", tmp_path / "client.jsonl"
        rec = [sys.executable, "-m", "tracer.lab.recorder"]
        server = lab.server.popen([*rec, "--out", str(s_calls), "--side", "server", str(srv_py)],
                                  stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            client = lab.client.run([*rec, "--out", str(c_calls), "--side", "client", "--user", "nobody",
                                     str(cli_py)], timeout=10, check=False)
            assert client.returncode == 0, client.stderr
            assert server.wait(timeout=10) == 0
        finally:
            server.kill()
            server.wait()
    uid_line = client.stdout.splitlines()[0]
    assert uid_line == "65534 65534 []", uid_line  # nobody:nogroup, no supplementary groups
    calls = recorder.load_calls(c_calls, "client")
    connect = calls[1]
    assert connect.call == "connect" and connect.errno is None and connect.remote == f"{lab.server.ip}:7777"
    accept = next(c for c in recorder.load_calls(s_calls) if c.call == "accept")
    assert accept.remote == connect.local


@pytest.mark.lab
def test_call_that_never_returns_is_recorded_unfinished(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 7777))\ns.listen()\n"
                      "print('ready', flush=True)\ns.accept()\n")
    out = tmp_path / "calls.jsonl"
    with Lab(prefix="trcrec", loopback=True) as lab:
        proc = lab.client.popen([sys.executable, "-m", "tracer.lab.recorder", "--out", str(out),
                                 "--side", "server", str(script)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            wait_for(lambda: '"accept"' in out.read_text(), 5, "the recorder to log the accept() call")
            # ip netns exec and the recorder exec in place: proc.pid is the script's process.
            wait_for(lambda: Path(f"/proc/{proc.pid}/wchan").read_text() == "inet_csk_accept", 5,
                     "the script to block in accept() (/proc/PID/wchan)")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == -signal.SIGTERM
        finally:
            proc.kill()
            proc.wait()
    calls = recorder.load_calls(out, "server")
    assert [c.call for c in calls] == ["socket", "bind", "listen", "accept"]
    assert all(c.t_exit_ns is not None for c in calls[:3])
    assert calls[3].t_exit_ns is None and calls[3].result is None and calls[3].fd == calls[0].fd
    assert calls[1].local == "127.0.0.1:7777"


def test_every_call_is_recorded_in_order_and_the_socket_restored(tmp_path: Path) -> None:
    """What the recorder must do however fast it is (its cost per call: bench/recorder.py)."""
    fd = os.open(tmp_path / "calls.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    recorder.install(fd, "bench")
    try:
        traced = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert isinstance(traced, recorder.TracedSocket)
        traced.bind(("127.0.0.1", 0))
        n = 300
        names = {traced.getsockname() for _ in range(n)}
        traced.close()
    finally:
        recorder.uninstall()
        os.close(fd)
    assert len(names) == 1  # the recorded call returns what the plain one does
    assert socket.socket is recorder._BaseSocket
    calls = recorder.load_calls(tmp_path / "calls.jsonl", "bench")
    got = [c for c in calls if c.call == "getsockname"]
    assert len(got) == n
    assert all(c.t_exit_ns is not None and c.t_enter_ns <= c.t_exit_ns for c in got)
    # One call after the other: each window [entry, exit] ends before the next begins.
    assert all(a.t_exit_ns is not None and a.t_exit_ns <= b.t_enter_ns for a, b in itertools.pairwise(got))


def test_bad_command_lines_are_one_line_errors(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("print('ran')\n")
    rec = [sys.executable, "-m", "tracer.lab.recorder"]
    out = ["--out", str(tmp_path / "c.jsonl")]
    cases = [
        ([*rec, *out, "--user", "no-such-user-xyz", str(script)], 3, "no such user"),
        ([*rec, *out, str(tmp_path / "missing.py")], 2, "cannot read the scenario"),
        ([*rec, str(script)], 3, "usage:"),
        ([*rec, "--out", str(tmp_path / "no" / "dir" / "c.jsonl"), str(script)], 2, "cannot write"),
    ]
    for argv, code, text in cases:
        for lang in ("en", "zh"):
            r = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TRACER_LANG": lang})
            assert r.returncode == code, (argv, r.stderr)
            assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
            assert (text in r.stderr) == (lang == "en"), r.stderr
    r = subprocess.run([*rec, *out, str(script)], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "ran\n"


def test_loader_skips_damaged_lines_and_reports_unreadable_files(tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                      "s.bind(('127.0.0.1', 0))\ns.close()\n")
    out = tmp_path / "calls.jsonl"
    rec = [sys.executable, "-m", "tracer.lab.recorder"]
    subprocess.run([*rec, "--out", str(out), "--side", "a", str(script)], check=True)
    good = recorder.load_calls(out, "a", id_offset=100)
    assert [(c.id, c.call) for c in good] == [(100, "socket"), (101, "bind"), (102, "close")]
    assert good[1].source is not None and good[1].source.code == "s.bind(('127.0.0.1', 0))"
    # A crash mid-line, garbage, and records of the wrong shape change nothing.
    with out.open("a") as f:
        f.write('not json\n{"ev": "enter", "seq": "x"}\n[1, 2]\n{"ev":"enter","seq":9,"pid":1,"t"')
    assert recorder.load_calls(out, "a", id_offset=100) == good
    assert recorder.load_calls(out, "b") == ()
    with pytest.raises(TracerError) as err:
        recorder.load_calls(tmp_path / "missing.jsonl")
    assert "cannot read the call record" in str(err.value) and "无法读取调用记录" in err.value.message_zh
