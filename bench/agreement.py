"""Per-field agreement of tracer with ``tshark -2`` on a big capture (default: the bench's 1M).

    python bench/agreement.py [--quick] [--readme] [FILE]

Uses the very comparison the test suite runs on the corpus
(``oracle.agreement.compare``), so the figures mean the same thing:
per field, the rows where either tool says something, and how many are equal.
``--quick`` compares on the ~50,000-packet capture of ``run.py --quick``; ``--readme``
saves the figures to bench/results/agreement.json and rewrites README's
``bench:agreement`` block from them (see readme.py).  Exit status 2 if a field is
below 100 %.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import readme  # bench/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: oracle/ (shared with the tests)

from oracle.agreement import compare, not_compared  # noqa: E402
from oracle.tshark import version_text  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="per-field agreement of tracer with tshark -2")
    p.add_argument("file", nargs="?", type=Path, help="capture (default: the bench's capture)")
    p.add_argument("--quick", action="store_true", help="the ~50,000-packet capture of run.py --quick")
    p.add_argument("--readme", action="store_true",
                   help="save the figures to bench/results/agreement.json and rewrite README's block")
    a = p.parse_args(argv)
    cache = Path.home() / ".cache" / "tracer-bench"
    path = a.file or cache / ("foundation-50k.pcap" if a.quick else "foundation-1m.pcap")
    if not path.is_file():
        print(f"agreement: no capture at {path}; build it: python bench/make_capture.py"
              + (" --quick" if a.quick else ""), file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    result = compare(path)
    width = max(map(len, result))
    print(f"{path} ({time.perf_counter() - t0:.0f} s), oracle: {version_text()}")
    skipped = not_compared()
    for field, why in skipped.items():
        print(f"  {field}: not compared ({why})")
    worst = 1.0
    for field, (compared, equal, bad) in result.items():
        share = equal / compared if compared else 1.0
        worst = min(worst, share)
        first = f"  first differing frames: {bad[:5]}" if bad else ""
        print(f"  {field:<{width}}  {equal:>8}/{compared:<8} {100 * share:7.3f} %{first}")
    if a.readme:
        from tracer.pcap.reader import read_capture

        saved = readme.save_and_write("agreement", {
            "command": "python bench/agreement.py --readme" + (" --quick" if a.quick else ""),
            "packets": len(read_capture(path).packets), "oracle": version_text(), "not_compared": skipped,
            "fields": {f: {"compared": c, "equal": e} for f, (c, e, _bad) in result.items()}})
        print(f"saved {saved}; rewrote README's bench:agreement block", file=sys.stderr)
    return 0 if worst == 1.0 else 2


if __name__ == "__main__":
    sys.exit(main())
