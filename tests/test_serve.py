"""``tracer serve`` end to end: the real server, headless Chromium, the kernel's sockets.

Each test starts ``python -m tracer serve ...`` in a process group of its own and kills
the group in a ``finally``.  The browser is the Debian chromium driven through selenium
and /usr/bin/chromedriver; the screen is read from xterm.js's own buffer in the page
(textual-serve keeps its terminal object in a closure, so a script injected before the
page's scripts catches it when textual.js assigns ``this.terminal``), and keys are typed
into xterm.js's input element as a user would.
Oracles: the capture's packet count from tshark, the words and keys the TUI declares
(``tracer.tui.text``), the kernel's table of listening sockets (``ss``), the browser's
own list of fetched resources, the documented exit codes (``tracer.errors``).

Chromium, chromedriver, selenium and ss are required (CI installs them): without them
the tests fail, they are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import CAPTURES, REPO, tshark_fields, wait_for
from tracer.errors import EXIT_INPUT, EXIT_USAGE
from tracer.loading import load
from tracer.tui.text import KEYS, WORDS

pytestmark = pytest.mark.tshark

HELLO = CAPTURES / "hello.pcapng"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path("/root/shots")
# A ladder row: the packet number (empty for a call that sent nothing), then the time.
ROW = re.compile(r"^\s*(\d*)\s+-?\d+\.\d{6}\s")
IP_ONLY = ("-Y", "ip or ipv6")  # tshark 4.0 lists tracer's custom block as one more frame
STARTED = ("tracer: serving", "tracer: 正在")  # the start line, en and zh
# Before any script of the page: keep the xterm.js Terminal that textual.js stores as
# ``this.terminal`` (an accessor on Object.prototype sees the assignment, then steps aside).
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, 'terminal', {
  configurable: true,
  get() { return undefined; },
  set(v) {
    Object.defineProperty(this, 'terminal', {value: v, writable: true, configurable: true, enumerable: true});
    if (v && typeof v.onData === 'function' && v.buffer) { window.__tracerTerm = v; }
  },
});
"""
SCREEN_JS = """
const t = window.__tracerTerm;
if (!t) { return null; }
const b = t.buffer.active, out = [];
for (let y = 0; y < t.rows; y++) { const l = b.getLine(y); out.push(l ? l.translateToString(true) : ''); }
return out.join('\\n');
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step_keys() -> tuple[str, str]:
    """The keys the TUI binds to stepping forward (space first), from its key table."""
    step = next(k for k in KEYS if k.action == "step")
    names = step.keys.split(",")
    assert names[0] == "space", step
    return " ", names[1]


class Served:
    """``tracer serve ARGS`` running in its own process group; output in files."""

    def __init__(self, *args: str, cwd: Path = REPO) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tracer-serve-"))
        self.out = (self.dir / "out").open("wb")
        self.err = (self.dir / "err").open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "tracer", *args], cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     start_new_session=True)

    def stderr(self) -> str:
        return (self.dir / "err").read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        return (self.dir / "out").read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30) -> str:
        """The start line, once the server listens (it is printed after the bind)."""
        def started() -> str:
            line = next((ln for ln in self.stderr().splitlines() if ln.startswith(STARTED)), "")
            assert line or self.proc.poll() is None, \
                f"tracer serve ended ({self.proc.returncode}):\n{self.stderr()}"
            return line

        return wait_for(started, timeout, "tracer serve's start line", every=0.05,
                        show=lambda: f"its stderr:\n{self.stderr()}")

    def group(self) -> list[int]:
        """Every live process in the server's process group (the served apps among them)."""
        pids = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    stat = (d / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid and fields[0] != "Z":  # pgrp; not a zombie
                    pids.append(int(d.name))
        return pids

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.out.close()
        self.err.close()


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str, cwd: Path = REPO) -> Served:
        s = Served(*args, cwd=cwd)
        started.append(s)
        return s

    try:
        yield start
    finally:
        for s in started:
            s.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--window-size=1400,1000", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": CATCH_TERMINAL})
        yield driver
    finally:
        driver.quit()


def screen(driver: webdriver.Chrome) -> str:
    text = driver.execute_script(SCREEN_JS)
    return text if isinstance(text, str) else ""


def wait_screen(driver: webdriver.Chrome, ok: Callable[[str], bool], what: str, timeout: float = 30) -> str:
    def shown() -> tuple[str] | None:
        text = screen(driver)
        return (text,) if ok(text) else None  # a tuple: an empty screen can be what is awaited

    return wait_for(shown, timeout, f"the page to show {what}", every=0.05,
                    show=lambda: f"the terminal in the browser:\n{screen(driver)}")[0]


def status(text: str) -> str:
    lines = text.splitlines()
    return lines[0] if lines else ""


def ladder_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if ROW.match(line)]


def press(driver: webdriver.Chrome, key: str) -> None:
    """A keypress into xterm.js, the way a user's reaches it (its focused input element)."""
    driver.find_element(By.CSS_SELECTOR, ".xterm-helper-textarea").send_keys(key)


def listening(port: int) -> list[str]:
    """The local addresses the kernel lists as listening on ``port`` (ss, numeric)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True)
    return [line.split()[3] for line in out.stdout.splitlines() if line.strip()]


def one_error_line(proc: subprocess.CompletedProcess[str], prefix: str = "tracer: error: ") -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    return lines[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tracer", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


# --- the tests --------------------------------------------------------------------------------------

@pytest.mark.browser
def test_page_shows_the_app_and_space_steps(served: Callable[..., Served], browser: webdriver.Chrome) -> None:
    n_packets = len(tshark_fields(HELLO, "frame.number", extra=IP_ONLY))
    trace, analysis = load(str(HELLO))
    en = WORDS["en"]
    loaded = en["loaded"].format(n=n_packets, calls=len(trace.calls), tcp=len(analysis.tcp_streams),
                                 udp=len(analysis.udp_streams))
    port = free_port()
    s = served("serve", "--port", str(port), "replay", str(HELLO.relative_to(REPO)))
    line = s.wait_ready()
    assert f"http://127.0.0.1:{port}" in line, line

    t0 = time.monotonic()
    browser.get(f"http://127.0.0.1:{port}/")
    first = wait_screen(browser, lambda x: loaded in status(x) and "row 1 of" in status(x),
                        f"the app's status line ('{loaded}', row 1)")
    print(f"\npage load to the app's first screen: {time.monotonic() - t0:.2f} s")
    assert status(first).split()[:2] == ["tracer", HELLO.name], status(first)
    # The window has room for every row: the counter's total is what is drawn, each packet once.
    total = int(re.search(r"row 1 of (\d+)", status(first)).group(1))  # type: ignore[union-attr]
    rows = ladder_rows(first)
    assert len(rows) == total, first
    numbers = [int(m.group(1)) for r in rows if (m := ROW.match(r)) and m.group(1)]
    assert numbers == list(range(1, n_packets + 1)), first

    # space enters step mode at the selected (first) row: the rows after it are hidden.
    space, n = step_keys()
    press(browser, space)
    after = wait_screen(browser, lambda x: en["step"].format(row=1, total=total) in status(x),
                        en["step"].format(row=1, total=total))
    assert ladder_rows(after) == rows[:1], after
    # n steps once more: one more row, the counter follows.
    press(browser, n)
    after = wait_screen(browser, lambda x: en["step"].format(row=2, total=total) in status(x)
                        and len(ladder_rows(x)) == 2, en["step"].format(row=2, total=total))
    assert ladder_rows(after) == rows[:2], after

    SHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SHOTS / "serve.png"))

    # Offline: every resource of the page came from this server, none failed, and the
    # terminal's font is the copy textual-serve ships.
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    ours = re.compile(rf"(?:http|ws)://127\.0\.0\.1:{port}/")
    assert fetched and all(ours.match(u) for u in fetched), fetched
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    assert browser.execute_script("return document.fonts.check('16px \"Roboto Mono\"')") is True

    # Ctrl-C with the tab still open: exit 0 promptly, no traceback, the app gone with it.
    apps = [p for p in s.group() if p != s.proc.pid]
    assert apps, "no app process behind the open tab"
    os.killpg(s.proc.pid, signal.SIGINT)
    assert s.proc.wait(timeout=10) == 0, s.stderr()
    assert "Traceback" not in s.stderr() + s.stdout(), s.stderr() + s.stdout()
    assert s.stderr().splitlines()[-1] == "tracer: stopped serving", s.stderr()
    wait_for(lambda: not s.group(), 5, "every served process to end")


def test_default_binds_loopback_and_serves_the_demo(served: Callable[..., Served]) -> None:
    port = free_port()
    s = served("serve", "--port", str(port))  # no target: the shipped capture
    line = s.wait_ready()
    assert line.count("\n") == 0 and f"http://127.0.0.1:{port}" in line and HELLO.name in line, line
    assert listening(port) == [f"127.0.0.1:{port}"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        assert r.status == 200
        page = r.read().decode()
    assert f"ws://127.0.0.1:{port}/ws" in page and HELLO.name in page
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/?fontsize=28", timeout=10) as r:
        assert 'data-font-size="28"' in r.read().decode()  # bigger cells for a projector
    # Nothing from outside: everything the page loads or connects to is on this server.
    urls = re.findall(r'(?:href|src|data-session-websocket-url)="([^"]*)"', page)
    urls += re.findall(r"url\(\s*[\"']?([^\"')]+)", page)
    ours = re.compile(rf"(?:http|ws)://127\.0\.0\.1:{port}/|data:")  # data: is inline, no request
    assert urls and all(ours.match(u) for u in urls), urls
    os.killpg(s.proc.pid, signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0, s.stderr()


def test_all_addresses_only_when_asked_with_a_warning(served: Callable[..., Served]) -> None:
    port = free_port()
    # serve's options may also come after the target.
    s = served("serve", "replay", str(HELLO), "--host", "0.0.0.0", "--port", str(port))
    s.wait_ready()
    assert listening(port) == [f"0.0.0.0:{port}"]
    warnings = [ln for ln in s.stderr().splitlines() if ln.startswith("tracer: warning: ")]
    assert len(warnings) == 1 and "every host" in warnings[0], s.stderr()
    # The page's own URLs follow the address the browser used, not the 0.0.0.0 listened on.
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": f"192.0.2.7:{port}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        page = r.read().decode()
    assert f"ws://192.0.2.7:{port}/ws" in page and "0.0.0.0" not in page, page


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_busy_port_is_one_line(lang: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = run_cli("--lang", lang, "serve", "--port", str(port), "replay", str(HELLO))
    assert proc.returncode == EXIT_USAGE, proc.stderr
    line = one_error_line(proc, "tracer: error: " if lang == "en" else "tracer: 错误: ")
    assert str(port) in line and "--port" in line, line


@pytest.mark.parametrize(("args", "code"), [
    (("replay", "no/such/file.pcapng"), EXIT_INPUT),
    (("replay", "README.md"), EXIT_INPUT),  # not a capture
    (("run", "no-such-scenario"), EXIT_USAGE),
    (("list",), EXIT_USAGE),
    (("replay", "captures/hello.pcapng", "--no-tui"), EXIT_USAGE),
    (("--port", "0"), EXIT_USAGE),
])
def test_mistakes_are_one_line_before_serving(args: tuple[str, ...], code: int) -> None:
    port_words = () if "--port" in args else ("--port", str(free_port()))
    proc = run_cli("serve", *port_words, *args)
    assert proc.returncode == code, proc.stderr
    line = one_error_line(proc)
    if code == EXIT_INPUT:
        assert args[1] in line, line


@pytest.mark.browser
def test_present_shows_a_step_counter(served: Callable[..., Served], browser: webdriver.Chrome) -> None:
    port = free_port()
    s = served("serve", "--port", str(port), "--present", "replay", str(HELLO))
    s.wait_ready()
    browser.get(f"http://127.0.0.1:{port}/")
    counter = re.compile(r"\b1 / (\d+)\b")
    first = wait_screen(browser, lambda x: counter.search(x) is not None, "a step counter '1 / N'")
    total = counter.search(first).group(1)  # type: ignore[union-attr]
    press(browser, step_keys()[0])
    wait_screen(browser, lambda x: f"2 / {total}" in x, f"the counter at '2 / {total}' after space")


@pytest.mark.lab
@pytest.mark.browser
def test_live_run_in_chinese_and_ctrl_c(served: Callable[..., Served], browser: webdriver.Chrome,
                                        tmp_path: Path) -> None:
    """``tracer serve run hello`` (as root): the tab runs the scenario in the lab, in Chinese;
    Ctrl-C then stops everything without a traceback, the capture saved in the working directory."""
    zh = WORDS["zh"]
    port = free_port()
    s = served("--lang", "zh", "serve", "--port", str(port), "run", "hello", cwd=tmp_path)
    line = s.wait_ready()
    assert line.startswith("tracer: 正在") and f"http://127.0.0.1:{port}" in line, line
    browser.get(f"http://127.0.0.1:{port}/")
    saved = zh["live_done"].split("{")[0]
    done = wait_screen(browser, lambda x: saved in status(x), f"'{saved}' on the status line", timeout=60)
    assert zh["live"].format(name="hello") in status(done), status(done)
    files = list((tmp_path / "captures").glob("hello-*.pcapng"))
    assert len(files) == 1, files
    assert files[0].name in status(done)
    n_packets = len(tshark_fields(files[0], "frame.number", extra=IP_ONLY))
    assert zh["loaded"].split(" · ")[0].format(n=n_packets) in status(done), status(done)
    os.killpg(s.proc.pid, signal.SIGINT)
    assert s.proc.wait(timeout=15) == 0, s.stderr()
    assert "Traceback" not in s.stderr() + s.stdout(), s.stderr() + s.stdout()
    wait_for(lambda: not s.group(), 5, "every served process to end")
