"""The kernel witness over the whole catalogue: coverage, states, drops, agreement, overhead.

    python bench/witness.py [--scenarios a,b] [--rates 5000,20000,50000] [--seconds 2] [--json] [--readme]

As root.  Every catalogue scenario (``tracer list``) runs twice in each lab (two hosts on
a veth pair, and ``--loopback``) as a user runs it, ``python -m tracer run NAME --no-tui``:
once with the kernel witness and once with ``--no-witness``.  Per scenario and lab it
reports, from the saved capture with the witness:

  tcp       TCP frames captured
  origin    of those, how many have a kernel origin (coverage %)
  states    kernel state changes recorded (``KernelAccount.states``)
  drops     frames the receiving kernel dropped (``KernelAccount.drops``)
  wall      the run's wall time without and with the witness

and, over every packet whose cause came from the kernel (``Analysis.cause_source ==
KERNEL``), per kernel reason how often the wire rules' reason (``inferred_reason``)
agreed.  Then the capture rate (``bench/capture_rate.py``'s paced senders, at each
``--rates``) without and with a witness on the lab's devices: frames lost by the
capture, the witness's ring-buffer overrun (``per_cpu/cpuN/stats``) and how many frames
the witness has no ``net_dev_queue`` record of, which is what that overrun costs.

``--readme`` saves the figures to bench/results/witness.json and rewrites the
``bench:witness`` block of docs/trace.md from them (``render``; the test
tests/test_bench_witness.py renders it again and compares).  Exit status 0, or 1 when a
run failed.
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

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DOC = REPO / "docs" / "trace.md"
NAME = "witness"
LABS = ("veth", "loopback")
SMALL_BUFFER_KB = 16  # per CPU: overruns at the highest rate (the witness's own is 8 MiB)


def run_one(name: str, lab: str, witness: bool, out: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``tracer run NAME`` as a user runs it; its wall time."""
    argv = [sys.executable, "-m", "tracer", "run", name, "--no-tui", "--out", str(out)]
    if lab == "loopback":
        argv.append("--loopback")
    if not witness:
        argv.append("--no-witness")
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    return time.monotonic() - t0, proc


def measure(path: Path) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Coverage, states and drops of one saved run, and per kernel reason [agreed, compared]."""
    from tracer.core.kernel_causes import reason_agreement
    from tracer.core.pipeline import analyze
    from tracer.pcap.reader import read_capture

    trace = read_capture(path)
    an = analyze(trace)
    t = trace.packets
    k = trace.kernel
    tcp = [i for i in range(len(t)) if t.proto_name(i) == "tcp"]
    origins = k.origin_of() if k is not None else {}
    missing = [i + 1 for i in tcp if i + 1 not in origins]
    drops: dict[str, int] = {}
    for d in (k.drops if k is not None else ()):
        drops[d.reason] = drops.get(d.reason, 0) + 1
    row = {
        "packets": len(t), "tcp": len(tcp), "origin": len(tcp) - len(missing), "missing": missing,
        "states": len(k.states) if k is not None else 0, "drops": drops,
        "overrun": k.overrun if k is not None else 0, "witness": k is not None,
        "state_disagreements": len(an.state_disagreements),
    }
    agree = {reason: list(v) for reason, v in reason_agreement(an).items()}
    return row, agree


def scenarios_table(names: list[str]) -> tuple[list[dict[str, Any]], dict[str, list[int]], bool]:
    rows: list[dict[str, Any]] = []
    agree: dict[str, list[int]] = {}
    ok = True
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            for lab in LABS:
                out = Path(d) / f"{name}-{lab}.pcapng"
                bare_s, bare = run_one(name, lab, False, Path(d) / "bare.pcapng")
                wall_s, proc = run_one(name, lab, True, out)
                if proc.returncode not in (0, 6) or not out.exists():
                    ok = False
                    why = proc.stderr.strip().splitlines()[-1:]
                    rows.append({"scenario": name, "lab": lab, "error": why})
                    continue
                row, a = measure(out)
                for reason, (n_ok, n) in a.items():
                    tot = agree.setdefault(reason, [0, 0])
                    tot[0] += n_ok
                    tot[1] += n
                row.update(scenario=name, lab=lab, wall_s=round(wall_s, 2), bare_wall_s=round(bare_s, 2),
                           bare_ok=bare.returncode == proc.returncode)
                rows.append(row)
                print(f"{name:<20} {lab:<8} tcp {row['tcp']:>4} origin {row['origin']:>4} "
                      f"states {row['states']:>3} drops {sum(row['drops'].values()):>2} "
                      f"wall {bare_s:.2f}s -> {wall_s:.2f}s missing {row['missing'][:8]}", flush=True)
    return rows, agree, ok


def capture_rates(rates: list[int], seconds: float) -> list[dict[str, Any]]:
    """capture_rate's run at each rate without and with a witness on the lab's devices."""
    sys.path.insert(0, str(BENCH))
    import capture_rate

    from tracer.lab.netns import Lab
    from tracer.lab.witness import BUFFER_KB, Witness

    out = []
    # The last row: the highest rate with a ring buffer too small to keep up, to show that the
    # overrun count is real (it matches the frames the witness has no record of).
    runs = [(rate, BUFFER_KB) for rate in rates] + [(max(rates), SMALL_BUFFER_KB)]
    with Lab(prefix="trcwit") as lab, tempfile.TemporaryDirectory() as d:
        for rate, kb in runs:
            bare = capture_rate.run_rate(lab, rate, seconds, Path(d))
            w = Witness((lab.client.iface, lab.server.iface), buffer_kb=kb)
            w.start()
            try:
                with_w = capture_rate.run_rate(lab, rate, seconds, Path(d))
            finally:
                records = w.stop()
            queued = sum(1 for r in records if r.event == "net_dev_queue")
            row = {"target": rate, "buffer_kb": kb,
                   "bare": {k: bare[k] for k in ("sent", "rate", "tracer", "tracer_loss_pct")},
                   "witness": {k: with_w[k] for k in ("sent", "rate", "tracer", "tracer_loss_pct")},
                   "overrun": w.overrun, "records": len(records), "queued": queued,
                   "unrecorded": max(with_w["sent"] - queued, 0)}
            out.append(row)
            print(f"rate {rate:>7}/s  buffer {kb} KiB  no witness: {bare['sent']} sent, "
                  f"{bare['tracer']} captured  "
                  f"witness: {with_w['sent']} sent, {with_w['tracer']} captured, overrun {w.overrun}, "
                  f"{queued} queue records", flush=True)
    return out


# --- the docs block (standard library only: the test renders it without a lab) ------------


def _pct(a: int, b: int) -> str:
    if not b:
        return "n/a"
    return "100" if a == b else f"{100 * a / b:.1f}"


def render(doc: dict[str, Any]) -> str:
    sys.path.insert(0, str(BENCH))
    from readme import _where, _wrap

    rows = doc["scenarios"]
    ok_rows = [r for r in rows if "error" not in r]
    tcp = sum(r["tcp"] for r in ok_rows)
    origin = sum(r["origin"] for r in ok_rows)
    lines = [*_wrap(f"Measured by `{doc['command']}`: every catalogue scenario in both labs, {origin:,} "
                    f"of {tcp:,} captured TCP frames ({_pct(origin, tcp)} %) with a kernel origin; "
                    f"{_where(doc)}."), "",
             "| scenario | lab | TCP frames | kernel origin | % | state changes | states disagreeing "
             "| drops | wall s (no witness / witness) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['scenario']} | {r['lab']} | failed | | | | | | |")
            continue
        drops = ", ".join(f"{n} {reason}" for reason, n in sorted(r["drops"].items())) or "0"
        lines.append(f"| {r['scenario']} | {r['lab']} | {r['tcp']} | {r['origin']} "
                     f"| {_pct(r['origin'], r['tcp'])} | {r['states']} | {r['state_disagreements']} "
                     f"| {drops} "
                     f"| {r['bare_wall_s']:.2f} / {r['wall_s']:.2f} |")
    bare = sum(r["bare_wall_s"] for r in ok_rows)
    wit = sum(r["wall_s"] for r in ok_rows)
    lines += ["", *_wrap(f"Wall time of all these runs: {bare:.1f} s without the witness, {wit:.1f} s "
                         "with it."), ""]
    agree = doc["agreement"]
    if agree:
        lines += ["| kernel reason | inferred reason agreed | packets | % |", "|---|---|---|---|"]
        for reason, (n_ok, n) in sorted(agree.items()):
            lines.append(f"| {reason} | {n_ok} | {n} | {_pct(n_ok, n)} |")
    else:
        lines += _wrap("No packet's cause came from the kernel in these runs (Analysis.cause_source "
                       "KERNEL), so there is no agreement table yet.")
    lines += ["", *_wrap("Capture rate (bench/capture_rate.py's paced senders, per target rate): frames "
                         "sent and lost by the capture without and with the witness, the witness's ring "
                         "buffer (per CPU), its overrun count (per_cpu/cpuN/stats) and the frames it has no "
                         "net_dev_queue record of (the last row's buffer is shrunk on purpose: the overrun "
                         "is counted, never silent)."), "",
              "| target frames/s | sent, no witness | lost | sent, witness | lost | buffer KiB | overrun "
              "| frames without a queue record |", "|---|---|---|---|---|---|---|---|"]
    for r in doc["capture"]:
        b, w = r["bare"], r["witness"]
        lines.append(f"| {r['target']:,} | {b['sent']:,} | {b['sent'] - b['tracer']:,} | {w['sent']:,} "
                     f"| {w['sent'] - w['tracer']:,} | {r['buffer_kb']:,} | {r['overrun']:,} "
                     f"| {r['unrecorded']:,} |")
    return "\n".join(lines)


def start_marker() -> str:
    return f"<!-- bench:{NAME} (written by python bench/{NAME}.py --readme; do not edit) -->"


def end_marker() -> str:
    return f"<!-- /bench:{NAME} -->"


def block(text: str) -> str | None:
    _, sep, rest = text.partition(start_marker() + "\n")
    inner, sep2, _ = rest.partition("\n" + end_marker())
    return inner if sep and sep2 else None


def write_doc(doc: dict[str, Any]) -> None:
    sys.path.insert(0, str(BENCH))
    from readme import RESULTS, machine

    doc = {**doc, "machine": machine()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n",
                                          encoding="utf-8")
    rewrite(doc)


def rewrite(doc: dict[str, Any]) -> None:
    """docs/trace.md's block, rendered from ``doc``."""
    text = DOC.read_text(encoding="utf-8")
    head, sep, rest = text.partition(start_marker())
    _, sep2, tail = rest.partition(end_marker())
    if not sep or not sep2:
        raise SystemExit(f"bench: {DOC} has no {start_marker()} ... {end_marker()} block")
    DOC.write_text(f"{head}{start_marker()}\n{render(doc)}\n{end_marker()}{tail}", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--scenarios", default="", help="comma-separated names (default: the whole catalogue)")
    ap.add_argument("--rates", default="5000,20000,50000")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--readme", action="store_true",
                    help="save the results and rewrite docs/trace.md's block")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite docs/trace.md's block from bench/results/witness.json")
    a = ap.parse_args()
    if a.render:
        rewrite(json.loads((BENCH / "results" / f"{NAME}.json").read_text(encoding="utf-8")))
        return 0
    from tracer.lab.scenarios import list_scenarios

    names = a.scenarios.split(",") if a.scenarios else [sc.name for sc in list_scenarios()]
    rows, agree, ok = scenarios_table(names)
    capture = capture_rates([int(r) for r in a.rates.split(",")], a.seconds) if a.rates else []
    command = "python bench/witness.py" + (f" --rates {a.rates}" if a.rates != "5000,20000,50000" else "")
    doc = {"command": command, "scenarios": rows, "agreement": agree, "capture": capture}
    if a.json:
        print(json.dumps(doc))
    if a.readme:
        write_doc(doc)
    print(f"{os.cpu_count()} CPUs; every frame with an origin: "
          f"{all(not r.get('missing') and 'error' not in r for r in rows)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
