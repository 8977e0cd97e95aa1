"""The tracer pcapng Custom Block: socket calls, kernel states, metadata, warnings.

A pcapng file stores packets; what tracer knows besides the packets (recorded
socket calls, kernel socket states, free metadata and warnings) travels in one
Custom Block (pcapng spec, "Custom Block", type ``0x00000BAD`` = copyable, so that
editcap/mergecap keep it).  This module is the pure encode/decode of that block's
Custom Data; ``tracer.pcap.writer`` frames it and ``tracer.pcap.pcapng`` calls
``decode`` for Custom Blocks whose PEN is ``PEN``.

The Custom Data is UTF-8 JSON, so ``tshark -V`` / a hex dump shows it readably and
it has no byte order (the spec warns that rewriters on the other endianness swap
the block header but not the Custom Data).  It is an object::

    {"format": "tracer", "version": 1, "calls": [...], "kernel_states": [...],
     "meta": {...}, "warnings": [...], "kernel": {...}}

``kernel`` (live runs with the kernel witness) is ``tracer.core.witness.KernelAccount``
as rows of lists: ``stacks`` (interned kernel stacks), ``origins`` ``[packet_no, kind,
what, action, tid, process, stack index, t_ns]``, ``drops`` ``[packet_no, reason, where,
t_ns]``, ``resets`` ``[packet_no, reason, state]``, ``figures`` ``[packet_no, snd_cwnd,
ssthresh, srtt_us, snd_wnd, rcv_wnd, snd_nxt, snd_una]``, ``states`` ``[t_ns, sock,
local, remote, old, new]``, and the counts ``frames_queued``, ``unmatched``, ``overrun``.

``decode`` ignores keys it does not know (in the object and in each record), so
a newer tracer may add fields without breaking an older one; a record missing a
required field, or of the wrong type, is a ``ValueError``.

About ``PEN``: the spec wants an IANA-assigned Private Enterprise Number of the
organisation defining the block.  tracer has none (registration is free, but an
application is a human act), so ``PEN`` is a private, *unregistered* choice: a
value far above the ~65,000 PENs IANA has assigned so far (they are handed out
sequentially), so it will not meet a real vendor's block for decades.  As a
second guard, ``decode`` requires ``"format": "tracer"``, so another vendor's
block that happened to use the same number is rejected, not misread.  Replace
``PEN`` by a registered number if the project obtains one (readers should then
accept both).  The example PEN 32473 of RFC 5612 is for documentation only and
so is not used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracer.core.model import KernelSocketState, SocketCall, SourceLocation, TraceWarning
from tracer.core.witness import (
    KernelAccount,
    KernelStateChange,
    PacketDrop,
    PacketOrigin,
    PacketReset,
    TcpFigures,
)

# "TRCR" in ASCII; private and unregistered (see the module docstring).
PEN: int = 0x54524352

# The Custom Block type that pcapng rewriters may copy into new files.
BLOCK_TYPE_COPYABLE: int = 0x00000BAD

FORMAT_NAME = "tracer"
VERSION: int = 1


@dataclass(frozen=True)
class Payload:
    """Everything in a trace that is not a packet: the Custom Block's content."""

    calls: tuple[SocketCall, ...] = ()
    kernel_states: tuple[KernelSocketState, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    warnings: tuple[TraceWarning, ...] = ()
    version: int = VERSION
    kernel: KernelAccount | None = None  # the kernel witness's account (live runs)


# --- encode ------------------------------------------------------------------------


def _call_json(c: SocketCall) -> dict[str, Any]:
    src = None
    if c.source is not None:
        src = {"file": c.source.file, "line": c.source.line, "code": c.source.code}
    return {
        "id": c.id,
        "call": c.call,
        "side": c.side,
        "pid": c.pid,
        "tid": c.tid,
        "fd": c.fd,
        "args": [[k, v] for k, v in c.args],
        "result": c.result,
        "errno": c.errno,
        "t_enter_ns": c.t_enter_ns,
        "t_exit_ns": c.t_exit_ns,
        "local": c.local,
        "remote": c.remote,
        "proto": c.proto,
        "process": c.process,
        "source": src,
    }


def _state_json(k: KernelSocketState) -> dict[str, Any]:
    return {
        "t_ns": k.t_ns,
        "host": k.host,
        "proto": k.proto,
        "state": k.state,
        "local": k.local,
        "remote": k.remote,
        "recv_q": k.recv_q,
        "send_q": k.send_q,
        "label": k.label,
    }


def _warning_json(w: TraceWarning) -> dict[str, Any]:
    return {
        "code": w.code,
        "message": w.message,
        "message_zh": w.message_zh,
        "packet_no": w.packet_no,
        "offset": w.offset,
        "t_ns": w.t_ns,
    }


def _kernel_json(k: KernelAccount) -> dict[str, Any]:
    """The account as rows of lists; stacks are interned (most frames share a few)."""
    stacks: dict[tuple[str, ...], int] = {}
    origins = []
    for o in k.origins:
        sid = stacks.setdefault(o.stack, len(stacks))
        origins.append([o.packet_no, o.kind, o.what, o.action, o.tid, o.process, sid, o.t_ns])
    return {
        "stacks": [list(s) for s in stacks],
        "origins": origins,
        "drops": [[d.packet_no, d.reason, d.where, d.t_ns] for d in k.drops],
        "resets": [[r.packet_no, r.reason, r.state] for r in k.resets],
        "figures": [
            [f.packet_no, f.snd_cwnd, f.ssthresh, f.srtt_us, f.snd_wnd, f.rcv_wnd, f.snd_nxt, f.snd_una]
            for f in k.figures
        ],
        "states": [[c.t_ns, c.sock, c.local, c.remote, c.old, c.new] for c in k.states],
        "frames_queued": k.frames_queued,
        "unmatched": k.unmatched,
        "overrun": k.overrun,
    }


def encode(payload: Payload) -> bytes:
    """The Custom Data bytes (UTF-8 JSON, unpadded) for ``payload``."""
    obj = {
        "format": FORMAT_NAME,
        "version": payload.version,
        "calls": [_call_json(c) for c in payload.calls],
        "kernel_states": [_state_json(k) for k in payload.kernel_states],
        "meta": {str(k): str(v) for k, v in payload.meta.items()},
        "warnings": [_warning_json(w) for w in payload.warnings],
    }
    if payload.kernel is not None:
        obj["kernel"] = _kernel_json(payload.kernel)
    # ensure_ascii=False keeps Chinese readable in a hex dump.  A lone surrogate
    # (e.g. a file name decoded with surrogateescape) has no UTF-8 form: then all
    # non-ASCII is written as \u escapes, which json.loads restores exactly.
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


# --- decode --------------------------------------------------------------------------

def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _req(rec: Mapping[str, Any], key: str, check: Callable[[object], bool], what: str, where: str) -> Any:
    if key not in rec:
        raise ValueError(f"tracer block: {where} has no {key!r}")
    v = rec[key]
    if not check(v):
        raise ValueError(f"tracer block: {where} field {key!r} must be {what}, not {v!r}")
    return v


def _opt(
    rec: Mapping[str, Any], key: str, check: Callable[[object], bool], what: str, where: str, default: Any
) -> Any:
    if key not in rec:
        return default
    return _req(rec, key, check, what, where)


def _str(v: object) -> bool:
    return isinstance(v, str)


def _str_or_none(v: object) -> bool:
    return v is None or isinstance(v, str)


def _int_or_none(v: object) -> bool:
    return v is None or _is_int(v)


def _records(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = obj.get(key, [])
    if not isinstance(v, list):
        raise ValueError(f"tracer block: {key!r} must be a list")
    for i, rec in enumerate(v):
        if not isinstance(rec, dict):
            raise ValueError(f"tracer block: {key}[{i}] must be an object")
    return v


def _source(v: object, where: str) -> SourceLocation | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError(f"tracer block: {where} field 'source' must be an object or null")
    w = where + ".source"
    return SourceLocation(
        file=_req(v, "file", _str, "a string", w),
        line=_req(v, "line", _is_int, "an integer", w),
        code=_opt(v, "code", _str, "a string", w, ""),
    )


def _args(v: object, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, list):
        raise ValueError(f"tracer block: {where} field 'args' must be a list")
    out = []
    for pair in v:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"tracer block: {where} 'args' entries must be [name, value] strings")
        out.append((pair[0], pair[1]))
    return tuple(out)


def _call(rec: Mapping[str, Any], where: str) -> SocketCall:
    return SocketCall(
        id=_req(rec, "id", _is_int, "an integer", where),
        call=_req(rec, "call", _str, "a string", where),
        side=_req(rec, "side", _str, "a string", where),
        pid=_req(rec, "pid", _is_int, "an integer", where),
        tid=_req(rec, "tid", _is_int, "an integer", where),
        fd=_opt(rec, "fd", _int_or_none, "an integer or null", where, None),
        args=_args(rec.get("args", []), where),
        result=_opt(rec, "result", _str_or_none, "a string or null", where, None),
        errno=_opt(rec, "errno", _str_or_none, "a string or null", where, None),
        t_enter_ns=_req(rec, "t_enter_ns", _is_int, "an integer", where),
        t_exit_ns=_opt(rec, "t_exit_ns", _int_or_none, "an integer or null", where, None),
        local=_opt(rec, "local", _str_or_none, "a string or null", where, None),
        remote=_opt(rec, "remote", _str_or_none, "a string or null", where, None),
        proto=_opt(rec, "proto", _str_or_none, "a string or null", where, None),
        process=_opt(rec, "process", _str, "a string", where, ""),
        source=_source(rec.get("source"), where),
    )


def _state(rec: Mapping[str, Any], where: str) -> KernelSocketState:
    return KernelSocketState(
        t_ns=_req(rec, "t_ns", _is_int, "an integer", where),
        host=_req(rec, "host", _str, "a string", where),
        proto=_req(rec, "proto", _str, "a string", where),
        state=_req(rec, "state", _str, "a string", where),
        local=_req(rec, "local", _str, "a string", where),
        remote=_req(rec, "remote", _str, "a string", where),
        recv_q=_opt(rec, "recv_q", _is_int, "an integer", where, 0),
        send_q=_opt(rec, "send_q", _is_int, "an integer", where, 0),
        label=_opt(rec, "label", _str, "a string", where, ""),
    )


def _warning(rec: Mapping[str, Any], where: str) -> TraceWarning:
    return TraceWarning(
        code=_req(rec, "code", _str, "a string", where),
        message=_req(rec, "message", _str, "a string", where),
        message_zh=_opt(rec, "message_zh", _str, "a string", where, ""),
        packet_no=_opt(rec, "packet_no", _int_or_none, "an integer or null", where, None),
        offset=_opt(rec, "offset", _int_or_none, "an integer or null", where, None),
        t_ns=_opt(rec, "t_ns", _int_or_none, "an integer or null", where, None),
    )


_I, _S = "i", "s"


def _rows(obj: Mapping[str, Any], key: str, shape: str) -> list[list[Any]]:
    """``obj[key]`` as a list of rows, each a list whose items have the types ``shape``
    spells (``i`` integer, ``s`` string)."""
    v = obj.get(key, [])
    if not isinstance(v, list):
        raise ValueError(f"tracer block: kernel.{key} must be a list")
    for n, row in enumerate(v):
        ok = isinstance(row, list) and len(row) == len(shape) and all(
            _is_int(x) if t == _I else isinstance(x, str) for x, t in zip(row, shape, strict=True))
        if not ok:
            raise ValueError(f"tracer block: kernel.{key}[{n}] must be {len(shape)} fields ({shape})")
    return v


def _kernel(v: object) -> KernelAccount | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError("tracer block: 'kernel' must be an object")
    stacks_v = v.get("stacks", [])
    if not isinstance(stacks_v, list) or not all(
            isinstance(st, list) and all(isinstance(f, str) for f in st) for st in stacks_v):
        raise ValueError("tracer block: kernel.stacks must be lists of strings")
    stacks = [tuple(st) for st in stacks_v]
    origins = []
    for n, r in enumerate(_rows(v, "origins", "isssisii")):
        if not 0 <= r[6] < len(stacks):
            raise ValueError(f"tracer block: kernel.origins[{n}] names stack {r[6]}, which is not there")
        origins.append(PacketOrigin(r[0], r[1], r[2], r[3], r[4], r[5], stacks[r[6]], r[7]))
    counts = []
    for key in ("frames_queued", "unmatched", "overrun"):
        c = v.get(key, 0)
        if not _is_int(c):
            raise ValueError(f"tracer block: kernel.{key} must be an integer")
        counts.append(c)
    return KernelAccount(
        origins=tuple(origins),
        drops=tuple(PacketDrop(*r) for r in _rows(v, "drops", "issi")),
        resets=tuple(PacketReset(*r) for r in _rows(v, "resets", "iss")),
        figures=tuple(TcpFigures(*r) for r in _rows(v, "figures", "iiiiiiii")),
        states=tuple(KernelStateChange(*r) for r in _rows(v, "states", "isssss")),
        frames_queued=counts[0], unmatched=counts[1], overrun=counts[2],
    )


def decode(body: bytes | bytearray | memoryview) -> Payload:
    """Parse a tracer Custom Block's Custom Data (the bytes after the PEN).

    Trailing zero padding (the block is padded to 32 bits) is ignored.  Raises
    ``ValueError`` with a one-line reason when the data is not a tracer block.
    """
    raw = bytes(body).rstrip(b"\x00")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"tracer block: not UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"tracer block: not JSON ({e.msg} at byte {e.pos})") from None
    except RecursionError:
        raise ValueError("tracer block: JSON nested too deeply") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT_NAME:
        raise ValueError("tracer block: not a tracer block (no \"format\": \"tracer\")")
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"tracer block: bad version {version!r}")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError("tracer block: 'meta' must be an object of strings")
    return Payload(
        calls=tuple(_call(r, f"calls[{i}]") for i, r in enumerate(_records(obj, "calls"))),
        kernel_states=tuple(
            _state(r, f"kernel_states[{i}]") for i, r in enumerate(_records(obj, "kernel_states"))
        ),
        meta=dict(meta),
        warnings=tuple(_warning(r, f"warnings[{i}]") for i, r in enumerate(_records(obj, "warnings"))),
        version=version,
        kernel=_kernel(obj.get("kernel")),
    )
