"""The ``tracer`` command: replay a capture as a ladder, export it, show one packet,
run a scenario in the live lab (``run``), trace any programs there under strace
(``trace``, docs/trace.md) or list the scenarios (``list``).

Every failure the user can cause ends as one line ``tracer: error: ...`` on
stderr (Simplified Chinese with ``--lang zh``) and a documented exit code
(``tracer.errors``); a traceback is shown only with ``TRACER_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from tracer import __version__
from tracer.core.analysis import Analysis
from tracer.core.trace import Trace
from tracer.errors import (
    EXIT_CHECK_FAILED,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    CaptureError,
    TracerError,
    UsageError,
)

if TYPE_CHECKING:
    from tracer.lab.scenarios import Scenario
    from tracer.lab.session import RunResult
    from tracer.tui.app import LiveOutcome

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `tracer ... | head`
LANGS = ("en", "zh")
LESSON_FORMATS = ("svg", "mermaid", "packetdrill", "markdown")

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "error": "tracer: error: {msg}",
        "warning": "tracer: warning: {msg}",
        "internal": "tracer: internal error: {msg} (a bug; set TRACER_DEBUG=1 to see the traceback)",
        "no_tui_tty": "tracer: note: stdout is not a terminal, printing the text ladder instead of the TUI",
        "no_tui_missing": "tracer: note: the interactive UI is not available, printing the text ladder",
        "usage": "{msg}",
        "pcapng_tty": "refusing to write binary pcapng to a terminal; use -o FILE",
        "cannot_write": "cannot write {path}: {why}",
        "cannot_read": "cannot read {path}: {why}",
        "bad_stream": "--stream must be a TCP stream index >= 0, got {value}",
        "bad_packet": "{path} has packets 1 to {count}; there is no packet {no}",
        "bad_timeout": "--timeout must be a number of seconds > 0, got {value}",
        "saved": "tracer: saved {path} ({count} packets, {calls} socket calls, "
        "{states} kernel socket states)",
        "interrupted": "tracer: interrupted: the capture so far was saved to {path}",
        "no_expect": "scenario {name} has no EXPECT to check against",
        "bad_expect": "scenario {name}: EXPECT {why}",
        "check_ok": "tracer: check: {name} behaves as expected ({detail})",
        "check_failed": "tracer: check: {name} did NOT behave as expected",
        "trace_no_client": "tracer trace needs a client: --client 'CMD' or -- PROGRAM [ARG...]",
        "trace_two_clients": "tracer trace takes --client 'CMD' or -- PROGRAM [ARG...], not both",
        "no_stream": "{path} has {n} TCP stream(s), numbered from 0; there is no stream {value}",
        "lesson_needs_tui": "{flag} needs the interactive UI on a terminal (or in a browser: tracer serve); "
        "for a file, see: tracer export --format svg|markdown",
    },
    "zh": {
        "error": "tracer: 错误: {msg}",
        "warning": "tracer: 警告: {msg}",
        "internal": "tracer: 内部错误: {msg}（这是程序缺陷；设置 TRACER_DEBUG=1 可查看调用栈）",
        "no_tui_tty": "tracer: 提示: 标准输出不是终端，改为打印文本阶梯图而不是交互界面",
        "no_tui_missing": "tracer: 提示: 交互界面不可用，改为打印文本阶梯图",
        "usage": "命令行用法错误：{msg}",
        "pcapng_tty": "拒绝把二进制 pcapng 写到终端；请用 -o 文件名",
        "cannot_write": "无法写入 {path}：{why}",
        "cannot_read": "无法读取 {path}：{why}",
        "bad_stream": "--stream 必须是不小于 0 的 TCP 流编号，而不是 {value}",
        "bad_packet": "{path} 中的数据包编号为 1 到 {count}；没有第 {no} 个包",
        "bad_timeout": "--timeout 必须是大于 0 的秒数，而不是 {value}",
        "saved": "tracer: 已保存 {path}（{count} 个数据包，{calls} 次套接字调用，{states} 个内核套接字状态）",
        "interrupted": "tracer: 已中断：到目前为止的抓包已保存到 {path}",
        "no_expect": "场景 {name} 没有可供检查的 EXPECT",
        "bad_expect": "场景 {name}：EXPECT {why}",
        "check_ok": "tracer: 检查：{name} 的行为符合预期（{detail}）",
        "check_failed": "tracer: 检查：{name} 的行为与预期不符",
        "trace_no_client": "tracer trace 需要一个客户端：--client '命令' 或 -- 程序 [参数...]",
        "trace_two_clients": "tracer trace 只接受 --client '命令' 或 -- 程序 [参数...] 之一，不能同时使用",
        "no_stream": "{path} 中有 {n} 个 TCP 流（从 0 开始编号）；没有编号为 {value} 的流",
        "lesson_needs_tui": "{flag} 需要在终端中运行交互界面（或在浏览器中：tracer serve）；"
        "要生成文件，请用：tracer export --format svg|markdown",
    },
}


def _msg(key: str, lang: str, **kw: object) -> str:
    return MESSAGES[lang if lang in MESSAGES else "en"][key].format(**kw)


def _both(key: str, **kw: object) -> tuple[str, str]:
    return _msg(key, "en", **kw), _msg(key, "zh", **kw)


class _Parser(argparse.ArgumentParser):
    """argparse that raises ``UsageError`` (exit 3) instead of exiting with 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)", _msg("usage", "zh", msg=message))


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--lang", choices=LANGS, default=None, help="language of labels and messages (en, zh)"
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


def _argv_lang(argv: Sequence[str]) -> str:
    """``--lang`` from the raw arguments, so that even a usage error speaks it."""
    lang = os.environ.get("TRACER_LANG", "en")
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            lang = argv[i + 1]
        elif arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
    return lang if lang in LANGS else "en"


def load(path: str) -> tuple[Trace, Analysis]:
    """Read and analyse a capture file; every failure is a ``TracerError``."""
    from tracer.core.analyze import analyze
    from tracer.pcap.reader import read_capture

    p = Path(path)
    try:
        trace = read_capture(p)
    except TracerError:
        raise
    except OSError as e:
        why = e.strerror or str(e)
        raise CaptureError(*_both("cannot_read", path=path, why=why)) from e
    return trace, analyze(trace)


def _warn(trace: Trace, lang: str) -> None:
    for w in trace.warnings:
        text = w.message_zh if lang == "zh" else w.message
        print(_msg("warning", lang, msg=" ".join(text.split())), file=sys.stderr, flush=True)


def _stdout_text() -> TextIO:
    out = sys.stdout
    # JSON and the zh ladder are UTF-8 whatever the locale says.
    if isinstance(out, io.TextIOWrapper) and (out.encoding or "").lower().replace("-", "") != "utf8":
        with contextlib.suppress(ValueError):
            out.reconfigure(encoding="utf-8")
    return out


@contextlib.contextmanager
def _text_output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield _stdout_text()
        return
    try:
        f = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
    except OSError as e:
        raise CaptureError(*_both("cannot_write", path=path, why=e.strerror or str(e))) from e
    with f:
        yield f


def _ladder_args(args: argparse.Namespace, lang: str) -> dict[str, object]:
    if args.stream is not None and args.stream < 0:
        raise UsageError(*_both("bad_stream", value=args.stream))
    width = args.width
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    return {
        "lang": lang,
        "width": width,
        "stream": args.stream,
        "raw_seq": args.raw_seq,
        "explain": args.explain,
    }


def _write_ladder(out: TextIO, trace: Trace, analysis: Analysis, opts: dict[str, object]) -> None:
    from tracer.export.ladder import render_ladder

    buf: list[str] = []
    for line in render_ladder(trace, analysis, **opts):  # type: ignore[arg-type]
        buf.append(line)
        if len(buf) >= 4096:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    out.flush()


def _tui_available() -> bool:
    try:
        importlib.import_module("tracer.tui.app")
    except ImportError:
        return False
    return True


def _why_no_tui(args: argparse.Namespace) -> str | None:
    """Why the interactive UI cannot open (a message key), or None when it can."""
    if args.no_tui:
        return "no_tui"
    # Under tracer serve (textual-serve's web driver) stdin/stdout are pipes to the browser.
    served = bool(os.environ.get("TEXTUAL_DRIVER"))
    if not served and not (sys.stdout.isatty() and sys.stdin.isatty()):
        return "no_tui_tty"
    if not _tui_available():
        return "no_tui_missing"
    return None


def _use_tui(args: argparse.Namespace, lang: str) -> bool:
    """Whether to open the interactive UI: asked for, on a terminal, and installed
    (when it was asked for but cannot open, a note on stderr says why)."""
    why = _why_no_tui(args)
    if why is not None and why != "no_tui":
        print(_msg(why, lang), file=sys.stderr)
    return why is None


def _tui_stream(args: argparse.Namespace) -> tuple[int, int] | None:
    from tracer.core.model import PROTO_TCP

    return (PROTO_TCP, args.stream) if args.stream is not None else None


def _lesson_mode(args: argparse.Namespace, lang: str) -> str:
    """"present", "quiz" or "" (the ladder); a lesson needs the interactive UI."""
    mode = "quiz" if getattr(args, "quiz", False) else "present" if getattr(args, "present", False) else ""
    if mode and _why_no_tui(args) is not None:
        raise UsageError(*_both("lesson_needs_tui", flag=f"--{mode}"))
    return mode


def cmd_replay(args: argparse.Namespace, lang: str) -> int:
    opts = _ladder_args(args, lang)
    mode = _lesson_mode(args, lang)
    if mode or _use_tui(args, lang):
        from tracer.tui import replay

        if not Path(args.file).exists():
            load(args.file)  # the one-line error, before the screen is taken over
        replay(args.file, lang, stream=_tui_stream(args), raw_seq=args.raw_seq, present=mode)
        return 0
    trace, analysis = load(args.file)
    _warn(trace, lang)
    _write_ladder(_stdout_text(), trace, analysis, opts)
    return 0


def cmd_export(args: argparse.Namespace, lang: str) -> int:
    opts = _ladder_args(args, lang)
    if args.format == "pcapng" and args.output == "-" and sys.stdout.isatty():
        raise UsageError(*_both("pcapng_tty"))
    trace, analysis = load(args.file)
    _warn(trace, lang)
    if args.format == "json":
        from tracer.export.json_export import write_json

        with _text_output(args.output) as out:
            write_json(trace, analysis, out)
            out.flush()
    elif args.format == "text":
        with _text_output(args.output) as out:
            _write_ladder(out, trace, analysis, opts)
    elif args.format in LESSON_FORMATS:
        with _text_output(args.output) as out:
            out.write(_lesson_export(args, trace, analysis, lang))
            out.flush()
    else:
        from tracer.pcap.writer import write_pcapng

        if args.output == "-":
            sys.stdout.flush()
            write_pcapng(sys.stdout.buffer, trace, analysis, lang=lang)
            sys.stdout.buffer.flush()
        else:
            write_pcapng(args.output, trace, analysis, lang=lang)
    return 0


def _lesson_export(args: argparse.Namespace, trace: Trace, analysis: Analysis, lang: str) -> str:
    """The text of an svg/mermaid/packetdrill/markdown export (tracer.export.*)."""
    if args.format == "packetdrill":
        from tracer.export.packetdrill import render_packetdrill

        return render_packetdrill(trace, analysis, side=args.side, stream=args.stream, lang=lang)
    from tracer.lesson.steps import build_lesson

    if args.stream is not None and not 0 <= args.stream < len(analysis.tcp_streams):
        raise UsageError(*_both("no_stream", path=args.file, n=len(analysis.tcp_streams), value=args.stream))
    lesson = build_lesson(trace, analysis, lang, stream=_tui_stream(args))
    if args.format == "svg":
        from tracer.export.svg import render_svg

        return render_svg(lesson)
    if args.format == "mermaid":
        from tracer.export.mermaid import render_mermaid

        return render_mermaid(lesson)
    from tracer.export.handout import render_markdown

    return render_markdown(lesson, trace)


def cmd_show(args: argparse.Namespace, lang: str) -> int:
    from tracer.export.detail import render_detail

    trace, analysis = load(args.file)
    _warn(trace, lang)
    count = len(trace.packets)
    if not 1 <= args.no <= count:
        raise UsageError(*_both("bad_packet", path=args.file, count=count, no=args.no))
    out = _stdout_text()
    out.write("\n".join(render_detail(trace, analysis, args.no - 1, lang)) + "\n")
    out.flush()
    return 0


def cmd_run(args: argparse.Namespace, lang: str) -> int:
    from tracer.lab.run import run_scenario
    from tracer.lab.scenarios import find_scenario
    from tracer.lab.session import check_privileges, signals_as_interrupt

    opts = _ladder_args(args, lang)
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(*_both("bad_timeout", value=args.timeout))
    scenario = find_scenario(args.scenario)
    args.timeout = args.timeout if args.timeout is not None else scenario.timeout
    args.loopback = args.loopback or scenario.hosts == "loopback"
    if args.check:
        return _check_run(scenario, args, lang)
    mode = _lesson_mode(args, lang)
    if mode or _use_tui(args, lang):
        from tracer.tui import live

        check_privileges()
        outcome = live(scenario, Path(args.out) if args.out else None, loopback=args.loopback,
                       timeout=args.timeout, lang=lang, present=mode)
        return _after_live(outcome, lang)
    with signals_as_interrupt():
        res = run_scenario(scenario, Path(args.out) if args.out else None, loopback=args.loopback,
                           lang=lang, timeout=args.timeout)
    return _finish_text_run(res, opts, lang)


def _finish_text_run(res: RunResult, opts: dict[str, object], lang: str) -> int:
    """After a run without the UI: where it was saved, the ladder, the error if any."""
    _report_run(res.trace, res.path, lang)
    if res.interrupted:
        print(_msg("interrupted", lang, path=res.path), file=sys.stderr)
        return EXIT_INTERRUPTED
    _write_ladder(_stdout_text(), res.trace, res.analysis, opts)
    if res.error is not None:
        text = res.error.message_zh if lang == "zh" else res.error.message
        print(_msg("error", lang, msg=text), file=sys.stderr)
        return res.error.exit_code
    return 0


def _after_live(outcome: LiveOutcome, lang: str) -> int:
    """What the command says once the live UI of ``run``/``trace`` has closed."""
    res = outcome.result
    if res is not None:
        _report_run(res.trace, res.path, lang)
    if outcome.interrupted:
        if res is not None:
            print(_msg("interrupted", lang, path=res.path), file=sys.stderr)
        return EXIT_INTERRUPTED
    if outcome.error is not None:
        raise outcome.error
    return 0


def _check_run(scenario: Scenario, args: argparse.Namespace, lang: str) -> int:
    """``tracer run --check``: run, then match the scenario's EXPECT (exit 6 if it differs)."""
    from tracer.core.expect import ExpectError, match, parse
    from tracer.lab.run import run_scenario
    from tracer.lab.session import signals_as_interrupt

    if not scenario.expect.strip():
        raise UsageError(*_both("no_expect", name=scenario.name))
    try:
        lines = parse(scenario.expect)
    except ExpectError as e:
        why = _both("bad_expect", name=scenario.name, why=str(e))
        raise TracerError(*why, exit_code=EXIT_INPUT) from None
    with signals_as_interrupt():
        res = run_scenario(scenario, Path(args.out) if args.out else None, loopback=args.loopback,
                           lang=lang, timeout=args.timeout)
    _report_run(res.trace, res.path, lang)
    if res.interrupted:
        return EXIT_INTERRUPTED
    result = match(res.trace, res.analysis, lines, scenario.port)
    out = _stdout_text()
    if result.ok:
        out.write(_msg("check_ok", lang, name=scenario.name, detail=result.report[0]) + "\n")
    else:
        out.write(_msg("check_failed", lang, name=scenario.name) + "\n")
        out.write("\n".join(result.report) + "\n")
    out.flush()
    if res.error is not None:
        text = res.error.message_zh if lang == "zh" else res.error.message
        print(_msg("error", lang, msg=text), file=sys.stderr)
    return 0 if result.ok else EXIT_CHECK_FAILED


def _report_run(trace: Trace, path: Path, lang: str) -> None:
    # The scenario's own failure is reported once, as the error at the end.
    others = tuple(w for w in trace.warnings if w.code != "scenario_failed")
    _warn(dataclasses.replace(trace, warnings=others), lang)
    print(_msg("saved", lang, path=path, count=len(trace.packets), calls=len(trace.calls),
               states=len(trace.kernel_states)), file=sys.stderr, flush=True)


def cmd_trace(args: argparse.Namespace, lang: str) -> int:
    """``tracer trace``: programs tracer did not write, under strace in the lab (docs/trace.md);
    shown live in the UI on a terminal, as ``tracer run`` does, else as the text ladder."""
    import shlex

    from tracer.lab.session import signals_as_interrupt
    from tracer.lab.trace_cmd import trace_programs

    opts = _ladder_args(args, lang)
    if not args.timeout > 0:
        raise UsageError(*_both("bad_timeout", value=args.timeout))
    if args.program and args.client is not None:
        raise UsageError(*_both("trace_two_clients"))
    client = args.client
    if args.program:  # one word: a command line; several: quoted word by word
        client = args.program[0] if len(args.program) == 1 else shlex.join(args.program)
    if not client:
        raise UsageError(*_both("trace_no_client"))
    if _use_tui(args, lang):
        import functools

        from tracer.lab.session import check_privileges
        from tracer.tui import live

        check_privileges()
        run = functools.partial(trace_programs, args.server, client, Path(args.out) if args.out else None,
                                loopback=args.loopback, lang=lang, timeout=args.timeout,
                                strace_dir=Path(args.strace_dir) if args.strace_dir else None)
        outcome = live(None, None, loopback=args.loopback, timeout=args.timeout, lang=lang,
                       runner=lambda progress, cancel: run(progress=progress, cancel=cancel),
                       name=shlex.split(client)[0] if client.strip() else "trace")
        return _after_live(outcome, lang)
    with signals_as_interrupt():
        res = trace_programs(args.server, client, Path(args.out) if args.out else None,
                             loopback=args.loopback, lang=lang, timeout=args.timeout,
                             strace_dir=Path(args.strace_dir) if args.strace_dir else None)
    for side in ("server", "client"):  # what the programs printed, before tracer's own lines
        for line in res.trace.meta.extra.get(f"trace.{side}.output", "").splitlines():
            print(f"[{side}] {line}", file=sys.stderr)
    return _finish_text_run(res, opts, lang)


def cmd_list(lang: str) -> int:
    from tracer.lab.scenarios import list_scenarios

    out = _stdout_text()
    scenarios = list_scenarios()
    width = max((len(sc.name) for sc in scenarios), default=0)
    topic = None
    for sc in scenarios:
        if sc.topic != topic:
            topic = sc.topic
            out.write(f"[{sc.topic or '-'}]\n")
        out.write(f"  {sc.name:<{width}}  {sc.title[lang]}\n")
    out.flush()
    return 0


def cmd_serve(args: argparse.Namespace, lang: str) -> int:
    """``tracer serve``: the same app in a browser tab (tracer.serve, docs/serve.md)."""
    from tracer.serve import serve

    return serve(args, lang)


def _detach_stdout() -> None:
    """Point stdout at /dev/null: Python flushes it at exit, which must not fail or block."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see README, "Exit codes")."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    lang = _argv_lang(args_list)
    debug = os.environ.get("TRACER_DEBUG") == "1"
    try:
        try:
            args = build_parser().parse_args(args_list)
        except SystemExit as e:  # --help / --version
            return e.code if isinstance(e.code, int) else 0
        lang = args.lang or lang
        if args.command == "replay":
            return cmd_replay(args, lang)
        if args.command == "show":
            return cmd_show(args, lang)
        if args.command == "run":
            return cmd_run(args, lang)
        if args.command == "trace":
            return cmd_trace(args, lang)
        if args.command == "list":
            return cmd_list(lang)
        if args.command == "serve":
            return cmd_serve(args, lang)
        return cmd_export(args, lang)
    except TracerError as e:
        text = e.message_zh if lang == "zh" else e.message
        print(_msg("error", lang, msg=text), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        # Output is abandoned: a final flush could block on a full pipe or fail.
        _detach_stdout()
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:
        if debug:
            raise
        detail = " ".join(f"{type(e).__name__}: {e}".split())
        print(_msg("internal", lang, msg=detail), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
