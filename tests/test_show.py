"""``tracer show FILE NO``: one packet in full, checked against tshark."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CORPUS, tshark_fields
from helpers.cli import run_tracer

pytestmark = pytest.mark.tshark

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(
    ("name", "no"),
    [("tcpdump__whois.pcap", 2), ("pcapplusplus__one_tcp_rst.pcap", 2), ("dpkt__nb6-http.pcap", 20)],
)
def test_show_matches_tshark(name: str, no: int) -> None:
    path = CORPUS / name
    proc = run_tracer("show", path, no)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    row = tshark_fields(path, "tcp.seq", "tcp.ack", "ip.ttl", "frame.len")[no - 1]
    seq, ack, ttl, flen = row
    first = out.splitlines()[0]
    assert first.startswith(f"Packet {no}: ")
    if seq:
        assert f" seq={seq} ack={ack} " in first
    if ttl:
        assert f"    ttl = {ttl.split(',')[0]}\n" in out
    assert f"Bytes ({flen}/" in out or f"/{flen}):" in out
    # The hex dump covers every captured byte: 16 per line.
    hexlines = [line for line in out.splitlines() if re.match(r"  [0-9a-f]{4}  ", line)]
    assert hexlines and len(hexlines) == -(-int(out.split("Bytes (")[1].split("/")[0]) // 16)
    assert "Cause: " in out and "Why: " in out


def test_show_in_chinese() -> None:
    proc = run_tracer("show", CORPUS / "tcpdump__whois.pcap", 1, "--lang", "zh")
    assert proc.returncode == 0
    head = proc.stdout.split("\n\n")[0]
    assert all(CJK.search(line) for line in head.splitlines()[1:]), head


@pytest.mark.parametrize("no", ["0", "12", "-1"])
def test_show_out_of_range_is_a_usage_error(no: str) -> None:
    proc = run_tracer("show", CORPUS / "tcpdump__whois.pcap", no)
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "1 to 11" in proc.stderr or "usage" in proc.stderr.lower() or "expected" in proc.stderr


@pytest.mark.lab
def test_show_gives_the_kernels_account(scenario_run: Callable[[str], Path]) -> None:
    """A saved data-lost run: each packet's detail says what the kernel's account says of it
    (what sent it, its innermost functions, the drop, the figures, where the cause came from)."""
    from tracer.core.model import CauseSource
    from tracer.core.pipeline import analyze
    from tracer.pcap.reader import read_capture

    path = scenario_run("data-lost")
    trace = read_capture(path)
    a = analyze(trace)
    assert trace.kernel is not None
    origins = trace.kernel.origin_of()
    drops = {d.packet_no: d for d in trace.kernel.drops}
    figures = {f.packet_no: f for f in trace.kernel.figures}
    assert drops and origins
    # One packet of each kind the account distinguishes (a `tracer show` process each: every
    # packet would take most of a minute and say nothing more).
    kinds: dict[tuple[object, ...], int] = {}
    for no in range(1, len(trace.packets) + 1):
        o = origins.get(no)
        key = (o.kind if o else None, o.what if o else None, no in drops, no in figures,
               int(a.cause_source[no - 1]))
        kinds.setdefault(key, no)
    assert len(kinds) >= 6, kinds
    for no in sorted(kinds.values()):
        out = run_tracer("show", path, no).stdout
        source = CauseSource(int(a.cause_source[no - 1]))
        words = {CauseSource.KERNEL: "the kernel's own account",
                 CauseSource.CALLS: "the recorded socket calls",
                 CauseSource.INFERENCE: "inference from TCP rules"}[source]
        assert f"Cause from: {words}" in out, (no, out)
        o = origins.get(no)
        if o is None:
            assert "Sent by (kernel)" not in out
        else:
            line = next(x for x in out.splitlines() if x.startswith("Sent by (kernel): "))
            if o.kind == "call":
                assert line.endswith(f"system call {o.what}() of {o.process} (tid {o.tid})"), line
            assert f"Kernel stack:\n  {o.stack[0]}\n" in out
        d = drops.get(no)
        want = f"Drop: ✗ dropped by the receiver's kernel: {d.reason} ({d.where})" if d else "Drop: "
        assert (want in out) is (d is not None), (no, out)
        f = figures.get(no)
        assert (f"cwnd {f.snd_cwnd} · ssthresh {f.ssthresh}" in out) if f else ("cwnd " not in out)
    zh = run_tracer("show", path, min(drops), "--lang", "zh").stdout
    assert f"被接收方内核丢弃：{drops[min(drops)].reason}" in zh


def test_show_of_a_foreign_capture_says_the_cause_is_inferred() -> None:
    out = run_tracer("show", CORPUS / "tcpdump__whois.pcap", 2).stdout
    assert "Cause from: inference from TCP rules" in out
    assert "Sent by (kernel)" not in out and "Drop:" not in out
