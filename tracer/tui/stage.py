"""What presenter mode draws: one step, large and uncluttered, as rich ``Text``.

Rich only, no Textual: the stage is a pure function of (lesson, frame, width), so
it is tested on its own and the screen stays a thin shell around it.  A frame is
one moment of the lesson: a step shown, or a quiz question about it (before the
step, its arrow is hidden and the states are those before it).

Layout, top to bottom: the two lanes (role and address), both TCP states (a
change written OLD → NEW), the gap since the previous step when it is long (the
wait itself is never replayed: idle gaps are compressed to one line), the call or
the kernel behind the packet on the sender's side, a thick arrow with the
packet's label (stopping short at ✗ when the receiving kernel dropped it, the reason
in words under the cause), the cause in words, then the one-sentence explanation.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from tracer.i18n import Words
from tracer.ladder.labels import LABELS
from tracer.ladder.text import text_width, wrap
from tracer.lesson.quiz import Question
from tracer.lesson.steps import Lesson, Step
from tracer.tui.bigtext import big_lines, can_draw

CLIENT_STYLE = "bold black on cyan"
SERVER_STYLE = "bold black on magenta"
LANE_COLOUR = {"client": "cyan", "server": "magenta", "a": "cyan", "b": "magenta"}
GAP_NS = 200_000_000  # a pause this long is named (and compressed) between steps
MARGIN = 2

STAGE_WORDS = Words("stage.")  # the stage's words: catalogue keys stage.*


@dataclass(frozen=True)
class Frame:
    """One moment of a lesson: step ``step`` shown (``revealed``) or not yet, with the
    question asked at that moment, if any."""

    step: int
    revealed: bool
    question: Question | None = None


def frames_of(lesson: Lesson, quiz: bool) -> list[Frame]:
    """The lesson's frames in order: one per step; with ``quiz``, a question before a
    step it asks about, and one after it for each call its packet makes fail."""
    from tracer.lesson.quiz import questions

    out: list[Frame] = []
    for i in range(len(lesson.steps)):
        qs = questions(lesson, i) if quiz else []
        before = [q for q in qs if q.when == "before"]
        if before:
            out.append(Frame(i, False, before[0]))
        out.append(Frame(i, True))
        out += [Frame(i, True, q) for q in qs if q.when != "before"]
    return out


def sw(lang: str) -> dict[str, str]:
    return STAGE_WORDS[lang]


def duration(ns: int, lang: str) -> str:
    """A gap in words, coarser than the ladder's (a class needs "0.4 s", not "433.6 ms")."""
    w = LABELS[lang]
    if ns >= 1_000_000_000:
        return w["s"].format(v=f"{ns / 1e9:.1f}" if ns < 10e9 else f"{ns / 1e9:.0f}")
    return w["ms"].format(v=f"{ns / 1e6:.0f}")


def states_before(lesson: Lesson, index: int) -> tuple[str, str] | None:
    """Both TCP states just before step ``index`` (of its stream), if known."""
    step = lesson.steps[index]
    for s in reversed(lesson.steps[:index]):
        if s.stream == step.stream and s.states is not None:
            return s.states
    return None


def _line(left: Text | str, right: Text | str, width: int) -> Text:
    """``left`` at the left margin and ``right`` flush with the right one."""
    lt = left if isinstance(left, Text) else Text(left)
    rt = right if isinstance(right, Text) else Text(right)
    gap = max(1, width - 2 * MARGIN - text_width(lt.plain) - text_width(rt.plain))
    return Text(" " * MARGIN) + lt + Text(" " * gap) + rt


def _centre(t: Text | str, width: int) -> Text:
    tt = t if isinstance(t, Text) else Text(t)
    pad = max(0, (width - text_width(tt.plain)) // 2)
    return Text(" " * pad) + tt


def _role(role: str, lang: str) -> Text:
    style = CLIENT_STYLE if role in ("client", "a") else SERVER_STYLE
    return Text(f" {sw(lang).get(role, role.upper())} ", style=style)


def _state(now: str | None, before: str | None, changed: bool) -> Text:
    if now is None:
        return Text("")
    if changed and before is not None and before != now:
        return Text.assemble((before, "dim"), (" → ", "dim"), (now, "bold yellow"))
    return Text(now, style="bold yellow" if changed else "bold")


def arrow(step: Step, width: int) -> list[Text]:
    """The thick arrow between the lane rails, its label in a box on the shaft: three
    lines, coloured by the sender (big enough to read from the back of a room)."""
    inner = max(12, width - 2 * MARGIN - 2)
    label = step.label
    colour = LANE_COLOUR.get(step.actor, "white")
    box = text_width(label) + 4  # "┫ " + label + " ┣"
    if box > inner - 6:
        label = label[: max(1, inner - 12)]
        box = text_width(label) + 4
    room = inner - box - 1  # one cell for the head
    left = room // 2
    right = room - left
    short = min(3, right - 1, left - 1) if step.dropped else 0
    if short > 0:  # the receiving kernel dropped it: the shaft stops short of its rail with ✗
        if step.direction < 0:
            head, tail = (" " * short + "✗" + "━" * (left - short), "━" * right)
        else:
            head, tail = ("━" * left, "━" * (right - short) + "✗" + " " * short)
    elif step.direction < 0:
        head, tail = ("◀" + "━" * left, "━" * right)
    else:
        head, tail = ("━" * left, "━" * right + "▶")
    pre = Text(" " * MARGIN) + Text("┃", style="dim")
    post = Text("┃", style="dim")
    off = " " * (text_width(head))
    top = pre + Text(off + "┏" + "━" * (box - 2) + "┓" + " " * text_width(tail), style=colour) + post
    mid = pre + Text.assemble((head, f"bold {colour}"), ("┫ ", colour), (label, "bold"), (" ┣", colour),
                              (tail, f"bold {colour}")) + post
    bottom = pre + Text(off + "┗" + "━" * (box - 2) + "┛" + " " * text_width(tail), style=colour) + post
    return [top, mid, bottom]


def _rails(inner: Text, width: int, at_right: bool) -> Text:
    """A line between the two lane rails with ``inner`` next to one of them."""
    room = max(0, width - 2 * MARGIN - 2)
    pad = max(0, room - text_width(inner.plain) - 2)
    mid = Text(" ") + inner + Text(" ") if not at_right else Text(" " * pad) + Text(" ") + inner + Text(" ")
    tail = max(0, room - text_width(mid.plain))
    return Text(" " * MARGIN) + Text("┃", style="dim") + mid + Text(" " * tail) + Text("┃", style="dim")


def _big(word: str, colour: str, width: int) -> list[Text]:
    """``word`` three lines high and centred, if it can be drawn and fits."""
    if not word or not can_draw(word):
        return []
    lines = big_lines(word)
    if len(lines[0]) > width - 2 * MARGIN - 4:
        return []
    return [_centre(Text(line, style=f"bold {colour}"), width) for line in lines]


def big_word(step: Step) -> str:
    """What the stage writes in big letters: the packet's flags (or its protocol), or the call."""
    if step.kind == "packet":
        return step.flags or step.label.split(" ")[0]
    return step.call if step.kind == "call" else ""


def render_stage(lesson: Lesson, frame: Frame, width: int, *, chosen: int | None = None,
                 answered: bool = False, big: bool = False) -> Text:
    """The stage for ``frame`` at ``width`` columns (see the module docstring).

    ``answered`` tells whether the frame's question was answered (or its answer shown);
    ``chosen`` is the choice the class made, if it made one; ``big`` (a tall screen)
    adds the packet's flags or the call's name in big letters."""
    lang = lesson.lang
    w = sw(lang)
    step = lesson.steps[frame.step]
    lines: list[Text] = []
    if step.left or step.right:
        lines.append(_line(Text.assemble(_role(step.left_role, lang), " ", (step.left, "bold")),
                           Text.assemble((step.right, "bold"), " ", _role(step.right_role, lang)), width))
    shown = frame.revealed
    before = states_before(lesson, frame.step)
    if shown and step.states is not None:
        lines.append(_line(_state(step.states[0], before[0] if before else None, step.changed[0]),
                           _state(step.states[1], before[1] if before else None, step.changed[1]), width))
    elif before is not None:
        lines.append(_line(Text(before[0], style="bold"), Text(before[1], style="bold"), width))
    else:
        lines.append(Text(""))
    lines.append(Text(""))
    if step.gap_ns >= GAP_NS and frame.step > 0:
        later = w["later"].format(t=duration(step.gap_ns, lang))
        lines.append(_centre(Text(later, style="italic dim"), width))
    else:
        lines.append(Text(""))
    at_right = step.actor == step.right_role
    if big and shown and step.kind in ("packet", "call"):
        lines += _big(big_word(step), LANE_COLOUR.get(step.actor, "white"), width)
    if not shown:
        lines += [Text(""), Text(""), _rails(Text("?", style="bold yellow"), width, False), Text(""),
                  Text("")]
    elif step.kind == "packet" and step.direction != 0:
        who = Text(step.call, style="bold reverse") if step.by == "call" and step.call else \
            Text(f"● {w['kernel']}", style="bold") if step.by == "kernel" else Text("")
        lines.append(_rails(who, width, step.direction < 0))
        lines += arrow(step, width)
        cause = Text(("~" if step.inferred else "") + step.cause, style="bold")
        if step.analysis:
            cause.append("  [" + ", ".join(step.analysis) + "]", style="bold red")
        lines.append(_centre(cause, width))
        if step.dropped and shown:
            lines.append(_centre(Text(f"✗ {step.drop_words}", style="bold white on red"), width))
    elif step.kind == "call":
        box = Text(f" {step.label} ", style="bold reverse" if step.errno is None else "bold white on red")
        lines += [Text(""), Text(""), _rails(box, width, at_right),
                  _rails(Text("" if step.sent else w["no_packet"], style="italic dim"), width, at_right),
                  Text("")]
    else:
        style = "bold white on red" if step.kind == "warning" else "bold"
        lines += [Text(""), Text(""), _centre(Text(f" {step.label} ", style=style), width), Text(""),
                  Text("")]
    lines.append(Text(""))
    if shown:
        for part in wrap(step.sentence, max(20, width - 2 * MARGIN - 4)):
            lines.append(Text(" " * (MARGIN + 2)) + Text(part))
        roles = LABELS[lang]
        for actor, call, errno in step.fails:
            text = w["fails"].format(who=roles.get(actor, actor), call=call, errno=errno)
            lines.append(Text(" " * (MARGIN + 2)) + Text(text, style="bold red"))
    if frame.question is not None:
        lines.append(Text(""))
        lines += _question(frame.question, width, lang, chosen, answered)
    return Text("\n").join(lines)


def _question(q: Question, width: int, lang: str, chosen: int | None, answered: bool) -> list[Text]:
    w = sw(lang)
    head = Text(f"{w['question']}: ", style="bold yellow") + Text(q.text, style="bold")
    lines = [Text(" " * MARGIN) + head]
    for k, choice in enumerate(q.choices):
        style = ""
        mark = "  "
        if answered and k == q.answer:
            style, mark = "bold green", "✔ "
        elif answered and k == chosen:
            style, mark = "bold red", "✘ "
        number = Text(f"{k + 1}) ", style="bold")
        lines.append(Text(" " * (MARGIN + 2) + mark) + number + Text(choice, style=style))
    if not answered:
        lines.append(Text(" " * (MARGIN + 2)) + Text(w["answer_keys"].format(n=len(q.choices)), style="dim"))
    elif chosen == q.answer:
        lines.append(Text(" " * (MARGIN + 2)) + Text(w["right"], style="bold green"))
    else:
        key = "unanswered" if chosen is None else "wrong"
        lines.append(Text(" " * (MARGIN + 2)) + Text(
            w[key].format(n=q.answer + 1, text=q.choices[q.answer]), style="bold yellow"))
    return lines


def timeline(lesson: Lesson, frame_step: int, width: int) -> Text:
    """One dot per step (the current one bright), a ┊ where a long idle gap was cut."""
    n = len(lesson.steps)
    room = max(10, width - 2 * MARGIN)
    cells: list[tuple[str, str]] = []
    for i, s in enumerate(lesson.steps):
        if i and s.gap_ns >= GAP_NS:
            cells.append(("┊", "dim"))
        mark = "◆" if s.kind == "packet" else "·" if s.kind == "call" else "!"
        if i < frame_step:
            style = "cyan"
        elif i == frame_step:
            mark, style = "◉", "bold yellow"
        else:
            style = "dim"
        cells.append((mark, style))
    cur = next(k for k, c in enumerate(cells) if c[0] == "◉") if 0 <= frame_step < n else 0
    if len(cells) > room:
        lo = max(0, min(cur - room // 2, len(cells) - room))
        cells = cells[lo:lo + room]
    return Text(" " * MARGIN) + Text.assemble(*cells)


def end_card(lesson: Lesson, width: int, right: int | None, asked: int, skipped: int) -> Text:
    """The last frame: the end, and the quiz score when there was a quiz."""
    w = sw(lesson.lang)
    lines = [Text(""), _centre(Text(w["the_end"], style="bold"), width),
             _centre(Text(w["steps_shown"].format(n=len(lesson.steps)), style="dim"), width)]
    if right is not None and asked:
        lines += [Text(""), _centre(Text(w["score"].format(right=right, asked=asked), style="bold yellow"),
                                    width)]
        pct = f"{100 * right / asked:.0f}%"
        lines.append(_centre(Text(pct, style="bold yellow"), width))
        if skipped:
            lines.append(_centre(Text(w["skipped"].format(n=skipped), style="dim"), width))
    return Text("\n").join(lines)
