"""A lesson as a Mermaid ``sequenceDiagram``, for slides and notes.

One participant per endpoint (``ip:port``; clients on the left, servers on the
right, in the order they first appear), one message per packet, a ``Note`` for
each socket call that sent nothing, for the TCP states a packet changed (one
note across both lanes when both changed) and for each trace warning (across
every lane).  Arrows say who sent a packet: ``->>`` a socket call, ``-->>`` the
kernel on its own; an RST or an ICMP error ends in a cross (``-x``/``--x``) and a
retransmission is an open arrow (``-)``/``--)``); a packet the receiving kernel
dropped ends in a cross too, with ``✗ REASON`` in its message and a note over the
receiver saying it was dropped.  A message reads
``#NO FLAGS seq= ack= len=`` and then its cause, as the ladder does.

Mermaid's parser stops a message at ``#``, ``;`` and a newline and reads ``%%{``
as a directive, and its renderer reads ``<``/``>`` as HTML; every text therefore
goes through ``escape``, which writes such characters as Mermaid entity codes
(``#35;``, ``#59;``, ``#lt;``: see "Entity codes to escape characters" in the
sequence diagram syntax).  Words such as ``end`` or ``alt`` are keywords only at
the start of a statement, never after the colon, so they need nothing.

Mermaid refuses a diagram longer than its ``maxTextSize`` (50,000 characters by
default: 400 to 700 steps here, fewer when there are many lanes) and draws an
error message instead; with the limit raised, mermaid-cli draws 2,000 messages in
about 7 s (``bench/export.py --mmdc``).  ``max_steps`` cuts the diagram with a
closing note saying how many steps were left out.
"""

from __future__ import annotations

from tracer.core.model import AnalysisFlag, TcpState
from tracer.i18n import Words, lang_of
from tracer.ladder.labels import LABELS, flag_names
from tracer.ladder.text import clip, wrap_cut
from tracer.lesson.steps import Lesson, Step

# Characters Mermaid would read as syntax or markup, as its entity codes.
_ENTITIES = {"#": "#35;", ";": "#59;", ":": "#58;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
             "%": "#37;", '"': "#quot;"}
_TRANS = str.maketrans({**_ENTITIES, "\n": " ", "\r": " ", "\t": " "})

MESSAGE_WIDTH = 100  # columns: longer message texts are cut with "…"
NOTE_WIDTH = 64  # columns per line of a note; a note has at most NOTE_LINES lines
NOTE_LINES = 4

_RETRANSMISSIONS = (AnalysisFlag.RETRANSMISSION, AnalysisFlag.FAST_RETRANSMISSION,
                    AnalysisFlag.SPURIOUS_RETRANSMISSION)
_LEFT_ROLES = ("client", "a")

_WORDS = Words("mermaid.")  # legend and notes: catalogue keys mermaid.*


def escape(text: str) -> str:
    """``text`` safe inside a Mermaid label: one line, syntax characters as entity codes."""
    return text.translate(_TRANS)


def render_mermaid(lesson: Lesson, max_steps: int | None = None) -> str:
    """The lesson as Mermaid source (ends with a newline).

    ``max_steps`` keeps only the first steps (a closing note counts the rest);
    ``None`` keeps them all, however many.
    """
    lang = lang_of(lesson.lang)
    words, lab = _WORDS[lang], LABELS[lang]
    steps = lesson.steps if max_steps is None else lesson.steps[:max(0, max_steps)]
    parts = _participants(steps, lab)
    ids = {ep: f"p{k}" for k, (ep, _) in enumerate(parts)}
    out = ["sequenceDiagram", words["steps"].format(title=_comment(lesson.title), n=len(lesson.steps)),
           words["legend"]]
    if lesson.title:
        out.append(f"    title {escape(lesson.title)}")
    if not parts:  # nothing to draw lanes for: notes still need one participant
        ids[""] = "p0"
        parts = [("", words["capture"])]
    for ep, alias in parts:
        out.append(f"    participant {ids[ep]} as {escape(alias)}")
    every = _over(ids[parts[0][0]], ids[parts[-1][0]])
    lane_of = _call_lanes(steps, ids)
    retrans = {flag_names(lang)[f] for f in _RETRANSMISSIONS}
    for step in steps:
        if step.kind == "packet":
            out.extend(_packet(step, ids, lab, lang, retrans, every))
        elif step.kind == "call":
            lane = lane_of.get(step.index, every)
            out.append(f"    Note over {lane}: {_note(_call_label(step, lab))}")
        else:
            out.append(f"    Note over {every}: {_note(lab['warning'].format(msg=step.label))}")
    if len(steps) < len(lesson.steps):
        out.append(f"    Note over {every}: {_note(words['more'].format(n=len(lesson.steps) - len(steps)))}")
    return "\n".join(out) + "\n"


def _comment(text: str) -> str:
    return " ".join(text.split())


def _over(first: str, last: str) -> str:
    return first if first == last else f"{first},{last}"


def _participants(steps: tuple[Step, ...], lab: dict[str, str]) -> list[tuple[str, str]]:
    """(endpoint, alias) per lane: left-hand roles first, each side in order of appearance."""
    left: dict[str, str] = {}
    right: dict[str, str] = {}
    for s in steps:
        if s.stream is None:
            continue
        for ep, role in ((s.left, s.left_role), (s.right, s.right_role)):
            if ep and ep not in left and ep not in right:
                (left if role in _LEFT_ROLES else right)[ep] = f"{lab.get(role, role)} {ep}"
    return [*left.items(), *right.items()]


def _call_lanes(steps: tuple[Step, ...], ids: dict[str, str]) -> dict[int, str]:
    """Step index -> the lane a call's note goes over.

    A call of a known stream goes over its side's endpoint.  A call without one
    (socket() before connect(), a listener's setup) goes over the lane its side
    uses next, else the lane it used last."""
    out: dict[int, str] = {}
    pending: dict[str, list[int]] = {}
    last: dict[str, str] = {}

    def lane(s: Step) -> str | None:
        if s.stream is None:
            return None
        if s.actor == s.left_role:
            return ids.get(s.left)
        if s.actor == s.right_role:
            return ids.get(s.right)
        # Lanes "a"/"b" (the capture does not say who is the client): as the ladder draws them.
        return ids.get(s.left if s.actor == "client" else s.right)

    for s in steps:
        if not s.actor:
            continue
        here = lane(s)
        if here is None:
            if s.kind == "call":
                pending.setdefault(s.actor, []).append(s.index)
            continue
        for k in pending.pop(s.actor, []):
            out[k] = here
        last[s.actor] = here
        if s.kind == "call":
            out[s.index] = here
    for actor, waiting in pending.items():
        for k in waiting:
            if actor in last:
                out[k] = last[actor]
    return out


def _call_label(step: Step, lab: dict[str, str]) -> str:
    """A call's label without its side's name: the note already stands on that lane."""
    who = lab.get(step.actor, step.actor)
    return step.label[len(who) + 1:] if who and step.label.startswith(who + " ") else step.label


def _packet(step: Step, ids: dict[str, str], lab: dict[str, str], lang: str, retrans: set[str],
            every: str) -> list[str]:
    text = _message(step, lab)
    left, right = ids.get(step.left), ids.get(step.right)
    if step.stream is None or left is None or right is None:
        return [f"    Note over {every}: {_note(text)}"]
    if step.direction:
        src, dst = (left, right) if step.direction > 0 else (right, left)
    elif step.actor in (step.left_role, step.right_role):  # an ICMP error about this stream
        src, dst = (left, right) if step.actor == step.left_role else (right, left)
    else:
        return [f"    Note over {left},{right}: {_note(text)}"]
    line = "-" if step.by == "call" else "--"
    if step.dropped or "RST" in step.flags.split(",") or (not step.flags and not step.direction):
        line += "x"
    elif retrans.intersection(step.analysis):
        line += ")"
    else:
        line += ">>"
    out = [f"    {src}{line}{dst}: {escape(clip(text, MESSAGE_WIDTH))}"]
    if step.dropped:  # the receiving kernel discarded it: say so over the receiver's lane
        out.append(f"    Note over {dst}: {_note('✗ ' + step.drop_words)}")
    note = _state_note(step, lab, left, right)
    if note:
        out.append(note)
    return out


def _message(step: Step, lab: dict[str, str]) -> str:
    """``#NO label`` and what sent the packet, as the ladder says it."""
    parts = [f"#{step.packet + 1 if step.packet is not None else '?'} {step.label}"]
    if step.dropped:
        parts.append(f"✗ {step.dropped}")
    if step.by == "call" and step.call:
        parts.append(("~" if step.inferred else "") + step.call)
    elif step.by == "kernel":
        parts.append(f"{'~' if step.inferred else ''}{lab['kernel']}: {step.cause}")
    elif step.reason != "unknown" and step.cause:
        parts.append(step.cause)
    if step.analysis:
        parts.append("[" + ", ".join(step.analysis) + "]")
    return " · ".join(parts)


def _state_note(step: Step, lab: dict[str, str], left: str, right: str) -> str | None:
    if step.states is None or step.state_codes is None:
        return None
    shown = [k for k in (0, 1) if step.changed[k] and step.state_codes[k] != TcpState.UNKNOWN]
    if not shown:
        return None
    roles = (step.left_role, step.right_role)
    text = " · ".join(f"{lab.get(roles[k], roles[k])} {step.states[k]}" for k in shown)
    lanes = _over(left, right) if len(shown) == 2 else (left if shown[0] == 0 else right)
    return f"    Note over {lanes}: {_note(text)}"


def _note(text: str) -> str:
    """A note's text: wrapped into a few short lines (``<br/>``), each escaped."""
    lines = wrap_cut(" ".join(text.split()), NOTE_WIDTH) or [""]
    if len(lines) > NOTE_LINES:
        lines = [*lines[:NOTE_LINES - 1], clip(" ".join(lines[NOTE_LINES - 1:]), NOTE_WIDTH)]
    return "<br/>".join(escape(line) for line in lines)
