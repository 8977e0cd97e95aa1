"""Presenter mode and the quiz, driven with Textual's Pilot as a teacher would.

What a step must show is read off the capture (``tracer.cli.load``) and the lesson
built from it; keys and words come from ``tracer.tui.text`` / ``tracer.tui.stage``.
A live ``--present`` run goes through the real lab (root; CI runs as root).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from conftest import CAPTURES
from tracer.cli import main
from tracer.errors import EXIT_USAGE
from tracer.lesson.quiz import questions
from tracer.lesson.steps import build_lesson
from tracer.loading import load
from tracer.tui.app import LiveSpec, TracerApp
from tracer.tui.present import PresenterScreen
from tracer.tui.stage import GAP_NS, STAGE_WORDS, duration, frames_of
from tracer.tui.text import WORDS

HELLO = CAPTURES / "hello.pcapng"


def drive(app: TracerApp, steps: Callable[[Pilot[int]], Awaitable[None]],
          size: tuple[int, int] = (120, 36)) -> None:
    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await _ready(app, pilot)
            await steps(pilot)
    asyncio.run(run())


async def _ready(app: TracerApp, pilot: Pilot[int]) -> None:
    for _ in range(200):
        screen = app.screen
        if isinstance(screen, PresenterScreen) and screen.lesson is not None:
            return
        if app.live is not None and not isinstance(screen, PresenterScreen):
            break
        await pilot.pause(0.02)


def _screen(app: TracerApp) -> PresenterScreen:
    screen = app.screen
    assert isinstance(screen, PresenterScreen), type(screen)
    return screen


def _shown(app: TracerApp) -> str:
    s = _screen(app)
    parts = ("p-header", "p-stage", "p-timeline")
    return "\n".join(str(s.query_one(f"#{i}", Static).render()) for i in parts)


def _app(path: Path = HELLO, mode: str = "present", lang: str = "en") -> TracerApp:
    trace, analysis = load(str(path))
    return TracerApp(trace=trace, analysis=analysis, lang=lang, source_name=path.name, present=mode)


def test_space_and_b_walk_the_lesson_one_step_at_a_time() -> None:
    trace, analysis = load(str(HELLO))
    lesson = build_lesson(trace, analysis, "en")
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        s = _screen(app)
        assert s.pos == 0
        for i, step in enumerate(lesson.steps):
            text = _shown(app)
            assert WORDS["en"]["p_step"].format(n=i + 1, total=len(lesson)) in text
            assert step.sentence.split()[0] in text
            if step.kind == "packet" and step.direction:
                assert step.label in text and step.cause in text
                if step.by == "call":
                    assert step.call in text
            if step.states is not None:
                assert step.states[0] in text and step.states[1] in text
            await pilot.press("space")
        # After the last step: the end card, and space stays there.
        assert STAGE_WORDS["en"]["the_end"] in _shown(app)
        await pilot.press("space")
        assert STAGE_WORDS["en"]["the_end"] in _shown(app)
        await pilot.press("b", "b")
        assert s.pos == len(lesson) - 2
        await pilot.press("g")
        assert s.pos == 0
        await pilot.press("G")
        assert s.pos == len(lesson)

    drive(app, steps)


def test_language_key_redraws_the_same_step_in_chinese() -> None:
    trace, analysis = load(str(HELLO))
    zh = build_lesson(trace, analysis, "zh")
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("space", "space", "space", "space", "space", "space")
        pos = _screen(app).pos
        await pilot.press("l")
        await app.workers.wait_for_complete()
        await pilot.pause()
        s = _screen(app)
        assert s.pos == pos and s.lesson is not None and s.lesson.lang == "zh"
        step = zh.steps[s.frames[pos].step]
        text = _shown(app)
        assert step.sentence[:12] in text
        assert WORDS["zh"]["p_step"].format(n=step.index + 1, total=len(zh)) in text
        assert app.lang == "zh"  # the ladder underneath follows

    drive(app, steps)


def test_escape_leaves_for_the_ladder_on_the_same_row() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("space", "space", "space", "space")
        step = _screen(app).frames[_screen(app).pos].step
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, PresenterScreen)
        assert app.ladder.cursor == step  # lesson steps are the ladder's rows

    drive(app, steps)


def test_play_moves_on_by_itself_at_its_own_pace() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        s = _screen(app)
        await pilot.press("minus")
        slower = s.pace
        await pilot.press("plus", "plus", "plus", "plus")
        assert s.pace < slower and s.pace == 1.0
        await pilot.press("p")
        await pilot.pause(2.3)
        # One step a second, whatever the capture's gaps were.
        assert 2 <= s.pos <= 3
        assert WORDS["en"]["p_playing"].format(pace="1") in _shown(app)
        await pilot.press("p")
        pos = s.pos
        await pilot.pause(1.2)
        assert s.pos == pos

    drive(app, steps)


def test_quiz_asks_then_reveals_and_keeps_the_score() -> None:
    trace, analysis = load(str(HELLO))
    lesson = build_lesson(trace, analysis, "en")
    frames = frames_of(lesson, quiz=True)
    asked = [f for f in frames if f.question is not None]
    assert asked
    app = _app(mode="quiz")

    async def steps(pilot: Pilot[int]) -> None:
        s = _screen(app)
        right = wrong = 0
        for k, f in enumerate(frames):
            assert s.pos == k
            if f.question is None:
                await pilot.press("space")
                continue
            q = f.question
            text = _shown(app)
            assert q.text in text and all(c in text for c in q.choices)
            if f.revealed is False:
                step = lesson.steps[f.step]
                assert step.label not in text  # not given away before the answer
            n = asked.index(f)
            if n % 3 == 0:
                await pilot.press(str(q.answer + 1))
                right += 1
                assert STAGE_WORDS["en"]["right"] in _shown(app)
            elif n % 3 == 1:
                await pilot.press(str((q.answer + 1) % len(q.choices) + 1))
                wrong += 1
                assert "✘" in _shown(app)
            else:
                await pilot.press("space")  # shows the answer unanswered
                assert STAGE_WORDS["en"]["unanswered"].split()[0] in _shown(app)
            assert WORDS["en"]["p_score"].format(right=right, asked=n + 1) in _shown(app)
            await pilot.press("space")
        end = _shown(app)
        assert STAGE_WORDS["en"]["score"].format(right=right, asked=len(asked)) in end
        assert (s.score.right, s.score.asked) == (right, len(asked))

    drive(app, steps)
    assert questions(lesson, asked[0].step)[0] == asked[0].question


def test_present_without_a_terminal_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(HELLO), "--present"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tracer: error: --present needs the interactive UI")
    assert main(["replay", str(HELLO), "--quiz", "--no-tui", "--lang", "zh"]) == EXIT_USAGE
    assert "--quiz 需要" in capsys.readouterr().err


@pytest.mark.lab
def test_live_run_in_presenter_mode_grows_the_lesson(tmp_path: Path) -> None:
    from tracer.lab.scenarios import find_scenario

    out = tmp_path / "handshake.pcapng"
    app = TracerApp(live=LiveSpec(find_scenario("handshake"), out, False, 10.0), present="present")
    seen: list[int] = []
    gaps: list[int] = []

    async def steps(pilot: Pilot[int]) -> None:
        s = _screen(app)
        for _ in range(400):
            seen.append(len(s.frames))
            if not app.live_running and not s.running:
                break
            await pilot.pause(0.05)
        await app.workers.wait_for_complete()
        await pilot.pause()
        seen.append(len(s.frames))  # the lesson of the whole run, built after it ended
        assert not s.running and WORDS["en"]["p_live"] not in _shown(app)
        assert "handshake" in _shown(app)
        assert s.lesson is not None
        lesson = s.lesson
        while s.pos < len(s.frames):
            step = lesson.steps[s.frames[s.pos].step]
            if step.gap_ns >= GAP_NS and step.index:
                # The server waits before accept(): the wait is named on the stage, not replayed.
                gaps.append(step.gap_ns)
                assert STAGE_WORDS["en"]["later"].format(t=duration(step.gap_ns, "en")) in _shown(app)
            await pilot.press("space")
        assert STAGE_WORDS["en"]["the_end"] in _shown(app)

    drive(app, steps)
    trace, analysis = load(str(out))
    assert seen[-1] == len(build_lesson(trace, analysis, "en"))
    assert min(seen) < max(seen)  # steps arrived during the run
    assert gaps


def _read_big(lines: list[str]) -> str:
    """Read big letters back: half blocks to pixels, glyphs split at blank columns, each
    matched against the font (so two glyphs that look alike could not both be read)."""
    from tracer.tui.bigtext import _GLYPHS

    top = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}
    width = max(len(line) for line in lines)
    pix = [[0] * width for _ in range(6)]
    for i, line in enumerate(lines):
        for x, ch in enumerate(line):
            a, b = top[ch]
            pix[2 * i][x], pix[2 * i + 1][x] = a, b
    cols = ["".join("#" if pix[r][x] else " " for r in range(5)) for x in range(width)]
    shapes = {tuple("".join(g[r][x] for r in range(5)) for x in range(len(g[0]))): c
              for c, g in _GLYPHS.items() if c != " "}
    out, cur = "", []
    for col in [*cols, "     "]:
        if col.strip():
            cur.append(col)
        elif cur:
            # A glyph with blank edge columns (",", "(") keeps them: try the tightest match.
            out += shapes.get(tuple(cur)) or next(
                c for shape, c in shapes.items() if tuple(s for s in shape if s.strip()) == tuple(cur))
            cur = []
    return out


def test_big_letters_are_distinct_and_read_back_as_the_packets_flags() -> None:
    from tracer.tui.bigtext import _GLYPHS, big_lines

    trimmed = [tuple(c for c in ("".join(g[r][x] for r in range(5)) for x in range(len(g[0]))) if c.strip())
               for ch, g in _GLYPHS.items() if ch != " "]
    assert len(set(trimmed)) == len(trimmed), "two glyphs look the same"
    trace, analysis = load(str(HELLO))
    lesson = build_lesson(trace, analysis, "en")
    flags = {s.flags for s in lesson.steps if s.flags}
    assert {"SYN", "SYN,ACK", "ACK", "FIN,ACK", "PSH,ACK"} <= flags
    for word in flags:
        assert _read_big(big_lines(word)) == word
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        synack = next(s for s in lesson.steps if s.flags == "SYN,ACK")
        await pilot.press(*["space"] * synack.index)
        stage = str(_screen(app).query_one("#p-stage", Static).render()).splitlines()
        big = [line.rstrip() for line in stage if line.strip() and set(line.strip()) <= set("▀▄█ ")]
        indent = min(len(b) - len(b.lstrip()) for b in big)
        big = [b[indent:].ljust(max(len(b) for b in big) - indent) for b in big]
        assert len(big) == 3 and _read_big(big) == "SYN,ACK"

    drive(app, steps)


@pytest.mark.lab
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_stage_shows_a_dropped_packet_stopping_short(scenario_run: Callable[[str], Path], lang: str) -> None:
    """synack-lost: the SYN-ACK the client's kernel dropped is drawn stopping short at ✗, the
    reason said under the cause; a delivered packet's arrow keeps its head."""
    from tracer.tui.stage import Frame, render_stage

    trace, analysis = load(str(scenario_run("synack-lost")))
    assert trace.kernel is not None
    drops = {d.packet_no - 1: d for d in trace.kernel.drops}
    assert "NETFILTER_DROP" in {d.reason for d in drops.values()}
    lesson = build_lesson(trace, analysis, lang)
    packets = [s for s in lesson.steps if s.kind == "packet" and s.direction]
    assert {s.packet for s in packets if s.dropped} == set(drops)
    for s in packets:
        text = render_stage(lesson, Frame(s.index, True), 110).plain
        assert s.packet is not None
        shaft = next(line for line in text.splitlines() if "┫ " in line)
        if s.packet in drops:
            assert "✗" in shaft and "▶" not in shaft and "◀" not in shaft, shaft
            assert s.drop_words and f"✗ {s.drop_words}" in text and drops[s.packet].reason in s.drop_words
        else:
            assert "✗" not in text and ("▶" in shaft or "◀" in shaft), shaft
