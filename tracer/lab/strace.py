"""strace's output as socket calls: how ``tracer trace`` sees programs tracer did not write.

A program in any language runs under ::

    strace -f -q -yy -s 64 --timestamps=unix,ns --syscall-times=ns -e trace=SYSCALLS -o FILE -- CMD

(``strace_argv``; ``-ttt -T``, microseconds, where strace has no nanosecond option)
and ``parse`` turns the file into ``SocketCall`` values in the recorder's vocabulary
(``tracer.lab.recorder``), so that ``attribute_calls`` ties packets to them unchanged:

==============================================  ===========================================
syscall (on a TCP/UDP socket fd)                call
==============================================  ===========================================
socket, bind, listen, shutdown, setsockopt,     the same name
getsockname, getpeername
accept, accept4                                 accept (fd: the listener; result, local,
                                                remote: the new connection)
connect                                         connect (errno kept: EINPROGRESS, ...)
write, writev, send, sendto, sendmsg, sendfile  send; sendto when a UDP datagram names its
                                                destination (args: address)
read, readv, recv, recvfrom, recvmsg            recv; recvfrom when a UDP datagram's source
                                                is shown (result "N from ADDR")
close, close_range                              close
fcntl(F_SETFL), ioctl(FIONBIO)                  setblocking (args: blocking=True/False)
==============================================  ===========================================

``RULES`` is this table as code: each syscall's handler and the calls it becomes
(tests/test_trace.py checks that the two agree).

A call whose syscall has another name says so in ``args`` (``syscall=write``).  Only
file descriptors that strace's ``-yy`` decoration shows as TCP/UDP sockets
(``3<TCP:[10.77.0.1:5000->10.77.0.2:7777]>``, ``TCPv6``, ``UDP``, ``UDPv6``) count;
the decoration gives each call its socket's local and remote endpoints as they were
when the call was entered.

Processes are followed through fork/vfork/clone (threads: ``pid`` is the thread
group, ``tid`` the thread) and execve (``process`` is the program's file name).
Each process's socket descriptors are tracked (inherited by fork, shared by threads,
copied by dup, dropped by close-on-exec), so that

- a ``close`` that leaves the socket open in another process (a forking server's
  parent closing its copy of the connection) has no endpoints and says where the
  socket is still open (``args``: ``still_open_in``): the FIN comes from the last
  close, and attribution must not pick this one;
- sockets still open when a process ends are closed by the kernel: each gets a
  ``close`` with ``by=exit`` (or ``by=SIGSEGV`` etc. for a process killed by a
  signal, ``by=exec`` for close-on-exec), entered when the process began to end
  (``exit_group``, or the fatal signal's delivery), so the FIN (or RST) it sends is
  tied to it - as the recorder records the garbage collector's closes.

Times: strace's absolute timestamps (CLOCK_REALTIME, the packet clock) are the
entry times; the exit is when strace had seen the call return (``_exit_time``).
``<unfinished ...>`` and ``<... resumed>`` halves are joined per thread; a call that
never returned (the process was killed in it) has ``t_exit_ns`` None.  A call the
kernel restarted after a signal (``? ERESTARTSYS``) is dropped when the thread went on
(the program never saw it).

A process killed by a signal other than those the caller sent on purpose
(``expected_signals``) is a warning: ``program_crashed`` (SIGSEGV, SIGABRT, ... or
a core dump) or ``program_killed`` (e.g. SIGPIPE: it wrote to a connection the peer
had closed).

``parse`` is pure: text in, values out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from tracer.core.model import ACK, PROTO_TCP, SYN, SocketCall, TraceWarning, endpoint_str
from tracer.core.table import PacketTable
from tracer.i18n import both
from tracer.lab.netns import SIDES

# Socket syscalls (%network) plus what touches a socket fd by another name and what
# follows processes.  "?" : not an error where this strace does not know the name.
SYSCALLS = ("%network", "read", "write", "readv", "writev", "sendfile", "close", "?close_range", "fcntl",
            "ioctl", "dup", "dup2", "dup3",
            "clone", "?clone3", "fork", "vfork", "execve", "?execveat", "exit_group",
            # Not socket calls: traced so that a blocking wait is a line of its own (``_exit_time``).
            "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "nanosleep",
            "clock_nanosleep")


def strace_argv(strace: str, out: str | Path, *, ns: bool = True) -> list[str]:
    """The strace command line that writes what ``parse`` reads to ``out``.

    ``ns``: nanosecond timestamps and durations (strace >= 6.0); else ``-ttt -T``
    (microseconds).  The traced command follows.
    """
    clock = ["--timestamps=unix,ns", "--syscall-times=ns"] if ns else ["-ttt", "-T"]
    return [strace, "-f", "-q", "-yy", "-s", "64", *clock, "-e", "trace=" + ",".join(SYSCALLS),
            "-o", str(out), "--"]


@dataclass(frozen=True)
class Process:
    """One traced process (thread group) as strace saw it."""

    pid: int
    name: str  # the program's file name (execve), inherited through fork
    parent: int | None  # the process that forked it, if seen
    exit_status: int | None = None  # "+++ exited with N +++"
    killed_by: str | None = None  # "+++ killed by SIGSEGV +++"
    core_dumped: bool = False
    t_end_ns: int | None = None


@dataclass(frozen=True)
class Parsed:
    """What ``parse`` found: the socket calls, warnings, and the processes."""

    calls: tuple[SocketCall, ...]
    warnings: tuple[TraceWarning, ...]
    processes: tuple[Process, ...]


# --- lines ---------------------------------------------------------------------------------

_HEAD = re.compile(r"^(?:(\d+) +|\[pid +(\d+)\] )?(\d+)\.(\d+) (.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\) += (.*?)(?: <(\d+)\.(\d+)>)?$")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_EXITED = re.compile(r"^\+\+\+ exited with (\d+) \+\+\+$")
_KILLED = re.compile(r"^\+\+\+ killed by (SIG\w+)( \(core dumped\))? \+\+\+$")
_SIGNAL = re.compile(r"^--- (SIG\w+) ")


def _ns(sec: str, frac: str) -> int:
    return int(sec) * 1_000_000_000 + int(frac[:9].ljust(9, "0"))


@dataclass
class _Sys:
    """One syscall, its halves joined."""

    order: int
    tid: int
    t_ns: int
    name: str
    args: str
    ret: str | None  # None: it never returned (the thread ended inside it)
    dur_ns: int | None
    t_seen_ns: int | None = None  # when strace had seen it return: the <... resumed> line, or the next line


@dataclass
class _End:
    """``+++ exited/killed +++`` of a thread."""

    order: int
    tid: int
    t_ns: int
    status: int | None
    signal: str | None
    core: bool


@dataclass
class _Signal:
    order: int
    tid: int
    t_ns: int
    signal: str


_Event = _Sys | _End | _Signal


def _events(text: str) -> list[_Event]:
    """Every line as an event, ``<unfinished ...>``/``<... resumed>`` joined per thread."""
    out: list[_Event] = []
    pending: dict[int, _Sys] = {}
    complete: _Sys | None = None  # the previous line, a syscall printed whole
    for order, line in enumerate(text.splitlines()):
        m = _HEAD.match(line)
        if m is None:
            continue
        tid = int(m[1] or m[2] or 0)
        t = _ns(m[3], m[4])
        rest = m[5]
        if complete is not None:
            # strace ends a syscall's line before it starts another: that call had returned by now.
            complete.t_seen_ns = t
            complete = None
        if rest.endswith(_UNFINISHED):
            head = rest[: -len(_UNFINISHED)]
            name, _, args = head.partition("(")
            sc = _Sys(order, tid, t, name, args, None, None)
            pending[tid] = sc
            out.append(sc)
            continue
        r = _RESUMED.match(rest)
        if r is not None:
            sc_or_none = pending.pop(tid, None)
            if sc_or_none is None:  # the first half was not seen (cut file): entered when resumed
                sc_or_none = _Sys(order, tid, t, r[1], "", None, None)
                out.append(sc_or_none)
            _finish(sc_or_none, sc_or_none.args + r[2])
            sc_or_none.t_seen_ns = t  # printed when strace saw it return
            continue
        if rest.startswith("+++ "):
            e = _EXITED.match(rest)
            k = _KILLED.match(rest)
            if e is not None or k is not None:
                out.append(_End(order, tid, t, int(e[1]) if e else None, k[1] if k else None,
                                bool(k and k[2])))
            continue
        if rest.startswith("--- "):
            s = _SIGNAL.match(rest)
            if s is not None:
                out.append(_Signal(order, tid, t, s[1]))
            continue
        sc = _Sys(order, tid, t, "", "", None, None)
        if _finish(sc, rest.replace(_UNFINISHED, "")):
            out.append(sc)
            complete = sc
    return out


def _finish(sc: _Sys, text: str) -> bool:
    """Fill ``sc`` from ``NAME(ARGS) = RET <DUR>`` (``sc.name`` may be set already)."""
    if sc.name and not text.startswith(sc.name + "("):
        text = f"{sc.name}({text}"
    m = _CALL.match(text)
    if m is None:
        return False
    sc.name, sc.args, sc.ret = m[1], m[2], m[3]
    sc.dur_ns = _ns(m[4], m[5]) if m[4] is not None else None
    return True


EXIT_SLACK_NS = 2_000_000


def _exit_time(sc: _Sys) -> int | None:
    """When the call had returned, as far as strace's output says.

    strace prints the timestamp before it decodes the arguments (``-yy`` asks the
    kernel about each socket: tens to hundreds of microseconds) and starts the
    ``<duration>`` after, so entry + duration comes before the real return, and the
    packets a call sent can come after it.  An upper bound: the ``<... resumed>``
    line, or the next line strace printed (it ends a line before it starts another);
    the latter at most ``EXIT_SLACK_NS`` after entry + duration, for a program
    that went on computing.
    """
    if sc.dur_ns is None:
        return sc.t_seen_ns
    low = sc.t_ns + sc.dur_ns
    if sc.t_seen_ns is None:
        return low + EXIT_SLACK_NS
    return max(low, min(sc.t_seen_ns, low + EXIT_SLACK_NS))


# --- arguments ------------------------------------------------------------------------------

_OPEN = {"(": ")", "[": "]", "{": "}"}


def split_args(s: str) -> list[str]:
    """strace's argument list split at its top-level commas (strings, brackets and
    ``N<...>`` fd decorations kept whole)."""
    out: list[str] = []
    depth: list[str] = []
    start = 0
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif ch == "<" and i > 0 and s[i - 1].isdigit():
            level = 0
            while i < n:  # a decoration: <TCP:[...]>, </path>, </dev/null<char 1:3>>
                level += {"<": 1, ">": -1}.get(s[i], 0)
                if level == 0:
                    break
                i += 1
        elif ch in _OPEN:
            depth.append(_OPEN[ch])
        elif depth and ch == depth[-1]:
            depth.pop()
        elif ch == "," and not depth:
            out.append(s[start:i].strip())
            start = i + 1
        i += 1
    last = s[start:].strip()
    if last or out:
        out.append(last)
    return out


_SOCK = re.compile(r"^(-?\d+)<(TCP|UDP|TCPv6|UDPv6):\[(.*?)\]>")
_OTHER_SOCK = re.compile(r"^(-?\d+)<socket:\[\d+\]>")
_FD = re.compile(r"^(-?\d+)(?:<|$)")
_PORT = re.compile(r"\bsin6?_port=htons\((\d+)\)")
_ADDR4 = re.compile(r'\bsin_addr=inet_addr\("([^"]*)"\)')
_ADDR6 = re.compile(r'\binet_pton\(AF_INET6, "([^"]*)"')
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"(?:\.\.\.)?')
_IOV_LEN = re.compile(r"\biov_len=(\d+)")
_ERRNO = re.compile(r"^-1 (E[A-Z0-9_]+)\b")
_RESTART = re.compile(r"^\? (ERESTART\w*)")
_CLOEXEC = ("SOCK_CLOEXEC", "O_CLOEXEC", "FD_CLOEXEC", "F_DUPFD_CLOEXEC")


def _decoration(inner: str) -> tuple[str | None, str | None]:
    """(local, remote) of a ``-yy`` socket decoration's inside: inode, ``l`` or ``l->r``."""
    if inner.isdigit() or not inner:
        return None, None
    local, arrow, remote = inner.partition("->")
    return local or None, (remote or None) if arrow else None


def sockaddr(text: str) -> str | None:
    """The endpoint of a decoded ``{sa_family=AF_INET[6], ...}``, else None."""
    if not text.startswith("{sa_family=AF_INET"):
        return None
    port = _PORT.search(text)
    addr = _ADDR6.search(text) if text.startswith("{sa_family=AF_INET6") else _ADDR4.search(text)
    if port is None or addr is None:
        return None
    return endpoint_str(addr[1], int(port[1]))


def _family(text: str) -> str:
    """What a sockaddr that is not an IP endpoint is: ``AF_UNSPEC`` (connect() dissolving a
    UDP association), ``NULL``, ... (strace's text, when it is not a structure)."""
    m = re.match(r"^\{sa_family=(\w+)", text)
    return m[1] if m else text


def _msg_field(msg: str, name: str) -> str | None:
    """A field of a decoded ``struct msghdr`` (``{msg_name=..., msg_iov=[...], ...}``)."""
    if not msg.startswith("{"):
        return None
    for part in split_args(msg[1:-1]):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            return value
    return None


def _iov_total(text: str) -> str:
    return str(sum(int(x) for x in _IOV_LEN.findall(_STRING.sub('""', text))))


def _value(ret: str) -> str:
    """The number a syscall returned, without its decoration (``4<TCP:[...]>`` -> ``4``)."""
    m = re.match(r"^-?(?:0x[0-9a-fA-F]+|\d+)", ret)
    return m[0] if m else ret


# --- the descriptor tables -------------------------------------------------------------------


@dataclass(eq=False)
class _Ref:
    """One open socket, referred to by descriptors in one or more processes."""

    proto: str
    local: str | None = None
    remote: str | None = None
    count: int = 0  # descriptors referring to it, over all live tables


@dataclass(eq=False)
class _Table:
    """A descriptor table: shared by threads (and CLONE_FILES), copied by fork."""

    fds: dict[int, tuple[_Ref, bool]] = field(default_factory=dict)  # fd -> (socket, close-on-exec)
    users: int = 0

    def put(self, fd: int, ref: _Ref, cloexec: bool) -> _Ref | None:
        """Set ``fd``; returns the socket it replaced when that lost its last descriptor."""
        old = self.drop(fd)
        ref.count += 1
        self.fds[fd] = (ref, cloexec)
        return old

    def drop(self, fd: int) -> _Ref | None:
        """Forget ``fd``; returns its socket if that was the socket's last descriptor."""
        entry = self.fds.pop(fd, None)
        if entry is None:
            return None
        entry[0].count -= 1
        return entry[0] if entry[0].count == 0 else None

    def copy(self) -> _Table:
        t = _Table()
        for fd, (ref, cloexec) in self.fds.items():
            t.put(fd, ref, cloexec)
        return t


@dataclass(eq=False)
class _Proc:
    pid: int
    name: str
    parent: int | None
    table: _Table
    threads: set[int]
    last_t: int
    ending_t: int | None = None  # exit_group entered, or a fatal signal delivered
    ending_by: str = "exit"
    end: _End | None = None


_CORE_SIGNALS = frozenset({"SIGSEGV", "SIGBUS", "SIGABRT", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS",
                           "SIGQUIT", "SIGXCPU", "SIGXFSZ"})
# Signals whose default action ends the process (SIGCHLD, SIGWINCH, ... do not).
_FATAL_SIGNALS = _CORE_SIGNALS | frozenset({"SIGHUP", "SIGINT", "SIGKILL", "SIGPIPE", "SIGALRM", "SIGTERM",
                                             "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGPROF", "SIGIO",
                                             "SIGPOLL", "SIGPWR", "SIGSTKFLT"})
_Args = tuple[tuple[str, str], ...]
_SECOND_ARG = {"listen": "backlog", "shutdown": "how"}


@dataclass(frozen=True)
class _Call:
    """One syscall as its handler (``RULES``) sees it."""

    p: _Proc
    sc: _Sys
    ret: str | None  # None: it never returned
    args: list[str]  # [] for a "process" rule's syscall
    errno: str | None
    t_exit: int | None
    target: tuple[int, _Ref] | None  # the TCP/UDP socket its first argument names: (fd, socket)

    @property
    def ok(self) -> bool:
        return self.ret is not None and self.errno is None

    @property
    def result(self) -> str | None:
        """What it returned, without decoration, if it succeeded."""
        return _value(self.ret) if self.ok and self.ret is not None else None

    @property
    def socket(self) -> tuple[int, _Ref]:
        """``target`` for a handler that runs only on a socket (a "socket" rule)."""
        assert self.target is not None, "a socket syscall's handler ran without its socket"
        return self.target


class _Parser:
    def __init__(self, side: str, expected_signals: frozenset[str]) -> None:
        self.side = side
        self.expected = expected_signals
        self.tgid: dict[int, int] = {}
        self.procs: dict[int, _Proc] = {}
        self.calls: list[SocketCall] = []
        self.warnings: list[TraceWarning] = []

    # --- processes ---

    def proc(self, tid: int, t: int) -> _Proc:
        pid = self.tgid.get(tid)
        if pid is None:  # first seen without its fork (the first process)
            pid = self.tgid[tid] = tid
            table = _Table(users=1)
            self.procs[pid] = _Proc(pid, "", None, table, {tid}, t)
        p = self.procs[pid]
        p.last_t = max(p.last_t, t)
        return p

    def clone(self, sc: _Sys, parent: _Proc) -> None:
        child = int(_value(sc.ret or ""))
        flags = sc.args
        if "CLONE_THREAD" in flags:
            self.tgid[child] = parent.pid
            parent.threads.add(child)
            return
        table = parent.table if "CLONE_FILES" in flags else parent.table.copy()
        table.users += 1
        self.tgid[child] = child
        self.procs[child] = _Proc(child, parent.name, parent.pid, table, {child}, sc.t_ns)

    def holders(self, ref: _Ref) -> list[str]:
        out = []
        for p in self.procs.values():
            if p.end is None and any(r is ref for r, _ in p.table.fds.values()):
                out.append(f"pid {p.pid}")
        return out

    def implicit_close(self, p: _Proc, tid: int, fd: int, ref: _Ref, t_enter: int, t_exit: int,
                       by: str) -> None:
        """The kernel closed the last descriptor of ``ref`` (process end, exec, dup2 over it)."""
        self.emit(p, tid, "close", fd, ref, (("by", by),), None, None, t_enter, t_exit,
                  local=ref.local, remote=ref.remote)

    def end_process(self, p: _Proc, tid: int, t: int) -> None:
        p.table.users -= 1
        if p.table.users > 0:
            return
        t_enter = p.ending_t if p.ending_t is not None else p.last_t
        for fd in sorted(p.table.fds):
            ref = p.table.drop(fd)
            if ref is not None:
                self.implicit_close(p, tid, fd, ref, min(t_enter, t), t, p.ending_by)

    # --- calls ---

    def emit(self, p: _Proc, tid: int, call: str, fd: int | None, ref: _Ref | None,
             args: tuple[tuple[str, str], ...], result: str | None, errno: str | None, t_enter: int,
             t_exit: int | None, *, local: str | None, remote: str | None) -> None:
        self.calls.append(SocketCall(
            id=len(self.calls), call=call, side=self.side, pid=p.pid, tid=tid, fd=fd, args=args,
            result=result, errno=errno, t_enter_ns=t_enter, t_exit_ns=t_exit, local=local, remote=remote,
            proto=ref.proto if ref is not None else None, process=p.name, source=None))

    def socket_of(self, p: _Proc, arg: str) -> tuple[int, _Ref] | None:
        """The socket a ``N<...>`` argument names (a TCP/UDP one), its endpoints updated."""
        m = _SOCK.match(arg)
        if m is not None:
            fd = int(m[1])
            local, remote = _decoration(m[3])
            entry = p.table.fds.get(fd)
            ref = entry[0] if entry is not None else None
            if ref is None:  # opened before tracing, or by a call not traced
                ref = _Ref("tcp" if m[2].startswith("TCP") else "udp")
                p.table.put(fd, ref, False)
            ref.proto = "tcp" if m[2].startswith("TCP") else "udp"
            if local is not None:
                ref.local = local
                ref.remote = remote
            return fd, ref
        m = _OTHER_SOCK.match(arg)
        if m is not None and int(m[1]) in p.table.fds:  # sock_diag did not answer: known socket
            return int(m[1]), p.table.fds[int(m[1])][0]
        return None

    def syscall(self, sc: _Sys, restarted: bool) -> None:
        """Dispatch one syscall to its handler in ``RULES``."""
        p = self.proc(sc.tid, sc.t_ns)
        ret = sc.ret
        if restarted:
            return
        if p.ending_by != "exit" and p.end is None:
            p.ending_t, p.ending_by = None, "exit"  # it caught the signal and went on
        if ret is not None and _RESTART.match(ret):
            ret = None  # interrupted and never resumed: the thread ended inside the call
        rule = RULES.get(sc.name)
        if rule is not None and rule.kind == "process":
            rule.handler(self, _Call(p, sc, ret, [], None, None, None))
            return
        args = split_args(sc.args)
        # Looked up for a syscall not in RULES too (socketpair, getsockopt, sendmmsg, ...: not in
        # the recorder's vocabulary): its decoration still says where the socket is connected.
        looks_up = rule is None or rule.kind in ("fd", "socket")
        target = self.socket_of(p, args[0]) if args and looks_up else None
        if rule is None or (rule.kind == "socket" and target is None):
            return
        t_exit = _exit_time(sc) if ret is not None else None
        errno = _ERRNO.match(ret) if ret is not None else None
        rule.handler(self, _Call(p, sc, ret, args, errno[1] if errno else None, t_exit, target))

    def emit_call(self, c: _Call, call: str, extra: _Args = (), result: str | None = None, *,
                  endpoints: tuple[str | None, str | None] | None = None) -> None:
        """``call`` on the socket of ``c`` (``args`` name the syscall if it has another name);
        the socket's endpoints unless ``endpoints`` says otherwise."""
        fd, ref = c.socket
        local, remote = endpoints if endpoints is not None else (ref.local, ref.remote)
        if call != c.sc.name:
            extra = (("syscall", c.sc.name), *extra)
        self.emit(c.p, c.sc.tid, call, fd, ref, extra, result, c.errno, c.sc.t_ns, c.t_exit, local=local,
                  remote=remote)

    # --- the handlers of RULES: processes ---

    def on_clone(self, c: _Call) -> None:
        if c.ret is not None and _value(c.ret).isdigit():
            self.clone(c.sc, c.p)

    def on_exec(self, c: _Call) -> None:
        p, sc = c.p, c.sc
        if c.ret is None or _value(c.ret) != "0":
            return
        args = split_args(sc.args)
        path = args[1 if sc.name == "execveat" else 0] if args else ""
        p.name = Path(path.strip('"')).name if path.startswith('"') else p.name
        for fd, (_ref, cloexec) in sorted(p.table.fds.items()):
            if cloexec:
                gone = p.table.drop(fd)
                if gone is not None:
                    self.implicit_close(p, sc.tid, fd, gone, sc.t_ns, sc.t_ns + (sc.dur_ns or 0), "exec")

    def on_exit_group(self, c: _Call) -> None:
        c.p.ending_t = c.sc.t_ns if c.p.ending_t is None else c.p.ending_t

    # --- descriptors ---

    def on_socket(self, c: _Call) -> None:
        p, sc, args = c.p, c.sc, c.args
        if len(args) < 3 or not args[0].startswith(("AF_INET", "PF_INET")):
            return
        kind = args[1].split("|")[0]
        if kind not in ("SOCK_STREAM", "SOCK_DGRAM"):
            return
        ref = _Ref("tcp" if kind == "SOCK_STREAM" else "udp")
        fd: int | None = None
        if c.ok and c.ret is not None:
            if not _value(c.ret).isdigit():
                return
            fd = int(_value(c.ret))
            gone = p.table.put(fd, ref, "SOCK_CLOEXEC" in args[1])
            if gone is not None:
                self.implicit_close(p, sc.tid, fd, gone, sc.t_ns, c.t_exit or sc.t_ns, "dup2")
        proto = "0" if args[2] == "IPPROTO_IP" else args[2]
        extra = (("family", args[0]), ("type", args[1]), ("proto", proto))
        self.emit(p, sc.tid, "socket", fd, ref, extra, str(fd) if fd is not None else None, c.errno, sc.t_ns,
                  c.t_exit, local=None, remote=None)

    def on_close_range(self, c: _Call) -> None:
        p, args = c.p, c.args
        if c.errno is not None or len(args) < 3 or not _value(args[0]).isdigit():
            return
        first = int(_value(args[0]))
        last = int(_value(args[1])) if _value(args[1]).isdigit() else 1 << 32
        for fd in sorted(k for k in p.table.fds if first <= k <= last):
            ref, _cloexec = p.table.fds[fd]
            if "CLOSE_RANGE_CLOEXEC" in args[2]:
                p.table.fds[fd] = (ref, True)
            else:
                self.close(p, c.sc, fd, ref, None, c.t_exit, "close_range")

    def on_dup(self, c: _Call) -> None:
        if not c.ok or c.ret is None:
            return
        p, sc, target = c.p, c.sc, c.target
        new = int(_value(c.ret))
        cloexec = any(flag in " ".join(c.args[1:]) for flag in _CLOEXEC)
        if target is None:  # a non-socket copied over a socket descriptor
            gone = p.table.drop(new) if new in p.table.fds else None
        else:
            gone = p.table.put(new, target[1], cloexec) if new != target[0] else None
        if gone is not None:
            self.implicit_close(p, sc.tid, new, gone, sc.t_ns, sc.t_ns + (sc.dur_ns or 0), "dup2")

    def on_fcntl(self, c: _Call) -> None:
        args = c.args
        if len(args) > 1 and args[1].startswith("F_DUPFD"):
            self.on_dup(c)
        elif c.target is not None and len(args) > 2 and args[1] == "F_SETFL":
            self.emit_call(c, "setblocking", (("blocking", "False" if "O_NONBLOCK" in args[2] else "True"),))
        elif c.target is not None and len(args) > 2 and args[1] == "F_SETFD":
            fd, ref = c.target
            c.p.table.fds[fd] = (ref, "FD_CLOEXEC" in args[2])

    # --- calls on a TCP/UDP socket ---

    def on_ioctl(self, c: _Call) -> None:
        if len(c.args) > 2 and c.args[1] == "FIONBIO":
            self.emit_call(c, "setblocking", (("blocking", "True" if c.args[2] == "[0]" else "False"),))

    def on_accept(self, c: _Call) -> None:
        p, sc, args = c.p, c.sc, c.args
        new = _SOCK.match(c.ret) if c.ok and c.ret is not None else None
        local = remote = None
        if new is not None:
            conn = _Ref(c.socket[1].proto)
            conn.local, conn.remote = _decoration(new[3])
            cloexec = len(args) > 3 and "SOCK_CLOEXEC" in args[3]
            gone = p.table.put(int(new[1]), conn, cloexec)
            if gone is not None:
                self.implicit_close(p, sc.tid, int(new[1]), gone, sc.t_ns, c.t_exit or sc.t_ns, "dup2")
            local, remote = conn.local, conn.remote
        if remote is None and c.ok and len(args) > 1:
            remote = sockaddr(args[1])
        self.emit_call(c, "accept", (), c.result, endpoints=(local, remote))

    def on_address(self, c: _Call) -> None:
        """bind and connect: the address, which becomes the socket's local or remote end."""
        ref, name, args = c.socket[1], c.sc.name, c.args
        address = sockaddr(args[1]) if len(args) > 1 else None
        if c.ok and address is not None:
            if name == "bind" and not address.endswith(":0"):
                ref.local = address
            elif name == "connect":
                ref.remote = address
        self.emit_call(c, name, (("address", address or _family(args[1] if len(args) > 1 else "")),))

    def on_second_arg(self, c: _Call) -> None:
        """listen's backlog, shutdown's how."""
        name = c.sc.name
        self.emit_call(c, name, ((_SECOND_ARG[name], c.args[1]),) if len(c.args) > 1 else ())

    def on_setsockopt(self, c: _Call) -> None:
        args = c.args
        extra: _Args = ()
        if len(args) >= 4:
            value = args[3][1:-1] if args[3].startswith("[") and args[3].endswith("]") else args[3]
            extra = (("level", args[1]), ("option", args[2]), ("value", value))
        self.emit_call(c, "setsockopt", extra)

    def on_getname(self, c: _Call) -> None:
        """getsockname, getpeername: the address is the result."""
        address = (sockaddr(c.args[1]) if len(c.args) > 1 else None) if c.ok else None
        self.emit_call(c, c.sc.name, (), address)

    def on_send(self, c: _Call) -> None:
        call, extra = self.send_args(c.sc.name, c.socket[1], c.args)
        self.emit_call(c, call, extra, c.result)

    def on_recv(self, c: _Call) -> None:
        call, extra, result = self.recv_args(c.sc.name, c.socket[1], c.args, c.result)
        self.emit_call(c, call, extra, result)

    def on_close(self, c: _Call) -> None:
        fd, ref = c.socket
        self.close(c.p, c.sc, fd, ref, c.errno, c.t_exit)

    def close(self, p: _Proc, sc: _Sys, fd: int, ref: _Ref, errno: str | None, t_exit: int | None,
              syscall: str = "close") -> None:
        extra: tuple[tuple[str, str], ...] = () if syscall == "close" else (("syscall", syscall),)
        local, remote = ref.local, ref.remote
        if p.table.drop(fd) is None and ref.count > 0:
            # Another descriptor (here or in another process) keeps the socket open:
            # this close sends nothing; the last one will.
            extra += (("still_open_in", ", ".join(self.holders(ref)) or "another process"),)
            local = remote = None
        self.emit(p, sc.tid, "close", fd, ref, extra, None, errno, sc.t_ns, t_exit, local=local,
                  remote=remote)

    @staticmethod
    def send_args(name: str, ref: _Ref, args: list[str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        dest = None
        if name == "sendto" and len(args) > 4:
            dest = sockaddr(args[4])
        elif name == "sendmsg" and len(args) > 1:
            dest = sockaddr(_msg_field(args[1], "msg_name") or "")
        if name == "writev":
            n = _iov_total(args[1]) if len(args) > 1 else ""
        elif name == "sendfile":
            n = args[3] if len(args) > 3 else ""
        elif name == "sendmsg":
            n = _iov_total(_msg_field(args[1], "msg_iov") or "") if len(args) > 1 else ""
        else:
            n = args[2] if len(args) > 2 else ""
        if ref.proto == "udp" and dest is not None:
            return "sendto", (("len", n), ("address", dest))
        return "send", (("len", n),)

    @staticmethod
    def recv_args(name: str, ref: _Ref, args: list[str], result: str | None
                  ) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
        src = None
        if name == "recvfrom" and len(args) > 4:
            src = sockaddr(args[4])
        elif name == "recvmsg" and len(args) > 1:
            src = sockaddr(_msg_field(args[1], "msg_name") or "")
        if name == "readv":
            n = _iov_total(args[1]) if len(args) > 1 else ""
        elif name == "recvmsg":
            n = _iov_total(_msg_field(args[1], "msg_iov") or "") if len(args) > 1 else ""
        else:
            n = args[2] if len(args) > 2 else ""
        if ref.proto == "udp" and src is not None:
            return "recvfrom", (("bufsize", n),), (f"{result} from {src}" if result is not None else None)
        return "recv", (("bufsize", n),), result

    # --- process ends and signals ---

    def signal(self, ev: _Signal) -> None:
        p = self.proc(ev.tid, ev.t_ns)
        if ev.signal in _FATAL_SIGNALS and p.ending_t is None:
            # If it is fatal (not caught), the kernel closes the process's files from here.
            p.ending_t, p.ending_by = ev.t_ns, ev.signal

    def end(self, ev: _End) -> None:
        p = self.proc(ev.tid, ev.t_ns)
        p.threads.discard(ev.tid)
        # The process's end is its leader's, or the first thread's killed by a signal.
        if p.end is None or (p.end.signal is None and (ev.signal is not None or ev.tid == p.pid)):
            p.end = ev
        if p.threads:
            return
        end = p.end or ev
        if end.signal is not None:
            p.ending_by = end.signal
        self.end_process(p, ev.tid, ev.t_ns)
        if end.signal is not None and end.signal not in self.expected:
            self.warn_killed(p, end)

    def warn_killed(self, p: _Proc, ev: _End) -> None:
        sig = ev.signal or ""
        who = f"{p.name or 'program'} (pid {p.pid})"
        side = SIDES.get(self.side, self.side)
        if sig in _CORE_SIGNALS or ev.core:
            text = both("lab.program_crashed", side=side, who=who, signal=sig)
            self.warnings.append(TraceWarning("program_crashed", *text, t_ns=ev.t_ns))
        elif sig == "SIGPIPE":
            text = both("lab.program_sigpipe", side=side, who=who)
            self.warnings.append(TraceWarning("program_killed", *text, t_ns=ev.t_ns))
        else:
            text = both("lab.program_killed", side=side, who=who, signal=sig)
            self.warnings.append(TraceWarning("program_killed", *text, t_ns=ev.t_ns))

    def processes(self) -> tuple[Process, ...]:
        out = []
        for p in self.procs.values():
            e = p.end
            out.append(Process(p.pid, p.name, p.parent, e.status if e else None, e.signal if e else None,
                               bool(e and e.core), e.t_ns if e else None))
        return tuple(out)



@dataclass(frozen=True)
class Rule:
    """What ``parse`` does with one syscall: the module docstring's table, as code."""

    handler: Callable[[_Parser, _Call], None]
    calls: tuple[str, ...] = ()  # the SocketCall.call values it becomes; (): it only tracks state
    # process: follows processes (arguments not parsed); opens: makes or drops descriptors by
    # number (its first argument is no socket); fd: any descriptor, a socket or not; socket: runs
    # only when its first argument is a TCP/UDP socket.
    kind: Literal["process", "opens", "fd", "socket"] = "socket"


# A syscall not here changes nothing tracer follows (socketpair, getsockopt, sendmmsg, poll, ...).
RULES: dict[str, Rule] = {
    **dict.fromkeys(("clone", "clone3", "fork", "vfork"), Rule(_Parser.on_clone, kind="process")),
    **dict.fromkeys(("execve", "execveat"), Rule(_Parser.on_exec, kind="process")),
    "exit_group": Rule(_Parser.on_exit_group, kind="process"),
    "socket": Rule(_Parser.on_socket, ("socket",), kind="opens"),
    "close_range": Rule(_Parser.on_close_range, ("close",), kind="opens"),
    **dict.fromkeys(("dup", "dup2", "dup3"), Rule(_Parser.on_dup, kind="fd")),
    "fcntl": Rule(_Parser.on_fcntl, ("setblocking",), kind="fd"),
    "ioctl": Rule(_Parser.on_ioctl, ("setblocking",)),
    **{name: Rule(_Parser.on_address, (name,)) for name in ("bind", "connect")},
    **{name: Rule(_Parser.on_second_arg, (name,)) for name in ("listen", "shutdown")},
    "setsockopt": Rule(_Parser.on_setsockopt, ("setsockopt",)),
    **{name: Rule(_Parser.on_getname, (name,)) for name in ("getsockname", "getpeername")},
    **dict.fromkeys(("accept", "accept4"), Rule(_Parser.on_accept, ("accept",))),
    **dict.fromkeys(("write", "writev", "send", "sendto", "sendmsg", "sendfile"),
                    Rule(_Parser.on_send, ("send", "sendto"))),
    **dict.fromkeys(("read", "readv", "recv", "recvfrom", "recvmsg"),
                    Rule(_Parser.on_recv, ("recv", "recvfrom"))),
    "close": Rule(_Parser.on_close, ("close",)),
}

def parse(text: str, side: str, *, expected_signals: frozenset[str] = frozenset()) -> Parsed:
    """The socket calls (labelled ``side``), warnings and processes in strace output ``text``.

    ``expected_signals``: signals that killed processes on purpose (the caller
    stopping a server): no warning for them.  Lines that are not strace's (or cut
    short) are skipped.
    """
    events = _events(text)
    # A restarted syscall (? ERESTARTSYS) is dropped when its thread made another one.
    later: set[int] = set()
    restarted: set[int] = set()
    for ev in reversed(events):
        if isinstance(ev, _Sys):
            if ev.ret is not None and _RESTART.match(ev.ret) and ev.tid in later:
                restarted.add(ev.order)
            later.add(ev.tid)
    events.sort(key=lambda ev: (ev.t_ns, ev.order))
    p = _Parser(side, expected_signals)
    for ev in events:
        if isinstance(ev, _Sys):
            p.syscall(ev, ev.order in restarted)
        elif isinstance(ev, _Signal):
            p.signal(ev)
        else:
            p.end(ev)
    ordered = sorted(p.calls, key=lambda c: (c.t_enter_ns, c.id))
    calls = tuple(dataclasses.replace(c, id=i) for i, c in enumerate(ordered))
    return Parsed(calls, tuple(p.warnings), p.processes())


def complete_endpoints(calls: tuple[SocketCall, ...], packets: PacketTable) -> tuple[SocketCall, ...]:
    """Calls with the local endpoint a connect() got, learnt from its SYN on the wire.

    strace shows a socket's endpoints as they were when a call was entered, so a
    connect()ed socket's local address appears only on later calls; a program that
    connects and then ends (or crashes) never shows it, and without it the FIN of the
    kernel's close cannot be tied to the socket.  The SYN that left inside the
    connect()'s window for its destination gives it (the recorder asks getsockname()).
    """
    syn = np.flatnonzero((packets.proto == PROTO_TCP) & ((packets.tcp_flags & (SYN | ACK)) == SYN))
    if syn.size == 0:
        return calls
    ts = packets.ts_ns[syn]
    learnt: dict[tuple[str, int, int], tuple[str, str]] = {}
    out = list(calls)
    for k, c in enumerate(out):
        if c.fd is None:
            continue
        key = (c.side, c.pid, c.fd)
        if c.call == "socket":
            learnt.pop(key, None)
        if c.call == "connect" and c.proto == "tcp" and c.local is None and c.errno in (None, "EINPROGRESS"):
            remote = c.remote or dict(c.args).get("address")
            end = c.t_exit_ns if c.t_exit_ns is not None else c.t_enter_ns + EXIT_SLACK_NS
            lo, hi = np.searchsorted(ts, [c.t_enter_ns, end + 1])
            for i in syn[lo:hi].tolist():
                if packets.dst_endpoint(i) == remote:
                    learnt[key] = (packets.src_endpoint(i), remote)
                    break
        got = learnt.get(key)
        if got is not None and c.local is None and "still_open_in" not in dict(c.args):
            out[k] = dataclasses.replace(c, local=got[0], remote=c.remote or got[1])
        if c.call == "close" and "still_open_in" not in dict(c.args):
            learnt.pop(key, None)
    return tuple(out)
