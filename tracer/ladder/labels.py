"""The ladder's words (from the catalogues: ``ladder.*``, ``flag.*``), TCP flag
names, a cause's few words, a packet's arrow label and its explanation sentence."""

from __future__ import annotations

from functools import cache

from tracer.core.analysis import Analysis
from tracer.core.model import AnalysisFlag, Side, endpoint_str
from tracer.core.reasons import REASONS
from tracer.core.table import PacketTable
from tracer.core.trace import Trace
from tracer.i18n import Words, lang_of, template
from tracer.i18n.explain import explain, label

_FLAG_NAMES = ((0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
               (0x40, "ECE"), (0x80, "CWR"))  # fmt: skip

# The ladder's words, catalogue keys ladder.*: ``LABELS[lang]["title"]`` (one dict per language).
LABELS = Words("ladder.")


def flag_names(lang: str) -> dict[AnalysisFlag, str]:
    """Each analysis flag's words in ``lang`` (catalogue keys flag.<json_name>), built once."""
    return _flag_names(lang_of(lang))


@cache
def _flag_names(lang: str) -> dict[AnalysisFlag, str]:
    return {f: template(f"flag.{f.json_name}", lang) for f in AnalysisFlag}


# Short cause labels for the ladder rows (the full sentences are in tracer.i18n.explain).
def reason_label(name: str, lang: str) -> str:
    """A few words for cause reason ``name`` (see ``tracer.i18n.explain.label``)."""
    return label(name, lang)


def reason_words(code: int, lang: str) -> str:
    """``reason_label`` of a cause reason code; "?" for a code out of range."""
    return reason_label(REASONS[code], lang) if 0 <= code < len(REASONS) else "?"


def tcp_flag_names(bits: int) -> str:
    """Flag names like tshark shows them, e.g. ``SYN,ACK``."""
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit) or "-"


def tcp_label(flags: int, seq: int, ack: int, payload_len: int) -> str:
    """A TCP packet's arrow label: ``SYN,ACK seq=0 ack=1 len=0`` (seq/ack left out when absent)."""
    parts = [tcp_flag_names(flags)]
    if seq >= 0:
        parts.append(f"seq={seq}")
    if ack >= 0 and flags & 0x10:
        parts.append(f"ack={ack}")
    parts.append(f"len={payload_len}")
    return " ".join(parts)


def other_frame_text(t: PacketTable, i: int, lab: dict[str, str]) -> str:
    """A frame outside any TCP/UDP stream, in words: protocol, endpoints, ICMP type and code."""
    src = endpoint_str(t.address(int(t.src[i])), int(t.sport[i]))
    dst = endpoint_str(t.address(int(t.dst[i])), int(t.dport[i]))
    what = t.proto_names[int(t.proto[i])]
    desc = f"{what} {src} → {dst}" if src or dst else f"{what} ({lab['other']})"
    if int(t.icmp_type[i]) >= 0:
        desc += f" type={int(t.icmp_type[i])} code={int(t.icmp_code[i])}"
    return desc


def packet_explanation(trace: Trace, a: Analysis, i: int, lang: str = "en") -> str:
    """The plain-language sentence for row ``i``: its cause's template, filled in."""
    t = trace.packets
    reason = REASONS[int(a.cause_reason[i])]
    return explain(reason, Side(int(a.cause_side[i])), lang, src=t.src_endpoint(i), dst=t.dst_endpoint(i),
                   len=int(t.payload_len[i]), seq=int(a.rel_seq[i]), ack=int(a.rel_ack[i]))
