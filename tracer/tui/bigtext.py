"""Big letters for the presenter's stage: a 5-pixel-high font drawn with half blocks.

A terminal has one font size, and the back row of a lecture hall cannot read it:
the packet's flags (``SYN,ACK``) and the call (``accept()``) are drawn three lines
high instead.  Each glyph is 5 rows of pixels, two rows per line (▀ ▄ █), so a word
takes three lines.  Pure: text in, lines out.
"""

from __future__ import annotations

_GLYPHS: dict[str, tuple[str, ...]] = {
    "A": (" # ", "# #", "###", "# #", "# #"),
    "B": ("## ", "# #", "## ", "# #", "## "),
    "C": (" ##", "#  ", "#  ", "#  ", " ##"),
    "D": ("## ", "# #", "# #", "# #", "## "),
    "E": ("###", "#  ", "## ", "#  ", "###"),
    "F": ("###", "#  ", "## ", "#  ", "#  "),
    "G": (" ##", "#  ", "# #", "# #", " ##"),
    "H": ("# #", "# #", "###", "# #", "# #"),
    "I": ("###", " # ", " # ", " # ", "###"),
    "J": ("  #", "  #", "  #", "# #", " # "),
    "K": ("# #", "# #", "## ", "# #", "# #"),
    "L": ("#  ", "#  ", "#  ", "#  ", "###"),
    "M": ("#   #", "## ##", "# # #", "#   #", "#   #"),
    "N": ("#  #", "## #", "# ##", "#  #", "#  #"),
    "O": (" # ", "# #", "# #", "# #", " # "),
    "P": ("## ", "# #", "## ", "#  ", "#  "),
    "Q": (" # ", "# #", "# #", "## ", " ##"),
    "R": ("## ", "# #", "## ", "# #", "# #"),
    "S": (" ##", "#  ", " # ", "  #", "## "),
    "T": ("###", " # ", " # ", " # ", " # "),
    "U": ("# #", "# #", "# #", "# #", "###"),
    "V": ("# #", "# #", "# #", "# #", " # "),
    "W": ("#   #", "#   #", "# # #", "## ##", "#   #"),
    "X": ("# #", "# #", " # ", "# #", "# #"),
    "Y": ("# #", "# #", " # ", " # ", " # "),
    "Z": ("###", "  #", " # ", "#  ", "###"),
    "0": ("###", "# #", "# #", "# #", "###"),
    "1": (" # ", "## ", " # ", " # ", "###"),
    "2": ("## ", "  #", " # ", "#  ", "###"),
    "3": ("## ", "  #", " # ", "  #", "## "),
    "4": ("# #", "# #", "###", "  #", "  #"),
    "5": ("###", "#  ", "## ", "  #", "## "),
    "6": (" ##", "#  ", "###", "# #", "###"),
    "7": ("###", "  #", " # ", " # ", " # "),
    "8": ("###", "# #", "###", "# #", "###"),
    "9": ("###", "# #", "###", "  #", "## "),
    ",": ("  ", "  ", "  ", " #", "# "),
    ".": (" ", " ", " ", " ", "#"),
    "-": ("   ", "   ", "###", "   ", "   "),
    "_": ("   ", "   ", "   ", "   ", "###"),
    "(": (" #", "# ", "# ", "# ", " #"),
    ")": ("# ", " #", " #", " #", "# "),
    "?": ("## ", "  #", " # ", "   ", " # "),
    " ": ("  ", "  ", "  ", "  ", "  "),
}
_HALF = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}


def can_draw(text: str) -> bool:
    return all(c in _GLYPHS for c in text.upper())


def big_lines(text: str) -> list[str]:
    """``text`` in big letters: three lines of equal width (unknown characters: ``?``)."""
    rows = ["", "", "", "", "", ""]  # five pixel rows and a blank one under them
    for k, ch in enumerate(text.upper()):
        glyph = _GLYPHS.get(ch, _GLYPHS["?"])
        w = len(glyph[0])
        for r in range(5):
            rows[r] += (" " if k else "") + glyph[r]
        rows[5] += (" " if k else "") + " " * w
    return ["".join(_HALF[(a == "#", b == "#")] for a, b in zip(rows[i], rows[i + 1], strict=True))
            for i in (0, 2, 4)]
