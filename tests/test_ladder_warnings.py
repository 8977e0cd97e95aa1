"""Warnings stand on the ladder's timeline, after the packet they name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import CORPUS
from helpers.cli import BOOM, run_tracer
from tracer.core.pipeline import analyze
from tracer.ladder.render import render_ladder
from tracer.pcap.reader import read_capture

ROW = re.compile(r"^\s*(\d+)\s+-?\d+\.\d{6} ")


def _rows(lines: list[str]) -> list[tuple[int, str]]:
    return [(int(m.group(1)), line) for line in lines if (m := ROW.match(line))]


def test_out_of_range_times_are_flagged_at_their_first_packet() -> None:
    trace = read_capture(CORPUS / "pcapplusplus__pcapng-example.pcapng")
    (w,) = [w for w in trace.warnings if w.code == "timestamp_out_of_range"]
    lines = list(render_ladder(trace, analyze(trace), width=120))
    at = next(k for k, line in enumerate(lines) if "!! warning:" in line)
    before = [no for no, _ in _rows(lines[:at])]
    assert before[-1] == w.packet_no and w.message.split(";")[0][:40] in " ".join(lines[at:at + 3])


def test_truncated_file_warning_follows_the_last_packet(tmp_path: Path) -> None:
    trace = read_capture(CORPUS / "dpkt__truncated_dns_2.pcap")
    lines = list(render_ladder(trace, analyze(trace), lang="zh", width=100))
    assert _rows(lines)[-1][0] == len(trace.packets)
    assert "!! 警告：" in "\n".join(lines[-3:])


@pytest.mark.lab
def test_scenario_error_is_placed_where_it_happened(tmp_path: Path) -> None:
    """A server that raises after reading: the error stands after the data, before any FIN."""
    sc = tmp_path / "boom.py"
    sc.write_text(BOOM)
    proc = run_tracer("run", sc, "--no-tui", "--out", tmp_path / "boom.pcapng")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if "!! warning:" in line and "boom in the server" in line)
    flags_before = [line for _, line in _rows(lines[:at])]
    assert any("len=1 " in line for line in flags_before)  # after the byte the server read ...
    assert not any("FIN" in line for line in flags_before)  # ... before its exit closed the socket


def _last_call(lines: list[str]) -> str:
    """The last call row (no packet number: its first word is the time) among ``lines``."""
    return next(line for line in reversed(lines) if line.split() and "." in line.split()[0])


@pytest.mark.lab
def test_busy_port_is_reported_on_the_timeline_and_the_capture_saved(tmp_path: Path) -> None:
    """The server's second bind() to a port in use fails with EADDRINUSE after a first exchange."""
    sc = tmp_path / "busy.py"
    sc.write_text(
        'TITLE = {"en": "busy", "zh": "端口占用"}\nDESCRIPTION = TITLE\nPROTO = "tcp"\nPORT = 7200\n'
        "import socket\n"
        "def server(host, port):\n"
        "    s = socket.socket(); s.bind((host, port)); s.listen()\n"
        "    c, _ = s.accept(); c.recv(10); c.close()\n"
        "    again = socket.socket(); again.bind((host, port))\n"
        "def client(host, port):\n"
        "    s = socket.create_connection((host, port)); s.sendall(b'hi'); s.recv(10); s.close()\n"
    )
    out = tmp_path / "busy.pcapng"
    proc = run_tracer("run", sc, "--no-tui", "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert out.is_file() and "Traceback" not in proc.stderr
    assert "Address already in use" in proc.stderr.splitlines()[-1]
    lines = proc.stdout.splitlines()
    at = next(k for k, line in enumerate(lines) if "!! warning:" in line)
    # The failing bind() row and the warning come after the exchange's FIN.
    assert any("FIN" in line for _, line in _rows(lines[:at]))
    # ... right after the bind() that failed (the error is placed at the time it raised; a
    # packet of the closing exchange may arrive between the two, so only calls count).
    assert "bind(" in _last_call(lines[:at]) and "EADDRINUSE" in _last_call(lines[:at])
    # Replaying the saved file tells the same story at the same place.
    again = run_tracer("replay", out, "--no-tui").stdout.splitlines()
    k = next(k for k, line in enumerate(again) if "!! warning:" in line)
    assert "EADDRINUSE" in _last_call(again[:k])
    # The saved capture holds the recorded failure too.
    trace = read_capture(out)
    assert [c.errno for c in trace.calls if c.call == "bind"] == [None, "EADDRINUSE"]
