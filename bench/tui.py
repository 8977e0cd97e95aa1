"""The interactive UI benchmark: ``tracer replay`` vs termshark on the 1M-packet capture.

    python bench/tui.py [--quick] [--capture PATH] [--repeat N] [--json OUT] [--readme] [--check-targets]
                        [--cache-dir DIR]

Each program runs in a real pseudo-terminal of 120x40 (``TERM=xterm-256color``,
``COLUMNS``/``LINES`` and the kernel window size set before exec).  Its output is
read continuously and fed to a ``pyte`` screen, so every marker below is what a
user would see; a time is taken when the bytes that complete a marker are read
(before pyte parses them), from just before ``exec``:

  first screen   a screen line whose first fields are ``1`` and ``0.000...`` (the
                 first packet's row: tracer's ladder, termshark's packet list)
  fully loaded   tracer: status line (screen line 0) says ``<N> packets`` (N counted
                 beforehand with ``tracer.pcap.reader.read_capture``) and no longer
                 ``loading``; termshark: no ``tshark -T psml`` descendant is running any
                 more after one was seen (/proc polled every 50 ms)
  keypress       after loading, ``j`` x30 and PageDown x15, one at a time on a quiet
                 screen: write() of the key to the read of the bytes that change the
                 row number (tracer: ``row K of T`` on the status line; termshark:
                 ``Frame K:`` at the top of its packet-structure pane)
  peak memory    tracer: VmHWM of its process (+ descendants) just before ``q``;
                 termshark: the largest sum of VmRSS of termshark + its tshark
                 descendants sampled every 50 ms, and the VmHWM sum at the end

The capture is located (or built) with ``make_capture.ensure_capture`` like
``run.py``; nothing else is touched: no network, termshark gets a temporary HOME,
and every child process group is killed at the end.  Exit status: 0 when both
programs were measured, 1 when one failed, 3 with ``--check-targets`` when a
tracer target is missed.  ``--quick`` opens the ~50,000-packet capture of ``run.py
--quick`` instead; ``--readme`` saves the table to bench/results/tui.json and rewrites
README's ``bench:tui`` block from it (see readme.py).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import itertools
import json
import os
import platform
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import make_capture  # bench/ is sys.path[0] when run as a script
import pyte
import readme
from run import _tracer_command

from tracer.lab.netns import LabError

COLS, ROWS = 120, 40
KEY_J, KEY_PGDN = "j", "\x1b[6~"
N_J, N_PGDN = 30, 15
KEY_PAUSE = 0.15  # seconds between presses (the screen must also have been quiet this long)
SAMPLE_PERIOD = 0.05  # /proc polling period
TRACER_TIMEOUT = 60.0
TERMSHARK_TIMEOUT = 180.0
KEY_TIMEOUT = 5.0

# Targets (the TUI issue): first screen <= 1 s, fully loaded <= 3 s at 1M packets,
# every keypress <= 50 ms, peak memory <= 350 MiB.
TARGET_FIRST_S = 1.0
TARGET_LOADED_S = 3.0
TARGET_KEY_MS = 50.0
TARGET_MEMORY_MIB = 350.0

# The first packet's row: number 1, then a relative time of zero (tracer: 0.000000,
# termshark: 0.0000 / 0.00000, its Time column width varies while it loads).
FIRST_ROW = re.compile(r"^\s*1\s+0\.0+\s")
TRACER_ROW = re.compile(r"\brow ([\d,]+) of ([\d,]+)")
TERMSHARK_FRAME = re.compile(r"\bFrame (\d+):")

COUNT_CODE = """
import sys
from tracer.pcap.reader import read_capture
print(len(read_capture(sys.argv[1]).packets))
"""


# ---------------------------------------------------------------- /proc


def _children() -> dict[int, list[int]]:
    """parent pid -> child pids, from /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()  # the command name may hold spaces and ')'
        if len(fields) > 1:
            kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    kids = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB ({} once it has gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])
    except OSError:
        return {}
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _is_psml(cmd: list[str], capture: str) -> bool:
    """A tshark writing the packet list (PSML) of ``capture`` (termshark first runs one on an empty file)."""
    if not cmd or Path(cmd[0]).name != "tshark" or capture not in cmd:
        return False
    return "-Tpsml" in cmd or ("-T", "psml") in itertools.pairwise(cmd)


@dataclass
class _Proc:
    cmd: str
    hwm_kib: int = 0
    rss_kib: int = 0


class ProcSampler:
    """Polls ``root`` and its descendants: summed RSS, per-process VmHWM, the PSML tshark."""

    def __init__(self, root: int, capture: str = "", period: float = SAMPLE_PERIOD) -> None:
        self.root = root
        self.capture = capture
        self.period = period
        self.enabled = True
        self.last = 0.0
        self.samples = 0
        self.seen: dict[int, _Proc] = {}
        self.peak_rss_kib = 0
        self.psml_seen_at: float | None = None
        self.psml_gone_at: float | None = None
        self.psml_pids: set[int] = set()

    def maybe(self, now: float) -> None:
        if self.enabled and now - self.last >= self.period:
            self.sample(now)

    def sample(self, now: float) -> None:
        self.last = now
        self.samples += 1
        total = 0
        psml_alive = False
        for pid in descendants(self.root):
            vm = _status_kib(pid)
            if not vm:
                continue
            proc = self.seen.get(pid)
            if proc is None:
                cmd = _cmdline(pid)
                proc = self.seen[pid] = _Proc(" ".join(cmd)[:200])
                if self.capture and _is_psml(cmd, self.capture):
                    self.psml_pids.add(pid)
            proc.rss_kib = vm.get("VmRSS", 0)
            proc.hwm_kib = max(proc.hwm_kib, vm.get("VmHWM", 0))
            total += proc.rss_kib
            if pid in self.psml_pids:
                psml_alive = True
        self.peak_rss_kib = max(self.peak_rss_kib, total)
        if psml_alive and self.psml_seen_at is None:
            self.psml_seen_at = now
        if not psml_alive and self.psml_seen_at is not None and self.psml_gone_at is None:
            self.psml_gone_at = now

    def hwm_now_kib(self) -> int:
        """Sum of VmHWM of the processes alive now (and refreshes ``seen``)."""
        total = 0
        for pid in descendants(self.root):
            vm = _status_kib(pid)
            if vm:
                total += vm.get("VmHWM", 0)
                if pid in self.seen:
                    self.seen[pid].hwm_kib = max(self.seen[pid].hwm_kib, vm.get("VmHWM", 0))
        return total


# ---------------------------------------------------------------- the pseudo-terminal


class PtySession:
    """A program in a 120x40 pseudo-terminal, its output rendered by pyte as it arrives."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str | None = None) -> None:
        rfd, wfd = os.pipe()
        pid, fd = pty.fork()
        if pid == 0:  # the child: never returns into the benchmark's code
            try:
                os.close(rfd)
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
                if cwd:
                    os.chdir(cwd)
                os.write(wfd, struct.pack("d", time.monotonic()))
                os.execvpe(argv[0], argv, env)  # closes wfd (close-on-exec): the parent sees EOF
            except BaseException as e:  # report on the terminal, then exit
                with contextlib.suppress(BaseException):
                    os.write(2, f"exec {argv[0]} failed: {e}\r\n".encode())
            finally:
                os._exit(127)
        os.close(wfd)
        raw = b""
        while part := os.read(rfd, 64):  # until exec has replaced the forked copy of this process
            raw += part
        os.close(rfd)
        raw = raw[:8]
        self.t_fork = time.monotonic()
        self.pid, self.fd = pid, fd
        self.t0 = struct.unpack("d", raw)[0] if len(raw) == 8 else self.t_fork  # just before exec
        os.set_blocking(fd, False)
        self.screen = pyte.Screen(COLS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.eof = False
        self.exit_status: int | None = None
        self.last_output = time.monotonic()
        self.bytes_read = 0
        self.raw = bytearray()  # everything the program wrote, saved when a run fails
        self.tick: Callable[[float], None] | None = None

    def lines(self) -> list[str]:
        return list(self.screen.display)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def _read(self) -> list[tuple[float, bytes]]:
        chunks = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:  # EIO: every slave end is closed (the program has exited)
                self.eof = True
                break
            if not data:
                self.eof = True
                break
            chunks.append((time.monotonic(), data))
        return chunks

    def pump(self, until: Callable[[], bool] | None, timeout: float) -> float | None:
        """Render output until ``until()`` holds after a chunk or a /proc tick; the
        monotonic time the deciding bytes were read (or of the tick), None on timeout/EOF."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self.tick is not None:
                self.tick(now)
                if until is not None and until():
                    return now
            if now >= deadline or self.eof:
                return None
            ready, _, _ = select.select([self.fd], [], [], min(deadline - now, SAMPLE_PERIOD / 2))
            if not ready:
                continue
            hit = None
            for t, data in self._read():  # every chunk is rendered, the first deciding one is timed
                self.bytes_read += len(data)
                self.raw += data
                self.last_output = t
                self.stream.feed(data)
                if hit is None and until is not None and until():
                    hit = t
            if hit is not None:
                return hit

    def settle(self, quiet: float, cap: float) -> bool:
        """Render until no output came for ``quiet`` seconds (at most ``cap``); True if quiet."""
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline and not self.eof:
            wait = self.last_output + quiet - time.monotonic()
            if wait <= 0:
                return True
            self.pump(None, min(wait, deadline - time.monotonic()))
        return not self.eof

    def send(self, data: str) -> float:
        t = time.monotonic()
        os.write(self.fd, data.encode())
        return t

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
                return True
            if self.eof:
                time.sleep(0.02)
            else:
                self.pump(None, 0.05)  # keep draining so that it never blocks on a full pty
        return False

    def kill(self) -> None:
        """End the program, its process group and every descendant; reap it; close the pty."""
        procs = descendants(self.pid) if self.exit_status is None else []
        # pty.fork made the program a session and group leader; once reaped its id is free again.
        groups = {self.pid} if self.exit_status is None else set()
        for pid in procs:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pgid in groups:
                with contextlib.suppress(OSError):
                    os.killpg(pgid, sig)
            for pid in procs:
                if Path(f"/proc/{pid}").exists():
                    with contextlib.suppress(OSError):
                        os.kill(pid, sig)
            if self.exit_status is None and sig == signal.SIGTERM:
                self.wait_exit(1.0)
        if self.exit_status is None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.exit_status = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _env(home: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACER_", "TEXTUAL", "LC_"))}
    env.update(TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS), LANG="C.UTF-8",
               TRACER_LANG="en")
    env.pop("NO_COLOR", None)
    if home is not None:
        env.update(HOME=home, XDG_CONFIG_HOME=f"{home}/.config", XDG_CACHE_HOME=f"{home}/.cache")
    return env


def _first_row(session: PtySession) -> bool:
    return any(FIRST_ROW.match(line) for line in session.lines())


# ---------------------------------------------------------------- results


@dataclass
class Keys:
    """Latencies (ms) of one key pressed ``n`` times."""

    key: str
    pressed: int = 0
    ms: list[float] = field(default_factory=list)  # until the new row number is on the screen
    first_ms: list[float] = field(default_factory=list)  # until the first output after the key
    settled_ms: list[float] = field(default_factory=list)  # until the last output before 150 ms quiet
    note: str = ""

    @property
    def median(self) -> float | None:
        return statistics.median(self.ms) if self.ms else None

    @property
    def max(self) -> float | None:
        return max(self.ms) if self.ms else None


@dataclass
class Run:
    """One program's measurement."""

    name: str
    command: str
    ok: bool = False
    first_screen_s: float | None = None
    loaded_s: float | None = None
    loaded_screen_s: float | None = None  # termshark: its progress indicator gone
    keys: dict[str, Keys] = field(default_factory=dict)
    peak_hwm_mib: float | None = None  # tracer: VmHWM sum before quitting; termshark: alive at end
    peak_hwm_all_mib: float | None = None  # every process seen, each its own VmHWM
    peak_rss_sampled_mib: float | None = None
    rows_total: int | None = None
    processes: list[str] = field(default_factory=list)
    note: str = ""
    screen: str = ""  # the screen when something went wrong
    raw_output: str = ""  # then also a file holding the program's raw terminal output


def _keep_failure(res: Run, session: PtySession) -> None:
    """The screen and the raw output of a run that went wrong (replay the file with pyte.ByteStream)."""
    res.screen = session.text()
    fd, path = tempfile.mkstemp(prefix=f"tracer-bench-tui-{res.name}-", suffix=".raw")
    with os.fdopen(fd, "wb") as f:
        f.write(session.raw)
    res.raw_output = path


def _memory(res: Run, sampler: ProcSampler) -> None:
    """Memory figures of a measured program, once its keys are measured (sampling resumes)."""
    sampler.enabled = True
    sampler.sample(time.monotonic())
    res.peak_hwm_mib = _mib(sampler.hwm_now_kib())
    res.peak_hwm_all_mib = _mib(sum(p.hwm_kib for p in sampler.seen.values()))
    res.peak_rss_sampled_mib = _mib(sampler.peak_rss_kib)
    res.processes = [f"{pid} {p.cmd} (VmHWM {_mib(p.hwm_kib)} MiB)" for pid, p in sampler.seen.items()]


def _mib(kib: int) -> float:
    return round(kib / 1024.0, 1)


def _press(session: PtySession, key: str, n: int, read_row: Callable[[], int | None],
           exact_step: int | None) -> Keys:
    """Press ``key`` ``n`` times; each latency is write() to the read that changes the row."""
    res = Keys("j" if key == KEY_J else "PageDown" if key == KEY_PGDN else key)
    for i in range(n):
        session.settle(KEY_PAUSE, 2.0)
        before = read_row()
        if before is None:
            res.note = f"press {i + 1}: no row number on the screen"
            break
        n0 = session.bytes_read
        first: list[float] = []

        def changed(before: int = before, n0: int = n0, first: list[float] = first) -> bool:
            if not first and session.bytes_read > n0:
                first.append(session.last_output)
            row = read_row()
            return row is not None and row != before

        t = session.send(key)
        seen = session.pump(changed, KEY_TIMEOUT)
        res.pressed += 1
        if seen is None:
            res.note = f"press {i + 1}: the row did not change within {KEY_TIMEOUT:.0f} s (was {before})"
            break
        session.settle(KEY_PAUSE, 2.0)
        res.ms.append(round((seen - t) * 1000.0, 2))
        res.first_ms.append(round(((first[0] if first else seen) - t) * 1000.0, 2))
        res.settled_ms.append(round((session.last_output - t) * 1000.0, 2))
        after = read_row()
        if exact_step is not None and after != before + exact_step and not res.note:
            res.note = f"press {i + 1}: row {before} -> {after}, expected +{exact_step}"
    return res


# ---------------------------------------------------------------- tracer


def measure_tracer(capture: Path, packets: int, log: Callable[[str], None]) -> Run:
    argv = [*_tracer_command(), "replay", str(capture)]
    res = Run("tracer", "tracer replay F")
    marker = f"{packets:,} packets"

    def status() -> str:
        return session.lines()[0]

    def loaded() -> bool:
        line = status()
        return marker in line and "loading" not in line

    def row() -> int | None:
        m = TRACER_ROW.search(status())
        return int(m.group(1).replace(",", "")) if m else None

    session = PtySession(argv, _env())
    sampler = ProcSampler(session.pid)
    session.tick = sampler.maybe
    try:
        t = session.pump(lambda: _first_row(session), TRACER_TIMEOUT)
        if t is None:
            res.note = "the first packet's row never appeared"
            return res
        res.first_screen_s = round(t - session.t0, 3)
        t = session.pump(loaded, TRACER_TIMEOUT)
        if t is None:
            res.note = f"the status line never said {marker!r} without 'loading'"
            return res
        res.loaded_s = round(t - session.t0, 3)
        m = TRACER_ROW.search(status())
        res.rows_total = int(m.group(2).replace(",", "")) if m else None
        log(f"  tracer: first screen {res.first_screen_s:.2f} s, loaded {res.loaded_s:.2f} s; keys ...")
        sampler.enabled = False  # no /proc walks while key latencies are measured
        res.keys["j"] = _press(session, KEY_J, N_J, row, 1)
        res.keys["PageDown"] = _press(session, KEY_PGDN, N_PGDN, row, None)
        _memory(res, sampler)
        session.send("q")
        if not session.wait_exit(10.0):
            res.note = "did not exit within 10 s of 'q'"
        keys_ok = all(len(k.ms) == n for k, n in zip(res.keys.values(), (N_J, N_PGDN), strict=True))
        res.ok = keys_ok
        if not keys_ok:
            res.note = "; ".join(k.note for k in res.keys.values() if k.note)
        return res
    finally:
        if not res.ok:
            _keep_failure(res, session)
        session.kill()


# ---------------------------------------------------------------- termshark


def measure_termshark(capture: Path, log: Callable[[str], None]) -> Run:
    exe = shutil.which("termshark") or "/usr/bin/termshark"
    argv = [exe, "-r", str(capture)]
    res = Run("termshark", "termshark -r F")
    if not Path(exe).exists():
        res.note = "termshark not found: apt-get install -y termshark"
        return res
    home = tempfile.mkdtemp(prefix="tracer-bench-termshark-")
    session = PtySession(argv, _env(home), cwd=home)
    sampler = ProcSampler(session.pid, str(capture))
    session.tick = sampler.maybe
    progress_gone: list[float] = []

    def indicator() -> bool:  # the filter bar shows "NN %  <Stop>" while the packet list loads
        bar = session.lines()[2] if len(session.lines()) > 2 else ""
        return "<Stop>" in bar or re.search(r"\d+ %", bar) is not None

    def loaded() -> bool:
        if (not progress_gone and sampler.psml_seen_at is not None and _first_row(session)
                and not indicator()):
            progress_gone.append(session.last_output)  # when the screen last changed
        return sampler.psml_gone_at is not None

    def indicator_gone() -> bool:
        loaded()
        return bool(progress_gone)

    def frame() -> int | None:
        for line in session.lines()[4:]:
            m = TERMSHARK_FRAME.search(line)
            if m:
                return int(m.group(1))
        return None

    try:
        t = session.pump(lambda: _first_row(session), TERMSHARK_TIMEOUT)
        if t is None:
            res.note = "the first packet's row never appeared"
            return res
        res.first_screen_s = round(t - session.t0, 3)
        log(f"  termshark: first rows {res.first_screen_s:.2f} s; "
            f"loading (timeout {TERMSHARK_TIMEOUT:.0f} s) ...")
        t = session.pump(loaded, TERMSHARK_TIMEOUT - (time.monotonic() - session.t0))
        if t is None:
            res.note = ("no 'tshark -T psml' process seen" if sampler.psml_seen_at is None
                        else f"'tshark -T psml' still running after {TERMSHARK_TIMEOUT:.0f} s")
            return res
        assert sampler.psml_gone_at is not None
        res.loaded_s = round(sampler.psml_gone_at - session.t0, 3)
        session.pump(indicator_gone, 10.0)
        if progress_gone:
            res.loaded_screen_s = round(progress_gone[0] - session.t0, 3)
        log(f"  termshark: loaded {res.loaded_s:.2f} s; keys ...")
        res.peak_hwm_all_mib = _mib(sum(p.hwm_kib for p in sampler.seen.values()))
        sampler.enabled = False
        res.keys["j"] = _press(session, KEY_J, N_J, frame, 1)
        res.keys["PageDown"] = _press(session, KEY_PGDN, N_PGDN, frame, None)
        _memory(res, sampler)
        res.ok = True
        notes = [k.note for k in res.keys.values() if k.note]
        if notes:
            res.note = "keys: " + "; ".join(notes)
        return res
    finally:
        if not res.ok or res.note:
            _keep_failure(res, session)
        session.kill()
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- report


def count_packets(capture: Path) -> int:
    """Packets in ``capture`` as tracer reads them (in a child: this process stays small)."""
    out = subprocess.run([sys.executable, "-c", COUNT_CODE, str(capture)], capture_output=True,
                         text=True, timeout=600, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def machine() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    ts = "not found"
    exe = shutil.which("termshark")
    if exe:
        # termshark runs tshark instead ("pass-thru") when stdout is not a terminal, and it
        # creates its config and cache directories: give it a HOME that is removed afterwards.
        with tempfile.TemporaryDirectory(prefix="tracer-bench-termshark-") as home:
            try:
                out = subprocess.run([exe, "--pass-thru=false", "--version"], capture_output=True,
                                     text=True, timeout=20, env=_env(home), cwd=home)
                ts = next((ln.strip() for ln in out.stdout.splitlines() if ln.strip()), "?")
            except (OSError, subprocess.SubprocessError) as e:
                ts = f"? ({e})"
    tshark = "not found"
    if shutil.which("tshark"):
        try:
            out = subprocess.run(["tshark", "--version"], capture_output=True, text=True, timeout=20)
            tshark = out.stdout.splitlines()[0].strip().rstrip(".") if out.stdout else "?"
        except (OSError, subprocess.SubprocessError) as e:
            tshark = f"? ({e})"
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version(), "textual": version("textual"), "pyte": version("pyte"),
            "termshark": ts, "tshark": tshark, "loadavg_1m_before": round(os.getloadavg()[0], 2)}


def _median(values: list[float | None]) -> float | None:
    vs = [v for v in values if v is not None]
    return statistics.median(vs) if vs else None


def summarise(tracer_runs: list[Run], ts: Run) -> list[dict[str, Any]]:
    """The table rows: metric, tracer (median of runs), termshark, ratio, target, verdict."""
    ok_runs = [r for r in tracer_runs if r.first_screen_s is not None]

    def tr(get: Callable[[Run], float | None]) -> float | None:
        return _median([get(r) for r in ok_runs])

    def key(run: Run, name: str, stat: str) -> float | None:
        k = run.keys.get(name)
        return None if k is None else (k.median if stat == "median" else k.max)

    rows = []
    for metric, unit, get, goal, kind in (
        ("first screen", "s", lambda r: r.first_screen_s, TARGET_FIRST_S, "time"),
        ("fully loaded", "s", lambda r: r.loaded_s, TARGET_LOADED_S, "time"),
        ("key j, median", "ms", lambda r: key(r, "j", "median"), None, "time"),
        ("key j, max", "ms", lambda r: key(r, "j", "max"), TARGET_KEY_MS, "time"),
        ("key PageDown, median", "ms", lambda r: key(r, "PageDown", "median"), None, "time"),
        ("key PageDown, max", "ms", lambda r: key(r, "PageDown", "max"), TARGET_KEY_MS, "time"),
        ("peak memory", "MiB", lambda r: r.peak_hwm_mib if r.name == "tracer" else r.peak_rss_sampled_mib,
         TARGET_MEMORY_MIB, "memory"),
        ("VmHWM sum, alive at end", "MiB", lambda r: r.peak_hwm_mib, None, "memory"),
        ("VmHWM sum, every process", "MiB", lambda r: r.peak_hwm_all_mib, None, "memory"),
    ):
        a = tr(get)
        b = get(ts)
        ratio = None if not (a and b) else b / a if kind == "time" else a / b
        verdict = None if goal is None or a is None else a <= goal
        if goal is not None and a is None:
            verdict = False  # not measured = not met
        rows.append({"metric": metric, "unit": unit, "tracer": a, "termshark": b, "ratio": ratio,
                     "ratio_kind": "termshark/tracer" if kind == "time" else "tracer/termshark",
                     "target": goal, "pass": verdict})
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.1f}" if unit in ("ms", "MiB") else f"{v:.2f}"


def _print_run(r: Run, indent: str = "  ") -> None:
    if r.first_screen_s is None:
        print(f"{indent}{r.name}: FAILED: {r.note}")
        return
    parts = [f"first screen {_fmt(r.first_screen_s, 's')} s", f"loaded {_fmt(r.loaded_s, 's')} s"]
    if r.loaded_screen_s is not None:
        parts.append(f"(progress indicator gone {_fmt(r.loaded_screen_s, 's')} s)")
    for k in r.keys.values():
        first = _fmt(_median(list(k.first_ms)), "ms")
        settled = _fmt(_median(list(k.settled_ms)), "ms")
        parts.append(f"{k.key} x{len(k.ms)} median {_fmt(k.median, 'ms')} / max {_fmt(k.max, 'ms')} ms "
                     f"(first output {first}, settled {settled} ms, medians)")
    parts.append(f"VmHWM {_fmt(r.peak_hwm_mib, 'MiB')} MiB (every process seen: "
                 f"{_fmt(r.peak_hwm_all_mib, 'MiB')}), "
                 f"sampled RSS peak {_fmt(r.peak_rss_sampled_mib, 'MiB')} MiB")
    print(f"{indent}{r.name}: " + "; ".join(parts))
    if r.note:
        print(f"{indent}  note: {r.note}")


def print_report(info: dict[str, Any], tracer_runs: list[Run], ts: Run, rows: list[dict[str, Any]]) -> None:
    m = info["machine"]
    print(f"machine   {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
          f"textual {m['textual']}, pyte {m['pyte']}")
    print(f"          {m['termshark']}, {m['tshark']}; load average before: {m['loadavg_1m_before']}")
    print(f"capture   {info['capture']} ({info['packets']:,} packets, read_capture count)")
    print(f"terminal  pty {COLS}x{ROWS}, TERM=xterm-256color, output rendered with pyte")
    print()
    print("runs")
    for i, r in enumerate(tracer_runs, 1):
        _print_run(r, f"  #{i} " if len(tracer_runs) > 1 else "  ")
    _print_run(ts)
    print()
    label = "tracer" if len(tracer_runs) == 1 else f"tracer (median of {len(tracer_runs)})"
    print(f"{'metric':<32}{label:>22}{'termshark':>12}{'ratio':>9}   {'target':<14}")
    for row in rows:
        unit = row["unit"]
        ratio = "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        target = "" if row["target"] is None else f"<= {row['target']:g} {unit}"
        verdict = {True: "PASS", False: "FAIL", None: ""}[row["pass"]]
        print(f"{row['metric'] + f' ({unit})':<32}{_fmt(row['tracer'], unit):>22}"
              f"{_fmt(row['termshark'], unit):>12}{ratio:>9}   {target:<14}{verdict}")
    print()
    print("ratio: termshark/tracer for times, tracer/termshark for memory; targets apply to tracer.")
    print("tracer loaded = status line shows the full packet count and no 'loading'; termshark loaded =")
    print("no 'tshark -T psml' descendant still running after one was seen (/proc every 50 ms).")
    print("keys: write() of the key to the read of the bytes that change the row number (tracer: status")
    print("'row K of T'; termshark: 'Frame K:' in its structure pane); the key target applies to every")
    print("press (max); 'first output' = first bytes after the key, 'settled' = last bytes before 150 ms")
    print("of quiet.")
    print("memory: tracer = VmHWM of its process tree just before 'q'; termshark = largest sampled sum of")
    print("VmRSS of termshark + its tshark children; the VmHWM rows add each process's own high-water mark.")
    for r in [*tracer_runs, ts]:
        if r.screen:
            print()
            print(f"{r.name} screen when it stopped ({r.note or 'see note'}):")
            print(r.screen)
            print(f"(its raw terminal output: {r.raw_output})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="tracer's interactive UI vs termshark on the 1M-packet capture")
    p.add_argument("--quick", action="store_true",
                   help=f"open the ~{make_capture.QUICK_PACKETS:,}-packet capture instead of the 1M one")
    p.add_argument("--capture", type=Path, help="capture to open (default: the 1M-packet benchmark capture)")
    p.add_argument("--repeat", type=int, default=1, help="tracer runs (each is reported; the table: median)")
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the figures to OUT as JSON")
    p.add_argument("--readme", action="store_true",
                   help="save the table to bench/results/tui.json and rewrite README's block from it")
    p.add_argument("--no-termshark", action="store_true", help="measure tracer only")
    p.add_argument("--check-targets", action="store_true", help="exit 3 if a tracer target is missed")
    p.add_argument("--cache-dir", type=Path, default=make_capture.DEFAULT_CACHE,
                   help="where the benchmark capture is cached (default %(default)s)")
    a = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the finally blocks kill the programs under test.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if a.capture is not None:
        capture = a.capture.expanduser().resolve()
        if not capture.is_file():
            log(f"error: no such capture: {capture}")
            return 1
    else:
        try:
            if not a.quick and not make_capture.capture_path(a.cache_dir, False).exists():
                log("building the 1M-packet capture (network namespaces + tcpdump, ~10-60 s) ...")
            capture = Path(make_capture.ensure_capture(a.cache_dir, a.quick, False, log=log)["path"])
        except (make_capture.BuildError, LabError, subprocess.SubprocessError, OSError) as e:
            log(f"error: cannot build the benchmark capture: {e}")
            return 1
    info: dict[str, Any] = {"machine": machine(), "capture": str(capture)}
    log(f"counting the packets of {capture} with read_capture ...")
    try:
        packets = count_packets(capture)
    except (subprocess.SubprocessError, ValueError, IndexError) as e:
        log(f"error: tracer cannot read {capture}: {e}")
        return 1
    info["packets"] = packets
    tracer_runs = []
    for i in range(max(1, a.repeat)):
        log(f"measuring tracer replay (run {i + 1}) ...")
        tracer_runs.append(measure_tracer(capture, packets, log))
    if a.no_termshark:
        ts = Run("termshark", "termshark -r F", note="not measured (--no-termshark)")
    else:
        log("measuring termshark ...")
        ts = measure_termshark(capture, log)
    info["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
    rows = summarise(tracer_runs, ts)
    print_report(info, tracer_runs, ts, rows)
    if a.json is not None:
        def run_doc(r: Run) -> dict[str, Any]:
            d = asdict(r)
            for name, k in r.keys.items():
                d["keys"][name].update(median_ms=k.median, max_ms=k.max,
                                       first_median_ms=_median(list(k.first_ms)),
                                       settled_median_ms=_median(list(k.settled_ms)))
            return d

        doc = {**info, "terminal": {"cols": COLS, "rows": ROWS, "term": "xterm-256color"},
               "tracer_runs": [run_doc(r) for r in tracer_runs], "termshark": run_doc(ts), "table": rows}
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"figures written to {a.json}")
    measured = all(r.ok for r in tracer_runs) and (ts.ok or a.no_termshark)
    if a.readme and measured:
        m = info["machine"]
        tshark = re.search(r"\d+\.\d+\.\d+", m["tshark"])
        flags = " --quick" if a.quick else ""
        flags += f" --repeat {a.repeat}" if a.repeat > 1 else ""
        flags += " --no-termshark" if a.no_termshark else ""
        saved = readme.save_and_write("tui", {
            "command": f"python bench/tui.py --readme{flags}", "packets": packets, "repeat": len(tracer_runs),
            "terminal": f"{COLS}x{ROWS}", "table": rows,
            "versions": f"Python {m['python']}, textual {m['textual']}, pyte {m['pyte']}, {m['termshark']}, "
                        f"tshark {tshark.group(0) if tshark else '?'}"})
        log(f"saved {saved}; rewrote README's bench:tui block")
    if not measured:
        return 1
    if a.check_targets and not all(r["pass"] for r in rows if r["target"] is not None):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
