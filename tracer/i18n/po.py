"""A small, pure reader and writer of gettext PO files (the subset tracer uses).

Reads ``msgid``/``msgstr`` pairs with multi-line strings and C escapes; comments
are skipped, ``#, fuzzy`` entries and obsolete ``#~`` entries are ignored, and an
empty ``msgstr`` means "not translated" -- the same entries GNU ``msgfmt`` leaves
out of a compiled catalogue.  ``msgctxt`` and plural forms are not used by tracer
and are rejected, so a catalogue never silently means something else.
"""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "a": "\a", "b": "\b",
            "f": "\f", "v": "\v", "?": "?", "'": "'"}
_UNESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class PoError(ValueError):
    """A PO file tracer cannot read; the message names the line."""


@dataclass(frozen=True)
class Entry:
    """One catalogue entry: key, text and the comment for translators."""

    msgid: str
    msgstr: str
    comment: str = ""


def _unquote(token: str, lineno: int) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise PoError(f"line {lineno}: expected a quoted string")
    body = token[1:-1]
    if "\\" not in body and '"' not in body:
        return body  # the common case, without the character loop below
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            raise PoError(f"line {lineno}: unescaped quote")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1: i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt and nxt in "01234567":  # octal, up to three digits
            j = i + 1
            while j < min(i + 4, len(body)) and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1: j], 8)))
            i = j
        elif nxt == "x":
            j = i + 2
            while j < len(body) and body[j] in "0123456789abcdefABCDEF":
                j += 1
            if j == i + 2:
                raise PoError(f"line {lineno}: bad \\x escape")
            out.append(chr(int(body[i + 2: j], 16)))
            i = j
        else:
            raise PoError(f"line {lineno}: unknown escape \\{nxt}")
    return "".join(out)


def parse(text: str) -> dict[str, str]:
    """The translated entries of PO ``text``: msgid -> msgstr (header left out)."""
    return {e.msgid: e.msgstr for e in entries(text) if e.msgid and e.msgstr}


def entries(text: str) -> list[Entry]:
    """Every non-fuzzy, non-obsolete entry of PO ``text`` in file order, header included."""
    out: list[Entry] = []
    fields: dict[str, list[str]] = {}
    current = ""
    fuzzy = False
    comment: list[str] = []

    def flush(lineno: int) -> None:
        nonlocal fields, current, fuzzy, comment
        if fields:
            if "msgid" not in fields or "msgstr" not in fields:
                raise PoError(f"line {lineno}: entry without msgid or msgstr")
            if not fuzzy:
                out.append(Entry("".join(fields["msgid"]), "".join(fields["msgstr"]), "\n".join(comment)))
        fields, current, fuzzy, comment = {}, "", False, []

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if fields and current == "msgstr":
                flush(lineno)
            if line.startswith("#,") and "fuzzy" in (f.strip() for f in line[2:].split(",")):
                fuzzy = True
            elif line.startswith("#."):
                comment.append(line[2:].strip())
            continue
        if line.startswith('"'):
            if not current:
                raise PoError(f"line {lineno}: string outside an entry")
            fields[current].append(_unquote(line, lineno))
            continue
        keyword, _, rest = line.partition(" ")
        if keyword not in ("msgid", "msgstr"):
            raise PoError(f"line {lineno}: {keyword} is not supported")
        if keyword == "msgid" and fields:
            flush(lineno)
        if keyword in fields:
            raise PoError(f"line {lineno}: second {keyword}")
        current = keyword
        fields[keyword] = [_unquote(rest.strip(), lineno)]
    flush(len(text.splitlines()) + 1)
    return out


def _quote(s: str) -> str:
    return '"' + "".join(_UNESCAPES.get(ch, ch) for ch in s) + '"'


def _field(keyword: str, s: str) -> list[str]:
    parts = s.splitlines(keepends=True)
    if len(parts) <= 1:
        return [f"{keyword} {_quote(s)}"]
    return [f'{keyword} ""', *(_quote(p) for p in parts)]


def dump(items: list[Entry]) -> str:
    """PO text for ``items`` (the first should be the header, msgid "")."""
    lines: list[str] = []
    for e in items:
        lines += [f"#. {c}" for c in e.comment.splitlines()]
        lines += _field("msgid", e.msgid) + _field("msgstr", e.msgstr) + [""]
    return "\n".join(lines)
