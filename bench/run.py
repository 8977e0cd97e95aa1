"""The tracer benchmark: 1M real TCP packets, tracer vs tshark vs scapy.

    python bench/run.py [--quick] [--json] [--rebuild] [--repeat N] [--cache-dir DIR] [--readme]

Builds (once, cached in ``~/.cache/tracer-bench``) a capture of ~1,000,000
packets recorded between two network namespaces (see ``make_capture.py``), then
runs each tool in a fresh subprocess and records its wall time and its own peak
RSS (``os.wait4`` rusage of that child):

  tracer analysis  read_capture + analyze (streams, states, flags, causes; no output)
  tshark           tshark -2 -T fields (the fields the agreement tests compare)
  scapy            PcapReader over a slice, extrapolated to the full count
  tracer export    tracer export F --format json -o /dev/null

and prints packets/s, the ratios and PASS/FAIL against the project's targets.
``--readme`` also saves the figures to bench/results/run.json and rewrites README.md's
``bench:run`` block (the performance table) from them (see readme.py).
Exit status: 0 when every tool ran, 1 when one failed or the capture could not be
built, 3 with ``--check-targets`` when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import make_capture  # bench/ is sys.path[0] when run as a script
import readme

from tracer.lab.netns import LabError

TSHARK_FIELDS = ("frame.number", "tcp.stream", "tcp.seq", "tcp.ack", "tcp.flags", "tcp.analysis.flags")
SCAPY_SLICE = 100_000
QUICK_SCAPY_SLICE = 10_000

# Targets (docs/architecture.md): analysis >= 10x tshark's packets/s with at most
# half its memory; the user-visible JSON export >= 5x faster than tshark.
TARGET_ANALYSIS_SPEED = 10.0
TARGET_ANALYSIS_MEMORY = 0.5
TARGET_EXPORT_SPEED = 5.0

ANALYSIS_CODE = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from tracer.core.pipeline import analyze
from tracer.pcap.reader import read_capture
t1 = time.perf_counter()
trace = read_capture(Path(sys.argv[1]))
t2 = time.perf_counter()
analysis = analyze(trace)
t3 = time.perf_counter()
print(json.dumps({"packets": int(trace.packets.ts_ns.size), "import_s": t1 - t0,
                  "read_s": t2 - t1, "analyze_s": t3 - t2,
                  "tcp_streams": len(analysis.tcp_streams)}))
"""

SCAPY_CODE = """
import json, sys, time
t0 = time.perf_counter()
# scapy.all loads the protocol layers; scapy.utils alone would yield undissected Raw packets.
from scapy.all import TCP, PcapReader
t1 = time.perf_counter()
n = tcp = 0
with PcapReader(sys.argv[1]) as reader:
    for pkt in reader:
        n += 1
        tcp += TCP in pkt
t2 = time.perf_counter()
print(json.dumps({"packets": n, "tcp_packets": tcp, "import_s": t1 - t0, "loop_s": t2 - t1}))
"""


@dataclass
class Result:
    """One tool's measurement."""

    name: str
    command: str
    ok: bool = False
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user + system of the child: less sensitive to a busy machine than wall
    packets_per_s: float = 0.0
    peak_rss_mib: float = 0.0
    extrapolated: bool = False
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Run:
    wall_s: float
    cpu_s: float
    rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def _run_child(argv: list[str], discard_stdout: bool = False) -> _Run:
    """Run ``argv`` to completion; wall time and this child's own peak RSS (wait4 rusage).

    Linux carries the spawning process's RSS high-water mark into the child's
    ``ru_maxrss`` (the pre-exec image counts), so this process keeps itself small:
    output goes to files or /dev/null and is never held whole in memory.
    ``spawn_baseline`` measures what remains of that effect.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL if discard_stdout else out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return _Run(wall, cpu, usage.ru_maxrss / 1024.0, proc.returncode, out.read(), err.read())


def _best(argv: list[str], repeat: int, discard_stdout: bool = False) -> _Run:
    """The fastest of ``repeat`` runs (timing noise only adds time); stop at the first failure."""
    best: _Run | None = None
    for _ in range(repeat):
        run = _run_child(argv, discard_stdout)
        if run.returncode != 0:
            return run
        if best is None or run.wall_s < best.wall_s:
            best = run
    assert best is not None
    return best


def _tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _tracer_command() -> list[str]:
    """The installed ``tracer`` script of this interpreter, else ``python -m tracer``."""
    script = Path(sys.executable).with_name("tracer")
    if script.exists():
        return [str(script)]
    found = shutil.which("tracer")
    return [found] if found else [sys.executable, "-m", "tracer"]


def _finish(res: Result, run: _Run, packets: int) -> Result:
    res.wall_s = run.wall_s
    res.cpu_s = run.cpu_s
    res.peak_rss_mib = run.rss_mib
    if run.returncode != 0:
        res.note = f"exit status {run.returncode}: {_tail(run.stderr) or _tail(run.stdout)}"
        return res
    res.ok = True
    res.packets_per_s = packets / run.wall_s if run.wall_s > 0 else 0.0
    return res


def measure_analysis(capture: Path, packets: int, repeat: int) -> Result:
    res = Result("tracer analysis", "python -c 'read_capture + analyze' F")
    run = _best([sys.executable, "-c", ANALYSIS_CODE, str(capture)], repeat)
    _finish(res, run, packets)
    if res.ok:
        try:
            res.detail = json.loads(run.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res.detail = {}
        seen = res.detail.get("packets")
        if seen != packets:
            res.note = f"tracer read {seen} packets, the file holds {packets}"
    return res


def measure_tshark(capture: Path, packets: int, repeat: int) -> Result:
    argv = ["tshark", "-2", "-r", str(capture), "-T", "fields"]
    for f in TSHARK_FIELDS:
        argv += ["-e", f]
    res = Result("tshark -2 fields", " ".join(argv[:6]) + " -e ... > /dev/null")
    if shutil.which("tshark") is None:
        res.note = "tshark not found: apt-get install -y tshark"
        return res
    return _finish(res, _best(argv, repeat, discard_stdout=True), packets)


def spawn_baseline() -> float:
    """Peak RSS (MiB) reported for ``true``: the floor every measured child inherits."""
    true = shutil.which("true") or "/bin/true"
    return _run_child([true], discard_stdout=True).rss_mib


def measure_scapy(capture: Path, packets: int, slice_path: Path, slice_n: int, repeat: int) -> Result:
    res = Result("scapy PcapReader", f"PcapReader over {slice_n:,} packets, extrapolated",
                 extrapolated=True)
    run = _best([sys.executable, "-c", SCAPY_CODE, str(slice_path)], repeat)
    _finish(res, run, packets)
    if not res.ok:
        return res
    d = json.loads(run.stdout.strip().splitlines()[-1])
    res.detail = {**d, "slice_wall_s": run.wall_s}
    # Scale only the per-packet loop; interpreter start and the scapy import happen once.
    scale = packets / max(1, d["packets"])
    res.wall_s = run.wall_s - d["loop_s"] + d["loop_s"] * scale
    res.cpu_s = run.cpu_s - d["loop_s"] + d["loop_s"] * scale  # the loop is CPU-bound
    res.packets_per_s = packets / res.wall_s
    res.note = (f"EXTRAPOLATED from {d['packets']:,} packets ({d['loop_s']:.2f} s loop); "
                "peak RSS measured on the slice, not extrapolated")
    return res


def measure_export(capture: Path, packets: int, repeat: int) -> Result:
    argv = [*_tracer_command(), "export", str(capture), "--format", "json", "-o", os.devnull]
    res = Result("tracer export json", f"tracer export F --format json -o {os.devnull}")
    return _finish(res, _best(argv, repeat, discard_stdout=True), packets)


def _ensure_slice(cache_dir: Path, capture: Path, n: int) -> Path:
    path = cache_dir / f"{capture.stem}-slice{n // 1000}k.pcap"
    if not path.exists() or path.stat().st_mtime < capture.stat().st_mtime:
        make_capture.copy_slice(capture, path, n)
    return path


def _ratio(a: float, b: float) -> float | None:
    return a / b if a > 0 and b > 0 else None


def compare(results: dict[str, Result]) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    an, ts, sc, ex = (results[k] for k in ("tracer_analysis", "tshark", "scapy", "tracer_export"))
    ratios = {
        "analysis_vs_tshark_pps": _ratio(an.packets_per_s, ts.packets_per_s) if an.ok and ts.ok else None,
        "analysis_vs_tshark_memory": _ratio(an.peak_rss_mib, ts.peak_rss_mib) if an.ok and ts.ok else None,
        "export_vs_tshark_speed": _ratio(ts.wall_s, ex.wall_s) if ex.ok and ts.ok else None,
        "export_vs_tshark_memory": _ratio(ex.peak_rss_mib, ts.peak_rss_mib) if ex.ok and ts.ok else None,
        "analysis_vs_scapy_pps": _ratio(an.packets_per_s, sc.packets_per_s) if an.ok and sc.ok else None,
        "analysis_vs_tshark_cpu": _ratio(ts.cpu_s, an.cpu_s) if an.ok and ts.ok else None,
        "export_vs_tshark_cpu": _ratio(ts.cpu_s, ex.cpu_s) if ex.ok and ts.ok else None,
    }
    targets = []
    for key, goal, at_least, text in (
        ("analysis_vs_tshark_pps", TARGET_ANALYSIS_SPEED, True, "analysis packets/s >= 10x tshark"),
        ("analysis_vs_tshark_memory", TARGET_ANALYSIS_MEMORY, False, "analysis peak RSS <= 0.5x tshark"),
        ("export_vs_tshark_speed", TARGET_EXPORT_SPEED, True, "json export >= 5x faster than tshark"),
    ):
        value = ratios[key]
        passed = None if value is None else (value >= goal if at_least else value <= goal)
        targets.append({"name": key, "text": text, "value": value, "goal": goal, "pass": passed})
    return ratios, targets


def _print_report(capture: dict[str, Any], results: dict[str, Result],
                  ratios: dict[str, float | None], targets: list[dict[str, Any]]) -> None:
    built = "reused from cache" if capture.get("reused") else "built now"
    print(f"capture  {capture['path']}")
    print(f"         {capture['packets']:,} packets ({built} in {capture.get('build_seconds', '?')} s); "
          f"tcpdump dropped {capture.get('tcpdump_dropped')}; "
          f"nft dropped {capture.get('nft_dropped_data_segments')} data segments")
    print(f"         load average after the run: {capture['loadavg_1m_after']} (2.0 = both cores busy); "
          f"peak RSS floor of any child: {capture['spawn_baseline_rss_mib']} MiB")
    print()
    print(f"{'tool':<22}{'wall s':>10}{'CPU s':>9}{'packets/s':>14}{'peak RSS MiB':>15}")
    for r in results.values():
        if r.ok:
            mark = "  (extrapolated)" if r.extrapolated else ""
            print(f"{r.name:<22}{r.wall_s:>10.2f}{r.cpu_s:>9.2f}{r.packets_per_s:>14,.0f}"
                  f"{r.peak_rss_mib:>15.1f}{mark}")
        else:
            print(f"{r.name:<22}{'FAILED':>10}")
        if r.note:
            print(f"{'':<4}{r.note}")
        an = r.detail if r is results["tracer_analysis"] else {}
        if an:
            print(f"{'':<4}tracer phases: import {an.get('import_s', 0):.2f} s, "
                  f"read {an.get('read_s', 0):.2f} s, analyze {an.get('analyze_s', 0):.2f} s; "
                  f"{an.get('tcp_streams')} TCP streams")
    print()
    print("ratios")

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}x"

    print(f"  tracer analysis vs tshark: {fmt(ratios['analysis_vs_tshark_pps'])} packets/s, "
          f"{fmt(ratios['analysis_vs_tshark_memory'])} memory")
    print(f"  tracer export vs tshark:   {fmt(ratios['export_vs_tshark_speed'])} faster, "
          f"{fmt(ratios['export_vs_tshark_memory'])} memory")
    print(f"  tshark CPU / tracer CPU (steadier on a busy machine): "
          f"analysis {fmt(ratios['analysis_vs_tshark_cpu'])}, export {fmt(ratios['export_vs_tshark_cpu'])}")
    print(f"  tracer analysis vs scapy:  {fmt(ratios['analysis_vs_scapy_pps'])} packets/s "
          "(scapy extrapolated)")
    print()
    print("targets")
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "N/A "}[t["pass"]]
        print(f"  {verdict}  {t['text']}: {fmt(t['value'])}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="tracer benchmark: tracer vs tshark vs scapy on ~1M packets")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run on a ~{make_capture.QUICK_PACKETS:,}-packet capture")
    p.add_argument("--json", action="store_true", help="print machine-readable results only")
    p.add_argument("--rebuild", action="store_true", help="rebuild the capture even if cached")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts")
    p.add_argument("--check-targets", action="store_true", help="exit 3 if a target is missed")
    p.add_argument("--cache-dir", type=Path, default=make_capture.DEFAULT_CACHE,
                   help="where the capture is cached (default %(default)s)")
    p.add_argument("--readme", action="store_true",
                   help="rewrite README.md's performance table with this run's figures")
    a = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the lab's namespaces are removed on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if not a.quick and (a.rebuild or not make_capture.capture_path(a.cache_dir, False).exists()):
            log("building the 1M-packet capture (network namespaces + tcpdump, ~10-60 s) ...")
        capture = make_capture.ensure_capture(a.cache_dir, a.quick, a.rebuild, log=log)
    except (make_capture.BuildError, LabError, subprocess.SubprocessError, OSError) as e:
        log(f"error: cannot build the benchmark capture: {e}")
        return 1
    path = Path(capture["path"])
    n = int(capture["packets"])
    slice_n = min(QUICK_SCAPY_SLICE if a.quick else SCAPY_SLICE, n)
    slice_path = _ensure_slice(a.cache_dir, path, slice_n)
    repeat = max(1, a.repeat)
    results: dict[str, Result] = {}
    log("measuring tracer analysis ...")
    results["tracer_analysis"] = measure_analysis(path, n, repeat)
    log("measuring tshark ...")
    results["tshark"] = measure_tshark(path, n, repeat)
    log("measuring scapy ...")
    results["scapy"] = measure_scapy(path, n, slice_path, slice_n, repeat)
    log("measuring tracer export ...")
    results["tracer_export"] = measure_export(path, n, repeat)
    ratios, targets = compare(results)
    capture["loadavg_1m_after"] = round(os.getloadavg()[0], 2)  # other work skews timings
    capture["spawn_baseline_rss_mib"] = round(spawn_baseline(), 1)
    doc = {"quick": a.quick, "capture": capture, "tools": {k: asdict(r) for k, r in results.items()},
           "ratios": ratios, "targets": targets, "scapy_slice": slice_n,
           "command": "python bench/run.py --readme" + (" --quick" if a.quick else "")}
    if a.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_report(capture, results, ratios, targets)
    if a.readme and all(r.ok for r in results.values()):
        saved = readme.save_and_write("run", doc)
        log(f"saved {saved}; rewrote README's bench:run block")
    if not all(r.ok for r in results.values()):
        return 1
    if a.check_targets and not all(t["pass"] for t in targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
