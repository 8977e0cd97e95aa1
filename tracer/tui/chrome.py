"""What the ladder screen's chrome says: the status line, the warnings line and the
key footer, as rich ``Text``.

Rich only, no Textual (as ``stage.py`` is for presenter mode): ``chrome`` is a pure
function of a ``View``, the few facts the app holds about what it shows, so it is
tested on its own and the app only puts the texts in its widgets.  The lane header
above the ladder stays with the ladder widget, whose column layout it follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text

from tracer.core.analysis import Analysis
from tracer.core.model import PROTO_TCP
from tracer.core.trace import Trace
from tracer.i18n import warning_text
from tracer.ladder.filter import Filter
from tracer.tui.text import KEYS, words


@dataclass(frozen=True)
class View:
    """What the app shows, as far as its chrome tells of it."""

    lang: str
    source: str  # the capture's name
    live: str | None = None  # a live run's name (its status line names the run, not a file)
    rows: int | None = None  # rows in the ladder (None: no model yet)
    cursor: int = 0  # the selected row
    stepping: bool = False  # step mode: the rows after the cursor are hidden
    playing: bool = False
    speed: float = 1.0
    stream: tuple[int, int] | None = None  # (proto, stream index) shown alone
    filter: Filter = field(default_factory=Filter)
    following: bool = False  # a live view keeps the newest row selected
    message: str = ""
    loading: bool = False
    trace: Trace | None = None
    analysis: Analysis | None = None


@dataclass(frozen=True)
class Chrome:
    status: Text
    warning: Text | None  # None: the warnings line is hidden
    keys: Text


def chrome(v: View) -> Chrome:
    return Chrome(status_line(v), warning_line(v), key_footer(v.lang))


def status_line(v: View) -> Text:
    w = words(v.lang)
    status = Text()
    status.append(" tracer ", style="bold black on cyan")
    name = w["live"].format(name=v.live) if v.live is not None else v.source
    status.append(f" {name}", style="bold")
    # What changes with each key comes first: a narrow terminal cuts the end of the line.
    if v.rows:
        if v.stepping:
            status.append(" · " + w["step"].format(row=v.cursor + 1, total=v.rows), style="bold green")
            if v.playing:
                status.append(" · " + w["playing"].format(speed=f"{v.speed:g}"), style="green")
        else:
            status.append(" · " + w["rows"].format(row=f"{v.cursor + 1:,}", total=f"{v.rows:,}"))
    if v.stream is not None:
        tag = ("tcp " if v.stream[0] == PROTO_TCP else "udp ") + str(v.stream[1])
        status.append(" · " + w["stream"].format(tag=tag), style="magenta")
    if not v.filter.empty:
        status.append(f" · {w['filter']}: {v.filter.expr}", style="magenta")
    if v.live is not None and v.following:
        status.append(" · " + w["following"], style="green")
    if v.message:
        status.append(" · " + v.message, style="bold yellow")
    if v.loading and v.trace is not None:
        status.append(" · " + w["partial"].format(n=f"{len(v.trace.packets):,}"), style="yellow")
    elif v.loading:
        status.append(" · " + w["loading"].format(what=""), style="yellow")
    if v.trace is not None and v.analysis is not None:
        t, a = v.trace, v.analysis
        summary = w["loaded"].format(n=f"{len(t.packets):,}", calls=f"{len(t.calls):,}",
                                     tcp=f"{len(a.tcp_streams):,}", udp=f"{len(a.udp_streams):,}")
        status.append(" · " + summary)
    status.no_wrap = True
    status.overflow = "ellipsis"
    return status


def warning_line(v: View) -> Text | None:
    """The filter's error, a filter that matches nothing, or the trace's first warning."""
    w = words(v.lang)
    ws = v.trace.warnings if v.trace is not None else ()
    if v.filter.error:
        msg = v.filter.error_text(v.lang)
        return Text(w["filter_bad"].format(msg=msg), style="bold")
    if v.rows == 0 and not v.filter.empty:
        return Text(w["filter_none"].format(expr=v.filter.expr), style="bold")
    if ws:
        first = warning_text(ws[0], v.lang)
        return Text("⚠ " + w["warnings"].format(n=len(ws), first=first), style="bold")
    return None


def key_footer(lang: str) -> Text:
    keys = Text(no_wrap=True, overflow="ellipsis")
    # Help and quit first: on a narrow terminal the end of the line is cut.
    footer = sorted((k for k in KEYS if k.in_footer), key=lambda k: k.action not in ("help", "quit"))
    for k in footer:
        keys.append(f" {k.shown} ", style="bold black on cyan")
        keys.append(f" {k.footer_words(lang)} ")
    return keys
