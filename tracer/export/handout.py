"""A lesson as a Markdown handout (``tracer export --format markdown``).

For students' notes: a title, what the trace is (the scenario and its
description when the capture came from ``tracer run``, the capture file, how
many steps, packets and streams), who is who (each stream's endpoints), the
ladder as a Mermaid sequence diagram (``tracer.export.mermaid``; GitHub, GitLab
and Gitea draw it), then one numbered item per step: its time, who acted (the
client or the server, through which socket call or its kernel), the packet's
label or the call, the lesson's one sentence and both ends' TCP states after
it.  It ends with what to notice, found in the trace itself: the packets the
kernel sent with no socket call, an accept() that returned after the handshake
was already complete, failed calls, tshark's analysis flags, the packets the
receiving kernel dropped (each step says so too, with the reason), resets, how each
stream ended and how many bytes went each way; a scenario's own notes follow.

Every text from the capture goes through ``_md`` (CommonMark backslash escapes)
or a code span (``_code``), so a ``*``, ``|`` or ``[`` in a file name or a call
cannot turn into emphasis, a table cell or a link.  The Mermaid diagram is cut
after ``MERMAID_STEPS`` steps (Mermaid refuses longer texts); the list keeps
every step.  English and Simplified Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from tracer.core.model import PROTO_TCP, TcpState
from tracer.core.pysource import literal_assignments
from tracer.core.trace import Trace
from tracer.export.mermaid import render_mermaid
from tracer.i18n import Words, lang_of
from tracer.ladder.labels import LABELS
from tracer.lesson.steps import Lesson, Step

MERMAID_STEPS = 300  # about 30,000 characters: under Mermaid's default maxTextSize of 50,000
MAX_NUMBERS = 12  # packet numbers listed in one notice before "…"
MAX_STREAMS = 8  # streams listed in "who is who" and "how each stream ended"

TEXT = Words("handout.")  # the handout's words: catalogue keys handout.*

# CommonMark: any ASCII punctuation may be backslash-escaped; these start inline syntax
# (emphasis, code, links, raw HTML, entities, table cells, strikethrough, a heading's closing #).
_INLINE = re.compile(r"([\\`*_\[\]<>|~&#])")
# At the start of a line these start a block (heading, list, quote, thematic break, setext).
_BLOCK = re.compile(r"^(\s*)([#+\-=>]|\d+(?=[.)]))")


def _md(text: str) -> str:
    """``text`` as literal Markdown inline text on one line."""
    return _INLINE.sub(r"\\\1", " ".join(text.split()))


def _md_line(text: str) -> str:
    """``_md`` for text that begins a line: a leading ``#``, ``-``, ``1.`` ... stays text."""
    out = _md(text)
    m = _BLOCK.match(out)
    if m is None:
        return out
    if m.group(2).isdigit():  # "1." -> "1\." (the escape goes on the dot)
        end = m.end()
        return out[:end] + "\\" + out[end:]
    return out[: m.start(2)] + "\\" + out[m.start(2):]


def _code(text: str) -> str:
    """``text`` as a code span, whatever backticks it holds."""
    text = " ".join(text.split())
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fence(text: str, info: str) -> str:
    longest = max((len(r) for r in re.findall(r"^\s*(`{3,})", text, re.M)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text if text.endswith(chr(10)) else text + chr(10)}{fence}"


@dataclass(frozen=True)
class _Scenario:
    """What a ``tracer run`` capture says about its scenario (read from its source, not run)."""

    name: str
    title: str
    description: str
    notice: tuple[str, ...]


def _scenario(trace: Trace | None, lang: str) -> _Scenario | None:
    if trace is None or not trace.meta.extra.get("scenario"):
        return None
    name = trace.meta.extra["scenario"]
    try:
        values, _ = literal_assignments(trace.meta.extra.get("scenario.source", ""))
    except (SyntaxError, ValueError):
        values = {}

    def text(key: str) -> str:
        v = values.get(key)
        if isinstance(v, dict):
            return str(v.get(lang) or v.get("en") or "")
        return str(v) if isinstance(v, str) else ""

    raw = values.get("NOTICE")
    notes = raw.get(lang) or raw.get("en") if isinstance(raw, dict) else None
    notice = tuple(str(x) for x in notes) if isinstance(notes, (list, tuple)) else ()
    return _Scenario(name, text("TITLE"), text("DESCRIPTION"), notice)


def render_markdown(lesson: Lesson, trace: Trace | None = None) -> str:
    """The handout as Markdown (CommonMark with one GFM table and a ```mermaid block).

    ``trace`` (the lesson's trace) adds the capture file and, for a ``tracer run``
    capture, the scenario's title, description and notes.
    """
    lang = lang_of(lesson.lang)
    words, lab = TEXT[lang], LABELS[lang]
    sc = _scenario(trace, lang)
    out: list[str] = []
    out.append(f"# {_md(sc.title if sc and sc.title else lesson.title or words['handout'])}")
    out.append("")
    about = [f"*{_md(words['handout'])}*"]
    if sc is not None:
        about.append(words["scenario"].format(name=_code(sc.name)))
    source = trace.meta.source if trace is not None else ""
    if source:
        about.append(words["capture"].format(source=_code(source)))
    streams = _streams(lesson.steps)
    packets = sum(1 for s in lesson.steps if s.kind == "packet")
    calls = sum(1 for s in lesson.steps if s.kind == "call")
    about.append(_md(words["counts"].format(steps=len(lesson.steps), packets=packets, calls=calls,
                                            streams=len(streams))))
    out.append(" · ".join(about))
    if sc is not None and sc.description:
        out += ["", f"> {_md_line(sc.description)}"]
    if streams:
        out += ["", f"## {_md(words['who'])}", "", *_who_table(streams, lab, words)]
    out += ["", f"## {_md(words['diagram'])}", ""]
    if len(lesson.steps) > MERMAID_STEPS:
        out += [_md_line(words["diagram_cut"].format(n=MERMAID_STEPS, total=len(lesson.steps))), ""]
    out.append(_fence(render_mermaid(lesson, max_steps=MERMAID_STEPS), "mermaid"))
    out += ["", f"## {_md(words['steps'])}", ""]
    out.extend(_step_items(lesson, lab, words))
    out += ["", f"## {_md(words['notice'])}", ""]
    notes = list(_notices(lesson, lab, words))
    out.extend(f"- {_md_line(n)}" for n in notes or [words["nothing"]])
    if sc is not None and sc.notice:
        out += ["", f"### {_md(words['scenario_notes'])}", ""]
        out.extend(f"- {_md_line(n)}" for n in sc.notice)
    return "\n".join(out) + "\n"


# --- parts -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stream:
    key: tuple[int, int]
    left: str
    right: str
    left_role: str
    right_role: str


def _streams(steps: Iterable[Step]) -> list[_Stream]:
    """The lesson's streams, in order of first appearance, with their lanes."""
    seen: dict[tuple[int, int], _Stream] = {}
    for s in steps:
        if s.stream is not None and s.left and s.right and s.stream not in seen:
            seen[s.stream] = _Stream(s.stream, s.left, s.right, s.left_role, s.right_role)
    return list(seen.values())


def _stream_name(key: tuple[int, int], lab: dict[str, str]) -> str:
    return lab["stream"].format(proto="TCP" if key[0] == PROTO_TCP else "UDP", index=key[1])


def _who_table(streams: Sequence[_Stream], lab: dict[str, str], words: dict[str, str]) -> list[str]:
    rows = [f"| {_md(words['stream'])} | {_md(lab['client'])} / {_md(lab['a'])} | "
            f"{_md(lab['server'])} / {_md(lab['b'])} |", "|---|---|---|"]
    for st in streams[:MAX_STREAMS]:
        left = f"{_md(lab.get(st.left_role, st.left_role))} {_code(st.left)}"
        right = f"{_md(lab.get(st.right_role, st.right_role))} {_code(st.right)}"
        rows.append(f"| {_md(_stream_name(st.key, lab))} | {left} | {right} |")
    if len(streams) > MAX_STREAMS:
        rows += ["", _md_line(words["more_streams"].format(n=len(streams) - MAX_STREAMS))]
    return rows


def _who(s: Step, lab: dict[str, str], words: dict[str, str]) -> str:
    """Who acted: the side, then the call (as code) or the kernel."""
    side = _md(lab.get(s.actor, s.actor)) if s.actor else ""
    mark = "~" if s.inferred else ""
    if s.kind == "call":
        how = ""  # the call itself follows
    elif s.by == "call" and s.call:
        how = f"{_md(mark)}{_code(s.call)}"
    elif s.by == "kernel":
        how = _md(f"{mark}{words['kernel']}")
    else:
        how = ""
    return " · ".join(x for x in (side, how) if x)


def _without_side(s: Step, lab: dict[str, str]) -> str:
    """A call's label without its side's name, which the item already gives."""
    who = lab.get(s.actor, s.actor) + " "
    return s.label[len(who):] if s.kind == "call" and s.actor and s.label.startswith(who) else s.label


def _step_items(lesson: Lesson, lab: dict[str, str], words: dict[str, str]) -> Iterator[str]:
    """One ordered-list item per step; its lines end in a backslash (a hard break)."""
    for k, s in enumerate(lesson.steps, 1):
        if k > 1:
            yield ""  # a loose list: each step is its own paragraph, easier to read printed
        lead = f"{k}. "
        indent = " " * len(lead)
        t = f"{lesson.rel_s(s):.6f} s"
        if s.kind == "warning":
            first = f"**{_md(t)}** · **{_md(words['warning'])}**"
            yield f"{lead}{first}\\"
            yield f"{indent}{_md_line(s.sentence or s.label)}"
            continue
        head = [f"**{_md(t)}**", _who(s, lab, words)]
        what = _code(_without_side(s, lab))
        if s.packet is not None:
            what = f"{_md(words['packet'].format(no=s.packet + 1))}: {what}"
        if s.analysis:
            what += f" \\[{_md(', '.join(s.analysis))}\\]"
        head.append(what)
        lines = [" · ".join(x for x in head if x)]
        if s.dropped:
            lines.append(f"**✗ {_md(s.drop_words)}**")
        if s.sentence:
            lines.append(_md_line(s.sentence))
        if s.states is not None and s.kind == "packet":
            roles = (lab.get(s.left_role, s.left_role), lab.get(s.right_role, s.right_role))
            states = " · ".join(f"{roles[i]} {s.states[i]}" for i in (0, 1))
            lines.append(f"*{_md(words['states'])}:* {_md(states)}")
        for n, line in enumerate(lines):
            end = "\\" if n < len(lines) - 1 else ""
            yield f"{lead if n == 0 else indent}{line}{end}"


# --- what to notice -----------------------------------------------------------------


def _numbers(nos: Sequence[int], words: dict[str, str]) -> str:
    """"packet 3" or "packets 3, 5, 8 … (20 in all)"."""
    shown = ", ".join(str(n) for n in nos[:MAX_NUMBERS])
    if len(nos) > MAX_NUMBERS:
        shown += " " + words["list_more"].format(n=len(nos))
    return words["packet" if len(nos) == 1 else "packets"].format(no=shown)


def _duration(ns: int, words: dict[str, str]) -> str:
    if ns >= 1_000_000_000:
        return words["s"].format(v=f"{ns / 1e9:.3f}")
    return words["ms"].format(v=f"{ns / 1e6:.3f}")


def _notices(lesson: Lesson, lab: dict[str, str], words: dict[str, str]) -> Iterator[str]:
    steps = lesson.steps
    packets = [s for s in steps if s.packet is not None]
    if not packets:
        return
    yield from _kernel_notice(packets, words)
    if not any(s.kind == "call" for s in steps) and all(s.inferred for s in packets if s.by != "unknown"):
        yield words["no_calls"]
    yield from _accept_notices(steps, words)
    for s in steps:
        if s.kind == "call" and s.errno:
            yield words["failed"].format(call=s.call, errno=s.errno, label=s.label)
    yield from _flag_notices(packets, words)
    dropped = [(s.packet or 0) + 1 for s in packets if s.dropped]
    if dropped:
        yield words["dropped"].format(list=_numbers(dropped, words))
    rsts = [s for s in packets if "RST" in s.flags.split(",")]
    for s in rsts[:MAX_NUMBERS]:
        yield words["rst"].format(no=(s.packet or 0) + 1, cause=s.cause)
    yield from _stream_notices(steps, lab, words)
    warned = sum(1 for s in steps if s.kind == "warning")
    if warned:
        yield words["warnings"].format(n=warned)


def _kernel_notice(packets: Sequence[Step], words: dict[str, str]) -> Iterator[str]:
    by_cause: dict[str, list[int]] = {}
    for s in packets:
        if s.by == "kernel":
            by_cause.setdefault(s.cause, []).append((s.packet or 0) + 1)
    if not by_cause:
        return
    n = sum(len(v) for v in by_cause.values())
    parts = [words["kernel_item"].format(cause=c, nos=_numbers(nos, words)) for c, nos in by_cause.items()]
    yield words["kernel_sent"].format(n=n, total=len(packets), list="; ".join(parts))


def _accept_notices(steps: Sequence[Step], words: dict[str, str]) -> Iterator[str]:
    """accept() calls that returned after their connection's handshake had completed."""
    done: dict[tuple[int, int], Step] = {}  # stream -> the packet after which the server was ESTABLISHED
    for s in steps:
        if s.kind == "packet" and s.stream is not None and s.state_codes is not None and s.stream not in done:
            server = 1 if s.right_role == "server" else 0 if s.left_role == "server" else None
            if server is not None and s.state_codes[server] == TcpState.ESTABLISHED and s.changed[server]:
                done[s.stream] = s
        elif s.kind == "call" and s.reason == "accept" and not s.errno and s.stream in done:
            hs = done[s.stream]
            yield words["accept_after"].format(dt=_duration(s.t_ns - hs.t_ns, words), no=(hs.packet or 0) + 1)


def _flag_notices(packets: Sequence[Step], words: dict[str, str]) -> Iterator[str]:
    by_flag: dict[str, list[int]] = {}
    for s in packets:
        for f in s.analysis:
            by_flag.setdefault(f, []).append((s.packet or 0) + 1)
    for flag, nos in by_flag.items():
        yield words["flags"].format(what=flag, list=_numbers(nos, words))


def _stream_notices(steps: Sequence[Step], lab: dict[str, str], words: dict[str, str]) -> Iterator[str]:
    """How each stream ended (TCP states) and how many bytes each side sent."""
    last: dict[tuple[int, int], Step] = {}
    sent: dict[tuple[int, int], dict[int, tuple[int, int]]] = {}  # stream -> direction -> (bytes, packets)
    for s in steps:
        if s.kind != "packet" or s.stream is None or not s.direction:
            continue
        if s.states is not None:
            last[s.stream] = s
        tally = sent.setdefault(s.stream, {})
        n_bytes, n = tally.get(s.direction, (0, 0))
        tally[s.direction] = (n_bytes + s.payload_len, n + 1)
    for key, s in list(last.items())[:MAX_STREAMS]:
        assert s.states is not None
        states = ", ".join(f"{lab.get(r, r)} {st}" for r, st in zip((s.left_role, s.right_role), s.states,
                                                                    strict=True))
        yield words["ended"].format(stream=_stream_name(key, lab), states=states)
    by_stream = {st.key: st for st in _streams(steps)}
    for key, tally in list(sent.items())[:MAX_STREAMS]:
        st = by_stream.get(key)
        if st is None or not any(b for b, _ in tally.values()):
            continue  # no data: the states above say it all
        parts = []
        for direction, role in ((1, st.left_role), (-1, st.right_role)):
            if direction in tally:
                n_bytes, n = tally[direction]
                tpl = "bytes_part1" if n == 1 else "bytes_part"
                parts.append(words[tpl].format(who=lab.get(role, role), bytes=n_bytes, n=n))
        yield words["bytes"].format(stream=_stream_name(key, lab), parts="; ".join(parts))
