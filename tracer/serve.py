"""``tracer serve``: the interactive UI in a browser tab, over HTTP (textual-serve).

Every tab that opens the page gets its own ``python -m tracer replay FILE`` (or
``run NAME``) under textual-serve's web driver, the same app as in a terminal.
Everything is checked before the server starts (the file, the scenario, root for
``run``, the port), so a mistake is one line on the command line, not a broken page.

The page needs nothing from the internet: textual-serve's template asks Google Fonts
for Roboto Mono, a render-blocking stylesheet that stalls a page on a lab network
without internet; the template is served without it, with the copy of the font
textual-serve ships.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import re
import shlex
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from textual_serve.server import Server

import tracer
from tracer.arguments import build_parser
from tracer.errors import PrivilegeError, UsageError
from tracer.i18n import t
from tracer.loading import load

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# The shipped demo capture, found like tracer.lab.scenarios finds scenarios/: beside the package.
DEFAULT_CAPTURE = Path(tracer.__file__).resolve().parents[1] / "captures" / "hello.pcapng"
CHECK_HEAD = 1 << 20  # a bigger capture is checked on its first MiB only
SHUTDOWN_S = 1.0  # Ctrl-C: how long requests get to finish before open tabs are closed
TEMPLATE = "app_index.html"
FONT = "fonts/RobotoMono-VariableFont_wght.ttf"  # under textual-serve's static/

@dataclass(frozen=True)
class Target:
    """What each browser tab runs: the command line and a name for the page."""

    argv: tuple[str, ...]
    shown: str  # the command as the user would type it, for the start message
    title: str
    lang: str


# --- the command line ------------------------------------------------------------------------------

def resolve_target(args: argparse.Namespace, lang: str) -> Target:
    """Check ``run NAME ...`` / ``replay FILE ...`` (default: the demo capture) and build the
    command each tab runs; every mistake is a ``TracerError``."""
    words = list(args.target)
    if not words:
        if not DEFAULT_CAPTURE.is_file():
            raise UsageError("serve.no_capture", path=DEFAULT_CAPTURE)
        words = ["replay", str(DEFAULT_CAPTURE)]
    if words[0] not in ("run", "replay"):
        raise UsageError("serve.bad_target", word=words[0])
    ns, rest = build_parser().parse_known_args(words)
    if rest:  # serve's own options written after the target: --port, --host, ...
        _late_options(args, rest)
    lang = ns.lang or lang
    for opt, used in (("--no-tui", ns.no_tui), ("--check", getattr(ns, "check", False)),
                      ("--out", getattr(ns, "out", None))):
        if used:
            raise UsageError("serve.not_served", opt=opt)
    if ns.command == "replay":
        _check_capture(ns.file)
        given, path, title = ns.file, str(Path(ns.file).resolve()), Path(ns.file).name
        opts: list[str] = []
    else:
        from tracer.lab.scenarios import find_scenario
        from tracer.lab.session import check_privileges

        scenario = find_scenario(ns.scenario)
        check_privileges()
        given, path, title = ns.scenario, str(scenario.path), scenario.name
        opts = [*(["--loopback"] if ns.loopback else []),
                *(["--timeout", repr(ns.timeout)] if ns.timeout is not None else [])]
    opts += [*(["--stream", str(ns.stream)] if ns.stream is not None else []),
             *(["--raw-seq"] if ns.raw_seq else []),
             *(["--present"] if args.present or ns.present else []),
             *(["--quiz"] if args.quiz or ns.quiz else [])]
    # Absolute paths: what the tabs run does not depend on their working directory.
    argv = (sys.executable, "-m", "tracer", "--lang", lang, ns.command, path, *opts)
    return Target(argv, shlex.join(["tracer", ns.command, given, *opts]), title, lang)


def _late_options(args: argparse.Namespace, rest: list[str]) -> None:
    """Merge serve's options found after the target into ``args`` (serve's parser decides)."""
    late = build_parser().parse_args(["serve", *rest])
    if late.target:
        raise UsageError("serve.bad_target", word=late.target[0])
    defaults = build_parser().parse_args(["serve"])
    for key, value in vars(late).items():
        if value != getattr(defaults, key, None):
            setattr(args, key, value)


def _check_capture(path: str) -> None:
    """The one-line error for a missing or broken capture now, not in each browser tab."""
    from tracer.pcap.reader import read_capture_head

    if read_capture_head(path, CHECK_HEAD) is None:
        load(path)  # a small file (or none at all): read it whole, the errors are load's


def check_port(host: str, port: int) -> None:
    """Raise the one-line error if ``host:port`` cannot be listened on (binds and lets go,
    with SO_REUSEADDR as aiohttp does: a connection in TIME-WAIT is no conflict)."""
    if not 1 <= port <= 65535:
        raise UsageError("serve.bad_port", port=port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError("serve.bad_host", host=host, why=e.strerror) from None
    for family, kind, proto, _name, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as e:
                raise bind_error(e, host, port) from None


def bind_error(e: OSError, host: str, port: int) -> UsageError | PrivilegeError:
    """The error to show when listening on ``host:port`` failed with ``e``."""
    other = port + 1 if port < 65535 else DEFAULT_PORT
    if e.errno == errno.EADDRINUSE:
        return UsageError("serve.port_busy", host=host, port=port, other=other)
    if e.errno == errno.EACCES:
        return PrivilegeError("serve.port_root", port=port, other=DEFAULT_PORT)
    return UsageError("serve.bad_host", host=host, why=e.strerror or e)


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return all(str(info[4][0]).startswith("127.") or info[4][0] == "::1" for info in infos)


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):  # every address: name the machine, not the wildcard
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# --- the web server ------------------------------------------------------------------------------

class TracerServer(Server):
    """textual-serve's server with an offline page whose URLs follow the address the
    browser used (a student's browser cannot reach the ``0.0.0.0`` of the command line)."""

    def __init__(self, target: Target, host: str, port: int) -> None:
        # Ctrl-C in the terminal reaches the whole process group.  A running app handles it
        # (textual's web driver exits the app); one still starting or already shutting down
        # would print a KeyboardInterrupt traceback, so the apps start with SIGINT ignored.
        super().__init__("trap '' INT; exec " + shlex.join(target.argv), host=host, port=port,
                         title=f"tracer · {target.title}")
        self.template = _offline_template(self.templates_path / TEMPLATE)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=jinja2.DictLoader({TEMPLATE: self.template}))
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Nothing printed here: the URL is printed once the port is listened on."""

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        origin = f"{request.scheme}://{request.host}"
        ws = ("wss" if request.scheme == "https" else "ws") + origin[len(request.scheme):]
        try:
            font_size = int(request.query.get("fontsize", "16"))
        except ValueError:
            font_size = 16
        context: dict[str, Any] = {
            "font_size": font_size,
            "app_websocket_url": f"{ws}/ws",
            "config": {"static": {"url": f"{origin}/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template(TEMPLATE, request, context)

    async def run(self, ready: str) -> None:
        """Serve until SIGINT/SIGTERM; print ``ready`` once the port is listened on."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = web.AppRunner(await self._make_app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, shutdown_timeout=SHUTDOWN_S)
            try:
                await site.start()
            except OSError as e:
                raise bind_error(e, self.host, self.port) from None
            print(ready, file=sys.stderr, flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()


def _offline_template(path: Path) -> str:
    """textual-serve's page without its Google Fonts stylesheet, with the font it ships;
    the terminal starts once the font is loaded (xterm.js measures the cells at start)."""
    html = path.read_text(encoding="utf-8")
    html = re.sub(r"<link\s[^>]*href=\"https?://[^\"]*\"[^>]*/?>\s*", "", html)
    font = "{{ config.static.url }}" + FONT
    head = (
        "<title>{{ application.name }}</title>\n"
        '<link rel="icon" href="data:," />\n'  # no request for a favicon the server lacks
        f'<link rel="preload" href="{font}" as="font" type="font/ttf" crossorigin />\n'
        "<style>@font-face { font-family: \"Roboto Mono\"; font-weight: 100 700;"
        f" src: url(\"{font}\") format(\"truetype\"); }}</style>\n"
    )
    start = (
        "<script>\n"
        "  const textualStart = window.onload;\n"
        "  window.onload = (e) => document.fonts.load('16px \"Roboto Mono\"')\n"
        "    .catch(() => null).then(() => textualStart && textualStart(e));\n"
        "</script>\n"
    )
    html = html.replace("<head>", "<head>\n" + head, 1)
    return html.replace("</head>", start + "</head>", 1)


def serve(args: argparse.Namespace, lang: str) -> int:
    """``tracer serve``: check everything, then serve until Ctrl-C (exit 0)."""
    target = resolve_target(args, lang)
    lang = target.lang
    check_port(args.host, args.port)
    # The tabs run this very tracer, whichever is installed.
    root = str(Path(tracer.__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    url = _url(args.host, args.port)
    if not _is_loopback(args.host):
        print(t("cli.warning", lang, msg=t("serve.open_to_all", lang, url=url)), file=sys.stderr)
    local = _url(DEFAULT_HOST, args.port) if args.host in ("0.0.0.0", "::") else url
    ready = t("serve.serving", lang, what=target.shown, url=local)
    server = TracerServer(target, args.host, args.port)
    # textual-serve's own messages (an app that failed to start), not each request.
    logging.basicConfig(level=logging.WARNING, format="tracer serve: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.run(ready))
    print(t("serve.stopped", lang), file=sys.stderr)
    return 0

