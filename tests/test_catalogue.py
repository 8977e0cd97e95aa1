"""The scenario catalogue against the real kernel: every built-in scenario runs in
the lab and its capture matches its own EXPECT (``tracer run NAME --check``), and its
metadata is complete in both languages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tracer.core.expect import parse
from tracer.lab.run import list_scenarios

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


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_behaves_as_its_expect_says(sc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / f"{sc.name}.pcapng"
    proc = subprocess.run([sys.executable, "-m", "tracer", "run", sc.name, "--check", "--out", str(out)],
                          capture_output=True, text=True, timeout=sc.timeout + 60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "behaves as expected" in proc.stdout
    assert out.is_file()
