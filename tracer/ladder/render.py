"""The text ladder: one line per packet between two endpoint lanes.

Each row: packet number, time since the first packet, an arrow between the
stream's two lanes (left = client when known) labelled with flags, seq/ack and
length, then the state changes, tshark's analysis flags and the packet's cause.
Lanes are keyed by ``ip:port`` so two sockets on one address are two lanes.
A trace with recorded socket calls also gets a row, without a number or an
arrow, for each call that caused no packet (socket, listen, accept, recv, ...),
against its side's lane at the moment it returned (a blocking call's result is
known only then: accept() returns after the handshake); a failed call names the
packet that made it fail.  Calls that caused packets stay on those packets' rows.
All labels exist in English and Simplified Chinese; widths count CJK characters
as two columns so the zh ladder lines up too.

The pieces: ``_shown`` decides what is shown, ``_measure`` the column widths,
``_place_warnings`` where each warning goes, and ``_Rows`` walks the packets in
order with the calls and warnings due between them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tracer.core.analysis import Analysis
from tracer.core.model import (
    PROTO_TCP,
    PROTO_UDP,
    AnalysisFlag,
    CauseBy,
    Side,
    SocketCall,
    StreamInfo,
    TcpState,
)
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.i18n import lang_of, warning_text
from tracer.i18n.explain import state_name, template
from tracer.ladder.calls import call_error, call_text, call_time, calls_with_rows, waited_text
from tracer.ladder.kernel import KernelView, drop_note
from tracer.ladder.labels import LABELS, flag_names, other_frame_text, reason_words, tcp_label
from tracer.ladder.streams import Lanes, StreamKey, call_streams, caused_streams, lanes_of, stream_infos
from tracer.ladder.text import arrow, clip, pad, text_width, wrap


def render_ladder(
    trace: Trace,
    analysis: Analysis,
    lang: str = "en",
    width: int = 100,
    stream: int | None = None,
    raw_seq: bool = False,
    explain: bool = False,
) -> Iterator[str]:
    """Yield the ladder's lines (header first, then one line per packet, with the
    recorded calls that caused no packet between them in time order).

    ``stream`` keeps only the packets of that TCP stream (tshark's ``tcp.stream``
    number) and the calls of its sockets; ``raw_seq`` shows raw sequence numbers; ``explain`` adds an
    indented line with the full explanation under each packet (and the source
    line under each call row).
    """
    lab = LABELS[lang]
    lang = lang_of(lang)
    shown = _shown(trace, analysis, stream)
    a = analysis
    yield lab["title"].format(
        source=trace.meta.source or "-", n=len(trace.packets), tcp=len(a.tcp_streams), udp=len(a.udp_streams)
    )
    legends = ["legend1_raw" if raw_seq else "legend1", "legend2"] + (["legend3"] if shown.calls else [])
    for legend in legends:
        yield from wrap(lab[legend], max(40, width), indent="  ")
    if shown.rows.size == 0:
        yield lab["no_packets"]
        if not shown.calls:
            return
    cols = _measure(trace, shown, lab, width)
    yield _column_header(shown, cols, lab)
    yield from _Rows(trace, a, shown, cols, lab, lang, width, raw_seq, explain).lines()


# --- what is shown, and how wide --------------------------------------------------


@dataclass(frozen=True)
class _Shown:
    """The packets (row indices), their streams and the calls that get rows of their own."""

    rows: npt.NDArray[np.int64]
    infos: dict[StreamKey, StreamInfo]
    streams: set[StreamKey]
    calls: list[SocketCall]
    error_links: dict[int, int]

    @property
    def multi(self) -> bool:
        """Rows of several streams: each row carries a tag and streams get headers."""
        return len(self.streams) > 1


def _shown(trace: Trace, a: Analysis, stream: int | None) -> _Shown:
    t = trace.packets
    infos = stream_infos(a)
    rows = np.arange(len(t))
    if stream is not None:
        rows = rows[(t.proto == PROTO_TCP) & (a.stream == stream)]
    streams = {
        (int(p), int(s))
        for p, s in zip(t.proto[rows].tolist(), a.stream[rows].tolist(), strict=True)
        if s >= 0
    }
    return _Shown(rows, infos, streams, _shown_calls(trace, a, infos, stream),
                  a.error_links if trace.calls else {})


def _shown_calls(
    trace: Trace, a: Analysis, infos: dict[StreamKey, StreamInfo], stream: int | None
) -> list[SocketCall]:
    """The calls that get their own row, in time order: those that caused no packet
    row, and with a stream filter only those of a socket of that TCP stream."""
    keep = calls_with_rows(trace, a)
    if keep and stream is not None:
        streams_of = call_streams(trace.calls, infos, caused_streams(trace, a))
        keep = [c for c in keep if (PROTO_TCP, stream) in streams_of.get(c.id, set())]
    return sorted(keep, key=lambda c: (call_time(c), c.id))


@dataclass(frozen=True)
class _Columns:
    """Widths: packet number, time, stream tag (0 for one stream), all before the lanes; the arrow."""

    no: int
    time: int
    tag: int
    prefix: int
    arrow: int


def _measure(trace: Trace, shown: _Shown, lab: dict[str, str], width: int) -> _Columns:
    t = trace.packets
    no_w = max(len(str(len(t))), text_width(lab["no"]))
    # Wide enough for the extremes (odd captures have times far apart or out of order).
    t0 = _t0(trace, shown)
    rel = (t.ts_ns[shown.rows] - t0) / 1e9
    extremes = [float(rel.min()), float(rel.max())] if rel.size else []
    extremes += [(call_time(c) - t0) / 1e9 for c in shown.calls[:1] + shown.calls[-1:]]
    time_w = max(10, text_width(lab["time"]), *(len(f"{x:.6f}") for x in extremes))
    tag_w = 6 if shown.multi else 0
    prefix_w = no_w + 1 + time_w + 1 + (tag_w + 1 if shown.multi else 0)
    return _Columns(no_w, time_w, tag_w, prefix_w, max(30, min(60, width - prefix_w - 34)))


def _t0(trace: Trace, shown: _Shown) -> int:
    """Time zero: the first packet's, or the first call's in a run that sent no packet."""
    ts = trace.packets.ts_ns
    return int(ts[0]) if ts.size else min(call_time(c) for c in shown.calls)


def _lane_header(lanes: Lanes, lab: dict[str, str], arrow_w: int) -> str:
    left = f"{lab[lanes.left_role]} {lanes.left}"
    right = f"{lanes.right} {lab[lanes.right_role]}"
    span = arrow_w + 2
    if text_width(left) + text_width(right) + 1 <= span:
        return pad(left, span - text_width(right)) + right
    return left + "  ⇄  " + right


def _column_header(shown: _Shown, cols: _Columns, lab: dict[str, str]) -> str:
    """The header row; with a single stream it also names the two lanes."""
    head = pad(lab["no"], cols.no, right=True) + " " + pad(lab["time"], cols.time, right=True) + " "
    if shown.multi:
        head += " " * (cols.tag + 1)
    info = None
    if not shown.multi and shown.streams:
        (only,) = shown.streams
        info = shown.infos.get(only)
    return head + (_lane_header(lanes_of(info), lab, cols.arrow) if info is not None else "")


def _place_warnings(
    trace: Trace, lab: dict[str, str], lang: str
) -> tuple[dict[int, list[str]], list[tuple[int, str]]]:
    """Warnings by the packet number they follow (0: before everything), and the timed ones.

    Warnings sit on the timeline after the packet they name (a scenario's error,
    out-of-range times, ...); the others come first, or last if their packet is not
    shown.  Those with a time (a live run's error) stand at that time among calls and packets.
    """
    placed: dict[int, list[str]] = {}
    timed: list[tuple[int, str]] = []
    for w in trace.warnings:
        msg = lab["warning"].format(msg=warning_text(w, lang))
        if w.t_ns is not None:
            timed.append((w.t_ns, msg))
        else:
            placed.setdefault(w.packet_no if w.packet_no is not None else 0, []).append(msg)
    timed.sort()
    return placed, timed


# --- the rows ---------------------------------------------------------------------


class _Rows:
    """The rows after the column header, in time order, and what the walk remembers:
    the stream whose header came last, each stream's last states, the calls and
    warnings still due, the failed calls already named."""

    def __init__(self, trace: Trace, a: Analysis, shown: _Shown, cols: _Columns, lab: dict[str, str],
                 lang: str, width: int, raw_seq: bool, explain: bool) -> None:
        self.trace, self.shown, self.cols, self.lab, self.lang = trace, shown, cols, lab, lang
        self.width, self.explain = width, explain
        self.flag_labels = flag_names(lang)
        self.side_label = {1: lab["client"], 2: lab["server"]}
        t = trace.packets
        # Python lists: one row at a time is much faster on lists than on numpy scalars.
        self.ts = t.ts_ns.tolist()
        self.t0 = _t0(trace, shown)
        self.proto = t.proto.tolist()
        self.strm = a.stream.tolist()
        self.direction = a.direction.tolist()
        self.tflags = t.tcp_flags.tolist()
        self.seq = (t.seq if raw_seq else a.rel_seq).tolist()
        self.ack = (t.ack if raw_seq else a.rel_ack).tolist()
        self.plen = t.payload_len.tolist()
        self.aflags = a.flags.tolist()
        self.st_a = a.state_a.tolist()
        self.st_b = a.state_b.tolist()
        self.by = a.cause_by.tolist()
        self.side = a.cause_side.tolist()
        self.call = a.cause_call.tolist()
        self.reason = a.cause_reason.tolist()
        self.inferred = a.cause_inferred.tolist()
        self.call_id = a.cause_call_id.tolist() if shown.error_links else []
        self.calls_by_id = {c.id: c for c in trace.calls} if shown.error_links else {}
        self.errors_told: set[int] = set()
        self.streams_of = (call_streams(trace.calls, shown.infos, caused_streams(trace, a))
                           if shown.calls and shown.multi else {})
        self.current: StreamKey | None = None  # the stream whose header was printed last
        self.pending = 0  # the next call of shown.calls to print
        self.placed, self.timed = _place_warnings(trace, lab, lang)
        self.last_states: dict[int, tuple[int, int]] = {}
        self.lane_cache: dict[StreamKey, Lanes] = {}
        self.drops = KernelView.of(trace).drops

    def lines(self) -> Iterator[str]:
        for msg in self.placed.pop(0, []):
            yield from wrap(msg, max(40, self.width), indent="  ")
        indent = " " * self.cols.prefix
        due: list[str] = []  # warnings of the previous packet: after the calls that followed it
        for i in self.shown.rows.tolist():
            yield from self._events_before(self.ts[i])
            for msg in due:
                yield from wrap(msg, max(40, self.width), indent=indent)
            yield from self._packet_rows(i)
            due = self.placed.pop(i + 1, [])
        yield from self._events_before(float("inf"))
        for msg in due:
            yield from wrap(msg, max(40, self.width), indent=indent)
        for no in sorted(self.placed):  # their packet is not shown (filtered, or past the end)
            for msg in self.placed[no]:
                yield from wrap(msg, max(40, self.width), indent="  ")

    # --- calls and timed warnings between packets

    def _events_before(self, t_ns: float) -> Iterator[str]:
        """Call rows and timed warnings earlier than ``t_ns``, in time order."""
        calls, timed = self.shown.calls, self.timed
        while True:
            tc = call_time(calls[self.pending]) if self.pending < len(calls) else None
            tw = timed[0][0] if timed else None
            if tw is not None and tw < t_ns and (tc is None or tw <= tc):
                yield from wrap(timed.pop(0)[1], max(40, self.width), indent=" " * self.cols.prefix)
            elif tc is not None and tc < t_ns:
                yield from self._call_block(calls[self.pending])
                self.pending += 1
            else:
                return

    def _call_block(self, c: SocketCall) -> Iterator[str]:
        """A call's rows; with several streams, under its stream's header when it has one."""
        keys = self.streams_of.get(c.id, set())
        info = self.shown.infos.get(next(iter(keys))) if len(keys) == 1 else None
        if info is not None and (PROTO_TCP if info.proto == "tcp" else PROTO_UDP, info.index) != self.current:
            yield self._stream_header(info)
            self.current = (PROTO_TCP if info.proto == "tcp" else PROTO_UDP, info.index)
        yield from self._call_rows(c, f"{info.proto[0]}{info.index}" if info is not None else "")

    def _call_rows(self, c: SocketCall, tag: str) -> Iterator[str]:
        """One call as its own row: no arrow, its text against its side's lane."""
        cols = self.cols
        when = f"{(call_time(c) - self.t0) / 1e9:.6f}"
        lead = pad("", cols.no) + " " + pad(when, cols.time, right=True) + " "
        if self.shown.multi:
            lead += pad(tag, cols.tag) + " "
        inner = cols.arrow - 2
        text = call_text(c, self.lang, self.shown.error_links.get(c.id))
        waited = waited_text(c, self.lang)
        note = "  " + waited if waited else ""
        for k, part in enumerate(wrap(text, inner) if text_width(text) > inner else [text]):
            body = pad(part, inner, right=c.side == "server")
            yield (lead if k == 0 else " " * cols.prefix) + "│ " + body + " │" + (note if k == 0 else "")
        if self.explain and c.source is not None:
            where = f"{c.source.file.rsplit('/', 1)[-1]}:{c.source.line}"
            yield " " * cols.prefix + "  " + (f"{where}  {c.source.code}" if c.source.code else where)

    def _stream_header(self, info: StreamInfo) -> str:
        title = self.lab["stream"].format(proto=info.proto.upper(), index=info.index)
        return (pad(f"[{title}]", self.cols.prefix - 1, right=True) + " "
                + _lane_header(lanes_of(info), self.lab, self.cols.arrow))

    # --- one packet

    def _packet_rows(self, i: int) -> Iterator[str]:
        """Packet ``i``'s row (under its stream's header when that changes) and its explanation."""
        p, s = self.proto[i], self.strm[i]
        key = (p, s)
        info = self.shown.infos.get(key) if s >= 0 and p in (PROTO_TCP, PROTO_UDP) else None
        if self.shown.multi and info is not None and key != self.current:
            yield self._stream_header(info)
            self.current = key
        cols = self.cols
        when = f"{(self.ts[i] - self.t0) / 1e9:.6f}"
        line = pad(str(i + 1), cols.no, right=True) + " " + pad(when, cols.time, right=True) + " "
        if self.shown.multi:
            tag = f"{info.proto[0]}{info.index}" if info is not None else ""
            line += pad(tag, cols.tag) + " "
        notes: list[str] = []
        if info is not None:
            line += self._arrow_cell(i, key, info, notes)
        else:
            line += self._other_cell(i, notes)
        drop = self.drops.get(i)
        if drop is not None:
            notes.insert(0, drop_note(drop, self.lang))
        bits = self.aflags[i]
        if bits:
            names = (self.flag_labels[f] for f in AnalysisFlag if bits >> f.value & 1)
            notes.append("[" + ", ".join(names) + "]")
        cause = self._cause_note(i)
        if cause is not None:
            notes.append(cause)
        yield line + ("  " + " · ".join(notes) if notes else "")
        if self.explain and self.reason[i] >= 0:
            yield " " * cols.prefix + "  " + self._explanation(i)

    def _arrow_cell(self, i: int, key: StreamKey, info: StreamInfo, notes: list[str]) -> str:
        """The arrow between the lanes; the TCP states it changed go to ``notes``."""
        lanes = self.lane_cache.get(key) or self.lane_cache.setdefault(key, lanes_of(info))
        left_to_right = (self.direction[i] == 0) == lanes.a_is_left
        if self.proto[i] == PROTO_TCP:
            label = tcp_label(self.tflags[i], self.seq[i], self.ack[i], self.plen[i])
        else:
            label = f"UDP len={self.plen[i]}"
        if self.proto[i] == PROTO_TCP and self.st_a[i] >= 0:
            notes += self._state_changes(i, lanes)
        return "│" + arrow(label, left_to_right, self.cols.arrow, i in self.drops) + "│"

    def _state_changes(self, i: int, lanes: Lanes) -> list[str]:
        """"client ESTABLISHED" for each end whose state this packet changed."""
        s = self.strm[i]
        prev = self.last_states.get(s)
        role_a = self.lab[lanes.left_role if lanes.a_is_left else lanes.right_role]
        role_b = self.lab[lanes.right_role if lanes.a_is_left else lanes.left_role]
        out = [f"{role} {state_name(TcpState(new), self.lang)}"
               for role, old, new in ((role_a, prev[0] if prev else None, self.st_a[i]),
                                      (role_b, prev[1] if prev else None, self.st_b[i]))
               if new != old and new != TcpState.UNKNOWN]
        self.last_states[s] = (self.st_a[i], self.st_b[i])
        return out

    def _other_cell(self, i: int, notes: list[str]) -> str:
        """A frame outside any stream: its description between the lanes (an ICMP error
        names the stream it quotes in ``notes``)."""
        desc = other_frame_text(self.trace.packets, i, self.lab)
        quote = self.trace.packets.icmp_quotes.get(i)
        s = self.strm[i]
        if s >= 0 and quote is not None:
            notes.append("[" + self.lab["stream"].format(proto=quote.proto.upper(), index=s) + "]")
        if text_width(desc) > self.cols.arrow - 2:
            desc = clip(desc, self.cols.arrow - 2)
        return "│ " + pad(desc, self.cols.arrow - 1) + "│"

    def _cause_note(self, i: int) -> str | None:
        """Who caused packet ``i`` and why (None when unknown); the first packet that made
        a call fail also names the error."""
        by, reason = self.by[i], self.reason[i]
        if by == CauseBy.UNKNOWN and reason <= 0:
            return None
        who = self.side_label.get(self.side[i], "")
        mark = "~" if self.inferred[i] else ""
        call = self.call[i]
        if by == CauseBy.CALL and 0 <= call < len(CALL_NAMES) and CALL_NAMES[call]:
            cause = f"{who} {CALL_NAMES[call]}()"
            error_links = self.shown.error_links
            cid = self.call_id[i] if error_links else -1
            failed = self.calls_by_id.get(cid) if cid in error_links and cid not in self.errors_told else None
            if failed is not None and (err := call_error(failed)) is not None:
                # The call failed later because of another packet: say which one.
                self.errors_told.add(cid)
                cause += f" → {err} ({self.lab['packet'].format(no=error_links[cid] + 1)})"
        elif by == CauseBy.KERNEL:
            cause = f"{who} {self.lab['kernel']}: {reason_words(reason, self.lang)}"
        else:
            cause = f"{who} {reason_words(reason, self.lang)}"
        return mark + cause.strip()

    def _explanation(self, i: int) -> str:
        reason, side = self.reason[i], self.side[i]
        name = REASONS[reason] if 0 <= reason < len(REASONS) else "unknown"
        tpl = template(name, Side(side) if side in (0, 1, 2) else Side.NONE, self.lang)
        try:
            return tpl.format(
                src=self.trace.packets.src_endpoint(i),
                dst=self.trace.packets.dst_endpoint(i),
                len=self.plen[i],
                seq=self.seq[i] if self.seq[i] >= 0 else "",
                ack=self.ack[i] if self.ack[i] >= 0 else "",
            )
        except (KeyError, IndexError, ValueError):
            return tpl
