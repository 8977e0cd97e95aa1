"""What recording costs a socket call: tracer's recorder vs a plain call vs strace.

    python bench/recorder.py [--calls N] [--repeat N] [--json] [--readme]

One scenario script makes N ``getsockname()`` calls on a bound UDP socket in a loop
(``--repeat`` loops; the fastest counts: noise only adds time) and prints the time per
call, measured inside the script so that interpreter start is left out.  It runs
three times, each in a fresh child:

  plain      python SCRIPT
  recorded   python -m tracer.lab.recorder --out FILE --side bench SCRIPT
  strace     strace -f -qq -e trace=getsockname -o /dev/null python SCRIPT
             (the other way to see a program's socket calls, and what ``tracer trace`` uses)

The recorder's overhead is recorded - plain; strace's is strace - plain.  No network
or lab is needed: the socket is bound to 127.0.0.1.  ``--readme`` saves the figures to
bench/results/recorder.json and rewrites README's block (see readme.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import readme  # bench/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
STRACE = "strace -f -qq -e trace=getsockname -o /dev/null"
SCRIPT = """
import socket, sys, time
n, repeat = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
best = None
for _ in range(repeat):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        s.getsockname()
    per = (time.perf_counter_ns() - t0) / n
    best = per if best is None else min(best, per)
s.close()
print(best / 1000)
"""


def _per_call_us(argv: list[str]) -> float:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"recorder bench: {argv[0]} failed: {out.stderr.strip()[-500:]}")
    return float(out.stdout.strip().splitlines()[-1])


def measure(calls: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tracer-bench-rec-") as tmp:
        script = Path(tmp) / "calls.py"
        script.write_text(SCRIPT)
        args = [str(script), str(calls), str(repeat)]
        us: dict[str, float | None] = {
            "plain": _per_call_us([sys.executable, *args]),
            "recorded": _per_call_us([sys.executable, "-m", "tracer.lab.recorder", "--out",
                                      str(Path(tmp) / "calls.jsonl"), "--side", "bench", *args]),
            "strace": (_per_call_us([*STRACE.split(), sys.executable, *args])
                       if shutil.which("strace") else None),
        }
    return {"call": "getsockname", "calls": calls, "repeat": repeat, "us_per_call": us, "strace": STRACE,
            "python": f"Python {platform.python_version()}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="per-call cost of tracer's socket-call recorder")
    p.add_argument("--calls", type=int, default=20_000, help="calls per loop (default %(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="loops; the fastest counts (default %(default)s)")
    p.add_argument("--json", action="store_true", help="print machine-readable results")
    p.add_argument("--readme", action="store_true", help="save the results and rewrite README's block")
    a = p.parse_args(argv)
    doc = measure(a.calls, a.repeat)
    doc["command"] = "python bench/recorder.py" + (" --readme" if a.readme else "")
    us = doc["us_per_call"]
    if a.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"{doc['call']}: {us['plain']:.2f} us plain, {us['recorded']:.2f} us recorded "
              f"(+{us['recorded'] - us['plain']:.2f} us per call)")
        if us["strace"] is not None:
            print(f"{'':>{len(doc['call'])}}  {us['strace']:.2f} us under {STRACE} "
                  f"(+{us['strace'] - us['plain']:.2f} us per call)")
    if a.readme:
        path = readme.save_and_write("recorder", doc)
        print(f"saved {path.relative_to(REPO)}; rewrote README's bench:recorder block", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
