"""Cause attribution: checked against documented captures, tshark and the real kernel.

Oracles: the corpus MANIFEST notes (who sent which FIN/RST), tshark's per-frame
flags and analysis fields, protocol facts (a DNS server listens on port 53), and
real socket programs whose calls we wrote ourselves in network namespaces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CORPUS, corpus_files, corpus_manifest, tshark_fields
from helpers.kernel import (
    KernelRun,
    half_close,
    kernel_run,
    simultaneous_close,
    simultaneous_open,
)
from tracer.core.analysis import Analysis
from tracer.core.attribution import CauseColumns, cause_at, check_pack_fields, infer_causes
from tracer.core.model import PROTO_TCP, Cause, CauseBy, Side
from tracer.core.pipeline import analyze
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.seq_analysis import analyze_tcp
from tracer.core.streams import assign_streams
from tracer.core.tcp_states import track_states
from tracer.lab.netns import CLIENT_IP, SERVER_IP, Lab
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark

YES = ("1", "True")


def causes(path: Path) -> tuple[CauseColumns, Analysis]:
    tr = read_capture(path)
    t = tr.packets
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    sa, sb = track_states(t, s, a)
    return infer_causes(t, s, a, sa, sb), analyze(tr)


def _first_transport(protocols: str) -> str:
    """tshark's outermost transport in frame.protocols ("eth:ip:udp:l2tp:...:tcp" → "udp")."""
    return next((p for p in protocols.split(":") if p in ("tcp", "udp")), "")


def cause(cols: CauseColumns, no: int) -> Cause:
    return cause_at(cols, no - 1)


def test_a_33rd_call_name_fails_loudly() -> None:
    """CALL_NAMES is append-only and _pack keeps a call in 5 bits: outgrowing a field raises."""
    check_pack_fields(len(CALL_NAMES), len(CauseBy), len(REASONS))  # what import checked
    check_pack_fields(32, len(CauseBy), len(REASONS))
    with pytest.raises(ValueError, match="33 CALL_NAMES"):
        check_pack_fields(33, len(CauseBy), len(REASONS))
    with pytest.raises(ValueError, match="CauseBy"):
        check_pack_fields(len(CALL_NAMES), 33, len(REASONS))
    with pytest.raises(ValueError, match="REASONS"):
        check_pack_fields(len(CALL_NAMES), len(CauseBy), 1 << 15 | 1)


def test_cause_at_round_trips_codes(corpus: Path) -> None:
    cols, an = causes(CORPUS / "tcpdump__whois.pcap")
    for i in range(len(cols.reason)):
        c = cause_at(cols, i)
        assert REASONS[int(an.cause_reason[i])] == c.reason
        assert (CALL_NAMES[int(an.cause_call[i])] or None) == c.call
        assert c.inferred and c.call_id is None  # no recorded calls in a capture file


def test_whois_causes(corpus: Path) -> None:
    # MANIFEST: 3-way handshake; server sends FIN,ACK (frame 8), client ACKs and
    # sends FIN (frame 10), server ACKs (frame 11).
    assert "server sends FIN,ACK (frame 8)" in corpus_manifest()["tcpdump__whois.pcap"]["notes"]
    cols, _ = causes(CORPUS / "tcpdump__whois.pcap")
    want = {
        1: ("connect_syn", CauseBy.CALL, Side.CLIENT, "connect"),
        2: ("listen_queue_synack", CauseBy.KERNEL, Side.SERVER, None),
        3: ("handshake_ack", CauseBy.KERNEL, Side.CLIENT, None),
        8: ("close_fin", CauseBy.CALL, Side.SERVER, "close"),
        9: ("fin_ack", CauseBy.KERNEL, Side.CLIENT, None),
        10: ("close_fin_after_peer", CauseBy.CALL, Side.CLIENT, "close"),
        11: ("fin_ack", CauseBy.KERNEL, Side.SERVER, None),
    }
    for no, (reason, by, side, call) in want.items():
        c = cause(cols, no)
        assert (c.reason, c.by, c.side, c.call) == (reason, by, side, call), no


def test_refused_connect_is_rst_no_listener(corpus: Path) -> None:
    # MANIFEST: connection refused: SYN answered by RST,ACK.
    cols, _ = causes(CORPUS / "pcapplusplus__one_tcp_rst.pcap")
    assert cause(cols, 1).reason == "connect_syn"
    c = cause(cols, 2)
    assert (c.reason, c.by, c.side) == ("rst_no_listener", CauseBy.KERNEL, Side.SERVER)


def test_ipv6_refused_on_loopback(corpus: Path) -> None:
    # MANIFEST (zeek__irc-353.pcap): IPv6 ::1 connection refused (SYN -> RST,ACK).
    path = CORPUS / "zeek__irc-353.pcap"
    cols, _ = causes(path)
    rows = tshark_fields(path, "ipv6.src", "tcp.flags.reset")
    rst = [i + 1 for i, (v6, r) in enumerate(rows) if v6 and r in YES]
    assert rst and all(cause(cols, no).reason == "rst_no_listener" for no in rst)


def test_split_handshake_simultaneous_open(corpus: Path) -> None:
    # MANIFEST: SYN / SYN / SYN,ACK / ACK; both ends sent a SYN without ACK.
    cols, _ = causes(CORPUS / "suricata-verify__split-handshake-4whs.pcap")
    assert cause(cols, 1).reason == "connect_syn"
    assert (cause(cols, 2).reason, cause(cols, 2).call) == ("simultaneous_open_syn", "connect")
    assert cause(cols, 3).reason == "simultaneous_open_synack"


def test_fin_then_reset(corpus: Path) -> None:
    # MANIFEST: client FIN, then RST,ACK and bare RST (FIN followed by abort).
    cols, _ = causes(CORPUS / "pcapplusplus__one_tcp_stream_fin_rst_close_packet.pcap")
    assert (cause(cols, 10).reason, cause(cols, 10).side) == ("close_fin", Side.CLIENT)
    # The client had already closed (FIN sent and acknowledged) when it reset.
    assert cause(cols, 12).reason == "rst_after_close"


def test_dns_query_is_sent_by_the_client(corpus: Path) -> None:
    # Protocol fact: the DNS server is the endpoint on port 53.
    path = CORPUS / "tcpdump__dns_udp.pcap"
    cols, _ = causes(path)
    rows = tshark_fields(path, "udp.srcport", "udp.dstport")
    for no, (sp, dp) in enumerate(rows, 1):
        c = cause(cols, no)
        assert (c.reason, c.by, c.call) == ("udp_datagram", CauseBy.CALL, "sendto")
        assert c.side is (Side.CLIENT if dp == "53" else Side.SERVER), (no, sp, dp, c.side)


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_causes_agree_with_tshark(path: Path) -> None:
    """Per frame, what tshark says about it implies our reason."""
    cols, an = causes(path)
    fields = (
        "frame.protocols", "tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset", "tcp.len",
        "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
        "tcp.analysis.spurious_retransmission", "tcp.analysis.duplicate_ack", "tcp.analysis.zero_window",
        "tcp.analysis.keep_alive", "tcp.analysis.keep_alive_ack", "tcp.analysis.zero_window_probe",
        "tcp.analysis.zero_window_probe_ack", "tcp.analysis.window_update", "icmp.type", "icmp.code",
    )
    rows = tshark_fields(path, *fields)
    assert len(rows) == len(cols.reason)
    for i, row in enumerate(rows):
        f = dict(zip(fields, row, strict=True))
        c = cause_at(cols, i)
        assert c.inferred
        top = f["frame.protocols"].split(":")
        if int(an.stream[i]) < 0 or int(an.direction[i]) < 0 or ("ip" not in top and "ipv6" not in top):
            if "ip" not in top and "ipv6" not in top:
                assert c.reason == "not_transport", (i + 1, c)
            continue
        tcp = f["tcp.flags.syn"] != "" and _first_transport(f["frame.protocols"]) == "tcp"
        if not tcp:
            continue
        syn, ack, fin, rst = (f[k] in YES for k in ("tcp.flags.syn", "tcp.flags.ack", "tcp.flags.fin",
                                                       "tcp.flags.reset"))
        length = int(f["tcp.len"] or 0)
        has = {k.split(".")[-1] for k in fields[6:16] if f[k]}
        if rst:
            assert c.reason.startswith("rst_"), (i + 1, c)
        elif syn and "retransmission" in has:
            # tshark also calls a simultaneous open's SYN-ACK a retransmission (it
            # repeats the sender's SYN); we name the handshake step instead.
            ok = ("syn_retransmission", "synack_retransmission", "simultaneous_open_synack")
            assert c.reason in ok, (i + 1, c)
        elif syn and not ack:
            assert c.reason in ("connect_syn", "simultaneous_open_syn", "syn_retransmission"), (i + 1, c)
            assert c.by is CauseBy.KERNEL or c.call == "connect"
        elif syn:
            assert c.reason in ("listen_queue_synack", "simultaneous_open_synack", "synack_retransmission")
            assert c.by is CauseBy.KERNEL
        elif fin:
            ok = ("close_fin", "close_fin_after_peer", "close_fin_ack", "simultaneous_close_fin",
                  "fin_retransmission", "send_data_fin")
            assert c.reason in ok, (i + 1, c)
        elif "keep_alive" in has:
            assert c.reason == "keep_alive", (i + 1, c)
        elif length > 0:
            if "zero_window_probe" in has:
                want = {"zero_window_probe"}
            elif "spurious_retransmission" in has:
                want = {"spurious_retransmission"}
            elif "fast_retransmission" in has:
                want = {"fast_retransmission"}
            elif "retransmission" in has:
                want = {"retransmission"}
            else:
                want = {"send_data"}
            assert c.reason in want | {"mid_stream"}, (i + 1, c, has)
            assert (c.by is CauseBy.CALL) == ("send_data" in want), (i + 1, c)
        elif ack:
            assert c.by is CauseBy.KERNEL, (i + 1, c)
            if "keep_alive_ack" in has:
                assert c.reason == "keep_alive_ack"
            elif "zero_window_probe_ack" in has:
                assert c.reason == "zero_window_probe_ack"
            elif c.reason not in ("handshake_ack", "fin_ack", "mid_stream"):
                for flag in ("zero_window", "window_update", "duplicate_ack"):
                    if flag in has:
                        assert c.reason == {"duplicate_ack": "dup_ack"}.get(flag, flag), (i + 1, c, has)
                        break
                else:
                    assert c.reason in ("data_ack", "retransmission"), (i + 1, c, has)
    # Sides: the sender of a stream's first SYN (no ACK) is its client.
    syn_rows = [i for i, r in enumerate(rows) if r[1] in YES and r[2] not in YES and r[4] not in YES]
    for i in syn_rows:
        if int(an.stream[i]) >= 0 and cause_at(cols, i).reason == "connect_syn":
            assert cause_at(cols, i).side is Side.CLIENT


def test_icmp_port_unreachable(corpus: Path) -> None:
    # MANIFEST (tcpdump__mpls-traceroute.pcap): ICMP time exceeded, final port unreachable.
    path = CORPUS / "tcpdump__mpls-traceroute.pcap"
    cols, _ = causes(path)
    # With occurrence=a, ip.src/ip.dst list the outer header, then the quoted one.
    rows = tshark_fields(path, "icmp.type", "icmp.code", "ip.src", "ip.dst")
    seen = set()
    for no, (ty, code, srcs, dsts) in enumerate(rows, 1):
        if not ty:
            continue
        src, quoted_dst = srcs.split(",")[0], dsts.split(",")[-1]
        c = cause(cols, no)
        assert c.by is CauseBy.KERNEL
        if (ty, code) == ("3", "3"):
            assert c.reason == "icmp_port_unreachable"
            # Sent by the destination host itself, i.e. the receiver of the datagram.
            assert src == quoted_dst
        else:
            assert c.reason == "icmp_error"
        seen.add(c.reason)
    assert seen == {"icmp_port_unreachable", "icmp_error"}


# --- the real kernel: programs whose calls we know --------------------------------


Row = tuple[str, str, Side, CauseBy, str | None]


def _reasons(r: KernelRun) -> list[Row]:
    """(sender address, flags, side, by, reason) per TCP packet of the run."""
    t = r.trace.packets
    out = []
    for i in range(len(t)):
        if t.proto[i] != PROTO_TCP:
            continue
        p = t.packet(i)
        c = Cause(
            by=CauseBy(int(r.an.cause_by[i])),
            side=Side(int(r.an.cause_side[i])),
            call=CALL_NAMES[int(r.an.cause_call[i])] or None,
            reason=REASONS[int(r.an.cause_reason[i])],
            inferred=bool(r.an.cause_inferred[i]),
        )
        out.append((p.src_ip or "", p.flags, c.side, c.by, c.reason))
    return out


def _first(rs: list[Row], flag: str, src: str) -> tuple[Side, str | None]:
    for s_ip, flags, side, _, reason in rs:
        if s_ip == src and flag in flags:
            return side, reason
    raise AssertionError(f"no {flag} from {src}: {rs}")


@pytest.mark.lab
def test_kernel_refused(lab: Lab, tmp_path: Path) -> None:
    # The client program exits 0 only if connect() raised ConnectionRefusedError.
    r = kernel_run(lab, tmp_path, None, "refused", port=5101)
    rs = _reasons(r)
    assert _first(rs, "S", CLIENT_IP) == (Side.CLIENT, "connect_syn")
    assert _first(rs, "R", SERVER_IP) == (Side.SERVER, "rst_no_listener")


@pytest.mark.lab
def test_kernel_client_closes_first(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "eof_close", "send_close", port=5102)
    rs = _reasons(r)
    assert _first(rs, "S", CLIENT_IP) == (Side.CLIENT, "connect_syn")
    assert _first(rs, "SA", SERVER_IP) == (Side.SERVER, "listen_queue_synack")
    assert _first(rs, "P", CLIENT_IP) == (Side.CLIENT, "send_data")
    assert _first(rs, "F", CLIENT_IP) == (Side.CLIENT, "close_fin")
    side, reason = _first(rs, "F", SERVER_IP)
    assert side is Side.SERVER and reason in ("close_fin_ack", "close_fin_after_peer")
    assert rs[-1][4] == "fin_ack" and rs[-1][0] == CLIENT_IP


@pytest.mark.lab
def test_kernel_server_closes_first(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "send_close", "read_close", port=5103)
    rs = _reasons(r)
    assert _first(rs, "F", SERVER_IP) == (Side.SERVER, "close_fin")
    assert _first(rs, "F", CLIENT_IP)[1] in ("close_fin_ack", "close_fin_after_peer")


@pytest.mark.lab
def test_kernel_linger_zero_is_an_abort(lab: Lab, tmp_path: Path) -> None:
    # The server program exits 0 only if recv() raised ConnectionResetError.
    r = kernel_run(lab, tmp_path, "until_reset", "linger0", port=5104)
    rs = _reasons(r)
    i = next(k for k, x in enumerate(rs) if "R" in x[1])
    assert rs[i][0] == CLIENT_IP
    assert (rs[i][2], rs[i][3], rs[i][4]) == (Side.CLIENT, CauseBy.CALL, "rst_abort")
    assert int(r.an.cause_call[np.flatnonzero(r.trace.packets.tcp_flags & 4)[0]]) == CALL_NAMES.index("close")


@pytest.mark.lab
def test_kernel_close_with_unread_data_is_an_abort(lab: Lab, tmp_path: Path) -> None:
    # The client program exits 0 only if its recv() raised ConnectionResetError.
    r = kernel_run(lab, tmp_path, "close_unread", "send_wait", port=5105)
    rs = _reasons(r)
    assert not any("F" in x[1] for x in rs)  # close() with unread data sends no FIN
    assert _first(rs, "R", SERVER_IP) == (Side.SERVER, "rst_abort")


@pytest.mark.lab
def test_kernel_simultaneous_close_reasons(lab: Lab, tmp_path: Path) -> None:
    r, mid, _ = simultaneous_close(lab, tmp_path, 5106)
    rs = _reasons(r)
    assert _first(rs, "F", CLIENT_IP) == (Side.CLIENT, "close_fin")
    # The server called close() before the client's FIN reached it: the FINs crossed.
    assert _first(rs, "F", SERVER_IP) == (Side.SERVER, "simultaneous_close_fin")
    fins = [x for x in rs if x[0] == CLIENT_IP and "F" in x[1]]
    assert len(fins) >= 2 and all(x[4] == "fin_retransmission" for x in fins[1:])
    assert mid  # ss was taken midway


@pytest.mark.lab
def test_kernel_simultaneous_open_reasons(lab: Lab, tmp_path: Path) -> None:
    # Both programs call connect(); neither calls listen().
    r = simultaneous_open(lab, tmp_path, 40200, 40201)
    rs = _reasons(r)
    syns = [x for x in rs if x[1] == "S"]
    assert [(x[0], x[4]) for x in syns[:2]] == [
        (CLIENT_IP, "connect_syn"),
        (SERVER_IP, "simultaneous_open_syn"),
    ]
    assert _first(rs, "SA", CLIENT_IP)[1] == "simultaneous_open_synack"
    assert all(x[4] != "listen_queue_synack" for x in rs)


@pytest.mark.lab
def test_kernel_half_close_reasons(lab: Lab, tmp_path: Path) -> None:
    # The client calls shutdown(SHUT_WR); the server sends "bye" after EOF, then close().
    r, _, _ = half_close(lab, tmp_path, 5107)
    rs = _reasons(r)
    assert _first(rs, "F", CLIENT_IP) == (Side.CLIENT, "close_fin")
    fin_at = next(i for i, x in enumerate(rs) if x[0] == CLIENT_IP and "F" in x[1])
    server_data = [x for x in rs[fin_at:] if x[0] == SERVER_IP and "P" in x[1]]
    assert server_data, rs
    # Data after the peer's FIN is still the server's send() (possibly with its FIN).
    assert server_data[0][4] in ("send_data", "send_data_fin") and server_data[0][3] is CauseBy.CALL
    assert _first(rs, "F", SERVER_IP)[1] in ("close_fin_after_peer", "close_fin_ack", "send_data_fin")
