"""The RFC 9293 state machine: the table itself, documented captures, the real kernel.

Oracles: RFC 9293 figure 5 (the table), the facts the corpus MANIFEST states about
each capture (which side sent which FIN/RST), tshark (which frames are SYN, FIN,
RST, and tcp.completeness), and Linux itself: real sockets in two network
namespaces, captured with tcpdump, compared with ``ss`` taken right after.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from conftest import CAPTURES, CORPUS, corpus_files, corpus_manifest, examples, tshark_fields
from helpers.kernel import (
    half_close,
    kernel_run,
    simultaneous_close,
    simultaneous_open,
)
from tracer.core.analysis import Analysis
from tracer.core.attribution import infer_causes
from tracer.core.model import ACK, FIN, PROTO_TCP, PSH, RST, SYN, TcpState
from tracer.core.pipeline import analyze
from tracer.core.reasons import REASONS
from tracer.core.seq_analysis import analyze_tcp
from tracer.core.streams import assign_streams
from tracer.core.table import COLUMNS, PacketTable
from tracer.core.tcp_states import (
    _NOOP,
    TRANSITIONS,
    Event,
    _event_matrix,
    _event_positions,
    control_marks,
    initial_states,
    next_state,
    track_states,
    track_states_reference,
    walk,
)
from tracer.core.trace import Trace
from tracer.lab.netns import CLIENT_IP, SERVER_IP, Lab
from tracer.pcap.reader import read_capture

pytestmark = pytest.mark.tshark

S = TcpState
E = Event

# --- the table against RFC 9293 figure 5 ------------------------------------------

# Every arrow of figure 5 that the wire can show, as (from, event, to).
FIGURE_5 = [
    (S.CLOSED, E.SND_SYN, S.SYN_SENT),  # active OPEN / snd SYN
    (S.LISTEN, E.RCV_SYN, S.SYN_RECEIVED),  # rcv SYN / snd SYN,ACK
    (S.SYN_SENT, E.RCV_SYN, S.SYN_RECEIVED),  # rcv SYN / snd SYN,ACK (simultaneous open)
    (S.SYN_SENT, E.RCV_SYN_ACK, S.ESTABLISHED),  # rcv SYN,ACK / snd ACK
    (S.SYN_RECEIVED, E.RCV_ACK_OF_SYN, S.ESTABLISHED),  # rcv ACK of SYN
    (S.SYN_RECEIVED, E.SND_FIN, S.FIN_WAIT_1),  # CLOSE / snd FIN
    (S.ESTABLISHED, E.SND_FIN, S.FIN_WAIT_1),  # CLOSE / snd FIN
    (S.ESTABLISHED, E.RCV_FIN, S.CLOSE_WAIT),  # rcv FIN / snd ACK
    (S.FIN_WAIT_1, E.RCV_ACK_OF_FIN, S.FIN_WAIT_2),  # rcv ACK of FIN
    (S.FIN_WAIT_1, E.RCV_FIN, S.CLOSING),  # rcv FIN / snd ACK (simultaneous close)
    (S.FIN_WAIT_1, E.RCV_FIN_ACK_OF_FIN, S.TIME_WAIT),  # rcv FIN, ACK of FIN
    (S.FIN_WAIT_2, E.RCV_FIN, S.TIME_WAIT),  # rcv FIN / snd ACK
    (S.CLOSING, E.RCV_ACK_OF_FIN, S.TIME_WAIT),  # rcv ACK of FIN
    (S.CLOSE_WAIT, E.SND_FIN, S.LAST_ACK),  # CLOSE / snd FIN
    (S.LAST_ACK, E.RCV_ACK_OF_FIN, S.CLOSED),  # rcv ACK of FIN
]


@pytest.mark.parametrize(("src", "event", "dst"), FIGURE_5)
def test_figure_5_arrow(src: TcpState, event: Event, dst: TcpState) -> None:
    assert TRANSITIONS[(src, event)] is dst


def test_rst_closes_every_state_but_listen() -> None:
    # RFC 9293 §3.10.7: a RST is ignored in LISTEN and aborts every other state.
    for st in TcpState:
        assert TRANSITIONS[(st, E.SND_RST)] is S.CLOSED
        want = S.LISTEN if st is S.LISTEN else S.CLOSED
        assert TRANSITIONS[(st, E.RCV_RST)] is want


def test_rst_in_passive_syn_received_returns_to_listen() -> None:
    # RFC 9293 §3.10.7.4: "If this connection was initiated with a passive OPEN (i.e.,
    # came from the LISTEN state), then return this connection to LISTEN state".
    assert next_state(S.SYN_RECEIVED, E.RCV_RST, passive=True) is S.LISTEN
    assert next_state(S.SYN_RECEIVED, E.RCV_RST, passive=False) is S.CLOSED


def test_retransmitted_syn_and_fin_change_nothing() -> None:
    assert next_state(S.SYN_SENT, E.SND_SYN) is S.SYN_SENT
    for st in (S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT, S.LAST_ACK):
        assert next_state(st, E.SND_FIN) is st
    for st in (S.CLOSE_WAIT, S.LAST_ACK, S.TIME_WAIT, S.CLOSING):
        assert next_state(st, E.RCV_FIN) is st


# --- documented captures --------------------------------------------------------


@dataclass
class Run:
    """A capture analysed end to end, with the client/server endpoint of stream 0."""

    trace: Trace
    an: Analysis

    def states(self, no: int) -> tuple[TcpState, TcpState]:
        """(state of a, state of b) after frame ``no`` (1-based)."""
        return TcpState(int(self.an.state_a[no - 1])), TcpState(int(self.an.state_b[no - 1]))

    def by_ip(self, no: int, ip: str) -> TcpState:
        """State after frame ``no`` of the endpoint with address ``ip`` in that frame's stream."""
        info = self.an.tcp_streams[int(self.an.stream[no - 1])]
        sa, sb = self.states(no)
        if info.a.rsplit(":", 1)[0].strip("[]") == ip:
            return sa
        assert info.b.rsplit(":", 1)[0].strip("[]") == ip
        return sb


def run(name: str) -> Run:
    tr = read_capture(CORPUS / name)
    return Run(tr, analyze(tr))


def test_whois_server_closes_first(corpus: Path) -> None:
    # MANIFEST: server sends FIN,ACK (frame 8), client ACKs and sends FIN (frame 10),
    # server ACKs (frame 11).  tshark tells which address is which.
    assert "server sends FIN,ACK (frame 8)" in corpus_manifest()["tcpdump__whois.pcap"]["notes"]
    rows = tshark_fields(CORPUS / "tcpdump__whois.pcap", "ip.src", "tcp.flags.str")
    client = rows[0][0]  # frame 1 is the SYN
    server = rows[1][0]
    assert "F" in rows[7][1] and rows[7][0] == server
    r = run("tcpdump__whois.pcap")
    # The server is LISTEN until it answers the SYN (rcv SYN / snd SYN,ACK).
    assert (r.by_ip(1, client), r.by_ip(1, server)) == (S.SYN_SENT, S.LISTEN)
    assert (r.by_ip(2, client), r.by_ip(2, server)) == (S.ESTABLISHED, S.SYN_RECEIVED)
    assert (r.by_ip(3, client), r.by_ip(3, server)) == (S.ESTABLISHED, S.ESTABLISHED)
    assert (r.by_ip(8, server), r.by_ip(8, client)) == (S.FIN_WAIT_1, S.CLOSE_WAIT)
    assert r.by_ip(9, server) is S.FIN_WAIT_2  # the client's ACK of the server's FIN
    assert (r.by_ip(10, server), r.by_ip(10, client)) == (S.TIME_WAIT, S.LAST_ACK)
    # The active closer ends in TIME-WAIT, the passive closer in CLOSED.
    assert (r.by_ip(11, server), r.by_ip(11, client)) == (S.TIME_WAIT, S.CLOSED)


def test_three_packet_close_goes_straight_to_time_wait(corpus: Path) -> None:
    # print-flags: client FIN (8), server FIN+ACK acknowledging it (9), client ACK (10).
    rows = tshark_fields(CORPUS / "tcpdump__print-flags.pcap", "tcp.srcport", "tcp.flags.str", "tcp.ack")
    assert "F" in rows[7][1] and "F" in rows[8][1] and rows[7][0] != rows[8][0]
    r = run("tcpdump__print-flags.pcap")
    sa, sb = r.states(8)  # a is the client (it sent the SYN)
    assert (sa, sb) == (S.FIN_WAIT_1, S.CLOSE_WAIT)
    assert r.states(9) == (S.TIME_WAIT, S.LAST_ACK)  # FIN_WAIT_1 --rcv FIN,ACK of FIN--> TIME_WAIT
    assert r.states(10) == (S.TIME_WAIT, S.CLOSED)


def test_refused_connection(corpus: Path) -> None:
    # MANIFEST: connection refused: SYN answered by RST,ACK.
    r = run("pcapplusplus__one_tcp_rst.pcap")
    assert r.states(1)[0] is S.SYN_SENT
    assert r.states(2) == (S.CLOSED, S.CLOSED)
    assert S.SYN_RECEIVED not in r.states(1)  # nobody listened, so nobody was half-open


def test_split_handshake_is_a_simultaneous_open(corpus: Path) -> None:
    # MANIFEST: SYN / SYN / SYN,ACK / ACK ... ends with RST.
    rows = tshark_fields(CORPUS / "suricata-verify__split-handshake-4whs.pcap", "ip.src", "tcp.flags.str")
    assert [f.strip("·") for _, f in rows[:4]] == ["S", "S", "A··S", "A"]
    client, server = rows[0][0], rows[1][0]
    r = run("suricata-verify__split-handshake-4whs.pcap")
    assert r.by_ip(1, client) is S.SYN_SENT
    assert r.by_ip(2, client) is S.SYN_RECEIVED  # SYN_SENT --rcv SYN--> SYN_RECEIVED
    assert r.by_ip(2, server) is S.SYN_SENT
    assert r.by_ip(3, server) is S.ESTABLISHED
    assert (r.by_ip(4, client), r.by_ip(4, server)) == (S.ESTABLISHED, S.ESTABLISHED)
    assert r.states(len(rows)) == (S.CLOSED, S.CLOSED)


def test_fin_then_abort(corpus: Path) -> None:
    # MANIFEST: client FIN, then RST,ACK and bare RST.
    r = run("pcapplusplus__one_tcp_stream_fin_rst_close_packet.pcap")
    assert r.states(10) == (S.FIN_WAIT_1, S.CLOSE_WAIT)
    assert r.states(11) == (S.FIN_WAIT_2, S.CLOSE_WAIT)
    assert r.states(12) == (S.CLOSED, S.CLOSED)


def test_mid_stream_connection_is_inferred_established(corpus: Path) -> None:
    # MANIFEST (dpkt__http.pcap): the port-3371 conversation starts mid-stream.
    r = run("dpkt__http.pcap")
    rows = tshark_fields(CORPUS / "dpkt__http.pcap", "tcp.stream", "tcp.srcport", "tcp.dstport")
    nos = [i + 1 for i, (st, sp, dp) in enumerate(rows) if "3371" in (sp, dp)]
    assert nos
    for no in nos:
        assert r.states(no) == (S.ESTABLISHED, S.ESTABLISHED)


def test_retransmitted_fins_close_once(corpus: Path) -> None:
    # ssh-dups: every segment appears up to 4 times, the FINs too; still one close.
    path = CORPUS / "zeek__tcp__ssh-dups.pcap"
    rows = tshark_fields(path, "tcp.flags.fin", "tcp.srcport")
    fins = [i for i, (f, _) in enumerate(rows) if f in ("1", "True")]
    assert len(fins) > 2  # duplicated FINs really are there
    first_sender = rows[fins[0]][1]
    r = run("zeek__tcp__ssh-dups.pcap")
    info = r.an.tcp_streams[0]
    a_port = info.a.rsplit(":", 1)[1]
    active, passive = (0, 1) if a_port == first_sender else (1, 0)
    final = r.states(len(rows))
    assert final[active] is S.TIME_WAIT and final[passive] is S.CLOSED
    # The state never goes backwards once the close started.
    after = [r.states(i + 1)[active] for i in range(fins[0], len(rows))]
    order = [S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT]
    assert all(order.index(x) <= order.index(y) for x, y in itertools.pairwise(after))


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_corpus_final_states_agree_with_tshark_completeness(path: Path) -> None:
    """RST seen → nobody is left synchronised; no SYN → no handshake states."""
    tr = read_capture(path)
    t = tr.packets
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    sa, sb = track_states(t, s, a)
    ra, rb = track_states_reference(t, s, a)
    assert (sa == ra).all() and (sb == rb).all()
    for steps in (0, 3):  # the Python remainder of streams with many event rows
        xa, xb = track_states(t, s, a, vector_steps=steps)
        assert (xa == ra).all() and (xb == rb).all()
    non_tcp = t.proto != PROTO_TCP
    assert (sa[non_tcp] == -1).all() and (sb[non_tcp] == -1).all()
    ts = tshark_fields(
        path, "tcp.stream", "tcp.completeness", "tcp.flags.reset", "tcp.flags.syn", "tcp.flags.ack",
        "tcp.srcport", "tcp.ack", "tcp.flags.fin",
    )
    yes = ("1", "True")
    for st in range(len(s.tcp_streams)):
        idx = np.flatnonzero(~non_tcp & (s.stream == st)).tolist()
        assert len({ts[i][0] for i in idx}) == 1  # tshark groups these frames the same way
        comp = int(ts[idx[-1]][1] or 0)
        final = {TcpState(int(sa[idx[-1]])), TcpState(int(sb[idx[-1]]))}
        first = {TcpState(int(sa[idx[0]])), TcpState(int(sb[idx[0]]))}
        last_rst = max((i for i in idx if ts[i][2] in yes), default=-1)
        if last_rst >= 0:
            # tcp.completeness bit 32 = RST seen; after the last RST both are closed
            # (or back in LISTEN).
            assert comp & 32, (st, comp)
            after = {TcpState(int(sa[last_rst])), TcpState(int(sb[last_rst]))}
            assert after <= {S.CLOSED, S.LISTEN}, (st, after)
        if not comp & 1 and not comp & 2:  # neither SYN nor SYN-ACK captured
            assert first <= {S.UNKNOWN, S.ESTABLISHED, S.FIN_WAIT_1, S.CLOSE_WAIT, S.CLOSED}, first
            assert S.SYN_SENT not in final and S.SYN_RECEIVED not in final
        if ts[idx[0]][3] in yes and ts[idx[0]][4] not in yes:
            assert TcpState(int(sa[idx[0]])) is S.SYN_SENT  # the opener after its SYN
            # Handshake seen (completeness bits 1, 2, 4): after the opener's first
            # plain ACK of the SYN-ACK (tshark tcp.ack == 1) both are ESTABLISHED.
            opener = ts[idx[0]][5]
            third = [i for i in idx if ts[i][5] == opener and ts[i][3] not in yes and ts[i][4] in yes
                     and ts[i][6] == "1" and ts[i][2] not in yes and ts[i][7] not in yes]
            if comp & 7 == 7 and third:
                both = {TcpState(int(sa[third[0]])), TcpState(int(sb[third[0]]))}
                assert both == {S.ESTABLISHED}, (st, third[0] + 1, both)


@pytest.mark.slow
@pytest.mark.parametrize(
    "path", [*corpus_files(), *sorted(CAPTURES.glob("*.pcap*"))], ids=lambda p: p.name
)
def test_event_matrix_is_the_twin_of_walk(path: Path) -> None:
    """``_event_matrix`` (events as columns) against ``walk`` (the readable reference).

    Each event row's sender and receiver events, applied in slot order with
    ``next_state`` alone, give exactly the states ``walk`` reaches after that row.
    """
    t = read_capture(path).packets
    s = assign_streams(t)
    m = control_marks(t, s, analyze_tcp(t, s))
    ref_a, ref_b, ref_pos = walk(m)
    init, passive = initial_states(m)
    pos = _event_positions(m)
    snd, rcv = _event_matrix(m, passive, pos)
    assert np.array_equal(pos, ref_pos)
    state = [TcpState(int(v)) for v in init.tolist()]
    for j, k in enumerate(m.key[pos].tolist()):
        for who, slots in ((k, snd[j]), (k ^ 1, rcv[j])):
            for ev in slots.tolist():
                if ev != _NOOP:
                    state[who] = next_state(state[who], Event(ev), bool(passive[who]))
        got = (state[k & ~1], state[k | 1])
        assert got == (ref_a[j], ref_b[j]), (path.name, int(m.rows[pos[j]]) + 1)


@pytest.mark.parametrize(
    "name",
    [
        "zeek__http__206_example_b.pcap",  # two long connections per replica
        "tcpdump__whois.pcap",  # one 11-packet connection per replica: ~91k streams
    ],
)
def test_vectorised_walk_on_a_million_rows_matches_each_replica(name: str) -> None:
    """1M rows of a real capture replicated: every replica goes exactly like the original.

    (Speed is measured by ``bench/``, not asserted here.)
    """
    t = read_capture(CORPUS / name).packets
    reps = 1_000_000 // len(t) + 1
    big = _replicate(t, reps)
    s = assign_streams(big)
    a = analyze_tcp(big, s)
    assert len(big) >= 1_000_000 and len(s.tcp_streams) == reps * len(assign_streams(t).tcp_streams)
    m = control_marks(big, s, a)
    sa, sb = track_states(big, s, a, marks=m)
    causes = infer_causes(big, s, a, sa, sb, marks=m)
    s1 = assign_streams(t)
    a1 = analyze_tcp(t, s1)
    small_a, small_b = track_states(t, s1, a1)
    small_causes = infer_causes(t, s1, a1, small_a, small_b)
    assert (sa.reshape(reps, -1) == small_a).all() and (sb.reshape(reps, -1) == small_b).all()
    assert (causes.reason.reshape(reps, -1) == small_causes.reason).all()
    assert (causes.side.reshape(reps, -1) == small_causes.side).all()


def _replicate(t: PacketTable, reps: int) -> PacketTable:
    """``t`` repeated ``reps`` times, each copy with its own client address and port.

    The client side is the endpoint with the higher port.
    """
    n = len(t)
    cols = {name: np.tile(getattr(t, name), reps) for name, _ in COLUMNS}
    rep = np.repeat(np.arange(reps, dtype=np.int64), n)
    hi_is_src = cols["sport"] > cols["dport"]
    port = np.where(hi_is_src, cols["sport"], cols["dport"]).astype(np.int64)
    port = 1024 + (port - 1024 + (rep % 4000) * 3) % 64512
    addr = np.where(hi_is_src, cols["src"], cols["dst"]).astype(np.int64)
    groups = int(rep[-1]) // 4000 + 1
    addr = np.where(rep >= 4000, len(t.addresses) + rep // 4000 - 1, addr)
    cols["sport"] = np.where(hi_is_src, port, cols["sport"]).astype(np.int32)
    cols["dport"] = np.where(~hi_is_src, port, cols["dport"]).astype(np.int32)
    cols["src"] = np.where(hi_is_src, addr, cols["src"]).astype(np.int32)
    cols["dst"] = np.where(~hi_is_src, addr, cols["dst"]).astype(np.int32)
    extra = tuple(f"10.250.{g // 256}.{g % 256}" for g in range(groups))
    return replace(
        t, **cols, addresses=t.addresses + extra, sack_blocks={}, icmp_quotes={}, comments={}, decode_notes={}
    )


# --- the real kernel as the oracle ------------------------------------------------


@pytest.mark.lab
def test_kernel_client_closes_first(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "eof_close", "send_close", port=5001)
    assert r.final() == r.kernel()
    assert sorted(r.kernel().values()) == sorted([S.TIME_WAIT, S.CLOSED])
    client = next(ep for ep in r.final() if ep.startswith(CLIENT_IP))
    assert r.final()[client] is S.TIME_WAIT


@pytest.mark.lab
def test_kernel_server_closes_first(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "send_close", "read_close", port=5002)
    assert r.final() == r.kernel()
    server = next(ep for ep in r.final() if ep.startswith(SERVER_IP))
    assert r.final()[server] is S.TIME_WAIT


@pytest.mark.lab
def test_kernel_refused_connect(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, None, "refused", port=5003)
    assert r.final() == r.kernel() == dict.fromkeys(r.final(), S.CLOSED)


@pytest.mark.lab
def test_kernel_linger_zero_abort(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "until_reset", "linger0", port=5004)
    assert r.final() == r.kernel() == dict.fromkeys(r.final(), S.CLOSED)
    states = set(r.an.state_a.tolist()) | set(r.an.state_b.tolist())
    assert int(S.TIME_WAIT) not in states  # an abort skips TIME-WAIT


@pytest.mark.lab
def test_kernel_close_with_unread_data_resets(lab: Lab, tmp_path: Path) -> None:
    r = kernel_run(lab, tmp_path, "close_unread", "send_wait", port=5005)
    assert r.final() == r.kernel() == dict.fromkeys(r.final(), S.CLOSED)


@pytest.mark.lab
def test_kernel_simultaneous_close(lab: Lab, tmp_path: Path) -> None:
    r, mid, mid_ns = simultaneous_close(lab, tmp_path, 5006)
    client = next(ep for ep in r.final() if ep.startswith(CLIENT_IP))
    server = next(ep for ep in r.final() if ep.startswith(SERVER_IP))
    # Midway the kernel shows the crossing: the client got the server's FIN in
    # FIN-WAIT-1 (→ CLOSING), the server got the ACK of its FIN (→ FIN-WAIT-2).
    assert r.kernel(mid) == {client: S.CLOSING, server: S.FIN_WAIT_2}
    assert r.at(mid_ns) == r.kernel(mid)
    assert r.kernel() == dict.fromkeys(r.kernel(), S.TIME_WAIT)
    assert r.final() == r.kernel()


@pytest.mark.lab
def test_kernel_simultaneous_open(lab: Lab, tmp_path: Path) -> None:
    r = simultaneous_open(lab, tmp_path, 40100, 40101)
    assert r.kernel() == dict.fromkeys(r.kernel(), S.ESTABLISHED)
    assert r.final() == r.kernel()
    # The client received the server's SYN while in SYN-SENT: SYN_RECEIVED (figure 5).
    client_is_a = r.an.tcp_streams[0].a.startswith(CLIENT_IP)
    client_states = set((r.an.state_a if client_is_a else r.an.state_b).tolist())
    assert int(S.SYN_RECEIVED) in client_states


# --- any input: no exception, and figure 5's reachability facts ---------------------

_FLAG_CHOICES = [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, FIN | PSH | ACK, 0]


def _table(pkts: list[tuple[int, int, int, int, int, int]]) -> PacketTable:
    """Rows (client port index, from server?, flags, seq offset, ack offset, length)."""
    n = len(pkts)
    cols = {name: np.full(n, -1, dtype=dt) for name, dt in COLUMNS}
    for name in ("ts_ns", "iface", "linktype", "caplen", "wirelen", "frame_off", "proto", "tcp_flags",
                 "payload_len", "window", "icmp_type", "icmp_code"):
        cols[name][:] = 0
    cols["sack_perm"][:] = False
    cols["ip_version"][:] = 4
    cols["ts_ns"][:] = np.arange(n)
    for i, (cp, from_server, fl, so, ao, ln) in enumerate(pkts):
        c, srv = 40000 + cp, 80
        cols["src"][i], cols["dst"][i] = (1, 0) if from_server else (0, 1)
        cols["sport"][i], cols["dport"][i] = (srv, c) if from_server else (c, srv)
        cols["tcp_flags"][i] = fl
        base_s, base_r = (5000, 1000) if from_server else (1000, 5000)
        cols["seq"][i] = base_s + so
        cols["ack"][i] = base_r + ao if fl & ACK else 0
        cols["payload_len"][i] = ln
    return PacketTable(**cols, addresses=("10.0.0.1", "10.0.0.2"))  # type: ignore[arg-type]


@settings(max_examples=examples(300), deadline=None)
@given(hs.lists(hs.tuples(hs.integers(0, 2), hs.booleans(), hs.sampled_from(_FLAG_CHOICES),
                          hs.integers(0, 3), hs.integers(0, 3), hs.sampled_from([0, 0, 1, 5])),
                min_size=1, max_size=25))
def test_any_packet_sequence(pkts: list[tuple[int, int, int, int, int, int]]) -> None:
    t = _table(pkts)
    s = assign_streams(t)
    a = analyze_tcp(t, s)
    sa, sb = track_states(t, s, a)
    ra, rb = track_states_reference(t, s, a)  # the plain row-by-row walk agrees
    assert (sa == ra).all() and (sb == rb).all()
    xa, xb = track_states(t, s, a, vector_steps=2)
    assert (xa == ra).all() and (xb == rb).all()
    cols = infer_causes(t, s, a, sa, sb)
    assert set(cols.reason.tolist()) <= set(range(len(REASONS)))
    sent_fin: dict[tuple[int, int], bool] = {}
    got_fin: dict[tuple[int, int], bool] = {}
    for i in range(len(t)):
        st_, d = int(s.stream[i]), int(s.direction[i])
        fl = int(t.tcp_flags[i])
        states = (TcpState(int(sa[i])), TcpState(int(sb[i])))
        if fl & FIN and not fl & (SYN | RST):
            sent_fin[(st_, d)] = True
            got_fin[(st_, 1 - d)] = True
        if fl & RST:
            assert set(states) <= {S.CLOSED, S.LISTEN}
        for e, state in enumerate(states):
            # Figure 5: only an endpoint that sent a FIN can be in these states ...
            if state in (S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSING, S.TIME_WAIT, S.LAST_ACK):
                assert sent_fin.get((st_, e)), (i, e, state)
            # ... and only one that got the peer's FIN in these.
            if state in (S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK):
                assert got_fin.get((st_, e)), (i, e, state)


@pytest.mark.lab
def test_kernel_half_close(lab: Lab, tmp_path: Path) -> None:
    """shutdown(SHUT_WR): midway FIN-WAIT-2 / CLOSE-WAIT, and data still flows back."""
    r, mid, mid_ns = half_close(lab, tmp_path, 5007)
    client = next(ep for ep in r.final() if ep.startswith(CLIENT_IP))
    server = next(ep for ep in r.final() if ep.startswith(SERVER_IP))
    assert r.kernel(mid) == {client: S.FIN_WAIT_2, server: S.CLOSE_WAIT}
    assert r.at(mid_ns) == r.kernel(mid)
    assert r.kernel() == {client: S.TIME_WAIT, server: S.CLOSED}
    assert r.final() == r.kernel()
