"""The Markdown handout (tracer.export.handout) rendered by markdown-it-py, checked against the trace.

The handout is rendered as CommonMark with GFM tables (markdown-it-py) and the HTML is
parsed as XML (a stray tag or unbalanced markup fails).  Oracles: the lesson's steps
(one list item each, in order, with the lesson's label, sentence and states),
tshark (every frame's label; the frames it marks as retransmissions, fast
retransmissions and duplicate ACKs; the bytes each side sent), the scenario's own file
(its title, read by tracer's scenario reader), the recorded socket calls (failed
calls, accept() after the handshake) and the analysis columns (which packets the
kernel sent, how each stream ended).  The Mermaid block is exactly
``render_mermaid``'s text.  A capture whose file name is full of Markdown syntax
must come out as literal text.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from conftest import CAPTURES, corpus_files, tiled_lesson, tshark_fields
from helpers.cli import tracer_ok
from helpers.frames import tshark_frames
from tracer.core.model import PROTO_TCP, CauseBy, TcpState
from tracer.export.handout import MERMAID_STEPS, TEXT, render_markdown
from tracer.export.mermaid import render_mermaid
from tracer.i18n.explain import state_name
from tracer.lab.scenarios import Scenario, read_scenario
from tracer.ladder.kernel import drop_text
from tracer.lesson.steps import Lesson, build_lesson
from tracer.loading import load

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcapng"
MD = MarkdownIt("commonmark").enable("table")


def corpus(name: str) -> Path:
    return next(p for p in corpus_files(malformed=None) if p.name == name)


def handout(path: Path, lang: str = "en") -> tuple[Any, Lesson, str, ET.Element]:
    trace, analysis = load(path)
    lesson = build_lesson(trace, analysis, lang)
    md = render_markdown(lesson, trace)
    return trace, lesson, md, html_tree(md)


def recorded_scenario(trace: Any, tmp_path: Path) -> Scenario:
    """The scenario as the capture recorded it (its source), read by tracer's scenario reader."""
    src = tmp_path / f"{trace.meta.extra['scenario']}.py"
    src.write_text(trace.meta.extra["scenario.source"], encoding="utf-8")
    return read_scenario(src)


def html_tree(md: str) -> ET.Element:
    return ET.fromstring(f"<root>{MD.render(md)}</root>")


def text(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def step_items(root: ET.Element) -> list[ET.Element]:
    (ol,) = root.findall("ol")
    return list(ol.findall("li"))


def notices(root: ET.Element, lang: str = "en") -> list[str]:
    """The items of the "what to notice" list."""
    kids = list(root)
    k = next(i for i, e in enumerate(kids) if e.tag == "h2" and text(e) == TEXT[lang]["notice"])
    ul = kids[k + 1]
    assert ul.tag == "ul"
    return [text(li) for li in ul.findall("li")]


def check_steps(root: ET.Element, lesson: Lesson, lab_states: bool = True) -> None:
    """One list item per step, in order, each with its time, label, sentence and states."""
    items = step_items(root)
    assert len(items) == len(lesson.steps)
    for li, s in zip(items, lesson.steps, strict=True):
        body = text(li)
        assert body.startswith(f"{lesson.rel_s(s):.6f} s"), body
        if s.kind == "warning":
            assert " ".join(s.label.split()) in body
            continue
        codes = [text(c) for c in li.iter("code")]
        label = " ".join(s.label.split())
        assert codes[-1] == label or (s.kind == "call" and label.endswith(" " + codes[-1])), (codes, label)
        assert " ".join(s.sentence.split()) in body
        if s.kind == "packet" and s.states is not None and lab_states:
            for st in s.states:
                assert st in body
        assert "**" not in body and "`" not in body.replace(label, "") and "\\" not in body


def test_hello_handout_renders_every_step_in_order(tmp_path: Path) -> None:
    trace, lesson, md, root = handout(HELLO)
    scenario = recorded_scenario(trace, tmp_path)
    assert [text(h) for h in root.findall("h1")] == [scenario.title["en"]]
    words = TEXT["en"]
    assert [text(h) for h in root.findall("h2")] == [words["who"], words["diagram"], words["steps"],
                                                     words["notice"]]
    assert text(root.find("p")).split(" · ")[:3] == [  # type: ignore[arg-type]
        words["handout"], f"scenario {scenario.name}", f"capture {trace.meta.source}"]
    check_steps(root, lesson)
    # Every packet's label as tshark reads the frame, in packet order.
    items = step_items(root)
    shown = [text(list(li.iter("code"))[-1]) for li, s in zip(items, lesson.steps, strict=True)
             if s.is_packet]
    assert shown == [f.label for f in tshark_frames(HELLO)]
    # The Mermaid block is render_mermaid's text, and nothing else is a code block.
    fences = [t for t in MD.parse(md) if t.type == "fence"]
    assert [(t.info, t.content) for t in fences] == [("mermaid", render_mermaid(lesson))]
    assert [e.get("class") for e in root.iter("code") if e.get("class")] == ["language-mermaid"]


def test_who_is_who_table_has_tsharks_endpoints() -> None:
    _, lesson, _, root = handout(corpus("dpkt__nb6-http.pcap"))
    (table,) = root.iter("table")
    rows = [[text(c) for c in tr] for tr in table.iter("tr")]
    assert all(len(r) == 3 for r in rows), rows
    frames = tshark_frames(corpus("dpkt__nb6-http.pcap"))
    ends: dict[str, set[str]] = {}
    for f in frames:
        if f.stream:
            ends.setdefault(f.stream, set()).update((f.src, f.dst))
    for name, left, right in rows[1:]:
        proto, _, n = name.split()
        key = f"{proto[0].lower()}{n}"
        assert {left.split()[-1], right.split()[-1]} == ends[key]
    check_steps(root, lesson)


def test_notices_come_from_the_trace(tmp_path: Path) -> None:
    trace, _, _, root = handout(HELLO)
    notes = notices(root)
    _, a = load(HELLO)
    t = trace.packets
    # The kernel's own packets, by the analysis' cause columns.
    kernel = [i + 1 for i in range(len(t)) if int(a.cause_by[i]) == CauseBy.KERNEL]
    (kern,) = [n for n in notes if n.startswith("The kernel sent")]
    assert sorted(int(x) for x in re.findall(r"\b(\d+)\b", kern.split(":", 1)[1])) == kernel
    # accept() returned after the server's side was ESTABLISHED (analysis states).
    info = a.tcp_streams[0]
    server_col = a.state_b if info.client == info.a else a.state_a
    est = next(i for i in range(len(t)) if int(server_col[i]) == TcpState.ESTABLISHED)
    acc = next(c for c in trace.calls if c.call == "accept")
    assert acc.t_ns > int(t.ts_ns[est])
    assert any(n.startswith("accept() returned") and f"(packet {est + 1})" in n for n in notes)
    # How the stream ended: the last TCP packet's states.
    last = max(i for i in range(len(t)) if int(t.proto[i]) == PROTO_TCP)
    sa, sb = (int(a.state_a[last]), int(a.state_b[last]))
    left, right = (sa, sb) if info.client == info.a else (sb, sa)
    assert (f"At the end of the capture, TCP stream 0: client {state_name(TcpState(left), 'en')}, "
            f"server {state_name(TcpState(right), 'en')}.") in notes
    # Bytes each way: tshark's tcp.len per sender.
    rows = tshark_fields(HELLO, "ip.src", "tcp.srcport", "tcp.len", extra=("-Y", "tcp"))
    sent: dict[str, list[int]] = {}
    for ip, port, n in rows:
        sent.setdefault(f"{ip}:{port}", []).append(int(n))
    client_bytes = sum(sent[info.client or info.a])
    server_bytes = sum(v for k, vs in sent.items() if k != (info.client or info.a) for v in vs)
    (data,) = [n for n in notes if n.startswith("TCP stream 0: client sent")]
    assert f"client sent {client_bytes} bytes" in data and f"server sent {server_bytes} bytes" in data
    # This capture's scenario source has no NOTICE: no section for it.
    assert not any(recorded_scenario(trace, tmp_path).notice.values()) and not root.findall("h3")


def test_analysis_flags_match_tshark() -> None:
    path = corpus("zeek__tcp__retransmit-fast009.pcap")
    _, lesson, _, root = handout(path)
    check_steps(root, lesson)
    rows = tshark_fields(path, "frame.number", "tcp.analysis.retransmission",
                         "tcp.analysis.fast_retransmission", "tcp.analysis.spurious_retransmission",
                         "tcp.analysis.duplicate_ack")
    want = {
        "retransmission": [int(r[0]) for r in rows if r[1] and not r[2] and not r[3]],
        "fast retransmission": [int(r[0]) for r in rows if r[2]],
        "dup ack": [int(r[0]) for r in rows if r[4]],
    }
    notes = notices(root)
    for flag, nos in want.items():
        assert nos, flag
        (note,) = [n for n in notes if n.startswith(f"tshark's analysis marks {flag}:")]
        listed = note.split(":", 1)[1]
        shown = [int(x) for x in re.findall(r"\d+", listed.split("…")[0])]
        assert shown == nos[: len(shown)] and len(shown) == min(len(nos), 12)
        if len(nos) > 12:
            assert f"({len(nos)} in all)" in listed


@pytest.mark.lab
def test_failed_call_and_icmp_from_a_live_run(tmp_path: Path) -> None:
    out = tmp_path / "unreachable.pcapng"
    tracer_ok("run", "udp-unreachable", "--no-tui", "--out", out)
    for lang in ("en", "zh"):
        trace, lesson, _, root = handout(out, lang)
        check_steps(root, lesson)
        failed = [c for c in trace.calls if c.error]
        assert failed
        notes = notices(root, lang)
        for c in failed:
            assert any(c.error in n and f"{c.call}()" in n for n in notes)
        # The scenario's own notes, as the capture recorded its source.
        scenario = recorded_scenario(trace, tmp_path)
        assert scenario.notice[lang]
        kids = list(root)
        (k,) = [i for i, e in enumerate(kids) if e.tag == "h3"]
        assert text(kids[k]) == TEXT[lang]["scenario_notes"]
        assert [text(li) for li in kids[k + 1].findall("li")] == [
            " ".join(x.split()) for x in scenario.notice[lang]]
        assert [text(h) for h in root.findall("h1")] == [scenario.title[lang]]
        (quote,) = root.findall("blockquote")
        assert text(quote) == " ".join(scenario.description[lang].split())
        assert [f.label for f in tshark_frames(out)] == [
            text(list(li.iter("code"))[-1]) for li, s in zip(step_items(root), lesson.steps, strict=True)
            if s.is_packet]


def test_chinese_handout(tmp_path: Path) -> None:
    trace, lesson, md, root = handout(HELLO, "zh")
    scenario = recorded_scenario(trace, tmp_path)
    assert [text(h) for h in root.findall("h1")] == [scenario.title["zh"]]
    words = TEXT["zh"]
    assert [text(h) for h in root.findall("h2")] == [words["who"], words["diagram"], words["steps"],
                                                     words["notice"]]
    check_steps(root, lesson)
    _, a = load(HELLO)
    body = text(root)
    for i in range(len(trace.packets)):
        for col in (a.state_a, a.state_b):
            if int(col[i]) >= 0:
                assert state_name(TcpState(int(col[i])), "zh") in body
    assert "内核" in body
    fences = [t for t in MD.parse(md) if t.type == "fence"]
    assert [(t.info, t.content) for t in fences] == [("mermaid", render_mermaid(lesson))]


def test_markdown_syntax_in_names_stays_text(tmp_path: Path) -> None:
    # A capture cut short: its warning and its title carry the file name.
    name = "a*b*_c_|d`e [x](y) <b>1. &amp; ~z~ #.pcap"
    path = tmp_path / name
    shutil.copy(corpus("dpkt__truncated_dns_2.pcap"), path)
    _, lesson, _, root = handout(path)
    assert [text(h) for h in root.findall("h1")] == [str(path)]
    assert str(path) in [text(c) for c in root.iter("code")]
    assert not list(root.iter("em")) or all(text(e) == TEXT["en"]["handout"] for e in root.iter("em"))
    assert not list(root.iter("a")) and not list(root.iter("b")) and not list(root.iter("del"))
    check_steps(root, lesson)
    (warning,) = [s for s in lesson.steps if s.kind == "warning"]
    assert str(path) in warning.label
    assert all(len(list(tr)) == 3 for tr in root.iter("tr"))


def test_cli_writes_the_handout(tmp_path: Path) -> None:
    out = tmp_path / "hello.md"
    proc = tracer_ok("export", HELLO, "--format", "markdown", "-o", out)
    assert proc.stderr == ""
    trace, analysis = load(HELLO)
    assert out.read_text(encoding="utf-8") == render_markdown(build_lesson(trace, analysis, "en"), trace)


def test_large_lesson(capfd: pytest.CaptureFixture[str]) -> None:
    # Its speed is measured by bench/export.py, not here.
    lesson = tiled_lesson(10_000)
    md = render_markdown(lesson)
    fences = [t for t in MD.parse(md) if t.type == "fence"]
    assert [(t.info, t.content) for t in fences] == [
        ("mermaid", render_mermaid(lesson, max_steps=MERMAID_STEPS))]
    assert len(fences[0].content) < 50_000, "Mermaid's default maxTextSize"
    assert len(step_items(html_tree(md))) == 10_000
    assert capfd.readouterr() == ("", "")


@pytest.mark.lab
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dropped_packets_are_said_dropped(scenario_run: Callable[[str], Path], lang: str) -> None:
    """data-lost's IMPAIR drops: each dropped packet's step says so with the reason, and the
    notices list them; no other step does."""
    path = scenario_run("data-lost")
    trace, lesson, _, root = handout(path, lang)
    assert trace.kernel is not None
    drops = {d.packet_no: d for d in trace.kernel.drops}
    assert "NETFILTER_DROP" in {d.reason for d in drops.values()}
    for li, s in zip(step_items(root), lesson.steps, strict=True):
        d = drops.get(s.packet + 1) if s.packet is not None else None
        said = text(li)
        assert (f"✗ {drop_text(d, lang)}" in said) if d is not None else ("✗" not in said), said
    listed = [n for n in notices(root, lang) if "✗" in n]
    assert len(listed) == 1 and all(str(no) in listed[0] for no in drops)
