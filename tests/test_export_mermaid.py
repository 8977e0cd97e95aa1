"""The Mermaid export, rendered by the real mermaid-cli (``mmdc``, headless Chromium).

Every diagram is rendered to SVG and the SVG's XML is read back: each packet of
the lesson must be a message, in order, whose text starts ``#NO`` and the ladder's
label and names its cause; its line must be solid for a packet a socket call sent
and dashed for one the kernel sent, end in a cross for an RST or ICMP error and in
an open head for a retransmission, and leave the lane of the endpoint that sent it.
Each call that sent nothing, each change of TCP state and each warning must be a
note, in order.  That mermaid drew a message with the very text we meant proves it
parsed every line; a control diagram with the same awkward text left unescaped
is refused (mmdc exits 1), so the oracle does fail on what escaping prevents.

All diagrams go through one ``mmdc`` run (a Markdown file with one block each:
mmdc writes ``out-N.svg`` per block), because each start costs a browser.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CAPTURES, CORPUS, REPO
from tracer.core.model import TcpState
from tracer.export.mermaid import render_mermaid
from tracer.ladder.labels import LABELS, flag_names
from tracer.lesson.steps import Lesson, Step, build_lesson
from tracer.loading import load

pytestmark = pytest.mark.browser

SVG = "{http://www.w3.org/2000/svg}"
SCENARIOS = ("refused", "udp-unreachable", "data-lost")
RETRANS = {v for lang in ("en", "zh") for k, v in flag_names(lang).items()
           if k.name in ("RETRANSMISSION", "FAST_RETRANSMISSION", "SPURIOUS_RETRANSMISSION")}
# Text Mermaid's parser or renderer would otherwise take as syntax: statement ends,
# comments, entity codes, directives, HTML, keywords, arrows.
PITFALLS = ("a;b #1 c:d", "<b>bold</b> & <br/> x", "end", "alt loop", '%%{init: {"theme":"dark"}}%%',
            "#35; is an entity", "p0->>p1: fake", 'say "hi" \\ 50% {x} [y]', "客户端：内核；重传")


def squash(text: str) -> str:
    return "".join(text.split())


def mmdc(src: Path, out: Path) -> subprocess.Popen[str]:
    """Start mmdc on ``src`` (a Markdown file: one ``out-N.svg`` per mermaid block)."""
    exe = shutil.which("mmdc")
    assert exe, "mermaid-cli (mmdc) is missing: npm install -g @mermaid-js/mermaid-cli"
    conf = src.with_name("puppeteer.json")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    conf.write_text(json.dumps({"executablePath": chromium, "args": ["--no-sandbox", "--disable-gpu"]}))
    out.mkdir()
    return subprocess.Popen([exe, "-q", "-p", str(conf), "-i", str(src), "-o", str(out / "out.md")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def markdown(path: Path, diagrams: list[str]) -> Path:
    path.write_text("".join(f"```mermaid\n{d}```\n\n" for d in diagrams), encoding="utf-8")
    return path


def svg_notes(svg: ET.ElementTree[ET.Element]) -> list[str]:
    """Each note's text in document order (mermaid draws a note's lines as sibling texts)."""
    out = []
    for g in svg.iter(SVG + "g"):
        lines = [" ".join(t.text or "" for t in e.iter() if t.text) for e in g
                 if e.tag == SVG + "text" and "noteText" in (e.get("class") or "").split()]
        if lines:
            out.append(" ".join(lines))
    return out


def svg_messages(svg: ET.ElementTree[ET.Element]) -> list[tuple[str, str, str, float, float]]:
    """(text, line class, marker, x1, x2) per message, in order."""
    texts: list[str] = []
    lines: list[tuple[str, str, float, float]] = []
    for e in svg.iter():
        cls = e.get("class") or ""
        if e.tag == SVG + "text" and cls == "messageText":
            texts.append(e.text or "")
        elif cls.startswith("messageLine"):
            found = re.search(r"(arrowhead|crosshead|filled-head)\)", e.get("marker-end") or "")
            marker = found[1] if found else ""
            lines.append((cls, marker, float(e.get("x1") or 0), float(e.get("x2") or 0)))
    assert len(texts) == len(lines)
    return [(t, *ln) for t, ln in zip(texts, lines, strict=True)]


def svg_actors(svg: ET.ElementTree[ET.Element]) -> dict[str, float]:
    """Participant label -> the x of its lane."""
    out = {}
    for e in svg.iter(SVG + "text"):
        if "actor-box" in (e.get("class") or ""):
            out[" ".join(t.text or "" for t in e.iter(SVG + "tspan"))] = float(e.get("x") or 0)
    return out


def drawn(step: Step) -> bool:
    """Whether a packet step has two lanes and a sender, so it must be an arrow."""
    return step.stream is not None and bool(step.left and step.right) and (
        step.direction != 0 or step.actor in (step.left_role, step.right_role))


def role(step: Step, k: int, lang: str) -> str:
    name = (step.left_role, step.right_role)[k]
    return LABELS[lang].get(name, name)


def check(lesson: Lesson, svg: ET.ElementTree[ET.Element], steps: tuple[Step, ...] | None = None) -> None:
    """The SVG shows every step of ``lesson`` (or only ``steps``) as the module docstring says."""
    lang = lesson.lang
    shown = lesson.steps if steps is None else steps
    actors = svg_actors(svg)
    lanes = {f"{role(s, k, lang)} {(s.left, s.right)[k]}"
             for s in shown if s.stream is not None for k in (0, 1)}
    assert set(actors) == lanes or (not lanes and len(actors) == 1), (set(actors), lanes)
    x_of = {label.split(" ")[-1]: x for label, x in actors.items()}

    packets = [s for s in shown if s.kind == "packet" and drawn(s)]
    messages = svg_messages(svg)
    assert len(messages) == len(packets), ([m[0] for m in messages], [p.label for p in packets])
    for s, (text, line, marker, x1, x2) in zip(packets, messages, strict=True):
        assert s.packet is not None
        full = f"#{s.packet + 1} {s.label}"
        assert text.startswith(full) or (text.endswith("…") and full.startswith(text[:-1])), (text, full)
        cause = s.call if s.by == "call" else s.cause
        assert cause in text or text.endswith("…"), (text, cause)
        assert line == ("messageLine0" if s.by == "call" else "messageLine1"), (text, s.by)
        if s.dropped or "RST" in s.flags.split(",") or (not s.flags and not s.direction):
            assert marker == "crosshead", (text, marker)
        elif RETRANS.intersection(s.analysis):
            assert marker == "filled-head", (text, marker)
        else:
            assert marker == "arrowhead", (text, marker)
        if s.direction:
            sender, receiver = (s.left, s.right) if s.direction > 0 else (s.right, s.left)
        else:
            sender, receiver = (s.left, s.right) if s.actor == s.left_role else (s.right, s.left)
        assert abs(x1 - x_of[sender]) < abs(x1 - x_of[receiver]), (text, x1, x2, x_of)

    expected: list[str] = []
    for s in shown:
        if s.kind == "call":
            who = LABELS[lang].get(s.actor, s.actor)
            expected.append(s.label[len(who) + 1:] if s.label.startswith(who + " ") else s.label)
        elif s.kind == "warning":
            expected.append(s.label[:40])
        elif not drawn(s):
            expected.append(f"#{s.packet + 1 if s.packet is not None else '?'} {s.label}")
        else:
            if s.dropped:  # the receiving kernel dropped it: a note over the receiver says why
                expected.append(f"✗ {s.drop_words}")
            if s.states is not None and s.state_codes is not None:
                changed = [s.states[k] for k in (0, 1)
                           if s.changed[k] and s.state_codes[k] != TcpState.UNKNOWN]
                if changed:
                    expected.append(" ".join(changed))
    notes = svg_notes(svg)
    if steps is not None and len(steps) < len(lesson.steps):
        assert str(len(lesson.steps) - len(steps)) in notes.pop()  # "... N more steps not shown"
    assert len(notes) == len(expected), (notes, expected)
    for note, want in zip(notes, expected, strict=True):
        for part in want.split(" "):  # state names: each in the note
            assert squash(part) in squash(note), (note, want)


@pytest.fixture(scope="module")
def live(scenario_run: Callable[[str], Path]) -> dict[str, Path]:
    """One real run of each scenario (as root, in the lab), shared by the session's tests."""
    return {name: scenario_run(name) for name in SCENARIOS}


def lesson_of(path: Path, lang: str = "en") -> Lesson:
    trace, analysis = load(str(path))
    return build_lesson(trace, analysis, lang)


def pitfall_lesson() -> Lesson:
    """hello's lesson with awkward text in packet labels and causes, call labels and a warning."""
    base = lesson_of(CAPTURES / "hello.pcapng")
    steps = list(base.steps)
    packets = [k for k, s in enumerate(steps) if s.kind == "packet"]
    calls = [k for k, s in enumerate(steps) if s.kind == "call"]
    for n, text in enumerate(PITFALLS):
        k = packets[n % len(packets)]
        if n % 2:
            steps[k] = dataclasses.replace(steps[k], cause=text, by="unknown", reason="x", label=f"L{n}")
        else:
            steps[k] = dataclasses.replace(steps[k], label=text)
        c = calls[n % len(calls)]
        steps[c] = dataclasses.replace(steps[c], label=f"{steps[c].actor} {text}")
    long = "x" * 150 + " " + "long words " * 30
    steps.insert(0, dataclasses.replace(steps[0], kind="warning", label="w;a:r#n <i>" + long, stream=None,
                                        actor=""))
    steps[packets[-1] + 1] = dataclasses.replace(steps[packets[-1] + 1], label=long)
    steps = [dataclasses.replace(s, index=k) for k, s in enumerate(steps)]
    return dataclasses.replace(base, steps=tuple(steps), title="pitfalls: #1; <end>")


@pytest.mark.lab
def test_diagrams_render_every_step(live: dict[str, Path], tmp_path: Path) -> None:
    big = lesson_of(CORPUS / "zeek__http__206_example_b.pcap")
    cases: list[tuple[Lesson, int | None]] = [
        (lesson_of(CAPTURES / "hello.pcapng"), None),
        (lesson_of(CAPTURES / "hello.pcapng", "zh"), None),
        (lesson_of(CORPUS / "dpkt__nb6-http.pcap"), None),  # ARP, ICMP, IPv6, UDP and TCP streams
        (lesson_of(CORPUS / "dpkt__truncated_dns_2.pcap"), None),  # a warning: the file is cut short
        *((lesson_of(live[name]), None) for name in SCENARIOS),  # RST, ICMP, retransmissions
        (lesson_of(live["data-lost"], "zh"), None),
        (pitfall_lesson(), None),
        (big, 40),
    ]
    # The control: hello with one label left unescaped; mermaid must refuse it.
    hello = render_mermaid(cases[0][0]).splitlines()
    at = next(k for k, line in enumerate(hello) if line.startswith("    p0->>p1: #35;1 "))
    control = "\n".join([*hello[:at], f"    p0->>p1: {PITFALLS[0]}", *hello[at + 1:]]) + "\n"
    runs = [mmdc(markdown(tmp_path / "all.md", [render_mermaid(lesson, max_steps=n) for lesson, n in cases]),
                 tmp_path / "out"),
            mmdc(markdown(tmp_path / "control.md", [control]), tmp_path / "control")]
    (_, err), (_, control_err) = (r.communicate(timeout=300) for r in runs)
    assert runs[0].returncode == 0, err[-3000:]
    assert runs[1].returncode == 1 and "Parse error" in control_err, control_err[-3000:]
    svgs = [ET.parse(tmp_path / "out" / f"out-{k + 1}.svg") for k in range(len(cases))]
    for (lesson, n), svg in zip(cases, svgs, strict=True):
        check(lesson, svg, lesson.steps[:n] if n is not None else None)
        assert any((e.text or "") == lesson.title for e in svg.iter(SVG + "text")), lesson.title
    # hello's lanes and texts in Chinese
    assert any(label.startswith("客户端 ") for label in svg_actors(svgs[1]))
    assert any("内核" in m[0] for m in svg_messages(svgs[1]))


def test_large_lesson_is_still_valid_text() -> None:
    """Every step of a 1,556-packet capture, one statement per line (mmdc's default limit
    of 50,000 characters is what keeps it from rendering; the benchmark measures the rest)."""
    lesson = lesson_of(CORPUS / "zeek__http__206_example_b.pcap")
    text = render_mermaid(lesson)
    lines = text.splitlines()
    statement = re.compile(r"^(sequenceDiagram|%%.*|    title .+|    participant p\d+ as [^#;\n]+|"
                           r"    p\d+(->>|-->>|-x|--x|-\)|--\))p\d+: [^;\n]+|"
                           r"    Note over p\d+(,p\d+)?: [^;\n]+)$")
    # Outside Mermaid's entity codes (#35; #lt;) no label has a character Mermaid would parse.
    bare = [re.sub(r"#(\d+|[a-z]+);", "", ln) for ln in lines]
    assert all(statement.match(ln) for ln in bare), [ln for ln in bare if not statement.match(ln)][:3]
    assert sum(1 for ln in lines if re.match(r"^    p\d+-", ln)) == sum(1 for s in lesson.steps if drawn(s))


def test_cli_writes_the_same_diagram(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    for lang in ("en", "zh"):
        out = tmp_path / f"hello-{lang}.mmd"
        proc = subprocess.run([sys.executable, "-m", "tracer", "export", str(CAPTURES / "hello.pcapng"),
                               "--format", "mermaid", "--lang", lang, "-o", str(out)],
                              capture_output=True, text=True, cwd=REPO, env=env, check=False)
        assert proc.returncode == 0, proc.stderr
        assert out.read_text(encoding="utf-8") == render_mermaid(lesson_of(CAPTURES / "hello.pcapng", lang))
