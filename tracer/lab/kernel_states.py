"""Kernel truth: the sockets a lab namespace's kernel reports (``ss``, i.e. inet_diag).

``parse_ss(text, proto, host, t_ns, label)`` turns ``ss -tanH state all`` or
``ss -uanH`` output into ``KernelSocketState`` values (pure, tested on real
output); ``snapshot(host, label)`` runs both in a host's namespace.  TCP states
are stored under the analysis' names (``TIME_WAIT``, ``ESTABLISHED`` ...) so
they compare directly with ``TcpState``; UDP sockets keep ss's words
(``UNCONN``, ``ESTAB``).  For a listening socket ``recv_q`` is the accept
queue's length and ``send_q`` its backlog, as ss reports them.
"""

from __future__ import annotations

import subprocess
import time

from tracer.core.model import KernelSocketState
from tracer.lab.netns import Host

# ss's state words -> tracer's TcpState names.
SS_TCP_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECEIVED",
    "FIN-WAIT-1": "FIN_WAIT_1",
    "FIN-WAIT-2": "FIN_WAIT_2",
    "TIME-WAIT": "TIME_WAIT",
    "CLOSE": "CLOSED",
    "UNCONN": "CLOSED",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
}


def _endpoint(text: str) -> str:
    """ss's ``10.0.0.1%eth0:80`` / ``[fd00::1]:80`` / ``*:80`` -> ``ip:port`` without a scope."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text
    if "%" in host:
        host = host.split("%", 1)[0] + ("]" if host.startswith("[") else "")
    return f"{host}:{port}"


def parse_ss(text: str, proto: str, host: str, t_ns: int, label: str = "") -> tuple[KernelSocketState, ...]:
    """Sockets from ``ss -[t|u]anH`` output (columns: state, recv-q, send-q, local, peer)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        state = SS_TCP_STATES.get(parts[0], parts[0]) if proto == "tcp" else parts[0]
        out.append(KernelSocketState(t_ns=t_ns, host=host, proto=proto, state=state,
                                     local=_endpoint(parts[3]), remote=_endpoint(parts[4]),
                                     recv_q=int(parts[1]), send_q=int(parts[2]), label=label))
    return tuple(out)


def snapshot(host: Host, name: str, label: str = "") -> tuple[KernelSocketState, ...]:
    """TCP and UDP sockets of ``host``'s namespace now, the host named ``name``.

    A failing ``ss`` (e.g. the namespace is already gone) gives no states.
    """
    states: list[KernelSocketState] = []
    for proto, argv in (("tcp", ["ss", "-tanH", "state", "all"]), ("udp", ["ss", "-uanH"])):
        t_ns = time.time_ns()
        try:
            proc = host.run(argv, check=False, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0:
            states.extend(parse_ss(proc.stdout, proto, name, t_ns, label))
    return tuple(states)
