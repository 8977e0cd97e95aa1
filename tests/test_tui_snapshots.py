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
from tracer.cli import load
from tracer.tui.app import TracerApp
from tracer.tui.rows import KIND_PACKET

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
