"""Causes from the kernel witness: the rules table on hand-built origins (pure), and the
issue-12 cases on the real kernel (``lab``): each packet's cause is what its sender's
kernel stack says, not what a time window or the wire rules guess.

The real-kernel tests run the catalogue's scenarios and ``tracer trace`` of C and
Python programs in fresh labs, read the saved pcapng back (the account travels in
it) and check the analysis against the kernel's own origin of each frame.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from tracer.core.analysis import Analysis
from tracer.core.kernel_causes import kernel_call_times, kernel_reason, reason_agreement
from tracer.core.model import ACK, FIN, PSH, RST, SYN, CauseBy, CauseSource, SocketCall
from tracer.core.pipeline import analyze
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.core.trace import Trace
from tracer.core.witness import KernelAccount, PacketOrigin
from tracer.lab.run import run_scenario
from tracer.lab.scenarios import find_scenario
from tracer.lab.trace_cmd import trace_programs
from tracer.pcap.reader import read_capture

PY = sys.executable
C_DIR = REPO / "tests" / "c"


def origin(
    kind: str, what: str, action: str, *stack: str, packet_no: int = 1, tid: int = 0, t_ns: int = 0
) -> PacketOrigin:
    return PacketOrigin(packet_no, kind, what, action, tid, "p", tuple(stack), t_ns)


# --- the rules table (pure) ------------------------------------------------------------------

DATA, PURE = ACK | PSH, ACK
RULE_CASES = [
    # (origin, flags, payload, wire rules' reason, flags of the segment answered) -> reason
    (origin("call", "connect", "syn", "tcp_connect"), SYN, 0, "connect_syn", 0, "connect_syn"),
    (
        origin("call", "connect", "syn", "tcp_connect"),
        SYN,
        0,
        "simultaneous_open_syn",
        0,
        "simultaneous_open_syn",
    ),
    (origin("call", "connect", "syn", "tcp_connect"), SYN, 0, "syn_retransmission", 0, "connect_syn"),
    (origin("timer", "retransmit", "retransmit"), SYN, 0, "connect_syn", 0, "syn_retransmission"),
    (origin("timer", "synack", "synack"), SYN | ACK, 0, "synack_retransmission", 0, "synack_retransmission"),
    (
        origin("receive", "tcp", "synack", "tcp_v4_send_synack", "tcp_check_req"),
        SYN | ACK,
        0,
        "synack_retransmission",
        0,
        "synack_resent_for_syn",
    ),
    (
        origin("receive", "tcp", "synack", "tcp_v4_send_synack", "tcp_conn_request"),
        SYN | ACK,
        0,
        "listen_queue_synack",
        0,
        "listen_queue_synack",
    ),
    (origin("call", "sendto", "data", "tcp_write_xmit"), DATA, 5, "send_data", 0, "send_data"),
    (origin("call", "write", "data", "tcp_write_xmit"), DATA, 5, "retransmission", 0, "send_data"),
    (origin("call", "close", "data", "__tcp_close"), FIN | ACK, 0, "close_fin_ack", 0, "close_fin_ack"),
    (origin("call", "close", "data", "__tcp_close"), FIN | ACK, 0, "fin_retransmission", 0, "close_fin"),
    (origin("call", "shutdown", "data"), FIN | ACK, 0, "close_fin", 0, "close_fin"),
    (origin("exit", "exit", "data", "do_exit"), FIN | ACK, 0, "close_fin", 0, "exit_fin"),
    (origin("exit", "exit", "rst", "tcp_send_active_reset"), RST | ACK, 0, "rst_abort", 0, "exit_rst"),
    (
        origin("call", "close", "rst", "tcp_send_active_reset"),
        RST | ACK,
        0,
        "rst_after_close",
        0,
        "rst_abort",
    ),
    (
        origin("call", "close", "rst", "tcp_send_active_reset", "inet_child_forget", "inet_csk_listen_stop"),
        RST | ACK,
        0,
        "rst_abort",
        0,
        "rst_listener_closed",
    ),
    (
        origin("receive", "tcp", "rst_reply", "tcp_v4_send_reset"),
        RST,
        0,
        "rst_no_listener",
        0,
        "rst_no_listener",
    ),
    (
        origin("timer", "delayed_ack", "unknown", "tcp_delack_timer_handler"),
        PURE,
        0,
        "fin_ack",
        0,
        "delayed_ack",
    ),
    (origin("timer", "retransmit", "retransmit"), DATA, 100, "retransmission", 0, "rto_retransmission"),
    (
        origin("timer", "retransmit", "retransmit"),
        FIN | ACK,
        0,
        "fin_retransmission",
        0,
        "fin_retransmission",
    ),
    (origin("timer", "loss_probe", "loss_probe"), DATA, 100, "retransmission", 0, "tail_loss_probe"),
    (origin("timer", "probe", "window_probe"), PURE, 0, "keep_alive", 0, "zero_window_probe"),
    (origin("timer", "keepalive", "window_probe"), PURE, 0, "keep_alive", 0, "keep_alive"),
    (
        origin("receive", "tcp", "data", "tcp_write_xmit", "tcp_rcv_established"),
        DATA,
        40,
        "send_data",
        0,
        "data_released_by_ack",
    ),
    (
        origin("receive", "tcp", "data", "tcp_write_xmit"),
        FIN | DATA,
        40,
        "send_data_fin",
        0,
        "data_released_by_ack",
    ),
    # A bare FIN close() queued behind unacknowledged data, sent when the ACK came: still close()'s.
    (origin("receive", "tcp", "data", "tcp_write_xmit"), FIN | ACK, 0, "close_fin", 0, "close_fin"),
    (origin("timer", "retransmit", "retransmit"), FIN | DATA, 10, "retransmission", 0, "rto_retransmission"),
    (
        origin("receive", "tcp", "retransmit", "tcp_xmit_retransmit_queue", "tcp_ack"),
        DATA,
        488,
        "fast_retransmission",
        0,
        "fast_retransmission",
    ),
    (
        origin("receive", "tcp", "ack_reply", "tcp_v4_send_ack", "tcp_v4_rcv"),
        PURE,
        0,
        "fin_ack",
        0,
        "time_wait_ack",
    ),
    (
        origin("receive", "tcp", "ack_reply", "tcp_v4_send_ack", "tcp_v4_reqsk_send_ack", "tcp_check_req"),
        PURE,
        0,
        "dup_ack",
        0,
        "dup_ack",
    ),
    (
        origin("receive", "tcp", "unknown", "tcp_validate_incoming"),
        PURE,
        0,
        "dup_ack",
        SYN | ACK,
        "challenge_ack",
    ),
    (
        origin("receive", "tcp", "unknown", "tcp_validate_incoming"),
        PURE,
        0,
        "zero_window_probe_ack",
        PURE,
        "zero_window_probe_ack",
    ),
    (origin("receive", "tcp", "unknown", "tcp_validate_incoming"), PURE, 0, "data_ack", DATA, "dup_ack"),
    (
        origin("call", "recvfrom", "unknown", "tcp_recvmsg_locked"),
        PURE,
        0,
        "window_update",
        0,
        "window_update_by_recv",
    ),
    (
        origin("call", "recvfrom", "unknown", "release_sock", "tcp_recvmsg"),
        PURE,
        0,
        "zero_window",
        0,
        "zero_window",
    ),  # a segment from the backlog, answered as recv() released the socket
    (origin("receive", "tcp", "unknown", "tcp_rcv_established"), PURE, 0, "data_ack", 0, "data_ack"),
    (
        origin("receive", "tcp", "unknown", "tcp_rcv_state_process", "__release_sock"),
        PURE,
        0,
        "handshake_ack",
        0,
        "handshake_ack",
    ),
]


@pytest.mark.parametrize(("o", "flags", "payload", "inferred", "answered", "want"), RULE_CASES)
def test_rules_table(
    o: PacketOrigin, flags: int, payload: int, inferred: str, answered: int, want: str
) -> None:
    assert kernel_reason(o, flags, payload, inferred, answered) == want


def test_new_reasons_are_appended() -> None:
    new = (
        "delayed_ack",
        "rto_retransmission",
        "tail_loss_probe",
        "data_released_by_ack",
        "exit_fin",
        "exit_rst",
        "rst_listener_closed",
        "time_wait_ack",
        "window_update_by_recv",
        "challenge_ack",
        "synack_resent_for_syn",
    )
    assert REASONS[REASONS.index("mid_stream") + 1 :] == new


# --- the account applied to a real capture with hand-built origins (pure) --------------------


@pytest.fixture(scope="module")
def hello() -> Trace:
    """tracer's own two-host hello run (captures/hello.pcapng: 10 packets, 14 calls)."""
    return read_capture(REPO / "captures" / "hello.pcapng")


def _call(trace: Trace, cid: int) -> SocketCall:
    return next(c for c in trace.calls if c.id == cid)


def _with(trace: Trace, *origins: PacketOrigin) -> Analysis:
    return analyze(dataclasses.replace(trace, kernel=KernelAccount(origins=origins)))


def test_origin_ties_to_the_threads_call_not_a_time_window(hello: Trace) -> None:
    connect = next(c for c in hello.calls if c.call == "connect")
    assert connect.t_exit_ns is not None
    late = connect.t_exit_ns + 3_000_000  # queued 3 ms after connect() returned: outside its window
    a = _with(hello, origin("call", "connect", "syn", "tcp_connect", tid=connect.tid, t_ns=late))
    assert (REASONS[int(a.cause_reason[0])], int(a.cause_call_id[0])) == ("connect_syn", connect.id)
    assert int(a.cause_source[0]) == CauseSource.KERNEL and not a.cause_inferred[0]
    # Another thread's connect() is never taken, however near in time.
    a = _with(
        hello,
        origin("call", "connect", "syn", "tcp_connect", tid=connect.tid + 99_999, t_ns=connect.t_enter_ns),
    )
    assert int(a.cause_call_id[0]) == -1 and CALL_NAMES[int(a.cause_call[0])] == "connect"
    assert int(a.cause_by[0]) == CauseBy.CALL and int(a.cause_source[0]) == CauseSource.KERNEL


def test_call_windows_widen_to_hold_what_the_kernel_queued_inside_them(hello: Trace) -> None:
    connect = next(c for c in hello.calls if c.call == "connect")
    assert connect.t_exit_ns is not None
    stack = ("tcp_connect", "__sys_connect", "__x64_sys_connect")
    late = connect.t_exit_ns + 1_000_000  # the recorder said it returned 1 ms before the kernel queued
    out = kernel_call_times(hello.calls, KernelAccount(origins=(
        origin("call", "connect", "syn", *stack, tid=connect.tid, t_ns=late),)), hello.packets)
    moved = next(c for c in out if c.id == connect.id)
    assert (moved.t_enter_ns, moved.t_exit_ns) == (connect.t_enter_ns, late)
    assert [c for c in out if c.id != connect.id] == [c for c in hello.calls if c.id != connect.id]
    # Beyond reach, another thread, or a stack in no system call: the windows stay as recorded.
    for o in (origin("call", "connect", "syn", *stack, tid=connect.tid, t_ns=connect.t_exit_ns + 10**8),
              origin("call", "connect", "syn", *stack, tid=connect.tid + 99_999, t_ns=late),
              origin("timer", "retransmit", "retransmit", "tcp_retransmit_timer", tid=connect.tid, t_ns=late),
              origin("call", "connect", "syn", *stack, packet_no=10_000, tid=connect.tid, t_ns=late)):
        assert kernel_call_times(hello.calls, KernelAccount(origins=(o,)), hello.packets) == hello.calls


def test_released_data_names_its_send_call_and_the_releasing_ack(hello: Trace) -> None:
    base = analyze(hello)
    send = int(base.cause_call_id[5])  # packet 6: the server's 13 bytes
    assert _call(hello, send).call == "sendall"
    t6 = int(hello.packets.ts_ns[5])
    a = _with(
        hello, origin("receive", "tcp", "data", "tcp_write_xmit", "tcp_rcv_established", packet_no=6, t_ns=t6)
    )
    assert REASONS[int(a.cause_reason[5])] == "data_released_by_ack"
    assert REASONS[int(a.inferred_reason[5])] == "send_data"
    assert int(a.cause_call_id[5]) == send and int(a.cause_by[5]) == CauseBy.KERNEL
    # Released by the client's last segment captured before the kernel queued it: packet 5's
    # peer is the client, whose latest segment before packet 6 is packet 4 (row 3).
    assert int(a.released_by[5]) == 3
    assert (a.released_by[np.arange(10) != 5] == -1).all()
    assert (base.released_by == -1).all()


def test_frames_without_origin_and_hostile_origins(hello: Trace) -> None:
    base = analyze(hello)
    hostile = [origin("timer", "delayed_ack", "unknown", packet_no=n) for n in (0, -1, 11, 10**9)]
    a = _with(
        hello,
        *hostile,
        origin("timer", "delayed_ack", "unknown", packet_no=5),
        origin("exit", "exit", "data", "do_exit", packet_no=8),
    )
    assert (
        REASONS[int(a.cause_reason[4])] == "delayed_ack" and REASONS[int(a.inferred_reason[4])] == "data_ack"
    )
    assert REASONS[int(a.cause_reason[7])] == "exit_fin" and REASONS[int(a.inferred_reason[7])] == "close_fin"
    others = np.setdiff1d(np.arange(10), [4, 7])
    for col in ("cause_reason", "cause_call_id", "cause_by", "cause_inferred", "cause_source"):
        assert (getattr(a, col)[others] == getattr(base, col)[others]).all(), col
    assert (a.cause_source[[4, 7]] == CauseSource.KERNEL).all()
    assert reason_agreement(a) == {"delayed_ack": (0, 1), "exit_fin": (0, 1)}
    same = _with(hello, origin("receive", "tcp", "unknown", "tcp_rcv_established", packet_no=5))
    assert reason_agreement(same) == {"data_ack": (1, 1)}
    assert reason_agreement(base) == {}


# --- the real kernel (lab) -----------------------------------------------------------------


def _load(path: Path) -> tuple[Trace, Analysis, dict[int, PacketOrigin]]:
    trace = read_capture(path)
    assert trace.kernel is not None, "the saved run has no kernel account"
    return trace, analyze(trace), trace.kernel.origin_of()


def _scenario(name: str, tmp_path: Path) -> tuple[Trace, Analysis, dict[int, PacketOrigin]]:
    out = tmp_path / f"{name}.pcapng"
    res = run_scenario(find_scenario(name), out)
    assert res.error is None and not res.interrupted
    return _load(out)


def _reason(a: Analysis, i: int) -> str:
    return REASONS[int(a.cause_reason[i])]


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/c's programs and a server that returns from main() without close(), compiled with gcc."""
    out = tmp_path_factory.mktemp("cbin")
    (out / "exit_server.c").write_text(EXIT_SERVER)
    for src in [*sorted(C_DIR.glob("*.c")), out / "exit_server.c"]:
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out / src.stem), str(src)], check=True
        )
    return out


EXIT_SERVER = r"""
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Answers one client and returns from main() without close(): the kernel closes at exit. */
int main(void) {
    int one = 1, l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(7777);
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 1) < 0)
        return 1;
    int c = accept(l, NULL, NULL);
    char buf[64];
    if (read(c, buf, sizeof buf) <= 0 || write(c, "bye\n", 4) != 4)
        return 1;
    return 0;
}
"""

PY_SERVER = """
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 7777)); l.listen(1)
c, _ = l.accept(); c.recv(100); c.sendall(b"hi\\n"); c.close(); l.close()
"""
PY_CLIENT = """
import os, socket
s = socket.create_connection((os.environ["TRACER_SERVER"], 7777))
s.sendall(b"client\\n"); s.recv(100); s.close()
"""


@contextmanager
def busy_cpus(on: bool) -> Iterator[None]:
    """Both CPUs kept busy by two spinning processes while the block runs (if ``on``)."""
    spinners = [subprocess.Popen([PY, "-c", "while True: pass"]) for _ in range(2 if on else 0)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def _syn_checks(out: Path) -> None:
    trace, a, origins = _load(out)
    syns = [i for i in range(len(trace.packets)) if int(trace.packets.tcp_flags[i]) & (SYN | ACK) == SYN]
    assert syns
    for i in syns[:1]:
        o = origins[i + 1]
        assert (o.kind, o.what, o.action) == ("call", "connect", "syn") and "tcp_connect" in o.stack
        assert _reason(a, i) == "connect_syn" and int(a.cause_source[i]) == CauseSource.KERNEL
        c = _call(trace, int(a.cause_call_id[i]))
        assert c.call in ("connect", "connect_ex") and c.tid == o.tid and c.side == "client"
        # The saved call's window holds the moment the kernel queued its SYN (the kernel's clock).
        assert c.t_exit_ns is not None and c.t_enter_ns <= o.t_ns <= c.t_exit_ns


@pytest.mark.lab
@pytest.mark.parametrize("busy", [False, True], ids=["idle", "busy-cpus"])
def test_syn_is_connects_by_stack_in_traced_c_and_python(bins: Path, tmp_path: Path, busy: bool) -> None:
    runs = [
        (f"{bins}/tcp_server", f"{bins}/tcp_client {{server}}"),
        (f"{PY} {tmp_path}/server.py", f"{PY} {tmp_path}/client.py"),
    ]
    (tmp_path / "server.py").write_text(PY_SERVER)
    (tmp_path / "client.py").write_text(PY_CLIENT)
    with busy_cpus(busy):
        for k in range(3):
            for j, (server, client) in enumerate(runs):
                out = tmp_path / f"run{k}-{j}.pcapng"
                res = trace_programs(server, client, out)
                assert res.error is None and not res.interrupted
                _syn_checks(out)


@pytest.mark.lab
def test_fin_at_process_exit(bins: Path, tmp_path: Path) -> None:
    out = tmp_path / "exit.pcapng"
    res = trace_programs(f"{bins}/exit_server", f"{bins}/tcp_client {{server}}", out)
    assert res.error is None
    trace, a, origins = _load(out)
    t = trace.packets
    fin = next(i for i in range(len(t)) if int(t.tcp_flags[i]) & FIN and t.src_endpoint(i).endswith(":7777"))
    assert origins[fin + 1].kind == "exit"
    assert _reason(a, fin) == "exit_fin" and REASONS[int(a.inferred_reason[fin])] != "exit_fin"
    # Tied to the kernel's closing of the dead process's socket, which strace saw as an implicit close.
    c = _call(trace, int(a.cause_call_id[fin]))
    assert c.call == "close" and c.side == "server" and "by" in dict(c.args)


@pytest.mark.lab
def test_nagle_released_segment_names_the_ack_and_the_send(tmp_path: Path) -> None:
    trace, a, origins = _scenario("nagle", tmp_path)
    t = trace.packets
    i = next(i for i in range(len(t)) if int(t.payload_len[i]) == 40)
    o = origins[i + 1]
    assert (o.kind, o.action) == ("receive", "data") and "tcp_write_xmit" in o.stack
    assert _reason(a, i) == "data_released_by_ack" and int(a.cause_by[i]) == CauseBy.KERNEL
    j = int(a.released_by[i])
    assert 0 <= j < i and int(t.payload_len[j]) == 0 and int(t.tcp_flags[j]) & ACK
    assert t.src_endpoint(j) == t.dst_endpoint(i)
    # The releasing ACK acknowledges the data before these 40 bytes.
    assert int(a.rel_ack[j]) == int(a.rel_seq[i])
    send = _call(trace, int(a.cause_call_id[i]))
    assert send.call == "send" and send.side == "client"
    assert send.t_exit_ns is not None and send.t_exit_ns < o.t_ns  # it had returned long before


@pytest.mark.lab
def test_zero_window_probes_and_released_data_are_not_send(tmp_path: Path) -> None:
    _, a, origins = _scenario("zero-window", tmp_path)
    probes = [n - 1 for n, o in origins.items() if (o.kind, o.what) == ("timer", "probe")]
    released = [n - 1 for n, o in origins.items() if (o.kind, o.action) == ("receive", "data")]
    assert probes and released
    for i in probes:
        assert _reason(a, i) == "zero_window_probe" and int(a.cause_by[i]) == CauseBy.KERNEL
        assert int(a.cause_call_id[i]) == -1
    for i in released:
        assert _reason(a, i) == "data_released_by_ack" and int(a.cause_by[i]) == CauseBy.KERNEL
        assert int(a.released_by[i]) >= 0


@pytest.mark.lab
def test_data_lost_tail_loss_probe_told_from_rto(tmp_path: Path) -> None:
    trace, a, origins = _scenario("data-lost", tmp_path)
    t = trace.packets
    lost = next(i for i in range(len(t)) if int(t.payload_len[i]) > 0)
    again = next(
        i
        for i in range(lost + 1, len(t))
        if int(a.rel_seq[i]) == int(a.rel_seq[lost]) and int(t.payload_len[i]) > 0
    )
    assert again == 4  # packet 5
    assert (origins[5].kind, origins[5].what) == ("timer", "loss_probe")
    assert (
        _reason(a, again) == "tail_loss_probe" and REASONS[int(a.inferred_reason[again])] == "retransmission"
    )


@pytest.mark.lab
@pytest.mark.parametrize(("name", "rule"), [
    ("data-lost", "the first data segment to the server, then the 4th data segment after it"),
    ("synack-lost", "the first SYN-ACK to the client"),
    ("simultaneous-close", "the first FIN to the server"),
])
def test_impair_drops_are_the_frames_its_rules_name(name: str, rule: str, tmp_path: Path) -> None:
    """Each IMPAIR drop rule of the catalogue: the kernel's NETFILTER_DROPs are exactly the
    frames the rule names (read off the wire here), and no other frame is said dropped."""
    trace, _, _ = _scenario(name, tmp_path)
    t, k = trace.packets, trace.kernel
    assert k is not None
    to_server = [i for i in range(len(t)) if t.dst_endpoint(i).startswith(("10.77.0.2:", "[fd00:77::2]:"))]
    if name == "data-lost":
        data = [i for i in to_server if int(t.payload_len[i]) > 0]
        want = {data[0], data[1:][3]}  # the second rule counts the data segments the first let by
    elif name == "synack-lost":
        want = {next(i for i in range(len(t)) if int(t.tcp_flags[i]) & (SYN | ACK) == SYN | ACK)}
    else:
        want = {next(i for i in to_server if int(t.tcp_flags[i]) & FIN)}
    got = {d.packet_no - 1 for d in k.drops if d.reason == "NETFILTER_DROP"}
    assert got == want, (rule, sorted(got), sorted(want))
    assert all(d.where == "nft_do_chain" for d in k.drops if d.reason == "NETFILTER_DROP")


@pytest.mark.lab
def test_backlog_full_listeners_rst(tmp_path: Path) -> None:
    trace, a, origins = _scenario("backlog-full", tmp_path)
    t = trace.packets
    rst = [i for i in range(len(t)) if int(t.tcp_flags[i]) & RST]
    assert rst
    i = rst[0]
    o = origins[i + 1]
    assert "inet_csk_listen_stop" in o.stack and _reason(a, i) == "rst_listener_closed"
    close = _call(trace, int(a.cause_call_id[i]))
    assert close.call == "close" and close.tid == o.tid and close.side == "server"
    listen = next(c for c in trace.calls if c.call == "listen" and c.side == "server")
    assert close.fd == listen.fd and close.pid == listen.pid  # the listening socket's close()


def test_fin_released_by_an_ack_keeps_its_close(hello: Trace) -> None:
    base = analyze(hello)
    close = int(base.cause_call_id[8])  # packet 9: the server's FIN
    assert _call(hello, close).call == "close"
    a = _with(hello, origin("receive", "tcp", "data", "tcp_write_xmit", "tcp_rcv_established", packet_no=9))
    assert REASONS[int(a.cause_reason[8])] == REASONS[int(base.cause_reason[8])] == "close_fin_ack"
    assert int(a.cause_call_id[8]) == close and int(a.cause_by[8]) == CauseBy.KERNEL
    assert int(a.released_by[8]) == -1  # no data was released
