"""Explanations of causes and TCP states, from the catalogue (``explain.*``, ``state.*``, ``label.*``).

``template(reason, side, lang)`` is a ``str.format`` template that may use the
placeholders ``{src}``, ``{dst}``, ``{len}``, ``{seq}`` and ``{ack}``; exporters
cache it per (reason, side, lang) and format it per packet.  ``explain`` does
both at once.  The texts are written for students of socket programming: they
say which call (or which kernel mechanism) produced the packet and what the
application sees.

In the catalogue's texts ``<S>``/``<Sc>`` stand for the sender ("the client",
capitalised for ``<Sc>``) and ``<P>``/``<Pc>`` for its peer; they are replaced
when the template is built, so the cached templates contain plain text.
"""

from __future__ import annotations

from functools import cache

from tracer import i18n
from tracer.core.model import DecodeNote, Side, TcpState, rfc_name
from tracer.core.reasons import REASONS
from tracer.i18n import LANGS, has, lang_of

__all__ = ["LANGS", "explain", "label", "note_text", "reasons_missing_text", "state_name", "template"]

_NOUN_KEYS: dict[Side, tuple[str, str]] = {
    Side.CLIENT: ("client", "server"),
    Side.SERVER: ("server", "client"),
    Side.NONE: ("sender", "receiver"),
}


def _side(side: Side | int) -> Side:
    try:
        return Side(int(side))
    except (TypeError, ValueError):
        return Side.NONE


@cache
def _template(reason: str, side: Side, lang: str) -> str:
    key = f"explain.{reason}" if has(f"explain.{reason}") else "explain.unknown"
    text = i18n.template(key, lang)
    sender, peer = (i18n.template(f"explain.noun.{n}", lang) for n in _NOUN_KEYS[side])
    return (
        text.replace("<Sc>", sender[:1].upper() + sender[1:])
        .replace("<Pc>", peer[:1].upper() + peer[1:])
        .replace("<S>", sender)
        .replace("<P>", peer)
    )


def template(reason: str, side: Side | int, lang: str) -> str:
    """The ``str.format`` template for ``reason`` sent by ``side``, in ``lang``.

    Unknown reasons get the "unknown" text and unknown languages English, so a
    bad value never raises.
    """
    return _template(reason, _side(side), lang_of(lang))


class _Values(dict[str, object]):
    """Format values where an absent placeholder prints as "?"."""

    def __missing__(self, key: str) -> object:
        return "?"


def explain(reason: str, side: Side | int, lang: str, **values: object) -> str:
    """One or two sentences saying why a packet with this cause exists."""
    return template(reason, side, lang).format_map(_Values(values))


def state_name(state: TcpState | int, lang: str) -> str:
    """The RFC 9293 name of ``state`` ("TIME-WAIT"); in Chinese with a translation."""
    try:
        st = TcpState(int(state))
    except (TypeError, ValueError):
        st = TcpState.UNKNOWN
    return i18n.t(f"state.{st.name}", lang, name=rfc_name(st))


def label(reason: str, lang: str) -> str:
    """A few words for ``reason`` in ``lang`` (the snake_case name for an unlabelled one)."""
    if not has(f"label.{reason}"):
        return reason.replace("_", " ")
    return i18n.template(f"label.{reason}", lang)


def reasons_missing_text() -> list[tuple[str, str]]:
    """(lang, reason) pairs without a text; empty when every reason is explained."""
    return [(lang, r) for lang in LANGS for r in REASONS if not has(f"explain.{r}", lang)]


def note_text(note: DecodeNote, lang: str) -> str:
    """The sentence for a ``decode_notes`` entry (catalogue key ``decode.<key>``)."""
    return i18n.t(f"decode.{note.key}", lang, **dict(note.params))
