"""The ladder pane: a line-API ``ScrollView`` that paints only the rows on screen.

No widget per row: ``render_line`` asks the ``LadderModel`` for the cells of the
one row it paints, so a million-row ladder scrolls as fast as a ten-row one.
Columns, left to right: packet number, time, stream tag (several streams), the
client's application lane (the call that made the packet), the client's kernel
lane (● when the kernel sent the packet by itself), the wire with the arrow, the
server's kernel and application lanes, then states, analysis flags and cause.

The view posts ``Selected`` when the cursor moves (messages up); the app sets
``model``, ``lang``, ``raw_seq`` and ``revealed`` (attributes down).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tracer.ladder.labels import LABELS
from tracer.ladder.model import KIND_CALL, KIND_PACKET, Cells, LadderModel
from tracer.ladder.text import arrow, clip, pad
from tracer.tui.text import words

# Arrow colours by the segment's most telling flag (RST > SYN > FIN > data > ACK).
_ARROW = {
    "rst": Style(color="red", bold=True),
    "syn": Style(color="green", bold=True),
    "fin": Style(color="yellow", bold=True),
    "data": Style(color="cyan"),
    "ack": Style(color="bright_black"),
    "udp": Style(color="blue", bold=True),
    "other": Style(color="magenta"),
}
_NOTE = {
    "state": Style(color="green"),
    "analysis": Style(color="red"),
    "kernel": Style(color="bright_black", italic=True),
    "cause": Style(color="cyan"),
    "error": Style(color="red", bold=True),
    "drop": Style(color="red", bold=True),
    "dim": Style(dim=True),
}
_DIM = Style(dim=True)
_LANE = Style(color="bright_black")
_CALL = Style(color="bright_white", bold=True)
_CALL_ERR = Style(color="red", bold=True)
_WARN = Style(color="black", bgcolor="yellow", bold=True)
_KERNEL_DOT = Style(color="yellow", bold=True)
_CURSOR = Style(bgcolor="#2d4f7c")


def _arrow_style(c: Cells) -> Style:
    if c.kind != KIND_PACKET:
        return _ARROW["other"]
    if c.label.startswith("UDP"):
        return _ARROW["udp"]
    f = c.tcp_flags
    if f & 0x04:
        return _ARROW["rst"]
    if f & 0x02:
        return _ARROW["syn"]
    if f & 0x01:
        return _ARROW["fin"]
    if "len=0" not in c.label:
        return _ARROW["data"]
    return _ARROW["ack"]


@dataclass(frozen=True)
class Layout:
    """Column widths for one terminal width."""

    no: int
    time: int
    tag: int
    app: int
    wire: int
    width: int

    @property
    def prefix(self) -> int:
        return self.no + 1 + self.time + 1 + (self.tag + 1 if self.tag else 0)

    @property
    def notes_at(self) -> int:
        return self.prefix + self.app + 1 + self.wire + 1 + self.app + 1


def layout(model: LadderModel | None, width: int) -> Layout:
    n = len(model.trace.packets) if model is not None else 0
    no = max(2, len(str(n)))
    time = 10
    if model is not None and len(model):
        # The extremes: calls before the first packet have negative times.
        ends = (model.time_ns(0), model.time_ns(len(model) - 1))
        time = max(8, *(len(f"{(t - model.t0) / 1e9:.6f}") for t in ends))
    tag = 6 if model is not None and model.multi() else 0
    rest = max(40, width) - (no + 1 + time + 1 + (tag + 1 if tag else 0))
    app = max(8, min(16, rest // 7))
    wire = max(22, min(46, rest - 2 * app - 3 - max(14, rest // 4)))
    return Layout(no, time, tag, app, wire, width)


def compose_row(c: Cells, lay: Layout) -> list[Segment]:
    """The segments of one ladder row (before the cursor style and horizontal scroll)."""
    segs: list[Segment] = []
    add = segs.append
    add(Segment(pad(c.no, lay.no, right=True) + " ", _DIM))
    add(Segment(pad(c.time, lay.time, right=True) + " ", _DIM))
    if lay.tag:
        add(Segment(pad(c.tag, lay.tag) + " ", Style(color="magenta")))
    if c.kind == KIND_PACKET and c.direction:
        style = _arrow_style(c)
        add(Segment(pad(clip(c.left_app, lay.app), lay.app, right=True), _CALL))
        left_lane = "●" if c.kernel == "L" else ("┼" if c.left_app and c.direction > 0 else "│")
        right_lane = "●" if c.kernel == "R" else ("┼" if c.right_app and c.direction < 0 else "│")
        add(Segment(left_lane, _KERNEL_DOT if left_lane == "●" else _LANE))
        add(Segment(arrow(c.label, c.direction > 0, lay.wire, bool(c.dropped)), style))
        add(Segment(right_lane, _KERNEL_DOT if right_lane == "●" else _LANE))
        add(Segment(pad(clip(c.right_app, lay.app), lay.app), _CALL))
    elif c.kind == KIND_CALL:
        style = _CALL_ERR if c.error else _CALL
        right = bool(c.right_app)
        add(Segment(pad(clip(c.left_app, lay.app), lay.app, right=True), style))
        add(Segment("│", _LANE))
        text = clip(c.label, lay.wire - 2)
        add(Segment(" " + pad(text, lay.wire - 2, right=right) + " ", _CALL_ERR if c.error else _DIM))
        add(Segment("│", _LANE))
        add(Segment(pad(clip(c.right_app, lay.app), lay.app), style))
    elif c.kind == KIND_PACKET:
        add(Segment(" " * lay.app + "│", _LANE))
        add(Segment(" " + pad(clip(c.label, lay.wire - 2), lay.wire - 2) + " ", _ARROW["other"]))
        add(Segment("│" + " " * lay.app, _LANE))
    else:
        add(Segment(clip(c.label, max(10, lay.width - lay.prefix)), _WARN))
        return segs
    add(Segment(" "))
    for k, (text, kind) in enumerate(c.notes):
        if k:
            add(Segment(" · ", _DIM))
        add(Segment(text, _NOTE.get(kind, _DIM)))
    return segs


class LadderView(ScrollView, can_focus=True):
    """The ladder (see the module docstring)."""

    DEFAULT_CSS = """
    LadderView { height: 1fr; }
    """
    # The cursor keys move the selection (the app's actions), not just the scroll position.
    BINDINGS = [
        Binding("up,k", "app.cursor_up", show=False),
        Binding("down,j", "app.cursor_down", show=False),
        Binding("pageup", "app.page_up", show=False),
        Binding("pagedown", "app.page_down", show=False),
        Binding("home", "app.first", show=False),
        Binding("end", "app.last", show=False),
    ]

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Selected(Message):
        """The cursor moved to ``row`` (posted for every move; the app updates the panes)."""

        def __init__(self, row: int) -> None:
            self.row = row
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model: LadderModel | None = None
        self.lang = "en"
        self.raw_seq = False
        self.revealed: int | None = None  # step mode: only the first N rows are shown
        self._layout: Layout | None = None
        self._cache: dict[int, list[Segment]] = {}

    # --- attributes down ------------------------------------------------------------

    @property
    def rows(self) -> int:
        n = len(self.model) if self.model is not None else 0
        return n if self.revealed is None else min(n, self.revealed)

    def set_model(self, model: LadderModel, cursor: int | None = None) -> None:
        self.model = model
        self._layout = None
        self._cache.clear()
        self._resize()
        self.move_to(self.cursor if cursor is None else cursor, center=cursor is not None)
        self.refresh()

    def set_view(self, *, lang: str | None = None, raw_seq: bool | None = None) -> None:
        if lang is not None:
            self.lang = lang
        if raw_seq is not None:
            self.raw_seq = raw_seq
        self._cache.clear()
        self.refresh()

    def set_revealed(self, revealed: int | None) -> None:
        self.revealed = revealed
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        width = self.layout_for().notes_at + 60
        self.virtual_size = Size(width, self.rows)

    def layout_for(self) -> Layout:
        width = self.scrollable_content_region.width or 120
        if self._layout is None or self._layout.width != width:
            self._layout = layout(self.model, width)
            self._cache.clear()
        return self._layout

    def on_resize(self, event: events.Resize) -> None:
        self._layout = None
        self._resize()

    # --- moving -----------------------------------------------------------------------

    def move_to(self, row: int, *, center: bool = False) -> None:
        n = self.rows
        row = max(0, min(row, n - 1)) if n else 0
        self.cursor = row
        self.scroll_to_region_row(row, center=center)
        self.refresh()
        self.post_message(self.Selected(row))

    def scroll_to_region_row(self, row: int, *, center: bool = False) -> None:
        height = self.scrollable_content_region.height or 1
        top = int(self.scroll_offset.y)
        if center:
            self.scroll_to(y=max(0, row - height // 2), animate=False)
        elif row < top:
            self.scroll_to(y=row, animate=False)
        elif row >= top + height:
            self.scroll_to(y=row - height + 1, animate=False)

    def page(self) -> int:
        return max(1, (self.scrollable_content_region.height or 2) - 1)

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_offset.y) + event.y
        if 0 <= row < self.rows:
            self.move_to(row)

    # --- painting ---------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = int(scroll_y) + y
        width = self.scrollable_content_region.width
        if self.model is None or row >= self.rows:
            return Strip.blank(width, self.rich_style)
        segs = self._cache.get(row)
        if segs is None:
            cells = self.model.cells(row, self.lang, self.raw_seq)
            segs = compose_row(cells, self.layout_for())
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[row] = segs
        strip = Strip(segs)
        if row == self.cursor:
            strip = strip.extend_cell_length(self.virtual_size.width).apply_style(_CURSOR)
        return strip.crop(int(scroll_x), int(scroll_x) + width).extend_cell_length(width).apply_style(
            self.rich_style)


def header_line(model: LadderModel | None, row: int, lay: Layout, lang: str) -> str:
    """The lane names above the ladder, for the stream of the selected row."""
    w = words(lang)
    key = model.stream_of_row(row) if model is not None and len(model) else None
    if key is None and model is not None and model.stream is not None:
        key = model.stream
    lanes = model.lanes(key) if model is not None else None
    client = lanes is None or lanes.left_role == "client"
    left_app = w["client_app"] if client else w["left_app"]
    right_app = w["server_app"] if client else w["right_app"]
    lab = LABELS[lang]
    head = pad("#", lay.no, right=True) + " "
    head += pad(clip(lab["time"], lay.time), lay.time, right=True) + " "
    if lay.tag:
        head += pad("strm", lay.tag) + " "
    head += pad(clip(left_app, lay.app), lay.app, right=True) + "┃"
    mid = f" {lanes.left} ⇄ {lanes.right} " if lanes is not None else f" {w['wire']} "
    head += pad(clip(mid, lay.wire), lay.wire) + "┃" + pad(clip(right_app, lay.app), lay.app)
    return head + " " + w["notes"]
