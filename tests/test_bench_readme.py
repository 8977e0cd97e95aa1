"""README's performance section is what the benches wrote: every block rendered from the
results saved in bench/results/ (a figure typed by hand, or a stale one, fails)."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.bench import load_bench

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

bench = load_bench("readme")


def _section(text: str) -> str:
    return text.split("## Speed and correctness, measured", 1)[1].split("\n## ", 1)[0]


def test_every_block_is_rendered_from_the_saved_results() -> None:
    text = README.read_text(encoding="utf-8")
    for name, render in bench.RENDER.items():
        doc = bench.load(name)
        assert doc["machine"]["loadavg"] and doc["machine"]["cpus"], name  # the load is stated
        assert bench.block(text, name) == render(doc), f"README's bench:{name} block is not what " \
            f"bench/results/{name}.json gives: run python bench/{name}.py --readme"


def test_the_section_has_no_figure_outside_the_blocks() -> None:
    section = _section(README.read_text(encoding="utf-8"))
    for name in bench.RENDER:
        inner = bench.block(section, name)
        assert inner is not None, f"no bench:{name} block in README's performance section"
        section = section.replace(inner, "")
    # What is left is prose: the capture's description, never a measured time, rate or size.
    assert not re.findall(r"\d[\d,.]*\s*(?:s|ms|µs|MiB|GiB|x|packets/s)\b", section), section


def test_a_hand_edit_is_caught() -> None:
    text = README.read_text(encoding="utf-8")
    inner = bench.block(text, "run")
    edited = text.replace(inner, re.sub(r"\| (\d)", r"| 9\1", inner, count=1))
    assert edited != text
    assert bench.stale(text) == []
    assert bench.stale(edited) == ["run"]
