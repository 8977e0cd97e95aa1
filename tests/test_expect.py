"""The expected-sequence notation (tracer.core.expect) on real captures.

The strongest check: what ``describe`` writes of a capture must match that capture
exactly, for every readable corpus file; then single changes to it must fail with
a report that names the line and the packet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CAPTURES, corpus_files
from tracer.core.expect import ExpectError, describe, match, parse
from tracer.lab.impair import Drop, Loss, Reject, parse_spec
from tracer.loading import load

HELLO = CAPTURES / "hello.pcapng"


def _server_port(path: Path) -> int:
    _trace, analysis = load(str(path))
    for s in analysis.tcp_streams + analysis.udp_streams:
        server = s.b if (s.client or s.a) == s.a else s.a
        return int(server.rpartition(":")[2])
    return 0


@pytest.mark.parametrize("path", [*corpus_files(), HELLO], ids=lambda p: p.name)
def test_a_capture_matches_its_own_description(path: Path) -> None:
    trace, analysis = load(str(path))
    port = _server_port(path)
    text = "\n".join(describe(trace, analysis, port))
    result = match(trace, analysis, text, port)
    assert result.ok, "\n".join(result.report)


def test_hello_expectation_and_its_failures() -> None:
    trace, analysis = load(str(HELLO))
    good = """
        c > s  S    connect()
        s > c  S.   kernel:listen_queue_synack
        c > s  .    kernel
        s      accept()
        ...
        c > s  F.   close()
        s > c  F.   close()   c=TIME-WAIT
        c > s  .    kernel:fin_ack   s=CLOSED
    """
    assert match(trace, analysis, good, 7777).ok
    # The SYN-ACK is the kernel's, not accept()'s: the classic wrong diagram fails.
    wrong = good.replace("kernel:listen_queue_synack", "accept()")
    r = match(trace, analysis, wrong, 7777)
    assert not r.ok
    assert any("line 3" in x and "accept()" in x for x in r.report)
    assert any("packet 2" in x and "kernel:listen_queue_synack" in x for x in r.report)
    # accept() returns after the handshake, so it cannot be placed before the SYN-ACK.
    early = good.replace("        s      accept()\n", "").replace(
        "        s > c  S.", "        s      accept()\n        s > c  S.")
    assert not match(trace, analysis, early, 7777).ok
    # Missing packets are reported, as are packets left over.
    assert not match(trace, analysis, "c > s S connect()", 7777).ok
    assert not match(trace, analysis, good + "c > s . kernel\n", 7777).ok


def test_repeats_wildcards_and_timing() -> None:
    trace, analysis = load(str(HELLO))
    assert match(trace, analysis, "* > * * x10", 7777).ok
    assert match(trace, analysis, "* > * * x9-12", 7777).ok
    assert not match(trace, analysis, "* > * * x11+", 7777).ok
    assert match(trace, analysis, "c > s S\n...\nc > s . kernel:fin_ack", 7777).ok
    assert not match(trace, analysis, "c > s S\n* > * * x2+ dt>=5", 7777).ok


@pytest.mark.parametrize("bad", ["x > s S", "c > s Q", "c > s S kernel:nonsense", "c > s S len=x",
                                 "c > s S [nothing]", "c > s S c=ALMOST", "c frobnicate", "c > s S bogus()"])
def test_bad_lines_name_the_line(bad: str) -> None:
    with pytest.raises(ExpectError, match="line 2"):
        parse("c > s S\n" + bad)


def test_impairment_specs() -> None:
    s = parse_spec("drop syn-ack to client", 80)
    assert s.host == "client" and isinstance(s.impairment, Drop)
    assert s.impairment.match.sport == 80 and s.impairment.nth == 1 and s.impairment.count == 1
    s = parse_spec("drop data to server nth=3 count=all", 80)
    assert isinstance(s.impairment, Drop) and s.impairment.match.dport == 80 and s.impairment.count is None
    assert isinstance(parse_spec("loss 5% data to server", 80).impairment, Loss)
    assert isinstance(parse_spec("reject syn to server", 80).impairment, Reject)
    assert parse_spec("one-segment-per-frame client", 80).impairment is None
    for bad in ("drop", "drop syn to nobody", "drop warp to server", "loss five data to server",
                "drop syn to server nth=x"):
        with pytest.raises(Exception, match="impairment"):
            parse_spec(bad, 80)
