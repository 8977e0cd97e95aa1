"""The ``Trace``: everything tracer knows about one capture or one live run."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracer.core.model import KernelSocketState, SocketCall, TraceMeta, TraceWarning
from tracer.core.table import PacketTable


@dataclass(frozen=True, eq=False)
class Trace:
    """Packets (columnar), recorded socket calls, kernel socket states, warnings."""

    packets: PacketTable
    calls: tuple[SocketCall, ...] = ()
    kernel_states: tuple[KernelSocketState, ...] = ()
    meta: TraceMeta = field(default_factory=TraceMeta)
    warnings: tuple[TraceWarning, ...] = ()
