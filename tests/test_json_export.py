"""The JSON contract: valid JSON, row by row equal to the Analysis, and to tshark.

Real captures only: the shipped demo and the corpus beside the repository.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tracer.export.json_export as jx
from conftest import CAPTURES, CORPUS, corpus_files, tshark_fields
from tracer.core.analysis import Analysis
from tracer.core.model import AnalysisFlag, CauseSource, Side, TcpState, flags_str
from tracer.core.pipeline import analyze
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.export.json_export import write_json
from tracer.i18n.explain import explain
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark

REPO = Path(__file__).resolve().parents[1]
HELLO = CAPTURES / "hello.pcap"
# Small, varied corpus files compared field by field with tshark: IPv4 + UDP + a
# mid-stream connection, IPv6 on raw IP, loopback, SLL2, nanosecond pcap.
TSHARK_FILES = [
    HELLO,
    CORPUS / "dpkt__http.pcap",
    CORPUS / "pcapplusplus__one_ipv6_http_stream.pcap",
    CORPUS / "tcpdump__print-flags.pcap",
    CORPUS / "zeek__irc-353.pcap",
    CORPUS / "tcpdump__tcp-handshake-nano.pcap",
]


def load(path: Path) -> tuple[Trace, Analysis, dict[str, Any]]:
    trace = read_capture(path)
    analysis = analyze(trace)
    buf = io.StringIO()
    write_json(trace, analysis, buf)
    return trace, analysis, json.loads(buf.getvalue())


@pytest.mark.parametrize("path", [HELLO, *corpus_files()], ids=lambda p: p.name)
def test_json_matches_analysis_columns(path: Path) -> None:
    trace, a, doc = load(path)
    t = trace.packets
    assert {"packets", "calls", "streams", "warnings", "meta", "tracer_version"} <= doc.keys()
    pk = doc["packets"]
    assert len(pk) == len(t)
    streams = {(s.proto, s.index): s for s in (*a.tcp_streams, *a.udp_streams)}
    for i, p in enumerate(pk):
        is_tcp = t.proto_name(i) == "tcp"
        assert p["no"] == i + 1
        assert p["time"] == pytest.approx(int(t.ts_ns[i]) / 1e9, abs=1e-6)
        assert p["proto"] == t.proto_name(i)
        assert p["stream"] == (int(a.stream[i]) if a.stream[i] >= 0 else None)
        if t.src[i] >= 0:
            assert p["src"] == t.src_endpoint(i) and p["dst"] == t.dst_endpoint(i)
        else:
            assert p["src"] is None and p["dst"] is None
        assert p["flags"] == (flags_str(int(t.tcp_flags[i])) if is_tcp else "")
        assert p["seq"] == (int(a.rel_seq[i]) if is_tcp and a.rel_seq[i] >= 0 else None)
        assert p["ack"] == (int(a.rel_ack[i]) if is_tcp and a.rel_ack[i] >= 0 else None)
        assert p["seq_raw"] == (int(t.seq[i]) if is_tcp else None)
        assert p["ack_raw"] == (int(t.ack[i]) if is_tcp else None)
        assert p["len"] == int(t.payload_len[i])
        assert p["analysis"] == [f.json_name for f in AnalysisFlag if int(a.flags[i]) >> f.value & 1]
        if is_tcp and a.stream[i] >= 0 and a.state_a[i] >= 0:
            s = streams[("tcp", int(a.stream[i]))]
            want = {s.a: TcpState(int(a.state_a[i])).name, s.b: TcpState(int(a.state_b[i])).name}
            assert p["states"] == want
        else:
            assert p["states"] == {}
        c = p["cause"]
        assert c["by"] == ("unknown", "call", "kernel")[int(a.cause_by[i])]
        assert c["side"] == {1: "client", 2: "server"}.get(int(a.cause_side[i]))
        assert c["reason"] == REASONS[int(a.cause_reason[i])]
        assert c["call"] == (CALL_NAMES[int(a.cause_call[i])] or None if a.cause_call[i] >= 0 else None)
        assert c["inferred"] is bool(a.cause_inferred[i])
        assert c["source"] == CauseSource(int(a.cause_source[i])).name.lower()
        wire = int(a.inferred_reason[i])
        assert c["inferred_reason"] == (REASONS[wire] if 0 <= wire < len(REASONS) else None)
        # A capture file has no kernel witness: its fields are there, and null.
        assert trace.kernel is None
        assert p["origin"] is p["drop"] is p["rst_reason"] is p["figures"] is None
        side = Side(int(a.cause_side[i]))
        values: dict[str, object] = {"src": t.src_endpoint(i), "dst": t.dst_endpoint(i), "len": p["len"]}
        values.update({k: p[k] for k in ("seq", "ack") if p[k] is not None})
        for lang in ("en", "zh"):
            assert p["explain"][lang] == explain(c["reason"], side, lang, **values)
        assert re.search(r"[\u4e00-\u9fff]", p["explain"]["zh"]), p["explain"]
    assert len(doc["streams"]) == len(a.tcp_streams) + len(a.udp_streams)
    assert [w["code"] for w in doc["warnings"]] == [w.code for w in trace.warnings]
    assert doc["kernel"] is None


def _tshark_flags(hexbits: str) -> str:
    return flags_str(int(hexbits, 16) & 0xFF) if hexbits else ""


@pytest.mark.parametrize("path", TSHARK_FILES, ids=lambda p: p.name)
def test_json_agrees_with_tshark(path: Path) -> None:
    _, _, doc = load(path)
    fields = (
        "frame.time_epoch",
        "tcp.stream",
        "udp.stream",
        "tcp.seq",
        "tcp.ack",
        "tcp.flags",
        "tcp.len",
        "tcp.seq_raw",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "ip.src",
        "ipv6.src",
        "ip.dst",
        "ipv6.dst",
    )
    rows = tshark_fields(path, *fields)
    pk = doc["packets"]
    assert len(pk) == len(rows)
    checked_tcp = 0
    for p, r in zip(pk, rows, strict=True):
        f = dict(zip(fields, r, strict=True))
        assert p["time"] == pytest.approx(float(f["frame.time_epoch"]), abs=2e-6)
        if f["tcp.stream"] and "," not in f["tcp.stream"]:
            checked_tcp += 1
            assert p["proto"] == "tcp"
            assert p["stream"] == int(f["tcp.stream"])
            assert p["flags"] == _tshark_flags(f["tcp.flags"])
            assert p["seq"] == int(f["tcp.seq"])
            assert p["seq_raw"] == int(f["tcp.seq_raw"])
            if "A" in p["flags"]:
                assert p["ack"] == int(f["tcp.ack"])
            assert p["len"] == int(f["tcp.len"])
            ip_src = (f["ip.src"] or f["ipv6.src"]).split(",")[-1]
            ip_dst = (f["ip.dst"] or f["ipv6.dst"]).split(",")[-1]
            host = f"[{ip_src}]" if ":" in ip_src else ip_src
            dhost = f"[{ip_dst}]" if ":" in ip_dst else ip_dst
            assert p["src"] == f"{host}:{f['tcp.srcport']}"
            assert p["dst"] == f"{dhost}:{f['tcp.dstport']}"
        elif (
            f["udp.stream"]
            and "," not in f["udp.stream"]
            and f["udp.srcport"]
            and "," not in f["udp.srcport"]
        ):
            assert p["proto"] == "udp"
            assert p["stream"] == int(f["udp.stream"])
            assert p["flags"] == "" and p["seq"] is None and p["seq_raw"] is None
    assert checked_tcp > 0


def test_hello_facts() -> None:
    # What captures/make_hello.sh recorded: client 10.77.0.1 -> server 10.77.0.2:7777,
    # handshake, 7-byte request, 14-byte response, FIN close started by the client.
    _, _, doc = load(HELLO)
    pk = doc["packets"]
    assert [p["flags"] for p in pk] == ["S", "SA", "A", "PA", "A", "PA", "A", "FA", "FA", "A"]
    assert [p["len"] for p in pk if p["len"]] == [7, 14]
    assert pk[0]["dst"] == "10.77.0.2:7777" and pk[0]["src"].startswith("10.77.0.1:")
    assert pk[0]["cause"]["side"] == "client"
    assert pk[1]["cause"]["side"] == "server"
    (stream,) = doc["streams"]
    assert stream["client"] == pk[0]["src"] and stream["server"] == "10.77.0.2:7777"
    assert set(pk[-1]["states"]) == {pk[0]["src"], "10.77.0.2:7777"}


def test_chunking_does_not_change_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    trace = read_capture(CORPUS / "dpkt__http.pcap")
    a = analyze(trace)
    whole = io.StringIO()
    write_json(trace, a, whole)
    monkeypatch.setattr(jx, "CHUNK_ROWS", 7)
    writes: list[int] = []

    class Recorder(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(len(s))
            return super().write(s)

    small = Recorder()
    write_json(trace, a, small)
    assert small.getvalue() == whole.getvalue()
    # Streamed: many writes, none holding the whole packet array.
    assert len(writes) > len(trace.packets) // 7
    assert max(writes) < len(whole.getvalue()) // 3


def test_output_is_ascii_and_chinese_survives_parsing() -> None:
    trace = read_capture(HELLO)
    buf = io.StringIO()
    write_json(trace, analyze(trace), buf)
    text = buf.getvalue()
    assert text.isascii()
    doc = json.loads(text)
    assert all(re.search(r"[\u4e00-\u9fff]", p["explain"]["zh"]) for p in doc["packets"])


def test_empty_trace_is_valid_json() -> None:
    from tracer.core.table import PacketTable

    trace = Trace(PacketTable.empty())
    buf = io.StringIO()
    write_json(trace, analyze(trace), buf)
    doc = json.loads(buf.getvalue())
    assert doc["packets"] == [] and doc["streams"] == [] and doc["warnings"] == []


def test_truncated_capture_keeps_its_warning() -> None:
    trace, _, doc = load(CORPUS / "dpkt__truncated_dns_2.pcap")
    assert trace.warnings, "the reader must report the truncation (MANIFEST: cut short)"
    w = doc["warnings"][0]
    assert w["message"] and re.search(r"[\u4e00-\u9fff]", w["message_zh"])


def test_contract_doc_lists_every_name() -> None:
    doc = (REPO / "docs" / "json-contract.md").read_text(encoding="utf-8")
    missing = [r for r in REASONS if f"`{r}`" not in doc]
    missing += [f.json_name for f in AnalysisFlag if f"`{f.json_name}`" not in doc]
    missing += [c for c in CALL_NAMES if c and f"`{c}`" not in doc]
    missing += [s.name for s in TcpState if f"`{s.name}`" not in doc]
    assert missing == [], f"docs/json-contract.md does not document: {missing}"
    for key in ("packets", "calls", "streams", "warnings", "no", "time", "proto", "stream", "src", "dst",
                "flags", "seq", "ack", "seq_raw", "ack_raw", "len", "analysis", "states", "cause", "explain",
                "by", "side", "call", "reason", "inferred", "source", "inferred_reason", "origin", "drop",
                "rst_reason", "figures", "kernel", "frames_queued", "unmatched", "overrun", "kind", "what",
                "action", "tid", "process", "stack", "where", "snd_cwnd", "ssthresh", "srtt_us", "snd_wnd",
                "rcv_wnd"):  # fmt: skip
        assert f"`{key}`" in doc, key


@pytest.mark.parametrize("name", ["tcpdump__tcp-handshake-nano.pcap", "tcpdump__whois.pcap"])
def test_time_ns_is_the_capture_time_to_the_nanosecond(name: str) -> None:
    """``time_ns`` against tshark's frame.time_epoch (ns and µs files)."""
    from decimal import Decimal

    path = CORPUS / name
    trace = read_capture(path)
    out = io.StringIO()
    write_json(trace, analyze(trace), out)
    ours = [p["time_ns"] for p in json.loads(out.getvalue())["packets"]]
    theirs = [int(Decimal(r[0]) * 10**9) for r in tshark_fields(path, "frame.time_epoch", two_pass=False)]
    assert ours == theirs


@pytest.mark.lab
@pytest.mark.parametrize("name", ["data-lost", "synack-lost"])
def test_kernel_account_in_the_json(scenario_run: Callable[[str], Path], name: str) -> None:
    """A saved live run: each packet's origin, drop, RST reason and figures are the kernel
    account's, field for field; the trace-level ``kernel`` has its counts and state changes."""
    trace, a, doc = load(scenario_run(name))
    k = trace.kernel
    assert k is not None and k.origins and k.drops
    origins = k.origin_of()
    drops = {d.packet_no: d for d in k.drops}
    resets = {r.packet_no: r for r in k.resets}
    figures = {f.packet_no: f for f in k.figures}
    for p in doc["packets"]:
        no = p["no"]
        o = origins.get(no)
        assert p["origin"] == (None if o is None else {
            "kind": o.kind, "what": o.what or None, "action": o.action, "tid": o.tid, "process": o.process,
            "stack": list(o.stack), "t_ns": o.t_ns})
        d = drops.get(no)
        assert p["drop"] == (None if d is None else {"reason": d.reason, "where": d.where})
        r = resets.get(no)
        assert p["rst_reason"] == (None if r is None else {"reason": r.reason, "state": r.state})
        f = figures.get(no)
        assert p["figures"] == (None if f is None else {
            "snd_cwnd": f.snd_cwnd, "ssthresh": f.ssthresh, "srtt_us": f.srtt_us, "snd_wnd": f.snd_wnd,
            "rcv_wnd": f.rcv_wnd})
        assert p["cause"]["source"] == CauseSource(int(a.cause_source[no - 1])).name.lower()
    assert "NETFILTER_DROP" in {p["drop"]["reason"] for p in doc["packets"] if p["drop"]}
    assert doc["kernel"] == {
        "frames_queued": k.frames_queued, "unmatched": k.unmatched, "overrun": k.overrun,
        "states": [{"t_ns": s.t_ns, "sock": s.sock, "local": s.local, "remote": s.remote, "old": s.old,
                    "new": s.new} for s in k.states]}
    assert doc["kernel"]["states"], "the kernel saw the lab's sockets change state"
