"""The TUI's row filter (the ``/`` key): a few words, every one must match.

Words (case does not matter; ``!`` before a word negates it):

- a protocol: ``tcp``, ``udp``, ``icmp``, ``icmpv6``, ``arp``, ...
- TCP flags: ``syn``, ``fin``, ``rst``, ``psh``, ``ack``, ``urg``, ``ece``, ``cwr``
- tshark's analysis flags by name or prefix: ``retransmission``, ``dup_ack``, ``zero``, ...
- who caused it: ``kernel``, ``call``, ``inferred``
- ``stream=N``, ``port=N``, ``host=ADDR``, ``no=N`` or ``no=A-B`` (packet numbers)
- any other text: a cause (its words in English or Chinese, e.g. ``listen queue``
  or ``监听``), a call name (``connect``) or part of an address.

Packets are matched column-wise with numpy; calls by their text.  A word that is
malformed (``port=x``) makes ``Filter.error`` say so instead of matching nothing
silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tracer.core.analysis import Analysis
from tracer.core.model import AnalysisFlag, CauseBy, SocketCall
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.table import PacketTable
from tracer.i18n import t
from tracer.i18n.explain import label

Mask = npt.NDArray[np.bool_]
_TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20,
              "ece": 0x40, "cwr": 0x80}
_PACKET_ONLY = frozenset({*_TCP_FLAGS, "kernel", "inferred", "icmp", "icmpv6", "arp"})


def _analysis_bits(word: str) -> int:
    w = word.replace("-", "_")
    bits = 0
    for f in AnalysisFlag:
        if f.json_name == w or (len(w) >= 3 and f.json_name.startswith(w)):
            bits |= 1 << f.value
    return bits


# Why an expression is malformed: catalogue keys filter.<name>, with {field} and {value}.
FILTER_ERRORS = ("bad_number", "unknown_field")


@dataclass(frozen=True)
class Filter:
    """A parsed filter expression (``Filter("syn !ack")``)."""

    expr: str = ""
    words: tuple[tuple[bool, str], ...] = field(init=False)  # (negated, word)
    error: str | None = field(init=False)  # why it is malformed: a FILTER_ERRORS name, or None
    error_params: tuple[tuple[str, str], ...] = field(init=False)  # the error text's {field} and {value}

    def __post_init__(self) -> None:
        words: list[tuple[bool, str]] = []
        error: str | None = None
        params: tuple[tuple[str, str], ...] = ()
        for raw in self.expr.split():
            neg = raw.startswith("!")
            w = raw.lstrip("!").lower()
            if not w:
                continue
            key, eq, value = w.partition("=")
            if eq and key in ("stream", "port", "no") and not _int_range(value):
                error, params = "bad_number", (("field", key), ("value", value))
            elif eq and key not in ("stream", "port", "no", "host"):
                error, params = "unknown_field", (("field", key),)
            words.append((neg, w))
        object.__setattr__(self, "words", tuple(words))
        object.__setattr__(self, "error", error)
        object.__setattr__(self, "error_params", params)

    def error_text(self, lang: str) -> str | None:
        """Why the expression is malformed, in ``lang``; None when it is not."""
        return None if self.error is None else t(f"filter.{self.error}", lang, **dict(self.error_params))

    @property
    def empty(self) -> bool:
        return not self.words

    def packet_mask(self, t: PacketTable, a: Analysis) -> Mask | None:
        """Rows of ``t`` that match every word, or None when there is no filter."""
        if not self.words or self.error:
            return None
        mask = np.ones(len(t), dtype=np.bool_)
        for neg, w in self.words:
            m = _word_mask(w, t, a)
            mask &= ~m if neg else m
        return mask

    def keeps_call(self, c: SocketCall, text: str, streams: set[tuple[int, int]] | None = None) -> bool:
        """Whether a call row stays: each word must hold for the call (a word that
        only packets have, like ``syn``, hides calls unless negated)."""
        if self.error:
            return True
        for neg, w in self.words:
            ok = _word_call(w, c, text, streams)
            if ok == neg:
                return False
        return True


def _int_range(value: str) -> tuple[int, int] | None:
    lo, dash, hi = value.partition("-")
    if not lo.isdigit() or (dash and not hi.isdigit()):
        return None
    return (int(lo), int(hi) if dash else int(lo))


def _text_reasons(w: str) -> tuple[list[int], list[int]]:
    """Reason codes and call codes whose names or labels contain ``w``."""
    reasons = [i for i, name in enumerate(REASONS)
               if i and (w in name.replace("_", " ") or w in name
                         or w in label(name, "en").lower() or w in label(name, "zh"))]
    calls = [i for i, name in enumerate(CALL_NAMES) if i and w in name]
    return reasons, calls


def _word_mask(w: str, t: PacketTable, a: Analysis) -> Mask:
    key, eq, value = w.partition("=")
    if eq:
        if key == "host":
            idx = [i for i, addr in enumerate(t.addresses) if addr.lower() == value.strip("[]")]
            return np.isin(t.src, idx) | np.isin(t.dst, idx)
        rng = _int_range(value)
        assert rng is not None
        lo, hi = rng
        if key == "stream":
            return (a.stream >= lo) & (a.stream <= hi)
        if key == "port":
            return ((t.sport >= lo) & (t.sport <= hi)) | ((t.dport >= lo) & (t.dport <= hi))
        no = np.arange(1, len(t) + 1)
        return (no >= lo) & (no <= hi)
    if w in t.proto_names:
        return np.asarray(t.proto == t.proto_names.index(w))
    if w in _TCP_FLAGS:
        return np.asarray((t.proto == 0) & (t.tcp_flags & _TCP_FLAGS[w] != 0))
    if w == "kernel":
        return np.asarray(a.cause_by == CauseBy.KERNEL)
    if w == "call":
        return np.asarray(a.cause_by == CauseBy.CALL)
    if w == "inferred":
        return np.asarray(a.cause_inferred)
    bits = _analysis_bits(w)
    mask = (a.flags & bits) != 0 if bits else np.zeros(len(t), dtype=np.bool_)
    reasons, calls = _text_reasons(w)
    if reasons:
        mask |= np.isin(a.cause_reason, reasons)
    if calls:
        mask |= np.isin(a.cause_call, calls) & (a.cause_by == CauseBy.CALL)
    idx = [i for i, addr in enumerate(t.addresses) if w in addr.lower()]
    if idx:
        mask |= np.isin(t.src, idx) | np.isin(t.dst, idx)
    return np.asarray(mask)


def _word_call(w: str, c: SocketCall, text: str, streams: set[tuple[int, int]] | None) -> bool:
    key, eq, value = w.partition("=")
    if eq:
        if key == "stream":
            rng = _int_range(value)
            return rng is not None and streams is not None and any(
                rng[0] <= s <= rng[1] for _, s in streams)
        if key == "port":
            rng = _int_range(value)
            eps = [e for e in (c.local, c.remote) if e]
            return rng is not None and any(
                e.rpartition(":")[2].isdigit() and rng[0] <= int(e.rpartition(":")[2]) <= rng[1]
                for e in eps)
        if key == "host":
            return any(e.rpartition(":")[0].strip("[]").lower() == value.strip("[]")
                       for e in (c.local, c.remote) if e)
        return False
    if w in ("tcp", "udp"):
        return c.proto == w
    if w in _PACKET_ONLY or _analysis_bits(w):
        return False
    if w == "call":
        return True
    return w in text.lower()
