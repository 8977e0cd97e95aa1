"""README's performance section, written from the benches' saved results.

Each bench run with ``--readme`` saves its figures, the command, the machine and the
load average to ``bench/results/NAME.json`` and rewrites its block of README.md,
between ``<!-- bench:NAME ... -->`` and ``<!-- /bench:NAME -->``, rendered from that
JSON alone.  ``tests/test_bench_readme.py`` renders every block from the saved JSON
and compares it with README.md, so a figure typed by hand fails the test.

Standard library only: the test imports this module without the benches' tools.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH.parent / "README.md"
WIDTH = 88  # README's prose width


def machine() -> dict[str, Any]:
    """The CPUs, their model, the date and the load: the figures mean little without them."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " ".join(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def _where(doc: dict[str, Any]) -> str:
    """"2 CPUs (AMD EPYC), 2026-12-07; load average 3.9 / 3.7 / 5.0 (1, 5, 15 min)"."""
    m = doc["machine"]
    cpu = f" ({m['cpu']})" if m["cpu"] else ""
    load = " / ".join(f"{x:.2f}" for x in m["loadavg"])
    return f"{m['cpus']} CPUs{cpu}, {m['date']}; load average {load} (1, 5, 15 min) after the run"


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, break_on_hyphens=False)


def _secs(v: float) -> str:
    return f"{v:.0f} s" if v >= 100 else f"{v:.2f} s"


RUN_ROWS = (
    ("tracer_analysis", "tracer: read + streams + analysis flags + states + causes"),
    ("tshark", "`tshark -2 -T fields` (stream, seq, ack, flags, analysis)"),
    ("tracer_export", "`tracer export --format json -o /dev/null` (explanations included)"),
    ("scapy", "scapy `PcapReader`, iteration only (extrapolated from {slice})"),
)


def render_run(doc: dict[str, Any]) -> str:
    """bench/run.py: the analysis table."""
    note = (f"Measured by `{doc['command']}` on {doc['capture']['packets']:,} packets, {_where(doc)} "
            "(2.0 = both cores busy: other work slows the wall times, the CPU times less so).")
    lines = [*_wrap(note), "", "| | wall | CPU | packets/s | peak RSS |", "|---|---|---|---|---|"]
    for key, label in RUN_ROWS:
        r = doc["tools"][key]
        name = label.format(slice=f"{doc['scapy_slice'] // 1000}k")
        if not r["ok"]:
            lines.append(f"| {name} | failed | | | |")
            continue
        rss = "" if r["extrapolated"] else f"{r['peak_rss_mib']:.0f} MiB"
        lines.append(f"| {name} | {_secs(r['wall_s'])} | {_secs(r['cpu_s'])} | {r['packets_per_s']:,.0f} "
                     f"| {rss} |")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def _mem(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1024:.1f} GiB" if v >= 1024 else f"{v:.0f} MiB"


TUI_TEXT = (
    "`{command}` opens that capture ({packets:,} packets) in the terminal UI and in termshark{of}, each "
    "in a real {terminal} pseudo-terminal read through a terminal emulator (pyte): tracer shows its first "
    "rows after {first} (termshark {ts_first}), is fully loaded after {loaded} ({ts_loaded}), moves the "
    "selection one row in {j} ms median / {j_max} ms max and one page in {page} / {page_max} ms "
    "(termshark: {ts_j} / {ts_j_max} and {ts_page} / {ts_page_max} ms), and peaks at {memory} "
    "(termshark and its tshark children: {ts_memory}). {versions}; {where}."
)


def render_tui(doc: dict[str, Any]) -> str:
    """bench/tui.py: first screen, load, keys and memory, tracer vs termshark."""
    t = {row["metric"]: row for row in doc["table"]}
    values: dict[str, Any] = {
        "command": doc["command"], "packets": doc["packets"], "terminal": doc["terminal"],
        "versions": doc["versions"], "where": _where(doc),
        "of": "" if doc["repeat"] == 1 else f" (tracer: median of {doc['repeat']} runs)",
    }
    for key, metric, fmt in (("first", "first screen", _s), ("loaded", "fully loaded", _s),
                             ("j", "key j, median", _ms), ("j_max", "key j, max", _ms),
                             ("page", "key PageDown, median", _ms), ("page_max", "key PageDown, max", _ms),
                             ("memory", "peak memory", _mem)):
        values[key] = fmt(t[metric]["tracer"])
        values[f"ts_{key}"] = fmt(t[metric]["termshark"])
    return "\n".join(_wrap(TUI_TEXT.format(**values)))


def render_agreement(doc: dict[str, Any]) -> str:
    """bench/agreement.py: per field, the rows where either tool says something and how many agree."""
    fields = doc["fields"]
    compared = sum(f["compared"] for f in fields.values())
    equal = sum(f["equal"] for f in fields.values())
    seen = [f"{name.removeprefix('tcp.analysis.')} {f['equal']:,}/{f['compared']:,}"
            for name, f in fields.items() if f["compared"]]
    unset = sum(1 for f in fields.values() if not f["compared"])
    share = "100" if equal == compared else f"{100 * equal / compared:.3f}"  # 99.9996 is not 100
    skipped = "".join(f"; {name} not compared ({why})" for name, why in doc["not_compared"].items())
    text = (f"`{doc['command']}` compares tracer with `tshark -2` ({doc['oracle']}) on that capture "
            f"({doc['packets']:,} packets), per packet and field: of the rows where either tool says "
            f"something, {share} % agree ({equal:,} of {compared:,}; "
            f"agreeing/compared per field, tcp.analysis flags by their last name: {', '.join(seen)}; "
            f"{unset} more fields set by neither tool{skipped}). {_where(doc)}.")
    return "\n".join(_wrap(text))


def render_recorder(doc: dict[str, Any]) -> str:
    """bench/recorder.py: what recording costs one socket call, beside strace's cost."""
    us = doc["us_per_call"]
    strace = ("strace not measured" if us.get("strace") is None else
              f"under `{doc['strace']}` the same call costs {us['strace'] - us['plain']:.1f} µs more")
    text = (f"`{doc['command']}`: a socket call recorded by `tracer.lab.recorder` ({doc['call']}, best of "
            f"{doc['repeat']} loops of {doc['calls']:,} calls) costs {us['recorded'] - us['plain']:.1f} µs "
            f"more than a plain one ({us['plain']:.2f} µs plain, {us['recorded']:.2f} µs recorded); "
            f"{strace}. {doc['python']}; {_where(doc)}.")
    return "\n".join(_wrap(text))


# Block name -> its renderer, in the order of README's performance section.
RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "run": render_run,
    "tui": render_tui,
    "agreement": render_agreement,
    "recorder": render_recorder,
}


def start_marker(name: str) -> str:
    return f"<!-- bench:{name} (written by python bench/{name}.py --readme; do not edit) -->"


def end_marker(name: str) -> str:
    return f"<!-- /bench:{name} -->"


def block(text: str, name: str) -> str | None:
    """The text between ``name``'s markers in ``text`` (None without both markers)."""
    _, sep, rest = text.partition(start_marker(name) + "\n")
    inner, sep2, _ = rest.partition("\n" + end_marker(name))
    return inner if sep and sep2 else None


def load(name: str, results: Path = RESULTS) -> dict[str, Any]:
    return json.loads((results / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def stale(text: str, results: Path = RESULTS) -> list[str]:
    """The blocks of README ``text`` that differ from what their saved results render."""
    return [name for name in RENDER if block(text, name) != RENDER[name](load(name, results))]


def save_and_write(name: str, doc: dict[str, Any], readme: Path = README, results: Path = RESULTS) -> Path:
    """Save ``doc`` (plus the machine) as ``name``'s results; rewrite its README block from them."""
    doc = {**doc, "machine": machine()}
    results.mkdir(exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = readme.read_text(encoding="utf-8")
    start, end = start_marker(name), end_marker(name)
    head, sep, rest = text.partition(start)
    _, sep2, tail = rest.partition(end)
    if not sep or not sep2:
        raise SystemExit(f"bench: {readme} has no {start} ... {end} block")
    readme.write_text(f"{head}{start}\n{RENDER[name](load(name, results))}\n{end}{tail}", encoding="utf-8")
    return path


def main() -> int:
    """``python bench/readme.py``: rewrite every block from the saved results (after a wording change)."""
    text = README.read_text(encoding="utf-8")
    for name, render in RENDER.items():
        inner = block(text, name)
        if inner is None:
            raise SystemExit(f"bench: {README} has no {start_marker(name)} ... {end_marker(name)} block")
        start = start_marker(name) + "\n"
        text = text.replace(f"{start}{inner}\n", f"{start}{render(load(name))}\n")
    README.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
