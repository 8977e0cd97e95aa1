"""Live capture rate: the highest TCP packet rate tracer's sniffer captures without loss.

    python bench/capture_rate.py [--rates 5000,20000,50000,100000] [--seconds 3] [--json]

As root (it creates network namespaces).  For each target rate (frames per second
on the wire, both directions) it starts a fresh sink server in the lab's server
namespace and several paced client processes (small sends with TCP_NODELAY, so
every send is one data segment below the MSS and the stack's counters count
frames), captures the server's veth at the same time with tracer's ``Sniffer``
and with tcpdump (same 64 MiB buffer), and prints per rate:

  sent      TCP frames on the wire per the server's kernel counters
            (OutSegs + RetransSegs + InSegs; see ``tracer.lab.sniffer.tcp_segments``)
  rate      achieved frames/s
  tracer    frames in tracer's capture, its loss % and the packet socket's drops
  tcpdump   frames in tcpdump's file and its loss %
  stop      seconds from ``Sniffer.stop()`` to the decoded trace (drain + read)

and the highest rate at which each lost nothing.  Exit status 0 when every rate
ran, 1 on a lab failure, 3 when tracer lost frames at a rate tcpdump captured whole.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tracer.lab.netns import Lab, LabError
from tracer.lab.sniffer import Sniffer, counters_delta, kernel_counters, tcp_frames, tcp_segments
from tracer.pcap.reader import read_capture

PORT = 9100
PROCS = 4
# Measured: about 2 frames per paced send (the data segment and the sink's ACK,
# which reads at once); used only to aim at the target.
FRAMES_PER_SEND = 2.0

SINK = """
import selectors, socket, sys
n = int(sys.argv[1])
s = socket.create_server(("", PORT))
print("ready", flush=True)
sel = selectors.DefaultSelector()
for _ in range(n):
    c, _ = s.accept()
    sel.register(c, selectors.EVENT_READ)
open_ = n
while open_:
    for key, _ in sel.select():
        if not key.fileobj.recv(65536):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            open_ -= 1
""".replace("PORT", str(PORT))

SENDER = """
import socket, sys, time
host, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
c = socket.create_connection((host, PORT))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * 100
tick = 0.001
send = c.send
start = time.monotonic()
end = start + seconds
sent = 0.0
while True:
    now = time.monotonic()
    if now >= end:
        break
    due = (now - start) * rate
    while sent < due:
        send(msg)
        sent += 1
    time.sleep(tick)
c.close()
print(int(sent))
""".replace("PORT", str(PORT))


def run_rate(lab: Lab, rate: int, seconds: float, tmp: Path) -> dict[str, Any]:
    server = lab.server
    sink = server.popen([sys.executable, "-c", SINK, str(PROCS)], stdout=subprocess.PIPE)
    assert sink.stdout is not None
    if sink.stdout.readline().strip() != "ready":
        raise RuntimeError("sink server did not start")
    dump = tmp / f"tcpdump-{rate}.pcap"
    before = kernel_counters(server)
    t0 = time.monotonic()
    with lab.tcpdump(server, dump, extra=["-B", "65536"]) as td, Sniffer(server) as sn:
        per_proc = rate / FRAMES_PER_SEND / PROCS
        senders = [lab.client.popen([sys.executable, "-c", SENDER, server.ip, str(per_proc), str(seconds)],
                                    stdout=subprocess.PIPE) for _ in range(PROCS)]
        for p in senders:
            p.wait(timeout=seconds + 30)
        sink.wait(timeout=30)
        elapsed = time.monotonic() - t0
        time.sleep(0.1)  # the last ACKs reach the wire
        t_stop = time.monotonic()
        cap = sn.stop()  # drain + read back + decode
        stop_s = time.monotonic() - t_stop
    delta = counters_delta(before, kernel_counters(server))
    assert td.stderr is not None
    td_note = " ".join(td.stderr.read().split())
    sent = tcp_segments(delta)
    ours = tcp_frames(cap.trace.packets)
    theirs = tcp_frames(read_capture(dump).packets)
    dump.unlink()
    return {
        "target": rate, "sent": sent, "rate": round(sent / seconds), "elapsed_s": round(elapsed, 2),
        "retrans": delta.get("Tcp.RetransSegs", 0),
        "tracer": ours, "tracer_loss_pct": _loss(sent, ours), "tracer_kernel_drops": cap.stats.kernel_drops,
        "tcpdump": theirs, "tcpdump_loss_pct": _loss(sent, theirs), "tcpdump_stats": td_note,
        "sniffer_stop_s": round(stop_s, 3),
    }


def _loss(sent: int, got: int) -> float:
    return round(100.0 * (sent - got) / sent, 4) if sent else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rates", default="5000,20000,50000,100000,200000,300000")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rates = [int(r) for r in a.rates.split(",")]
    rows = []
    try:
        with Lab(prefix="trccap") as lab, tempfile.TemporaryDirectory() as d:
            for rate in rates:
                row = run_rate(lab, rate, a.seconds, Path(d))
                rows.append(row)
                if not a.json:
                    print(f"target {row['target']:>7}/s  sent {row['sent']:>7} ({row['rate']:>6}/s, "
                          f"{row['retrans']} retrans)  tracer {row['tracer']:>7} "
                          f"loss {row['tracer_loss_pct']:.4f}% drops {row['tracer_kernel_drops']}  "
                          f"tcpdump {row['tcpdump']:>7} loss {row['tcpdump_loss_pct']:.4f}%  "
                          f"stop {row['sniffer_stop_s']:.2f}s", flush=True)
    except LabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    best = max((r["rate"] for r in rows if r["tracer"] == r["sent"]), default=0)
    best_td = max((r["rate"] for r in rows if r["tcpdump"] == r["sent"]), default=0)
    if a.json:
        print(json.dumps({"rows": rows, "tracer_lossless_max": best, "tcpdump_lossless_max": best_td}))
    else:
        print(f"highest loss-free rate: tracer {best}/s, tcpdump {best_td}/s "
              f"({os.cpu_count()} CPUs, {PROCS} sender processes)")
    worse = any(r["tracer"] < r["sent"] <= r["tcpdump"] for r in rows)
    return 3 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
