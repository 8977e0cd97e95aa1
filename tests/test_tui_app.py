"""The Textual app driven key by key with Pilot (``App.run_test``), on real captures
and on a live scenario run in the lab."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Static, Tree
from textual.worker import WorkerFailed

from conftest import CAPTURES, tshark_fields
from tracer.core.model import PROTO_TCP, Side
from tracer.core.pipeline import analyze
from tracer.core.reasons import REASONS
from tracer.i18n.explain import explain
from tracer.ladder.model import KIND_CALL, KIND_PACKET
from tracer.ladder.render import render_ladder
from tracer.loading import load
from tracer.pcap.reader import read_capture_head
from tracer.tui.app import LiveSpec, TracerApp
from tracer.tui.panes import ExplainPane, SourcePane, call_line
from tracer.tui.screens import FilterScreen, HelpScreen, StreamPicker
from tracer.tui.text import KEYS, WORDS

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcapng"


def _app(path: Path = HELLO, **kw: object) -> TracerApp:
    trace, analysis = load(str(path))
    return TracerApp(trace=trace, analysis=analysis, source_name=path.name, **kw)  # type: ignore[arg-type]


def drive(app: TracerApp, steps: Callable[[Pilot[int]], Awaitable[None]],
          size: tuple[int, int] = (120, 40)) -> None:
    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await steps(pilot)
    asyncio.run(main())


def _status(app: TracerApp) -> str:
    return str(app.query_one("#status", Static).render())


def _text(widget: Static) -> str:
    return str(widget.render())


def test_cursor_keys_move_the_selection_and_update_the_panes() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        ladder = app.ladder
        assert ladder.cursor == 0
        await pilot.press("down", "j")
        assert ladder.cursor == 2
        await pilot.press("up")
        assert ladder.cursor == 1
        await pilot.press("k")
        assert ladder.cursor == 0
        await pilot.press("G")
        assert ladder.cursor == len(app.model) - 1  # type: ignore[arg-type]
        await pilot.press("g")
        assert ladder.cursor == 0
        await pilot.press("pagedown")
        assert ladder.cursor == min(len(app.model) - 1, ladder.page())  # type: ignore[arg-type]
        await pilot.press("pageup")
        assert ladder.cursor == 0
        assert "row 1 of" in _status(app)
        # The explanation pane says what tracer.i18n.explain says of the selected packet.
        m = app.model
        assert m is not None
        r = next(r for r in range(len(m)) if int(m.kind[r]) == KIND_PACKET and
                 int(app.trace.packets.tcp_flags[int(m.ref[r])]) & 0x12 == 0x12)  # type: ignore[union-attr]
        await pilot.press(*["down"] * r)
        await pilot.pause()
        i = int(m.ref[r])
        a, t = app.analysis, app.trace.packets  # type: ignore[union-attr]
        want = explain(REASONS[int(a.cause_reason[i])], Side(int(a.cause_side[i])), "en",  # type: ignore[union-attr]
                       src=t.src_endpoint(i), dst=t.dst_endpoint(i), len=int(t.payload_len[i]),
                       seq=int(a.rel_seq[i]), ack=int(a.rel_ack[i]))  # type: ignore[union-attr]
        why = _text(app.query_one(ExplainPane).query_one("#why", Static))
        assert " ".join(want.split()) in " ".join(why.split())
        assert "ESTABLISHED" in why or "SYN-RECEIVED" in why

    drive(app, steps)


def test_mouse_click_selects_a_row() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.click("#ladder", offset=(5, 4))
        assert app.ladder.cursor == 4

    drive(app, steps)


def test_step_back_and_play_reveal_rows_one_at_a_time() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        ladder = app.ladder
        total = len(app.model)  # type: ignore[arg-type]
        await pilot.press("space")
        assert app.revealed == 1 and ladder.rows == 1 and ladder.cursor == 0
        await pilot.press("n", "space")
        assert app.revealed == 3 and ladder.rows == 3 and ladder.cursor == 2
        assert "step mode 3/" in _status(app)
        await pilot.press("b")
        assert app.revealed == 2 and ladder.cursor == 1
        # Play at the top speed: rows keep appearing until paused.
        await pilot.press("plus", "plus", "plus", "plus")
        assert app.speed == 16.0
        await pilot.press("p")
        await pilot.pause(0.6)
        shown = app.revealed
        assert shown is not None and shown >= 4
        await pilot.press("p")
        assert app.playing is None
        await pilot.pause(0.3)
        assert app.revealed == app.revealed == ladder.rows
        assert app.revealed is not None and app.revealed <= total
        await pilot.press("minus")
        assert app.speed == 8.0
        await pilot.press("g")
        assert app.revealed == 1
        await pilot.press("G")
        assert app.revealed is None and ladder.rows == total and ladder.cursor == total - 1

    drive(app, steps)


def test_filter_prompt_applies_and_escape_cancels() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        await pilot.press(*"syn", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        m = app.model
        assert m is not None and app.filter.expr == "syn"
        syn = {i for i in range(len(app.trace.packets)) if int(app.trace.packets.tcp_flags[i]) & 2}  # type: ignore[union-attr]
        assert {int(m.ref[r]) for r in range(len(m))} == syn
        assert "filter: syn" in _status(app)
        await pilot.press("slash", "x", "escape")
        assert app.filter.expr == "syn"
        await pilot.press("slash", *["backspace"] * 3, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(app.model) == len(app.trace.packets) + len(app.model.calls)  # type: ignore[arg-type,union-attr]

    drive(app, steps)


def test_stream_picker_shows_one_stream_like_tshark(corpus: Path) -> None:
    path = corpus / "pcapplusplus__pcapng-example.pcapng"
    app = _app(path)
    want = {int(r[0]) - 1 for r in tshark_fields(path, "frame.number", extra=("-Y", "tcp.stream == 3"))}

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("s")
        assert isinstance(app.screen, StreamPicker)
        await pilot.press("3", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.stream == (PROTO_TCP, 3)
        m = app.model
        assert m is not None and {int(m.ref[r]) for r in range(len(m))} == want
        assert "stream tcp 3" in _status(app)
        await pilot.press("s", "enter")  # the first option: all streams
        await app.workers.wait_for_complete()
        await pilot.pause()
        t = app.trace
        assert t is not None and app.stream is None
        assert len(app.model) == len(t.packets) + len(t.warnings)  # type: ignore[arg-type]
        await pilot.press("s", "escape")
        assert app.stream is None

    drive(app, steps)


def test_raw_seq_and_language_keys() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        m = app.model
        assert m is not None
        r = next(r for r in range(len(m)) if int(m.kind[r]) == KIND_PACKET)
        i = int(m.ref[r])
        assert "seq=0 " in m.cells(r, "en", False).label
        await pilot.press("r")
        assert app.raw_seq and app.ladder.raw_seq
        assert f"seq={int(app.trace.packets.seq[i])}" in m.cells(r, "en", app.raw_seq).label  # type: ignore[union-attr]
        await pilot.press("r", "l")
        assert app.lang == "zh" and app.ladder.lang == "zh"
        assert "个数据包" in _status(app)
        assert app.query_one(ExplainPane).border_title == "解释"
        assert "单步" in _text(app.query_one("#keys", Static))
        await pilot.press("l")
        assert "packets" in _status(app) and app.query_one(ExplainPane).border_title == "Explanation"

    drive(app, steps)


def test_help_lists_every_key() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = _text(app.screen.query_one("#help-text", Static))
        for k in KEYS:
            assert k.words("en") in text and k.shown in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("l", "question_mark")
        text = _text(app.screen.query_one("#help-text", Static))
        assert all(k.words("zh") in text for k in KEYS)

    drive(app, steps)


def test_export_writes_the_screenshot_and_the_text_ladder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.chdir(tmp_path)
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await pilot.pause()

    drive(app, steps)
    svgs, txts = list(tmp_path.glob("tracer-hello-*.svg")), list(tmp_path.glob("tracer-hello-*.txt"))
    assert len(svgs) == 1 and len(txts) == 1
    assert "<svg" in svgs[0].read_text() and "SYN" in svgs[0].read_text()
    assert app.trace is not None and app.analysis is not None
    want = list(render_ladder(app.trace, app.analysis, lang="en", width=120))
    assert txts[0].read_text().splitlines() == want


def test_quit_key_ends_the_app() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.press("q")
        await pilot.pause()

    drive(app, steps)
    assert app.return_value == 0 and not app.is_running


def test_detail_pane_dissects_packets_and_shows_call_records() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        m = app.model
        assert m is not None
        r = next(r for r in range(len(m)) if int(m.kind[r]) == KIND_PACKET)
        await pilot.press(*["down"] * r)
        await app.workers.wait_for_complete()
        await pilot.pause()
        tree = app.query_one("#layers", Tree)
        layers = [str(n.label) for n in tree.root.children]
        assert "TCP" in layers and "IP" in layers
        assert "0000" in _text(app.query_one("#hex", Static))
        rc = next(r for r in range(len(m))
                  if int(m.kind[r]) == KIND_CALL and m.calls[int(m.ref[r])].call == "accept")
        await pilot.press("g", *["down"] * rc)
        await pilot.pause()
        assert "accept()" in str(tree.root.label)
        leaves = " ".join(str(n.label) for n in tree.root.children)
        c = m.calls[int(m.ref[rc])]
        assert f"{c.fd}" in leaves and str(c.source.line) in leaves  # type: ignore[union-attr]
        # The source pane highlights that call's line.
        assert call_line(m, rc) == c.source.line  # type: ignore[union-attr]
        assert app.query_one(SourcePane).display

    drive(app, steps)


def test_narrow_terminal_shows_one_lower_pane_and_d_cycles_them() -> None:
    app = _app()

    async def steps(pilot: Pilot[int]) -> None:
        await pilot.pause()
        visible = [p.id for p in app.query("#panes > *") if p.display]
        assert visible == ["explain"]
        await pilot.press("d")
        assert [p.id for p in app.query("#panes > *") if p.display] == ["detail"]
        await pilot.press("d")
        assert [p.id for p in app.query("#panes > *") if p.display] == ["source"]

    drive(app, steps, size=(80, 24))


def test_big_file_shows_its_head_then_loads_the_rest(corpus: Path) -> None:
    path = corpus / "zeek__http__206_example_b.pcap"
    head = read_capture_head(path, 100_000)
    assert head is not None
    seen: list[int] = []

    class Watched(TracerApp):
        def _show_model(self, model, keep_packet=None):  # type: ignore[no-untyped-def]
            seen.append(len(model.trace.packets))
            super()._show_model(model, keep_packet)

    app = Watched(trace=head, analysis=analyze(head), path=str(path))

    async def steps(pilot: Pilot[int]) -> None:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not app.loading and "loading" not in _status(app)

    drive(app, steps)
    full = len(load(str(path))[0].packets)
    assert seen == [len(head.packets), full] and len(head.packets) < full


class _Recording(TracerApp):
    updates: list[int]

    def _live_update(self, trace, analysis):  # type: ignore[no-untyped-def]
        self.updates.append(len(trace.packets) + len(trace.calls))
        super()._live_update(trace, analysis)


@pytest.mark.lab
def test_live_mode_rows_arrive_and_the_view_follows(tmp_path: Path) -> None:
    from tracer.lab.scenarios import find_scenario

    out = tmp_path / "live.pcapng"
    app = _Recording(live=LiveSpec(find_scenario("hello"), out, False, 10.0))
    app.updates = []

    async def steps(pilot: Pilot[int]) -> None:
        for _ in range(300):
            if not app.live_running:
                break
            await pilot.pause(0.05)
        assert not app.live_running
        await pilot.pause()
        m = app.model
        assert m is not None
        assert app.following and app.ladder.cursor == len(m) - 1
        await pilot.press("up")
        assert not app.following and app.ladder.cursor == len(m) - 2
        await pilot.press("f")
        assert app.following and app.ladder.cursor == len(m) - 1
        assert "saved" in _status(app)

    drive(app, steps)
    res = app.live_outcome.result
    assert res is not None and app.live_outcome.error is None and out.exists()
    trace, _ = load(str(out))
    assert len(trace.packets) >= 10 and len(trace.calls) >= 10
    # Rows arrived while the scenario ran, not all at once at the end.
    assert app.updates and min(app.updates) < len(trace.packets) + len(trace.calls)


def _slow_scenario(tmp_path: Path) -> object:
    from tracer.lab.scenarios import read_scenario

    slow = tmp_path / "slow.py"
    slow.write_text(textwrap.dedent('''
        import socket, time
        TITLE = {"en": "slow", "zh": "慢"}
        PROTO = "tcp"
        PORT = 7781

        def server(host, port):
            s = socket.socket(); s.bind((host, port)); s.listen(1)
            c, _ = s.accept(); time.sleep(30)

        def client(host, port):
            s = socket.socket(); s.connect((host, port)); time.sleep(30)
    '''))
    return read_scenario(slow)


async def _until_packets(app: TracerApp, pilot: Pilot[int], n: int) -> None:
    """Wait (10 s at most) until a live run has captured ``n`` packets."""
    for _ in range(200):
        if app.trace is not None and len(app.trace.packets) >= n:
            break
        await pilot.pause(0.05)
    assert app.trace is not None and len(app.trace.packets) >= n


@pytest.mark.lab
def test_quitting_a_live_run_still_saves_the_capture(tmp_path: Path) -> None:
    out = tmp_path / "slow.pcapng"
    app = TracerApp(live=LiveSpec(_slow_scenario(tmp_path), out, False, 60.0))

    async def steps(pilot: Pilot[int]) -> None:
        await _until_packets(app, pilot, 3)
        await pilot.press("q")
        for _ in range(200):
            if not app.is_running:
                break
            await pilot.pause(0.05)

    drive(app, steps)
    assert app.live_outcome.interrupted and out.exists()
    trace, _ = load(str(out))
    assert len(trace.packets) >= 3


@pytest.mark.lab
def test_a_live_run_is_saved_when_the_app_ends_without_q(tmp_path: Path) -> None:
    """A browser tab closed under tracer serve, or a signal, ends the app without its quit
    action: the run is stopped as on Ctrl-C and its capture still saved (tracer.tui.live)."""
    out = tmp_path / "slow.pcapng"
    app = TracerApp(live=LiveSpec(_slow_scenario(tmp_path), out, False, 60.0))

    async def steps(pilot: Pilot[int]) -> None:
        await _until_packets(app, pilot, 3)
        app.exit(0)  # what textual's web driver does when the tab goes away

    drive(app, steps)
    assert not out.exists() or app.live_outcome.result is not None
    app.finish_live()
    assert app.live_outcome.interrupted and out.exists()
    trace, _ = load(str(out))
    assert len(trace.packets) >= 3


_PY_SERVER = ("import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('0.0.0.0', 7790)); s.listen(); c, _ = s.accept(); c.sendall(c.recv(100).upper()); "
              "c.close()")
_PY_CLIENT = ("import os, socket; s = socket.create_connection((os.environ['TRACER_SERVER'], 7790)); "
              "s.sendall(b'hi'); s.recv(100); s.close()")


@pytest.mark.lab
def test_live_mode_shows_a_traced_program(tmp_path: Path) -> None:
    """tracer trace in the UI: plain Python processes under strace, rows as they arrive."""
    import functools
    import shlex
    import sys

    from tracer.lab.trace_cmd import trace_programs

    out = tmp_path / "trace.pcapng"
    run = functools.partial(trace_programs, f"{sys.executable} -c {shlex.quote(_PY_SERVER)}",
                            f"{sys.executable} -c {shlex.quote(_PY_CLIENT)}", out)
    app = TracerApp(live=LiveSpec(None, None, False, 10.0,
                                  lambda progress, cancel: run(progress=progress, cancel=cancel), "python3"))

    async def steps(pilot: Pilot[int]) -> None:
        assert "live: python3" in _status(app)
        for _ in range(300):
            if not app.live_running:
                break
            await pilot.pause(0.05)
        assert not app.live_running
        await pilot.pause()
        assert "saved" in _status(app)

    drive(app, steps)
    assert app.live_outcome.error is None and out.exists()
    m = app.model
    assert m is not None and app.trace is not None
    assert len(app.trace.packets) >= 9  # handshake, 2 bytes each way, close
    names = {c.call for c in app.trace.calls}
    assert {"connect", "accept", "close"} <= names
    # The SYN is the client's connect(), as the strace record says.
    syn = next(i for i in range(len(app.trace.packets)) if int(app.trace.packets.tcp_flags[i]) == 0x02)
    cid = int(app.analysis.cause_call_id[syn])  # type: ignore[union-attr]
    assert next(c for c in app.trace.calls if c.id == cid).call == "connect"


def test_a_crash_in_a_worker_ends_the_app_with_its_report(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only a TracerError: any error in a thread worker (here the filter's model build)
    ends the app with code 1 and a saved report, and the command's one line names it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    app = _app()

    def broken(self: object) -> None:
        raise RuntimeError("injected fault in a worker")

    async def steps(pilot: Pilot[int]) -> None:
        assert app.model is not None
        monkeypatch.setattr(type(app.model), "prev_in_stream", broken)
        await pilot.press("slash", *"syn", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()

    with pytest.raises(WorkerFailed):  # Pilot re-raises the app's error for the test
        drive(app, steps)
    assert app.return_code == 1
    reports = list((tmp_path / "tracer").glob("tracer-crash-*.txt"))
    assert len(reports) == 1
    text = reports[0].read_text(encoding="utf-8")
    assert "in build_model" in text, text
    assert text.rstrip().endswith("RuntimeError: injected fault in a worker"), text
    assert app.crash is not None and app.crash.exit_code == 1
    assert app.crash.message == WORDS["en"]["crashed"].format(
        error="RuntimeError: injected fault in a worker", path=reports[0])
