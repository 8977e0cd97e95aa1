"""Modal screens: the help (every key), the stream picker, the filter prompt."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tracer.core.model import PROTO_TCP, PROTO_UDP, StreamInfo
from tracer.tui.text import KEYS, Key, words

StreamKey = tuple[int, int]
PICKER_LIMIT = 500  # options listed at once; typing narrows a big capture's list


class HelpScreen(ModalScreen[None]):
    """Every key and what it does, in the current language."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", show=False)]

    def __init__(self, lang: str, keys: tuple[Key, ...] = KEYS) -> None:
        super().__init__()
        self.lang = lang
        self.keys = keys

    def compose(self) -> ComposeResult:
        w = words(self.lang)
        text = Text()
        text.append(w["help_title"] + "\n\n", style="bold")
        for k in self.keys:
            text.append(f"  {k.shown:<9}", style="bold cyan")
            text.append(k.words(self.lang) + "\n")
        if self.keys is KEYS:
            text.append("\n" + w["help_mouse"] + "\n")
            text.append(w["help_legend"] + "\n")
        text.append("\n")
        text.append(w["help_close"], style="dim")
        with Vertical(id="help-box"):
            yield Static(text, id="help-text")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)


def stream_label(info: StreamInfo) -> str:
    proto = "TCP" if info.proto == "tcp" else "UDP"
    client = info.client or info.a
    server = info.b if client == info.a else info.a
    span = f"#{info.first_no}–#{info.last_no}"
    return f"{proto} {info.index:>5}  {client} → {server}  ({info.packets} pkts, {span})"


class StreamPicker(ModalScreen[StreamKey | None | bool]):
    """Choose one stream (or all).  Dismisses with the key, None for all, False if cancelled."""

    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, streams: list[StreamInfo], lang: str, current: StreamKey | None) -> None:
        super().__init__()
        self.streams = streams
        self.lang = lang
        self.current = current

    def compose(self) -> ComposeResult:
        w = words(self.lang)
        with Vertical(id="picker-box"):
            yield Static(w["streams_title"], id="picker-title")
            yield Input(placeholder=w["streams_search"], id="picker-search")
            yield OptionList(id="picker-list")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#picker-search", Input).focus()

    def _fill(self, query: str) -> None:
        w = words(self.lang)
        q = query.strip().lower()
        options = [Option(w["all_streams"], id="all")] if not q else []
        # A number picks that stream first; then every stream whose line contains the text.
        exact = [i for i in self.streams if q == str(i.index)]
        for info in exact + [i for i in self.streams if i not in exact]:
            text = stream_label(info)
            if q and info not in exact and q not in text.lower():
                continue
            options.append(Option(text, id=f"{info.proto}:{info.index}"))
            if len(options) > PICKER_LIMIT:
                break
        ol = self.query_one("#picker-list", OptionList)
        ol.clear_options()
        ol.add_options(options)
        if options:
            ol.highlighted = 0

    @on(Input.Changed, "#picker-search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#picker-search")
    def _enter(self) -> None:
        ol = self.query_one("#picker-list", OptionList)
        if ol.highlighted is not None and ol.option_count:
            self._choose(ol.get_option_at_index(ol.highlighted).id)

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        ol = self.query_one("#picker-list", OptionList)
        if key in ("down", "up") and self.focused is not ol:
            ol.focus()
            ol.action_cursor_down() if key == "down" else ol.action_cursor_up()
            getattr(event, "stop", lambda: None)()

    @on(OptionList.OptionSelected, "#picker-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option.id)

    def _choose(self, oid: str | None) -> None:
        if oid is None or oid == "all":
            self.dismiss(None)
            return
        proto, _, index = oid.partition(":")
        self.dismiss((PROTO_TCP if proto == "tcp" else PROTO_UDP, int(index)))

    def action_cancel(self) -> None:
        self.dismiss(False)


class FilterScreen(ModalScreen[str | None]):
    """The filter prompt (see ``tracer.ladder.filter`` for the words it takes)."""

    BINDINGS = [Binding("escape", "cancel", show=False)]

    def __init__(self, lang: str, current: str) -> None:
        super().__init__()
        self.lang = lang
        self.current = current

    def compose(self) -> ComposeResult:
        w = words(self.lang)
        with Vertical(id="filter-box"):
            yield Static(w["filter_prompt"], id="filter-title")
            yield Input(value=self.current, id="filter-input")

    def on_mount(self) -> None:
        self.query_one("#filter-input", Input).focus()

    @on(Input.Submitted, "#filter-input")
    def _submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
