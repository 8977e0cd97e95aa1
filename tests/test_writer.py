"""pcapng writer and tracer Custom Block: round trips through tracer, tshark and capinfos.

Real corpus captures are read with tracer, written with ``write_pcapng`` and read
back: every column, every frame's bytes and every timestamp must survive.  The
written file is checked by the real tshark and capinfos (comments, packet count,
no warnings) and, frame by frame, against what tshark says about the original.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPUS, corpus_manifest, examples
from tracer.core.model import (
    KernelSocketState,
    SocketCall,
    SourceLocation,
    TraceMeta,
    TraceWarning,
    endpoint_str,
)
from tracer.core.pipeline import analyze
from tracer.core.reasons import REASONS
from tracer.core.table import COLUMNS, PacketTable
from tracer.core.trace import Trace
from tracer.errors import CaptureError
from tracer.i18n.explain import explain
from tracer.pcap import tracer_block
from tracer.pcap.reader import read_bytes, read_capture
from tracer.pcap.tracer_block import PEN, Payload, decode, encode
from tracer.pcap.writer import write_pcapng

pytestmark = pytest.mark.tshark

# Several link types, pcap and pcapng, us and ns, LE and BE, files with comments.
ROUND_TRIP = [
    "tcpdump__whois.pcap",  # Ethernet, us
    "zeek__communityid__tcp.pcap",  # Ethernet, frames cut by snaplen, out of time order
    "zeek__http__get-to-ssh-server.pcap",  # Ethernet, ns pcap
    "tcpdump__tcp-handshake-nano.pcap",  # Linux SLL, ns
    "suricata-verify__decode-sll2-01.pcap",  # Linux SLL2
    "pcapplusplus__one_ipv6_http_stream.pcap",  # raw IP (101), IPv6
    "zeek__irc-353.pcap",  # null/loopback (0)
    "zeek__http__basic-auth-with-colon.pcap",  # raw IPv4 (228)
    "tcpdump__mpls-traceroute.pcap",  # PPP, ICMP errors
    "dpkt__nb6-http.pcap",  # mixed IPv4/IPv6/ICMP/ARP
    "pcapplusplus__pcapng-example.pcapng",  # pcapng: 2 interfaces, 100 comments, section comment
    "hadrielk__pcapng-test-generator__be_test009.pcapng",  # big-endian pcapng with comments
    "tcpdump__timestamp_invalid_nano.pcap",  # out-of-range ns fields (tshark reads them)
]

ROOT_NOTICE = re.compile(r'^Running as user "root" and group "root"\. This could be dangerous\.$')

CJK = re.compile(r"[\u4e00-\u9fff]")


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    # A missing tshark/capinfos raises FileNotFoundError: the test fails, never skips.
    return subprocess.run(cmd, capture_output=True, encoding="utf-8", check=False)


def _stderr_problems(stderr: str) -> list[str]:
    """tshark's stderr lines, minus its notice about running as root (not about the file)."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ROOT_NOTICE.match(ln)]


def _tshark_json(path: Path, *fields: str) -> list[dict[str, list[str]]]:
    """Per frame (custom block included), the fields' values as tshark -T json gives them."""
    cmd = ["tshark", "-r", str(path), "-n", "-T", "json"]
    for f in fields:
        cmd += ["-e", f]
    proc = _run(cmd)
    assert proc.returncode == 0, proc.stderr
    return [frame["_source"]["layers"] for frame in json.loads(proc.stdout)]


def _tshark_frames(path: Path, *fields: str) -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    proc = _run(cmd)
    assert proc.returncode == 0, proc.stderr
    return [ln.split("\t") for ln in proc.stdout.splitlines()]


def _assert_same_packets(a: PacketTable, b: PacketTable) -> None:
    assert len(a) == len(b)
    for name, _ in COLUMNS:
        if name == "frame_off":  # where a frame sits in the file's buffer: layout, not content
            continue
        ca, cb = getattr(a, name), getattr(b, name)
        assert ca.dtype == cb.dtype, name
        assert np.array_equal(ca, cb), f"column {name} differs at rows {np.flatnonzero(ca != cb)[:10]}"
    for i in range(len(a)):
        assert a.raw(i) == b.raw(i), f"row {i}: captured bytes differ"
    assert a.addresses == b.addresses
    assert a.proto_names == b.proto_names
    assert a.sack_blocks == b.sack_blocks
    assert a.icmp_quotes == b.icmp_quotes
    assert a.comments == b.comments
    assert a.decode_notes == b.decode_notes


def _payload_of(trace: Trace) -> Payload:
    return Payload(
        calls=trace.calls,
        kernel_states=trace.kernel_states,
        meta=dict(trace.meta.extra),
        warnings=trace.warnings,
    )


def _custom_blocks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(block type, PEN, body) of each Custom Block of a little-endian pcapng file."""
    out, off = [], 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        assert blen >= 12 and blen % 4 == 0 and off + blen <= len(data), f"bad block at {off}"
        assert struct.unpack_from("<I", data, off + blen - 4)[0] == blen, f"trailer differs at {off}"
        if btype in (0x00000BAD, 0x40000BAD):
            (pen,) = struct.unpack_from("<I", data, off + 8)
            out.append((btype, pen, data[off + 12 : off + blen - 4]))
        off += blen
    assert off == len(data), "file does not end on a block boundary"
    return out


# --- the Custom Block payload ----------------------------------------------------------------


def _sample_payload() -> Payload:
    calls = (
        SocketCall(
            id=1,
            call="connect",
            side="client",
            pid=4242,
            tid=4243,
            fd=3,
            args=(("addr", "10.0.0.2:8080"), ("flags", "")),
            result="-1",
            errno="ECONNREFUSED",
            t_enter_ns=1_700_000_000_123_456_789,
            t_exit_ns=1_700_000_000_123_999_999,
            local="10.0.0.1:40000",
            remote="10.0.0.2:8080",
            proto="tcp",
            process="客户端.py",
            source=SourceLocation(file="/lab/客户端.py", line=17, code='s.connect(("10.0.0.2", 8080))'),
        ),
        SocketCall(
            id=2,
            call="listen",
            side="server",
            pid=1,
            tid=1,
            fd=None,
            args=(),
            result=None,
            errno=None,
            t_enter_ns=-5,
            t_exit_ns=None,
        ),
    )
    states = (
        KernelSocketState(
            t_ns=1_700_000_000_000_000_001,
            host="server",
            proto="tcp",
            state="LISTEN",
            local="[::]:8080",
            remote="[::]:*",
            recv_q=0,
            send_q=128,
            label="监听队列",
        ),
    )
    warnings = (
        TraceWarning("truncated_file", "The file ends mid-packet.", "文件在数据包中间结束。", 7, 1234),
        TraceWarning("dropped", "Dropped packets.", "丢弃了数据包。"),
    )
    return Payload(
        calls=calls, kernel_states=states, meta={"lab": "实验 1", "k": ""}, warnings=warnings, version=1
    )


def test_block_encode_decode_round_trip() -> None:
    p = _sample_payload()
    body = encode(p)
    assert decode(body) == p
    # As the reader may hand it over: with the block's zero padding to 32 bits.
    assert decode(body + b"\0" * (-len(body) % 4)) == p
    assert decode(memoryview(body + b"\0\0\0")) == p
    # Inspectable: UTF-8 JSON naming itself and its version; Chinese kept readable.
    obj = json.loads(body.decode("utf-8"))
    assert obj["format"] == "tracer" and obj["version"] == tracer_block.VERSION
    assert "客户端" in body.decode("utf-8")


def test_block_keeps_lone_surrogates() -> None:
    """A name decoded with surrogateescape has no UTF-8 form; it still round-trips."""
    name = b"\xff\xfeclient.py".decode("utf-8", errors="surrogateescape")
    p = Payload(meta={"process": name, "zh": "客户端"})
    body = encode(p)
    body.decode("ascii")  # fell back to \u escapes
    assert decode(body) == p


def test_block_pen_is_documented_private_choice() -> None:
    # Not RFC 5612's documentation-only example PEN, fits the 32-bit field.
    assert PEN != 32473 and 0 < PEN < 2**32
    assert "unregistered" in (tracer_block.__doc__ or "")


def test_block_tolerates_unknown_future_keys() -> None:
    p = _sample_payload()
    obj = json.loads(encode(p))
    obj["version"] = 7
    obj["new_section"] = {"x": [1, 2]}
    obj["calls"][0]["new_field"] = "later"
    obj["kernel_states"][0]["inode"] = 99
    obj["warnings"][1]["severity"] = "high"
    got = decode(json.dumps(obj).encode())
    assert got.version == 7
    assert dataclasses.replace(got, version=1) == p


def test_block_optional_fields_default() -> None:
    body = json.dumps(
        {
            "format": "tracer",
            "version": 1,
            "calls": [{"id": 5, "call": "socket", "side": "client", "pid": 1, "tid": 1, "t_enter_ns": 9}],
        }
    ).encode()
    p = decode(body)
    assert p.calls == (SocketCall(5, "socket", "client", 1, 1, None, (), None, None, 9, None),)
    assert p.kernel_states == () and p.warnings == () and p.meta == {}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[]", "not a tracer block"),
        (b'{"format": "other", "version": 1}', "not a tracer block"),
        (b'{"format": "tracer"}', "bad version"),
        (b'{"format": "tracer", "version": "1"}', "bad version"),
        (b'{"format": "tracer", "version": true}', "bad version"),
        (b'{"format": "tracer", "version": 1, "calls": {}}', "'calls' must be a list"),
        (b'{"format": "tracer", "version": 1, "calls": [3]}', "calls[0] must be an object"),
        (b'{"format": "tracer", "version": 1, "calls": [{"id": 1}]}', "calls[0] has no 'call'"),
        (
            b'{"format": "tracer", "version": 1, "kernel_states": [{"t_ns": "x", "host": "h", "proto": "tcp",'
            b' "state": "LISTEN", "local": "a", "remote": "b"}]}',
            "'t_ns' must be an integer",
        ),
        (b'{"format": "tracer", "version": 1, "warnings": [{"code": "c"}]}', "has no 'message'"),
        (b'{"format": "tracer", "version": 1, "meta": {"a": 1}}', "'meta' must be an object of strings"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_block_decode_rejects_bad_input(body: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        decode(body)


_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)  # surrogates included
_i64 = st.integers(-(2**63), 2**63 - 1)


@given(
    calls=st.lists(
        st.builds(
            SocketCall,
            id=_i64,
            call=_text,
            side=_text,
            pid=_i64,
            tid=_i64,
            fd=st.none() | _i64,
            args=st.lists(st.tuples(_text, _text), max_size=3).map(tuple),
            result=st.none() | _text,
            errno=st.none() | _text,
            t_enter_ns=_i64,
            t_exit_ns=st.none() | _i64,
            local=st.none() | _text,
            remote=st.none() | _text,
            proto=st.none() | _text,
            process=_text,
            source=st.none() | st.builds(SourceLocation, file=_text, line=_i64, code=_text),
        ),
        max_size=3,
    ).map(tuple),
    states=st.lists(
        st.builds(
            KernelSocketState,
            t_ns=_i64,
            host=_text,
            proto=_text,
            state=_text,
            local=_text,
            remote=_text,
            recv_q=_i64,
            send_q=_i64,
            label=_text,
        ),
        max_size=3,
    ).map(tuple),
    meta=st.dictionaries(_text, _text, max_size=4),
    warnings=st.lists(
        st.builds(TraceWarning, _text, _text, _text, st.none() | _i64, st.none() | _i64), max_size=3
    ).map(tuple),
)
@settings(max_examples=examples(150), deadline=None)
def test_block_round_trips_any_payload(
    calls: tuple[SocketCall, ...],
    states: tuple[KernelSocketState, ...],
    meta: dict[str, str],
    warnings: tuple[TraceWarning, ...],
) -> None:
    p = Payload(calls=calls, kernel_states=states, meta=meta, warnings=warnings)
    assert decode(encode(p)) == p


@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: ('{"format":"tracer",' + t).encode()))
@settings(max_examples=examples(300), deadline=None)
def test_block_decode_raises_only_value_error(body: bytes) -> None:
    try:
        decode(body)
    except ValueError as e:
        assert str(e).startswith("tracer block: ")


def test_block_decode_rejects_bad_args_and_source() -> None:
    base = json.loads(encode(_sample_payload()))
    for bad in ({"args": [["a"]]}, {"args": "x"}, {"source": {"file": "f"}}, {"source": 3}, {"fd": 1.5}):
        obj = json.loads(json.dumps(base))
        obj["calls"][0].update(bad)
        with pytest.raises(ValueError, match=r"calls\[0\]"):
            decode(json.dumps(obj).encode())


# --- corpus round trips -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=ROUND_TRIP)
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    name = request.param
    assert name in corpus_manifest(), f"{name} not in the corpus manifest"
    src = CORPUS / name
    out = tmp_path_factory.mktemp("w") / (src.stem + ".pcapng")
    n = write_pcapng(out, read_capture(src))
    assert n == out.stat().st_size
    return src, out


def test_corpus_round_trip_through_tracer(written: tuple[Path, Path]) -> None:
    src, out = written
    orig, back = read_capture(src), read_capture(out)
    _assert_same_packets(orig.packets, back.packets)
    assert back.meta.section_comment == orig.meta.section_comment
    assert back.meta.interfaces == orig.meta.interfaces
    assert back.meta.file_format.startswith("pcapng")
    assert _payload_of(back) == _payload_of(orig)
    # Writing what was read back gives the very same file.
    assert _write_bytes(back) == out.read_bytes()


def test_corpus_round_trip_against_tshark(written: tuple[Path, Path]) -> None:
    """Frame by frame, tshark sees in the output what it sees in the original."""
    src, out = written
    fields: tuple[str, ...] = ("frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols")
    fields += ("frame.comment", "ip.src", "ipv6.src", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags")
    fields += ("udp.length", "icmp.type")
    want = _tshark_frames(src, *fields)
    got = _tshark_frames(out, *fields)
    # tshark lists the Custom Block, written last, as one extra frame of undissected data.
    assert len(got) == len(want) + 1
    assert got[-1][fields.index("frame.protocols")] == "data"
    # tracer keeps time as int64 ns since the epoch (until year 2262); the corpus's
    # pcapng example has frames dated in year 586524 that wrap there, as in C.
    # Those frames' times cannot round-trip; everything else about them must.
    # tshark prints out-of-range nanosecond fields unnormalised ("1418145370.1000000000");
    # tracer stores the instant they mean (the next second), so the text differs.
    limit = Decimal(2**63) / 10**9
    notes = corpus_manifest()[src.name]["notes"]
    for row_got, row_want in zip(got, want, strict=False):
        if not re.fullmatch(r"\d+\.\d{9}", row_want[0]):
            assert "MALFORMED: nanosecond pcap whose ns fields" in notes
            row_got[0] = row_want[0] = "(unnormalised)"
        elif abs(Decimal(row_want[0])) >= limit:
            assert "year 586524" in notes
            row_got[0] = row_want[0] = "(beyond int64 ns)"
    assert got[:-1] == want


def test_corpus_output_is_clean_for_tshark_and_capinfos(written: tuple[Path, Path]) -> None:
    src, out = written
    proc = _run(["tshark", "-r", str(out), "-n"])
    assert proc.returncode == 0, proc.stderr
    assert _stderr_problems(proc.stderr) == []
    n_src = _capinfos_count(src)
    assert _capinfos_count(out) == n_src == len(read_capture(out).packets)
    blocks = _custom_blocks(out.read_bytes())
    assert [(t, p) for t, p, _ in blocks] == [(0x00000BAD, PEN)]
    # A pcap header's snapshot length becomes the interface's (capinfos reads both).
    src_info, out_info = _run(["capinfos", str(src)]).stdout, _run(["capinfos", str(out)]).stdout
    hdr = re.search(r"Packet size limit:\s+file hdr: (\d+) bytes", src_info)
    if src.suffix == ".pcap":
        assert hdr is not None, src_info
        assert re.findall(r"Capture length = (\d+)", out_info) == [hdr.group(1)]


def _capinfos_count(path: Path) -> int:
    proc = _run(["capinfos", "-M", "-c", "-T", "-r", str(path)])
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().split("\t")[-1])


def _write_bytes(trace: Trace, **kw: object) -> bytes:
    buf = io.BytesIO()
    n = write_pcapng(buf, trace, **kw)  # type: ignore[arg-type]
    assert n == len(buf.getvalue())
    return buf.getvalue()


# --- comments --------------------------------------------------------------------------------------


def _comment_rows(path: Path) -> list[list[str]]:
    """Each frame's opt_comment values (tshark -T json keeps commas and newlines intact)."""
    return [layers.get("frame.comment", []) for layers in _tshark_json(path, "frame.comment")]


def test_original_comments_are_kept(tmp_path: Path) -> None:
    src = CORPUS / "pcapplusplus__pcapng-example.pcapng"
    out = tmp_path / "c.pcapng"
    write_pcapng(out, read_capture(src))
    want = _comment_rows(src)
    assert sum(1 for c in want if c) == 100  # the manifest: 100 packet comments
    assert _comment_rows(out)[:-1] == want


def test_unicode_comments_survive(tmp_path: Path) -> None:
    trace = read_capture(CORPUS / "tcpdump__whois.pcap")
    comments = {0: "三次握手的第一个包 (SYN)", 3: "línea 1\nline 2, 第二行", 10: "🙂 emoji"}
    trace = dataclasses.replace(
        trace,
        packets=dataclasses.replace(trace.packets, comments=comments),
        meta=dataclasses.replace(trace.meta, section_comment="课堂演示：whois"),
    )
    out = tmp_path / "u.pcapng"
    write_pcapng(out, trace)
    rows = _comment_rows(out)[:-1]
    assert rows == [[comments[i]] if i in comments else [] for i in range(len(trace.packets))]
    back = read_capture(out)
    assert back.packets.comments == comments
    assert back.meta.section_comment == "课堂演示：whois"
    proc = _run(["capinfos", "-k", str(out)])
    assert "课堂演示：whois" in proc.stdout


def _explain_values(path: Path) -> list[dict[str, object]]:
    """Per frame, the explanation placeholders ({src}, {dst}, {len}, ...) as tshark sees them."""
    fields: tuple[str, ...] = ("ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "tcp.srcport", "tcp.dstport")
    fields += ("udp.srcport",)
    fields += ("udp.dstport", "tcp.len", "udp.length", "tcp.seq", "tcp.ack")
    cmd = ["tshark", "-r", str(path), "-n", "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    proc = _run(cmd)
    assert proc.returncode == 0, proc.stderr
    out: list[dict[str, object]] = []
    for line in proc.stdout.splitlines():
        v = dict(zip(fields, line.split("\t"), strict=True))
        sip, dip = v["ip.src"] or v["ipv6.src"], v["ip.dst"] or v["ipv6.dst"]
        sport, dport = v["tcp.srcport"] or v["udp.srcport"], v["tcp.dstport"] or v["udp.dstport"]
        length = v["tcp.len"] or (str(int(v["udp.length"]) - 8) if v["udp.length"] else "0")
        out.append(
            {
                "src": endpoint_str(sip or None, int(sport) if sport else None),
                "dst": endpoint_str(dip or None, int(dport) if dport else None),
                "len": int(length),
                "seq": v["tcp.seq"],
                "ack": v["tcp.ack"],
            }
        )
    return out


def test_overlong_comment_is_cut_at_a_character(tmp_path: Path) -> None:
    """An option holds at most 65535 bytes; a longer comment keeps whole characters."""
    trace = read_capture(CORPUS / "tcpdump__dns_udp.pcap")
    long = "x" * 65533 + "汉字" * 10  # the first 汉 straddles the 65535-byte limit
    trace = dataclasses.replace(trace, packets=dataclasses.replace(trace.packets, comments={1: long}))
    out = tmp_path / "long.pcapng"
    write_pcapng(out, trace)
    back = read_capture(out).packets.comments
    assert back == {1: "x" * 65533}
    proc = _run(["tshark", "-r", str(out), "-n"])
    assert proc.returncode == 0 and _stderr_problems(proc.stderr) == []


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_analysis_comments(tmp_path: Path, lang: str) -> None:
    """Each packet gets "[who] explanation" in the language, after its original comment."""
    src = CORPUS / "pcapplusplus__pcapng-example.pcapng"
    trace = read_capture(src)
    analysis = analyze(trace)
    out = tmp_path / f"a_{lang}.pcapng"
    write_pcapng(out, trace, analysis, lang=lang)
    proc = _run(["tshark", "-r", str(out), "-n", "-2"])
    assert proc.returncode == 0 and _stderr_problems(proc.stderr) == []
    rows = _comment_rows(out)
    values = _explain_values(src)
    assert len(rows) == len(trace.packets) + 1 == len(values) + 1 and rows[-1] == []
    for i, got in enumerate(rows[:-1]):
        orig = trace.packets.comments.get(i)
        assert len(got) == (2 if orig else 1), (i, got)
        if orig:
            assert got[0] == orig
        cause = got[-1]
        assert re.match(r"^\[[^\]]+\]", cause), cause
        reason = REASONS[int(analysis.cause_reason[i])]
        side = int(analysis.cause_side[i])
        text = explain(reason, side, lang, **values[i])
        assert cause.endswith(" " + text), (i, cause, text)
        if lang == "zh":
            assert CJK.search(cause), cause
    # The packets themselves are unchanged by the comments.
    back = read_capture(out)
    for name, _ in COLUMNS:
        if name != "frame_off":
            assert np.array_equal(getattr(back.packets, name), getattr(trace.packets, name)), name


def test_rewriting_replaces_cause_comments(tmp_path: Path) -> None:
    """A file tracer wrote with causes, written again with causes, has one set of them."""
    src = CORPUS / "pcapplusplus__pcapng-example.pcapng"
    trace = read_capture(src)
    first, second, plain = tmp_path / "1.pcapng", tmp_path / "2.pcapng", tmp_path / "3.pcapng"
    write_pcapng(first, trace, analyze(trace), lang="zh")
    again = read_capture(first)
    write_pcapng(second, again, analyze(again), lang="zh")
    assert _comment_rows(second) == _comment_rows(first)
    # Without an analysis the comments are kept as they are, cause lines included.
    write_pcapng(plain, again)
    assert read_capture(plain).packets.comments == again.packets.comments


# --- calls, kernel states, metadata, warnings ---------------------------------------------------------


def test_trace_with_calls_round_trips(tmp_path: Path) -> None:
    base = read_capture(CORPUS / "pcapplusplus__one_tcp_rst.pcap")
    p = _sample_payload()
    trace = Trace(
        packets=base.packets,
        calls=p.calls,
        kernel_states=p.kernel_states,
        meta=TraceMeta(
            source="lab",
            file_format="live",
            section_comment=None,
            interfaces=base.meta.interfaces,
            extra=p.meta,
        ),
        warnings=p.warnings,
    )
    out = tmp_path / "calls.pcapng"
    write_pcapng(out, trace)
    back = read_capture(out)
    assert back.calls == trace.calls
    assert back.kernel_states == trace.kernel_states
    assert back.warnings[: len(trace.warnings)] == trace.warnings
    assert {k: back.meta.extra[k] for k in p.meta} == p.meta
    _assert_same_packets(trace.packets, back.packets)
    # The same file read from memory.
    same = read_bytes(out.read_bytes())
    assert same.calls == trace.calls and same.kernel_states == trace.kernel_states
    # tshark still reads it cleanly and sees the block as copyable, with our PEN.
    proc = _run(["tshark", "-r", str(out), "-n", "-V"])
    assert proc.returncode == 0 and _stderr_problems(proc.stderr) == []
    assert f"PEN Unknown ({PEN}), copying allowed" in proc.stdout


def test_truncated_capture_keeps_its_packets_and_warning(tmp_path: Path) -> None:
    src = CORPUS / "dpkt__truncated_dns_2.pcap"
    assert "MALFORMED: file cut short" in corpus_manifest()[src.name]["notes"]
    orig = read_capture(src)
    assert [w.code for w in orig.warnings] == ["truncated_file"]
    out = tmp_path / "t.pcapng"
    write_pcapng(out, orig)
    back = read_capture(out)
    assert back.warnings == orig.warnings  # carried in the tracer block; the output itself is whole
    _assert_same_packets(orig.packets, back.packets)
    proc = _run(["tshark", "-r", str(out), "-n"])
    assert proc.returncode == 0 and _stderr_problems(proc.stderr) == []
    assert _capinfos_count(out) == len(orig.packets) == 1  # the manifest: 1 DNS response


def test_interfaces_that_disagree_get_one_block_each(tmp_path: Path) -> None:
    """Two captures both using interface 0, with different link types, in one trace."""
    eth_src, sll_src = CORPUS / "tcpdump__whois.pcap", CORPUS / "tcpdump__tcp-handshake-nano.pcap"
    eth, sll = read_capture(eth_src).packets, read_capture(sll_src).packets
    cols = {name: np.concatenate([getattr(eth, name), getattr(sll, name)]) for name, _ in COLUMNS}
    cols["frame_off"] = np.concatenate([eth.frame_off, sll.frame_off + len(eth.data)])
    # Only the frame columns matter to the writer; the reader decodes the rest anew.
    merged = dataclasses.replace(eth, **cols, data=bytes(eth.data) + bytes(sll.data))  # type: ignore[arg-type]
    out = tmp_path / "two.pcapng"
    write_pcapng(out, Trace(merged, meta=TraceMeta(interfaces=((1, "eth0"),))))
    back = read_capture(out)
    assert back.meta.interfaces == ((1, "eth0"), (113, ""))
    assert back.packets.iface.tolist() == [0] * len(eth) + [1] * len(sll)
    assert back.packets.linktype.tolist() == [1] * len(eth) + [113] * len(sll)
    assert [back.packets.raw(i) for i in range(len(merged))] == [merged.raw(i) for i in range(len(merged))]
    fields = ("frame.time_epoch", "frame.len", "frame.protocols", "ip.src", "tcp.seq_raw", "tcp.flags")
    got = _tshark_frames(out, *fields)
    assert got[:-1] == _tshark_frames(eth_src, *fields) + _tshark_frames(sll_src, *fields)


def test_failed_write_is_a_bilingual_error_and_spares_existing_files() -> None:
    trace = read_capture(CORPUS / "tcpdump__whois.pcap")
    with pytest.raises(CaptureError) as ei:
        write_pcapng("/dev/full", trace)  # every write fails with ENOSPC
    assert "No space left on device" in str(ei.value) and CJK.search(ei.value.message_zh)
    assert os.path.exists("/dev/full")  # an existing path is never removed


def test_editcap_and_mergecap_keep_the_tracer_block(tmp_path: Path) -> None:
    """The block is "copyable" (0x00000BAD): Wireshark's rewriters keep it."""
    base = read_capture(CORPUS / "tcpdump__whois.pcap")
    p = _sample_payload()
    trace = dataclasses.replace(base, calls=p.calls, kernel_states=p.kernel_states)
    out = tmp_path / "orig.pcapng"
    write_pcapng(out, trace)
    for tool in (
        ["editcap", str(out), str(tmp_path / "edit.pcapng")],
        ["mergecap", "-w", str(tmp_path / "merge.pcapng"), str(out)],
    ):
        proc = _run(tool)
        assert proc.returncode == 0, proc.stderr
        back = read_capture(tool[-1] if tool[0] == "editcap" else tool[2])
        assert back.calls == p.calls and back.kernel_states == p.kernel_states, tool[0]
        _assert_same_packets(base.packets, back.packets)


def test_stream_and_path_give_same_bytes(tmp_path: Path) -> None:
    trace = read_capture(CORPUS / "zeek__irc-353.pcap")
    out = tmp_path / "p.pcapng"
    n = write_pcapng(out, trace)
    data = _write_bytes(trace)
    assert n == len(data) and out.read_bytes() == data
    # Streams are written from their position and left open.
    buf = io.BytesIO(b"xyz")
    buf.seek(3)
    write_pcapng(buf, trace)
    assert buf.getvalue()[3:] == data and not buf.closed


def test_empty_trace(tmp_path: Path) -> None:
    out = tmp_path / "empty.pcapng"
    write_pcapng(out, Trace(PacketTable.empty()))
    assert len(read_capture(out).packets) == 0
    proc = _run(["tshark", "-r", str(out), "-n"])
    assert proc.returncode == 0 and _stderr_problems(proc.stderr) == []


def test_unwritable_path_is_a_bilingual_error(tmp_path: Path) -> None:
    trace = read_capture(CORPUS / "tcpdump__dns_udp.pcap")
    with pytest.raises(CaptureError) as ei:
        write_pcapng(tmp_path / "no" / "such" / "dir.pcapng", trace)
    assert "cannot write" in str(ei.value) and CJK.search(ei.value.message_zh)


def test_bad_language_rejected() -> None:
    trace = read_capture(CORPUS / "tcpdump__dns_udp.pcap")
    with pytest.raises(ValueError, match="language"):
        write_pcapng(io.BytesIO(), trace, lang="fr")


# --- scale -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_million_packets_stream_out(tmp_path: Path) -> None:
    """1,000,000 real frames (whois.pcap's 11, repeated) stream out whole (speed: bench/)."""
    base = read_capture(CORPUS / "tcpdump__whois.pcap").packets
    reps = -(-1_000_000 // len(base))
    idx = np.tile(np.arange(len(base)), reps)[:1_000_000]
    cols = {name: getattr(base, name)[idx] for name, _ in COLUMNS}
    shift = np.repeat(np.arange(reps, dtype=np.int64) * 10**9, len(base))[:1_000_000]
    cols["ts_ns"] = base.ts_ns[idx] + shift
    big = dataclasses.replace(base, **cols)
    out = tmp_path / "big.pcapng"
    n = write_pcapng(out, Trace(big))
    assert n == out.stat().st_size
    assert _capinfos_count(out) == 1_000_000
