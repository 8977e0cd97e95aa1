"""SVG snapshots of the main screens, both languages, at 120×40 and 80×24.

The app is driven as a user would (select the SYN-ACK row, let the dissection
finish) and the screen is compared with the approved SVG in ``__snapshots__``
(``pytest --snapshot-update`` rewrites them after a deliberate change; look at the
report it writes before accepting).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from conftest import CAPTURES
from tracer.ladder.model import KIND_PACKET
from tracer.loading import load
from tracer.tui.app import TracerApp

HELLO = CAPTURES / "hello.pcapng"


def _app(lang: str) -> TracerApp:
    trace, analysis = load(str(HELLO))
    return TracerApp(trace=trace, analysis=analysis, lang=lang, source_name=HELLO.name)


def _select_synack(app: TracerApp) -> Callable[[Pilot[int]], object]:
    async def run_before(pilot: Pilot[int]) -> None:
        m = app.model
        assert m is not None and app.trace is not None
        flags = app.trace.packets.tcp_flags
        row = next(r for r in range(len(m))
                   if int(m.kind[r]) == KIND_PACKET and int(flags[int(m.ref[r])]) & 0x12 == 0x12)
        await pilot.press(*["down"] * row)
        await app.workers.wait_for_complete()
        await pilot.pause()
    return run_before


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
def test_main_screen(snap_compare, lang: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    app = _app(lang)
    assert snap_compare(app, terminal_size=size, run_before=_select_synack(app))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_step_mode_and_help(snap_compare, lang: str) -> None:  # type: ignore[no-untyped-def]
    app = _app(lang)
    assert snap_compare(app, terminal_size=(120, 40), press=["g", "space", "n", "n", "n", "question_mark"])


def _presenter(lang: str, mode: str) -> TracerApp:
    trace, analysis = load(str(HELLO))
    return TracerApp(trace=trace, analysis=analysis, lang=lang, source_name=HELLO.name, present=mode)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_presenter_mode(snap_compare, lang: str) -> None:  # type: ignore[no-untyped-def]
    """Presenter mode on the SYN-ACK: the screenshot the issue asks for, in both languages."""
    app = _presenter(lang, "present")

    async def run_before(pilot: Pilot[int]) -> None:
        await app.workers.wait_for_complete()
        screen = app.screen
        lesson = getattr(screen, "lesson", None)
        assert lesson is not None
        synack = next(s for s in lesson.steps if s.flags == "SYN,ACK")
        await pilot.press(*["space"] * synack.index)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_quiz_question_and_answer(snap_compare, lang: str) -> None:  # type: ignore[no-untyped-def]
    """The quiz before the SYN-ACK, answered wrongly with "the server's accept()"."""
    from tracer.lesson.quiz import packet_choice

    app = _presenter(lang, "quiz")

    async def run_before(pilot: Pilot[int]) -> None:
        await app.workers.wait_for_complete()
        screen = app.screen
        frames = getattr(screen, "frames", [])
        lesson = getattr(screen, "lesson", None)
        assert lesson is not None
        k = next(i for i, f in enumerate(frames)
                 if f.question is not None and lesson.steps[f.step].flags == "SYN,ACK")
        while getattr(screen, "pos", k) < k:
            await pilot.press("space")  # at a question, the first space shows its answer
        q = frames[k].question
        assert q is not None and getattr(screen, "pos", -1) == k
        wrong = packet_choice("server", "call", "accept()", "SYN,ACK", lang)
        await pilot.press(str(q.choices.index(wrong) + 1))
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)
