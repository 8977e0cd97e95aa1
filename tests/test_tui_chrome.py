"""The ladder screen's chrome as a pure function (tracer.tui.chrome): the status line,
the warnings line and the key footer, from real captures and the words the TUI declares."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conftest import CAPTURES
from tracer.core.model import PROTO_TCP, PROTO_UDP
from tracer.ladder.filter import Filter
from tracer.loading import load
from tracer.tui.chrome import View, chrome, key_footer, status_line, warning_line
from tracer.tui.text import KEYS, WORDS

HELLO = CAPTURES / "hello.pcapng"


def _view(path: Path = HELLO, **kw: object) -> View:
    trace, analysis = load(str(path))
    return dataclasses.replace(View(lang="en", source=path.name, trace=trace, analysis=analysis), **kw)


def test_the_status_line_names_the_file_the_row_and_the_summary() -> None:
    v = _view(rows=1234, cursor=2)
    t, a = v.trace, v.analysis
    assert t is not None and a is not None
    w = WORDS["en"]
    summary = w["loaded"].format(n=len(t.packets), calls=len(t.calls), tcp=len(a.tcp_streams),
                                 udp=len(a.udp_streams))
    rows = w["rows"].format(row=3, total="1,234")
    assert status_line(v).plain == f" tracer  {HELLO.name} · {rows} · {summary}"
    zh = status_line(_view(lang="zh", rows=5, cursor=0)).plain
    assert WORDS["zh"]["rows"].format(row=1, total=5) in zh and "row" not in zh


def test_the_status_line_in_step_mode_playing_with_a_stream_a_filter_and_a_message() -> None:
    w = WORDS["en"]
    line = status_line(_view(rows=10, cursor=3, stepping=True, playing=True, speed=0.5,
                             stream=(PROTO_UDP, 2), filter=Filter("syn"), message="saved x.svg")).plain
    parts = line.split(" · ")
    assert parts[1:6] == [w["step"].format(row=4, total=10), w["playing"].format(speed="0.5"),
                          w["stream"].format(tag="udp 2"), f"{w['filter']}: syn", "saved x.svg"]
    # Not playing: no speed; not stepping: the plain row counter, never both.
    line = status_line(_view(rows=10, cursor=3, stream=(PROTO_TCP, 0), speed=0.5)).plain
    assert w["rows"].format(row=4, total=10) in line and w["stream"].format(tag="tcp 0") in line
    assert w["playing"].format(speed="0.5") not in line and w["step"].split()[0] not in line


def test_a_live_run_is_named_as_such_and_says_when_it_follows() -> None:
    w = WORDS["en"]
    following = status_line(View(lang="en", source="", live="hello", following=True)).plain
    assert following == f" tracer  {w['live'].format(name='hello')} · {w['following']}"
    assert w["following"] not in status_line(View(lang="en", source="", live="hello")).plain
    # Only a live view follows: a file's view never says so.
    assert w["following"] not in status_line(View(lang="en", source="f.pcap", following=True)).plain


def test_loading_says_how_much_is_shown() -> None:
    w = WORDS["en"]
    v = _view(loading=True, rows=3)
    assert v.trace is not None
    assert w["partial"].format(n=len(v.trace.packets)) in status_line(v).plain
    bare = status_line(View(lang="en", source="big.pcap", loading=True)).plain
    assert bare == f" tracer  big.pcap · {w['loading'].format(what='')}"


def test_the_warnings_line_filter_error_then_no_match_then_the_trace_warning(corpus: Path) -> None:
    w = WORDS["en"]
    bad = Filter("port=x")
    assert bad.error
    en = warning_line(_view(filter=bad, rows=0))
    assert en is not None and en.plain == w["filter_bad"].format(msg=bad.error_text("en"))
    zh = warning_line(_view(lang="zh", filter=bad, rows=0))
    assert zh is not None and zh.plain == WORDS["zh"]["filter_bad"].format(msg=bad.error_text("zh"))
    none = warning_line(_view(filter=Filter("rst"), rows=0))
    assert none is not None and none.plain == w["filter_none"].format(expr="rst")
    assert warning_line(_view(rows=7)) is None  # hello has no warning
    path = corpus / "dpkt__truncated_dns_2.pcap"
    v = _view(path, rows=3)
    assert v.trace is not None and v.trace.warnings
    first = " ".join(v.trace.warnings[0].message.split())
    got = warning_line(v)
    assert got is not None and got.plain == "⚠ " + w["warnings"].format(n=len(v.trace.warnings), first=first)


def test_the_footer_shows_help_and_quit_first_in_the_language() -> None:
    shown = [k for k in KEYS if k.in_footer]
    for lang in ("en", "zh"):
        footer = key_footer(lang).plain
        order = sorted(shown, key=lambda k: footer.index(f" {k.shown}  {k.footer_words(lang)} "))
        assert {k.action for k in order[:2]} == {"help", "quit"}
        assert [k.action for k in order[2:]] == [k.action for k in shown if k.action not in ("help", "quit")]


def test_chrome_bundles_the_three() -> None:
    v = _view(rows=2)
    c = chrome(v)
    assert (c.status.plain, c.warning, c.keys.plain) == (status_line(v).plain, None, key_footer("en").plain)
