"""Shared test fixtures: the real-capture corpus, tshark as the oracle, and the markers' guard.

The corpus lives beside the repository (``../shared/corpus``, or ``$TRACER_CORPUS``),
not in it.  Without it the corpus-free tests still run and every test that reads it
fails with one line naming where it was expected.  ``tshark_fields`` runs the real
tshark (``oracle.tshark``); if tshark is missing the test fails (CI installs it),
it is never skipped.

Markers say what a test needs (registered in pyproject.toml): ``lab`` (root and
network namespaces), ``tshark``, ``browser`` (headless Chromium), ``slow``.  The
guard below fails, not skips, a test that starts a program its markers do not
declare, so the fast suite ``pytest -m "not lab and not browser"``
cannot quietly start needing root.  A ``lab`` test run without root fails with
one line saying so.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest

from oracle.tshark import tshark_fields, tshark_version, version_text
from tracer.lab.netns import Lab
from tracer.lesson.steps import Lesson

__all__ = ["tshark_fields", "tshark_version", "version_text"]  # re-exported for the tests

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TRACER_CORPUS") or REPO.parent / "shared" / "corpus").resolve()
CAPTURES = REPO / "captures"
CORPUS_MISSING = (f"capture corpus missing at {CORPUS}: put ../shared/corpus beside the clone "
                  "or set TRACER_CORPUS")

# Hypothesis example counts: CI (README line 2 sets HYPOTHESIS_PROFILE=ci) runs each property
# with its full count; the default "dev" profile, the fast loop, runs a tenth (at least 10).
HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
if HYPOTHESIS_PROFILE not in ("ci", "dev"):
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={HYPOTHESIS_PROFILE!r}: use ci (full counts) or dev")


def examples(full: int) -> int:
    """The ``max_examples`` for a property whose CI count is ``full``."""
    return full if HYPOTHESIS_PROFILE == "ci" else max(10, full // 10)



def corpus_present() -> bool:
    return (CORPUS / "MANIFEST.tsv").is_file()


@cache
def corpus_manifest() -> dict[str, dict[str, str]]:
    """``MANIFEST.tsv`` rows keyed by file name."""
    if not corpus_present():
        raise FileNotFoundError(CORPUS_MISSING)
    with (CORPUS / "MANIFEST.tsv").open(newline="", encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def corpus_files(*, malformed: bool | None = False, notes: str = "") -> list[Path]:
    """Corpus captures, sorted by name.

    ``malformed=False``: only the readable ones; ``True``: only the MALFORMED ones;
    ``None``: all; ``notes``: only those whose MANIFEST notes contain it.  Without the
    corpus: one placeholder (the missing manifest), so that collection succeeds and each
    test parametrized with it fails with ``CORPUS_MISSING``.
    """
    if not corpus_present():
        return [CORPUS / "MANIFEST.tsv"]
    out = []
    for name, row in sorted(corpus_manifest().items()):
        is_bad = "MALFORMED" in row["notes"]
        if (malformed is None or malformed == is_bad) and notes in row["notes"]:
            out.append(CORPUS / name)
    return out


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The corpus directory; fails (not skips) when it is absent."""
    assert corpus_present(), CORPUS_MISSING
    return CORPUS


@pytest.fixture(scope="session")
def scenario_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``scenario_run(NAME)``: the capture of one real ``tracer run NAME`` in the lab, made
    once per test session and shared by every module that asks for it (root: CI is root)."""
    made: dict[str, Path] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}

    def get(name: str) -> Path:
        if name not in made:
            path = tmp_path_factory.mktemp("runs") / f"{name}.pcapng"
            argv = [sys.executable, "-m", "tracer", "run", name, "--no-tui", "--out", str(path)]
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
                                  check=False)
            assert proc.returncode == 0, proc.stderr
            made[name] = path
        return made[name]

    return get


def tiled_lesson(n: int, lang: str = "en") -> Lesson:
    """A big lesson of ``n`` real steps: those of a 1,556-packet corpus capture, repeated."""
    from tracer.lesson.steps import build_lesson
    from tracer.loading import load

    trace, analysis = load(str(CORPUS / "zeek__http__206_example_b.pcap"))
    base = build_lesson(trace, analysis, lang)
    reps = -(-n // len(base.steps))
    steps = tuple(dataclasses.replace(s, index=k) for k, s in enumerate((base.steps * reps)[:n]))
    return Lesson(steps, lang, "large", base.t0_ns)


def ns_pids(prefix: str) -> set[int]:
    """The processes still inside the network namespaces whose names start with ``prefix``."""
    from tracer.lab.netns import list_namespaces

    pids: set[int] = set()
    for ns in list_namespaces():
        if ns.startswith(prefix):
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            pids.update(int(p) for p in out.split())
    return pids


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, *, every: float = 0.02,
             show: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` until it returns something true and return that; fail naming
    ``what`` after ``timeout`` seconds, followed by ``show()`` (the state seen last, e.g. a
    screen).  For waiting on a real condition, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}" + (f"; {show()}" if show else ""), pytrace=False)
        time.sleep(every)


# --- markers and their guard ------------------------------------------------------------

# A program's name -> the marker a test that starts it must carry.
PROGRAM_MARKERS = {
    "ip": "lab", "nft": "lab", "tcpdump": "lab", "unshare": "lab", "nsenter": "lab", "tc": "lab",
    "tshark": "tshark", "capinfos": "tshark", "editcap": "tshark", "mergecap": "tshark",
    "chromium": "browser", "chromedriver": "browser", "mmdc": "browser",
}
# ``python -m tracer COMMAND``: the commands that build the lab.
LAB_COMMANDS = {"run", "trace"}
_marks: set[str] | None = None  # the running test's markers (setup and call are checked)
_undeclared: list[str] = []


def _needs(argv: list[str]) -> tuple[str, str] | None:
    """(marker, reason) that starting ``argv`` needs, if any."""
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name in PROGRAM_MARKERS:
        return PROGRAM_MARKERS[name], f"starts {name}"
    for k in range(len(argv) - 2):
        if argv[k] == "-m" and argv[k + 1] == "tracer" and argv[k + 2] in LAB_COMMANDS:
            return "lab", f"runs `tracer {argv[k + 2]}`"
    return None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _marks is None:
        return
    need: tuple[str, str] | None = None
    if event == "subprocess.Popen":
        argv = args[1]
        argv = [argv] if isinstance(argv, str | bytes | os.PathLike) else list(argv)
        need = _needs([os.fsdecode(a) for a in argv])
    if need is not None and need[0] not in _marks:
        _undeclared.append(f"{need[1]} but is not marked `{need[0]}`")


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    global _marks
    _marks = {m.name for m in item.iter_markers()}
    _undeclared.clear()
    if "lab" in _marks and os.geteuid() != 0:
        pytest.fail("this test is marked `lab`: it needs root and network namespaces "
                    "(CI runs as root); without root run pytest -m \"not lab and not browser\"",
                    pytrace=False)
    try:
        return (yield)
    finally:
        _check_declared()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        _check_declared()


def _check_declared() -> None:
    if _undeclared:
        what = "; ".join(dict.fromkeys(_undeclared))
        _undeclared.clear()
        pytest.fail(f"the test {what} (see tests/conftest.py, markers)", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    # Without the corpus, a test that reads it fails with one line, not a traceback.
    if report.failed and call.excinfo is not None and not corpus_present():
        chain: list[BaseException] = []
        exc: BaseException | None = call.excinfo.value
        while exc is not None and exc not in chain:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__
        if any(str(CORPUS) in str(e) or CORPUS_MISSING in str(e) for e in chain):
            report.longrepr = CORPUS_MISSING
            item.config.stash.setdefault(_corpus_failures, []).append(item.nodeid)
    return report


_corpus_failures = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    failed = config.stash.get(_corpus_failures, [])
    if failed:
        terminalreporter.write_line(f"{len(failed)} tests failed only because: {CORPUS_MISSING}",
                                    red=True)
    if config.stash.get(_tshark_used, False):
        try:
            terminalreporter.write_line(f"oracle: {version_text()}")
        except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
            terminalreporter.write_line(f"oracle: tshark unusable ({e})", red=True)


_tshark_used = pytest.StashKey[bool]()


# Known failures that the kernel witness (issue 12) does not touch, each with its reason. They
# stay visible (xfailed / xpassed in the summary) until their own fix.
KNOWN_FAILURES = {
    # The scenario's timing, not attribution: the lab starts the client only after the server's
    # 0.2 s sleep has ended (its recvfrom() is entered 12 ms before the client's first sendto()),
    # so the server reads at once and its close() follows the client's FIN within 2 ms: its FIN
    # carries the ACK the expectation wants alone, while "the server is still asleep" (3 of 3
    # runs on 2026-12-08).
    "tests/test_catalogue.py::test_scenario_behaves_as_its_expect_says[stream-vs-datagram]":
        "scenario timing: the client starts after the server's sleep, so the server's FIN carries the ACK",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_tshark_used] = any(item.get_closest_marker("tshark") for item in items)
    for item in items:
        if item.nodeid in KNOWN_FAILURES:
            item.add_marker(pytest.mark.xfail(reason=KNOWN_FAILURES[item.nodeid], strict=False))


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Two hosts in private network namespaces, shared by a module's tests (root: mark them ``lab``)."""
    with Lab(prefix="trch3") as lab:
        yield lab
