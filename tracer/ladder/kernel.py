"""The kernel witness's account of a packet as every view words it.

``trace.kernel`` (``tracer.core.witness.KernelAccount``, None for a foreign capture)
says per frame what sent it (``PacketOrigin``), whether the receiving kernel dropped
it (``PacketDrop``), why a RST was sent (``PacketReset``) and the receiver's figures
(``TcpFigures``).  ``KernelView`` indexes them by packet row once; the functions here
turn them into the words the ladder, the detail, the TUI and the exports share
(catalogue keys ``kernel.*``), so a drop or an origin reads the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.core.analysis import Analysis
from tracer.core.model import CauseSource
from tracer.core.reasons import REASONS
from tracer.core.trace import Trace
from tracer.core.witness import PacketDrop, PacketOrigin, PacketReset, TcpFigures
from tracer.i18n import Words
from tracer.ladder.labels import reason_words

WORDS = Words("kernel.")  # catalogue keys kernel.*

# PacketOrigin.what of a timer -> its words' key (kernel.timer_*).
_TIMER_KEYS = {
    "delayed_ack": "timer_delayed_ack", "retransmit": "timer_retransmit", "loss_probe": "timer_loss_probe",
    "probe": "timer_probe", "keepalive": "timer_keepalive", "synack": "timer_synack",
    "pacing": "timer_pacing", "tsq": "timer_tsq", "time_wait": "timer_time_wait",
}  # fmt: skip
_SOURCE_KEYS = {int(CauseSource.KERNEL): "source_kernel", int(CauseSource.CALLS): "source_calls",
                int(CauseSource.INFERENCE): "source_inference"}
STACK_LINES = 6  # the kernel functions a detail shows, innermost TCP function outward


@dataclass(frozen=True)
class KernelView:
    """The account indexed by packet row (0-based); empty for a trace without one."""

    origins: dict[int, PacketOrigin] = field(default_factory=dict)
    drops: dict[int, PacketDrop] = field(default_factory=dict)
    resets: dict[int, PacketReset] = field(default_factory=dict)
    figures: dict[int, TcpFigures] = field(default_factory=dict)

    @classmethod
    def of(cls, trace: Trace) -> KernelView:
        k = trace.kernel
        if k is None:
            return cls()
        return cls({o.packet_no - 1: o for o in k.origins}, {d.packet_no - 1: d for d in k.drops},
                   {r.packet_no - 1: r for r in k.resets}, {f.packet_no - 1: f for f in k.figures})


def drop_mark(d: PacketDrop) -> str:
    """``✗ NETFILTER_DROP``: what a dropped frame's arrow ends in."""
    return f"✗ {d.reason}"


def drop_note(d: PacketDrop, lang: str) -> str:
    """The ladder's note: ``✗ NETFILTER_DROP: dropped by the receiver's kernel (nft_do_chain)``."""
    return WORDS[lang]["dropped_note"].format(reason=d.reason, where=d.where or "?")


def drop_text(d: PacketDrop, lang: str) -> str:
    """``dropped by the receiver's kernel: NETFILTER_DROP (nft_do_chain)``."""
    return WORDS[lang]["dropped"].format(reason=d.reason, where=d.where or "?")


def origin_text(o: PacketOrigin, lang: str) -> str:
    """What sent the frame: ``system call connect() of python3 (tid 1234)``, ``timer: delayed
    ACK``, ``receive path``, ``process exit of ...``."""
    w = WORDS[lang]
    if o.kind == "call":
        return w["origin_call"].format(what=o.what, process=o.process, tid=o.tid)
    if o.kind == "exit":
        return w["origin_exit"].format(process=o.process, tid=o.tid)
    if o.kind == "timer":
        key = _TIMER_KEYS.get(o.what)
        return w["origin_timer"].format(what=w[key] if key else o.what)
    if o.kind == "receive":
        return w["origin_receive"].format(what=o.what)
    return w["origin_unknown"]


def stack_lines(o: PacketOrigin, n: int = STACK_LINES) -> list[str]:
    """The kernel functions from the innermost TCP/UDP function outward, ``n`` at most."""
    return list(o.stack[:n]) + (["…"] if len(o.stack) > n else [])


def reset_text(r: PacketReset, lang: str) -> str:
    return WORDS[lang]["rst_reason"].format(reason=r.reason, state=r.state)


def figures_text(f: TcpFigures, lang: str) -> str:
    """The receiving socket's cwnd, ssthresh, srtt and windows as the segment arrived."""
    return WORDS[lang]["figures"].format(cwnd=f.snd_cwnd, ssthresh=f.ssthresh, srtt=f"{f.srtt_us / 1000:.3f}",
                                         snd_wnd=f.snd_wnd, rcv_wnd=f.rcv_wnd)


def source_name(code: int) -> str:
    """``kernel`` / ``calls`` / ``inference`` (the JSON's ``cause.source``)."""
    try:
        return CauseSource(code).name.lower()
    except ValueError:
        return "inference"


def source_text(a: Analysis, i: int, lang: str) -> str:
    """Where row ``i``'s cause came from, with the wire rules' reason beside it when it differs."""
    w = WORDS[lang]
    code = int(a.cause_source[i])
    text = w[_SOURCE_KEYS.get(code, "source_inference")]
    inferred = int(a.inferred_reason[i])
    if code != CauseSource.INFERENCE and 0 <= inferred < len(REASONS) and inferred != int(a.cause_reason[i]):
        text += " · " + w["inferred_beside"].format(words=reason_words(inferred, lang))
    return text



def kernel_lines(trace: Trace, a: Analysis, i: int, lang: str, view: KernelView | None = None) -> list[str]:
    """The kernel's account of row ``i`` as labelled lines (the detail's and the TUI pane's):
    the cause's source, what sent it and its stack, a drop, the RST's reason, the figures."""
    w = WORDS[lang]
    k = view if view is not None else KernelView.of(trace)
    out = [f"{w['source']}: {source_text(a, i, lang)}"]
    o = k.origins.get(i)
    if o is not None:
        out.append(f"{w['origin']}: {origin_text(o, lang)}")
        out += [f"{w['stack']}:"] + [f"  {fn}" for fn in stack_lines(o)] if o.stack else []
    d = k.drops.get(i)
    if d is not None:
        out.append(f"{w['drop']}: ✗ {drop_text(d, lang)}")
    r = k.resets.get(i)
    if r is not None:
        out.append(f"{w['rst']}: {reset_text(r, lang)}")
    f = k.figures.get(i)
    if f is not None:
        out.append(f"{w['figures_label']}: {figures_text(f, lang)}")
    return out
