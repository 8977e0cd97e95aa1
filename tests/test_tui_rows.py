"""The TUI's row model and filter, checked against tshark and the text ladder.

The row order of calls and packets must be the text ladder's (two separate
implementations of one rule); the filter words must select what tshark's display
filters select on real captures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import CAPTURES, tshark_fields
from tracer.core.model import PROTO_TCP, TcpState
from tracer.ladder.filter import Filter
from tracer.ladder.model import KIND_CALL, KIND_PACKET, KIND_WARNING, LadderModel
from tracer.ladder.render import render_ladder
from tracer.loading import load
from tracer.pcap.reader import read_capture, read_capture_head
from tracer.tui.diagram import DIAGRAM, spans

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcapng"


def _frames(path: Path, display_filter: str) -> set[int]:
    rows = tshark_fields(path, "frame.number", two_pass=True, extra=("-Y", display_filter))
    return {int(r[0]) for r in rows}


def _shown_packets(m: LadderModel) -> set[int]:
    return {int(m.ref[r]) + 1 for r in range(len(m)) if int(m.kind[r]) == KIND_PACKET}


def test_rows_follow_the_text_ladder_order() -> None:
    trace, analysis = load(str(HELLO))
    assert trace.calls, "the shipped capture must carry recorded calls"
    m = LadderModel(trace, analysis)
    # Every packet once, plus the calls that caused no packet, in the ladder's order.
    ladder = list(render_ladder(trace, analysis, width=200))
    body = [ln for ln in ladder if re.match(r"^\s*(\d+)?\s+-?\d+\.\d{6} ", ln)]
    assert len(body) == len(m)
    for r, line in enumerate(body):
        k = int(m.kind[r])
        if k == KIND_PACKET:
            assert line.split()[0] == str(int(m.ref[r]) + 1)
            assert m.cells(r).label in line
        else:
            assert k == KIND_CALL
            c = m.calls[int(m.ref[r])]
            assert f"{c.call}(" in line
    assert sorted(_shown_packets(m)) == list(range(1, len(trace.packets) + 1))


def test_call_rows_are_calls_without_packets() -> None:
    trace, analysis = load(str(HELLO))
    m = LadderModel(trace, analysis)
    causing = set(analysis.cause_call_id[analysis.cause_call_id >= 0].tolist())
    # ... and connect()'s return: the client's connect() caused the SYN and returned after the handshake.
    (connect,) = [c for c in trace.calls if c.call == "connect"]
    assert connect.id in causing and connect.error is None
    assert {c.id for c in m.calls} == {c.id for c in trace.calls} - causing | {connect.id}
    assert m.returns == {connect.id}
    # accept() sends nothing: the SYN-ACK is the kernel's, before accept() returns.
    accept = next(c for c in m.calls if c.call == "accept")
    synack = next(i for i in range(len(trace.packets)) if int(trace.packets.tcp_flags[i]) & 0x12 == 0x12)
    assert m.row_of_packet(synack) is not None
    row_accept = next(r for r in range(len(m))
                      if int(m.kind[r]) == KIND_CALL and m.calls[int(m.ref[r])] is accept)
    assert m.row_of_packet(synack) < row_accept  # type: ignore[operator]
    cells = m.cells(m.row_of_packet(synack))  # type: ignore[arg-type]
    assert cells.kernel in ("L", "R") and not cells.left_app and not cells.right_app


@pytest.mark.parametrize(
    ("words", "display_filter"),
    [
        ("syn", "tcp.flags.syn == 1"),
        ("fin", "tcp.flags.fin == 1"),
        ("syn !ack", "tcp.flags.syn == 1 && tcp.flags.ack == 0"),
        ("retransmission", "tcp.analysis.retransmission"),
        ("dup_ack", "tcp.analysis.duplicate_ack"),
        ("stream=1", "tcp.stream == 1 || udp.stream == 1"),
        ("port=80", "tcp.port == 80 || udp.port == 80"),
        ("udp", "udp && !icmp"),
        ("no=5-9", "frame.number >= 5 && frame.number <= 9"),
    ],
)
def test_filter_selects_what_tshark_selects(corpus: Path, words: str, display_filter: str) -> None:
    for name in ("zeek__http__206_example_b.pcap", "zeek__tcp__ssh-dups.pcap", "dpkt__http.pcap"):
        path = corpus / name
        trace, analysis = load(str(path))
        m = LadderModel(trace, analysis, filter=Filter(words))
        assert _shown_packets(m) == _frames(path, display_filter), (name, words)


def test_filter_host_and_cause_words(corpus: Path) -> None:
    path = corpus / "dpkt__http.pcap"
    trace, analysis = load(str(path))
    addr = trace.packets.addresses[int(trace.packets.src[0])]
    m = LadderModel(trace, analysis, filter=Filter(f"host={addr}"))
    field = "ipv6.addr" if ":" in addr else "ip.addr"
    assert _shown_packets(m) == _frames(path, f"{field} == {addr}")
    # Cause words in either language pick the same rows.
    en = _shown_packets(LadderModel(trace, analysis, filter=Filter("listen queue")))
    zh = _shown_packets(LadderModel(trace, analysis, filter=Filter("监听队列")))
    assert en and en == zh
    assert en <= _frames(path, "tcp.flags.syn == 1 && tcp.flags.ack == 1")


def test_filter_errors_are_reported_not_silent() -> None:
    assert Filter("port=http").error is not None
    assert Filter("colour=red").error is not None
    assert "未知字段" in (Filter("colour=red").error_text("zh") or "")
    assert "需要" in (Filter("port=x").error_text("zh") or "")
    assert Filter("syn port=80 stream=2-4").error is None
    trace, analysis = load(str(HELLO))
    # A malformed filter shows everything (with the error), never an empty ladder.
    assert len(LadderModel(trace, analysis, filter=Filter("port=x"))) == len(LadderModel(trace, analysis))


def test_call_rows_filtered_by_words_and_stream() -> None:
    trace, analysis = load(str(HELLO))
    m = LadderModel(trace, analysis, filter=Filter("recv"))
    assert m.calls and all(c.call == "recv" for c in m.calls)
    assert not LadderModel(trace, analysis, filter=Filter("syn")).calls
    both = LadderModel(trace, analysis, stream=(PROTO_TCP, 0))
    assert any(c.call == "accept" for c in both.calls)


def test_stream_view_matches_tshark(corpus: Path) -> None:
    path = corpus / "pcapplusplus__pcapng-example.pcapng"
    trace, analysis = load(str(path))
    assert len(analysis.tcp_streams) > 3
    for s in (0, 3, len(analysis.tcp_streams) - 1):
        m = LadderModel(trace, analysis, stream=(PROTO_TCP, s))
        assert _shown_packets(m) == _frames(path, f"tcp.stream == {s}")
        assert not m.multi()
    assert LadderModel(trace, analysis).multi()


def test_warnings_are_rows_and_not_lost(tmp_path: Path) -> None:
    data = HELLO.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) // 2])
    trace, analysis = load(str(cut))
    assert trace.warnings
    m = LadderModel(trace, analysis)
    assert int((m.kind == KIND_WARNING).sum()) == len(trace.warnings)
    r = int(np.flatnonzero(m.kind == KIND_WARNING)[0])
    assert trace.warnings[0].message.split()[0] in m.cells(r).label


def test_states_after_each_row_are_the_analysis_states() -> None:
    trace, analysis = load(str(HELLO))
    m = LadderModel(trace, analysis)
    for r in range(len(m)):
        if int(m.kind[r]) != KIND_PACKET:
            continue
        i = int(m.ref[r])
        got = m.states_at(r)
        assert got is not None
        assert got[1:] == (int(analysis.state_a[i]), int(analysis.state_b[i]))


def test_head_of_a_big_file_is_its_first_packets(corpus: Path) -> None:
    path = corpus / "zeek__http__206_example_b.pcap"
    head = read_capture_head(path, 200_000)
    full = read_capture(path)
    assert head is not None and not head.warnings
    n = len(head.packets)
    assert 0 < n < len(full.packets)
    assert np.array_equal(head.packets.ts_ns, full.packets.ts_ns[:n])
    assert read_capture_head(HELLO, 1 << 20) is None  # small: read whole


def test_diagram_marks_every_state_once_or_more() -> None:
    for st in TcpState:
        if st == TcpState.UNKNOWN:
            assert spans(st) == []
            continue
        found = spans(st)
        assert found, st
        for y, x, n in found:
            assert DIAGRAM[y][x : x + n] == st.name.replace("_", "-")
    assert len(spans(TcpState.FIN_WAIT_1)) == 1


@pytest.mark.lab
def test_dropped_packets_cells_and_explanation(scenario_run: Callable[[str], Path]) -> None:
    """data-lost: the rows of the frames the receiving kernel dropped carry the drop (the TUI
    ladder draws their arrow short with ✗); the explanation pane's lines give the kernel's account."""
    from tracer.ladder.kernel import drop_note, kernel_lines
    from tracer.ladder.text import arrow
    from tracer.tui.ladder_view import compose_row, layout

    trace, analysis = load(str(scenario_run("data-lost")))
    assert trace.kernel is not None
    drops = {d.packet_no - 1: d for d in trace.kernel.drops}
    assert "NETFILTER_DROP" in {d.reason for d in drops.values()}
    m = LadderModel(trace, analysis)
    lay = layout(m, 140)
    for r in m.packet_rows().tolist():
        i = int(m.ref[r])
        c = m.cells(r)
        drawn = "".join(seg.text for seg in compose_row(c, lay))
        d = drops.get(i)
        if d is None:
            assert c.dropped == "" and "✗" not in drawn
            continue
        assert c.dropped == d.reason and c.notes[0] == (drop_note(d, "en"), "drop")
        assert arrow(c.label, c.direction > 0, lay.wire, True) in drawn
        lines = kernel_lines(trace, analysis, i, "zh")
        assert f"丢弃: ✗ 被接收方内核丢弃：{d.reason}（{d.where}）" in lines
