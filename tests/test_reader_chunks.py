"""The reader's chunked path: any chunk size gives the same trace, and a capture
file that shrinks after reading gives a clear error on export, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES, CORPUS, REPO, corpus_files
from tracer.core.table import column_names
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.pcap import classic
from tracer.pcap.reader import read_capture
from tracer.pcap.writer import write_pcapng

PCAPS = [p for p in corpus_files(malformed=None) if p.suffix == ".pcap"]


def _same(a: Trace, b: Trace) -> None:
    ta, tb = a.packets, b.packets
    assert len(ta) == len(tb)
    for name in column_names():
        if name == "frame_off":
            continue
        assert np.array_equal(getattr(ta, name), getattr(tb, name)), name
    assert ta.addresses == tb.addresses and ta.proto_names == tb.proto_names
    assert ta.icmp_quotes == tb.icmp_quotes and ta.sack_blocks == tb.sack_blocks
    assert ta.decode_notes == tb.decode_notes
    assert [ta.raw(i) for i in range(len(ta))] == [tb.raw(i) for i in range(len(tb))]
    assert a.warnings == b.warnings


@pytest.mark.parametrize("chunk", [64, 333, 4096])
@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_any_chunk_size_reads_the_same(path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        whole = read_capture(path)
    except CaptureError as e:
        monkeypatch.setattr(classic, "CHUNK_BYTES", chunk)
        with pytest.raises(CaptureError) as again:
            read_capture(path)
        assert str(again.value) == str(e)
        return
    monkeypatch.setattr(classic, "CHUNK_BYTES", chunk)
    _same(read_capture(path), whole)


def test_truncated_file_in_small_chunks_keeps_every_whole_packet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (CORPUS / "zeek__tcp__reassembly.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    whole = read_capture(cut)
    monkeypatch.setattr(classic, "CHUNK_BYTES", 100)
    small = read_capture(cut)
    _same(small, whole)
    assert [w.code for w in small.warnings] == ["truncated_file"]


def test_export_of_a_capture_cut_short_after_reading_is_a_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "shrinks.pcap"
    src.write_bytes((CORPUS / "zeek__tcp__reassembly.pcap").read_bytes())
    trace = read_capture(src)
    with src.open("r+b") as f:  # e.g. a rotated or overwritten capture
        f.truncate(200)
    with pytest.raises(CaptureError, match="changed while"):
        write_pcapng(tmp_path / "out.pcapng", trace)


def test_export_in_a_child_process_survives_its_input_shrinking(tmp_path: Path) -> None:
    """The same in a fresh process: a clean error and exit code, no SIGBUS."""
    src = tmp_path / "shrinks.pcap"
    src.write_bytes((CAPTURES / "hello.pcap").read_bytes())
    code = (
        "import sys\n"
        "from tracer.pcap.reader import read_capture\n"
        "from tracer.pcap.writer import write_pcapng\n"
        "from tracer.errors import CaptureError\n"
        f"t = read_capture({str(src)!r})\n"
        f"open({str(src)!r}, 'r+b').truncate(100)\n"
        "try:\n"
        f"    write_pcapng({str(tmp_path / 'o.pcapng')!r}, t)\n"
        "except CaptureError as e:\n"
        "    print(e); sys.exit(2)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert proc.returncode == 2, proc
    assert "changed while" in proc.stdout
