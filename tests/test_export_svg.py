"""The SVG ladder (tracer.export.svg) against tshark, the trace data, an XML parser and real renderers.

Oracles: the SVG must parse (xml.etree); every frame's label as tshark reads it (flags,
relative seq/ack, length; UDP length; ICMP addresses, type and code) is on that
packet's arrow, in packet order; each stream's lanes are the endpoints tshark puts in
that tcp.stream / udp.stream, the client (the plain SYN's sender) on the left; every
arrow starts at the lane of the address tshark says sent it (an ICMP error included)
and ends at the other; recorded socket calls (the capture's own call records) are
boxes in their side's column, in time order; causes and new TCP states come from the
analysis columns and read in both languages.  Headless Chromium lays the text out
with real fonts (getBBox): nothing overlaps, boxes hold their text, labels stay
between the lanes.  rsvg-convert (librsvg) renders it to a PNG of the same size.
"""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import CAPTURES, corpus_files, tiled_lesson, tshark_fields
from helpers.cli import tracer_ok
from helpers.frames import endpoint, first_value, tshark_frames
from tracer.core.model import PROTO_TCP, TcpState
from tracer.core.reasons import REASONS
from tracer.export.svg import render_svg
from tracer.i18n.explain import label as reason_label
from tracer.i18n.explain import state_name
from tracer.lesson.steps import Lesson, build_lesson
from tracer.loading import load

pytestmark = pytest.mark.tshark

NS = "{http://www.w3.org/2000/svg}"
HELLO = CAPTURES / "hello.pcapng"


# --- tshark's view of a capture ---------------------------------------------------


def tshark_clients(path: Path) -> dict[str, str]:
    """tcp stream tag -> the endpoint that sent its first plain SYN (the client)."""
    clients: dict[str, str] = {}
    for row in tshark_fields(path, "tcp.stream", "ip.src", "ipv6.src", "tcp.srcport", "tcp.flags"):
        st, ip4, ip6, port, flags = (first_value(v) for v in row)
        if st and flags and int(flags, 16) & 0x12 == 0x02:
            clients.setdefault(f"t{st}", endpoint(ip4 or ip6, port))
    return clients


# --- the SVG as parsed XML -------------------------------------------------------


def classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def texts(el: ET.Element, cls: str) -> list[ET.Element]:
    return [t for t in el.iter(f"{NS}text") if cls in classes(t)]


def text_of(el: ET.Element) -> str:
    return "".join(el.itertext())


@dataclass
class Section:
    stream: str
    lanes: dict[str, float]  # endpoint -> lane x
    roles: list[tuple[float, str]]  # (lane x, role word)


def walk(root: ET.Element) -> Iterator[tuple[Section | None, ET.Element]]:
    """(the lanes in force, step group) in document order."""
    sec: Section | None = None
    for g in root.iter(f"{NS}g"):
        c = classes(g)
        if "section" in c:
            lanes = {text_of(t): float(t.get("x", "nan")) for t in texts(g, "endpoint")}
            roles = [(float(t.get("x", "nan")), text_of(t)) for t in texts(g, "role")]
            sec = Section(g.get("data-stream", ""), lanes, roles)
        elif "step" in c:
            yield sec, g


def render(path: Path, lang: str = "en", **kw: Any) -> tuple[Lesson, str, ET.Element]:
    trace, analysis = load(path)
    lesson = build_lesson(trace, analysis, lang, **kw)
    svg = render_svg(lesson)
    return lesson, svg, ET.fromstring(svg.encode("utf-8"))


def arrow_ends(g: ET.Element) -> tuple[float, float]:
    """(x where the arrow starts, x of its head's tip; for a dropped frame, of its ✗'s centre)."""
    (line,) = [e for e in g.iter(f"{NS}line") if "wire" in classes(e)]
    heads = [e for e in g.iter(f"{NS}polygon") if "head" in classes(e)]
    crosses = [e for e in g.iter(f"{NS}line") if "cross" in classes(e)]
    if crosses:  # the receiving kernel dropped it: no head, the wire stops at an ✗
        assert not heads and len(crosses) == 2
        tip = sum(float(c.get("x1", "nan")) + float(c.get("x2", "nan")) for c in crosses) / 4
        assert abs(tip - float(line.get("x2", "nan"))) < 0.5
        return float(line.get("x1", "nan")), tip
    (head,) = heads
    tip = float(head.get("points", "").split()[0].split(",")[0])
    return float(line.get("x1", "nan")), tip


def check_against_tshark(path: Path, lang: str = "en") -> tuple[Lesson, ET.Element]:
    """Labels, order, lanes and arrow directions of ``path``'s SVG against tshark."""
    lesson, _, root = render(path, lang)
    frames = tshark_frames(path)
    steps = {s.index: s for s in lesson.steps}
    packets = [(sec, g) for sec, g in walk(root) if g.get("data-no")]
    assert [int(g.get("data-no", "0")) for _, g in packets] == list(range(1, len(frames) + 1))
    clients = tshark_clients(path)
    ends: dict[str, set[str]] = {}
    for fr in frames:
        if fr.stream:
            ends.setdefault(fr.stream, set()).update((fr.src, fr.dst))
    for (sec, g), fr in zip(packets, frames, strict=True):
        step = steps[int(g.get("data-step", "-1"))]
        (label,) = texts(g, "label")
        assert text_of(label) == step.label, "the lesson's label, as is"
        if fr.label is not None:
            assert text_of(label) == fr.label, f"packet {g.get('data-no')}"
        if not classes(g) & {"row-arrow", "row-relay"}:
            continue
        assert sec is not None
        start, tip = arrow_ends(g)
        if "row-relay" in classes(g):  # an ICMP error from a router: from between the lanes to its target
            hosts = {ep.rpartition(":")[0].strip("[]"): x for ep, x in sec.lanes.items()}
            assert fr.src not in hosts and tip == pytest.approx(hosts[fr.dst])
            assert min(sec.lanes.values()) < start < max(sec.lanes.values())
            continue
        if fr.stream:
            assert sec.stream == fr.stream
            assert set(sec.lanes) == ends[fr.stream], "the lanes are the stream's two endpoints"
            assert start == pytest.approx(sec.lanes[fr.src])
            if step.dropped:  # the receiving kernel dropped it: the wire stops short of its lane
                src_x, dst_x = sec.lanes[fr.src], sec.lanes[fr.dst]
                assert 0.5 < (tip - src_x) / (dst_x - src_x) < 0.95
            else:
                assert tip == pytest.approx(sec.lanes[fr.dst])
            if fr.stream in clients:
                assert sec.lanes[clients[fr.stream]] == min(sec.lanes.values()), "client on the left"
        else:  # an ICMP error: from the lane of the host that sent it, to the other one
            hosts = {ep.rpartition(":")[0].strip("[]"): x for ep, x in sec.lanes.items()}
            assert start == pytest.approx(hosts[fr.src]) and tip == pytest.approx(hosts[fr.dst])
    return lesson, root


def check_order(root: ET.Element, lesson: Lesson) -> None:
    """One group per step, in the lesson's order, each lower on the page than the one before."""
    groups = [g for _, g in walk(root)]
    assert [int(g.get("data-step", "-1")) for g in groups] == [s.index for s in lesson.steps]
    tops = [min(float(t.get("y", "nan")) for t in g.iter(f"{NS}text")) for g in groups]
    assert all(b > a for a, b in itertools.pairwise(tops)), "time flows down"


# --- live runs, once per module ------------------------------------------------------


@pytest.fixture(scope="module")
def live(scenario_run: Callable[[str], Path]) -> dict[str, Path]:
    """Real-kernel captures: a UDP echo and a datagram to a closed port (ICMP unreachable)."""
    return {name: scenario_run(name) for name in ("udp-echo", "udp-unreachable")}


# --- tests ------------------------------------------------------------------------


def test_hello_labels_lanes_calls_and_causes() -> None:
    lesson, root = check_against_tshark(HELLO)
    check_order(root, lesson)
    trace, a = load(HELLO)
    assert root.find(f"{NS}title") is not None and text_of(root.find(f"{NS}title")) == (  # type: ignore[arg-type]
        f"tracer ladder — {trace.meta.extra['scenario']}")
    assert any("legend" in classes(t) for t in root.iter(f"{NS}text"))
    # The recorded calls that caused no packet, and connect()'s return (issue 12): boxes, in time
    # order, in their side's column.
    on_packets = {int(c) for c in a.cause_call_id if c >= 0}
    own = sorted((c for c in trace.calls if c.id not in on_packets or c.call == "connect"),
                 key=lambda c: (c.t_ns, c.id))
    boxes = [(sec, g) for sec, g in walk(root) if "row-call" in classes(g)]
    assert [text_of(texts(g, "call")[0]).split("(", 1)[0] for _, g in boxes] == [
        f"{c.side} {c.call}" for c in own]
    for (sec, g), c in zip(boxes, own, strict=True):
        assert sec is not None
        (rect,) = [e for e in g.iter(f"{NS}rect") if "box" in classes(e)]
        x, w = float(rect.get("x", "nan")), float(rect.get("width", "nan"))
        lane = dict((role, x) for x, role in sec.roles)[c.side]
        assert (x + w < lane) if lane == min(sec.lanes.values()) else (x > lane), c
    # Each packet's cause: the recorded call that sent it, or the kernel, beside the sender's lane.
    calls = {c.id: c for c in trace.calls}
    for sec, g in walk(root):
        if not g.get("data-no"):
            continue
        i = int(g.get("data-no", "0")) - 1
        assert sec is not None
        start, _ = arrow_ends(g)
        causes = texts(g, "cause")
        words = [text_of(t) for t in causes]
        cid = int(a.cause_call_id[i])
        if cid >= 0:
            assert words[0] == f"{calls[cid].call}()"
        else:
            assert words[0] == "kernel"
        assert words[-1] == reason_label(REASONS[int(a.cause_reason[i])], "en")
        for t in causes:
            x = float(t.get("x", "nan"))
            assert (x < start) if start == min(sec.lanes.values()) else (x > start)


def test_states_and_causes_in_chinese() -> None:
    lesson, svg, root = render(HELLO, "zh")
    check_order(root, lesson)
    assert "Noto Sans CJK SC" in svg and "Source Han Sans SC" in svg and "Microsoft YaHei" in svg
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-Hans"
    trace, a = load(HELLO)
    info = {s.index: s for s in a.tcp_streams}
    prev: dict[int, tuple[int, int]] = {}
    seen_kernel = False
    for sec, g in walk(root):
        if not g.get("data-no"):
            continue
        i = int(g.get("data-no", "0")) - 1
        assert sec is not None
        words = [text_of(t) for t in texts(g, "cause")]
        assert words[-1] == reason_label(REASONS[int(a.cause_reason[i])], "zh")
        seen_kernel |= words[0] == "内核"
        if int(trace.packets.proto[i]) != PROTO_TCP:
            continue
        s = int(a.stream[i])
        now = (int(a.state_a[i]), int(a.state_b[i]))
        before = prev.get(s, (-2, -2))
        prev[s] = now
        st = info[s]
        a_left = st.client is None or st.client == st.a
        want = set()
        for k, (old, new) in enumerate(zip(before, now, strict=True)):
            if old != new and new != TcpState.UNKNOWN:
                want.add((state_name(TcpState(new), "zh"), (k == 0) == a_left))
        tags = texts(g, "state")
        xl, xr = min(sec.lanes.values()), max(sec.lanes.values())
        got = {(text_of(t), abs(float(t.get("x", "nan")) - xl) < abs(float(t.get("x", "nan")) - xr))
               for t in tags}
        assert got == want, f"packet {i + 1}"
    assert seen_kernel
    assert "客户端" in [r for _, r in next(sec for sec, _ in walk(root) if sec is not None).roles]


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_against_tshark(path: Path) -> None:
    lesson, root = check_against_tshark(path)
    check_order(root, lesson)
    # Warnings (a file cut short, odd times) are full-width notes with the lesson's text.
    notes = [text_of(g) for _, g in walk(root) if "row-warning" in classes(g)]
    want = [s.label for s in lesson.steps if s.kind == "warning"]
    assert len(notes) == len(want)
    for note, w in zip(notes, want, strict=True):
        assert "".join(note.split()) == "".join(f"!! warning: {w}".split())


@pytest.mark.lab
def test_live_udp_and_icmp_unreachable(live: dict[str, Path]) -> None:
    for path in live.values():
        for lang in ("en", "zh"):
            lesson, root = check_against_tshark(path, lang)
            check_order(root, lesson)
    # The ICMP error is an arrow from the server's lane (tshark: its source address).
    frames = tshark_frames(live["udp-unreachable"])
    icmp = [k for k, f in enumerate(frames) if f.label and f.label.startswith("icmp ")]
    assert len(icmp) == 1
    _, _, root = render(live["udp-unreachable"])
    g = next(g for _, g in walk(root) if g.get("data-no") == str(icmp[0] + 1))
    assert "row-arrow" in classes(g)
    # recv() failed with ECONNREFUSED: its box is drawn as an error, as the call record says.
    trace, _ = load(live["udp-unreachable"])
    failed = [c for c in trace.calls if c.error]
    assert failed and all(c.error == "ECONNREFUSED" for c in failed)
    errors = [text_of(t) for t in root.iter(f"{NS}text") if {"call", "error"} <= classes(t)]
    assert len(errors) == len(failed) and all("ECONNREFUSED" in e for e in errors)


def test_text_is_escaped() -> None:
    trace, analysis = load(HELLO)
    title = "a <b> & \"c\" 'd' \x01 ]]>"
    svg = render_svg(build_lesson(trace, analysis, "en", title=title))
    root = ET.fromstring(svg.encode("utf-8"))
    shown = "a <b> & \"c\" 'd' \ufffd ]]>"
    assert text_of(root.find(f"{NS}title")) == f"tracer ladder — {shown}"  # type: ignore[arg-type]
    assert any(text_of(t) == f"tracer ladder — {shown}" for t in texts(root, "title"))


def test_cli_export_writes_the_same_svg(tmp_path: Path) -> None:
    out = tmp_path / "hello.svg"
    proc = tracer_ok("export", HELLO, "--format", "svg", "--lang", "zh", "-o", out)
    assert proc.stderr == ""
    trace, analysis = load(HELLO)
    assert out.read_text(encoding="utf-8") == render_svg(build_lesson(trace, analysis, "zh"))


def test_large_lesson_is_valid_and_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    # Its speed is measured by bench/export.py, not here.
    lesson = tiled_lesson(10_000)
    svg = render_svg(lesson)
    root = ET.fromstring(svg.encode("utf-8"))
    assert len(texts(root, "label")) == sum(1 for s in lesson.steps if s.is_packet)
    assert capfd.readouterr() == ("", "")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


@pytest.mark.lab
def test_rsvg_renders_png(tmp_path: Path, live: dict[str, Path]) -> None:
    """librsvg (Debian: librsvg2-bin) draws every SVG without a complaint, at its declared size."""
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        pytest.skip("rsvg-convert not installed (apt-get install librsvg2-bin)")
    for path, lang in ((HELLO, "en"), (HELLO, "zh"), (live["udp-unreachable"], "en"),
                       (next(p for p in corpus_files() if p.name == "dpkt__nb6-http.pcap"), "en")):
        _, svg, root = render(path, lang)
        src = tmp_path / f"{path.stem}-{lang}.svg"
        src.write_text(svg, encoding="utf-8")
        proc = subprocess.run([rsvg, "-o", str(src.with_suffix(".png")), str(src)], capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
        w, h = _png_size(src.with_suffix(".png").read_bytes())
        assert (w, h) == (round(float(root.get("width", "0"))), round(float(root.get("height", "0"))))


# --- layout in a real browser ------------------------------------------------------

BBOXES = """
const out = [];
document.querySelectorAll('text, rect').forEach((el, k) => {
  const b = el.getBBox();
  const g = el.closest('g');
  out.push([el.tagName, el.getAttribute('class') || '', el.textContent, b.x, b.y, b.width, b.height,
            g ? (g.getAttribute('data-step') || g.getAttribute('class')) : '', k]);
});
return out;
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    d = webdriver.Chrome(options=opts, service=Service(executable_path=driver))
    try:
        yield d
    finally:
        d.quit()


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] - 0.5 and b[0] < a[0] + a[2] - 0.5 and a[1] < b[1] + b[3] - 0.5 and \
        b[1] < a[1] + a[3] - 0.5


def _inside(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] >= b[0] - 0.5 and a[1] >= b[1] - 0.5 and a[0] + a[2] <= b[0] + b[2] + 0.5 and \
        a[1] + a[3] <= b[1] + b[3] + 0.5


@pytest.mark.lab
@pytest.mark.browser
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_layout_in_chromium(browser: Any, tmp_path: Path, live: dict[str, Path], lang: str) -> None:
    """Real fonts, real layout: no text overlaps another, boxes hold their text, the page holds all."""
    nb6 = next(p for p in corpus_files() if p.name == "dpkt__nb6-http.pcap")
    for path in (HELLO, live["udp-unreachable"], nb6):
        _, svg, root = render(path, lang)
        page = tmp_path / f"{path.stem}-{lang}.svg"
        page.write_text(svg, encoding="utf-8")
        browser.get(page.as_uri())
        items = browser.execute_script(BBOXES)
        width, height = float(root.get("width", "0")), float(root.get("height", "0"))
        txt = [(tuple(i[3:7]), i[1], i[2], i[7]) for i in items if i[0] == "text"]
        boxes = [(tuple(i[3:7]), i[1], i[7]) for i in items if i[0] == "rect" and i[1] in (
            "box", "box error", "hdr", "tag", "warnbox")]
        assert len(txt) == sum(1 for _ in root.iter(f"{NS}text"))
        for bb, _, s, _ in txt:
            assert bb[2] > 0 or not s.strip(), s
            assert bb[0] >= 0 and bb[1] >= 0 and bb[0] + bb[2] <= width and bb[1] + bb[3] <= height, (s, bb)
        by_y = sorted(txt, key=lambda t: t[0][1])
        for k, (bb, cls, s, _) in enumerate(by_y):
            for other in by_y[k + 1:]:
                if other[0][1] >= bb[1] + bb[3]:
                    break
                assert not _overlap(bb, other[0]), f"{s!r} ({cls}) overlaps {other[2]!r} ({other[1]})"
        for bb, cls, s, group in txt:
            holders = [b for b in boxes if b[2] == group and _overlap(bb, b[0])]
            for holder in holders:
                assert _inside(bb, holder[0]), f"{s!r} ({cls}) sticks out of its {holder[1]}"
