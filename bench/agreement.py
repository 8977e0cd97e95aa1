"""Per-field agreement of tracer with ``tshark -2`` on a big capture (default: the bench's 1M).

    python bench/agreement.py [FILE]

Uses the very comparison the test suite runs on the corpus
(``oracle.agreement.compare``), so the figures mean the same thing:
per field, the rows where either tool says something, and how many are equal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the repository root: oracle/ (shared with the tests)

from oracle.agreement import compare, not_compared  # noqa: E402
from oracle.tshark import version_text  # noqa: E402


def main(argv: list[str]) -> int:
    default = Path.home() / ".cache" / "tracer-bench" / "foundation-1m.pcap"
    path = Path(argv[0]) if argv else default
    if not path.is_file():
        print(f"agreement: no capture at {path}; build it: python bench/make_capture.py", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    result = compare(path)
    width = max(map(len, result))
    print(f"{path} ({time.perf_counter() - t0:.0f} s), oracle: {version_text()}")
    for field, why in not_compared().items():
        print(f"  {field}: not compared ({why})")
    worst = 1.0
    for field, (compared, equal, bad) in result.items():
        share = equal / compared if compared else 1.0
        worst = min(worst, share)
        first = f"  first differing frames: {bad[:5]}" if bad else ""
        print(f"  {field:<{width}}  {equal:>8}/{compared:<8} {100 * share:7.3f} %{first}")
    return 0 if worst == 1.0 else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
