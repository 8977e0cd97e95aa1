"""Smoke run of the benchmark: ``bench/run.py --quick`` end to end on the real kernel.

Builds a fresh ~50k-packet capture in network namespaces with tcpdump, runs all
four measurements and checks that every figure is produced and that the capture
is what the bench says it is (tshark is the judge).  Benchmark targets are NOT
asserted: timing belongs to the benchmark's report, not to a test verdict.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.tshark]

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "bench" / "run.py"
TOOLS = ("tracer_analysis", "tshark", "scapy", "tracer_export")


def _tshark_rows(path: Path) -> list[list[str]]:
    out = subprocess.run(
        [
            "tshark",
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-e",
            "frame.protocols",
            "-e",
            "tcp.flags",
            "-e",
            "tcp.analysis.retransmission",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(RUN), "--quick", "--json", "--rebuild", "--cache-dir", str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=180)  # a hang guard, not a timing assertion
    finally:
        if proc.poll() is None:
            proc.terminate()  # the bench removes its namespaces on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err[-3000:] + out[-3000:]
    doc = json.loads(out)

    # The namespaces made by this run are gone.
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"trcbench-{proc.pid}-" not in netns

    cap = doc["capture"]
    path = Path(cap["path"])
    assert path.parent == tmp_path and not cap["reused"]
    rows = _tshark_rows(path)
    assert cap["packets"] == len(rows)  # the bench's own record count agrees with tshark
    assert cap["packets"] >= 0.95 * cap["target"] and cap["target"] == 50_000
    assert all(":tcp" in r[0] for r in rows)
    flags = [int(r[1], 16) for r in rows]
    assert sum(1 for f in flags if f & 0x12 == 0x02) > 100  # SYNs: many short connections
    assert any(f & 0x01 for f in flags) and any(f & 0x04 for f in flags)  # FIN and RST closes
    # The nft loss rule ran and the kernel recovered: real retransmissions in the file.
    assert cap["nft_dropped_data_segments"] > 0
    assert sum(1 for r in rows if len(r) > 2 and r[2]) > 0
    assert cap["tcpdump_dropped"] >= 0
    assert cap["spawn_baseline_rss_mib"] > 0

    for key in TOOLS:
        tool = doc["tools"][key]
        assert tool["ok"], (key, tool["note"])
        assert tool["wall_s"] > 0 and tool["packets_per_s"] > 0 and tool["peak_rss_mib"] > 0, key
        assert tool["cpu_s"] > 0, key
    assert doc["tools"]["scapy"]["extrapolated"] is True
    assert doc["tools"]["scapy"]["detail"]["tcp_packets"] == doc["tools"]["scapy"]["detail"]["packets"]
    assert doc["tools"]["tracer_analysis"]["detail"]["packets"] == len(rows)
    assert all(v is not None for v in doc["ratios"].values()), doc["ratios"]
    assert [t["name"] for t in doc["targets"]] == [
        "analysis_vs_tshark_pps",
        "analysis_vs_tshark_memory",
        "export_vs_tshark_speed",
    ]
    assert all(t["pass"] in (True, False) for t in doc["targets"])
