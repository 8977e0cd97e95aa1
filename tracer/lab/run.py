"""``tracer run``: one scenario from start to a saved, attributed capture.

A scenario is a Python file (built-in ones in ``scenarios/``) with module-level
``TITLE`` and ``DESCRIPTION`` (``{"en": ..., "zh": ...}``), ``PROTO`` ("tcp" or
"udp"), ``PORT``, and the functions ``server(host, port)`` (optional) and
``client(host, port)``; its metadata is read with ``ast``, without running it.
A part with a third parameter gets ``mark``: ``mark("label")`` pauses it while
tracer records every namespace's kernel socket states under that label.

``run_scenario`` builds a ``Lab`` (two hosts on a veth pair, or one host on
``lo``), starts the ``Sniffer`` on the server's interface, runs the server part
under the socket-call recorder in the server's namespace (as the unprivileged
user ``nobody`` when it exists), waits until the
kernel shows a socket bound to ``PORT`` (``ss``), runs the client part in the
client's namespace, waits for both (``timeout`` for the whole run), lets the
last packets drain, takes the kernel's socket states in each namespace
(``kernel_states.snapshot``), analyses and writes one pcapng holding packets,
comments, calls and kernel states.  A scenario that fails or hangs, and
SIGINT/SIGTERM (raised as ``KeyboardInterrupt`` by the caller), still save the
capture so far; the lab (namespaces, veth, nft tables, processes) is always
removed, with further signals ignored while that happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.model import KernelSocketState, SocketCall, TraceWarning
from tracer.core.pysource import literal_assignments
from tracer.core.trace import Trace
from tracer.errors import EXIT_INPUT, EXIT_PRIVILEGES, TracerError, UsageError
from tracer.lab.kernel_states import snapshot
from tracer.lab.netns import Host, Lab
from tracer.lab.recorder import load_calls
from tracer.lab.sniffer import CaptureStats, Sniffer

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
LAUNCHER = SCENARIO_DIR / "_launch.py"
# Capabilities the lab needs: CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_ADMIN (21).
_NEEDED_CAPS = {12: "CAP_NET_ADMIN", 13: "CAP_NET_RAW", 21: "CAP_SYS_ADMIN"}
_POLL = 0.02
SCENARIO_USER = "nobody"


@dataclass(frozen=True)
class Scenario:
    """A scenario file and the metadata it declares (see docs/scenarios.md)."""

    name: str
    path: Path
    title: dict[str, str]
    description: dict[str, str]
    proto: str
    port: int
    has_server: bool
    notice: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    hosts: str = "two"  # "two" (a veth pair) or "loopback" (one host on lo)
    impair: tuple[str, ...] = ()  # impairment specs (tracer.lab.impair.parse_spec)
    expect: str = ""  # the expected packets and calls (tracer.core.expect)
    timeout: float = 10.0
    topic: str = ""  # the folder under scenarios/ ("tcp", "udp"), "" for others


@dataclass(frozen=True, eq=False)
class RunResult:
    """A finished run: where it was saved, what was captured, and what went wrong."""

    path: Path
    trace: Trace
    analysis: Analysis
    error: TracerError | None  # the scenario failed or timed out
    interrupted: bool  # SIGINT/SIGTERM ended the run early


def _bad(path: Path, why: str, why_zh: str) -> TracerError:
    return TracerError(f"{path} is not a tracer scenario: {why}", f"{path} 不是 tracer 场景：{why_zh}",
                       exit_code=EXIT_INPUT)


def read_scenario(path: Path) -> Scenario:
    """The metadata of the scenario file ``path`` (read with ``ast``, not executed)."""
    try:
        values, funcs = literal_assignments(path.read_bytes(), str(path))
    except OSError as e:
        raise TracerError(f"cannot read the scenario {path}: {e.strerror}",
                          f"无法读取场景 {path}：{e.strerror}", exit_code=EXIT_INPUT) from None
    except (SyntaxError, ValueError) as e:
        raise _bad(path, f"not valid Python ({e})", f"不是有效的 Python（{e}）") from None
    if "client" not in funcs:
        raise _bad(path, "it defines no client(host, port) function", "没有定义 client(host, port) 函数")
    proto, port = values.get("PROTO", "tcp"), values.get("PORT")
    if proto not in ("tcp", "udp") or not isinstance(port, int) or not 0 < port < 65536:
        raise _bad(path, 'it needs PROTO = "tcp" or "udp" and PORT = 1..65535',
                   '需要 PROTO = "tcp" 或 "udp"，以及 PORT = 1..65535')
    name = path.stem

    def texts(key: str) -> dict[str, str]:
        v = values.get(key)
        if isinstance(v, dict):
            en = str(v.get("en", name))
            return {"en": en, "zh": str(v.get("zh", en))}
        return {"en": str(v or name), "zh": str(v or name)}

    notice: dict[str, tuple[str, ...]] = {}
    raw_notice = values.get("NOTICE", {})
    if isinstance(raw_notice, dict):
        en = tuple(str(x) for x in raw_notice.get("en", ()))
        notice = {"en": en, "zh": tuple(str(x) for x in raw_notice.get("zh", en))}
    hosts = values.get("HOSTS", "two")
    if hosts not in ("two", "loopback"):
        raise _bad(path, 'HOSTS must be "two" or "loopback"', 'HOSTS 必须是 "two" 或 "loopback"')
    impair = values.get("IMPAIR", ())
    if not isinstance(impair, (list, tuple)) or not all(isinstance(x, str) for x in impair):
        raise _bad(path, "IMPAIR must be a list of strings", "IMPAIR 必须是字符串列表")
    expect = values.get("EXPECT", "")
    timeout = values.get("TIMEOUT", 10.0)
    if not isinstance(expect, str) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise _bad(path, "EXPECT must be a string and TIMEOUT a number > 0",
                   "EXPECT 必须是字符串，TIMEOUT 必须是大于 0 的数")
    topic = path.parent.name if path.parent.parent == SCENARIO_DIR else ""
    return Scenario(name, path, texts("TITLE"), texts("DESCRIPTION"), str(proto), port, "server" in funcs,
                    notice, str(hosts), tuple(impair), expect, float(timeout), topic)


def _builtin_files() -> list[Path]:
    return sorted(p for p in SCENARIO_DIR.rglob("*.py") if not p.name.startswith("_"))


def list_scenarios() -> list[Scenario]:
    """The built-in scenarios (every topic folder), by topic then name."""
    return sorted((read_scenario(p) for p in _builtin_files()), key=lambda s: (s.topic, s.name))


def find_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario file by path."""
    p = Path(name_or_path)
    if p.suffix == ".py" or os.sep in name_or_path:
        if not p.is_file():
            raise UsageError(f"no scenario file {name_or_path}", f"没有场景文件 {name_or_path}")
        return read_scenario(p.resolve())
    found = [f for f in _builtin_files() if f.stem == name_or_path]
    builtin = found[0] if found else SCENARIO_DIR / f"{name_or_path}.py"
    if name_or_path.startswith("_") or not builtin.is_file():
        # Too many to list in one line: the closest names, and where the list is.
        close = difflib.get_close_matches(name_or_path, [f.stem for f in _builtin_files()], n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        hint_zh = f"是否想用 {', '.join(close)}？" if close else ""
        raise UsageError(f"no scenario named {name_or_path!r}; {hint}see: tracer list",
                         f"没有名为 {name_or_path!r} 的场景；{hint_zh}请看：tracer list")
    return read_scenario(builtin)


def check_privileges() -> None:
    """Raise (exit 4) unless this process may build a lab."""
    missing = list(_NEEDED_CAPS.values())
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                eff = int(line.split()[1], 16)
                missing = [n for bit, n in _NEEDED_CAPS.items() if not eff >> bit & 1]
    if missing:
        raise TracerError(
            f"tracer run needs root (or CAP_NET_ADMIN+CAP_NET_RAW+CAP_SYS_ADMIN; missing: "
            f"{'+'.join(missing)}) to build its lab network; without them try "
            "'tracer replay captures/hello.pcapng'",
            f"tracer run 需要 root 权限（或 CAP_NET_ADMIN+CAP_NET_RAW+CAP_SYS_ADMIN；缺少："
            f"{'+'.join(missing)}）来建立实验网络；"
            "没有这些权限时可改用 'tracer replay captures/hello.pcapng'",
            exit_code=EXIT_PRIVILEGES)


def default_output(name: str, directory: Path = Path("captures")) -> Path:
    """``captures/<name>-<time>.pcapng``, with a suffix if that exists: never overwrites."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{name}-{stamp}.pcapng"
    n = 2
    while os.path.lexists(path):
        path = directory / f"{name}-{stamp}-{n}.pcapng"
        n += 1
    return path


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` like SIGINT does, inside the block."""
    def handler(_sig: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _ignore_signals() -> dict[int, object]:
    """Ignore SIGINT and SIGTERM (while cleaning up); the old handlers, for ``_restore``.

    Only the main thread can set handlers: a run in a worker thread (the TUI's live
    mode) is stopped through ``cancel`` instead, and its caller owns the signals."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}


def _restore(old: dict[int, object]) -> None:
    for s, h in old.items():
        signal.signal(s, h)  # type: ignore[arg-type]


_FAILED_AT = "tracer-failed-at "


class _Part:
    """One side of the scenario running under the recorder in a host's namespace."""

    def __init__(self, host: Host, side: str, sc: Scenario, server_ip: str, tmp: Path) -> None:
        self.side = side
        self.calls = tmp / f"{side}.jsonl"
        self.err = tmp / f"{side}.stderr"
        # mark(label): the part writes the label on one pipe and waits for a byte on the other.
        self.mark_r, mark_w = os.pipe()
        ack_r, self.ack_w = os.pipe()
        self.buf = b""
        argv = [sys.executable, "-m", "tracer.lab.recorder", "--out", str(self.calls), "--side", side,
                *_user_args(), str(LAUNCHER), str(sc.path), side, server_ip, str(sc.port),
                str(mark_w), str(ack_r)]
        try:
            with open(tmp / f"{side}.stdout", "wb") as out, open(self.err, "wb") as err:
                # Own session: a terminal's Ctrl-C reaches tracer, which ends the parts itself.
                self.proc = subprocess.Popen(host.argv(argv), stdin=subprocess.PIPE, stdout=out, stderr=err,
                                             start_new_session=True, pass_fds=(mark_w, ack_r))
        finally:
            os.close(mark_w)
            os.close(ack_r)
        # The source goes through stdin: the unprivileged part may not be allowed to read the file.
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), self.proc.stdin:
            self.proc.stdin.write(sc.path.read_bytes())

    def failure(self) -> str | None:
        """The last line of the part's error output if it failed, else None."""
        code = self.proc.poll()
        if code in (None, 0):
            return None
        lines = [x for x in self.err.read_text(errors="replace").splitlines()
                 if x.strip() and not x.startswith(_FAILED_AT)]
        return lines[-1].strip() if lines else f"exit status {code}"

    def failed_at_ns(self) -> int | None:
        """When the part's code raised (written by ``scenarios/_launch.py``), if it did."""
        if not self.err.exists():
            return None
        for line in self.err.read_text(errors="replace").splitlines():
            if line.startswith(_FAILED_AT):
                with contextlib.suppress(ValueError):
                    return int(line[len(_FAILED_AT):])
        return None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for fd in (self.mark_r, self.ack_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.mark_r = self.ack_w = -1


def _hosts(lab: Lab) -> tuple[tuple[str, Host], ...]:
    """The lab's hosts and the names their kernel states are stored under."""
    return (("lo", lab.client),) if lab.loopback else (("client", lab.client), ("server", lab.server))


def _serve_marks(lab: Lab, parts: list[_Part], states: list[KernelSocketState], wait: float) -> None:
    """Wait up to ``wait`` s for parts' marks; answer each after recording the kernel states."""
    fds = {p.mark_r: p for p in parts if p.mark_r >= 0}
    if not fds:
        time.sleep(max(0.0, wait))
        return
    for fd in select.select(list(fds), [], [], max(0.0, wait))[0]:
        part = fds[fd]
        chunk = os.read(fd, 4096)
        if not chunk:  # the part ended
            os.close(fd)
            part.mark_r = -1
            continue
        part.buf += chunk
        while b"\n" in part.buf:
            line, _, part.buf = part.buf.partition(b"\n")
            label = " ".join(line.decode(errors="replace").split())[:100]
            for name, host in _hosts(lab):
                states.extend(snapshot(host, name, label))
            with contextlib.suppress(OSError):
                os.write(part.ack_w, b"k")


def _user_args() -> list[str]:
    """The scenario runs as ``nobody`` where that user exists: it needs no privileges."""
    try:
        pwd.getpwnam(SCENARIO_USER)
    except KeyError:
        return []
    return ["--user", SCENARIO_USER]


def _bound(host: Host, proto: str, port: int) -> bool:
    argv = ["ss", "-tlnH"] if proto == "tcp" else ["ss", "-ulnH"]
    out = host.run(argv, check=False, timeout=5).stdout
    return any(len(p) >= 4 and p[3].endswith(f":{port}") for p in (x.split() for x in out.splitlines()))


def _scenario_error(side: str, what: str) -> TracerError:
    return TracerError(f"the scenario's {side} failed: {what}", f"场景的{_SIDE_ZH[side]}失败：{what}",
                       exit_code=EXIT_INPUT)


_SIDE_ZH = {"server": "服务器端", "client": "客户端"}


def _play(lab: Lab, sc: Scenario, tmp: Path, parts: list[_Part], states: list[KernelSocketState],
          timeout: float, poll: Callable[[], None] = lambda: None) -> TracerError | None:
    """Run the scenario's parts (marks add to ``states``); the error that ended it, if any.

    ``poll`` is called between waits (live progress; it may raise ``KeyboardInterrupt``)."""
    deadline = time.monotonic() + timeout
    server_ip = lab.server.ip
    if sc.has_server:
        server = _Part(lab.server, "server", sc, server_ip, tmp)
        parts.append(server)
        while not _bound(lab.server, sc.proto, sc.port):
            if server.proc.poll() is not None:
                return _scenario_error("server", server.failure() or f"it ended before using port {sc.port}")
            if time.monotonic() > deadline:
                return _timeout_error(timeout)
            _serve_marks(lab, parts, states, _POLL)
            poll()
    parts.append(_Part(lab.client, "client", sc, server_ip, tmp))
    for part in reversed(parts):  # the client first: a server may wait for it
        while part.proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return _timeout_error(timeout)
            _serve_marks(lab, parts, states, min(left, 0.05))
            poll()
        why = part.failure()
        if why is not None:
            return _scenario_error(part.side, why)
    return None


def _timeout_error(timeout: float) -> TracerError:
    return TracerError(f"the scenario did not finish within {timeout:g} s (--timeout); it was stopped",
                       f"场景未在 {timeout:g} 秒内结束（--timeout）；已被终止", exit_code=EXIT_INPUT)


def _calls(parts: list[_Part]) -> tuple[SocketCall, ...]:
    calls = [c for p in parts if p.calls.exists() for c in load_calls(p.calls)]
    calls.sort(key=lambda c: (c.t_enter_ns, c.side))
    return tuple(dataclasses.replace(c, id=i) for i, c in enumerate(calls))


_COUNTERS = ("Tcp.OutSegs", "Tcp.RetransSegs", "Tcp.InSegs", "Udp.OutDatagrams", "Udp.InDatagrams",
             "Udp6.OutDatagrams", "Udp6.InDatagrams")


def _capture_meta(st: CaptureStats) -> dict[str, str]:
    """What the capture saw beside the kernel's own counts, kept in the saved file."""
    out = {"capture.frames": str(st.frames)}
    seen = (
        ("capture.received", st.received),
        ("capture.duplicates_removed", st.duplicates),
        ("capture.kernel_packets", st.kernel_packets),
        ("capture.kernel_drops", st.kernel_drops),
    )
    for key, value in seen:
        if value is not None:
            out[key] = str(value)
    for key in _COUNTERS:
        if st.counters is not None and key in st.counters:
            out[f"kernel.{key}"] = str(st.counters[key])
    return out


def _impair(stack: contextlib.ExitStack, lab: Lab, sc: Scenario) -> None:
    """Put the scenario's impairments in force on its hosts until ``stack`` closes."""
    from tracer.lab import impair

    specs = [impair.parse_spec(s, sc.port) for s in sc.impair]
    hosts = {"client": lab.client, "server": lab.server}
    for name, host in hosts.items():
        rules = [s.impairment for s in specs if s.host == name and s.impairment is not None]
        if rules:
            stack.enter_context(impair.apply(host, rules))
        if any(s.host == name and s.impairment is None for s in specs):
            stack.enter_context(impair.one_segment_per_frame(host))


def _source_text(sc: Scenario) -> str:
    """The scenario's code, kept in the capture so a replay can show the line of each call."""
    try:
        return sc.path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _error_warning(trace: Trace, err: TracerError, t_ns: int) -> TraceWarning:
    """The error as a warning placed after the last packet captured before it happened."""
    n = int(np.count_nonzero(trace.packets.ts_ns <= t_ns))
    return TraceWarning("scenario_failed", err.message, err.message_zh, packet_no=n or None, t_ns=t_ns)


Progress = Callable[[Trace, Analysis], None]
PROGRESS_EVERY = 0.1  # seconds between live snapshots


def captured_so_far(sniffer: Sniffer) -> Trace | None:
    """The frames a running capture holds so far (the sniffer flushes its file when idle)."""
    from tracer.pcap.reader import read_capture

    if sniffer.path is None or not sniffer.path.exists() or sniffer.path.stat().st_size < 24:
        return None
    try:
        return read_capture(sniffer.path)
    except TracerError:
        return None


def _live_trace(sniffer: Sniffer, parts: list[_Part], sc: Scenario, loopback: bool) -> Trace | None:
    """What the run has captured and recorded so far."""
    trace = captured_so_far(sniffer)
    if trace is None:
        return None
    meta = dataclasses.replace(trace.meta, extra={**trace.meta.extra, "scenario": sc.name,
                               "scenario.source": _source_text(sc),
                               "lab": "loopback" if loopback else "veth"})
    # A record cut by the flush in progress is not a warning the user needs: it is read next time.
    return dataclasses.replace(trace, calls=_calls(parts), meta=meta, warnings=())


def poller(cancel: threading.Event | None, progress: Progress | None,
           so_far: Callable[[], Trace | None]) -> Callable[[], None]:
    """The ``poll`` of a run: raises ``KeyboardInterrupt`` once ``cancel`` is set, and
    hands ``progress`` the trace so far (``so_far()``), analysed, every ``PROGRESS_EVERY`` s."""
    from tracer.core.analyze import analyze

    last = [0.0]

    def poll() -> None:
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        if progress is not None and time.monotonic() - last[0] >= PROGRESS_EVERY:
            last[0] = time.monotonic()
            live = so_far()
            if live is not None:
                progress(live, analyze(live))

    return poll


def run_scenario(sc: Scenario, out: Path | None = None, *, loopback: bool = False, lang: str = "en",
                 timeout: float = 10.0, progress: Progress | None = None,
                 cancel: threading.Event | None = None) -> RunResult:
    """Run ``sc`` in a fresh lab and save the attributed capture (see the module docstring).

    ``progress`` gets the trace so far and its analysis every ``PROGRESS_EVERY``
    seconds while the scenario runs (the TUI's live mode); setting ``cancel`` stops
    the run as Ctrl-C would, and the capture so far is still saved."""
    from tracer.core.analyze import analyze
    from tracer.pcap.writer import write_pcapng

    check_privileges()
    path = out if out is not None else default_output(sc.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="tracer-run-"))
    old: dict[int, object] = {}
    try:
        with Lab(prefix="trcrun", loopback=loopback) as lab:
            parts: list[_Part] = []
            states: list[KernelSocketState] = []
            sniffer = Sniffer(lab.server)
            error: TracerError | None = None
            interrupted = False
            poll = poller(cancel, progress, lambda: _live_trace(sniffer, parts, sc, loopback))

            try:
                with contextlib.ExitStack() as impaired:
                    _impair(impaired, lab, sc)
                    sniffer.start()
                    poll()
                    error = _play(lab, sc, tmp, parts, states, timeout, poll)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                # From here to the lab's removal, signals must not cut the clean-up short.
                old = _ignore_signals()
                raised = [t for p in parts if (t := p.failed_at_ns()) is not None]
                t_err = min(raised) if raised else time.time_ns()
                for part in parts:
                    part.kill()
            if sniffer.proc is None:
                raise KeyboardInterrupt  # interrupted before the capture started: nothing to save
            cap = sniffer.stop()
            states.extend(s for name, host in _hosts(lab) for s in snapshot(host, name, "end"))
            trace = cap.trace
            warnings = list(trace.warnings)
            if error is not None:
                warnings.append(_error_warning(trace, error, t_err))
            meta = dataclasses.replace(trace.meta, extra={
                **trace.meta.extra, "scenario": sc.name, "scenario.source": _source_text(sc),
                "lab": "loopback" if loopback else "veth",
                **_capture_meta(cap.stats)})
            trace = dataclasses.replace(trace, calls=_calls(parts), kernel_states=tuple(states), meta=meta,
                                        warnings=tuple(warnings))
            analysis = analyze(trace)
            write_pcapng(path, trace, analysis, lang=lang)
    finally:
        _restore(old)
        shutil.rmtree(tmp, ignore_errors=True)
    return RunResult(path, trace, analysis, error, interrupted)
