"""The scenario catalogue against the real kernel: every built-in scenario runs in
the lab and its capture matches its own EXPECT (``tracer run NAME --check``), and its
metadata is complete in both languages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers.kernel import assert_kernel_coverage
from tracer.core.expect import parse
from tracer.lab.scenarios import list_scenarios

SCENARIOS = list_scenarios()


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_metadata_is_complete(sc) -> None:  # type: ignore[no-untyped-def]
    assert sc.topic in ("tcp", "udp"), sc.path
    assert sc.proto == sc.topic or sc.name in ("stream-vs-datagram",), sc
    for lang in ("en", "zh"):
        assert sc.title[lang] and sc.description[lang]
        assert sc.notice.get(lang), f"{sc.name}: NOTICE[{lang!r}] is empty"
    assert len(sc.notice["en"]) == len(sc.notice["zh"])
    assert sc.title["zh"] != sc.title["en"]
    assert parse(sc.expect), f"{sc.name}: EXPECT is empty"


@pytest.mark.lab
@pytest.mark.tshark
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_behaves_as_its_expect_says(sc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / f"{sc.name}.pcapng"
    proc = subprocess.run([sys.executable, "-m", "tracer", "run", sc.name, "--check", "--out", str(out)],
                          capture_output=True, text=True, timeout=sc.timeout + 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "behaves as expected" in proc.stdout
    assert out.is_file()
    # And the kernel's account of every TCP frame (issue 12); netfilter drops only where IMPAIR set some.
    assert_kernel_coverage(out, sc.name, netfilter=any(spec.startswith("drop") for spec in sc.impair))


def _check(path: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", "run", str(path), "--check", "--out", str(out)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.lab
@pytest.mark.tshark
def test_readme_example_scenario_runs_and_checks(tmp_path: Path) -> None:
    """The complete example in README.md is a working user scenario of at most 15 lines."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.splitlines()) <= 15
    path = tmp_path / "shout.py"
    path.write_text(code)
    proc = _check(path, tmp_path / "shout.pcapng")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # And a false claim is caught: accept() does not send the SYN-ACK.
    path.write_text(code.replace("kernel:listen_queue_synack", "accept()"))
    proc = _check(path, tmp_path / "wrong.pcapng")
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "did NOT behave as expected" in proc.stdout and "kernel:listen_queue_synack" in proc.stdout


CATALOGUE = [
    "hello", "echo", "udp-echo", "time-server", "udp-oneway", "handshake", "close-client-first",
    "close-server-first", "half-close", "rst-unread", "rst-linger", "refused", "udp-unreachable",
    "simultaneous-close", "backlog-full", "synack-lost", "data-lost", "many-clients", "addr-in-use",
    "stream-vs-datagram", "nagle", "keepalive", "zero-window", "ipv6",
]


def test_tracer_list_shows_the_whole_catalogue() -> None:
    """The issue's 24 lessons, under exactly these names, each once, by topic."""
    assert len(CATALOGUE) == 24
    proc = subprocess.run([sys.executable, "-m", "tracer", "list"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    assert sorted(names) == sorted(CATALOGUE)
    assert "[tcp]" in proc.stdout and "[udp]" in proc.stdout
    zh = subprocess.run([sys.executable, "-m", "tracer", "list", "--lang", "zh"], capture_output=True,
                        text=True, timeout=30).stdout
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh)
