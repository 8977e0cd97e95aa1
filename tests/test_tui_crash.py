"""The crash report of an internal error in the UI (tracer.tui.crash): where it goes,
its mode, what it holds, and the one line when no place is writable."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tracer.errors import EXIT_INTERNAL
from tracer.tui.crash import save_report, ui_crash
from tracer.tui.text import WORDS


def _raised() -> ValueError:
    try:
        raise ValueError("bad\nvalue")  # two lines: the one-line error folds them
    except ValueError as e:
        return e


def test_the_report_goes_to_the_state_directory_with_mode_0600(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    err = ui_crash(_raised())
    (report,) = (tmp_path / "tracer").glob("tracer-crash-*.txt")
    assert report.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tracer").stat().st_mode & 0o777 == 0o700
    text = report.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and "in _raised" in text
    assert text.rstrip().endswith("ValueError: bad\nvalue")
    assert err.exit_code == EXIT_INTERNAL == 1
    assert err.message == WORDS["en"]["crashed"].format(error="ValueError: bad value", path=report)
    assert err.message_zh == WORDS["zh"]["crashed"].format(error="ValueError: bad value", path=report)


def test_an_unwritable_state_directory_falls_back_to_the_temp_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker / "state"))  # under a file: cannot be made
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path, why = save_report(_raised())
    assert path is not None and path.parent == tmp_path / "tmp" and why == ""
    assert path.stat().st_mode & 0o777 == 0o600


def test_nowhere_writable_says_why_on_the_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker / "state"))
    monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
    err = ui_crash(_raised())
    assert err.message.startswith(WORDS["en"]["crashed_unsaved"].split("{error}")[0])
    assert "Not a directory" in err.message and "\n" not in err.message
    assert list(tmp_path.iterdir()) == [blocker]
