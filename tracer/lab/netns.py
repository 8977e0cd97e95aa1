"""Private network namespaces for real-kernel runs: two hosts joined by a veth pair.

Each ``Lab`` gets its own namespaces (named ``<prefix>-<pid>-<n>-client`` and
``...-server``), so concurrent labs never share a wire and the captured traffic is
only what the run made.  Deleting a namespace also deletes its veth end, so
clean-up is a matter of deleting namespaces; ``cleanup_stale`` removes the
leftovers of runs whose process is gone.

Addresses are fixed per lab (the namespaces are isolated, so labs may reuse them):
client 10.77.0.1 / fd00:77::1, server 10.77.0.2 / fd00:77::2.  The veth ends are
named per lab (``cli<pid>-<n>`` and ``srv<pid>-<n>``, see ``iface_names``): the
kernel witness (``tracer.lab.witness``) filters the machine-wide tracepoints by
device name, so no other namespace's ``eth0`` may look like the lab's.  With
``loopback=True`` there is one namespace and only ``lo``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tracer.errors import EXIT_MISSING_TOOL, EXIT_PRIVILEGES, TracerError
from tracer.i18n import Msg

_counter = itertools.count()
_NAME_RE = re.compile(r"^(?P<prefix>[a-z0-9]+)-(?P<pid>\d+)-\d+-(client|server|lo)$")

CLIENT_IP = "10.77.0.1"
SERVER_IP = "10.77.0.2"
CLIENT_IP6 = "fd00:77::1"
SERVER_IP6 = "fd00:77::2"


def iface_names(pid: int, n: int) -> tuple[str, str]:
    """The client's and the server's veth names for lab ``n`` of process ``pid``
    (unique among live labs, at most 15 characters as the kernel requires)."""
    return f"cli{pid}-{n % 10000}", f"srv{pid}-{n % 10000}"


class LabError(TracerError):
    """The lab could not be set up (missing tool, missing privileges, ...)."""

    exit_code = EXIT_PRIVILEGES


# A lab side ("server", "client") as a word in a sentence.
SIDES: dict[str, Msg] = {"server": Msg("lab.side.server"), "client": Msg("lab.side.client")}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def require_tool(name: str, package: str) -> str:
    """Path of ``name`` or a ``LabError`` saying which Debian package provides it."""
    path = shutil.which(name)
    if path is None:
        raise LabError("lab.tool_missing", name=name, package=package, exit_code=EXIT_MISSING_TOOL)
    return path


def list_namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a stale lab's or witness instance's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(prefix: str = "trc") -> list[str]:
    """Delete namespaces left by dead runs with this prefix; return their names."""
    removed = []
    for name in list_namespaces():
        m = _NAME_RE.match(name)
        if m and m["prefix"] == prefix and not pid_alive(int(m["pid"])):
            _kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


def _kill_namespace_processes(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass
class Host:
    """One end of the lab: a namespace and its addresses."""

    ns: str
    ip: str
    ip6: str
    iface: str

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(argv), capture_output=True, text=True, timeout=timeout,
                              check=check, input=input)

    def popen(self, argv: Sequence[str], **kw: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(argv), text=True, **kw)  # type: ignore[call-overload, no-any-return]


class Lab:
    """Two hosts on a veth pair (or one host on ``lo``), created on enter, removed on exit."""

    def __init__(self, prefix: str = "trc", loopback: bool = False) -> None:
        if os.geteuid() != 0:
            raise LabError("lab.needs_root")
        require_tool("ip", "iproute2")
        if not loopback:
            require_tool("nft", "nftables")
        n = next(_counter)
        base = f"{prefix}-{os.getpid()}-{n}"
        self.prefix = prefix
        self.loopback = loopback
        if loopback:
            self.client = Host(f"{base}-lo", "127.0.0.1", "::1", "lo")
            self.server = self.client
        else:
            cif, sif = iface_names(os.getpid(), n)
            self.client = Host(f"{base}-client", CLIENT_IP, CLIENT_IP6, cif)
            self.server = Host(f"{base}-server", SERVER_IP, SERVER_IP6, sif)
        self._created: list[str] = []

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (self.client,) if self.loopback else (self.client, self.server)

    def __enter__(self) -> Lab:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        cleanup_stale(self.prefix)
        for h in self.hosts:
            _ip("netns", "add", h.ns)
            self._created.append(h.ns)
            # Quiet wire: no router solicitations or autoconf chatter in captures.
            for key in ("net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0"):
                h.run(["sysctl", "-qw", key], check=False)
            h.run(["ip", "link", "set", "lo", "up"])
        if self.loopback:
            return
        c, s = self.client, self.server
        _ip("link", "add", c.iface, "netns", c.ns, "type", "veth", "peer", "name", s.iface, "netns", s.ns)
        for h in self.hosts:
            # No link-local address: no DAD or router chatter in the captures; and
            # MLD reports (sent up to a second after link-up) never reach the wire.
            h.run(["sysctl", "-qw", f"net.ipv6.conf.{h.iface}.addr_gen_mode=1"], check=False)
            h.run(["nft", "-f", "-"], input=_QUIET_RULES)
            h.run(["ip", "addr", "add", f"{h.ip}/24", "dev", h.iface])
            h.run(["ip", "-6", "addr", "add", f"{h.ip6}/64", "dev", h.iface, "nodad"])
            h.run(["ip", "link", "set", h.iface, "up"])
        # Static neighbours: no ARP/ND on the wire, and a first SYN that does not
        # wait for address resolution, so timings are repeatable.
        for here, there in ((c, s), (s, c)):
            mac = _mac(there)
            for addr in (there.ip, there.ip6):
                here.run(["ip", "neigh", "replace", addr, "lladdr", mac, "dev", here.iface,
                          "nud", "permanent"])

    def close(self) -> None:
        for ns in reversed(self._created):
            _kill_namespace_processes(ns)
            _ip("netns", "del", ns, check=False)
        self._created.clear()

    @contextlib.contextmanager
    def tcpdump(self, host: Host, path: str | Path, *, snaplen: int = 65535, buffer_kib: int = 262144,
                extra: Sequence[str] = (), immediate: bool = True) -> Iterator[subprocess.Popen[str]]:
        """Capture on ``host``'s interface to ``path`` with tcpdump until the block ends.

        Waits until tcpdump says it is listening, and on exit stops it with SIGINT
        and waits so the file is complete.
        """
        require_tool("tcpdump", "tcpdump")
        # -Z root: tcpdump would otherwise drop to user "tcpdump" and fail to write
        # into a root-only directory (pytest tmp dirs, ~/.cache).  Immediate mode:
        # frames still in a TPACKET_V3 block at SIGINT would otherwise be lost.
        # A ring of -B KiB holds about buffer/snaplen frames (immediate mode makes libpcap
        # use TPACKET_V2: one snaplen-sized slot per frame): with tcpdump's defaults
        # (2 MiB, 256 KiB snaplen) only 8; 256 MiB at 64 KiB gives ~4,000 slots, so a
        # burst of a few thousand frames cannot overflow it however late tcpdump runs.
        mode = ["--immediate-mode"] if immediate else []
        argv = ["tcpdump", "-Z", "root", "-i", host.iface, "-s", str(snaplen), "-B", str(buffer_kib), *mode,
                "-U", "-n", "-w", str(path), *extra]
        proc = host.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_listening(proc)
            yield proc
        finally:
            # Frames still in the ring at SIGINT are lost: wait until tcpdump has written
            # them (-U writes each packet), i.e. the file stopped growing (a busy CPU slows it).
            wait_file_quiet(Path(path), quiet=0.15, limit=5.0)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_file_quiet(path: Path, quiet: float, limit: float) -> None:
    """Return once ``path`` has not grown for ``quiet`` s (at most ``limit`` s in all)."""
    deadline = time.monotonic() + limit
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            now = path.stat().st_size
        except OSError:
            now = -1
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.02)


_QUIET_RULES = """
table inet tracer_quiet {
    chain out {
        type filter hook output priority 0; policy accept;
        icmpv6 type { mld-listener-report, mld2-listener-report, mld-listener-done, nd-router-solicit } drop
    }
}
"""


def _mac(host: Host) -> str:
    out = host.run(["cat", f"/sys/class/net/{host.iface}/address"]).stdout
    return out.strip()


def _wait_listening(proc: subprocess.Popen[str], timeout: float = 10.0) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if "listening on" in line:
            return
    proc.kill()
    raise LabError("lab.tcpdump_failed", why="".join(seen).strip(), exit_code=EXIT_MISSING_TOOL)
