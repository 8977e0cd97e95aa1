"""The ``tracer`` command line's grammar: one argparse parser for every subcommand,
shared by the command (``tracer.cli``) and ``tracer serve``, which checks the
``run``/``replay`` command each browser tab will run with it."""

from __future__ import annotations

import argparse
from typing import NoReturn

from tracer import __version__
from tracer.errors import UsageError
from tracer.i18n import LANGS

LESSON_FORMATS = ("svg", "mermaid", "packetdrill", "markdown")


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (exit 3) instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError("cli.usage", msg=message, prog=self.prog)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--lang", choices=LANGS, default=None, help=f"language of labels and messages ({', '.join(LANGS)})"
    )
    view = _Parser(add_help=False)
    view.add_argument("--stream", type=int, default=None, metavar="N", help="only TCP stream N (tcp.stream)")
    view.add_argument("--raw-seq", action="store_true", help="raw sequence numbers instead of relative")
    view.add_argument("--explain", action="store_true", help="add each packet's explanation under its row")
    view.add_argument("--width", type=int, default=None, help="ladder width in columns")
    lesson = _Parser(add_help=False)
    lesson.add_argument("--present", action="store_true",
                        help="presenter mode: one step at a time, large, for a class (space: next)")
    lesson.add_argument("--quiz", action="store_true",
                        help="predict, then reveal: the class guesses each next step, with a score")

    p = _Parser(
        prog="tracer",
        description="Packet-level TCP/UDP handshake tracer for teaching socket programming.",
        parents=[common],
    )
    p.add_argument("--version", action="version", version=f"tracer {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    r = sub.add_parser(
        "replay",
        parents=[common, view, lesson],
        help="replay a pcap/pcapng capture (TUI, or a text ladder with --no-tui)",
    )
    r.add_argument("file", metavar="FILE")
    r.add_argument("--no-tui", action="store_true", help="print the text ladder instead of opening the TUI")
    e = sub.add_parser(
        "export", parents=[common, view], help="export a capture's analysis as json, text or pcapng"
    )
    e.add_argument("file", metavar="FILE")
    e.add_argument("--format", choices=("json", "text", "pcapng", *LESSON_FORMATS), required=True,
                   help="json/text/pcapng: the analysis; svg (printable ladder diagram), mermaid "
                   "(sequenceDiagram), packetdrill (script of the calls and packets), markdown "
                   "(a handout: diagram and one explanation per step)")
    e.add_argument("--side", choices=("client", "server"), default="server",
                   help="packetdrill: the side under test (its packets are '>', the peer's '<')")
    e.add_argument("-o", "--output", default="-", metavar="OUT", help="output file; - (default) is stdout")
    s = sub.add_parser(
        "show", parents=[common], help="one packet in full: cause, explanation, states, layers, bytes"
    )
    s.add_argument("file", metavar="FILE")
    s.add_argument("no", type=int, metavar="NO", help="packet number (1-based, as in the ladder)")
    run = sub.add_parser("run", parents=[common, view, lesson],
                         help="run a scenario in a private lab network and save the capture")
    run.add_argument("scenario", metavar="NAME|PATH", help="a built-in scenario (see: tracer list) or a file")
    run.add_argument(
        "--out", default=None, metavar="FILE", help="pcapng to write (default: captures/NAME-TIME)"
    )
    run.add_argument("--no-tui", action="store_true", help="print the text ladder instead of opening the TUI")
    run.add_argument("--loopback", action="store_true", help="one host on lo instead of two on a veth pair")
    run.add_argument("--timeout", type=float, default=None, metavar="S",
                     help="stop the scenario after S s (default: the scenario's TIMEOUT, else 10)")
    run.add_argument("--no-witness", action="store_true",
                     help="no kernel witness (tracefs): causes from the calls and TCP rules only")
    run.add_argument("--check", action="store_true",
                     help="compare the run with the scenario's EXPECT; print the difference, exit 6 if any")
    tr = sub.add_parser(
        "trace", parents=[common, view],
        help="run any programs in the lab under strace and save the capture with their socket calls")
    tr.add_argument("--server", default=None, metavar="CMD",
                    help="the server's command line (sh -c), started first in the server host")
    tr.add_argument("--client", default=None, metavar="CMD",
                    help="the client's command line (sh -c); {server} is the server host's address")
    tr.add_argument("program", nargs="*", metavar="PROGRAM",
                    help="after --: one program and its arguments, run as the client")
    tr.add_argument("--out", default=None, metavar="FILE",
                    help="pcapng to write (default: captures/trace-PROGRAM-TIME)")
    tr.add_argument("--no-tui", action="store_true", help="print the text ladder (tracer trace always does)")
    tr.add_argument("--loopback", action="store_true", help="one host on lo instead of two on a veth pair")
    tr.add_argument("--timeout", type=float, default=10.0, metavar="S", help="stop the programs after S s")
    tr.add_argument("--no-witness", action="store_true",
                    help="no kernel witness (tracefs): causes from the calls and TCP rules only")
    tr.add_argument("--strace-dir", default=None, metavar="DIR",
                    help="also keep strace's output and what the programs printed in DIR")
    sub.add_parser("list", parents=[common], help="list the built-in scenarios")
    sv = sub.add_parser(
        "serve", parents=[common, lesson],
        help="the interactive UI in a browser, over HTTP (docs/serve.md); default: the demo capture",
        description="Serve the interactive UI over HTTP: each browser tab that opens the URL runs "
        "'tracer run NAME' or 'tracer replay FILE' (default: the demo capture), with their options, "
        "e.g. tracer serve --port 8080 --present replay captures/hello.pcapng")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    sv.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    sv.add_argument("target", nargs=argparse.REMAINDER, metavar="run NAME ... | replay FILE ...",
                    help="what each browser tab shows, with run's or replay's options")
    return p
