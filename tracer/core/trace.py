"""The ``Trace``: everything tracer knows about one capture or one live run."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.core.model import KernelSocketState, SocketCall, TraceMeta, TraceWarning
from tracer.core.table import PacketTable
from tracer.core.witness import KernelAccount


@dataclass(frozen=True, eq=False)
class Trace:
    """Packets (columnar), recorded socket calls, kernel socket states, warnings, and the
    kernel witness's account of the packets (live runs; ``None`` where there was none)."""

    packets: PacketTable
    calls: tuple[SocketCall, ...] = ()
    kernel_states: tuple[KernelSocketState, ...] = ()
    meta: TraceMeta = field(default_factory=TraceMeta)
    warnings: tuple[TraceWarning, ...] = ()
    kernel: KernelAccount | None = None
