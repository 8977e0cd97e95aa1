"""The ladder as an SVG picture for slides and printed notes (``tracer export --format svg``).

Print first: white paper, black and grey ink, nothing that needs colour.  Time
flows down, one row per lesson step (``tracer.lesson.steps``).  A packet is an
arrow from its sender's lane to the receiver's, its label (flags, seq/ack,
length) above it; outside the sender's lane, in that side's application column,
the socket call that caused it or "kernel" with the kernel's reason; a new TCP
state is a grey tag at the lane where it changed; a packet the receiving kernel
dropped stops short at an ✗ with its reason; tshark's analysis flags dash
the arrow and are named after the label.  Calls that sent nothing (and the return
of connect() or of a call whose errno no packet explains) are boxes in
their application's column, warnings are full-width notes, and the left gutter
holds the packet number and the seconds since the first packet.

The two lanes are a stream's endpoints (left = the client); when the steps move
to another stream a header row names that stream's endpoints, so any number of
TCP and UDP streams reads like the text ladder.  An ICMP error is drawn from the
lane of the host that sent it.  Widths count CJK characters as two columns
(``tracer.ladder.text.text_width``) and the fonts fall back to CJK families.
Standard library only, linear in the number of steps, no output but the string.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass

from tracer.core.model import PROTO_TCP
from tracer.i18n import Words, lang_of
from tracer.ladder.labels import LABELS
from tracer.ladder.text import clip, text_width, wrap_cut
from tracer.lesson.steps import Lesson, Step

MONO = ("'DejaVu Sans Mono', Menlo, Consolas, 'Noto Sans Mono CJK SC', 'Noto Sans CJK SC', "
        "'Source Han Sans SC', 'Microsoft YaHei', monospace")
SANS = "'DejaVu Sans', Arial, 'Noto Sans CJK SC', 'Source Han Sans SC', 'Microsoft YaHei', sans-serif"
EM = 0.6  # width of one column in em: a monospace advance; a CJK character is two columns

TEXT = Words("svg.")  # title, summary, legend: catalogue keys svg.*

# Sizes in px.
PAD = 14
F_TITLE, F_LABEL, F_TEXT, F_STATE = 16, 12, 11, 10
CAP_COLS = 52  # widest application-column text before it wraps (calls) or is cut (causes)
LABEL_COLS = 80  # widest arrow label before it is cut
MIN_WIDTH = 760  # px: a short trace still gets room for its title and legend
SLOPE = 6  # px the arrow drops from sender to receiver: the packet takes time
HEAD = 9  # arrowhead length
DROP_AT = 0.8  # a dropped frame's wire ends this far across, at its ✗

_ICMP = re.compile(r"^\S+ (\S+) → (\S+)")
# Characters XML 1.0 does not allow (a capture's text could carry them).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _esc(s: str) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", s), quote=True)


def _px(s: str, size: float) -> float:
    return text_width(s) * size * EM


def _n(v: float) -> str:
    return f"{v:.1f}".removesuffix(".0")


def _text(x: float, y: float, s: str, cls: str, anchor: str = "") -> str:
    a = f' text-anchor="{anchor}"' if anchor else ""
    return f'<text class="{cls}" x="{_n(x)}" y="{_n(y)}"{a}>{_esc(s)}</text>'


def _line(cls: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="{cls}" x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}"/>'


def _rect(cls: str, x: float, y: float, w: float, h: float, rx: float = 0) -> str:
    r = f' rx="{_n(rx)}"' if rx else ""
    return f'<rect class="{cls}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}"{r}/>'


@dataclass(frozen=True)
class _Section:
    """Two lanes: a stream's endpoints (left = the client), or just two roles."""

    key: tuple[int, int] | None
    left: str
    right: str
    left_role: str
    right_role: str


@dataclass(frozen=True)
class _Row:
    """A step placed: under which lanes, drawn as what, on which side."""

    step: Step
    section: _Section
    header: bool  # the section's header row goes before this step
    kind: str  # "arrow" | "relay" (from a host between the lanes) | "call" | "note" | "warning"
    side: int  # -1: the left lane sends / calls (relay: receives), 1: the right one, 0: neither
    app: tuple[str, ...]  # lines in the application column (cause, or the call's box)


def _section(s: Step) -> _Section:
    return _Section(s.stream, s.left, s.right, s.left_role, s.right_role)


def _host(endpoint: str) -> str:
    host = endpoint.rpartition(":")[0] if ":" in endpoint else endpoint
    return host.strip("[]")


def _icmp_side(s: Step, sec: _Section) -> tuple[str, int]:
    """How to draw an ICMP error about this stream: ("arrow", the lane whose address sent it);
    from a host between them (a router), ("relay", the lane it goes to); else ("note", 0)."""
    m = _ICMP.match(s.label)
    if m is None:
        side = _role_side(s.actor, sec, 0)
        return ("arrow", side) if side else ("note", 0)
    src, dst = m.group(1).strip("[]"), m.group(2).strip("[]")
    lanes = ((-1, _host(sec.left)), (1, _host(sec.right)))
    senders = [side for side, host in lanes if host == src]
    if len(senders) == 1:
        return "arrow", senders[0]
    receivers = [side for side, host in lanes if host == dst]
    if not senders and len(receivers) == 1:
        return "relay", receivers[0]
    side = _role_side(s.actor, sec, 0)
    return ("arrow", side) if side else ("note", 0)


def _role_side(actor: str, sec: _Section, default: int) -> int:
    if actor and actor == sec.left_role:
        return -1
    if actor and actor == sec.right_role:
        return 1
    return {"client": -1, "server": 1}.get(actor, default)


def _cause(s: Step, kernel: str) -> tuple[str, ...]:
    """The application column beside a packet: which call sent it, or the kernel; then why."""
    mark = "~" if s.inferred else ""
    first = f"{mark}{s.call}" if s.by == "call" and s.call else f"{mark}{kernel}" if s.by == "kernel" else ""
    lines = tuple(x for x in (first, s.cause) if x)
    return tuple(clip(x, CAP_COLS) for x in lines)


def _place(lesson: Lesson) -> list[_Row]:
    """Every step with its lanes, kind and side, in one pass."""
    lab = LABELS[lesson.lang]
    first = next((s for s in lesson.steps if s.stream is not None and s.left and s.right), None)
    sec = _section(first) if first is not None else _Section(None, "", "", "client", "server")
    rows: list[_Row] = []
    for s in lesson.steps:
        header = not rows
        if s.stream is not None and s.left and s.right and s.stream != sec.key:
            sec, header = _section(s), True
        if s.kind == "warning":
            rows.append(_Row(s, sec, header, "warning", 0, ()))
        elif s.kind == "call":
            lines = tuple(wrap_cut(s.label, CAP_COLS)) or ("",)
            if len(lines) > 3:
                lines = (*lines[:2], clip(" ".join(lines[2:]), CAP_COLS))
            rows.append(_Row(s, sec, header, "call", _role_side(s.actor, sec, -1), lines))
        elif s.direction:
            rows.append(_Row(s, sec, header, "arrow", -1 if s.direction > 0 else 1, _cause(s, lab["kernel"])))
        elif s.stream is not None and s.stream == sec.key and (how := _icmp_side(s, sec))[1]:
            kind, side = how
            rows.append(_Row(s, sec, header, kind, side, _cause(s, lab["kernel"]) if kind == "arrow" else ()))
        else:
            rows.append(_Row(s, sec, header, "note", 0, ()))
    return rows


@dataclass(frozen=True)
class _Geometry:
    gutter: float  # x where the left application column starts
    no_x: float  # right edge of the packet numbers
    time_x: float  # right edge of the times
    xl: float  # left lane
    xr: float  # right lane
    width: float


def _state_tags(s: Step) -> tuple[str, str]:
    if s.states is None:
        return "", ""
    return (s.states[0] if s.changed[0] else "", s.states[1] if s.changed[1] else "")


def _label_text(s: Step) -> tuple[str, str]:
    flags = f"[{', '.join(s.analysis)}]" if s.analysis else ""
    return clip(s.label, LABEL_COLS), flags


def _header_w(role: str, endpoint: str) -> float:
    return max(_px(role, F_TEXT), _px(endpoint, F_TEXT)) + 16


def _geometry(lesson: Lesson, rows: list[_Row], times: list[str]) -> _Geometry:
    lab = LABELS[lesson.lang]
    max_no = max((r.step.packet + 1 for r in rows if r.step.packet is not None), default=0)
    no_w = max(len(str(max_no)), text_width(lab["no"]))
    time_w = max([text_width(lab["time"]), *(len(t) for t in times)])
    col = F_TEXT * EM
    no_x = PAD + no_w * col
    time_x = no_x + col + time_w * col
    gutter = time_x + 12
    app = {-1: 96.0, 1: 96.0}
    gap = 250.0
    tags = {0: 0.0, 1: 0.0}
    for r in rows:
        if r.kind in ("arrow", "call") and r.app:
            widest = max(_px(x, F_TEXT) for x in r.app) if r.app else 0.0
            app[r.side] = max(app[r.side], widest + (28 if r.kind == "call" else 16))
        if r.kind in ("arrow", "relay"):
            label, flags = _label_text(r.step)
            gap = max(gap, _px(label, F_LABEL) + (_px(" " + flags, F_LABEL) if flags else 0) + 40)
            for k, tag in enumerate(_state_tags(r.step)):
                if tag:
                    tags[k] = max(tags[k], _px(tag, F_STATE) + 16)
        if r.header:
            hl = _header_w(lab.get(r.section.left_role, r.section.left_role), r.section.left)
            hr = _header_w(lab.get(r.section.right_role, r.section.right_role), r.section.right)
            gap = max(gap, hl / 2 + hr / 2 + 24)
            app[-1] = max(app[-1], hl / 2 + 8)
            app[1] = max(app[1], hr / 2 + 8)
    gap = max(gap, tags[0] + tags[1] + 30)
    gap += max(0.0, MIN_WIDTH - (gutter + app[-1] + gap + app[1] + PAD))
    xl = gutter + app[-1]
    xr = xl + gap
    return _Geometry(gutter, no_x, time_x, xl, xr, xr + app[1] + PAD)


def _style(lang: str) -> str:
    return (
        "<style>"
        f"text{{font-family:{MONO};font-size:{F_TEXT}px;fill:#000}}"
        f".title{{font-family:{SANS};font-size:{F_TITLE}px;font-weight:bold}}"
        ".sub,.legend,.time,.why,.caption{fill:#444}"
        f".label,.flags{{font-size:{F_LABEL}px}}"
        ".flags,.no,.role,.callname,.warn,.stream{font-weight:bold}"
        f".state{{font-size:{F_STATE}px}}"
        ".note{font-style:italic;fill:#333}"
        ".call.error{font-weight:bold}"
        ".lane{stroke:#666;stroke-width:1.5}"
        ".wire{stroke:#000;stroke-width:1.4;fill:none}"
        ".wire.flagged{stroke-dasharray:6 3}"
        ".head,.origin{fill:#000}"
        ".box{fill:#fff;stroke:#666}"
        ".box.error{stroke:#000;stroke-width:2}"
        ".tick{stroke:#666}"
        ".returned{fill:#fff;stroke:#000}"
        ".hdr{fill:#f0f0f0;stroke:#000}"
        ".tag{fill:#e6e6e6}"
        ".warnbox{fill:#f0f0f0;stroke:#000;stroke-dasharray:4 2}"
        ".rule{stroke:#bbb}"
        ".cross{stroke:#000;stroke-width:2.2}"
        ".drop{font-weight:bold}"
        "</style>"
    )


def render_svg(lesson: Lesson) -> str:
    """The lesson as a standalone SVG document (UTF-8 text)."""
    lang = lang_of(lesson.lang)
    lab, words = LABELS[lang], TEXT[lang]
    rows = _place(lesson)
    times = [f"{lesson.rel_s(r.step):.6f}" for r in rows]
    g = _geometry(lesson, rows, times)
    multi = len({r.step.stream for r in rows if r.step.stream is not None}) > 1
    width = math.ceil(g.width)
    cols = max(40, int((width - 2 * PAD) / (F_TEXT * EM)))
    title = words["title"].format(title=lesson.title or "-")
    title_cols = max(20, int((width - 2 * PAD) / (F_TITLE * EM * 1.1)))

    head: list[str] = []
    body: list[str] = []
    lanes: list[str] = []
    y: float = PAD
    for k, line in enumerate(wrap_cut(title, title_cols)):
        y += F_TITLE + (4 if k else 0)
        head.append(_text(PAD, y, line, "title"))
    n_packets = sum(1 for r in rows if r.step.kind == "packet")
    n_warn = sum(1 for r in rows if r.step.kind == "warning")
    n_streams = len({r.step.stream for r in rows if r.step.stream is not None})
    y += 18
    head.append(_text(PAD, y, words["summary"].format(steps=len(rows), packets=n_packets, streams=n_streams,
                                                       warnings=n_warn), "sub"))
    legend = words["legend"] + (" " + words["relay"] if any(r.kind == "relay" for r in rows) else "")
    legend += " " + words["drop"] if any(r.step.dropped for r in rows) else ""
    for line in wrap_cut(legend, cols):
        y += 14
        head.append(_text(PAD, y, line, "legend"))
    y += 12
    if not rows:
        y += 16
        body.append(_text(PAD, y, words["empty"], "note"))

    lane_top: float | None = None
    first = True
    for r, t in zip(rows, times, strict=True):
        if r.header:
            if lane_top is not None:
                lanes.append(_lane_lines(g, lane_top, y))
            y, lane_top = _header(body, g, r.section, y, lab, multi, first)
            first = False
        y = _draw(body, g, r, t, y, lab)
    if lane_top is not None:
        lanes.append(_lane_lines(g, lane_top, y + 6))
    height = math.ceil(y + PAD + 6)

    doc_lang = "zh-Hans" if lang == "zh" else "en"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" xml:lang="{doc_lang}">\n',
        f"<title>{_esc(title)}</title>\n",
        _style(lang) + "\n",
        '<rect x="0" y="0" width="100%" height="100%" fill="#fff"/>\n',
        '<g class="lanes">', "".join(lanes), "</g>\n",
        '<g class="head">', "".join(head), "</g>\n",
        "\n".join(body),
        "\n</svg>\n",
    ]
    return "".join(out)


def _lane_lines(g: _Geometry, top: float, bottom: float) -> str:
    return _line("lane", g.xl, top, g.xl, bottom) + _line("lane", g.xr, top, g.xr, bottom)


def _header(body: list[str], g: _Geometry, sec: _Section, y: float, lab: dict[str, str], multi: bool,
            first: bool) -> tuple[float, float]:
    """A section's header row: each lane's role and endpoint in a box.  Returns (next y, lane top)."""
    key = f"{'t' if sec.key[0] == PROTO_TCP else 'u'}{sec.key[1]}" if sec.key is not None else ""
    parts = [f'<g class="section" data-stream="{key}">']
    if y > PAD + 100:
        parts.append(_line("rule", PAD, y + 2, g.width - PAD, y + 2))
    top = y + 6
    if multi and sec.key is not None:
        proto = "TCP" if sec.key[0] == PROTO_TCP else "UDP"
        parts.append(_text(PAD, top + 14, lab["stream"].format(proto=proto, index=sec.key[1]), "stream"))
    if first:
        parts.append(_text(g.no_x, top + 30, lab["no"], "caption", "end"))
        parts.append(_text(g.time_x, top + 30, lab["time"], "caption", "end"))
    for x, role, ep in ((g.xl, sec.left_role, sec.left), (g.xr, sec.right_role, sec.right)):
        word = lab.get(role, role)
        w = _header_w(word, ep)
        h = 34 if ep else 20
        parts.append(_rect("hdr", x - w / 2, top, w, h, 3))
        parts.append(_text(x, top + 14, word, "role", "middle"))
        if ep:
            parts.append(_text(x, top + 28, ep, "endpoint", "middle"))
    parts.append("</g>")
    body.append("".join(parts))
    return top + 44, top + 34


def _draw(body: list[str], g: _Geometry, r: _Row, t: str, y: float, lab: dict[str, str]) -> float:
    """One step's row at ``y``; returns the next row's y."""
    s = r.step
    no = f' data-no="{s.packet + 1}"' if s.packet is not None else ""
    parts = [f'<g class="step row-{r.kind}" data-step="{s.index}"{no}>']
    if s.packet is not None:
        parts.append(_text(g.no_x, y + 22, str(s.packet + 1), "no", "end"))
    if s.kind != "warning":
        parts.append(_text(g.time_x, y + 22, t, "time", "end"))
    if r.kind in ("arrow", "relay"):
        h = _arrow(parts, g, r, y)
    elif r.kind == "call":
        h = _call(parts, g, r, y)
    elif r.kind == "note":
        width = g.xr - g.xl + (g.xl - g.gutter) + (g.width - PAD - g.xr) - 20
        label = clip(s.label, max(10, int(width / (F_LABEL * EM))))
        parts.append(_text((g.xl + g.xr) / 2, y + 20, label, "label note", "middle"))
        h = 30
    else:
        width = g.width - 2 * PAD
        lines = wrap_cut(lab["warning"].format(msg=s.label), max(20, int((width - 16) / (F_TEXT * EM))))
        h = 16 * len(lines) + 12
        parts.append(_rect("warnbox", PAD, y + 4, width, h - 4))
        for k, line in enumerate(lines):
            parts.append(_text(PAD + 8, y + 19 + 16 * k, line, "warn"))
        h += 4
    parts.append("</g>")
    body.append("".join(parts))
    return y + h


def _arrow(parts: list[str], g: _Geometry, r: _Row, y: float) -> float:
    s = r.step
    xs, xt = (g.xl, g.xr) if r.side < 0 else (g.xr, g.xl)
    if r.kind == "relay":  # from a host between the lanes (a router): it starts halfway
        xs, xt = (g.xl + g.xr) / 2, (g.xl if r.side < 0 else g.xr)
    ya, yb = y + 20, y + 20 + SLOPE
    dx, dy = xt - xs, yb - ya
    length = math.hypot(dx, dy)
    ux, uy = dx / length, dy / length
    bx, by = xt - HEAD * ux, yb - HEAD * uy
    cls = "wire flagged" if s.analysis else "wire"
    left_tag, right_tag = _state_tags(s)
    if s.dropped:
        _dropped(parts, cls, xs, ya, dx, dy, s, y + 58 if left_tag or right_tag else 0)
    else:
        parts.append(_line(cls, xs, ya, bx, by))
        pts = (xt, yb, bx - 3.5 * uy, by + 3.5 * ux, bx + 3.5 * uy, by - 3.5 * ux)
        parts.append('<polygon class="head" points="{},{} {},{} {},{}"/>'.format(*map(_n, pts)))
    parts.append(f'<circle class="origin" cx="{_n(xs)}" cy="{_n(ya)}" r="2.5"/>')
    label, flags = _label_text(s)
    total = _px(label, F_LABEL) + (_px(" " + flags, F_LABEL) if flags else 0)
    x0 = (g.xl + g.xr) / 2 - total / 2
    parts.append(_text(x0, ya - 6, label, "label"))
    if flags:
        parts.append(_text(x0 + _px(label + " ", F_LABEL), ya - 6, flags, "flags"))
    # The application column of the sender: the call (or "kernel"), then the reason.
    ax, anchor = (g.xl - 10, "end") if r.side < 0 else (g.xr + 10, "start")
    for k, line in enumerate(r.app):
        cls = "cause why"
        if k == 0 and len(r.app) > 1:
            cls = "cause callname" if s.by == "call" else "cause kernel"
        parts.append(_text(ax, ya + 4 + 13 * k, line, cls, anchor))
    for tag, x, anchor in ((left_tag, g.xl + 6, "start"), (right_tag, g.xr - 6, "end")):
        if not tag:
            continue
        w = _px(tag, F_STATE) + 8
        rx = x if anchor == "start" else x - w
        parts.append(_rect("tag", rx, y + 32, w, 14, 2))
        parts.append(_text(rx + 4, y + 43, tag, "state"))
    if s.dropped and (left_tag or right_tag):
        return 66  # the drop's reason goes under the state tags
    return 52 if left_tag or right_tag else 40


def _dropped(parts: list[str], cls: str, xs: float, ya: float, dx: float, dy: float, s: Step,
             mark_y: float) -> None:
    """A frame the receiving kernel dropped: the wire stops short with an ✗ and the reason
    (at ``mark_y`` when given, else just under the ✗)."""
    xe, ye = xs + DROP_AT * dx, ya + DROP_AT * dy
    parts.append(_line(cls, xs, ya, xe, ye))
    for sx, sy in ((1, 1), (1, -1)):
        parts.append(_line("cross", xe - 5 * sx, ye - 5 * sy, xe + 5 * sx, ye + 5 * sy))
    anchor = "end" if dx > 0 else "start"
    parts.append(_text(xe - (9 if dx > 0 else -9), mark_y or ye + 14, f"✗ {s.dropped}", "drop", anchor))
    parts.append(f"<title>{_esc(s.drop_words)}</title>")


def _call(parts: list[str], g: _Geometry, r: _Row, y: float) -> float:
    s = r.step
    lines = r.app
    w = max(_px(x, F_TEXT) for x in lines) + 12
    h = 14 * len(lines) + 8
    lane = g.xl if r.side < 0 else g.xr
    bx = lane - 18 - w if r.side < 0 else lane + 18
    edge = bx + w if r.side < 0 else bx
    err = " error" if s.errno else ""
    mid = y + 5 + h / 2
    parts.append(_line("tick", edge, mid, lane, mid))
    parts.append(f'<circle class="returned" cx="{_n(lane)}" cy="{_n(mid)}" r="3"/>')
    parts.append(_rect("box" + err, bx, y + 5, w, h, 4))
    for k, line in enumerate(lines):
        parts.append(_text(bx + 6, y + 17 + 14 * k, line, f"call{err}"))
    return h + 10
