"""Build the benchmark capture: real TCP traffic between two network namespaces.

Creates a lab (``tracer.lab.netns.Lab``: two namespaces joined by a veth pair,
removed on exit), starts the servers of ``bench/traffic.py`` in the server
namespace, captures there with ``tcpdump -s 128``, drives short connections and
a few paced bulk transfers from client processes in the client namespace, and
stops everything once the file holds the target packet count.  An nft rule in the
server namespace drops ~0.1% of incoming data segments after tcpdump has seen
them, so the capture holds real retransmissions, dup ACKs and SACKs.

The result is cached outside the repository (``~/.cache/tracer-bench``) with a
``.json`` sidecar describing the build; ``ensure_capture`` reuses it.

    python bench/make_capture.py [--quick] [--rebuild] [--packets N] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tracer.lab.netns import Host, Lab, LabError, require_tool

HERE = Path(__file__).resolve().parent
TRAFFIC = HERE / "traffic.py"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tracer-bench"
FULL_PACKETS = 1_000_000
QUICK_PACKETS = 50_000
MIN_FRACTION = 0.95  # the file must hold at least 95% of the target

SHORT_PORTS = "5000-5007"
BULK_PORT = 6000
LOSS_PER_MILLE = 1
PKTS_PER_SHORT_CONN = 11.0  # measured in this lab: handshake, request, ACK, response, close
SHORT_SHARE = 0.55  # share of the target made by short connections (the rest: bulk)


class BuildError(Exception):
    """The capture could not be built (message says why)."""


def capture_path(cache_dir: Path, quick: bool) -> Path:
    return cache_dir / ("foundation-50k.pcap" if quick else "foundation-1m.pcap")


# ---------------------------------------------------------------- pcap records


def _pcap_order(head: bytes) -> str:
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return "<"
    if magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        return ">"
    raise BuildError(f"not a classic pcap file (magic {magic.hex()})")


_READ = 4 << 20  # read in chunks: the bench process must stay small (see run.py on RSS)


def _walk(path: Path, offset: int, limit: int) -> tuple[int, int]:
    """Count up to ``limit`` complete records from ``offset`` (0 = first record); return (count, end)."""
    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return 0, offset
        rec = struct.Struct(_pcap_order(head) + "8xI4x")
        pos = offset or 24
        f.seek(pos)
        buf, i, n = b"", 0, 0
        while n < limit:
            more = f.read(_READ)
            if not more:
                break
            buf = buf[i:] + more
            i = 0
            while n < limit and i + 16 <= len(buf):
                (incl,) = rec.unpack_from(buf, i)
                if i + 16 + incl > len(buf):
                    break
                i += 16 + incl
                pos += 16 + incl
                n += 1
    return n, pos


def count_records(path: Path, offset: int = 0, count: int = 0) -> tuple[int, int]:
    """Count complete records from ``offset`` (0 = file start); return (count, next offset).

    Incremental, so it can follow a file that tcpdump is still writing.
    """
    n, end = _walk(path, offset, sys.maxsize)
    return count + n, end


def copy_slice(src: Path, dst: Path, packets: int) -> int:
    """Write the first ``packets`` records of pcap ``src`` to ``dst``; return how many were copied."""
    n, end = _walk(src, 0, packets)
    tmp = dst.with_name(dst.name + ".part")
    with src.open("rb") as f, tmp.open("wb") as out:
        left = end
        while left > 0:
            chunk = f.read(min(_READ, left))
            if not chunk:
                break
            out.write(chunk)
            left -= len(chunk)
    tmp.replace(dst)
    return n


# ---------------------------------------------------------------- the build


def _configure(lab: Lab) -> None:
    c, s = lab.client, lab.server
    for h in (c, s):
        # One MSS per packet on the wire, as on a real NIC: without this the veth
        # passes 64 KiB GSO super-frames and tcpdump records those.
        h.run(["ip", "link", "set", h.iface, "gso_max_segs", "1"])
    # Many short connections from one address: widen the ephemeral range so that
    # TIME_WAIT never forces a 4-tuple to be reused within the run.
    c.run(["sysctl", "-qw", "net.ipv4.ip_local_port_range=10000 65000"])
    rule = (
        "add table inet trcbench\n"
        "add chain inet trcbench input { type filter hook input priority 0; policy accept; }\n"
        "add rule inet trcbench input meta l4proto tcp tcp flags & (syn | fin | rst) == 0 "
        f"ip length > 100 numgen random mod 1000 < {LOSS_PER_MILLE} counter drop\n"
    )
    s.run(["nft", "-f", "-"], input=rule)


def _nft_dropped(server: Host) -> int:
    out = server.run(["nft", "list", "chain", "inet", "trcbench", "input"], check=False).stdout
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else -1


def _wait_line(proc: subprocess.Popen[str], word: str, timeout: float, what: str) -> None:
    stream = proc.stdout if word == "ready" else proc.stderr
    assert stream is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if word in line:
            return
    raise BuildError(f"{what} did not start: {''.join(seen).strip() or 'no output'}")


def _tcpdump_stats(stderr: str) -> dict[str, int]:
    stats = {}
    for key, pattern in (("captured", r"(\d+) packets? captured"),
                         ("received", r"(\d+) packets? received by filter"),
                         ("dropped", r"(\d+) packets? dropped by kernel")):
        m = re.search(pattern, stderr)
        stats[key] = int(m.group(1)) if m else -1
    return stats


def _stop(procs: list[subprocess.Popen[str]], timeout: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def build_capture(path: Path, target: int, *, max_seconds: float = 300.0,
                  log: Any = None) -> dict[str, Any]:
    """Build a capture of about ``target`` packets at ``path``; return its description."""
    for tool, pkg in (("tcpdump", "tcpdump"), ("nft", "nftables"), ("ip", "iproute2")):
        require_tool(tool, pkg)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    part.unlink(missing_ok=True)
    py = sys.executable
    t_start = time.monotonic()
    n_short, n_up, n_down = 3, 2, 1
    conns = int(target * 1.3 * SHORT_SHARE / PKTS_PER_SHORT_CONN / n_short) + 1
    # ~1.5 packets per 1448-byte data segment (delayed ACKs every second segment)
    bulk_bytes = int(target * 1.3 * (1 - SHORT_SHARE) / 1.5 * 1448 / (n_up + n_down)) + 1
    rate = 25e6  # bytes/s per bulk client: ~45% bulk packets with no tcpdump drops on 2 cores
    with Lab(prefix="trcbench") as lab:
        _configure(lab)
        c, s = lab.client, lab.server
        srv_args = ["--host", s.ip, "--deadline", str(max_seconds + 30)]
        servers = [
            s.popen([py, str(TRAFFIC), "short-server", "--ports", SHORT_PORTS, *srv_args],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE),
            s.popen([py, str(TRAFFIC), "bulk-server", "--bulk-port", str(BULK_PORT), *srv_args],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        ]
        clients: list[subprocess.Popen[str]] = []
        tcpdump: subprocess.Popen[str] | None = None
        try:
            for p in servers:
                _wait_line(p, "ready", 10, "traffic server")
            tcpdump = s.popen(["tcpdump", "-i", s.iface, "-s", "128", "-B", "131072", "-n",
                               "-w", str(part), "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _wait_line(tcpdump, "listening on", 10, "tcpdump")
            cli_args = ["--host", s.ip, "--deadline", str(max_seconds)]
            for i in range(n_short):
                clients.append(c.popen([py, str(TRAFFIC), "short-client", "--ports", SHORT_PORTS,
                                        "--count", str(conns), "--seed", str(i + 1), *cli_args],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            for direction in ["up"] * n_up + ["down"] * n_down:
                clients.append(c.popen([py, str(TRAFFIC), "bulk-client", "--direction", direction,
                                        "--bulk-port", str(BULK_PORT), "--bytes", str(bulk_bytes),
                                        "--rate", str(rate), *cli_args],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            count, offset = 0, 0
            last_report = time.monotonic()
            while time.monotonic() - t_start < max_seconds + 10:
                time.sleep(0.2)
                if part.exists():
                    count, offset = count_records(part, offset, count)
                if count >= target or all(p.poll() is not None for p in clients):
                    break
                if time.monotonic() - last_report > 5:
                    say(f"  ... {count:,} packets captured so far")
                    last_report = time.monotonic()
            _stop(clients, timeout=20)
            time.sleep(0.3)  # let the final FINs and ACKs reach tcpdump
        finally:
            _stop(clients, timeout=5)
            if tcpdump is not None:
                tcpdump.send_signal(signal.SIGINT)
                try:
                    tcpdump.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    tcpdump.kill()
                    tcpdump.wait()
            nft_dropped = _nft_dropped(s)
            _stop(servers, timeout=5)
        assert tcpdump is not None and tcpdump.stderr is not None
        stats = _tcpdump_stats(tcpdump.stderr.read())
        client_out = [(p.stdout.read().strip() if p.stdout else "") for p in clients]
    packets, _ = count_records(part)
    if packets < MIN_FRACTION * target:
        raise BuildError(
            f"capture has only {packets:,} packets, fewer than {MIN_FRACTION:.0%} of {target:,} "
            f"(clients: {'; '.join(client_out)})")
    part.replace(path)
    info = {
        "path": str(path),
        "packets": packets,
        "target": target,
        "bytes": path.stat().st_size,
        "tcpdump_captured": stats["captured"],
        "tcpdump_dropped": stats["dropped"],
        "nft_dropped_data_segments": nft_dropped,
        "build_seconds": round(time.monotonic() - t_start, 2),
        "clients": client_out,
    }
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def ensure_capture(cache_dir: Path, quick: bool, rebuild: bool, log: Any = None) -> dict[str, Any]:
    """The cached capture's description, building it first if missing or ``rebuild``."""
    path = capture_path(cache_dir, quick)
    meta = path.with_suffix(".json")
    if not rebuild and path.exists() and meta.exists():
        info: dict[str, Any] = json.loads(meta.read_text())
        info["reused"] = True
        return info
    target = QUICK_PACKETS if quick else FULL_PACKETS
    try:
        info = build_capture(path, target, max_seconds=60 if quick else 400, log=log)
    except BaseException:
        path.with_name(path.name + ".part").unlink(missing_ok=True)  # no half-written leftovers
        raise
    info["reused"] = False
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the tracer benchmark capture.")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_PACKETS:,} packets instead of 1M")
    p.add_argument("--rebuild", action="store_true", help="build even if a cached file exists")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    a = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the lab's namespaces are removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        info = ensure_capture(a.cache_dir, a.quick, a.rebuild)
    except (BuildError, LabError, subprocess.SubprocessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
