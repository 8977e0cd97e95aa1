"""The capture process: raw frames from a packet socket into a pcap file, no dissection.

Run inside the lab's namespace (``ip netns exec NS python -m tracer.lab.sniff_worker
--iface IF --out FILE``) by ``tracer.lab.sniffer.Sniffer``.  It opens scapy's
listening AF_PACKET socket on one interface, with a large receive buffer and kernel timestamps
(SO_TIMESTAMPNS), prints ``READY`` once bound, then copies every frame with its
timestamp straight into a nanosecond pcap file.  Per frame it does one
``recvmsg_into`` into a preallocated chunk and one ``pack_into`` of the record
header: that is what keeps up with tens of thousands of frames per second, where
dissecting each frame would not.

On a loopback device every frame reaches the socket twice (PACKET_OUTGOING, then
PACKET_HOST): the outgoing copy is dropped and counted, as libpcap does.

SIGTERM, SIGINT, ``stop`` on stdin or stdin closing (the parent died) start the
drain: reading goes on until the socket has been empty for ``--quiet`` seconds
(at most ``--max-drain``).  The chunk is written out whenever the socket goes idle,
so even a killed worker leaves the frames captured until shortly before.  On exit
it prints one JSON line of statistics, including the kernel's PACKET_STATISTICS.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from types import FrameType
from typing import BinaryIO

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35  # SCM_TIMESTAMPNS has the same value
IFF_LOOPBACK = 0x8

# ARPHRD_* (from /sys/class/net/IF/type) -> pcap LINKTYPE_*.
_LINKTYPES = {1: 1, 772: 1, 65534: 101}

PCAP_NS_MAGIC = 0xA1B23C4D
_REC = struct.Struct("<IIII")
_TS = struct.Struct("@ll")  # struct timespec
CHUNK = 16 << 20
IDLE_FLUSH = 0.05

_stop = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _stop
    _stop = True


def _sysfs_int(iface: str, name: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/{name}").read_text().strip(), 0)


# scapy's listening socket object owns the packet socket: keep it alive so that it
# is not closed under the capture loop.
_scapy_socket: object = None


def open_socket(iface: str, rcvbuf: int) -> socket.socket:
    """A non-blocking packet socket bound to ``iface``, kernel timestamps on.

    The socket comes from scapy's socket layer (``L2ListenSocket``: bound to the
    interface, frames queued before the bind flushed, SO_TIMESTAMPNS and aux data
    on); frames are then read raw from it and never dissected.
    """
    global _scapy_socket
    from scapy.arch.linux import L2ListenSocket

    listen = L2ListenSocket(iface=iface, promisc=False, nofilter=1)
    _scapy_socket = listen
    sock: socket.socket = listen.ins
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setblocking(False)
    return sock


def kernel_stats(sock: socket.socket) -> tuple[int, int]:
    """(frames the socket was offered, frames the kernel dropped for lack of room)."""
    packets, drops = struct.unpack("=II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return packets, drops


class _Writer:
    """Records built in place in one chunk, written out when full or idle."""

    def __init__(self, f: BinaryIO, snaplen: int) -> None:
        self.f = f
        self.snaplen = snaplen
        self.buf = bytearray(CHUNK)
        self.view = memoryview(self.buf)
        self.pos = 0
        self.last_flush = time.monotonic()

    def flush(self) -> None:
        if self.pos:
            self.f.write(self.view[: self.pos])
            self.f.flush()
            self.pos = 0
        self.last_flush = time.monotonic()


def capture(sock: socket.socket, w: _Writer, loopback: bool, quiet: float, max_drain: float,
            control: BinaryIO | None) -> dict[str, int]:
    received = kept = dups = 0
    snap, view, buf = w.snaplen, w.view, w.buf
    limit = CHUNK - snap - _REC.size
    # Room for the timestamp and scapy's PACKET_AUXDATA (struct tpacket_auxdata, 20 bytes).
    anc = socket.CMSG_SPACE(_TS.size) + socket.CMSG_SPACE(20)
    recv, pack, unpack = sock.recvmsg_into, _REC.pack_into, _TS.unpack_from
    sfd = sock.fileno()
    cfd = -1 if control is None else control.fileno()
    watch = [sfd] if cfd < 0 else [sfd, cfd]
    drain_end = 0.0
    while True:
        try:
            n, cmsgs, _, addr = recv([view[w.pos + 16 : w.pos + 16 + snap]], anc, socket.MSG_TRUNC)
        except BlockingIOError:
            if w.pos and time.monotonic() - w.last_flush > IDLE_FLUSH:
                w.flush()
            if _stop and not drain_end:
                drain_end = time.monotonic() + max_drain
            ready = select.select(watch, [], [], quiet if _stop else IDLE_FLUSH)[0]
            if _stop and (sfd not in ready or time.monotonic() > drain_end):
                break
            if cfd in ready and os.read(cfd, 64) in (b"", b"stop\n"):
                _on_signal(0, None)
                watch = [sfd]  # stdin at end of file would stay readable and cut the drain short
            continue
        received += 1
        if loopback and addr[2] == PACKET_OUTGOING:
            dups += 1
            continue
        ts = next((c[2] for c in cmsgs if c[1] == SO_TIMESTAMPNS), None)
        if ts is not None:
            sec, nsec = unpack(ts)
        else:  # never seen with SO_TIMESTAMPNS; keep the frame rather than fail
            sec, nsec = divmod(time.time_ns(), 1_000_000_000)
        pack(buf, w.pos, sec, nsec, min(n, snap), n)
        w.pos += 16 + min(n, snap)
        kept += 1
        if w.pos > limit:
            w.flush()
        if _stop:  # under constant traffic the socket never goes idle: bound the drain
            if not drain_end:
                drain_end = time.monotonic() + max_drain
            elif time.monotonic() > drain_end:
                break
    w.flush()
    return {"received": received, "kept": kept, "duplicates": dups}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--iface", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rcvbuf", type=int, default=64 << 20)
    ap.add_argument("--snaplen", type=int, default=262144)
    ap.add_argument("--quiet", type=float, default=0.1)
    ap.add_argument("--max-drain", type=float, default=5.0)
    ap.add_argument("--control-stdin", action="store_true")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        hatype = _sysfs_int(a.iface, "type")
        loopback = bool(_sysfs_int(a.iface, "flags") & IFF_LOOPBACK)
        linktype = _LINKTYPES.get(hatype)
        if linktype is None:
            raise OSError(f"unsupported link type ARPHRD {hatype}")
        sock = open_socket(a.iface, a.rcvbuf)
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        f = open(a.out, "wb")  # noqa: SIM115 (closed in finally)
    except OSError as e:
        print(f"ERROR {e}", flush=True)
        return 2
    try:
        f.write(struct.pack("<IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, a.snaplen, linktype))
        f.flush()
        print(f"READY {rcvbuf}", flush=True)
        control = sys.stdin.buffer if a.control_stdin else None
        stats = capture(sock, _Writer(f, a.snaplen), loopback, a.quiet, a.max_drain, control)
        packets, drops = kernel_stats(sock)
        stats.update(kernel_packets=packets, kernel_drops=drops, linktype=linktype, rcvbuf=rcvbuf)
    finally:
        f.close()
        sock.close()
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
