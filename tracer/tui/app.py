"""The Textual app: the ladder, the lower panes, the keys, loading and live runs.

Thin by design: the rows come from ``tracer.ladder.model`` (a numpy model built in a
worker), the panes only draw what they are given, and every slow step (reading
and analysing a big file, applying a filter to a million rows, scapy, exporting
the text ladder, running a live scenario) runs in a worker thread.  A big file
is shown from its first megabytes at once (``head``) while the whole file loads.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import ProgressBar, Static
from textual.worker import WorkerFailed

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP
from tracer.core.trace import Trace
from tracer.errors import TracerError
from tracer.ladder.filter import Filter
from tracer.ladder.model import LadderModel
from tracer.ladder.streams import StreamKey
from tracer.tui.chrome import View, chrome
from tracer.tui.crash import ui_crash
from tracer.tui.ladder_view import LadderView, header_line
from tracer.tui.panes import DetailPane, ExplainPane, SourcePane
from tracer.tui.present import PresenterScreen
from tracer.tui.screens import FilterScreen, HelpScreen, StreamPicker
from tracer.tui.text import KEYS, next_lang, words

if TYPE_CHECKING:  # the lab is imported only when a live run starts
    from tracer.lab.scenarios import Scenario
    from tracer.lab.session import Progress, RunResult

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # rows per second when playing
PANE_CYCLE = ("explain", "detail", "source")  # the one lower pane shown on a narrow terminal


@dataclass(frozen=True)
class LiveSpec:
    """A scenario to run in the lab while the app shows it (``tracer run``), or any
    ``runner(progress, cancel) -> RunResult`` (``tracer trace``) shown under ``name``."""

    scenario: Scenario | None
    out: Path | None
    loopback: bool
    timeout: float
    runner: Callable[[Progress, threading.Event], RunResult] | None = None
    name: str = ""

    @property
    def title(self) -> str:
        """What the run is shown as: ``name``, else the scenario's name."""
        return self.name or (self.scenario.name if self.scenario is not None else "")


@dataclass
class LiveOutcome:
    """How a live run ended, for the command line after the app exits."""

    result: RunResult | None = None
    error: TracerError | None = None
    interrupted: bool = False


class TracerApp(App[int]):
    """tracer's interactive ladder (see the module docstring)."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live elsewhere
    TITLE = "tracer"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(k.keys, k.action, k.words("en"), show=False) for k in KEYS),
        Binding("ctrl+c", "quit", "quit", show=False),
    ]
    ENABLE_COMMAND_PALETTE = False

    def __init__(self, *, trace: Trace | None = None, analysis: Analysis | None = None,
                 path: str | None = None, lang: str = "en", stream: StreamKey | None = None,
                 raw_seq: bool = False, live: LiveSpec | None = None, source_name: str = "",
                 present: str = "") -> None:
        super().__init__()
        self.present = present  # "", "present" or "quiz": open the presenter screen on top
        self.lang = lang
        self.raw_seq = raw_seq
        self.path = path
        self.source_name = source_name or (Path(path).name if path else "")
        self.trace, self.analysis = trace, analysis
        self.stream = stream
        self.filter = Filter()
        self.model: LadderModel | None = None
        self.loading = path is not None
        self.revealed: int | None = None
        self.playing: Timer | None = None
        self.speed = 1.0
        self.following = live is not None
        self.live = live
        self.live_outcome = LiveOutcome()
        self.live_running = False
        self._cancel = threading.Event()
        self._quit_after_run = False
        self.pane = 0
        self.message = ""
        self.crash: TracerError | None = None  # the first internal error, its report saved (tracer.tui.crash)

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield Static("", id="warnings")
        yield Static("", id="lanes")
        yield LadderView(id="ladder")
        yield ProgressBar(id="progress", show_eta=False, total=100)
        with Horizontal(id="panes"):
            yield DetailPane(id="detail")
            yield ExplainPane(id="explain")
            yield SourcePane(id="source")
        yield Static("", id="keys")

    def on_mount(self) -> None:
        self.ladder.focus()
        self._update_pane_classes()
        if self.present:
            title = self.live.title if self.live else ""
            self.push_screen(PresenterScreen(quiz=self.present == "quiz", lang=self.lang, stream=self.stream,
                                             title=title or self.source_name))
        if self.trace is not None and self.analysis is not None:
            self._set_trace(self.trace, self.analysis, initial=True)
        else:
            self._refresh_chrome()
        if self.path is not None:
            self.query_one("#progress", ProgressBar).display = True
            self.load_full()
        else:
            self.query_one("#progress", ProgressBar).display = False
        if self.live is not None:
            self.live_running = True
            self.run_live()

    def _handle_exception(self, error: Exception) -> None:
        """Textual's end for an unhandled error anywhere in the app (its own code, a
        handler, a worker): Textual would print a traceback after the app; tracer saves
        it to a crash report and the command says one line naming it (``self.crash``).
        A live run stops as on Ctrl-C, so that it still saves its capture."""
        if self.crash is None:
            self.crash = ui_crash(error.error if isinstance(error, WorkerFailed) else error)
        self._cancel.set()
        super()._handle_exception(error)
        self._exit_renderables.clear()  # the report holds the traceback

    def _in_app(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn(*args)`` for a worker thread (through ``call_from_thread``): an error
        in it ends the app like any handler's, instead of only going back to the thread
        (where the live run would take it for the app being gone).  A widget missing is
        the app going: that goes back to the thread alone."""
        try:
            fn(*args)
        except NoMatches:
            raise
        except Exception as e:
            self._handle_exception(e)
            raise

    @property
    def ladder(self) -> LadderView:
        return self.query_one("#ladder", LadderView)

    # --- loading --------------------------------------------------------------------------

    def _set_trace(self, trace: Trace, analysis: Analysis, *, initial: bool = False,
                   model: LadderModel | None = None) -> None:
        old_packet = self._selected_packet()
        self.trace, self.analysis = trace, analysis
        if model is None:
            model = LadderModel(trace, analysis, self.stream, self.filter)
        self._show_model(model, keep_packet=None if initial else old_packet)
        self._feed_presenter()

    def _feed_presenter(self) -> None:
        """Attributes down: the presenter screen (if open) gets every new trace."""
        if self.trace is None or self.analysis is None:
            return
        for screen in self.screen_stack:
            if isinstance(screen, PresenterScreen):
                screen.set_trace(self.trace, self.analysis, running=self.live_running or self.loading)

    def select_row(self, row: int) -> None:
        """Select ``row`` of the ladder (presenter mode hands back the step it showed)."""
        self._move(row)

    def _show_model(self, model: LadderModel, keep_packet: int | None = None) -> None:
        self.model = model
        ladder = self.ladder
        cursor: int | None = None
        if self.following:
            cursor = len(model) - 1
        elif keep_packet is not None:
            cursor = model.row_of_packet(keep_packet)
            if cursor is None:
                rows = model.packet_rows()
                after = rows[model.ref[rows] >= keep_packet] if rows.size else rows
                cursor = int(after[0]) if after.size else len(model) - 1
        if self.revealed is not None:
            self.revealed = min(self.revealed, len(model)) or None
        ladder.revealed = self.revealed
        ladder.set_model(model, cursor if cursor is not None else ladder.cursor)
        self._refresh_chrome()

    def _selected_packet(self) -> int | None:
        m = self.model
        if m is None or not len(m):
            return None
        r = min(self.ladder.cursor, len(m) - 1)
        rows = m.packet_rows()
        before = rows[rows <= r]
        return int(m.ref[before[-1]]) if before.size else None

    @work(thread=True, exclusive=True, group="load")
    def load_full(self) -> None:
        from tracer.core.pipeline import analyze
        from tracer.pcap.reader import read_capture

        assert self.path is not None
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.05:
                last[0] = now
                self.call_from_thread(self._progress, 70 * done / max(1, total))

        try:
            trace = read_capture(self.path, progress=progress)
            self.call_from_thread(self._progress, 70)
            analysis = analyze(trace)
            self.call_from_thread(self._progress, 95)
            model = LadderModel(trace, analysis, self.stream, self.filter)
            model.prev_in_stream()
        except TracerError as e:
            self.call_from_thread(self._load_failed, e)
            return
        self.call_from_thread(self._loaded, trace, analysis, model)

    def _progress(self, pct: float) -> None:
        self.query_one("#progress", ProgressBar).update(progress=pct)

    def _loaded(self, trace: Trace, analysis: Analysis, model: LadderModel) -> None:
        self.loading = False
        self.query_one("#progress", ProgressBar).display = False
        self._set_trace(trace, analysis, model=model, initial=self.model is None)
        self._settle()

    def _settle(self) -> None:
        """After a big load: collect once, then keep the survivors out of later
        collections (a full collection of them took 60-70 ms, a visible stutter)."""
        gc.collect()
        gc.freeze()

    def _load_failed(self, e: TracerError) -> None:
        self.loading = False
        self.query_one("#progress", ProgressBar).display = False
        self.message = e.text(self.lang)
        self._refresh_chrome()

    # --- live runs ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="live")
    def run_live(self) -> None:
        from tracer.lab.run import run_scenario

        assert self.live is not None
        spec = self.live

        def progress(trace: Trace, analysis: Analysis) -> None:
            try:
                self.call_from_thread(self._in_app, self._live_update, trace, analysis)
            except Exception:
                # The app is gone or going (its tab closed, a signal; its widgets may already be
                # removed): stop the run, as Ctrl-C would, so that it saves what it captured.
                self._cancel.set()

        self._live_thread = threading.current_thread()
        outcome: tuple[RunResult | None, TracerError | None, bool]
        try:
            if spec.runner is not None:
                res = spec.runner(progress, self._cancel)
            else:
                assert spec.scenario is not None
                res = run_scenario(spec.scenario, spec.out, loopback=spec.loopback,
                                   lang=self.lang, timeout=spec.timeout, progress=progress,
                                   cancel=self._cancel)
        except TracerError as e:
            outcome = (None, e, False)
        except KeyboardInterrupt:
            outcome = (None, None, True)
        else:
            outcome = (res, res.error, res.interrupted)
        # Kept here too: the app may be gone already (a browser tab closed, SIGTERM).
        self.live_outcome = LiveOutcome(*outcome)
        with contextlib.suppress(Exception):  # the app is gone: live_outcome says it all
            self.call_from_thread(self._in_app, self._live_finished, *outcome)

    _live_thread: threading.Thread | None = None

    def finish_live(self, timeout: float = 30.0) -> None:
        """After the app has exited some other way than ``q`` (its tab closed, a
        signal): stop a run still going as Ctrl-C would, and wait for it to save."""
        thread = self._live_thread
        if thread is not None and thread.is_alive():
            self._cancel.set()
            thread.join(timeout)

    def _live_update(self, trace: Trace, analysis: Analysis) -> None:
        if self.live_running:
            self._set_trace(trace, analysis)

    def _live_finished(self, res: RunResult | None, error: TracerError | None, interrupted: bool) -> None:
        self.live_running = False
        self.live_outcome = LiveOutcome(res, error, interrupted)
        w = words(self.lang)
        if res is not None:
            self._set_trace(res.trace, res.analysis)
            path = res.path
            # The status line names the file; the notice (and the command, on exit) give the path.
            self.message = (w["live_interrupted"] if interrupted else w["live_done"]).format(
                path=Path(path).name)
            self.notify((w["live_interrupted"] if interrupted else w["live_done"]).format(path=path),
                        timeout=8)
        if error is not None:
            text = error.text(self.lang)
            self.message = (self.message + " · " if self.message else "") + w["live_failed"].format(msg=text)
        self._refresh_chrome()
        self._feed_presenter()
        if self._quit_after_run:
            self.exit(0)

    # --- the panes and the chrome ------------------------------------------------------------

    @on(LadderView.Selected)
    def _selected(self, event: LadderView.Selected) -> None:
        self._refresh_chrome()
        # The panes after the ladder and the status line are painted: a keypress shows at
        # once, and a held key does not wait for each row's panes.
        self._pane_row = event.row
        if not self._pane_pending:
            self._pane_pending = True
            self.call_after_refresh(self._panes_now)

    _pane_row = 0
    _pane_pending = False

    def _panes_now(self) -> None:
        self._pane_pending = False
        self._update_panes(self._pane_row)

    def _update_panes(self, row: int) -> None:
        m = self.model
        detail = self.query_one("#detail", DetailPane)
        # scapy (~60 MiB) is not loaded while a big file is still being analysed: the two
        # together would be the process's peak.
        detail.deferred = self.loading
        for pane in (detail, self.query_one("#explain", ExplainPane), self.query_one("#source", SourcePane)):
            if pane.display:
                pane.show(m, row, self.lang)

    def _refresh_chrome(self) -> None:
        m = self.model
        ladder = self.ladder
        live = None
        if self.live is not None:
            live = self.live.name or getattr(self.live.scenario, "name", "?")
        view = View(lang=self.lang, source=self.source_name or (m.trace.meta.source if m is not None else ""),
                    live=live, rows=len(m) if m is not None else None, cursor=ladder.cursor,
                    stepping=self.revealed is not None, playing=self.playing is not None, speed=self.speed,
                    stream=self.stream, filter=self.filter, following=self.following, message=self.message,
                    loading=self.loading, trace=self.trace, analysis=self.analysis)
        texts = chrome(view)
        self.query_one("#status", Static).update(texts.status)
        warn = self.query_one("#warnings", Static)
        if texts.warning is not None:
            warn.update(texts.warning)
        warn.display = texts.warning is not None
        lay = ladder.layout_for()
        self.query_one("#lanes", Static).update(
            Text(header_line(m, min(ladder.cursor, max(0, len(m) - 1)) if m else 0, lay, self.lang),
                 style="bold", no_wrap=True, overflow="ellipsis"))
        self.query_one("#keys", Static).update(texts.keys)

    def _update_pane_classes(self) -> None:
        shown = PANE_CYCLE[self.pane % len(PANE_CYCLE)]
        for name in PANE_CYCLE:
            self.query_one(f"#{name}").set_class(name == shown, "-shown")

    # --- keys: moving -------------------------------------------------------------------------

    def _move(self, row: int, *, user: bool = True) -> None:
        ladder = self.ladder
        if user and self.following and self.model is not None and row < len(self.model) - 1:
            self.following = False
        ladder.move_to(row)
        # The row counter follows the cursor in the same frame; the panes follow the message.
        self._refresh_chrome()

    def action_cursor_up(self) -> None:
        self._move(self.ladder.cursor - 1)

    def action_cursor_down(self) -> None:
        self._move(self.ladder.cursor + 1)

    def action_page_up(self) -> None:
        self._move(self.ladder.cursor - self.ladder.page())

    def action_page_down(self) -> None:
        self._move(self.ladder.cursor + self.ladder.page())

    def action_first(self) -> None:
        if self.revealed is not None:
            self._reveal(1)
        self._move(0)

    def action_last(self) -> None:
        self._stop_play()
        if self.revealed is not None:
            self._reveal(None)
        self._move(self.ladder.rows - 1)

    def action_follow(self) -> None:
        self.following = True
        self._move(self.ladder.rows - 1, user=False)
        self._refresh_chrome()

    # --- keys: stepping and playing ----------------------------------------------------------

    def _reveal(self, n: int | None) -> None:
        self.revealed = n
        self.ladder.set_revealed(n)

    def action_step(self) -> None:
        m = self.model
        if m is None or not len(m):
            return
        if self.revealed is None:
            # Entering step mode: the rows after the selected one are hidden.
            self._reveal(self.ladder.cursor + 1)
        elif self.revealed < len(m):
            self._reveal(self.revealed + 1)
        elif self.playing is not None:
            self._stop_play()
        self._move(self.revealed - 1 if self.revealed else 0)
        self._refresh_chrome()

    def action_step_back(self) -> None:
        if self.revealed is None:
            self.action_cursor_up()
            return
        self._reveal(max(1, self.revealed - 1))
        self._move(self.revealed - 1 if self.revealed else 0)
        self._refresh_chrome()

    def action_play(self) -> None:
        if self.playing is not None:
            self._stop_play()
        else:
            if self.revealed is None or self.revealed >= (len(self.model) if self.model else 0):
                self.action_step()
            self.playing = self.set_interval(1.0 / self.speed, self.action_step)
        self._refresh_chrome()

    def _stop_play(self) -> None:
        if self.playing is not None:
            self.playing.stop()
            self.playing = None

    def _set_speed(self, up: bool) -> None:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 2
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + (1 if up else -1)))]
        if self.playing is not None:
            self.playing.stop()
            self.playing = self.set_interval(1.0 / self.speed, self.action_step)
        self._refresh_chrome()

    def action_faster(self) -> None:
        self._set_speed(True)

    def action_slower(self) -> None:
        self._set_speed(False)

    # --- keys: views -----------------------------------------------------------------------------

    def action_raw_seq(self) -> None:
        self.raw_seq = not self.raw_seq
        self.ladder.set_view(raw_seq=self.raw_seq)

    def action_language(self) -> None:
        self.lang = next_lang(self.lang)
        self.ladder.set_view(lang=self.lang)
        self._update_panes(self.ladder.cursor)
        self._refresh_chrome()

    def action_panes(self) -> None:
        self.pane += 1
        self._update_pane_classes()
        self._update_panes(self.ladder.cursor)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.lang))

    def action_streams(self) -> None:
        if self.analysis is None:
            return
        streams = list(self.analysis.tcp_streams) + list(self.analysis.udp_streams)

        def chosen(key: StreamKey | bool | None) -> None:
            if key is False:
                return
            self.stream = key if isinstance(key, tuple) else None
            self._rebuild()

        self.push_screen(StreamPicker(streams, self.lang, self.stream), chosen)

    def action_filter(self) -> None:
        def chosen(expr: str | None) -> None:
            if expr is None:
                return
            self.filter = Filter(expr.strip())
            self._rebuild()

        self.push_screen(FilterScreen(self.lang, self.filter.expr), chosen)

    def _rebuild(self) -> None:
        if self.trace is None or self.analysis is None:
            return
        self._stop_play()
        self.revealed = None
        self.ladder.revealed = None
        self.build_model(self.trace, self.analysis, self.stream, self.filter, self._selected_packet())

    @work(thread=True, exclusive=True, group="model")
    def build_model(self, trace: Trace, analysis: Analysis, stream: StreamKey | None, flt: Filter,
                    keep: int | None) -> None:
        model = LadderModel(trace, analysis, stream, flt)
        model.prev_in_stream()
        self.call_from_thread(self._show_model, model, keep)

    # --- export and quit --------------------------------------------------------------------------

    def action_export(self) -> None:
        stem = Path(self.source_name or "trace").stem or "trace"
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        svg_name = f"tracer-{stem}-{stamp}.svg"
        try:
            svg = self.save_screenshot(filename=svg_name, path=str(Path.cwd()))
        except OSError as e:
            self.message = words(self.lang)["export_failed"].format(why=e.strerror or e)
            self._refresh_chrome()
            return
        self.export_text(Path.cwd() / f"tracer-{stem}-{stamp}.txt", svg)

    @work(thread=True, exclusive=True, group="export")
    def export_text(self, path: Path, svg: str) -> None:
        from tracer.ladder.render import render_ladder

        if self.trace is None or self.analysis is None:
            return
        stream = self.stream[1] if self.stream is not None and self.stream[0] == PROTO_TCP else None
        try:
            with open(path, "w", encoding="utf-8") as f:
                for line in render_ladder(self.trace, self.analysis, lang=self.lang, width=120,
                                          stream=stream, raw_seq=self.raw_seq):
                    f.write(line + "\n")
        except OSError as e:
            msg = words(self.lang)["export_failed"].format(why=e.strerror or e)
        else:
            msg = words(self.lang)["export_done"].format(svg=svg, txt=str(path))
            short = words(self.lang)["export_done"].format(svg=Path(svg).name, txt=path.name)
            self.call_from_thread(self._set_message, msg, short)
            return
        self.call_from_thread(self._set_message, msg)

    def _set_message(self, msg: str, short: str | None = None) -> None:
        self.message = short or msg
        self.notify(msg, timeout=6)
        self._refresh_chrome()

    async def action_quit(self) -> None:
        if self.live_running:
            # The run stops as on Ctrl-C and still saves its capture; then the app exits.
            self._quit_after_run = True
            self._cancel.set()
            self.message = words(self.lang)["stopping"]
            self._refresh_chrome()
            return
        self.exit(0)

