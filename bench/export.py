"""The lesson exports on a big capture: build_lesson and each format, against tshark.

    python bench/export.py [FILE] [--repeat N] [--json] [--mmdc]

FILE defaults to the largest capture with TCP conversations in the corpus
(``MANIFEST.tsv`` beside it, ``../shared/corpus``); any capture works, e.g. a slice
of ``make_capture.py``'s output (``editcap -r BIG SLICE 1-20000``): the exports
are meant for lessons, and their cost grows with the number of steps.

Measured, each in a fresh child process (the fastest of ``--repeat`` runs):

  tshark           tshark -r F -T fields -e frame.number -e tcp.flags -e tcp.seq
                   -e tcp.ack -e tcp.len > /dev/null  (the reference)
  stages           one child times each stage on its own: load (read_capture +
                   analyze), build_lesson(en), then each renderer on that lesson:
                   svg, mermaid, packetdrill (the first stream, server side),
                   markdown.  A format whose module is missing is skipped with a note.
  tracer export    tracer export F --format X -o /dev/null per format: what a user
                   waits for, interpreter start and imports included

and prints a table with each time, microseconds per packet and the ratio
tshark / it (above 1: faster than tshark).  ``--mmdc`` also renders the Mermaid
diagram of the first 100, 500 and 2,000 steps (as many as the lesson has) with
mermaid-cli, once with its default ``maxTextSize`` (50,000 characters; a longer
text is drawn as an error message, and mmdc still exits 0) and once with the
limit raised, and times each.  Exit status: 0 when everything ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from run import _tracer_command  # bench/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
TSHARK_FIELDS = ("frame.number", "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len")
FORMATS = ("svg", "mermaid", "packetdrill", "markdown")
MMDC_STEPS = (100, 500, 2000)

# The child that times each stage; each renderer is imported only when it is timed.
STAGES_CODE = """
import importlib, json, sys, time
t0 = time.perf_counter()
from tracer.loading import load
from tracer.lesson.steps import build_lesson
t1 = time.perf_counter()
trace, analysis = load(sys.argv[1])
t2 = time.perf_counter()
lesson = build_lesson(trace, analysis, "en")
t3 = time.perf_counter()
out = {"packets": len(trace.packets), "steps": len(lesson.steps), "tcp_streams": len(analysis.tcp_streams),
       "import_s": t1 - t0, "load_s": t2 - t1, "lesson_s": t3 - t2, "formats": {}}
calls = {"svg": ("tracer.export.svg", "render_svg", lambda f: f(lesson)),
         "mermaid": ("tracer.export.mermaid", "render_mermaid", lambda f: f(lesson)),
         "packetdrill": ("tracer.export.packetdrill", "render_packetdrill",
                         lambda f: f(trace, analysis, side="server")),
         "markdown": ("tracer.export.handout", "render_markdown", lambda f: f(lesson))}
for name in sys.argv[2:]:
    module, func, call = calls[name]
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as e:
        out["formats"][name] = {"skipped": f"{module}.{func} is missing ({e})"}
        continue
    t4 = time.perf_counter()
    text = call(fn)
    out["formats"][name] = {"s": time.perf_counter() - t4, "chars": len(text)}
print(json.dumps(out))
"""

MERMAID_CODE = """
import sys
from pathlib import Path
from tracer.loading import load
from tracer.export.mermaid import render_mermaid
from tracer.lesson.steps import build_lesson
trace, analysis = load(sys.argv[1])
lesson = build_lesson(trace, analysis, "en")
print(len(lesson.steps))
for n in sys.argv[3:]:
    if int(n) <= len(lesson.steps):
        text = render_mermaid(lesson, max_steps=int(n))
        Path(sys.argv[2], f"steps{n}.mmd").write_text(text, encoding="utf-8")
"""


@dataclass
class Row:
    """One line of the table."""

    name: str
    wall_s: float | None = None
    note: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def default_capture() -> Path | None:
    """The corpus capture with TCP conversations and the most packets (per MANIFEST.tsv)."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return None
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t")
                if r["tcp_conversations"].isdigit() and int(r["tcp_conversations"]) > 0
                and r["packets"].isdigit() and "MALFORMED" not in r["notes"]]
    if not rows:
        return None
    return CORPUS / max(rows, key=lambda r: int(r["packets"]))["file"]


def _run(argv: list[str], repeat: int, stdout: bool = False) -> tuple[float, str, str, int]:
    """(fastest wall time, stdout of that run, stderr, exit status); stops at a failure."""
    best: tuple[float, str, str, int] | None = None
    for _ in range(repeat):
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            t0 = time.perf_counter()
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stderr=err, cwd=REPO, check=False,
                                  stdout=out if stdout else subprocess.DEVNULL).returncode
            wall = time.perf_counter() - t0
            out.seek(0)
            err.seek(0)
            run = (wall, out.read(), err.read(), code)
        if code != 0:
            return run
        if best is None or wall < best[0]:
            best = run
    assert best is not None
    return best


def _tail(text: str, lines: int = 4) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def measure(capture: Path, repeat: int) -> tuple[dict[str, Any], list[Row]]:
    rows: list[Row] = []
    argv = ["tshark", "-r", str(capture), "-T", "fields"]
    for f in TSHARK_FIELDS:
        argv += ["-e", f]
    tshark = Row("tshark -T fields " + " ".join(f"-e {f}" for f in TSHARK_FIELDS[:2]) + " ...")
    if shutil.which("tshark") is None:
        tshark.note = "tshark not found: apt-get install -y tshark"
    else:
        wall, _, err, code = _run(argv, repeat)
        if code == 0:
            tshark.wall_s = wall
        else:
            tshark.note = f"exit status {code}: {_tail(err)}"
    rows.append(tshark)

    best: dict[str, Any] | None = None
    for _ in range(repeat):
        _, out, err, code = _run([sys.executable, "-c", STAGES_CODE, str(capture), *FORMATS], 1, stdout=True)
        if code != 0:
            rows.append(Row("stages", note=f"exit status {code}: {_tail(err)}"))
            return {}, rows
        got = json.loads(out.strip().splitlines()[-1])
        if best is None:
            best = got
        else:  # keep each stage's fastest time
            for k in ("import_s", "load_s", "lesson_s"):
                best[k] = min(best[k], got[k])
            for name, d in got["formats"].items():
                if "s" in d:
                    best["formats"][name]["s"] = min(best["formats"][name]["s"], d["s"])
    assert best is not None
    rows.append(Row("import tracer (cli, lesson)", best["import_s"]))
    rows.append(Row("load: read + analyze", best["load_s"]))
    rows.append(Row(f"build_lesson (en): {best['steps']:,} steps", best["lesson_s"]))
    for name in FORMATS:
        d = best["formats"][name]
        label = "packetdrill (stream 0, server)" if name == "packetdrill" else name
        rows.append(Row(f"  render {label}", d.get("s"), d.get("skipped", ""),
                        {"chars": d.get("chars")} if "chars" in d else {}))
    for name in FORMATS:
        row = Row(f"tracer export --format {name}")
        if "skipped" in best["formats"][name]:
            row.note = "skipped: " + best["formats"][name]["skipped"]
        else:
            wall, _, err, code = _run([*_tracer_command(), "export", str(capture), "--format", name,
                                       "-o", os.devnull], repeat)
            if code == 0:
                row.wall_s = wall
            else:
                row.note = f"exit status {code}: {_tail(err)}"
        rows.append(row)
    return best, rows


def measure_mmdc(capture: Path) -> list[Row]:
    """mermaid-cli on the first 100/500/2000 steps, default limit and raised limit."""
    exe = shutil.which("mmdc")
    if exe is None:
        return [Row("mmdc", note="mermaid-cli not found: npm install -g @mermaid-js/mermaid-cli")]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        made = subprocess.run([sys.executable, "-c", MERMAID_CODE, str(capture), tmp, *map(str, MMDC_STEPS)],
                              capture_output=True, text=True, cwd=REPO, check=False)
        if made.returncode != 0:
            return [Row("mmdc", note=f"cannot build the diagrams: {_tail(made.stderr)}")]
        steps = int(made.stdout.split()[0])
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        (d / "p.json").write_text(json.dumps({"executablePath": chromium,
                                              "args": ["--no-sandbox", "--disable-gpu"]}))
        (d / "big.json").write_text(json.dumps({"maxTextSize": 100_000_000}))
        for n in MMDC_STEPS:
            src = d / f"steps{n}.mmd"
            if not src.exists():
                rows.append(Row(f"mmdc {n} steps", note=f"the lesson has only {steps:,} steps"))
                continue
            chars = len(src.read_text(encoding="utf-8"))
            for limit, extra in (("default limit", []), ("limit raised", ["-c", str(d / "big.json")])):
                svg = d / f"steps{n}-{len(extra)}.svg"
                t0 = time.perf_counter()
                cmd = [exe, "-q", "-p", str(d / "p.json"), *extra, "-i", str(src), "-o", str(svg)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                wall = time.perf_counter() - t0
                row = Row(f"mmdc {n} steps ({chars:,} chars), {limit}",
                          wall if proc.returncode == 0 else None)
                if proc.returncode != 0:
                    row.note = f"exit status {proc.returncode}: {_tail(proc.stderr)}"
                else:
                    text = svg.read_text(encoding="utf-8")
                    drawn = text.count('class="messageText"')
                    refused = "Maximum text size in diagram exceeded" in text
                    row.note = "REFUSED: 'Maximum text size in diagram exceeded'" if refused else \
                        f"{drawn:,} messages drawn, SVG {len(text) / 1e6:.1f} MB"
                    row.detail = {"chars": chars, "messages": drawn, "refused": refused,
                                  "svg_bytes": len(text)}
                rows.append(row)
    return rows


def _print(capture: Path, info: dict[str, Any], rows: list[Row], mmdc: list[Row]) -> None:
    packets = int(info.get("packets") or 0)
    print(f"capture  {capture}")
    if info:
        print(f"         {packets:,} packets, {info['steps']:,} lesson steps, "
              f"{info['tcp_streams']} TCP streams")
    print(f"         load average after the run: {os.getloadavg()[0]:.2f}")
    print()
    ref = rows[0].wall_s
    print(f"{'step':<46}{'wall s':>9}{'us/packet':>11}{'tshark/it':>11}")
    for r in rows:
        if r.wall_s is None:
            print(f"{r.name:<46}{'-':>9}{'':>11}{'':>11}  {r.note}")
            continue
        per = f"{r.wall_s / packets * 1e6:.1f}" if packets else "-"
        ratio = f"{ref / r.wall_s:.2f}x" if ref and r.wall_s > 0 else "-"
        chars = f"  ({r.detail['chars']:,} chars)" if r.detail.get("chars") else ""
        print(f"{r.name:<46}{r.wall_s:>9.3f}{per:>11}{ratio:>11}{chars}{'  ' + r.note if r.note else ''}")
    if mmdc:
        print()
        print(f"{'mermaid-cli (one mmdc start each, Chromium)':<58}{'wall s':>9}")
        for r in mmdc:
            wall = f"{r.wall_s:.2f}" if r.wall_s is not None else "-"
            print(f"{r.name:<58}{wall:>9}  {r.note}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="time build_lesson and the svg/mermaid/packetdrill/markdown "
                                            "exports against tshark")
    p.add_argument("file", nargs="?", type=Path, help="capture (default: the largest TCP one in the corpus)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per measurement; the fastest counts (default 3)")
    p.add_argument("--json", action="store_true", help="print machine-readable results only")
    p.add_argument("--mmdc", action="store_true", help="also time mermaid-cli on 100/500/2000 steps")
    a = p.parse_args(argv)
    capture = a.file or default_capture()
    if capture is None or not capture.is_file():
        print(f"error: no capture: give FILE (the corpus is expected at {CORPUS})", file=sys.stderr)
        return 1
    info, rows = measure(capture.resolve(), max(1, a.repeat))
    mmdc = measure_mmdc(capture.resolve()) if a.mmdc else []
    if a.json:
        print(json.dumps({"capture": str(capture), "info": info, "rows": [asdict(r) for r in rows],
                          "mmdc": [asdict(r) for r in mmdc]}, indent=2))
    else:
        _print(capture, info, rows, mmdc)
    failed = [r for r in rows + mmdc if r.wall_s is None and not r.note.startswith(("skipped", "the lesson"))]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
