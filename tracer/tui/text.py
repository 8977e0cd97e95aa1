"""Every word the TUI shows (catalogue keys ``tui.*``) and its key map (``key.*``).

``KEYS`` is the single list of keys: the app binds them, the footer shows the
main ones and the help screen lists them all, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.i18n import LANGS, Words, template


@dataclass(frozen=True)
class Key:
    """One key: Textual key names, the app action, its words' catalogue key."""

    keys: str  # comma-separated Textual key names
    action: str
    shown: str  # how the help screen and footer write the key
    text: str  # catalogue key of what the key does; ``<text>.footer`` holds its footer words
    in_footer: bool = False

    def words(self, lang: str) -> str:
        """What the key does, in ``lang`` (the help screen; English: the Textual binding)."""
        return template(self.text, lang)

    def footer_words(self, lang: str) -> str:
        """Its short words for the footer in ``lang``; "" when it is not in the footer."""
        return template(self.text + ".footer", lang) if self.in_footer else ""


KEYS: tuple[Key, ...] = (
    Key("up,k", "cursor_up", "↑", "key.cursor_up"),
    Key("down,j", "cursor_down", "↓", "key.cursor_down"),
    Key("pageup", "page_up", "PgUp", "key.page_up"),
    Key("pagedown", "page_down", "PgDn", "key.page_down"),
    Key("space,n", "step", "space/n", "key.step", in_footer=True),
    Key("b", "step_back", "b", "key.step_back", in_footer=True),
    Key("p", "play", "p", "key.play", in_footer=True),
    Key("plus,equals_sign", "faster", "+", "key.faster"),
    Key("minus", "slower", "-", "key.slower"),
    Key("g,home", "first", "g", "key.first"),
    Key("G,end", "last", "G", "key.last"),
    Key("slash", "filter", "/", "key.filter", in_footer=True),
    Key("s", "streams", "s", "key.streams", in_footer=True),
    Key("r", "raw_seq", "r", "key.raw_seq"),
    Key("l", "language", "l", "key.language", in_footer=True),
    Key("f", "follow", "f", "key.follow"),
    Key("d", "panes", "d", "key.panes"),
    Key("e", "export", "e", "key.export", in_footer=True),
    Key("question_mark", "help", "?", "key.help", in_footer=True),
    Key("q", "quit", "q", "key.quit", in_footer=True),
)

# Presenter mode (--present, --quiz) has keys of its own: fewer, and bigger steps; some
# are the ladder's own.
_LADDER = {k.action: k for k in KEYS}
PRESENT_KEYS: tuple[Key, ...] = (
    Key("space,n,right,enter", "next", "space", "key.present.next", in_footer=True),
    Key("b,left,backspace", "back", "b", "key.present.back", in_footer=True),
    Key("1,2,3,4", "answer_hint", "1–4", "key.present.answer_hint", in_footer=True),
    Key("p", "play", "p", "key.present.play", in_footer=True),
    _LADDER["faster"],
    _LADDER["slower"],
    Key("g,home", "first", "g", "key.present.first"),
    Key("G,end", "last", "G", "key.present.last"),
    _LADDER["language"],
    Key("escape,v", "ladder", "Esc", "key.present.ladder", in_footer=True),
    _LADDER["help"],
    _LADDER["quit"],
)

WORDS = Words("tui.")


def next_lang(lang: str) -> str:
    """The language the ``l`` key switches to: the next one of ``LANGS``, round."""
    i = LANGS.index(lang) if lang in LANGS else -1
    return LANGS[(i + 1) % len(LANGS)]


def words(lang: str) -> dict[str, str]:
    """The TUI's words in ``lang``: every ``tui.<name>`` key of the catalogue, as ``name``."""
    return WORDS[lang]
