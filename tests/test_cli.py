"""The ``tracer`` command run as a user runs it: a subprocess on real files.

Every error is one line on stderr with a documented exit code (README, "Exit
codes"), in Chinese with ``--lang zh``, and never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAPTURES, CORPUS, corpus_files, tshark_fields, wait_for
from helpers.cli import run_tracer as run
from tracer.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_USAGE

pytestmark = pytest.mark.tshark

REPO = Path(__file__).resolve().parents[1]
HELLO = CAPTURES / "hello.pcap"
CJK = re.compile(r"[\u4e00-\u9fff]")
ROW = re.compile(r"^\s*(\d+)\s+-?\d+\.\d{6}\s")


def one_error_line(proc: subprocess.CompletedProcess[str], lang: str = "en") -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = "tracer: error: " if lang == "en" else "tracer: 错误: "
    assert lines[0].startswith(prefix), lines[0]
    if lang == "zh":
        assert CJK.search(lines[0]), lines[0]
    return lines[0]


def test_replay_hello_prints_the_ladder() -> None:
    proc = run("replay", HELLO, "--no-tui")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = [int(m.group(1)) for line in proc.stdout.splitlines() if (m := ROW.match(line))]
    assert rows == [int(r[0]) for r in tshark_fields(HELLO, "frame.number")]


def test_replay_without_no_tui_falls_back_when_not_a_terminal() -> None:
    proc = run("replay", HELLO)  # stdout is a pipe here
    assert proc.returncode == 0
    assert "not a terminal" in proc.stderr and "Traceback" not in proc.stderr
    assert len([line for line in proc.stdout.splitlines() if ROW.match(line)]) == 10


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_missing_file(tmp_path: Path, lang: str) -> None:
    proc = run("replay", tmp_path / "nope.pcap", "--no-tui", "--lang", lang)
    assert proc.returncode == EXIT_INPUT
    assert "nope.pcap" in one_error_line(proc, lang)
    assert proc.stdout == ""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_unreadable_file(tmp_path: Path, lang: str) -> None:
    """A file we may not read: root without the capabilities that bypass file modes."""
    locked = tmp_path / "locked.pcap"
    locked.write_bytes((CAPTURES / "hello.pcap").read_bytes())
    locked.chmod(0)
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    proc = subprocess.run(
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
         sys.executable, "-m", "tracer", "replay", str(locked), "--no-tui", "--lang", lang],
        capture_output=True, text=True, encoding="utf-8", cwd=REPO, env=env, stdin=subprocess.DEVNULL,
        timeout=60, check=False,
    )
    assert proc.returncode == EXIT_INPUT
    assert "locked.pcap" in one_error_line(proc, lang)
    assert proc.stdout == ""


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_directory(tmp_path: Path, lang: str) -> None:
    proc = run("export", tmp_path, "--format", "json", "--lang", lang)
    assert proc.returncode == EXIT_INPUT
    one_error_line(proc, lang)


@pytest.mark.parametrize("name", ["README.md", "pyproject.toml"])
def test_not_a_capture(name: str) -> None:
    proc = run("replay", REPO / name, "--no-tui")
    assert proc.returncode == EXIT_INPUT
    one_error_line(proc)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    proc = run("export", empty, "--format", "json")
    assert proc.returncode == EXIT_INPUT
    one_error_line(proc)


def _unreadable_malformed() -> list[Path]:
    # MANIFEST: tshark refuses these (exit 2); tracer must refuse them too, cleanly.
    return corpus_files(malformed=True, notes="refuse to open")


@pytest.mark.parametrize("path", _unreadable_malformed(), ids=lambda p: p.name)
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_malformed_corpus_file_is_refused(path: Path, lang: str) -> None:
    proc = run("export", path, "--format", "json", "--lang", lang)
    assert proc.returncode == EXIT_INPUT
    one_error_line(proc, lang)


@pytest.mark.parametrize("path", corpus_files(malformed=True), ids=lambda p: p.name)
def test_no_malformed_file_gives_a_traceback(path: Path) -> None:
    for args in (("replay", path, "--no-tui"), ("export", path, "--format", "json")):
        proc = run(*args)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, EXIT_INPUT), proc.stderr
        if proc.returncode == 0:
            assert proc.stdout


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_truncated_file_warns_and_still_exports(lang: str) -> None:
    path = CORPUS / "dpkt__truncated_dns_2.pcap"  # MANIFEST: cut short in a packet record
    proc = run("export", path, "--format", "json", "--lang", lang)
    assert proc.returncode == 0, proc.stderr
    warnings = proc.stderr.splitlines()
    assert warnings and all(
        w.startswith("tracer: warning: " if lang == "en" else "tracer: 警告: ") for w in warnings
    )
    if lang == "zh":
        assert CJK.search(warnings[0])
    doc = json.loads(proc.stdout)
    assert doc["warnings"]
    ladder = run("replay", path, "--no-tui", "--lang", lang)
    assert ladder.returncode == 0 and ladder.stderr.splitlines() == warnings


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("replay",),
        ("export", "x.pcap"),  # --format is required
        ("export", "x.pcap", "--format", "xml"),
        ("replay", "x.pcap", "--bogus"),
        ("replay", "x.pcap", "--lang", "fr"),
        ("replay", "x.pcap", "--stream", "many"),
    ],
)
def test_usage_errors(args: tuple[str, ...]) -> None:
    proc = run(*args)
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc)


def test_usage_error_in_chinese() -> None:
    proc = run("export", HELLO, "--lang", "zh")
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, "zh")


def test_negative_stream_is_a_usage_error() -> None:
    proc = run("replay", HELLO, "--no-tui", "--stream", "-1")
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc)


def test_help_and_version() -> None:
    assert run("--help").returncode == 0
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("tracer ")


def test_export_json_to_file_equals_stdout(tmp_path: Path) -> None:
    out = tmp_path / "hello.json"
    proc = run("export", HELLO, "--format", "json", "-o", out)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(
        run("export", HELLO, "--format", "json").stdout
    )


def test_export_text_to_file(tmp_path: Path) -> None:
    out = tmp_path / "hello.txt"
    proc = run("export", HELLO, "--format", "text", "-o", out, "--lang", "zh")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert CJK.search(text) and len([line for line in text.splitlines() if ROW.match(line)]) == 10


def test_export_pcapng_reads_back_in_tshark(tmp_path: Path) -> None:
    out = tmp_path / "hello.pcapng"
    proc = run("export", HELLO, "--format", "pcapng", "-o", out)
    assert proc.returncode == 0, proc.stderr
    want = tshark_fields(HELLO, "frame.number", "tcp.seq_raw", "tcp.flags")
    got = tshark_fields(out, "frame.number", "tcp.seq_raw", "tcp.flags", "frame.comment")
    # tshark also lists tracer's pcapng Custom Block (calls, metadata) as a "frame" at the end.
    packets = [r for r in got if r[2]]
    assert [r[:3] for r in packets] == want
    assert all(r[3] for r in packets), "every packet carries its cause as a comment"


def test_export_pcapng_to_stdout_pipe(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tracer", "export", str(HELLO), "--format", "pcapng"],
        capture_output=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout[:4] == b"\x0a\x0d\x0d\x0a"  # pcapng section header block


def test_unwritable_output(tmp_path: Path) -> None:
    proc = run("export", HELLO, "--format", "json", "-o", tmp_path / "no" / "such" / "dir.json")
    assert proc.returncode == EXIT_INPUT
    one_error_line(proc)


def test_broken_pipe_is_quiet() -> None:
    path = CORPUS / "zeek__http__206_example_b.pcap"  # 1556 packets: JSON far beyond a pipe buffer
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "export", str(path), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith(b"{")
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


def test_ctrl_c_exits_130() -> None:
    path = CORPUS / "zeek__http__206_example_b.pcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", "replay", str(path), "--no-tui"],
        stdout=subprocess.PIPE,  # never read: the ladder blocks on a full pipe
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(1)  # it is writing, so it has loaded the capture
    wait_for(lambda: "pipe_write" in Path(f"/proc/{proc.pid}/wchan").read_text(), 30,
             "the ladder to block on the full pipe")
    proc.send_signal(signal.SIGINT)
    proc.stdout.close()
    assert proc.wait(timeout=60) == EXIT_INTERRUPTED
    assert b"Traceback" not in proc.stderr.read()


def test_console_script_installed() -> None:
    exe = shutil.which("tracer")
    assert exe, "pip install -e . provides the tracer command"
    proc = subprocess.run(
        [exe, "replay", str(HELLO), "--no-tui"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and "10.77.0.2:7777" in proc.stdout


def _readme_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert text.startswith("```"), "README opens with the two copy-paste lines"
    return text.split("```")[1].splitlines()[1:]


def test_readme_opens_with_two_lines_and_ci_runs_line_two() -> None:
    lines = _readme_block()
    assert len(lines) == 2, lines
    assert "pip install -e ." in lines[0] and "tracer run hello" in lines[0]
    assert "tracer replay captures/hello.pcapng" in lines[0]
    for needed in (
        "apt-get install -y",
        "tshark",
        "pip install -e '.[test]'",
        "ruff check",
        "mypy --strict",
        "pytest",
    ):
        assert needed in lines[1]
    # .ci/run extracts and runs exactly README line 2; check its extraction agrees.
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in script
    extract = script.split("cmd=$(", 1)[1].split(")\n", 1)[0]
    got = subprocess.run(["bash", "-c", extract], capture_output=True, text=True, cwd=REPO, check=True)
    assert got.stdout.strip() == lines[1]
    assert os.access(REPO / ".ci" / "run", os.X_OK)


def test_readme_documents_every_exit_code() -> None:
    from tracer.errors import EXIT_CODES

    text = (REPO / "README.md").read_text(encoding="utf-8")
    for code in (*EXIT_CODES, 141):
        assert re.search(rf"^\| {code} \|", text, re.M), code


@pytest.mark.parametrize("failing", [None, "ruff", "mypy", "pytest"])
def test_ci_run_runs_the_readme_command_and_fails_on_any_failure(tmp_path: Path, failing: str | None) -> None:
    # apt-get and npm need the network (and root), so the commands are
    # stand-ins that log their names; what is checked is .ci/run itself: that it runs
    # README line 2 in order, non-interactively, and fails when any step fails.
    log = tmp_path / "log"
    for tool in ("apt-get", "npm", "pip", "ruff", "mypy", "pytest"):
        stub = tmp_path / tool
        code = 1 if tool == failing else 0
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {log}\nexit {code}\n')
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    proc = subprocess.run(
        [str(REPO / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    steps = ["apt-get", "apt-get", "npm", "pip", "ruff", "mypy", "pytest"]
    if failing is None:
        assert proc.returncode == 0, proc.stderr
        assert ran == steps
    else:
        assert proc.returncode != 0
        assert ran == steps[: steps.index(failing) + 1]


def test_readme_sample_is_real_output() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    sample = text.split("$ tracer replay captures/hello.pcap --no-tui\n", 1)[1].split("```", 1)[0]
    shown = [line for line in sample.splitlines() if line and line != "..."]
    out = run("replay", "captures/hello.pcap", "--no-tui", "--width", "100").stdout.splitlines()
    assert len(shown) >= 5 and shown == out[: len(shown)]


@pytest.mark.parametrize("fmt", ["svg", "mermaid", "markdown"])
def test_lesson_export_of_a_stream_that_does_not_exist_is_one_line(fmt: str) -> None:
    n = len(tshark_fields(HELLO, "tcp.stream", extra=("-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0")))
    proc = run("export", HELLO, "--format", fmt, "--stream", str(n))
    assert proc.returncode == EXIT_USAGE and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"tracer: error: {HELLO} has {n} TCP stream(s), numbered from 0; there is no stream {n}"]
    assert run("export", HELLO, "--format", fmt, "--stream", str(n - 1)).returncode == 0
