"""TCP states from the kernel's own record (issue 12): real runs with the kernel witness.

``synack-lost``: the server's first SYN-ACK is dropped by the lab's IMPAIR, its retransmission
reaches the client; the kernel's ``inet_sock_set_state`` puts the client's ESTABLISHED
right after that SYN-ACK arrived, and the listening socket stays in LISTEN (the connection
is a new socket).  The expectations are read from the kernel's own record in the saved
file (the state changes and drops), not written down here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import corpus_files
from tracer.core.model import ACK, SYN, TcpState
from tracer.core.pipeline import analyze
from tracer.pcap.reader import read_capture

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.lab
def test_synack_lost_states_come_from_the_kernel(scenario_run: Callable[[str], Path]) -> None:
    trace = read_capture(scenario_run("synack-lost"))
    an = analyze(trace)
    k = trace.kernel
    assert k is not None and k.states
    t = trace.packets
    info = an.tcp_streams[0]
    client, server = (info.a, info.b) if info.client == info.a else (info.b, info.a)
    col_client, col_server = (an.state_a, an.state_b) if info.a == client else (an.state_b, an.state_a)
    # The kernel: when the client's socket became ESTABLISHED.
    est = [c for c in k.states if c.local == client and c.remote == server and c.new == "ESTABLISHED"]
    assert len(est) == 1
    synacks = [i for i in range(len(t)) if int(t.tcp_flags[i]) & (SYN | ACK) == SYN | ACK
               and t.src_endpoint(i) == server]
    # The SYN-ACK it answered: the last one captured before the change.
    answered = max(i for i in synacks if int(t.ts_ns[i]) < est[0].t_ns + 1000)
    dropped = {d.packet_no - 1 for d in k.drops}
    assert synacks[0] in dropped and answered not in dropped  # the IMPAIR's drop, then the one that arrived
    first_est = next(i for i in range(len(t)) if col_client[i] == TcpState.ESTABLISHED)
    assert first_est == answered
    # The rules put it later (on the SYN-ACK answering the retransmitted SYN): a counted disagreement.
    inferred_client = an.inferred_state_a if info.a == client else an.inferred_state_b
    inferred_first = next(i for i in range(len(t)) if inferred_client[i] == TcpState.ESTABLISHED)
    assert inferred_first > answered
    assert set(range(answered, inferred_first)) <= set(an.state_disagreements)
    warn = [w for w in trace.warnings if w.code == "kernel_states_disagree"]
    assert len(warn) == 1 and str(len(an.state_disagreements)) in warn[0].message
    assert warn[0].message_zh and warn[0].message_zh != warn[0].message
    # The listener stays in LISTEN: the kernel's listening socket never left it before it
    # was closed, and the server endpoint is never shown SYN_RECEIVED.
    listener = [c for c in k.states if c.local == server and c.remote in ("0.0.0.0:0", "[::]:0")]
    assert [(c.old, c.new) for c in listener] == [("CLOSED", "LISTEN"), ("LISTEN", "CLOSED")]
    assert TcpState.SYN_RECEIVED not in set(col_server.tolist())
    assert TcpState.SYN_RECEIVED in set((an.inferred_state_b if info.b == server else an.inferred_state_a)
                                        .tolist())


def test_without_the_kernel_the_states_are_the_rules() -> None:
    """A foreign capture: the shown states are the inferred ones, and nothing disagrees."""
    for path in corpus_files()[:5]:
        an = analyze(read_capture(path))
        assert (an.state_a == an.inferred_state_a).all() and (an.state_b == an.inferred_state_b).all()
        assert an.state_disagreements == ()


NC_CLIENT = "python3 -c \"import socket; socket.create_connection(('{server}', 7999), timeout=2).close()\""
NC_SERVER = "python3 -c \"import socket; s = socket.create_server(('', 7999)); s.accept()[0].close()\""


@pytest.mark.lab
@pytest.mark.parametrize("command", ["run", "trace"])
def test_no_witness_runs_without_it(command: str, tmp_path: Path) -> None:
    out = tmp_path / f"{command}.pcapng"
    what = ["hello"] if command == "run" else ["--server", NC_SERVER, "--client", NC_CLIENT]
    argv = [sys.executable, "-m", "tracer", command, *what, "--no-tui", "--no-witness", "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    trace = read_capture(out)
    assert trace.kernel is None
    assert not [w for w in trace.warnings if w.code.startswith("kernel_")]
    assert "kernel.TcpExt.ListenOverflows" not in trace.meta.extra
    assert any(int(f) & SYN for f in trace.packets.tcp_flags.tolist())
    # The same run with the witness has its account.
    argv.remove("--no-witness")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert read_capture(out).kernel is not None


@pytest.mark.lab
def test_backlog_full_syns_dropped_by_the_listen_queue(scenario_run: Callable[[str], Path]) -> None:
    """The SYNs a full accept queue swallowed are marked with the kernel's reason, because
    the kernel's own ListenOverflows count (read in the lab's namespaces) says how many."""
    import dataclasses

    from tracer.core.model import RST
    from tracer.core.witness import LISTEN_OVERFLOW, listen_overflow_drops

    trace = read_capture(scenario_run("backlog-full"))
    k = trace.kernel
    assert k is not None
    t = trace.packets
    counted = int(trace.meta.extra["kernel.TcpExt.ListenOverflows"])
    assert counted > 0 and int(trace.meta.extra["kernel.TcpExt.ListenDrops"]) >= counted
    # Unanswered SYNs, read off the wire: no SYN-ACK nor RST ever came back to their port.
    answered = {t.dst_endpoint(i) for i in range(len(t)) if int(t.tcp_flags[i]) & (SYN | RST)
                and int(t.tcp_flags[i]) & ACK}
    unanswered = [i + 1 for i in range(len(t)) if int(t.tcp_flags[i]) & (SYN | ACK) == SYN
                  and t.src_endpoint(i) not in answered]
    overflow = [d for d in k.drops if d.reason == LISTEN_OVERFLOW]
    assert [d.packet_no for d in overflow] == unanswered
    assert len(unanswered) == counted
    assert all(d.where == "tcp_conn_request" for d in overflow)
    assert not [w for w in trace.warnings if w.code == "kernel_listen_overflow_mismatch"]
    # Evidence, not a guess: with a count that disagrees nothing is marked.
    bare = dataclasses.replace(k, drops=tuple(d for d in k.drops if d.reason != LISTEN_OVERFLOW))
    same, syns = listen_overflow_drops(t, bare, counted + 1)
    assert same is bare and syns == counted
    # The server endpoint of the unanswered connection: the listener, in LISTEN.
    an = analyze(trace)
    for no in unanswered:
        i = no - 1
        server_col = an.state_b if int(an.direction[i]) == 0 else an.state_a
        assert server_col[i] == TcpState.LISTEN


@pytest.mark.lab
def test_zero_window_close_is_fin_wait_1_before_the_fin(scenario_run: Callable[[str], Path]) -> None:
    """close() with data queued behind a zero window: the kernel's FIN_WAIT_1 shows from the
    first packet after close(), long before the FIN that the rules wait for."""
    from tracer.core.model import FIN

    trace = read_capture(scenario_run("zero-window"))
    an = analyze(trace)
    k = trace.kernel
    assert k is not None
    t = trace.packets
    info = an.tcp_streams[0]
    client = info.client or info.a
    server = info.b if client == info.a else info.a
    col = an.state_a if info.a == client else an.state_b
    change = [c for c in k.states if c.local == client and c.remote == server and c.new == "FIN_WAIT_1"]
    assert len(change) == 1
    after = next(i for i in range(len(t)) if int(t.ts_ns[i]) >= change[0].t_ns + 1000)
    fin = next(i for i in range(len(t)) if int(t.tcp_flags[i]) & FIN and t.src_endpoint(i) == client)
    assert after < fin  # the FIN waited behind the data
    first = next(i for i in range(len(t)) if col[i] == TcpState.FIN_WAIT_1)
    assert first == after
    assert set(range(after, fin)) <= set(an.state_disagreements)


REUSE_SERVER = ("python3 -c \"import socket; s = socket.create_server(('', 7998))\n"
                "for _ in range(2): s.accept()[0].close()\"")
REUSE_CLIENT = ("python3 -c \"import socket, time\nfor _ in range(2):\n"
                " s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                " s.bind(('', 40001)); s.connect(('{server}', 7998))\n"
                " while s.recv(100): pass\n"
                " s.close(); time.sleep(0.3)\"")


@pytest.mark.lab
def test_a_reused_four_tuple_keeps_each_connections_states(tmp_path: Path) -> None:
    """The client binds the same port twice; the server closes first each time (its
    TIME-WAIT takes the second SYN): two streams on one 4-tuple, each with its own
    kernel states (the server ends in TIME-WAIT, the client CLOSED, RFC 9293)."""
    out = tmp_path / "reuse.pcapng"
    argv = [sys.executable, "-m", "tracer", "trace", "--no-tui", "--server", REUSE_SERVER,
            "--client", REUSE_CLIENT, "--out", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    trace = read_capture(out)
    assert trace.kernel is not None
    an = analyze(trace)
    assert len(an.tcp_streams) == 2 and {an.tcp_streams[0].a, an.tcp_streams[0].b} == \
        {an.tcp_streams[1].a, an.tcp_streams[1].b}
    assert an.state_disagreements == ()
    for info in an.tcp_streams:
        rows = [i for i in range(len(trace.packets)) if an.stream[i] == info.index]
        client_col, server_col = ((an.state_a, an.state_b) if info.client == info.a
                                  else (an.state_b, an.state_a))
        assert client_col[rows[0]] == TcpState.SYN_SENT and server_col[rows[0]] == TcpState.LISTEN
        # The first connection's changes stay its own: the listener never shows SYN_RECEIVED.
        assert TcpState.SYN_RECEIVED not in {int(server_col[i]) for i in rows}
        assert server_col[rows[-1]] == TcpState.TIME_WAIT and client_col[rows[-1]] == TcpState.CLOSED
