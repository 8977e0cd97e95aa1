"""pcap/pcapng reading compared with tshark/capinfos: formats, timestamps, comments, interfaces.

Format variants are made by the real tools (editcap) from corpus captures or
crafted byte for byte below (pcapng blocks per the pcapng spec); tshark reads the
same file and is the oracle for every value.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CORPUS, corpus_files, tshark_fields
from helpers.captures import crafted_pcapng, idb, same_packets, shb
from helpers.decode import compare, pcap_bytes, scapy_frames, ts_from_tshark
from tracer.errors import EXIT_INPUT, CaptureError
from tracer.lab.netns import Lab
from tracer.pcap import tracer_block
from tracer.pcap.reader import read_bytes, read_capture

pytestmark = pytest.mark.tshark

PCAPNG_FILES = [p for p in corpus_files() if p.suffix == ".pcapng"]


@pytest.mark.parametrize("path", PCAPNG_FILES, ids=lambda p: p.name)
def test_pcapng_comments_and_interfaces_match_tshark(corpus: Path, path: Path) -> None:
    t = read_capture(path)
    rows = tshark_fields(path, "frame.comment", "frame.interface_id", "frame.interface_name")
    assert len(rows) == len(t.packets)
    for i, (comment, ifid, ifname) in enumerate(rows):
        assert t.packets.comments.get(i, "").replace("\n", ",") == comment
        assert int(t.packets.iface[i]) == int(ifid)
        # An interface without if_name: tracer keeps "", tshark prints "unknown".
        assert (t.meta.interfaces[int(ifid)][1] or "unknown") == ifname
    assert t.meta.file_format == "pcapng"


@pytest.mark.parametrize("path", PCAPNG_FILES, ids=lambda p: p.name)
def test_section_comment_matches_capinfos(corpus: Path, path: Path) -> None:
    out = subprocess.run(["capinfos", "-k", str(path)], capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("Capture comment:"))
    want = line.split(":", 1)[1].strip()
    got = read_capture(path).meta.section_comment
    assert got is not None and got.strip() == want


def test_corpus_has_pcapng_comments() -> None:
    assert sum(len(read_capture(p).packets.comments) for p in PCAPNG_FILES) >= 102  # 100 + 2 per MANIFEST


CONVERT = ["zeek__tcp__retransmit-fast009.pcap", "dpkt__nb6-http.pcap", "zeek__irc-353.pcap"]


@pytest.mark.parametrize("fmt", ["pcapng", "nsecpcap", "modpcap"])
@pytest.mark.parametrize("name", CONVERT)
def test_editcap_formats_match_tshark_and_original(corpus: Path, tmp_path: Path, fmt: str, name: str) -> None:
    src = CORPUS / name
    out = tmp_path / f"{name}.{fmt}"
    subprocess.run(["editcap", "-F", fmt, str(src), str(out)], check=True, capture_output=True)
    t = read_capture(out)
    compare(out, t.packets)
    same_packets(read_capture(src).packets, t.packets)
    assert t.warnings == ()
    assert t.meta.file_format == {"pcapng": "pcapng", "nsecpcap": "pcap-ns", "modpcap": "pcap-modified"}[fmt]


def _swap_pcap(data: bytes) -> bytes:
    """The same pcap written by a big-endian host: every header field byte-swapped."""
    out = bytearray(data)
    out[0:4] = data[0:4][::-1]
    out[4:8] = data[4:6][::-1] + data[6:8][::-1]
    for a in (8, 12, 16, 20):
        out[a : a + 4] = data[a : a + 4][::-1]
    pos = 24
    while pos + 16 <= len(data):
        cl = struct.unpack_from("<I", data, pos + 8)[0]
        for a in range(pos, pos + 16, 4):
            out[a : a + 4] = data[a : a + 4][::-1]
        pos += 16 + cl
    return bytes(out)


@pytest.mark.parametrize("name", ["tcpdump__whois.pcap", "zeek__http__get-to-ssh-server.pcap"])
def test_big_endian_pcap_matches_tshark(corpus: Path, tmp_path: Path, name: str) -> None:
    data = (CORPUS / name).read_bytes()
    out = tmp_path / f"be-{name}"
    out.write_bytes(_swap_pcap(data))
    t = read_capture(out)
    compare(out, t.packets)
    same_packets(read_capture(CORPUS / name).packets, t.packets)


# --- crafted pcapng -------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
def test_crafted_pcapng_matches_tshark(tmp_path: Path, order: str) -> None:
    path = tmp_path / f"crafted{order == '<'}.pcapng"
    path.write_bytes(crafted_pcapng(order))
    t = read_capture(path)
    assert t.warnings == ()
    compare(path, t.packets)
    rows = tshark_fields(
        path, "frame.comment", "frame.interface_id", "frame.interface_name", "frame.time_epoch"
    )
    assert len(rows) == len(t.packets) == 6
    for i, (comment, ifid, ifname, when) in enumerate(rows):
        assert t.packets.comments.get(i, "").replace("\n", ",") == comment
        # Deliberate: tracer numbers interfaces across sections (index into
        # meta.interfaces); tshark 4.0 numbers them within each section.
        global_id = int(ifid) + (2 if i == 5 else 0)
        assert int(t.packets.iface[i]) == global_id
        # tshark 4.0 also looks the section-local id up among all interfaces and so
        # names section 2's interface "eth0"; the file says "eth1" (built above).
        assert t.meta.interfaces[global_id][1] == (ifname if i < 5 else "eth1")
        # A Simple Packet Block has no timestamp: tshark prints none, tracer uses 0.
        assert int(t.packets.ts_ns[i]) == (ts_from_tshark(when) if when else 0)
    assert t.meta.section_comment == "first section\nsecond comment"
    assert [lt for lt, _ in t.meta.interfaces] == [1, 101, 1]


def test_tracer_block_payload_is_loaded(tmp_path: Path) -> None:
    from tracer.core.model import SocketCall, TraceWarning

    call = SocketCall(
        id=1,
        call="connect",
        side="client",
        pid=10,
        tid=10,
        fd=3,
        args=(),
        result="0",
        errno=None,
        t_enter_ns=5,
        t_exit_ns=6,
    )
    warn = TraceWarning(code="lab_note", message="m", message_zh="m")
    body = tracer_block.encode(tracer_block.Payload(calls=(call,), meta={"scenario": "x"}, warnings=(warn,)))
    t = read_bytes(crafted_pcapng("<", body))
    assert t.calls == (call,)
    assert t.meta.extra["scenario"] == "x"
    assert warn in t.warnings
    bad = read_bytes(crafted_pcapng("<", b"{not json"))
    assert [w.code for w in bad.warnings] == ["bad_tracer_block"]
    assert len(bad.packets) == 6


def test_foreign_custom_blocks_are_ignored() -> None:
    plain, other = read_bytes(crafted_pcapng(">")), read_bytes(crafted_pcapng(">", foreign=True))
    same_packets(plain.packets, other.packets)
    assert other.warnings == () and other.calls == ()


def test_pcap_fields_from_header(tmp_path: Path) -> None:
    t = read_bytes(pcap_bytes(1, scapy_frames()[:2]), source="x.pcap")
    assert t.meta.file_format == "pcap" and t.meta.interfaces == ((1, ""),)
    assert t.meta.extra["version"] == "2.4" and t.meta.source == "x.pcap"


# --- errors ---------------------------------------------------------------------


def _err(fn: object, *args: object) -> CaptureError:
    assert callable(fn)
    with pytest.raises(CaptureError) as ei:
        fn(*args)
    e = ei.value
    assert e.exit_code == EXIT_INPUT
    assert "\n" not in str(e) and "\n" not in e.message_zh
    assert any("\u4e00" <= ch <= "\u9fff" for ch in e.message_zh)
    return e


def test_errors_for_files_that_are_not_captures(tmp_path: Path) -> None:
    assert "no such file" in str(_err(read_capture, tmp_path / "missing.pcap"))
    assert "directory" in str(_err(read_capture, tmp_path))
    (tmp_path / "empty.pcap").write_bytes(b"")
    assert "empty" in str(_err(read_capture, tmp_path / "empty.pcap"))
    (tmp_path / "text.pcap").write_text("hello world\n")
    assert "not a pcap or pcapng file (starts with 68 65 6c 6c)" in str(
        _err(read_capture, tmp_path / "text.pcap")
    )
    gz = subprocess.run(["gzip", "-c", str(CORPUS / "tcpdump__whois.pcap")], capture_output=True, check=True)
    assert "gzip" in str(_err(read_bytes, gz.stdout))
    assert "header cut short" in str(_err(read_bytes, pcap_bytes(1, [])[:20]))
    assert "pcapng" in str(_err(read_bytes, shb("<")[:20]))


def test_empty_but_valid_captures(tmp_path: Path) -> None:
    assert len(read_bytes(pcap_bytes(1, [])).packets) == 0
    t = read_bytes(shb("<") + idb("<", 1))
    assert len(t.packets) == 0 and t.warnings == ()


# --- real kernel traffic -------------------------------------------------------------

_TRAFFIC = r"""
import socket, sys, time
fam, addr = (socket.AF_INET6, sys.argv[1]) if ":" in sys.argv[1] else (socket.AF_INET, sys.argv[1])
for port in (7001, 7002):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.connect((addr, port)) if port == 7001 else None
    if port == 7001:
        s.sendall(b"hello" * 300)
        s.recv(100)
        s.close()
u = socket.socket(fam, socket.SOCK_DGRAM)
u.connect((addr, 7009))  # closed port: the kernel answers with an ICMP error
u.settimeout(0.5)
for _ in range(6):  # ICMP errors are rate-limited: resend until one has arrived
    u.send(b"ping")
    try:
        u.recv(100)
    except ConnectionRefusedError:
        break
    except TimeoutError:
        pass
try:
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.connect((addr, 7010))  # closed port: RST
except OSError:
    pass
"""

_SERVER = r"""
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7001))
s.listen()
print("ready", flush=True)
for _ in range(int(sys.argv[2])):
    c, _ = s.accept()
    data = b""
    while len(data) < 1500:
        data += c.recv(4096)
    c.sendall(b"ok")
    c.close()
"""


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str, str]]:
    """Two network namespaces joined by a veth pair: the lab's (namespaces, client's device)."""
    with Lab(prefix="trcread") as lab:
        yield lab.client.ns, lab.server.ns, lab.client.iface


@pytest.mark.lab
@pytest.mark.parametrize(("iface", "extra"), [("veth", ()), ("any", ("--time-stamp-precision=nano",))])
def test_live_capture_matches_tshark(
    veth_pair: tuple[str, str, str], tmp_path: Path, iface: str, extra: tuple[str, ...]
) -> None:
    """Real kernel traffic: Ethernet on the veth end (µs pcap), Linux SLL2 on "any" (ns pcap)."""
    import signal
    import sys

    from tracer.lab.netns import wait_file_quiet

    a, b, veth = veth_pair
    out = tmp_path / "live.pcap"
    dump = subprocess.Popen(
        # Immediate mode: no buffered packets are lost at SIGINT; -Z root: tmp_path is 0700.
        [
            "ip",
            "netns",
            "exec",
            a,
            "tcpdump",
            "-i",
            veth if iface == "veth" else iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-Z",
            "root",
            "-w",
            str(out),
            *extra,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert dump.stderr is not None
        while "listening on" not in (line := dump.stderr.readline()):
            assert line, "tcpdump did not start"
        for addr in ("10.77.0.2", "fd00:77::2"):
            srv = subprocess.Popen(
                ["ip", "netns", "exec", b, sys.executable, "-c", _SERVER, addr, "1"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
            subprocess.run(
                ["ip", "netns", "exec", a, sys.executable, "-c", _TRAFFIC, addr], check=True, timeout=20
            )
            srv.wait(timeout=20)
        wait_file_quiet(out, quiet=0.15, limit=5.0)  # tcpdump has written the last packets (-U)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=20)
    t = read_capture(out)
    checked = compare(out, t.packets)
    assert t.warnings == ()
    # tcpdump on "any" was seen to miss a datagram now and then (CI, 2026-11-22): there,
    # one UDP datagram is enough for the comparison with tshark.
    assert checked["tcp"] >= 16 and checked["udp"] >= (2 if iface == "veth" else 1), checked
    if iface == "veth":
        # The client resent until its connected UDP socket got ECONNREFUSED, so both
        # port-unreachable errors crossed the wire.  (tcpdump on "any" was seen to
        # miss one of them now and then, so only the veth capture insists.)
        assert checked["quote"] >= 2, checked
        names = {t.packets.proto_name(i) for i in range(len(t.packets))}
        assert {"tcp", "udp", "icmp", "icmpv6"} <= names
    assert int(t.packets.linktype[0]) == (1 if iface == "veth" else 276)


def test_documented_exit_codes() -> None:
    from tracer import errors

    # The documented contract (README/CLI): 0 ok, 1 internal, 2 input file, 3 usage,
    # 4 privileges, 5 missing tool, 6 check failed, 130 interrupted; each named in both languages.
    assert sorted(errors.EXIT_CODES) == [0, 1, 2, 3, 4, 5, 6, 130]
    for cls, code in ((errors.CaptureError, 2), (errors.UsageError, 3), (errors.PrivilegeError, 4),
                      (errors.MissingToolError, 5)):
        assert cls("cli.cannot_read", path="a", why="b").exit_code == code
    for en, zh in errors.EXIT_CODES.values():
        assert en.isascii() and any("\u4e00" <= ch <= "\u9fff" for ch in zh)
    e = errors.TracerError("cli.cannot_read", path="two\nlines", why="b")
    assert str(e) == "cannot read two lines: b" and e.message_zh == "无法读取 two lines：b"
    assert e.exit_code == 1


def test_timestamps_past_2262_are_reported_not_silently_wrapped() -> None:
    path = CORPUS / "pcapplusplus__pcapng-example.pcapng"
    trace = read_capture(path)
    # tshark (whose times are not limited to int64 ns) says which frames are past 2262.
    epoch = [float(r[0]) for r in tshark_fields(path, "frame.time_epoch", two_pass=False)]
    late = [no for no, t in enumerate(epoch, 1) if t >= 2**63 / 1e9]
    warns = [w for w in trace.warnings if w.code == "timestamp_out_of_range"]
    assert late and len(warns) == 1
    assert warns[0].packet_no == late[0] and f"{len(late)} packets" in warns[0].message
