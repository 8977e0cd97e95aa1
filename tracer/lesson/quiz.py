"""Predict, then reveal: the questions of ``--quiz``, drawn from the trace itself.

Before a packet is shown the class is asked who sends what next and why (a call,
or the kernel on its own); before a failed call is shown, which errno it returns.
The right answer is the step itself.  The wrong ones come from the same trace:
the same packet blamed on the wrong actor (the classic "accept() sends the
SYN-ACK"), the same flags from the other side, and the other packets of the
lesson; errnos come from the trace's other failures, then from the errnos that
call can plausibly return.  Choices are shuffled with a seed fixed per step, so a
lesson asks the same question every time it is shown.  Pure: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tracer.i18n import Words
from tracer.i18n.calls import same_as
from tracer.lesson.steps import Lesson, Step

# Errnos each call can plausibly fail with, for distractors when the trace has too few.
PLAUSIBLE_ERRNOS: dict[str, tuple[str, ...]] = {
    "connect": ("ECONNREFUSED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL"),
    "send": ("EPIPE", "ECONNRESET", "EAGAIN", "ENOTCONN"),
    "recv": ("ECONNRESET", "ETIMEDOUT", "EAGAIN", "ENOTCONN"),
    "recvfrom": ("ECONNREFUSED", "EAGAIN", "ETIMEDOUT", "EHOSTUNREACH"),
    "sendto": ("ECONNREFUSED", "EMSGSIZE", "EHOSTUNREACH", "ENETUNREACH"),
    "bind": ("EADDRINUSE", "EACCES", "EADDRNOTAVAIL", "EINVAL"),
    "accept": ("EAGAIN", "EINVAL", "ECONNABORTED", "EMFILE"),
    "listen": ("EADDRINUSE", "EINVAL", "EOPNOTSUPP"),
}
_SUCCESS = "success"  # the choice "the call succeeds", in the errno questions

WORDS = Words("quiz.")  # questions and choices: catalogue keys quiz.*


@dataclass(frozen=True)
class Question:
    """A question about step ``step``: ``choices[answer]`` is right.

    ``when`` is "before" (predict the step: its packet, or a failed call's errno) or
    "after" (the packet was shown; which errno does the call it ends return?).
    """

    step: int
    when: str
    text: str
    choices: tuple[str, ...]
    answer: int


def _who(role: str, lang: str) -> str:
    return WORDS[lang].get(role, role or "?")


def _what(step: Step) -> str:
    return step.flags if step.flags else step.label.split(" len=")[0]


def packet_choice(actor: str, by: str, call: str, what: str, lang: str) -> str:
    """How a (sender, cause, packet) guess reads as a choice."""
    w = WORDS[lang]
    who = w.get(actor, actor or "?")
    if by == "kernel":
        return w["kernel_sends"].format(who=who, what=what)
    if by == "call" and call:
        return w["call_sends"].format(who=who, call=call, what=what)
    return w["sends"].format(who=who, what=what)


def asks(step: Step) -> bool:
    """Whether the quiz asks before this step: every packet between two lanes, and
    every failed call (its errno).  Calls that succeed are context, shown as they are."""
    if step.kind == "packet":
        return step.direction != 0 and step.by in ("call", "kernel")
    return step.kind == "call" and step.errno is not None


def questions(lesson: Lesson, index: int) -> list[Question]:
    """The questions about step ``index``, in the order they are asked (none, one
    before it, and one after it for each call its packet made fail)."""
    step = lesson.steps[index]
    lang = lesson.lang
    out: list[Question] = []
    if asks(step):
        if step.kind == "packet":
            right, wrong = _packet_options(lesson, step)
            out.append(_shuffled(lesson, index, "before", WORDS[lang]["q_packet"], right, wrong))
        else:
            right, wrong = _errno_options(lesson, step.call, str(step.errno))
            text = WORDS[lang]["q_errno"].format(who=_who(step.actor, lang), call=step.call)
            out.append(_shuffled(lesson, index, "before", text, right, wrong))
    for k, (actor, call, errno) in enumerate(step.fails):
        right, wrong = _errno_options(lesson, call, errno)
        text = WORDS[lang]["q_errno"].format(who=_who(actor, lang), call=call)
        out.append(_shuffled(lesson, index, f"after{k}" if k else "after", text, right, wrong))
    return out


def _shuffled(lesson: Lesson, index: int, when: str, text: str, right: str, wrong: list[str]) -> Question:
    options = [right, *wrong[:3]]
    rng = random.Random(f"{index}/{when}/{len(lesson.steps)}")
    rng.shuffle(options)
    return Question(index, when, text, tuple(options), options.index(right))


def _packet_options(lesson: Lesson, step: Step) -> tuple[str, list[str]]:
    """The right choice, and wrong ones of three kinds taken in turn: the right packet
    blamed on the wrong cause, sent by the other side, and the lesson's other packets."""
    lang = lesson.lang
    what = _what(step)
    right = packet_choice(step.actor, step.by, step.call, what, lang)
    other_side = step.right_role if step.actor == step.left_role else step.left_role
    if step.by == "kernel":
        blamed = [packet_choice(step.actor, "call", c, what, lang) for c in _calls_of(lesson, step.actor)]
    else:
        blamed = [packet_choice(step.actor, "kernel", "", what, lang)]
    mirrored = [packet_choice(other_side, step.by, step.call if step.by == "call" else "", what, lang)]
    others = sorted((s for s in lesson.steps if s.kind == "packet" and s.direction != 0 and s is not step),
                    key=lambda s: abs(s.index - step.index))
    nearby = [packet_choice(s.actor, s.by, s.call, _what(s), lang) for s in others]
    kinds = [_distinct(right, k) for k in (blamed, mirrored, nearby)]
    mixed: list[str] = []
    while any(kinds):
        for k in kinds:
            if k:
                mixed.append(k.pop(0))
    return right, _distinct(right, mixed)


def _calls_of(lesson: Lesson, actor: str) -> list[str]:
    """The calls an actor makes in the lesson, the ones that send nothing first
    (accept(), listen(), recv(): the misconceptions worth testing)."""
    silent = ("accept()", "recv()", "recvfrom()", "listen()", "bind()")
    seen: list[str] = []
    for s in lesson.steps:
        if s.kind == "call" and s.actor == actor and s.call not in seen and s.call != "socket()":
            seen.append(s.call)
    return sorted(seen, key=lambda c: (silent.index(c) if c in silent else len(silent), seen.index(c)))


def _errno_options(lesson: Lesson, call: str, errno: str) -> tuple[str, list[str]]:
    w = WORDS[lesson.lang]
    right = w["fails"].format(errno=errno)
    name = same_as(call.rstrip("()"))
    in_trace = [s.errno for s in lesson.steps if s.errno is not None]
    in_trace += [e for s in lesson.steps for (_, _, e) in s.fails]
    pool = [e for e in (*in_trace, *PLAUSIBLE_ERRNOS.get(name, ())) if e != errno]
    # "It succeeds" is the most tempting wrong answer; then the trace's errnos, then the pool's.
    return right, _distinct(right, [w["succeeds"], *(w["fails"].format(errno=e) for e in pool)])


def _distinct(right: str, candidates: list[str]) -> list[str]:
    out: list[str] = []
    for c in candidates:
        if c != right and c not in out:
            out.append(c)
    return out


@dataclass
class Score:
    """The class's answers: (step, when) -> the choice made (None: revealed unanswered)."""

    answers: dict[tuple[int, str], int | None] = field(default_factory=dict)
    right: int = 0

    def record(self, q: Question, choice: int | None) -> bool:
        """Record an answer (once per question); whether it was right."""
        ok = choice == q.answer
        if (q.step, q.when) not in self.answers:
            self.answers[q.step, q.when] = choice
            self.right += ok
        return ok

    @property
    def asked(self) -> int:
        return len(self.answers)

    @property
    def skipped(self) -> int:
        return sum(1 for v in self.answers.values() if v is None)
