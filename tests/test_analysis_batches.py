"""The analysis in small batches and slices gives exactly what one batch gives.

The corpus files are small enough to fit one batch of ``seq_analysis`` and one slice
of ``tcp_states``; shrinking both makes every batch and slice boundary fall inside
real captures (streams cut between batches, long streams alone in a batch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import corpus_files
from tracer.core import seq_analysis, tcp_states
from tracer.core.pipeline import analyze
from tracer.pcap.reader import read_capture

FILES = [p for p in corpus_files() if "tcp" in p.name or "http" in p.name or "whois" in p.name]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_small_batches_change_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = read_capture(path)
    whole = analyze(trace)
    monkeypatch.setattr(seq_analysis, "_BATCH_ROWS", 8)
    monkeypatch.setattr(tcp_states, "_SLICE", 5)
    small = analyze(trace)
    for name in ("stream", "direction", "rel_seq", "rel_ack", "flags", "state_a", "state_b",
                 "cause_by", "cause_side", "cause_call", "cause_reason", "cause_inferred"):
        assert np.array_equal(getattr(small, name), getattr(whole, name)), name
    assert small.tcp_streams == whole.tcp_streams and small.udp_streams == whole.udp_streams
