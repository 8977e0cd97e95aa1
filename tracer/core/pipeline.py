"""The analysis pipeline: streams → sequence analysis → TCP states → causes.

Causes are inferred from the wire, then, when the trace has recorded socket
calls, tied to those calls (``attribute_calls``) and their errors to the packets
that caused them (``link_errors``).  Where the kernel witnessed the run
(``trace.kernel``), each witnessed frame's cause comes from its origin instead
(``apply_kernel``); the wire rules' reason stays in ``inferred_reason``.  The states
shown are the kernel's there too (``kernel_states.shown_states``); the causes use the
wire rules' states.

``analyze(trace)`` is the one entry point the adapters use.  Each stage is a pure,
vectorised function over whole columns (see ``docs/architecture.md``).
"""

from __future__ import annotations

import numpy as np

from tracer.core.analysis import Analysis
from tracer.core.attribution import attribute_calls, infer_causes, link_errors
from tracer.core.kernel_causes import apply_kernel
from tracer.core.kernel_states import shown_states
from tracer.core.model import CauseSource
from tracer.core.seq_analysis import analyze_tcp
from tracer.core.streams import assign_streams
from tracer.core.tcp_states import control_marks, track_states
from tracer.core.trace import Trace


def analyze(trace: Trace) -> Analysis:
    """Analyse every packet of ``trace``; the result has one row per packet."""
    t = trace.packets
    s = assign_streams(t)
    a = analyze_tcp(t, s, extras=False)
    m = control_marks(t, s, a)  # found once, used by both stages
    state_a, state_b = track_states(t, s, a, marks=m)
    c = infer_causes(t, s, a, state_a, state_b, marks=m)
    inferred_reason = c.reason.copy()
    links: dict[int, int] = {}
    source = np.full(len(t), int(CauseSource.INFERENCE), dtype=np.int8)
    if trace.calls:
        c = attribute_calls(t, s, a, c, trace.calls)
        source[~c.inferred] = int(CauseSource.CALLS)
        links = link_errors(t, s, trace.calls)
    released_by = np.full(len(t), -1, dtype=np.int32)
    if trace.kernel is not None:
        k = apply_kernel(t, s, c, trace.kernel, trace.calls)
        c, released_by = k.causes, k.released_by
        source[k.kernel] = int(CauseSource.KERNEL)
    shown = shown_states(trace, s, state_a, state_b)
    return Analysis(
        stream=s.stream,
        direction=s.direction,
        rel_seq=a.rel_seq,
        rel_ack=a.rel_ack,
        flags=a.flags,
        state_a=shown.state_a,
        state_b=shown.state_b,
        cause_by=c.by,
        cause_side=c.side,
        cause_call=c.call,
        cause_reason=c.reason,
        cause_inferred=c.inferred,
        cause_call_id=c.call_id,
        cause_source=source,
        inferred_reason=inferred_reason,
        released_by=released_by,
        inferred_state_a=state_a,
        inferred_state_b=state_b,
        tcp_streams=s.tcp_streams,
        udp_streams=s.udp_streams,
        error_links=links,
        state_disagreements=shown.disagree,
    )
