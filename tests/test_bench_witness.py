"""docs/trace.md's kernel-witness table is what bench/witness.py measured: the block is
rendered from bench/results/witness.json alone (a figure typed by hand, or a stale one, fails)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.bench import load_bench

REPO = Path(__file__).resolve().parents[1]

bench = load_bench("witness")


def _doc() -> dict[str, object]:
    return json.loads((REPO / "bench" / "results" / "witness.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_block_is_rendered_from_the_saved_results() -> None:
    doc = _doc()
    text = (REPO / "docs" / "trace.md").read_text(encoding="utf-8")
    assert bench.block(text) == bench.render(doc), "run python bench/witness.py --readme"


def test_the_results_cover_the_catalogue_in_both_labs() -> None:
    from tracer.lab.scenarios import list_scenarios

    doc = _doc()
    rows = {(r["scenario"], r["lab"]) for r in doc["scenarios"]}  # type: ignore[attr-defined]
    assert rows == {(sc.name, lab) for sc in list_scenarios() for lab in ("veth", "loopback")}
    assert doc["capture"] and doc["machine"]
