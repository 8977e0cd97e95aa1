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
from typing import TYPE_CHECKING, TextIO

from tracer.arguments import LESSON_FORMATS, build_parser
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
from tracer.i18n import lang_of, t, warning_text
from tracer.loading import load

if TYPE_CHECKING:
    from tracer.lab.scenarios import Scenario
    from tracer.lab.session import RunResult
    from tracer.tui.app import LiveOutcome

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports `tracer ... | head`


def _argv_lang(argv: Sequence[str]) -> str:
    """``--lang`` from the raw arguments, so that even a usage error speaks it."""
    lang = os.environ.get("TRACER_LANG", "en")
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            lang = argv[i + 1]
        elif arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
    return lang_of(lang)


def _warn(trace: Trace, lang: str) -> None:
    for w in trace.warnings:
        text = warning_text(w, lang)
        print(t("cli.warning", lang, msg=" ".join(text.split())), file=sys.stderr, flush=True)


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
        raise CaptureError("cli.cannot_write", path=path, why=e.strerror or str(e)) from e
    with f:
        yield f


def _ladder_args(args: argparse.Namespace, lang: str) -> dict[str, object]:
    if args.stream is not None and args.stream < 0:
        raise UsageError("cli.bad_stream", value=args.stream)
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
    from tracer.ladder.render import render_ladder

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
        tty = why == "no_tui_tty"
        print(t("cli.no_tui_tty", lang) if tty else t("cli.no_tui_missing", lang), file=sys.stderr)
    return why is None


def _tui_stream(args: argparse.Namespace) -> tuple[int, int] | None:
    from tracer.core.model import PROTO_TCP

    return (PROTO_TCP, args.stream) if args.stream is not None else None


def _lesson_mode(args: argparse.Namespace, lang: str) -> str:
    """"present", "quiz" or "" (the ladder); a lesson needs the interactive UI."""
    mode = "quiz" if getattr(args, "quiz", False) else "present" if getattr(args, "present", False) else ""
    if mode and _why_no_tui(args) is not None:
        raise UsageError("cli.lesson_needs_tui", flag=f"--{mode}")
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
        raise UsageError("cli.pcapng_tty")
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
        n = len(analysis.tcp_streams)
        raise UsageError("cli.no_stream", path=args.file, n=n, value=args.stream)
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
        raise UsageError("cli.bad_packet", path=args.file, count=count, no=args.no)
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
        raise UsageError("cli.bad_timeout", value=args.timeout)
    scenario = find_scenario(args.scenario)
    args.timeout = args.timeout if args.timeout is not None else scenario.timeout
    args.loopback = args.loopback or scenario.hosts == "loopback"
    if args.check:
        return _check_run(scenario, args, lang)
    mode = _lesson_mode(args, lang)
    if mode or _use_tui(args, lang):
        from tracer.tui import live

        check_privileges()
        out = Path(args.out) if args.out else None
        runner = None
        if args.no_witness:  # the UI's own run, without the witness
            import functools

            run = functools.partial(run_scenario, scenario, out, loopback=args.loopback, lang=lang,
                                    timeout=args.timeout, witness=False)
            runner = lambda progress, cancel: run(progress=progress, cancel=cancel)  # noqa: E731
        outcome = live(scenario, out, loopback=args.loopback, timeout=args.timeout, lang=lang,
                       present=mode, runner=runner)
        return _after_live(outcome, lang)
    with signals_as_interrupt():
        res = run_scenario(scenario, Path(args.out) if args.out else None, loopback=args.loopback,
                           lang=lang, timeout=args.timeout, witness=not args.no_witness)
    return _finish_text_run(res, opts, lang)


def _finish_text_run(res: RunResult, opts: dict[str, object], lang: str) -> int:
    """After a run without the UI: where it was saved, the ladder, the error if any."""
    _report_run(res.trace, res.path, lang)
    if res.interrupted:
        print(t("cli.interrupted", lang, path=res.path), file=sys.stderr)
        return EXIT_INTERRUPTED
    _write_ladder(_stdout_text(), res.trace, res.analysis, opts)
    if res.error is not None:
        text = res.error.text(lang)
        print(t("cli.error", lang, msg=text), file=sys.stderr)
        return res.error.exit_code
    return 0


def _after_live(outcome: LiveOutcome, lang: str) -> int:
    """What the command says once the live UI of ``run``/``trace`` has closed."""
    res = outcome.result
    if res is not None:
        _report_run(res.trace, res.path, lang)
    if outcome.interrupted:
        if res is not None:
            print(t("cli.interrupted", lang, path=res.path), file=sys.stderr)
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
        raise UsageError("cli.no_expect", name=scenario.name)
    try:
        lines = parse(scenario.expect)
    except ExpectError as e:
        raise TracerError("cli.bad_expect", name=scenario.name, why=str(e), exit_code=EXIT_INPUT) from None
    with signals_as_interrupt():
        res = run_scenario(scenario, Path(args.out) if args.out else None, loopback=args.loopback,
                           lang=lang, timeout=args.timeout, witness=not args.no_witness)
    _report_run(res.trace, res.path, lang)
    if res.interrupted:
        return EXIT_INTERRUPTED
    result = match(res.trace, res.analysis, lines, scenario.port)
    out = _stdout_text()
    if result.ok:
        out.write(t("cli.check_ok", lang, name=scenario.name, detail=result.report[0]) + "\n")
    else:
        out.write(t("cli.check_failed", lang, name=scenario.name) + "\n")
        out.write("\n".join(result.report) + "\n")
    out.flush()
    if res.error is not None:
        text = res.error.text(lang)
        print(t("cli.error", lang, msg=text), file=sys.stderr)
    return 0 if result.ok else EXIT_CHECK_FAILED


def _report_run(trace: Trace, path: Path, lang: str) -> None:
    # The scenario's own failure is reported once, as the error at the end.
    others = tuple(w for w in trace.warnings if w.code != "scenario_failed")
    _warn(dataclasses.replace(trace, warnings=others), lang)
    print(t("cli.saved", lang, path=path, count=len(trace.packets), calls=len(trace.calls),
               states=len(trace.kernel_states)), file=sys.stderr, flush=True)


def cmd_trace(args: argparse.Namespace, lang: str) -> int:
    """``tracer trace``: programs tracer did not write, under strace in the lab (docs/trace.md);
    shown live in the UI on a terminal, as ``tracer run`` does, else as the text ladder."""
    import shlex

    from tracer.lab.session import signals_as_interrupt
    from tracer.lab.trace_cmd import trace_programs

    opts = _ladder_args(args, lang)
    if not args.timeout > 0:
        raise UsageError("cli.bad_timeout", value=args.timeout)
    if args.program and args.client is not None:
        raise UsageError("cli.trace_two_clients")
    client = args.client
    if args.program:  # one word: a command line; several: quoted word by word
        client = args.program[0] if len(args.program) == 1 else shlex.join(args.program)
    if not client:
        raise UsageError("cli.trace_no_client")
    if _use_tui(args, lang):
        import functools

        from tracer.lab.session import check_privileges
        from tracer.tui import live

        check_privileges()
        run = functools.partial(trace_programs, args.server, client, Path(args.out) if args.out else None,
                                loopback=args.loopback, lang=lang, timeout=args.timeout,
                                strace_dir=Path(args.strace_dir) if args.strace_dir else None,
                                witness=not args.no_witness)
        outcome = live(None, None, loopback=args.loopback, timeout=args.timeout, lang=lang,
                       runner=lambda progress, cancel: run(progress=progress, cancel=cancel),
                       name=shlex.split(client)[0] if client.strip() else "trace")
        return _after_live(outcome, lang)
    with signals_as_interrupt():
        res = trace_programs(args.server, client, Path(args.out) if args.out else None,
                             loopback=args.loopback, lang=lang, timeout=args.timeout,
                             strace_dir=Path(args.strace_dir) if args.strace_dir else None,
                             witness=not args.no_witness)
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
        text = e.text(lang)
        print(t("cli.error", lang, msg=text), file=sys.stderr)
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
        print(t("cli.internal", lang, msg=detail), file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
