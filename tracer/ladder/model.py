"""The ladder's rows: which rows exist, in what order, and what each says.

No Textual here: the model is plain numpy plus the ladder's helpers, so it is
tested on its own and built in a worker thread; the TUI and the lessons read it.
A row is a packet, a recorded socket call that caused no packet (accept(),
recv(), listen(), ...) or the return of one that did (connect(), a call whose errno
no packet explains: ``tracer.ladder.calls``), or a trace warning on the timeline.  ``kind``/``ref``
hold one entry per row (a million packets cost two arrays, never a million
objects); ``cells(r)`` formats one row only when it is about to be painted.

Calls and timed warnings go before the first packet captured after them (the
text ladder's rule in ``tracer.ladder.render``), found with ``searchsorted``
over the running maximum of the packet times so that out-of-order timestamps
cannot misplace them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tracer.core.analysis import Analysis
from tracer.core.model import (
    PROTO_TCP,
    PROTO_UDP,
    AnalysisFlag,
    CauseBy,
    SocketCall,
    StreamInfo,
    TcpState,
    TraceWarning,
)
from tracer.core.reasons import CALL_NAMES
from tracer.core.trace import Trace
from tracer.i18n import warning_text
from tracer.i18n.explain import state_name
from tracer.ladder.calls import call_error, call_text, call_time, calls_with_rows, returns_as_rows
from tracer.ladder.filter import Filter
from tracer.ladder.kernel import KernelView, drop_note
from tracer.ladder.labels import LABELS, flag_names, other_frame_text, reason_words, tcp_label
from tracer.ladder.streams import Lanes, StreamKey, call_streams, caused_streams, lanes_of, stream_infos

KIND_PACKET, KIND_CALL, KIND_WARNING = 0, 1, 2
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Cells:
    """One row, ready to lay out: texts per column and what they mean for colour.

    ``direction`` is 1 for a packet from the left lane to the right one, -1 for
    right to left, 0 for a row without an arrow (a call, a warning, a frame
    that is not TCP/UDP), whose text is ``label``.  ``left_app``/``right_app``
    name the call in that side's application lane; ``kernel`` is "L"/"R" when
    that side's kernel sent the packet on its own.
    """

    kind: int
    no: str
    time: str
    tag: str
    direction: int
    label: str
    left_app: str = ""
    right_app: str = ""
    kernel: str = ""
    notes: tuple[tuple[str, str], ...] = ()  # (text, style name)
    tcp_flags: int = 0
    side: str = ""  # for call rows: "client"/"server" (or "" if unknown)
    error: bool = False
    dropped: str = ""  # a packet the receiving kernel dropped: its drop reason


@dataclass(eq=False)
class LadderModel:
    """The rows of one view of a trace (a stream and a filter applied)."""

    trace: Trace
    analysis: Analysis
    stream: StreamKey | None = None
    filter: Filter = field(default_factory=Filter)
    kind: npt.NDArray[np.int8] = field(init=False)
    ref: I64 = field(init=False)
    calls: list[SocketCall] = field(init=False)  # calls with rows of their own, by time
    returns: frozenset[int] = field(init=False)  # ids of those whose row is the return of a call that sent
    warnings: list[TraceWarning] = field(init=False)
    infos: dict[StreamKey, StreamInfo] = field(init=False)
    _prev: npt.NDArray[np.int32] | None = field(init=False, default=None)
    _streams_of: dict[int, set[StreamKey]] | None = field(init=False, default=None)
    kernel: KernelView = field(init=False)

    def __post_init__(self) -> None:
        t, a = self.trace.packets, self.analysis
        self.infos = stream_infos(a)
        self.kernel = KernelView.of(self.trace)
        mask = self.filter.packet_mask(t, a)
        if self.stream is not None:
            p, s = self.stream
            # An ICMP error quoting the stream's header belongs to it too.
            same = (a.stream == s) & ((t.proto == p) | (t.icmp_type >= 0))
            mask = same if mask is None else mask & same
        pk = np.arange(len(t), dtype=np.int64) if mask is None else np.flatnonzero(mask).astype(np.int64)
        self.calls = self._own_calls()
        self.returns = frozenset(c.id for c in returns_as_rows(self.trace, self.analysis))
        self.warnings = list(self.trace.warnings) if self.filter.empty and self.stream is None else []
        kind = np.zeros(pk.size, dtype=np.int8)
        if not self.calls and not self.warnings:
            self.kind, self.ref = kind, pk
            return
        runmax = np.maximum.accumulate(t.ts_ns[pk]) if pk.size else np.zeros(0, np.int64)
        keys: list[tuple[int, float, int, int, int]] = []
        for k, c in enumerate(self.calls):
            keys.append((int(np.searchsorted(runmax, call_time(c), "right")), call_time(c), 0, KIND_CALL, k))
        for k, w in enumerate(self.warnings):
            if w.t_ns is not None:
                keys.append((int(np.searchsorted(runmax, w.t_ns, "right")), w.t_ns, 0, KIND_WARNING, k))
            else:
                # After the packet it names (0/None: before everything), after that slot's calls.
                slot = int(np.searchsorted(pk, w.packet_no)) if w.packet_no else 0
                keys.append((slot, float("inf"), 1, KIND_WARNING, k))
        keys.sort()
        slots = [k[0] for k in keys]
        self.kind = np.insert(kind, slots, [k[3] for k in keys]).astype(np.int8)
        self.ref = np.insert(pk, slots, [k[4] for k in keys]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    # --- which calls, which streams -------------------------------------------------

    def streams_of_calls(self) -> dict[int, set[StreamKey]]:
        """Call id -> the streams of its socket (see ``tracer.ladder.streams.call_streams``)."""
        if self._streams_of is None:
            caused = caused_streams(self.trace, self.analysis)
            self._streams_of = call_streams(self.trace.calls, self.infos, caused)
        return self._streams_of

    def _own_calls(self) -> list[SocketCall]:
        keep = calls_with_rows(self.trace, self.analysis)
        if not keep:
            return []
        of = self.streams_of_calls() if self.stream is not None or not self.filter.empty else {}
        if self.stream is not None:
            keep = [c for c in keep if self.stream in of.get(c.id, set())]
        if not self.filter.empty:
            keep = [c for c in keep if self.filter.keeps_call(c, call_text(c, "en"), of.get(c.id))]
        return sorted(keep, key=lambda c: (call_time(c), c.id))

    def stream_of_row(self, r: int) -> StreamKey | None:
        """The stream a row belongs to (a call's: its socket's only stream), if one."""
        k, ref = int(self.kind[r]), int(self.ref[r])
        if k == KIND_PACKET:
            s = int(self.analysis.stream[ref])
            p = int(self.trace.packets.proto[ref])
            if s < 0:
                return None
            if p not in (PROTO_TCP, PROTO_UDP):
                quote = self.trace.packets.icmp_quotes.get(ref)
                p = PROTO_TCP if quote is not None and quote.proto == "tcp" else PROTO_UDP
            return (p, s)
        if k == KIND_CALL:
            keys = self.streams_of_calls().get(self.calls[ref].id, set())
            return next(iter(keys)) if len(keys) == 1 else None
        return None

    def multi(self) -> bool:
        """Whether the rows shown come from more than one stream (rows then carry a tag)."""
        if self.stream is not None:
            return False
        return len(self.infos) > 1

    def lanes(self, key: StreamKey | None) -> Lanes | None:
        info = self.infos.get(key) if key is not None else None
        return lanes_of(info) if info is not None else None

    # --- finding rows ---------------------------------------------------------------

    def row_of_packet(self, i: int) -> int | None:
        """The row showing packet ``i``, if it is shown."""
        rows = np.flatnonzero((self.ref == i) & (self.kind == KIND_PACKET))
        return int(rows[0]) if rows.size else None

    def packet_rows(self) -> I64:
        return np.flatnonzero(self.kind == KIND_PACKET).astype(np.int64)

    def time_ns(self, r: int) -> int:
        k, ref = int(self.kind[r]), int(self.ref[r])
        if k == KIND_PACKET:
            return int(self.trace.packets.ts_ns[ref])
        if k == KIND_CALL:
            return call_time(self.calls[ref])
        w = self.warnings[ref]
        if w.t_ns is not None:
            return w.t_ns
        return self.time_ns(r - 1) if r > 0 else self.t0

    @property
    def t0(self) -> int:
        ts = self.trace.packets.ts_ns
        if ts.size:
            return int(ts[0])
        # A run that sent no packet: its calls' time line starts at the first call.
        return min((call_time(c) for c in self.calls), default=0)

    def states_at(self, r: int) -> tuple[StreamKey, int, int] | None:
        """(stream, state of a, state of b) after row ``r``: the TCP states its stream's
        two ends are in once it happened (for a call row, after the packet before it)."""
        key = self.stream_of_row(r)
        if key is None or key[0] != PROTO_TCP:
            return None
        a, t = self.analysis, self.trace.packets
        for j in range(r, max(-1, r - 5000), -1):
            if int(self.kind[j]) != KIND_PACKET:
                continue
            i = int(self.ref[j])
            if int(t.proto[i]) == PROTO_TCP and int(a.stream[i]) == key[1] and int(a.state_a[i]) >= 0:
                return key, int(a.state_a[i]), int(a.state_b[i])
        return None

    def prev_in_stream(self) -> npt.NDArray[np.int32]:
        """For each packet, the previous packet of its TCP stream (-1 for the first)."""
        if self._prev is None:
            t, a = self.trace.packets, self.analysis
            prev = np.full(len(t), -1, dtype=np.int32)
            tcp = np.flatnonzero((t.proto == PROTO_TCP) & (a.stream >= 0))
            if tcp.size > 1:
                s = a.stream[tcp]
                order = tcp[np.argsort(s, kind="stable")]
                ss = a.stream[order]
                same = ss[1:] == ss[:-1]
                prev[order[1:][same]] = order[:-1][same]
            self._prev = prev
        return self._prev

    # --- one row as text -------------------------------------------------------------

    def cells(self, r: int, lang: str = "en", raw_seq: bool = False) -> Cells:
        lab = LABELS[lang]
        k, ref = int(self.kind[r]), int(self.ref[r])
        if k == KIND_PACKET:
            return self._packet_cells(ref, lang, raw_seq)
        time = f"{(self.time_ns(r) - self.t0) / 1e9:.6f}"
        if k == KIND_CALL:
            c = self.calls[ref]
            key = self.stream_of_row(r)
            tag = _tag(key) if self.multi() and key is not None else ""
            lanes = self.lanes(key)
            text = call_text(c, lang, self.analysis.error_links.get(c.id))
            short = f"{c.call}()"
            on_left = c.side != "server" if lanes is None else (
                (c.side == "client") == (lanes.left_role == "client"))
            return Cells(KIND_CALL, "", time, tag, 0, text,
                         left_app=short if on_left else "", right_app="" if on_left else short,
                         side=c.side, error=call_error(c) is not None)
        w = self.warnings[ref]
        msg = warning_text(w, lang)
        return Cells(KIND_WARNING, "", time if w.t_ns is not None else "", "", 0,
                     lab["warning"].format(msg=msg), error=True)

    def _packet_cells(self, i: int, lang: str, raw_seq: bool) -> Cells:
        t, a = self.trace.packets, self.analysis
        lab = LABELS[lang]
        p, s = int(t.proto[i]), int(a.stream[i])
        no = str(i + 1)
        time = f"{(int(t.ts_ns[i]) - self.t0) / 1e9:.6f}"
        key = (p, s) if s >= 0 and p in (PROTO_TCP, PROTO_UDP) else None
        info = self.infos.get(key) if key is not None else None
        notes: list[tuple[str, str]] = []
        if info is None:
            desc = other_frame_text(t, i, lab)
            quote = t.icmp_quotes.get(i)
            tag = ""
            if s >= 0 and quote is not None:
                qkey = (PROTO_TCP if quote.proto == "tcp" else PROTO_UDP, s)
                tag = _tag(qkey) if self.multi() else ""
                notes.append(("[" + lab["stream"].format(proto=quote.proto.upper(), index=s) + "]", "dim"))
            self._cause_notes(i, lang, None, notes)
            return Cells(KIND_PACKET, no, time, tag, 0, desc, notes=tuple(notes))
        lanes = lanes_of(info)
        from_a = int(a.direction[i]) == 0
        left_to_right = from_a == lanes.a_is_left
        flags = int(t.tcp_flags[i])
        if p == PROTO_TCP:
            seq = int(t.seq[i] if raw_seq else a.rel_seq[i])
            ack = int(t.ack[i] if raw_seq else a.rel_ack[i])
            label = tcp_label(flags, seq, ack, int(t.payload_len[i]))
            self._state_notes(i, lanes, lang, notes)
        else:
            label = f"UDP len={int(t.payload_len[i])}"
        drop = self.kernel.drops.get(i)
        if drop is not None:
            notes.insert(0, (drop_note(drop, lang), "drop"))
        bits = int(a.flags[i])
        if bits:
            names = flag_names(lang)
            notes.append(("[" + ", ".join(names[f] for f in AnalysisFlag if bits >> f.value & 1) + "]",
                          "analysis"))
        left_app = right_app = kernel = ""
        sender_left = left_to_right
        by = int(a.cause_by[i])
        call = int(a.cause_call[i])
        if by == CauseBy.CALL and 0 < call < len(CALL_NAMES):
            name = f"{CALL_NAMES[call]}()"
            if bool(a.cause_inferred[i]):
                name = "~" + name
            if sender_left:
                left_app = name
            else:
                right_app = name
        elif by == CauseBy.KERNEL:
            kernel = "L" if sender_left else "R"
        self._cause_notes(i, lang, lanes, notes)
        return Cells(KIND_PACKET, no, time, _tag(key) if self.multi() and key else "",
                     1 if left_to_right else -1, label, left_app, right_app, kernel, tuple(notes), flags,
                     dropped=drop.reason if drop is not None else "")

    def _state_notes(self, i: int, lanes: Lanes, lang: str, notes: list[tuple[str, str]]) -> None:
        a = self.analysis
        sa, sb = int(a.state_a[i]), int(a.state_b[i])
        if sa < 0:
            return
        j = int(self.prev_in_stream()[i])
        old = (int(a.state_a[j]), int(a.state_b[j])) if j >= 0 else (None, None)
        lab = LABELS[lang]
        role_a = lab[lanes.left_role] if lanes.a_is_left else lab[lanes.right_role]
        role_b = lab[lanes.right_role] if lanes.a_is_left else lab[lanes.left_role]
        for role, before, new in ((role_a, old[0], sa), (role_b, old[1], sb)):
            if new != before and new != TcpState.UNKNOWN:
                notes.append((f"{role} {state_name(TcpState(new), lang)}", "state"))

    def _cause_notes(self, i: int, lang: str, lanes: Lanes | None, notes: list[tuple[str, str]]) -> None:
        a = self.analysis
        reason = int(a.cause_reason[i])
        by = int(a.cause_by[i])
        if by == CauseBy.UNKNOWN and reason <= 0:
            return
        lab = LABELS[lang]
        words = reason_words(reason, lang)
        mark = "~" if bool(a.cause_inferred[i]) else ""
        if by == CauseBy.KERNEL:
            side = {1: lab["client"], 2: lab["server"]}.get(int(a.cause_side[i]), "")
            notes.append((f"{mark}{side} {lab['kernel']}: {words}".strip(), "kernel"))
        else:
            notes.append((mark + words, "cause"))
        cid = int(a.cause_call_id[i])
        if cid >= 0 and cid in a.error_links:
            failed = next((c for c in self.trace.calls if c.id == cid), None)
            err = call_error(failed) if failed is not None else None
            if err is not None:
                notes.append((f"→ {err} ({lab['packet'].format(no=a.error_links[cid] + 1)})", "error"))


def _tag(key: StreamKey | None) -> str:
    if key is None:
        return ""
    return f"{'t' if key[0] == PROTO_TCP else 'u'}{key[1]}"
