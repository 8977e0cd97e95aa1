"""The text ladder: one row per packet, two lanes per conversation, EN and zh aligned.

Expected values come from tshark and from how captures/hello.pcap was recorded
(captures/make_hello.sh), never from tracer's own output.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CAPTURES, CORPUS, corpus_files, tshark_fields
from tracer.core.pipeline import analyze
from tracer.ladder.render import render_ladder
from tracer.ladder.text import text_width
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcap"
ROW = re.compile(r"^\s*(\d+)\s+-?\d+\.\d{6}\s")
CJK = re.compile(r"[\u4e00-\u9fff]")


def ladder(path: Path, **kw: object) -> list[str]:
    trace = read_capture(path)
    return list(render_ladder(trace, analyze(trace), **kw))  # type: ignore[arg-type]


def packet_rows(lines: list[str]) -> list[tuple[int, str]]:
    return [(int(m.group(1)), line) for line in lines if (m := ROW.match(line))]


def endpoint(ip: str, port: str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@pytest.mark.parametrize("path", [HELLO, *corpus_files()], ids=lambda p: p.name)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_one_row_per_packet(path: Path, lang: str) -> None:
    frames = [int(r[0]) for r in tshark_fields(path, "frame.number")]
    rows = packet_rows(ladder(path, lang=lang))
    assert [no for no, _ in rows] == frames


def test_hello_lanes_and_arrows() -> None:
    f = tshark_fields(HELLO, "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport")
    client = endpoint(f[0][0], f[0][1])  # frame 1 is the client's SYN
    server = endpoint(f[0][2], f[0][3])
    assert server == "10.77.0.2:7777"
    lines = ladder(HELLO, width=100)
    header = next(line for line in lines if client in line)
    assert server in header and header.index(client) < header.index(server), "client lane on the left"
    rows = packet_rows(lines)
    for (_, line), (src_ip, sport, _, _) in zip(rows, f, strict=True):
        from_client = endpoint(src_ip, sport) == client
        assert ("▶" in line) == from_client and ("◀" in line) != from_client, line


def test_hello_rows_show_flags_seq_states_and_causes() -> None:
    f = tshark_fields(HELLO, "tcp.flags.str", "tcp.seq", "tcp.ack", "tcp.len", "tcp.seq_raw")
    rows = [line for _, line in packet_rows(ladder(HELLO))]
    assert "SYN" in rows[0] and "SYN,ACK" in rows[1] and "FIN,ACK" in rows[7]
    for line, (_, seq, ack, ln, _) in zip(rows, f, strict=True):
        assert f"seq={seq} " in line and f"len={ln} " in line
        assert (f"ack={ack} " in line) == (",ACK" in line or " ACK" in line), line
    # RFC 9293: the SYN sender enters SYN-SENT, the first FIN sender FIN-WAIT-1, and
    # the side that sent the last ACK of the close ends in TIME-WAIT.
    assert "SYN-SENT" in rows[0] and "connect()" in rows[0]
    assert "FIN-WAIT-1" in rows[7] and "close()" in rows[7]
    assert "TIME-WAIT" in " ".join(rows[8:])
    raw_rows = [line for _, line in packet_rows(ladder(HELLO, raw_seq=True))]
    assert f"seq={f[0][4]} " in raw_rows[0]


def test_loopback_endpoints_are_two_lanes() -> None:
    path = CORPUS / "tcpdump__print-flags.pcap"
    f = tshark_fields(path, "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport")
    a, b = endpoint(f[0][0], f[0][1]), endpoint(f[0][2], f[0][3])
    assert a.split(":")[0] == b.split(":")[0] == "127.0.0.1"
    header = next(line for line in ladder(path) if a in line)
    assert b in header
    arrows = {("▶" in line) for _, line in packet_rows(ladder(path))}
    assert arrows == {True, False}, "both directions drawn"


@pytest.mark.parametrize("path", [HELLO, CORPUS / "dpkt__nb6-http.pcap", CORPUS / "dpkt__http.pcap"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_lanes_line_up(path: Path, lang: str) -> None:
    lines = ladder(path, lang=lang, width=100)
    if lang == "zh":
        assert any(CJK.search(line) for line in lines[:4]), "zh header"
    columns = set()
    for _, line in packet_rows(lines):
        first = line.index("│")
        second = line.index("│", first + 1)
        columns.add((text_width(line[:first]), text_width(line[: second + 1])))
    assert len(columns) == 1, columns


def test_several_streams_are_labelled() -> None:
    path = CORPUS / "dpkt__nb6-http.pcap"
    f = tshark_fields(path, "frame.number", "tcp.stream", "udp.stream", "frame.protocols")
    # Frames tunnelled in L2TP (tshark's tcp.stream 2 here) are beyond tracer's decoder.
    f = [r for r in f if "l2tp" not in r[3]]
    tcp_streams = {int(r[1]) for r in f if r[1] and "," not in r[1] and "icmp" not in r[3]}
    assert len(tcp_streams) >= 2
    lines = ladder(path)
    for s in tcp_streams:
        assert any(f"[TCP stream {s}]" in line for line in lines), s
    rows = dict(packet_rows(lines))
    for no, stream, _, protos in f:
        if stream and "icmp" not in protos:
            assert f" t{stream} " in rows[int(no)], rows[int(no)]
        if protos.startswith("eth:ethertype:arp"):
            assert "arp" in rows[int(no)]
    zh = ladder(path, lang="zh")
    assert any(f"[TCP 流 {min(tcp_streams)}]" in line for line in zh)


def test_stream_filter_keeps_that_stream_only() -> None:
    path = CORPUS / "dpkt__http.pcap"
    f = tshark_fields(path, "frame.number", "tcp.stream")
    want = [int(no) for no, s in f if s == "1"]
    assert want
    assert [no for no, _ in packet_rows(ladder(path, stream=1))] == want


def test_explain_adds_a_sentence_under_each_row() -> None:
    for lang in ("en", "zh"):
        lines = ladder(HELLO, lang=lang, explain=True)
        rows = [i for i, line in enumerate(lines) if ROW.match(line)]
        assert len(rows) == 10
        for i in rows:
            sentence = lines[i + 1]
            assert not ROW.match(sentence) and len(sentence.strip()) > 20
            assert bool(CJK.search(sentence)) == (lang == "zh")


def test_every_reason_has_a_label_in_both_languages() -> None:
    from tracer.core.reasons import REASONS
    from tracer.i18n import has
    from tracer.i18n.explain import label

    # Written for each reason, not derived from its snake_case name.
    assert [r for r in REASONS if not has(f"label.{r}")] == []
    assert [r for r in REASONS if not CJK.search(label(r, "zh"))] == []


# --- the kernel witness's drops (issue 12): real runs in the lab -----------------------


@pytest.mark.lab
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dropped_frames_stop_short_with_their_reason(scenario_run: Callable[[str], Path], lang: str) -> None:
    """data-lost's IMPAIR drops two data segments and synack-lost's the first SYN-ACK: the
    receiving kernel says so (NETFILTER_DROP), and their arrows stop short at ✗ with the reason;
    every other arrow reaches its lane."""
    from tracer.ladder.kernel import drop_note

    for name in ("data-lost", "synack-lost"):
        trace = read_capture(scenario_run(name))
        assert trace.kernel is not None, name
        drops = {d.packet_no: d for d in trace.kernel.drops}
        assert "NETFILTER_DROP" in {d.reason for d in drops.values()}, (name, drops)
        rows = dict(packet_rows(list(render_ladder(trace, analyze(trace), lang=lang, width=160))))
        assert set(rows) == set(range(1, len(trace.packets) + 1))
        for no, line in rows.items():
            arrow = line[line.index("│"): line.index("│", line.index("│") + 1) + 1]
            if no in drops:
                assert "▶" not in arrow and "◀" not in arrow and "✗" in arrow, (name, line)
                assert arrow.endswith("✗   │") or arrow.startswith("│   ✗"), (name, line)
                assert f"✗ {drops[no].reason}" in line and drop_note(drops[no], lang) in line, (name, line)
            else:
                assert ("▶" in arrow) != ("◀" in arrow) and "✗" not in line, (name, line)


def test_a_capture_without_a_kernel_account_shows_no_drops() -> None:
    trace = read_capture(HELLO)
    assert trace.kernel is None
    assert not any("✗" in line for line in render_ladder(trace, analyze(trace)))
