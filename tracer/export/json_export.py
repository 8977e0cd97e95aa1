"""The JSON contract (``docs/json-contract.md``), written as a stream.

A million packets must be written in about two seconds, so nothing here builds
one big dict or string: the columns are converted with ``.tolist()`` once, every
value that repeats (endpoints, flag letters, analysis names, state maps, cause
and explanation fragments) is rendered to JSON text once per distinct value, and
each packet line is one f-string over those pre-rendered pieces, written in chunks.

The output is pure ASCII: non-ASCII text (the Chinese explanations) is written as
``\\uXXXX`` escapes.  Pure-ASCII Python strings are copied and encoded as plain
bytes, which makes the whole export ~20% faster than writing raw UTF-8.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from tracer import __version__
from tracer.core.analysis import Analysis
from tracer.core.model import (
    PROTO_TCP,
    CauseBy,
    Side,
    StreamInfo,
    TcpState,
    analysis_names,
    endpoint_str,
    flags_str,
)
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.table import PacketTable
from tracer.core.trace import Trace
from tracer.i18n import LANGS
from tracer.i18n.explain import template
from tracer.ladder.kernel import KernelView, source_name

CHUNK_ROWS = 8192
# Keys a template may use (``tracer.i18n.explain.template``).
TEMPLATE_KEYS = frozenset({"src", "dst", "len", "seq", "ack"})

ObjArray = npt.NDArray[np.object_]


def _q(value: str | None) -> str:
    """A JSON string literal (ASCII, non-ASCII as ``\\uXXXX``), or ``null``."""
    if value is None:
        return "null"
    # Fast path for the common plain ASCII text (endpoints, names): nothing to escape.
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


def _qe(endpoint: str | None) -> str:
    """An endpoint as a JSON string: its characters never need escaping."""
    return "null" if endpoint is None else f'"{endpoint}"'


def _side_name(code: int) -> str | None:
    return {1: "client", 2: "server"}.get(code)


def _by_name(code: int) -> str:
    return CauseBy(code).name.lower() if code in (0, 1, 2) else "unknown"


def _state_name(code: int) -> str | None:
    return TcpState(code).name if 0 <= code < len(TcpState) else None


def _nullable(col: npt.NDArray[Any], mask: npt.NDArray[np.bool_], null: str = "null") -> list[Any]:
    """Ints where ``mask``, the text ``null`` elsewhere (f-strings print both right)."""
    arr: ObjArray = col.astype(np.int64).astype(object)
    arr[~mask] = null
    out: list[Any] = arr.tolist()
    return out


def _is_dynamic(tpl: str) -> bool:
    """True if ``tpl`` has placeholders, all of them known keys without format specs."""
    try:
        parsed = list(string.Formatter().parse(tpl))
    except ValueError:
        return False
    names = [(name, spec, conv) for _, name, spec, conv in parsed if name is not None]
    return bool(names) and all(n in TEMPLATE_KEYS and not spec and not conv for n, spec, conv in names)


def _static_text(tpl: str) -> str:
    """A template without (usable) placeholders as final text: ``{{`` becomes ``{``."""
    try:
        return tpl.format()
    except (KeyError, IndexError, ValueError):
        return tpl


class _CauseFragments:
    """``"cause":{...},"explain":{...}`` per distinct (by, side, call, reason, inferred, call id,
    source, inferred reason).

    A fragment whose explanation templates use ``{src}`` etc. is kept as a
    ``%``-template (JSON-escaped once, ``%s`` per placeholder, in ``fields``
    order) because ``%`` formatting is the cheapest per-row substitution.
    """

    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix  # written after the explanation (the kernel's fields when all null)
        self.text: list[str] = []
        self.fields: list[tuple[str, ...]] = []  # () for final text

    def render(self, by: int, side: int, call: int, reason: int, inferred: bool, call_id: int, source: int,
               wire_reason: int) -> int:
        reason_name = REASONS[reason] if 0 <= reason < len(REASONS) else "unknown"
        call_name = (CALL_NAMES[call] or None) if 0 <= call < len(CALL_NAMES) else None
        wire_name = REASONS[wire_reason] if 0 <= wire_reason < len(REASONS) else None
        text = (
            f'"cause":{{"by":"{_by_name(by)}","side":{_q(_side_name(side))},'
            f'"call":{_q(call_name)},"reason":{_q(reason_name)},'
            f'"inferred":{"true" if inferred else "false"},'
            f'"call_id":{call_id if call_id >= 0 else "null"},'
            f'"source":"{source_name(source)}","inferred_reason":{_q(wire_name)}}},"explain":{{'
        )
        side_enum = Side(side) if side in (0, 1, 2) else Side.NONE
        templates = [(lang, template(reason_name, side_enum, lang)) for lang in LANGS]
        fields: list[str] = []
        if any(_is_dynamic(tpl) for _, tpl in templates):
            text = text.replace("%", "%%")
            for k, (lang, tpl) in enumerate(templates):
                text += ("," if k else "") + f'"{lang}":'
                if not _is_dynamic(tpl):
                    text += _q(_static_text(tpl)).replace("%", "%%")
                    continue
                for literal, name, _, _ in string.Formatter().parse(json.dumps(tpl)):
                    text += literal.replace("%", "%%")
                    if name is not None:
                        text += "%s"
                        fields.append(name)
        else:
            text += ",".join(f'"{lang}":{_q(_static_text(tpl))}' for lang, tpl in templates)
        self.text.append(text + "}" + self.suffix)
        self.fields.append(tuple(fields))
        return len(self.text) - 1


class _Coded:
    """A column of JSON fragments stored as (distinct texts, per-row index)."""

    def __init__(self, texts: ObjArray, index: npt.NDArray[np.intp]) -> None:
        self.texts = texts
        self.index = index

    def rows(self, lo: int, hi: int) -> list[str]:
        out: list[str] = self.texts[self.index[lo:hi]].tolist()
        return out


def _compact(*cols: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(first row, per-row id) of each distinct combination of the integer ``cols``.

    Columns are folded into one int64 key, re-numbered densely whenever the next
    fold could overflow, so that any number of columns costs a few ``np.unique``.
    """
    key = np.zeros(cols[0].shape[0], dtype=np.int64)
    card = 1
    for col in cols:
        c = col.astype(np.int64)
        lo = int(c.min()) if c.size else 0
        span = (int(c.max()) - lo + 1) if c.size else 1
        if span == 1:
            continue
        if card * span >= 1 << 62:
            _, inv = np.unique(key, return_inverse=True)
            key = inv.reshape(-1).astype(np.int64)
            card = int(key.max()) + 1 if key.size else 1
        key = key * span + (c - lo)
        card *= span
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def _endpoint_texts(t: PacketTable) -> tuple[ObjArray, list[str], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(JSON texts, plain texts, source ids, destination ids) of every distinct endpoint."""
    n = len(t)
    src = (t.src.astype(np.int64) + 1) * 65537 + (t.sport.astype(np.int64) + 1)
    dst = (t.dst.astype(np.int64) + 1) * 65537 + (t.dport.astype(np.int64) + 1)
    uniq, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    inverse = inverse.reshape(-1)
    plain: list[str] = []
    quoted: list[str] = []
    for k in uniq.tolist():
        ai, pi = divmod(k, 65537)
        ip = t.addresses[ai - 1] if ai > 0 else None
        text = endpoint_str(ip, pi - 1 if pi > 0 else None)
        plain.append(text)
        quoted.append("null" if ip is None else f'"{text}"')
    return np.array(quoted, dtype=object), plain, inverse[:n], inverse[n:]


def _state_texts(t: PacketTable, a: Analysis) -> _Coded:
    """``{"a-endpoint": STATE, "b-endpoint": STATE}`` per row, composed once per distinct value."""
    has = (t.proto == PROTO_TCP) & (a.stream >= 0) & (a.state_a >= 0) & (a.state_b >= 0)
    has &= (a.state_a < len(TcpState)) & (a.state_b < len(TcpState))
    stream = np.where(has, a.stream, -1)
    first, inverse = _compact(stream, np.where(has, a.state_a, -1), np.where(has, a.state_b, -1))
    # Per stream index: '{"a":' and ',"b":' (endpoint text needs no escaping).
    size = max((s.index for s in a.tcp_streams), default=-1) + 2
    open_a = np.full(size, None, dtype=object)
    mid_b = np.full(size, None, dtype=object)
    for s in a.tcp_streams:
        open_a[s.index] = f'{{"{s.a}":'
        mid_b[s.index] = f',"{s.b}":'
    names = np.array([_q(_state_name(c)) for c in range(len(TcpState))], dtype=object)
    fs = stream[first]
    known = (fs >= 0) & (fs < size - 1)
    known[known] = open_a[fs[known]] != None  # noqa: E711 - elementwise test on an object array
    texts = np.full(first.shape[0], "{}", dtype=object)
    k = first[known]
    fsk = fs[known]
    texts[known] = open_a[fsk] + names[a.state_a[k]] + mid_b[fsk] + names[a.state_b[k]] + "}"
    return _Coded(texts, inverse)


def _small_table(col: npt.NDArray[Any], render: Any) -> _Coded:
    """Texts for a column with few distinct values."""
    uniq, inverse = np.unique(col, return_inverse=True)
    return _Coded(np.array([render(int(v)) for v in uniq.tolist()], dtype=object), inverse.reshape(-1))


_DIGITS3 = np.array([f"{i:03d}" for i in range(1000)], dtype=object)


def _time_texts(ts_ns: npt.NDArray[np.int64]) -> Callable[[int, int], list[Any]]:
    """Rows ``lo:hi`` of the ``time`` column as text (seconds, 6 decimals).

    Built from a table of whole seconds and two 3-digit tables with numpy
    object additions, which is ~3x cheaper than ``repr(float)`` per row.
    Microseconds are all a float at today's epoch can hold anyway.
    """
    if ts_ns.size and int(ts_ns.min()) < 0:
        return lambda lo, hi: (ts_ns[lo:hi] / 1e9).tolist()
    us = (ts_ns + 500) // 1000
    seconds, sec_idx = np.unique(us // 1_000_000, return_inverse=True)
    sec_text = np.array([f"{v}." for v in seconds.tolist()], dtype=object)
    frac = us % 1_000_000
    hi3, lo3 = frac // 1000, frac % 1000
    sec_idx = sec_idx.reshape(-1)

    def rows(lo: int, hi: int) -> list[Any]:
        text = sec_text[sec_idx[lo:hi]] + _DIGITS3[hi3[lo:hi]] + _DIGITS3[lo3[lo:hi]]
        out: list[Any] = text.tolist()
        return out

    return rows


def _cause_texts(a: Analysis) -> tuple[_Coded, _CauseFragments, npt.NDArray[np.intp] | None]:
    """Cause + explanation fragments per row (each followed by the kernel's fields, all
    null), and per row the fragment id when it still needs its placeholders filled (else
    ``None`` if no row does)."""
    frags = _CauseFragments(KERNEL_NULL)
    cols = (a.cause_by, a.cause_side, a.cause_call, a.cause_reason, a.cause_inferred, a.cause_call_id,
            a.cause_source, a.inferred_reason)
    first, inverse = _compact(*cols)
    ids = np.array(
        [frags.render(*row) for row in zip(*(c[first].tolist() for c in cols), strict=True)],
        dtype=np.intp,
    )
    texts = np.array([frags.text[k] for k in ids.tolist()], dtype=object)
    if not any(frags.fields):
        return _Coded(texts, inverse), frags, None
    return _Coded(texts, inverse), frags, ids[inverse]


_Values = dict[
    str,
    tuple[Callable[[npt.NDArray[np.intp]], npt.NDArray[Any]], Callable[[npt.NDArray[np.intp]], list[Any]]],
]


def _cause_column(
    cause: _Coded, frags: _CauseFragments, frag_ids: npt.NDArray[np.intp], values: _Values
) -> ObjArray:
    """Every row's final cause + explanation text (an object array of shared strings).

    For each placeholder ``values[name]`` is (integer key column, text column) at
    the given rows; each distinct combination of keys of a fragment is formatted
    once (e.g. "sent {len} bytes to {dst}" repeats for every full-sized segment).
    """
    out: ObjArray = cause.texts[cause.index]
    dynamic = np.array([bool(f) for f in frags.fields], dtype=bool)[frag_ids]
    rows = np.flatnonzero(dynamic)
    ids = frag_ids[rows]
    order = np.argsort(ids, kind="stable")
    rows, ids = rows[order], ids[order]
    bounds = np.flatnonzero(np.diff(ids)) + 1
    for sel in np.split(rows, bounds):
        if sel.size == 0:
            continue
        fid = int(frag_ids[sel[0]])
        names = frags.fields[fid]
        first, inverse = _compact(*(values[name][0](sel) for name in names))
        reps = sel[first]
        columns = [values[name][1](reps) for name in names]
        pct = frags.text[fid]
        texts = np.array([pct % args for args in zip(*columns, strict=True)], dtype=object)
        out[sel] = texts[inverse]
    return out


def packet_lines(trace: Trace, analysis: Analysis) -> Iterator[list[str]]:
    """The packet objects as JSON text, in chunks of up to ``CHUNK_ROWS`` lines."""
    t = trace.packets
    n = len(t)
    if n == 0:
        return
    a = analysis
    is_tcp = t.proto == PROTO_TCP

    # "proto" and "stream" together: one piece fewer per row keeps the f-string below
    # under CPython's 30-part limit for a plain BUILD_STRING (else it becomes a join).
    proto_names = [_q(p) for p in t.proto_names]
    first, inverse = _compact(t.proto, a.stream)
    proto_stream = _Coded(
        np.array(
            [
                f'"proto":{proto_names[p]},"stream":{s if s >= 0 else "null"}'
                for p, s in zip(t.proto[first].tolist(), a.stream[first].tolist(), strict=True)
            ],
            dtype=object,
        ),
        inverse,
    )
    ep_json, ep_plain, src_id, dst_id = _endpoint_texts(t)
    flag_texts = np.array([_q(flags_str(b)) for b in range(256)] + ['""'], dtype=object)
    flags = _Coded(flag_texts, np.where(is_tcp, t.tcp_flags & 0xFF, 256).astype(np.intp))
    names = _small_table(a.flags, lambda b: json.dumps(analysis_names(b)))
    states = _state_texts(t, a)
    cause, frags, frag_ids = _cause_texts(a)
    ep_plain_arr = np.array(ep_plain, dtype=object)

    seq_ok = is_tcp & (a.rel_seq >= 0)
    ack_ok = is_tcp & (a.rel_ack >= 0)
    raw_ok = is_tcp & (t.seq >= 0)
    rawack_ok = is_tcp & (t.ack >= 0)
    # Placeholder values by absolute row numbers; an absent seq/ack prints "?" like explain().
    values: _Values = {
        "src": (lambda r: src_id[r], lambda r: ep_plain_arr[src_id[r]].tolist()),
        "dst": (lambda r: dst_id[r], lambda r: ep_plain_arr[dst_id[r]].tolist()),
        "len": (lambda r: t.payload_len[r], lambda r: t.payload_len[r].tolist()),
        "seq": (
            lambda r: np.where(seq_ok[r], a.rel_seq[r], -1),
            lambda r: _nullable(a.rel_seq[r], seq_ok[r], "?"),
        ),
        "ack": (
            lambda r: np.where(ack_ok[r], a.rel_ack[r], -1),
            lambda r: _nullable(a.rel_ack[r], ack_ok[r], "?"),
        ),
    }

    times = _time_texts(t.ts_ns)
    if frag_ids is None:
        cause_all: ObjArray = cause.texts[cause.index]
    else:
        cause_all = _cause_column(cause, frags, frag_ids, values)

    for i, text in _kernel_texts(trace).items():
        cause_all[i] = cause_all[i][: -len(KERNEL_NULL)] + text

    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        lens = t.payload_len[lo:hi].tolist()
        seq = _nullable(a.rel_seq[lo:hi], seq_ok[lo:hi])
        ack = _nullable(a.rel_ack[lo:hi], ack_ok[lo:hi])
        causes = cause_all[lo:hi].tolist()
        rows = zip(
            range(lo + 1, hi + 1),
            times(lo, hi),
            t.ts_ns[lo:hi].tolist(),
            proto_stream.rows(lo, hi),
            ep_json[src_id[lo:hi]].tolist(),
            ep_json[dst_id[lo:hi]].tolist(),
            flags.rows(lo, hi),
            seq,
            ack,
            _nullable(t.seq[lo:hi], raw_ok[lo:hi]),
            _nullable(t.ack[lo:hi], rawack_ok[lo:hi]),
            lens,
            names.rows(lo, hi),
            states.rows(lo, hi),
            causes,
            strict=True,
        )
        yield [
            f'{{"no":{no},"time":{tm},"time_ns":{tn},{ps},"src":{s},"dst":{d},"flags":{f},'
            f'"seq":{sq},"ack":{ak},"seq_raw":{sr},"ack_raw":{ar},"len":{ln},"analysis":{an},"states":{ss},{c}}}'
            for no, tm, tn, ps, s, d, f, sq, ak, sr, ar, ln, an, ss, c in rows
        ]


# The kernel witness's per-packet fields (docs/json-contract.md), null without an account.
KERNEL_NULL = ',"origin":null,"drop":null,"rst_reason":null,"figures":null'


def _kernel_texts(trace: Trace) -> dict[int, str]:
    """Row -> its kernel fields as JSON text, for the rows the kernel witness said anything of."""
    k = KernelView.of(trace)
    rows = set(k.origins) | set(k.drops) | set(k.resets) | set(k.figures)
    out = {}
    for i in rows:
        o, d, r, f = k.origins.get(i), k.drops.get(i), k.resets.get(i), k.figures.get(i)
        obj = {
            "origin": None if o is None else {"kind": o.kind, "what": o.what or None, "action": o.action,
                                              "tid": o.tid, "process": o.process, "stack": list(o.stack),
                                              "t_ns": o.t_ns},
            "drop": None if d is None else {"reason": d.reason, "where": d.where},
            "rst_reason": None if r is None else {"reason": r.reason, "state": r.state},
            "figures": None if f is None else {
                "snd_cwnd": f.snd_cwnd, "ssthresh": f.ssthresh, "srtt_us": f.srtt_us, "snd_wnd": f.snd_wnd,
                "rcv_wnd": f.rcv_wnd},
        }
        out[i] = "," + json.dumps(obj, separators=(",", ":"))[1:-1]
    return out


def _kernel_json(trace: Trace) -> str:
    """The trace-level ``kernel`` object: the witness's counts and every state change."""
    k = trace.kernel
    if k is None:
        return "null"
    return json.dumps({"frames_queued": k.frames_queued, "unmatched": k.unmatched, "overrun": k.overrun,
                       "states": [asdict(c) for c in k.states]})


def _stream_json(s: StreamInfo) -> str:
    server = None if s.client is None else (s.b if s.client == s.a else s.a)
    return (
        # Endpoint text (digits, dots, colons, brackets) never needs escaping.
        f'{{"proto":"{s.proto}","index":{s.index},"a":"{s.a}","b":"{s.b}",'
        f'"client":{_qe(s.client)},"server":{_qe(server)},'
        f'"first_no":{s.first_no},"last_no":{s.last_no},"packets":{s.packets}}}'
    )


def _dump_list(out: TextIO, items: Iterable[Any], render: Callable[[Any], str] | None = None) -> None:
    """A JSON array, one element per line, written in chunks."""
    out.write("[")
    sep = "\n"
    chunk: list[str] = []
    for item in items:
        chunk.append(render(item) if render else json.dumps(item))
        if len(chunk) >= CHUNK_ROWS:
            out.write(sep + ",\n".join(chunk))
            sep, chunk = ",\n", []
    if chunk:
        out.write(sep + ",\n".join(chunk))
        sep = ",\n"
    out.write("\n]" if sep != "\n" else "]")


def _meta(trace: Trace, n: int) -> dict[str, Any]:
    m = trace.meta
    return {
        "source": m.source,
        "file_format": m.file_format,
        "section_comment": m.section_comment,
        "interfaces": [{"linktype": lt, "name": name} for lt, name in m.interfaces],
        "extra": dict(m.extra),
        "packet_count": n,
    }


def write_json(trace: Trace, analysis: Analysis, out: TextIO) -> None:
    """Write the whole JSON document for ``trace`` to ``out``, chunk by chunk."""
    n = len(trace.packets)
    out.write('{"tracer_version":' + _q(__version__) + ',\n"meta":')
    out.write(json.dumps(_meta(trace, n)))
    out.write(',\n"packets":[')
    sep = "\n"
    for chunk in packet_lines(trace, analysis):
        out.write(sep)
        out.write(",\n".join(chunk))
        sep = ",\n"
    out.write("\n]" if n else "]")
    out.write(',\n"calls":')
    links = analysis.error_links
    _dump_list(out, (_call_obj(c, links) for c in trace.calls))
    out.write(',\n"streams":')
    _dump_list(out, (*analysis.tcp_streams, *analysis.udp_streams), _stream_json)
    out.write(',\n"kernel_states":')
    _dump_list(out, (asdict(k) for k in trace.kernel_states))
    out.write(',\n"kernel":' + _kernel_json(trace))
    out.write(',\n"warnings":')
    _dump_list(out, (asdict(w) for w in trace.warnings))
    out.write("\n}\n")


def _call_obj(c: Any, links: dict[int, int]) -> dict[str, Any]:
    d: dict[str, Any] = asdict(c)
    d["args"] = dict(c.args)
    # The packet whose arrival made this call fail (ECONNREFUSED's RST or ICMP, ...).
    row = links.get(c.id)
    d["error_packet"] = None if row is None else row + 1
    return d


def packet_dicts(trace: Trace, analysis: Analysis) -> Sequence[dict[str, Any]]:
    """The packet objects as Python dicts (for tests and small captures)."""
    return [json.loads(line) for chunk in packet_lines(trace, analysis) for line in chunk]
