"""The lower panes: detail (layers and bytes, or a call's record), explanation
(cause, plain-language sentence, the kernel witness's account of a live run's packet:
what sent it, its stack, a drop, the RST's reason, the figures and where the cause
came from; both ends' TCP states and the state diagram) and
source (the scenario's code with the selected call's line highlighted).

Each pane is told what to show (``show(...)``); none reads the app.  The scapy
dissection behind the detail pane runs in a worker thread: scapy's first import
takes about a second, and it must never hold up a keypress.
"""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static, Tree

from tracer.core.model import CauseBy, Side, SocketCall, TcpState
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.i18n import warning_text
from tracer.i18n.explain import label, state_name
from tracer.ladder.calls import call_error, call_text
from tracer.ladder.kernel import drop_text, kernel_lines
from tracer.ladder.labels import packet_explanation
from tracer.ladder.model import KIND_CALL, KIND_PACKET, LadderModel
from tracer.tui.diagram import DIAGRAM, spans
from tracer.tui.stage import CLIENT_STYLE, SERVER_STYLE
from tracer.tui.text import words

BOTH_STYLE = "bold black on yellow"


def _ts(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class DetailPane(VerticalScroll):
    """Layers as a tree plus a hex dump for a packet; the record of a call.

    ``deferred`` (set by the app while a big file loads) postpones the dissection."""

    deferred = False

    def compose(self) -> ComposeResult:
        tree: Tree[str] = Tree("", id="layers")
        tree.show_root = True
        yield tree
        yield Static("", id="hex", markup=False)

    def show(self, model: LadderModel | None, row: int, lang: str) -> None:
        w = words(lang)
        self.border_title = w["detail"]
        tree = self.query_one("#layers", Tree)
        hexs = self.query_one("#hex", Static)
        tree.clear()
        if model is None or not len(model):
            tree.root.set_label(w["no_row"])
            hexs.update("")
            return
        kind, ref = int(model.kind[row]), int(model.ref[row])
        if kind == KIND_CALL:
            self._call(tree, model.calls[ref], model, lang)
            hexs.update("")
        elif kind == KIND_PACKET:
            t = model.trace.packets
            ends = f"{t.src_endpoint(ref)} → {t.dst_endpoint(ref)}"
            tree.root.set_label(f"#{ref + 1}  {t.proto_name(ref)}  {ends}")
            hexs.update("")
            if self.deferred:
                tree.root.add_leaf(w["dissect_later"])
            else:
                tree.root.add_leaf(w["dissecting"])
                self.dissect(t.raw(ref), int(t.linktype[ref]), ref, lang)
        else:
            w_ = model.warnings[ref]
            tree.root.set_label(w_.code)
            tree.root.add_leaf(warning_text(w_, lang))
            hexs.update("")
        tree.root.expand_all()

    def _call(self, tree: Tree[str], c: SocketCall, model: LadderModel, lang: str) -> None:
        w = words(lang)
        tree.root.set_label(f"{w['call']}: {c.side} {c.call}()")
        root = tree.root
        args = root.add(w["args"], expand=True)
        for k, v in c.args:
            args.add_leaf(f"{k} = {v}")
        err = call_error(c)
        if err is not None:
            link = model.analysis.error_links.get(c.id)
            root.add_leaf(f"{w['errno']}: {err}" + (f"  (#{link + 1})" if link is not None else ""))
        else:
            done = w["ok"] if c.t_exit_ns is not None else w["never"]
            result = c.result if c.result is not None else done
            root.add_leaf(f"{w['result']}: {result}")
        root.add_leaf(f"{w['entered']}: {_ts(c.t_enter_ns)}")
        if c.t_exit_ns is not None:
            root.add_leaf(f"{w['returned']}: {_ts(c.t_exit_ns)}")
            root.add_leaf(f"{w['blocked']}: {(c.t_exit_ns - c.t_enter_ns) / 1e6:.3f} ms")
        else:
            root.add_leaf(f"{w['returned']}: {w['never']}")
        if c.fd is not None:
            root.add_leaf(f"{w['fd']}: {c.fd}")
        root.add_leaf(f"{w['pid']}: {c.pid} / {c.tid}  {c.process}".rstrip())
        if c.local:
            root.add_leaf(f"{w['local']}: {c.local}")
        if c.remote:
            root.add_leaf(f"{w['remote']}: {c.remote}")
        if c.source is not None:
            where = f"{c.source.file.rsplit('/', 1)[-1]}:{c.source.line}"
            root.add_leaf(f"{w['line']}: {where}  {c.source.code}".rstrip())

    @work(thread=True, exclusive=True, group="dissect")
    def dissect(self, raw: bytes, linktype: int, ref: int, lang: str) -> None:
        from tracer.dissect import dissect, hexdump

        layers = dissect(raw, linktype)
        dump = "\n".join(hexdump(raw))
        self.app.call_from_thread(self._dissected, ref, layers, dump, lang)

    def _dissected(self, ref: int, layers: list[object], dump: str, lang: str) -> None:
        tree = self.query_one("#layers", Tree)
        if not str(tree.root.label).startswith(f"#{ref + 1} "):
            return  # the selection moved on
        tree.root.remove_children()
        for layer in layers:
            node = tree.root.add(str(getattr(layer, "name", "?")), expand=True)
            for name, value in getattr(layer, "fields", ()):
                node.add_leaf(f"{name} = {value}")
        self.query_one("#hex", Static).update(f"{words(lang)['bytes']}:\n{dump}")


class ExplainPane(VerticalScroll):
    """What the selected row means, and where both ends are in the state diagram."""

    def compose(self) -> ComposeResult:
        yield Static("", id="why")
        yield Static("", id="diagram")

    def show(self, model: LadderModel | None, row: int, lang: str) -> None:
        w = words(lang)
        self.border_title = w["explain"]
        why = Text()
        if model is None or not len(model):
            self.query_one("#why", Static).update(w["no_row"])
            self.query_one("#diagram", Static).update("")
            return
        kind, ref = int(model.kind[row]), int(model.ref[row])
        if kind == KIND_PACKET:
            self._packet(why, model, ref, lang)
        elif kind == KIND_CALL:
            c = model.calls[ref]
            why.append(call_text(c, lang,
                                 model.analysis.error_links.get(c.id)) + "\n", style="bold")
            if c.source is not None and c.source.code:
                why.append(f"{c.source.code}\n", style="italic")
        else:
            wn = model.warnings[ref]
            why.append(warning_text(wn, lang) + "\n", style="bold red")
        states = model.states_at(row)
        diagram = Text()
        if states is None:
            diagram.append(w["no_states"], style="dim")
        else:
            key, sa, sb = states
            info = model.infos[key]
            lanes = model.lanes(key)
            a_is_client = lanes is not None and lanes.a_is_left and lanes.left_role == "client"
            sc, ss = (sa, sb) if a_is_client or lanes is None else (sb, sa)
            client_ep = info.a if (lanes is None or lanes.a_is_left) else info.b
            server_ep = info.b if (lanes is None or lanes.a_is_left) else info.a
            why.append(f"\n{w['states_after']}:\n", style="bold")
            why.append(f" {w['legend_client']} ", style=CLIENT_STYLE)
            why.append(f" {client_ep} {state_name(TcpState(sc), lang)}\n")
            why.append(f" {w['legend_server']} ", style=SERVER_STYLE)
            why.append(f" {server_ep} {state_name(TcpState(ss), lang)}\n")
            self._kernel_states(why, model, row, (client_ep, server_ep), lang)
            diagram = draw_diagram(sc, ss)
        self.query_one("#why", Static).update(why)
        self.query_one("#diagram", Static).update(diagram)

    def _packet(self, why: Text, model: LadderModel, i: int, lang: str) -> None:
        a = model.analysis
        w = words(lang)
        reason = REASONS[int(a.cause_reason[i])] if 0 <= int(a.cause_reason[i]) < len(REASONS) else "unknown"
        side = Side(int(a.cause_side[i])) if int(a.cause_side[i]) in (0, 1, 2) else Side.NONE
        by = int(a.cause_by[i])
        who = {Side.CLIENT: w["legend_client"], Side.SERVER: w["legend_server"]}.get(side, "")
        if by == CauseBy.CALL and 0 < int(a.cause_call[i]) < len(CALL_NAMES):
            head = f"{who} {CALL_NAMES[int(a.cause_call[i])]}()"
        elif by == CauseBy.KERNEL:
            head = f"{who} {w['kernel']}"
        else:
            head = ""
        why.append(f"#{i + 1} {w['cause']}: ", style="bold")
        words_ = label(reason, lang)
        why.append(f"{head.strip()} — {words_}\n" if head.strip() else f"{words_}\n", style="bold cyan")
        why.append(packet_explanation(model.trace, a, i, lang) + "\n")
        if bool(a.cause_inferred[i]):
            why.append(f"({w['inferred']})\n", style="dim")
        if model.trace.kernel is not None:  # the kernel witness's account of a live run
            drop = model.kernel.drops.get(i)
            for line in kernel_lines(model.trace, a, i, lang, model.kernel):
                bad = drop is not None and line.endswith(drop_text(drop, lang))
                why.append(line + "\n", style="bold red" if bad else "dim" if line.startswith("  ") else "")

    def _kernel_states(self, why: Text, model: LadderModel, row: int, eps: tuple[str, str],
                       lang: str) -> None:
        """The kernel's own view (ss) of these sockets at the last snapshot before the row."""
        ks = model.trace.kernel_states
        if not ks:
            return
        when = model.time_ns(row)
        mine = [s for s in ks if s.proto == "tcp" and s.t_ns <= when
                and ((s.local, s.remote) in (eps, eps[::-1]))]
        if not mine:
            return
        last_t = max(s.t_ns for s in mine)
        snap = [s for s in mine if s.t_ns == last_t]
        why.append(words(lang)["kernel_states"].format(label=snap[0].label) + ":\n", style="bold")
        for s in snap:
            why.append(f"  {s.host} {s.local} {s.state}\n", style="dim")


def draw_diagram(client: int, server: int) -> Text:
    """The state diagram with the client's and the server's states highlighted."""
    text = Text(no_wrap=True, overflow="crop")
    marks: dict[tuple[int, int], tuple[int, str]] = {}
    for st, style in ((client, CLIENT_STYLE), (server, SERVER_STYLE)):
        for y, x, n in spans(st):
            prev = marks.get((y, x))
            marks[(y, x)] = (n, BOTH_STYLE if prev is not None and prev[1] != style else style)
    for y, line in enumerate(DIAGRAM):
        x = 0
        for (my, mx), (n, style) in sorted(marks.items()):
            if my != y:
                continue
            text.append(line[x:mx], style="dim")
            text.append(line[mx:mx + n], style=style)
            x = mx + n
        text.append(line[x:] + ("\n" if y < len(DIAGRAM) - 1 else ""), style="dim")
    return text


class SourcePane(VerticalScroll):
    """The scenario's code, the line of the selected call highlighted."""

    def compose(self) -> ComposeResult:
        yield Static("", id="code")

    def show(self, model: LadderModel | None, row: int, lang: str) -> None:
        w = words(lang)
        self.border_title = w["source"]
        code = self.query_one("#code", Static)
        src = model.trace.meta.extra.get("scenario.source", "") if model is not None else ""
        if not src:
            code.update(Text(w["no_source"], style="dim"))
            return
        line = call_line(model, row) if model is not None and len(model) else None
        code.update(Syntax(src, "python", line_numbers=True, highlight_lines={line} if line else None,
                           theme="ansi_dark", word_wrap=False))
        if line:
            self.scroll_to(y=max(0, line - 1 - (self.scrollable_content_region.height or 2) // 2),
                           animate=False)


def call_line(model: LadderModel, row: int) -> int | None:
    """The source line of the call behind a row: a call row's own, a packet's cause."""
    kind, ref = int(model.kind[row]), int(model.ref[row])
    call: SocketCall | None = None
    if kind == KIND_CALL:
        call = model.calls[ref]
    elif kind == KIND_PACKET:
        cid = int(model.analysis.cause_call_id[ref])
        if cid >= 0:
            call = next((c for c in model.trace.calls if c.id == cid), None)
    return call.source.line if call is not None and call.source is not None else None
