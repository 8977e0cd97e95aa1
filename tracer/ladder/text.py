"""Text laid out in terminal columns: widths (CJK characters count two), padding,
wrapping, clipping and the ladder's arrows."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator


def text_width(s: str) -> int:
    """Terminal columns of ``s``: East Asian wide/fullwidth characters count 2."""
    if s.isascii():
        return len(s)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)


def pad(s: str, width: int, right: bool = False) -> str:
    """``s`` padded with spaces to ``width`` columns (on the left if ``right``)."""
    fill = " " * max(0, width - text_width(s))
    return fill + s if right else s + fill


def wrap(text: str, width: int, indent: str = "") -> Iterator[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces (or anywhere in CJK text)."""
    line = indent
    for word in _words(text):
        if text_width(line) + text_width(word) > width and line.strip():
            yield line.rstrip()
            line = indent + word.lstrip()
        else:
            line += word
    if line.strip():
        yield line.rstrip()


def wrap_cut(text: str, width: int) -> list[str]:
    """``wrap``, and a word wider than a line cut up (an address, a long CJK-free token)."""
    out: list[str] = []
    for line in wrap(text, width):
        while text_width(line) > width:
            k = 0
            while text_width(line[: k + 1]) <= width:
                k += 1
            out.append(line[:k])
            line = line[k:]
        out.append(line)
    return out


def _words(text: str) -> Iterator[str]:
    """Break points: after spaces, and between any two wide (CJK) characters."""
    word = ""
    for c in text:
        wide = unicodedata.east_asian_width(c) in "WF"
        if word and (wide or word[-1] == " "):
            yield word
            word = ""
        word += c
    if word:
        yield word


def clip(s: str, width: int) -> str:
    """``s`` cut to ``width`` columns, ending in "…" when cut."""
    if text_width(s) <= width:
        return s
    out = ""
    for c in s:
        if text_width(out + c) > width - 1:
            return out + "…"
        out += c
    return out


def arrow(label: str, left_to_right: bool, width: int, dropped: bool = False) -> str:
    """An arrow ``width`` columns long with ``label`` on it, pointing right or left.

    A ``dropped`` frame's arrow stops short of the receiver's lane with ✗ (the receiving
    kernel discarded it: it never reached the socket)."""
    # Clipped so that the right lane stays in its column: label + 2 spaces + 3 arrow cells.
    body = f" {clip(label, width - 5) if text_width(label) > width - 5 else label} "
    dashes = max(2, width - text_width(body) - 1)
    short = min(_SHORT, dashes - 2) if dropped else 0
    if left_to_right:
        if short:
            return "─" + body + "─" * (dashes - 1 - short) + "✗" + " " * short
        return "─" + body + "─" * (dashes - 1) + "▶"
    if short:
        return " " * short + "✗" + "─" * (dashes - 1 - short) + body + "─"
    return "◀" + "─" * (dashes - 1) + body + "─"


_SHORT = 3  # cells a dropped frame's arrow stops short of the receiver's lane
