"""The kernel witness: the kernel's own tracepoints for a lab run, from a private tracefs instance.

``Witness(devices, ports)`` creates an ftrace instance (``<tracefs>/instances/tracer-<pid>-<n>``,
its own ring buffer on the ``tai`` clock, which reads like the packets' wall clock), enables
there the tracepoints that say why each frame exists and what became of it:

- ``net:net_dev_queue`` on the lab's devices only, with a ``stacktrace`` trigger: the kernel
  stack that queued each frame (``tcp_connect ← __sys_connect``, ``tcp_delack_timer_handler``, ...);
- ``skb:kfree_skb`` with a real drop reason (``NETFILTER_DROP``, ``TCP_LISTEN_OVERFLOW`` ...) and
  its stack (a drop counts for a frame only on a receive path);
- ``tcp:tcp_send_reset`` (the RST's reason), ``sock:inet_sock_set_state`` (every state change of
  every TCP socket, listeners and request sockets included) and ``tcp:tcp_probe`` (the
  receiver's cwnd, ssthresh, srtt and windows as each segment arrives).

A reader thread drains each CPU's ``trace_pipe`` while the run goes on (per CPU, so that a
stack trace always follows its own event), and ``stop()`` returns the parsed records and the
ring buffer's overrun count.  Events of other namespaces share these tracepoints: the device
filter keeps other traffic out of ``net_dev_queue``; the rest is filtered by
``tracer.core.witness.account``, which ties records to captured frames.

The instance is removed on every way out (``stop``/``close``, an exception, Ctrl-C), and
``cleanup_stale`` removes the instances of dead processes (after a SIGKILL).  Where tracefs
cannot be had (no root, a container without it), ``Witness`` raises ``WitnessUnavailable``
with a keyed one-line reason, and the run goes on without the kernel's account.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tracer.core.witness import KernelRecord
from tracer.errors import TracerError
from tracer.lab.netns import pid_alive

_counter = itertools.count()
_INSTANCE_RE = re.compile(r"^tracer-(?P<pid>\d+)-\d+$")
BUFFER_KB = 8192  # per CPU; the reader drains it as the run goes
_POLL_S = 0.02

# (event, filter, stacktrace?) -- the filter of net_dev_queue is built from the devices.
_EVENTS: tuple[tuple[str, str, bool], ...] = (
    ("skb/kfree_skb", "reason > 2", True),  # 2 = NOT_SPECIFIED: a plain free, not a drop
    ("tcp/tcp_send_reset", "", False),
    ("sock/inet_sock_set_state", "protocol == 6", False),
    ("tcp/tcp_probe", "", False),
)


class WitnessUnavailable(TracerError):
    """The kernel witness cannot run here (the run goes on without it)."""


def _mounts() -> list[tuple[str, str]]:
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                out.append((parts[1], parts[2]))
    return out


def find_tracefs() -> Path | None:
    """A mounted tracefs, if any."""
    for where, kind in _mounts():
        if kind == "tracefs" and Path(where, "instances").is_dir():
            return Path(where)
    return None


def cleanup_stale(root: Path) -> list[str]:
    """Remove the witness instances of processes that are gone; their names."""
    removed = []
    inst = root / "instances"
    with contextlib.suppress(OSError):
        for d in inst.iterdir():
            m = _INSTANCE_RE.match(d.name)
            if m is None or pid_alive(int(m["pid"])):
                continue
            _remove_instance(d)
            removed.append(d.name)
    return removed


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _remove_instance(d: Path) -> None:
    """Disable what the instance traced and remove it (its triggers first: the kernel wants that)."""
    for trig in ("net/net_dev_queue", "skb/kfree_skb"):
        with contextlib.suppress(OSError):
            _write(d / "events" / trig / "trigger", "!stacktrace")
    with contextlib.suppress(OSError):
        _write(d / "tracing_on", "0")
    with contextlib.suppress(OSError):
        _write(d / "events" / "enable", "0")
    for _ in range(50):
        try:
            d.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                return
            time.sleep(0.02)  # a reader still has a file open


# -- parsing ------------------------------------------------------------------------------

# "  python3-31517   [001] b.... 1796690944.118127: net_dev_queue: dev=eth0 skbaddr=... len=68"
_LINE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<tid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+(?:\S+\s+)?"
    r"(?P<sec>\d+)\.(?P<usec>\d+):\s+(?P<event>[\w]+|<stack trace>):?\s?(?P<body>.*)$"
)
_FIELD = re.compile(r"(\w+)[=:] ?(\S+)")


def parse_lines(lines: Sequence[str], cpu: int = 0) -> list[KernelRecord]:
    """Records from one CPU's trace text; a ``<stack trace>`` and its `` => fn`` lines go to
    the latest record still waiting for its stack (interrupt nesting keeps them paired)."""
    out: list[KernelRecord] = []
    stacked: list[int] = []  # indices of records whose stack trace is still to come
    frames: list[str] | None = None
    owner = -1

    def close_stack() -> None:
        nonlocal frames
        if frames is not None and owner >= 0:
            r = out[owner]
            out[owner] = KernelRecord(r.ts_ns, r.cpu, r.tid, r.comm, r.event, r.fields, tuple(frames))
        frames = None

    for line in lines:
        if line.startswith(" => "):
            if frames is not None:
                fn = line[4:].strip().split("+", 1)[0]
                frames.append(fn)
            continue
        close_stack()
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        ts = int(m["sec"]) * 1_000_000_000 + int(m["usec"][:9].ljust(9, "0"))
        if m["event"] == "<stack trace>":
            owner = stacked.pop() if stacked else -1
            frames = []
            continue
        body = m["body"]
        fields = tuple((k, v) for k, v in _FIELD.findall(body))
        out.append(KernelRecord(ts, cpu, int(m["tid"]), m["comm"].strip(), m["event"], fields))
        if m["event"] in ("net_dev_queue", "kfree_skb"):
            stacked.append(len(out) - 1)
    close_stack()
    return out


# -- the instance -----------------------------------------------------------------------------


class Witness:
    """A private ftrace instance recording the lab's kernel events (see the module docstring)."""

    def __init__(self, devices: Sequence[str], buffer_kb: int = BUFFER_KB) -> None:
        if os.geteuid() != 0:
            raise WitnessUnavailable("witness.needs_root")
        self.devices = tuple(devices)
        self.buffer_kb = buffer_kb
        self._mounted: Path | None = None
        root = find_tracefs()
        if root is None:
            root = self._mount()
        self.root = root
        cleanup_stale(root)
        self.name = f"tracer-{os.getpid()}-{next(_counter)}"
        self.dir = root / "instances" / self.name
        self.clock_offset_ns = 0
        self._buf: dict[int, list[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: dict[int, int] = {}
        self.overrun = 0
        self.available = True

    def _mount(self) -> Path:
        where = Path(tempfile.mkdtemp(prefix="tracer-tracefs-"))
        proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(where)], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0 or not (where / "instances").is_dir():
            with contextlib.suppress(OSError):
                where.rmdir()
            why = (proc.stderr.strip().splitlines() or ["no tracefs"])[-1]
            raise WitnessUnavailable("witness.no_tracefs", why=why)
        self._mounted = where
        return where

    def start(self) -> None:
        """Create the instance, enable its events, and start draining them."""
        try:
            self.dir.mkdir()
        except OSError as e:
            self._unmount()
            raise WitnessUnavailable("witness.no_instance", why=e.strerror or str(e)) from None
        try:
            self._configure()
        except OSError as e:
            self.close()
            raise WitnessUnavailable("witness.no_events", why=f"{e.filename}: {e.strerror}") from None
        for cpu_dir in sorted((self.dir / "per_cpu").glob("cpu*")):
            cpu = int(cpu_dir.name[3:])
            self._files[cpu] = os.open(cpu_dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK)
            self._buf[cpu] = []
        self._thread = threading.Thread(target=self._drain_loop, name="tracer-witness", daemon=True)
        self._thread.start()

    def _configure(self) -> None:
        d = self.dir
        clocks = (d / "trace_clock").read_text()
        if "tai" in clocks.replace("[", " ").replace("]", " ").split():
            _write(d / "trace_clock", "tai")
            # The witness's clock next to the packets' (CLOCK_REALTIME): the same but for TAI's offset.
            # TAI is ahead of UTC by whole seconds (0 where the kernel's TAI offset is unset).
            diff = time.clock_gettime_ns(time.CLOCK_TAI) - time.time_ns()
            self.clock_offset_ns = round(diff / 1e9) * 1_000_000_000
        else:
            raise OSError(errno.ENOTSUP, "no tai trace clock", str(d / "trace_clock"))
        _write(d / "buffer_size_kb", str(self.buffer_kb))
        ev = d / "events"
        devs = " || ".join(f'name {"~" if "*" in n else "=="} "{n}"' for n in self.devices)
        _write(ev / "net" / "net_dev_queue" / "filter", devs)
        _write(ev / "net" / "net_dev_queue" / "trigger", "stacktrace")
        _write(ev / "net" / "net_dev_queue" / "enable", "1")
        _write(ev / "net" / "netif_receive_skb" / "filter", devs)
        _write(ev / "net" / "netif_receive_skb" / "enable", "1")
        for name, filt, stack in _EVENTS:
            if filt:
                _write(ev / name / "filter", filt)
            if stack:  # only for the records the filter keeps: a stack per drop, not per free
                _write(ev / name / "trigger", f"stacktrace if {filt}" if filt else "stacktrace")
            _write(ev / name / "enable", "1")
        _write(d / "tracing_on", "1")

    def _drain(self) -> None:
        for cpu, fd in self._files.items():
            chunks = []
            while True:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    break
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            if chunks:
                self._buf[cpu].append(b"".join(chunks).decode("utf-8", "replace"))

    def _drain_loop(self) -> None:
        while not self._stop.wait(_POLL_S):
            self._drain()

    def stop(self) -> list[KernelRecord]:
        """Stop recording; every record so far (on the packets' clock), by time."""
        if self._thread is None:
            return []
        with contextlib.suppress(OSError):
            _write(self.dir / "tracing_on", "0")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._drain()
        self.overrun = self._overruns()
        records: list[KernelRecord] = []
        for cpu, parts in self._buf.items():
            records.extend(parse_lines("".join(parts).splitlines(), cpu))
        self.close()
        off = self.clock_offset_ns
        if off:
            records = [KernelRecord(r.ts_ns - off, r.cpu, r.tid, r.comm, r.event, r.fields, r.stack)
                       for r in records]
        records.sort(key=lambda r: r.ts_ns)
        return records

    def _overruns(self) -> int:
        total = 0
        for stats in (self.dir / "per_cpu").glob("cpu*/stats"):
            with contextlib.suppress(OSError, ValueError):
                for line in stats.read_text().splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split()[1])
        return total

    def close(self) -> None:
        """Remove the instance (and the private tracefs mount); safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in self._files.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._files.clear()
        if self.dir.exists():
            _remove_instance(self.dir)
        self._unmount()

    def _unmount(self) -> None:
        if self._mounted is not None:
            subprocess.run(["umount", str(self._mounted)], capture_output=True, check=False)
            with contextlib.suppress(OSError):
                self._mounted.rmdir()
            self._mounted = None

    def __enter__(self) -> Witness:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
