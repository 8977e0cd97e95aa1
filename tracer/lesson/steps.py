"""A trace as a lesson: the ordered steps a class walks through, one fact each.

A step is what the ladder shows as a row (a packet, a socket call that sent
nothing, a trace warning), flattened into one frozen record that says everything
a presenter, a quiz or an exporter needs: which lanes, which way the arrow goes,
its label, the call or kernel action behind it, one sentence of explanation, and
both ends' TCP states afterwards, all in one language.  The order and the rows
are exactly the TUI's and the text ladder's (``tracer.ladder.model.LadderModel``), so
a lesson never tells a different story from the ladder.  No I/O, no Textual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP, AnalysisFlag, CauseBy, SocketCall, TcpState
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.i18n import lang_of, warning_text
from tracer.i18n.calls import explain_call
from tracer.i18n.explain import label as reason_words
from tracer.i18n.explain import state_name
from tracer.ladder.calls import call_text
from tracer.ladder.kernel import drop_text
from tracer.ladder.labels import flag_names, packet_explanation, tcp_flag_names
from tracer.ladder.model import KIND_CALL, KIND_PACKET, LadderModel
from tracer.ladder.streams import StreamKey

KINDS = {KIND_PACKET: "packet", KIND_CALL: "call"}


@dataclass(frozen=True)
class Step:
    """One step of a lesson.

    ``direction`` is 1 when the arrow goes from the left lane to the right one,
    -1 for right to left and 0 for a step without an arrow (a call, a warning, a
    frame outside any stream).  ``actor`` is the role ("client"/"server", or
    "a"/"b" when the capture cannot tell) of the side that sent the packet or
    made the call.  ``by`` is "call", "kernel" or "unknown"; ``call`` is the
    call behind a packet ("connect()") or, for a call step, the call itself.
    ``states`` are the (left, right) TCP state names after the step, ``changed``
    which of them this step changed.  Texts are in the lesson's language.
    """

    index: int
    kind: str  # "packet" | "call" | "warning"
    packet: int | None  # 0-based packet index
    t_ns: int
    gap_ns: int  # since the previous step (0 for the first)
    stream: StreamKey | None
    left: str
    right: str
    left_role: str
    right_role: str
    direction: int
    actor: str
    label: str
    flags: str  # TCP flag names, "SYN,ACK"; "" for other steps
    payload_len: int
    call: str
    by: str
    inferred: bool
    reason: str  # the cause's stable name (tracer.core.reasons) or the call's name
    cause: str  # the cause in words
    sentence: str
    states: tuple[str, str] | None
    state_codes: tuple[int, int] | None
    changed: tuple[bool, bool]
    analysis: tuple[str, ...]
    errno: str | None = None
    result: str | None = None
    source_line: int | None = None
    source_code: str = ""
    # (actor, "connect()", errno) for each call this packet made fail (an RST -> ECONNREFUSED).
    fails: tuple[tuple[str, str, str], ...] = ()
    # A call step that is the return of a call that sent packets (connect(), a failed call).
    sent: bool = False
    # The receiving kernel dropped this packet: its reason (NETFILTER_DROP ...) and the words.
    dropped: str = ""
    drop_words: str = ""

    @property
    def is_packet(self) -> bool:
        return self.kind == "packet"


@dataclass(frozen=True)
class Lesson:
    """All steps of a trace in one language, and what they are about."""

    steps: tuple[Step, ...]
    lang: str
    title: str
    t0_ns: int

    def rel_s(self, step: Step) -> float:
        return (step.t_ns - self.t0_ns) / 1e9

    def __len__(self) -> int:
        return len(self.steps)


def build_lesson(trace: Trace, analysis: Analysis, lang: str = "en", stream: StreamKey | None = None,
                 title: str | None = None) -> Lesson:
    """The steps of ``trace`` (of one stream when ``stream`` is given) in ``lang``."""
    lang = lang_of(lang)
    model = LadderModel(trace, analysis, stream)
    steps: list[Step] = []
    prev_t: int | None = None
    prev_states: dict[StreamKey, tuple[int, int]] = {}
    # packet row -> the calls it made fail (error_links: call id -> that packet's row)
    failed: dict[int, list[tuple[str, str, str]]] = {}
    for c in trace.calls:
        row = analysis.error_links.get(c.id)
        if row is not None and c.error is not None:
            failed.setdefault(row, []).append((c.side, f"{c.call}()", c.error))
    calls = {c.id: c for c in trace.calls}  # a packet's call, looked up once per packet
    for r in range(len(model)):
        t_ns = model.time_ns(r)
        gap = 0 if prev_t is None else max(0, t_ns - prev_t)
        prev_t = t_ns if prev_t is None else max(prev_t, t_ns)
        step = _step(model, r, len(steps), t_ns, gap, lang, prev_states, failed, calls)
        if step is not None:
            steps.append(step)
    name = title if title is not None else (trace.meta.extra.get("scenario") or trace.meta.source)
    # Times are relative to the first packet, as in the ladder (setup calls come before it).
    return Lesson(tuple(steps), lang, name, model.t0)


def _states(model: LadderModel, r: int, key: StreamKey | None, a_is_left: bool,
            prev: dict[StreamKey, tuple[int, int]], lang: str
            ) -> tuple[tuple[str, str] | None, tuple[int, int] | None, tuple[bool, bool]]:
    got = model.states_at(r)
    if got is None or key is None or got[0] != key:
        return None, None, (False, False)
    _, sa, sb = got
    left, right = (sa, sb) if a_is_left else (sb, sa)
    before = prev.get(key)
    prev[key] = (left, right)
    changed = (True, True) if before is None else (before[0] != left, before[1] != right)
    names = (state_name(TcpState(left), lang), state_name(TcpState(right), lang))
    return names, (left, right), changed


def _step(model: LadderModel, r: int, index: int, t_ns: int, gap: int, lang: str,
          prev: dict[StreamKey, tuple[int, int]], failed: Mapping[int, list[tuple[str, str, str]]],
          calls: Mapping[int, SocketCall]) -> Step | None:
    kind, ref = int(model.kind[r]), int(model.ref[r])
    key = model.stream_of_row(r)
    lanes = model.lanes(key)
    left, right = (lanes.left, lanes.right) if lanes else ("", "")
    lrole, rrole = (lanes.left_role, lanes.right_role) if lanes else ("client", "server")
    a_is_left = lanes.a_is_left if lanes else True
    states, codes, changed = _states(model, r, key, a_is_left, prev, lang)
    common = dict(index=index, t_ns=t_ns, gap_ns=gap, stream=key, left=left, right=right,
                  left_role=lrole, right_role=rrole, states=states, state_codes=codes, changed=changed)
    if kind == KIND_CALL:
        c = model.calls[ref]
        return Step(kind="call", packet=None, direction=0, actor=c.side,
                    label=call_text(c, lang, model.analysis.error_links.get(c.id)), flags="", payload_len=0,
                    call=f"{c.call}()", by="call", inferred=False, reason=c.call, cause=f"{c.call}()",
                    sentence=explain_call(c, lang), analysis=(), errno=c.error, result=c.result,
                    sent=c.id in model.returns,
                    source_line=c.source.line if c.source else None,
                    source_code=c.source.code if c.source and c.source.code else "", **common)  # type: ignore[arg-type]
    if kind != KIND_PACKET:
        w = model.warnings[ref]
        msg = warning_text(w, lang)
        return Step(kind="warning", packet=None, direction=0, actor="", label=msg, flags="", payload_len=0,
                    call="", by="unknown", inferred=False, reason="warning", cause="", sentence=msg,
                    analysis=(), **common)  # type: ignore[arg-type]
    return _packet_step(model, r, ref, lang, common, failed, calls)


_BY = {int(CauseBy.CALL): "call", int(CauseBy.KERNEL): "kernel"}


def _packet_step(model: LadderModel, r: int, i: int, lang: str, common: Mapping[str, object],
                 failed: Mapping[int, list[tuple[str, str, str]]], calls: Mapping[int, SocketCall]) -> Step:
    t, a = model.trace.packets, model.analysis
    cells = model.cells(r, lang)
    code = int(a.cause_reason[i])
    reason = REASONS[code] if 0 <= code < len(REASONS) else "unknown"
    by = _BY.get(int(a.cause_by[i]), "unknown")
    call_code = int(a.cause_call[i])
    call = f"{CALL_NAMES[call_code]}()" if by == "call" and 0 < call_code < len(CALL_NAMES) else ""
    side = int(a.cause_side[i])
    left_role = str(common["left_role"])
    right_role = str(common["right_role"])
    if cells.direction:
        actor = left_role if cells.direction > 0 else right_role
    else:
        actor = {1: "client", 2: "server"}.get(side, "")
    bits = int(a.flags[i])
    names = flag_names(lang)
    flags = tcp_flag_names(int(t.tcp_flags[i])) if int(t.proto[i]) == PROTO_TCP else ""
    src = calls.get(int(a.cause_call_id[i])) if by == "call" else None
    fails = tuple(failed.get(i, ()))
    drop = model.kernel.drops.get(i)
    return Step(kind="packet", packet=i, direction=cells.direction, actor=actor, label=cells.label,
                flags=flags, payload_len=int(t.payload_len[i]), call=call, by=by,
                inferred=bool(a.cause_inferred[i]), reason=reason, cause=reason_words(reason, lang),
                sentence=packet_explanation(model.trace, a, i, lang),
                analysis=tuple(names[f] for f in AnalysisFlag if bits >> f.value & 1),
                source_line=src.source.line if src is not None and src.source else None,
                source_code=src.source.code if src is not None and src.source and src.source.code else "",
                fails=fails, dropped=drop.reason if drop is not None else "",
                drop_words=drop_text(drop, lang) if drop is not None else "", **common)  # type: ignore[arg-type]

