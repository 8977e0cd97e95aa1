"""The lab's namespaces: real veth traffic, capture, and guaranteed clean-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import wait_for
from tracer.lab.netns import Host, Lab, cleanup_stale, list_namespaces

pytestmark = pytest.mark.lab

UDP_ECHO_TWICE = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("%s", 9000))
print("ready", flush=True)
for _ in range(2):
    data, peer = s.recvfrom(100)
    s.sendto(data.upper(), peer)
"""
UDP_CLIENT = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for msg in (b"one", b"two"):
    s.sendto(msg, ("%s", 9000))
    assert s.recv(100) == msg.upper()
"""


def test_two_hosts_talk_and_tcpdump_captures(tmp_path: Path) -> None:
    pcap = tmp_path / "ping.pcap"
    with Lab(prefix="trctest") as lab:
        names = {lab.client.ns, lab.server.ns}
        assert names <= set(list_namespaces())
        with lab.tcpdump(lab.server, pcap):
            server = lab.server.popen([sys.executable, "-c", UDP_ECHO_TWICE % lab.server.ip],
                                      stdout=subprocess.PIPE)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            lab.client.run([sys.executable, "-c", UDP_CLIENT % lab.server.ip])
            assert server.wait(timeout=10) == 0
    assert not names & set(list_namespaces())
    # tcpdump itself (a tool we did not write) reads the file back.
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True)
    lines = out.stdout.splitlines()
    # Exactly the four datagrams: static neighbours mean no ARP/ND on the wire.
    assert len(lines) == 4, lines
    assert all("UDP" in line for line in lines)


def test_exception_inside_lab_still_cleans_up() -> None:
    names: set[str] = set()
    try:
        with Lab(prefix="trctest") as lab:
            names = {lab.client.ns, lab.server.ns}
            raise RuntimeError("scenario failed")
    except RuntimeError:
        pass
    assert names and not names & set(list_namespaces())


def test_stale_namespace_of_dead_process_is_removed() -> None:
    dead_pid = 2**22 + 12345  # above pid_max's default: no such process
    stale = f"trctest-{dead_pid}-0-client"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        assert stale in cleanup_stale("trctest")
        assert stale not in list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


def test_loopback_lab_has_only_lo() -> None:
    with Lab(prefix="trctest", loopback=True) as lab:
        links = lab.client.run(["ip", "-o", "link"]).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
        assert "127.0.0.1/8" in lab.client.run(["ip", "-o", "addr"]).stdout


def _tried_every_mld_report(host: Host) -> bool:
    """After link-up the kernel sends its unsolicited MLDv2 report mld_qrv times, about a
    second apart; the lab's nft rules drop them, which /proc/net/snmp6 counts as discards."""
    reports = int(Path("/proc/sys/net/ipv6/mld_qrv").read_text())  # global, not per namespace
    rows = (line.split() for line in host.run(["cat", "/proc/net/snmp6"]).stdout.splitlines())
    return next(int(v) for k, v in rows if k == "Ip6OutDiscards") >= reports


def test_idle_wire_is_silent(tmp_path: Path) -> None:
    """No ARP, ND, MLD or router chatter: a capture holds only what a run sends."""
    pcap = tmp_path / "idle.pcap"
    with Lab(prefix="trctest") as lab, lab.tcpdump(lab.client, pcap):
        wait_for(lambda: all(_tried_every_mld_report(h) for h in (lab.client, lab.server)), 10,
                 "both hosts to try all their unsolicited MLD reports (Ip6OutDiscards)")
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap)], capture_output=True, text=True)
    assert out.stdout.splitlines() == []


BURST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(3000):
    s.sendto(b"x" * 1000, (sys.argv[1], 9))
"""


def test_tcpdump_keeps_a_burst_whole(tmp_path: Path) -> None:
    """3,000 back-to-back datagrams: the capture ring must not overflow."""
    pcap = tmp_path / "burst.pcap"
    with Lab(prefix="trctest") as lab, lab.tcpdump(lab.client, pcap):
        lab.client.run([sys.executable, "-c", BURST, lab.server.ip])
    out = subprocess.run(["tcpdump", "-n", "-r", str(pcap), "udp"], capture_output=True, text=True)
    assert len(out.stdout.splitlines()) == 3000
