"""The lesson model and the quiz, on real captures and on real runs of the catalogue.

Oracles: tshark (each packet step's flags, relative seq/ack and length, per frame),
the recorded socket calls (every call that caused no packet is a step; each failed
call's errno), and the trace's own packet-to-call links.  The quiz is checked for
what makes it fair: the right choice describes what really happened, no two choices
read alike, and the same lesson asks the same questions every time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CAPTURES, corpus_files, tshark_fields
from tracer.core.model import SocketCall
from tracer.i18n.calls import explain_call
from tracer.lesson.quiz import PLAUSIBLE_ERRNOS, WORDS, Score, asks, packet_choice, questions
from tracer.lesson.steps import Lesson, build_lesson
from tracer.loading import load

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcapng"
LIVE = ("handshake", "refused", "udp-unreachable", "synack-lost", "rst-linger")
TSHARK_FLAGS = {0x01: "FIN", 0x02: "SYN", 0x04: "RST", 0x08: "PSH", 0x10: "ACK", 0x20: "URG"}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def runs(scenario_run: Callable[[str], Path]) -> dict[str, Path]:
    """One real run of each scenario in the lab, shared by the session's tests."""
    return {name: scenario_run(name) for name in LIVE}


def _captures(runs: dict[str, Path]) -> list[Path]:
    return [HELLO, *runs.values(), *corpus_files()[:6]]


def _flag_names(bits: int) -> str:
    return ",".join(name for bit, name in TSHARK_FLAGS.items() if bits & bit)


@pytest.mark.lab
def test_packet_steps_match_tshark_frame_by_frame(runs: dict[str, Path]) -> None:
    for path in _captures(runs):
        trace, analysis = load(str(path))
        lesson = build_lesson(trace, analysis, "en")
        fields = tshark_fields(path, "frame.number", "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len",
                               "udp.length", extra=("-Y", "ip or ipv6"))
        by_frame = {int(r[0]): r for r in fields}
        packets = [s for s in lesson.steps if s.kind == "packet"]
        assert [s.packet for s in packets] == list(range(len(trace.packets))), path.name
        for s in packets:
            assert s.packet is not None
            row = by_frame.get(s.packet + 1)
            if row is None:
                continue
            if row[5]:
                # UDP (outermost: a tunnel's inner TCP is not tracer's packet): payload length.
                if s.flags == "" and s.label.startswith("UDP"):
                    assert s.label == f"UDP len={int(row[5].split(',')[0]) - 8}", (path.name, s.label, row)
                continue
            if not row[1]:
                continue  # neither TCP nor UDP (ICMP, ARP): no flags
            flags = _flag_names(int(row[1], 16))
            assert s.flags == flags, (path.name, s.packet + 1)
            assert f"seq={row[2]}" in s.label and f"len={row[4]}" in s.label, (path.name, s.label, row)
            if int(row[1], 16) & 0x10:
                assert f"ack={row[3]}" in s.label, (path.name, s.label, row)


@pytest.mark.lab
def test_call_steps_are_the_calls_that_sent_nothing_or_returned_in_time_order(runs: dict[str, Path]) -> None:
    for path in (HELLO, *runs.values()):
        trace, analysis = load(str(path))
        lesson = build_lesson(trace, analysis, "en")
        on_packets = {int(c) for c in analysis.cause_call_id if int(c) >= 0}
        # ... and the return of connect() and of a call whose errno no packet explains (issue 12).
        back = {c.id for c in trace.calls if c.id in on_packets and c.t_exit_ns is not None
                and c.id not in analysis.error_links and (c.call in ("connect", "connect_ex") or c.error)}
        expected = sorted((c for c in trace.calls if c.id not in on_packets or c.id in back),
                          key=lambda c: (c.t_ns, c.id))
        got = [s for s in lesson.steps if s.kind == "call"]
        want = [(f"{c.call}()", c.t_ns, c.error, c.id in back) for c in expected]
        assert [(s.call, s.t_ns, s.errno, s.sent) for s in got] == want
        # Steps are in time order (the ladder's rule: a call goes before the first packet after it).
        times = [s.t_ns for s in lesson.steps]
        packet_times = [s.t_ns for s in lesson.steps if s.kind == "packet"]
        assert packet_times == sorted(packet_times) or path.name.startswith("zeek")
        assert len(times) == len(trace.packets) + len(expected) + sum(1 for w in trace.warnings)


@pytest.mark.lab
def test_both_languages_tell_the_same_steps(runs: dict[str, Path]) -> None:
    trace, analysis = load(str(runs["handshake"]))
    en, zh = build_lesson(trace, analysis, "en"), build_lesson(trace, analysis, "zh")
    assert len(en) == len(zh)
    for a, b in zip(en.steps, zh.steps, strict=True):
        assert (a.kind, a.packet, a.direction, a.actor, a.flags, a.by, a.call, a.state_codes) == \
               (b.kind, b.packet, b.direction, b.actor, b.flags, b.by, b.call, b.state_codes)
        assert CJK.search(b.sentence), b.sentence
        assert not CJK.search(a.sentence), a.sentence
        assert "{" not in a.sentence + b.sentence


@pytest.mark.lab
def test_the_handshake_lesson_says_who_sent_what(runs: dict[str, Path]) -> None:
    """The facts the course diagrams get wrong, read off a real run: the SYN-ACK is the
    server kernel's, before accept() returns; accept() itself is a step that sends nothing."""
    trace, analysis = load(str(runs["handshake"]))
    lesson = build_lesson(trace, analysis, "en")
    synack = next(s for s in lesson.steps if s.flags == "SYN,ACK")
    accept = next(s for s in lesson.steps if s.call == "accept()")
    assert synack.by == "kernel" and synack.actor == "server" and synack.direction == -1
    assert accept.kind == "call" and accept.index > synack.index
    syn = next(s for s in lesson.steps if s.flags == "SYN")
    assert syn.by == "call" and syn.call == "connect()" and syn.actor == "client" and syn.direction == 1
    assert syn.source_code and "connect" in syn.source_code
    # States after the handshake's last ACK: both ends ESTABLISHED (the analysis' codes).
    last_ack = lesson.steps[synack.index + 1]
    assert last_ack.states == ("ESTABLISHED", "ESTABLISHED")


@pytest.mark.lab
def test_every_call_gets_a_sentence_in_both_languages(runs: dict[str, Path]) -> None:
    calls: list[SocketCall] = []
    for path in (HELLO, *runs.values()):
        trace, _ = load(str(path))
        calls += trace.calls
    names = {c.call for c in calls}
    assert {"socket", "bind", "listen", "accept", "connect", "recv", "close"} <= names
    for c in calls:
        en, zh = explain_call(c, "en"), explain_call(c, "zh")
        assert f"{c.call}()" in en or c.call in ("connect_ex", "sendall", "recv_into", "recvfrom_into")
        assert CJK.search(zh) and "{" not in en + zh
        if c.error:
            assert c.error in en and c.error in zh


def _fair(lesson: Lesson) -> int:
    """Check every question of a lesson; the number asked."""
    n = 0
    for i, step in enumerate(lesson.steps):
        qs = questions(lesson, i)
        assert bool([q for q in qs if q.when == "before"]) == asks(step)
        for q in qs:
            n += 1
            assert 2 <= len(q.choices) <= 4
            assert len(set(q.choices)) == len(q.choices), q.choices
            right = q.choices[q.answer]
            if q.when == "before" and step.kind == "packet":
                what = step.flags or step.label.split(" len=")[0]
                assert right == packet_choice(step.actor, step.by, step.call, what, lesson.lang)
            elif q.when == "before":
                assert step.errno is not None and step.errno in right
            else:
                assert any(errno in right for _, _, errno in step.fails)
            assert questions(lesson, i) == qs  # the same question every time
    return n


@pytest.mark.lab
def test_quiz_questions_are_fair_on_real_traces(runs: dict[str, Path]) -> None:
    asked = 0
    for path in _captures(runs):
        trace, analysis = load(str(path))
        for lang in ("en", "zh"):
            asked += _fair(build_lesson(trace, analysis, lang))
    assert asked > 50


@pytest.mark.lab
def test_quiz_asks_the_classic_misconception_and_the_errno(runs: dict[str, Path]) -> None:
    trace, analysis = load(str(runs["handshake"]))
    lesson = build_lesson(trace, analysis, "en")
    synack = next(s for s in lesson.steps if s.flags == "SYN,ACK")
    q = questions(lesson, synack.index)[0]
    # "The server's accept() sends the SYN-ACK" is offered, and is wrong.
    wrong = packet_choice("server", "call", "accept()", "SYN,ACK", "en")
    assert wrong in q.choices and q.choices.index(wrong) != q.answer

    trace, analysis = load(str(runs["refused"]))
    lesson = build_lesson(trace, analysis, "zh")
    failed = [c for c in trace.calls if c.error is not None]
    assert failed and failed[0].error == "ECONNREFUSED"
    rst = next(s for s in lesson.steps if "RST" in s.flags)
    after = [q for q in questions(lesson, rst.index) if q.when.startswith("after")]
    assert after, "the RST that made connect() fail is followed by the errno question"
    q = after[0]
    assert "ECONNREFUSED" in q.choices[q.answer] and WORDS["zh"]["succeeds"] in q.choices
    assert all(any(e in c for e in PLAUSIBLE_ERRNOS["connect"]) or c == WORDS["zh"]["succeeds"]
               for c in q.choices)


def test_score_counts_each_question_once() -> None:
    trace, analysis = load(str(HELLO))
    lesson = build_lesson(trace, analysis, "en")
    qs = [q for i in range(len(lesson)) for q in questions(lesson, i)]
    score = Score()
    assert score.record(qs[0], qs[0].answer)
    assert not score.record(qs[1], (qs[1].answer + 1) % len(qs[1].choices))
    assert not score.record(qs[2], None)
    score.record(qs[0], None)  # asked again (stepping back): the first answer stands
    assert (score.right, score.asked, score.skipped) == (1, 3, 1)
