"""The kernel witness's tracefs instance on the real kernel: removed on a normal end and on
an exception, found and removed after a SIGKILL; without root, one keyed line (English and
Chinese) and no traceback; and on ``lo``, where every namespace's frames share the device
name, only the lab's frames are tied to lab packets."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracer.lab.witness import Witness, cleanup_stale, find_tracefs

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def tracefs_mounted() -> Iterator[None]:
    """A tracefs to look into from outside the witness (a fresh machine mounts none: the
    witness then mounts its own, privately, and unmounts it when it ends)."""
    if find_tracefs() is not None:
        yield
        return
    import tempfile

    where = tempfile.mkdtemp(prefix="tracer-test-tracefs-")
    subprocess.run(["mount", "-t", "tracefs", "nodev", where], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", where], check=False)
        os.rmdir(where)


def _instances() -> set[str]:
    root = find_tracefs()
    assert root is not None
    return {d.name for d in (root / "instances").iterdir()}


def test_instance_removed_on_a_normal_end() -> None:
    with Witness(["lo"]) as w:
        assert w.dir.is_dir() and w.name in _instances()
    assert not w.dir.exists()
    w2 = Witness(["lo"])
    w2.start()
    assert w2.dir.is_dir()
    w2.stop()
    assert not w2.dir.exists()


def test_instance_removed_on_an_exception() -> None:
    name = ""
    with pytest.raises(RuntimeError, match="boom"), Witness(["lo"]) as w:
        name = w.name
        assert name in _instances()
        raise RuntimeError("boom")
    assert name and name not in _instances()


CHILD = """
import sys, time
from tracer.lab.witness import Witness
w = Witness(["lo"])
w.start()
print(w.root, w.name, flush=True)
time.sleep(60)
"""


def test_instance_found_and_removed_after_sigkill() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        root_s, name = child.stdout.readline().split()
        root = Path(root_s)
        assert (root / "instances" / name).is_dir()
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert (root / "instances" / name).is_dir()  # a SIGKILL leaves it behind
        removed = cleanup_stale(root)
        assert name in removed
        assert not (root / "instances" / name).exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


NOBODY = """
from tracer.i18n import both
from tracer.lab.witness import Witness, WitnessUnavailable
try:
    Witness(["lo"])
except WitnessUnavailable as e:
    for line in both("witness.unavailable", why=e.text("en")):
        print(line)
    print(e.text("zh"))
else:
    print("no error")
"""


@pytest.fixture
def nobody_python() -> Iterator[tuple[str, str]]:
    """An interpreter and a PYTHONPATH user nobody can read: the system's python of this
    version (root's own lives under /root, closed to others) with a copy of numpy."""
    import shutil
    import tempfile

    import numpy

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    exe = shutil.which(version, path="/usr/bin:/usr/local/bin")
    assert exe is not None, "no system python of this version for user nobody"
    site = Path(numpy.__file__).parents[1]
    tmp = Path(tempfile.mkdtemp(prefix="tracer-nobody-"))
    try:
        tmp.chmod(0o755)
        for name in ("numpy", "numpy.libs"):
            if (site / name).exists():
                shutil.copytree(site / name, tmp / name)
        yield exe, f"{REPO}:{tmp}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_without_root_one_keyed_line_and_no_traceback(nobody_python: tuple[str, str]) -> None:
    exe, path = nobody_python
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-c", NOBODY]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": path, "HOME": "/nonexistent"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    en, zh, zh_reason = proc.stdout.splitlines()
    assert "root" in en and "kernel witness" in en
    assert "root" in zh and any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh_reason)


REPLAY = """
import io, json, sys
from tracer.export.json_export import write_json
from tracer.loading import load
trace, analysis = load(sys.argv[1])
out = io.StringIO()
write_json(trace, analysis, out)
data = json.loads(out.getvalue())
dropped = [p["no"] for p in data["packets"] if p["drop"]]
syn = data["packets"][0]
print(json.dumps([dropped, syn["origin"]["what"], syn["cause"]["source"]]))
"""


def test_replay_shows_the_kernel_account_without_root(nobody_python: tuple[str, str], tmp_path: Path) -> None:
    """A saved run keeps the kernel's account: user nobody reads it back, no tracefs needed."""
    import shutil
    import tempfile

    from tracer.lab.run import run_scenario
    from tracer.lab.scenarios import find_scenario

    res = run_scenario(find_scenario("data-lost"), tmp_path / "dl.pcapng")
    assert res.error is None and res.trace.kernel is not None
    want = [d.packet_no for d in res.trace.kernel.drops]
    assert want and all(d.reason == "NETFILTER_DROP" for d in res.trace.kernel.drops)
    shared = Path(tempfile.mkdtemp(prefix="tracer-replay-"))
    try:
        shared.chmod(0o755)
        shutil.copy(res.path, shared / "dl.pcapng")
        (shared / "dl.pcapng").chmod(0o644)
        exe, path = nobody_python
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-c", REPLAY,
                str(shared / "dl.pcapng")]
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": path, "HOME": "/nonexistent"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False,
                              cwd="/")
    finally:
        shutil.rmtree(shared, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    import json

    assert json.loads(proc.stdout) == [want, "connect", "kernel"]


# --- lo: other namespaces' frames share the device name -----------------------------------


@pytest.fixture
def foreign_loopback() -> Iterator[str]:
    """TCP traffic on the root namespace's lo, sent from a thread named ``foreignlo``."""
    name = "foreignlo"
    stop = threading.Event()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def echo() -> None:
        c, _ = srv.accept()
        with c:
            while data := c.recv(100):
                c.send(data)

    def talk() -> None:
        ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: this thread's comm
        with socket.create_connection(srv.getsockname()) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            k = 0
            while not stop.is_set():
                s.send(b"x" * (1 + k % 40))
                s.recv(100)
                k += 1
                time.sleep(0.0005)

    threads = [threading.Thread(target=echo, daemon=True), threading.Thread(target=talk, daemon=True)]
    for th in threads:
        th.start()
    yield name
    stop.set()
    for th in threads:
        th.join(5)
    srv.close()


@pytest.mark.parametrize("scenario", ["hello", "nagle"])
def test_loopback_ties_only_the_labs_frames(scenario: str, foreign_loopback: str, tmp_path: Path) -> None:
    from tracer.pcap.reader import read_capture

    out = tmp_path / f"{scenario}.pcapng"
    argv = [sys.executable, "-m", "tracer", "run", scenario, "--loopback", "--no-tui", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    trace = read_capture(out)
    k = trace.kernel
    assert k is not None
    t = trace.packets
    tcp = [i + 1 for i in range(len(t)) if t.proto_name(i) == "tcp"]
    origins = k.origin_of()
    assert sorted(origins) == tcp
    # The foreign traffic was there (recorded on lo, not captured in the lab)...
    assert k.unmatched > 0
    # ...and no lab frame is tied to a system call of the foreign thread.  (A timer or the
    # receive path runs in whatever task is on the CPU, so only calls name the sender.)
    assert not [(n, o.what) for n, o in origins.items()
                if o.process == foreign_loopback and o.kind in ("call", "exit")]
    # Each frame's record was queued just before the frame was captured.
    assert all(0 <= int(t.ts_ns[n - 1]) - o.t_ns < 5_000_000 for n, o in origins.items())
