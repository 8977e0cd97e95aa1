"""tracer's user-facing texts: one keyed gettext catalogue per language.

Every text is stored once, under a stable dotted key (``explain.connect_syn``,
``state.TIME_WAIT``), in ``locale/<locale>/LC_MESSAGES/tracer.po``; the text may
use ``str.format`` named placeholders (``{path}``).  ``t`` formats a text (a literal
brace in it is doubled), ``template`` returns it raw for callers that cache it and
format it per packet, ``both`` gives the English and Chinese pair, ``Msg`` a
keyed text to render later (a parameter that is itself a ``Msg`` is rendered in
the same language), and ``Words(prefix)`` one dict per language of a module's
short words.  A key missing
from a translation falls back to English; a key missing from English is a bug and
raises KeyError.
docs/i18n.md says how to add a key or a language.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources

from tracer.core.model import TraceWarning
from tracer.i18n.po import parse

# The languages the user can choose (``--lang``) -> the catalogue's locale directory.
LOCALES: dict[str, str] = {"en": "en", "zh": "zh_CN"}
LANGS: tuple[str, ...] = tuple(LOCALES)
DOMAIN = "tracer"


def po_path(locale: str) -> str:
    """The package-relative path of ``locale``'s catalogue."""
    return f"locale/{locale}/LC_MESSAGES/{DOMAIN}.po"


@cache
def catalog(lang: str) -> dict[str, str]:
    """Key -> text of ``lang``'s own catalogue (no fallback), read once."""
    text = resources.files(__name__).joinpath(po_path(LOCALES[lang])).read_text(encoding="utf-8")
    return parse(text)


def lang_of(lang: str) -> str:
    """``lang`` when tracer has it, else English (a bad value never raises)."""
    return lang if lang in LOCALES else "en"


def has(key: str, lang: str = "en") -> bool:
    """Whether ``lang``'s own catalogue has ``key``."""
    return key in catalog(lang_of(lang))


def lookup(key: str, texts: dict[str, str], english: dict[str, str]) -> str:
    """``texts[key]``, else ``english[key]``; KeyError when English lacks it too (a bug)."""
    text = texts.get(key)
    return english[key] if text is None else text


def template(key: str, lang: str) -> str:
    """The unformatted text of ``key`` in ``lang`` (English when not translated)."""
    return lookup(key, catalog(lang_of(lang)), catalog("en"))


def t(key: str, lang: str, **params: object) -> str:
    """The text of ``key`` in ``lang`` with ``params`` filled in (a ``Msg`` in ``lang``)."""
    return template(key, lang).format(**{k: v.text(lang) if isinstance(v, Msg) else v
                                         for k, v in params.items()})


class Msg:
    """A keyed text and its parameters, rendered per language when it is shown."""

    __slots__ = ("key", "params")

    def __init__(self, key: str, **params: object) -> None:
        self.key, self.params = key, params

    def text(self, lang: str) -> str:
        return t(self.key, lang, **self.params)

    def __repr__(self) -> str:
        return f"Msg({self.key!r}, **{self.params!r})"


def both(key: str, **params: object) -> tuple[str, str]:
    """(English, Chinese) texts of ``key``."""
    return t(key, "en", **params), t(key, "zh", **params)


def warning_text(w: TraceWarning, lang: str) -> str:
    """A trace warning's one line in ``lang``.  Warnings carry their texts (rendered with
    ``both`` where they are made, and stored so in tracer's pcapng block): Chinese for
    ``zh``, English otherwise."""
    return " ".join((w.message_zh if lang_of(lang) == "zh" else w.message).split())


@cache
def _section(prefix: str, lang: str) -> dict[str, str]:
    return {k[len(prefix):]: template(k, lang) for k in catalog("en") if k.startswith(prefix)}


class Words(Mapping[str, dict[str, str]]):
    """``words[lang][name]`` = the template of key ``<prefix><name>``: one module's words.

    For modules that look many short words up per row: one dict per language, built
    from the catalogue on first use.  An unknown language gets English.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __getitem__(self, lang: str) -> dict[str, str]:
        return _section(self.prefix, lang_of(lang))

    def __iter__(self) -> Iterator[str]:
        return iter(LANGS)

    def __len__(self) -> int:
        return len(LANGS)
