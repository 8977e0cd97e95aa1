"""Presenter mode (``--present``) and predict-then-reveal (``--quiz``): a screen for a class.

A thin shell around ``tracer.tui.stage``: it keeps which frame of the lesson is
on screen, the class's answers and the slow auto-play, and redraws the stage.
The app hands it every new trace (a live run grows; ``set_trace``), and the
lesson is rebuilt in a worker so a big capture never blocks a keypress.  Auto-play
moves one frame per ``pace`` seconds whatever the real gaps were (they are named
on the stage instead), and waits at a question for an answer.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static

from tracer.core.analysis import Analysis
from tracer.core.trace import Trace
from tracer.ladder.streams import StreamKey
from tracer.lesson.quiz import Score
from tracer.lesson.steps import Lesson, build_lesson
from tracer.tui.stage import Frame, end_card, frames_of, render_stage, sw, timeline
from tracer.tui.text import PRESENT_KEYS, next_lang, words

PACES = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0)  # seconds per frame when playing
DEFAULT_PACE = 3.0
BIG_FROM_ROWS = 30  # screens this tall get the flags / the call in big letters


class PresenterScreen(Screen[None]):
    """One step at a time, large (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(k.keys, k.action, k.words("en"), show=False)
          for k in PRESENT_KEYS if k.action != "answer_hint"),
        *(Binding(str(n), f"answer({n - 1})", show=False) for n in range(1, 5)),
    ]

    def __init__(self, *, quiz: bool, lang: str, stream: StreamKey | None, title: str) -> None:
        super().__init__()
        self.quiz = quiz
        self.lang = lang
        self.stream = stream
        self.title_text = title
        self.lesson: Lesson | None = None
        self.frames: list[Frame] = []
        self.pos = 0  # index into frames; == len(frames) is the end card
        self.score = Score()
        self.chosen: dict[int, int | None] = {}  # frame index -> the class's answer
        self.playing: Timer | None = None
        self.pace = DEFAULT_PACE
        self.running = False  # a live run is still adding steps
        self._trace: tuple[Trace, Analysis] | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="p-header")
        with Vertical(id="p-box"):
            yield Static("", id="p-stage")
            yield Static("", id="p-timeline")
        yield Static("", id="p-keys")

    def on_mount(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        self.redraw()

    # --- the lesson -------------------------------------------------------------------

    def set_trace(self, trace: Trace, analysis: Analysis, *, running: bool) -> None:
        """A new (or grown) trace: rebuild the lesson, keep the frame on screen."""
        self.running = running
        self._trace = (trace, analysis)
        self.build(trace, analysis, self.lang)

    @work(thread=True, exclusive=True, group="lesson")
    def build(self, trace: Trace, analysis: Analysis, lang: str) -> None:
        lesson = build_lesson(trace, analysis, lang, stream=self.stream, title=self.title_text or None)
        frames = frames_of(lesson, self.quiz)
        self.app.call_from_thread(self._built, lesson, frames)

    def _built(self, lesson: Lesson, frames: list[Frame]) -> None:
        if lesson.lang != self.lang:
            return  # the language changed meanwhile; its own build follows
        self.lesson, self.frames = lesson, frames
        self.pos = min(self.pos, self._last())
        self.redraw()

    def _last(self) -> int:
        """The last position: the end card once the trace is complete."""
        return len(self.frames) if not self.running and self.frames else max(0, len(self.frames) - 1)

    # --- drawing ------------------------------------------------------------------------

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        width = max(40, self.size.width - 2)
        w = words(self.lang)
        sws = sw(self.lang)
        header = Text(no_wrap=True, overflow="ellipsis")
        header.append(" tracer ", style="bold black on cyan")
        lesson = self.lesson
        name = self.title_text or (lesson.title if lesson else "")
        header.append(f" {name}", style="bold")
        stage = Text()
        line = Text()
        if lesson is None or not self.frames:
            stage = Text("\n  " + (sws["waiting"] if self.running or lesson is None else sws["no_steps"]),
                         style="italic")
        elif self.pos >= len(self.frames):
            right = self.score.right if self.quiz else None
            stage = end_card(lesson, width, right, self.score.asked, self.score.skipped)
            line = timeline(lesson, len(lesson.steps), width)
        else:
            frame = self.frames[self.pos]
            step = lesson.steps[frame.step]
            header.append("  " + w["p_step"].format(n=frame.step + 1, total=len(lesson.steps)),
                          style="bold green")
            header.append(f"  t={lesson.rel_s(step):.6f} s", style="dim")
            answered = self.pos in self.chosen
            # Big letters when the screen is tall enough for them and a question's choices.
            big = self.size.height >= BIG_FROM_ROWS
            stage = render_stage(lesson, frame, width, chosen=self.chosen.get(self.pos), answered=answered,
                                 big=big)
            line = timeline(lesson, frame.step, width)
        if self.quiz:
            header.append("  " + w["p_score"].format(right=self.score.right, asked=self.score.asked),
                          style="bold yellow")
        if self.playing is not None:
            header.append("  " + w["p_playing"].format(pace=f"{self.pace:g}"), style="green")
        if self.running:
            header.append("  " + w["p_live"], style="bold red")
        self.query_one("#p-header", Static).update(header)
        self.query_one("#p-stage", Static).update(stage)
        self.query_one("#p-timeline", Static).update(line)
        keys = Text(no_wrap=True, overflow="ellipsis")
        for k in PRESENT_KEYS:
            if k.in_footer and (self.quiz or k.action != "answer_hint"):
                keys.append(f" {k.shown} ", style="bold black on cyan")
                keys.append(f" {k.footer_words(self.lang)} ")
        self.query_one("#p-keys", Static).update(keys)

    # --- keys -------------------------------------------------------------------------------

    def _question_open(self) -> bool:
        return self.pos < len(self.frames) and self.frames[self.pos].question is not None \
            and self.pos not in self.chosen

    def action_next(self) -> None:
        if self._question_open():
            # Space at a question shows the answer; it counts as not answered.
            self.action_answer(None)
            return
        if self.pos < self._last():
            self.pos += 1
        elif self.playing is not None:
            self._stop()
        self.redraw()

    def action_back(self) -> None:
        self.pos = max(0, self.pos - 1)
        self.redraw()

    def action_first(self) -> None:
        self.pos = 0
        self.redraw()

    def action_last(self) -> None:
        self.pos = self._last()
        self.redraw()

    def action_answer(self, choice: int | None) -> None:
        if not self._question_open():
            return
        q = self.frames[self.pos].question
        assert q is not None
        if choice is not None and choice >= len(q.choices):
            return
        self.chosen[self.pos] = choice
        self.score.record(q, choice)
        self.redraw()

    def action_play(self) -> None:
        if self.playing is not None:
            self._stop()
        else:
            self.playing = self.set_interval(self.pace, self._tick)
        self.redraw()

    def _tick(self) -> None:
        if self._question_open():
            return  # a question waits for the class
        self.action_next()

    def _stop(self) -> None:
        if self.playing is not None:
            self.playing.stop()
            self.playing = None

    def _set_pace(self, slower: bool) -> None:
        i = PACES.index(self.pace) if self.pace in PACES else 2
        self.pace = PACES[max(0, min(len(PACES) - 1, i + (1 if slower else -1)))]
        if self.playing is not None:
            self.playing.stop()
            self.playing = self.set_interval(self.pace, self._tick)
        self.redraw()

    def action_faster(self) -> None:
        self._set_pace(False)

    def action_slower(self) -> None:
        self._set_pace(True)

    def action_language(self) -> None:
        self.app.action_language()  # type: ignore[attr-defined]  # the ladder underneath too
        self.lang = next_lang(self.lang)
        if self._trace is not None:
            # The frames are the same in both languages: the position and answers stay.
            self.build(*self._trace, self.lang)
        self.redraw()

    def action_ladder(self) -> None:
        """Leave presenter mode for the full ladder, on the step shown."""
        self._stop()
        row = self.frames[min(self.pos, len(self.frames) - 1)].step if self.frames else 0
        self.dismiss(None)
        self.app.call_after_refresh(self.app.select_row, row)  # type: ignore[attr-defined]

    def action_help(self) -> None:
        from tracer.tui.screens import HelpScreen

        self.app.push_screen(HelpScreen(self.lang, PRESENT_KEYS))

    async def action_quit(self) -> None:
        self._stop()
        await self.app.action_quit()
