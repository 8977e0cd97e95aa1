"""Every captured TCP frame of every catalogue scenario has a kernel origin (issue 12).

Each scenario runs as a user runs it (``python -m tracer run NAME --no-tui``), in the
two-host lab and with ``--loopback``; the saved capture's kernel account must give every
TCP frame an origin, lose no witness event (overrun), hold the run's state changes, and
find the listen-queue counters and the unanswered SYNs in agreement.
``bench/witness.py`` reports the same figures for the docs (with the overhead).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracer.lab.scenarios import list_scenarios
from tracer.pcap.reader import read_capture

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TCP_SCENARIOS = [sc.name for sc in list_scenarios()]


@pytest.mark.parametrize("lab", ["veth", "loopback"])
@pytest.mark.parametrize("name", TCP_SCENARIOS)
def test_every_tcp_frame_has_a_kernel_origin(name: str, lab: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.pcapng"
    argv = [sys.executable, "-m", "tracer", "run", name, "--no-tui", "--out", str(out)]
    if lab == "loopback":
        argv.append("--loopback")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert out.exists(), proc.stderr
    trace = read_capture(out)
    k = trace.kernel
    assert k is not None, [w.message for w in trace.warnings]
    assert k.overrun == 0
    # The listen-queue counters and the unanswered SYNs agree in every scenario (a SYN no
    # listener answered is one the kernel counted as an overflow).
    assert not [w.message for w in trace.warnings if w.code == "kernel_listen_overflow_mismatch"]
    t = trace.packets
    tcp = [i + 1 for i in range(len(t)) if t.proto_name(i) == "tcp"]
    origins = k.origin_of()
    missing = [n for n in tcp if n not in origins]
    assert not missing, f"{name} ({lab}): TCP frames without a kernel origin: {missing}"
    if tcp:  # every TCP connection's sockets changed state in the kernel's record
        assert k.states
