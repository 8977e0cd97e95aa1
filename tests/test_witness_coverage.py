"""Every captured TCP frame of every catalogue scenario has a kernel origin (issue 12).

Each scenario runs as a user runs it (``python -m tracer run NAME --no-tui --loopback``;
the two-host runs are test_catalogue's own ``--check`` runs); the saved capture's kernel
account must give every TCP frame an origin, lose no witness event (overrun), hold the
run's state changes, and find the listen-queue counters and the unanswered SYNs in
agreement (``helpers.kernel.assert_kernel_coverage``).
``bench/witness.py`` reports the same figures for the docs (with the overhead).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.kernel import assert_kernel_coverage
from tracer.lab.scenarios import list_scenarios

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TCP_SCENARIOS = [sc.name for sc in list_scenarios()]


@pytest.mark.parametrize("name", TCP_SCENARIOS)
def test_every_tcp_frame_has_a_kernel_origin_on_loopback(name: str, tmp_path: Path) -> None:
    """On ``lo`` (the two-host runs are checked by test_catalogue, on the runs it makes)."""
    out = tmp_path / f"{name}.pcapng"
    argv = [sys.executable, "-m", "tracer", "run", name, "--no-tui", "--loopback", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert out.exists(), proc.stderr
    assert_kernel_coverage(out, f"{name} (loopback)")
