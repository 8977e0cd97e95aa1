"""Record every socket call a scenario script makes, as JSON lines.

Run a scenario (a plain Python script that does ``import socket``) under the
recorder, inside a lab host's namespace::

    ip netns exec NS python -m tracer.lab.recorder --out CALLS.jsonl --side client \\
        [--user nobody] SCRIPT.py [ARGS...]

Before the script runs, ``socket.socket`` is replaced by ``TracedSocket``, a
subclass that records each call (socket, bind, listen, accept, connect,
connect_ex, send, sendall, sendto, recv, recv_into, recvfrom, recvfrom_into,
shutdown, close, setsockopt, getsockname, getpeername, settimeout, setblocking).
``socket.create_connection``, ``socket.create_server`` and ``socket.socketpair``
build their sockets through the module's ``socket`` name, so they are traced too;
the calls they make carry ``via=create_connection`` etc.

Timestamps are ``time.time_ns()`` (CLOCK_REALTIME, the clock of kernel packet
timestamps, read through the vDSO: no syscall) taken just before and just after
the real call.  Each call is written twice with one ``write(2)`` on an ``O_APPEND`` descriptor each: an
``enter`` line before the call and an ``exit`` line after it, so a crash or a
SIGTERM loses nothing already returned and a call that never returns is still
known (``load_calls`` marks it unfinished: ``t_exit_ns`` is ``None``).  The entry
time of a finished call is the one taken after the enter line was written
(``t0`` in the exit line), so the window brackets only the real call.  Writes to
a regular file do not touch the network; the only extra network syscalls the
recorder makes are one ``getsockname``/``getpeername`` after a call that gives
the socket a new address (bind, connect, the first sendto, accept), and each
one is listed in the exit line's ``aux`` field.

Calls a recorded call makes itself (``repr()`` inside the finaliser,
``setblocking`` inside ``accept``) are part of it and not recorded again.  A
socket the garbage collector closes is recorded as ``close`` with
``by=garbage collector`` (that close sends the FIN too).  Not traced:
``sendmsg``/``recvmsg``, ``sendfile``, and the ``socketpair()`` syscall itself
(its two sockets are).

``--user NAME``: the output file and the script are opened as root, then the
process drops to NAME's uid/gid (supplementary groups cleared) before the
script runs, so the scenario itself runs unprivileged inside the namespace
(namespaces are entered by ``ip netns exec`` before the drop and stay in force).
Ports below 1024 then need ``net.ipv4.ip_unprivileged_port_start`` lowered.
If the Python installation is not readable by NAME (e.g. a pyenv under
``/root``), the scenario can only import modules loaded before the drop: the
recorder preloads the lazily imported ones sockets need (``_PRELOAD``).
"""

from __future__ import annotations

import _socket
import contextlib
import errno as errno_mod
import importlib
import itertools
import json
import linecache
import os
import pwd
import socket as socket_mod
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from tracer.core.model import SocketCall, SourceLocation, endpoint_str
from tracer.errors import EXIT_INPUT, EXIT_PRIVILEGES, TracerError, UsageError
from tracer.i18n import t

_T = TypeVar("_T")
_BaseSocket = socket_mod.socket
_BASE_DEL: Callable[[object], None] = _socket.socket.__del__  # type: ignore[attr-defined]
_TRACER_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_SOCKET_PY = socket_mod.__file__

# Names of setsockopt levels and options, for readable args.
_LEVELS = {socket_mod.SOL_SOCKET: "SOL_SOCKET", socket_mod.IPPROTO_TCP: "IPPROTO_TCP",
           socket_mod.IPPROTO_IP: "IPPROTO_IP", socket_mod.IPPROTO_IPV6: "IPPROTO_IPV6"}
_OPTS: dict[tuple[int, int], str] = {}
for _name in dir(socket_mod):
    for _prefix, _level in (("SO_", socket_mod.SOL_SOCKET), ("TCP_", socket_mod.IPPROTO_TCP),
                            ("IP_", socket_mod.IPPROTO_IP), ("IPV6_", socket_mod.IPPROTO_IPV6)):
        if _name.startswith(_prefix) and "J1939" not in _name and isinstance(getattr(socket_mod, _name), int):
            _OPTS.setdefault((_level, getattr(socket_mod, _name)), _name)
_SHUT = {socket_mod.SHUT_RD: "SHUT_RD", socket_mod.SHUT_WR: "SHUT_WR", socket_mod.SHUT_RDWR: "SHUT_RDWR"}


class _Sink:
    """The output: one ``os.write`` per line on an O_APPEND fd (atomic, unbuffered)."""

    def __init__(self, fd: int, side: str) -> None:
        self.fd = fd
        self.side = side
        self.seq = itertools.count()
        self.pid = os.getpid()
        self.local = threading.local()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.pid = os.getpid()
        self.local = threading.local()

    def tid(self) -> int:
        tid: int | None = getattr(self.local, "tid", None)
        if tid is None:
            tid = self.local.tid = threading.get_native_id()
        return tid

    def write(self, record: dict[str, Any]) -> None:
        os.write(self.fd, (_ENCODE(record) + "\n").encode())


_sink: _Sink | None = None
# One encoder: json.dumps() with options builds a new encoder per call (slow).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def _caller() -> tuple[str, int, str]:
    """(file, line, via) of the innermost frame outside tracer and socket.py.

    ``via`` is the socket.py function the call went through (e.g.
    ``create_connection``), or ``""``.
    """
    f: FrameType | None = sys._getframe(3)
    via = ""
    while f is not None:
        name = f.f_code.co_filename
        if name == _SOCKET_PY:
            via = f.f_code.co_name
        elif not name.startswith((_TRACER_DIR, "<frozen ")):
            return name, f.f_lineno, via
        f = f.f_back
    return "", 0, via


def _addr(a: object) -> str | None:
    """A socket address as ``ip:port`` / ``[v6]:port`` (or its repr for other families)."""
    if isinstance(a, tuple) and len(a) >= 2 and isinstance(a[0], str) and isinstance(a[1], int):
        return endpoint_str(a[0], a[1])
    if a is None or a == "" or a == b"":
        return None
    return str(a)


def _errno_name(e: BaseException) -> str | None:
    n = getattr(e, "errno", None)
    if isinstance(n, int) and not isinstance(e, (socket_mod.gaierror, socket_mod.herror)):
        return errno_mod.errorcode.get(n, str(n))
    return None


class TracedSocket(socket_mod.socket):
    """``socket.socket`` that records every call through the active sink."""

    __slots__ = ("_trc_accepted", "_trc_local", "_trc_remote")

    def __init__(self, family: Any = -1, type: Any = -1, proto: Any = -1,
                 fileno: Any = None) -> None:
        self._trc_local: str | None = None
        self._trc_remote: str | None = None
        self._trc_accepted: tuple[str | None, str | None] | None = None
        if fileno is not None:  # wraps an existing fd (accept, socketpair, fromfd): no syscall
            super().__init__(family, type, proto, fileno)
            return
        self._trace("socket", lambda: super(TracedSocket, self).__init__(family, type, proto),
                     (("family", _enum_name(socket_mod.AF_INET if family == -1 else family, "AF_")),
                      ("type", _enum_name(socket_mod.SOCK_STREAM if type == -1 else type, "SOCK_")),
                      ("proto", str(0 if proto == -1 else proto))), result=lambda _r: str(self.fileno()))

    # --- recording -----------------------------------------------------------

    def _proto(self) -> str:
        t = self.type & 0xF  # strip SOCK_NONBLOCK/SOCK_CLOEXEC
        if t == socket_mod.SOCK_STREAM:
            return "tcp"
        if t == socket_mod.SOCK_DGRAM:
            return "udp"
        return str(t)

    def _trace(self, call: str, fn: Callable[[], _T], args: tuple[tuple[str, str], ...] = (),
               result: Callable[[_T], str | None] | None = None,
               after: Callable[[_T, list[str]], None] | None = None) -> _T:
        sink = _sink
        if sink is None or getattr(sink.local, "busy", False):
            # A call made by another recorded call (socket.__repr__ inside the
            # finaliser, setblocking inside accept) is part of it.
            return fn()
        sink.local.busy = True
        try:
            return self._record(sink, call, fn, args, result, after)
        finally:
            sink.local.busy = False

    def _record(self, sink: _Sink, call: str, fn: Callable[[], _T], args: tuple[tuple[str, str], ...],
                result: Callable[[_T], str | None] | None,
                after: Callable[[_T, list[str]], None] | None) -> _T:
        file, line, via = _caller()
        seq = next(sink.seq)
        fd_before = _BaseSocket.fileno(self) if call != "socket" else -1
        enter: dict[str, Any] = {"ev": "enter", "seq": seq, "pid": sink.pid, "tid": sink.tid(),
                                 "side": sink.side, "call": call, "fd": fd_before, "t": time.time_ns(),
                                 "args": [list(a) for a in args], "file": file, "line": line}
        if via and via != call:
            enter["via"] = via
        sink.write(enter)
        t0 = time.time_ns()  # again after the write: the window hugs the real call
        try:
            r = fn()
        except BaseException as e:
            t1 = time.time_ns()
            aux: list[str] = []
            exit_: dict[str, Any] = {"ev": "exit", "seq": seq, "pid": sink.pid, "t0": t0, "t": t1,
                                     "errno": _errno_name(e), "exc": type(e).__name__}
            if call == "connect" and exit_["errno"] == "EINPROGRESS":
                self._learn(aux, remote=None, refresh=True)
            self._finish(sink, exit_, aux)
            raise
        t1 = time.time_ns()
        aux = []
        exit_ = {"ev": "exit", "seq": seq, "pid": sink.pid, "t0": t0, "t": t1,
                 "result": result(r) if result is not None else None}
        if after is not None:
            after(r, aux)
        self._finish(sink, exit_, aux)
        return r

    def _finish(self, sink: _Sink, exit_: dict[str, Any], aux: list[str]) -> None:
        exit_["fd"] = _BaseSocket.fileno(self)
        exit_["proto"] = self._proto()
        exit_["local"], exit_["remote"] = self._trc_accepted or (self._trc_local, self._trc_remote)
        self._trc_accepted = None
        if aux:
            exit_["aux"] = aux
        sink.write(exit_)

    def _learn(self, aux: list[str], *, remote: str | None, peer: bool = False,
               refresh: bool = False) -> None:
        """Fill the cached addresses after a call that may have set them.

        ``refresh``: connect() also turns a wildcard local address into a real one.
        """
        local = self._trc_local
        if local is None or local.endswith(":0") or (refresh and local.startswith(("0.0.0.0:", "[::]:"))):
            aux.append("getsockname")
            with contextlib.suppress(OSError):
                self._trc_local = _addr(_BaseSocket.getsockname(self))
        if remote is not None:
            self._trc_remote = remote
        elif peer:
            aux.append("getpeername")
            with contextlib.suppress(OSError):
                self._trc_remote = _addr(_BaseSocket.getpeername(self))

    # --- the traced calls ----------------------------------------------------

    def bind(self, address: Any, /) -> None:
        def after(_r: None, aux: list[str]) -> None:
            self._trc_local = None
            self._learn(aux, remote=None)
        self._trace("bind", lambda: _BaseSocket.bind(self, address), (("address", _addr(address) or ""),),
                    after=after)

    def listen(self, *backlog: int) -> None:
        self._trace("listen", lambda: _BaseSocket.listen(self, *backlog),
                    (("backlog", str(backlog[0])),) if backlog else (),
                    after=lambda _r, aux: self._learn(aux, remote=None))

    def accept(self) -> tuple[socket_mod.socket, Any]:
        def after(r: tuple[socket_mod.socket, Any], aux: list[str]) -> None:
            conn = r[0]
            if isinstance(conn, TracedSocket):
                if self._trc_local and not self._trc_local.startswith(("0.0.0.0:", "[::]:")):
                    conn._trc_local = self._trc_local  # same address: no syscall needed
                conn._learn(aux, remote=_addr(r[1]))
                # The record shows the new connection's addresses, not the listener's.
                self._trc_accepted = conn._trc_local, conn._trc_remote
        return self._trace("accept", lambda: _BaseSocket.accept(self),
                           result=lambda r: str(r[0].fileno()), after=after)

    def _connect_after(self, address: Any) -> Callable[[object, list[str]], None]:
        def after(r: object, aux: list[str]) -> None:
            if r in (None, 0):
                self._learn(aux, remote=_numeric(address), peer=_numeric(address) is None, refresh=True)
            elif r == errno_mod.EINPROGRESS:
                self._learn(aux, remote=None, refresh=True)
        return after

    def _connect_args(self, address: Any) -> tuple[tuple[str, str], ...]:
        # With a timeout CPython connects non-blocking and polls: other syscalls.
        timeout = self.gettimeout()
        args = (("address", _addr(address) or ""),)
        return args if timeout is None else (*args, ("timeout", repr(timeout)))

    def connect(self, address: Any, /) -> None:
        self._trace("connect", lambda: _BaseSocket.connect(self, address), self._connect_args(address),
                    after=self._connect_after(address))

    def connect_ex(self, address: Any, /) -> int:
        def call() -> int:
            return int(_BaseSocket.connect_ex(self, address))
        return self._trace("connect_ex", call, self._connect_args(address),
                           result=lambda r: errno_mod.errorcode.get(r, str(r)) if r else "0",
                           after=self._connect_after(address))

    def send(self, data: Any, flags: int = 0, /) -> int:
        return self._trace("send", lambda: _BaseSocket.send(self, data, flags),
                           (("len", str(len(data))),), result=str)

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        return self._trace("sendall", lambda: _BaseSocket.sendall(self, data, flags),
                           (("len", str(len(data))),))

    def sendto(self, data: Any, *rest: Any) -> int:
        address = rest[-1]
        return self._trace("sendto", lambda: _BaseSocket.sendto(self, data, *rest),
                           (("len", str(len(data))), ("address", _addr(address) or "")), result=str,
                           after=lambda _r, aux: self._learn(aux, remote=self._trc_remote))

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        return self._trace("recv", lambda: _BaseSocket.recv(self, bufsize, flags),
                           (("bufsize", str(bufsize)),), result=lambda r: str(len(r)))

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        return self._trace("recv_into", lambda: _BaseSocket.recv_into(self, buffer, nbytes, flags),
                           (("nbytes", str(nbytes)),), result=str)

    def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Any]:
        return self._trace("recvfrom", lambda: _BaseSocket.recvfrom(self, bufsize, flags),
                           (("bufsize", str(bufsize)),),
                           result=lambda r: f"{len(r[0])} from {_addr(r[1])}")

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> tuple[int, Any]:
        return self._trace("recvfrom_into",
                           lambda: _BaseSocket.recvfrom_into(self, buffer, nbytes, flags),
                           (("nbytes", str(nbytes)),), result=lambda r: f"{r[0]} from {_addr(r[1])}")

    def shutdown(self, how: int, /) -> None:
        self._trace("shutdown", lambda: _BaseSocket.shutdown(self, how), (("how", _SHUT.get(how, str(how))),))

    def setsockopt(self, level: int, optname: int, value: Any, *rest: Any) -> None:
        self._trace("setsockopt", lambda: _BaseSocket.setsockopt(self, level, optname, value, *rest),
                    (("level", _LEVELS.get(level, str(level))),
                     ("option", _OPTS.get((level, optname), str(optname))), ("value", repr(value))))

    def getsockname(self) -> Any:
        return self._trace("getsockname", lambda: _BaseSocket.getsockname(self), result=_addr)

    def getpeername(self) -> Any:
        return self._trace("getpeername", lambda: _BaseSocket.getpeername(self), result=_addr)

    def settimeout(self, value: float | None, /) -> None:
        self._trace("settimeout", lambda: _BaseSocket.settimeout(self, value), (("timeout", repr(value)),))

    def setblocking(self, flag: bool, /) -> None:
        self._trace("setblocking", lambda: _BaseSocket.setblocking(self, flag), (("blocking", repr(flag)),))

    def _real_close(self, _ss: Any = _socket.socket) -> None:
        # socket.close() defers the real close while makefile() objects are open;
        # this is where the fd is really closed.
        if _BaseSocket.fileno(self) < 0:
            return
        self._trace("close", lambda: _ss.close(self))

    def __del__(self) -> None:
        # A socket garbage-collected while open is closed by the interpreter:
        # record that close (and keep the ResourceWarning of the base class).
        if _BaseSocket.fileno(self) >= 0:
            self._trace("close", lambda: _BASE_DEL(self), (("by", "garbage collector"),))


def _enum_name(v: Any, prefix: str) -> str:
    name = getattr(v, "name", None)
    if isinstance(name, str) and name.startswith(prefix):
        return name
    return str(int(v)) if isinstance(v, int) else str(v)


def _numeric(address: Any) -> str | None:
    """The endpoint of a numeric (ip, port) address, else None (a host name: ask the kernel)."""
    if not (isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str)):
        return None
    try:
        family = socket_mod.AF_INET6 if ":" in address[0] else socket_mod.AF_INET
        socket_mod.inet_pton(family, address[0])
    except OSError:
        return None
    return _addr(address)


def install(fd: int, side: str) -> None:
    """Record this process's socket calls to ``fd`` (labelled ``side``) from now on."""
    global _sink
    _sink = _Sink(fd, side)
    socket_mod.socket = TracedSocket  # type: ignore[misc]


def uninstall() -> None:
    """Stop recording and restore ``socket.socket``."""
    global _sink
    _sink = None
    socket_mod.socket = _BaseSocket  # type: ignore[misc]


# --- loading -----------------------------------------------------------------


def load_calls(path: str | os.PathLike[str], side: str | None = None, id_offset: int = 0
               ) -> tuple[SocketCall, ...]:
    """The calls recorded in ``path`` as ``SocketCall`` values, ordered by entry time.

    ``side`` filters by the recorded side label (``None``: all).  Ids are
    ``id_offset + i``, so loading several sides with offsets gives unique ids.
    A call without an exit line never returned: ``t_exit_ns`` is ``None``.
    Lines that are not valid records (e.g. cut short by a crash) are skipped.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise TracerError("recorder.unreadable", path=path, why=e.strerror, exit_code=EXIT_INPUT) from None
    enters: dict[tuple[int, int], dict[str, Any]] = {}
    exits: dict[tuple[int, int], dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            key = (int(rec["pid"]), int(rec["seq"]))
            (enters if rec["ev"] == "enter" else exits)[key] = rec
        except (ValueError, KeyError, TypeError):
            continue
    out: list[SocketCall] = []
    ordered = sorted(enters.items(), key=lambda kv: (_int(kv[1].get("t")), kv[0]))
    for key, en in ordered:
        if side is not None and en.get("side") != side:
            continue
        try:
            out.append(_call(id_offset + len(out), en, exits.get(key)))
        except (ValueError, KeyError, TypeError):
            continue
    return tuple(out)


def _int(v: object) -> int:
    return int(v) if isinstance(v, (int, str)) else 0


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)


def _call(cid: int, en: dict[str, Any], ex: dict[str, Any] | None) -> SocketCall:
    file, line = str(en.get("file", "")), _int(en.get("line", 0))
    args = tuple((str(k), str(v)) for k, v in en.get("args", []))
    if en.get("via"):
        args += (("via", str(en["via"])),)
    ex = ex or {}
    fd = en.get("fd")
    if not isinstance(fd, int) or fd < 0:  # socket(): the fd exists only at exit
        fd = ex.get("fd")
    return SocketCall(
        id=cid, call=str(en["call"]), side=str(en.get("side", "")), pid=int(en["pid"]),
        tid=_int(en.get("tid", 0)), fd=int(fd) if isinstance(fd, int) and fd >= 0 else None,
        # A failure without an errno (Python's socket timeout) is named by its exception.
        args=args, result=_opt_str(ex.get("result")), errno=_opt_str(ex.get("errno") or ex.get("exc")),
        t_enter_ns=int(ex.get("t0", en["t"])), t_exit_ns=int(ex["t"]) if "t" in ex else None,
        local=_opt_str(ex.get("local")), remote=_opt_str(ex.get("remote")),
        proto=_opt_str(ex.get("proto")), process=Path(file).name if file else "",
        source=SourceLocation(file, line, linecache.getline(file, line).strip()) if file else None,
    )


# --- the runner --------------------------------------------------------------


# Modules a scenario commonly needs that are imported lazily (getaddrinfo() on a
# str host imports the idna codec): loaded before the drop, because the
# interpreter may live where the unprivileged user cannot read (/root/.pyenv).
_PRELOAD = ("encodings.idna", "selectors", "select", "struct", "errno", "random")


def _drop_privileges(user: str) -> None:
    for name in _PRELOAD:
        importlib.import_module(name)
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UsageError("recorder.no_user", user=user) from None
    try:
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    except PermissionError:
        raise TracerError("recorder.not_root", user=user, exit_code=EXIT_PRIVILEGES) from None
    os.environ.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)


def _parse(argv: list[str]) -> tuple[str, str, str | None, list[str]]:
    out, side, user = "", "", None
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        opt = argv[i]
        if opt in ("--out", "--side", "--user") and i + 1 < len(argv):
            value = argv[i + 1]
            if opt == "--out":
                out = value
            elif opt == "--side":
                side = value
            else:
                user = value
            i += 2
        else:
            break
    if not out or i >= len(argv):
        raise UsageError("recorder.usage")
    return out, side, user, argv[i:]


def main(argv: list[str] | None = None) -> int:
    """Run a scenario script under the recorder; returns the exit status."""
    lang = "zh" if os.environ.get("TRACER_LANG") == "zh" else "en"
    try:
        out, side, user, script = _parse(sys.argv[1:] if argv is None else argv)
        path = os.path.abspath(script[0])
        try:
            source = Path(path).read_bytes()
            code = compile(source, path, "exec")
        except OSError as e:
            raise TracerError("recorder.script_unreadable", path=script[0], why=e.strerror,
                              exit_code=EXIT_INPUT) from None
        except (SyntaxError, ValueError) as e:
            raise TracerError("recorder.script_not_python", path=script[0], error=e,
                              exit_code=EXIT_INPUT) from None
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise TracerError("recorder.unwritable", path=out, why=e.strerror, exit_code=EXIT_INPUT) from None
        if user is not None:
            _drop_privileges(user)
    except TracerError as err:
        print(t("recorder.error", lang, text=err.text(lang)), file=sys.stderr)
        return err.exit_code
    sys.argv = [path, *script[1:]]
    sys.path[0] = os.path.dirname(path)
    install(fd, side)
    globs: dict[str, Any] = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    exec(code, globs)  # the scenario's own exceptions propagate like under `python SCRIPT`
    return 0


if __name__ == "__main__":
    sys.exit(main())
