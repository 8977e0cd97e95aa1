"""The message catalogues: complete, used, consistent, and valid for GNU gettext.

Keys used by the code are found two ways: literal keys by parsing tracer's source
(``t``/``template``/``both``/``has``/``Msg`` calls with a constant first argument, and
the keyed form of a ``TracerError``: its class called with one positional argument), and the
dynamic families (``f"explain.{reason}"``) enumerated from the code's own tables.
Every f-string key prefix in the source must be a family listed here, so a new
dynamic key cannot slip past the check.
"""

from __future__ import annotations

import ast
import gettext
import shutil
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO
from tracer.core.model import AnalysisFlag, TcpState
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.errors import EXIT_NAMES
from tracer.i18n import LANGS, LOCALES, both, catalog, lookup, po, t, template
from tracer.i18n.calls import SAME_AS
from tracer.i18n.explain import _NOUN_KEYS
from tracer.ladder.filter import FILTER_ERRORS

SOURCE = REPO / "tracer"
LOCALE_DIR = SOURCE / "i18n" / "locale"
KEY_FUNCS = {"t", "template", "both", "has", "Msg"}
# The lane roles (tracer.ladder.streams.Lanes.left_role/right_role): Words tables look them up computed.
ROLES = ("client", "server", "a", "b")


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _error_classes(trees: list[ast.Module]) -> set[str]:
    """The names of TracerError and every class in tracer's source derived from it."""
    classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    names = {"TracerError"}
    while True:
        more = {c.name for c in classes if any(isinstance(b, ast.Name) and b.id in names for b in c.bases)}
        if more <= names:
            return names
        names |= more


def _is_key_call(node: ast.Call, errors: set[str]) -> bool:
    """A catalogue lookup, or an error in the keyed form ``CaptureError("pcap.file", label=...)``
    (the pair form ``CaptureError(english, chinese)`` passes two)."""
    name = _call_name(node)
    return name in KEY_FUNCS or (name in errors and len(node.args) == 1)


def _source_keys() -> Iterator[tuple[str, str, Path]]:
    """("key", literal key, file) and ("prefix", f-string prefix, file) for every key argument."""
    paths = sorted(SOURCE.rglob("*.py"))
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in paths]
    errors = _error_classes(trees)
    assert {"CaptureError", "UsageError", "LabError"} <= errors, errors
    for path, tree in zip(paths, trees, strict=True):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args or not _is_key_call(node, errors):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and "." in arg.value:
                yield "key", arg.value, path
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                yield "prefix", str(arg.values[0].value), path


def _families() -> dict[str, tuple[set[str], set[str]]]:
    """f-string prefix -> (keys that must exist, keys that may exist) from the code's own tables."""
    calls = {c for c in CALL_NAMES if c} | set(SAME_AS.values()) | {"any"}
    outcomes = {"ok", "eof", "error", "any"}
    nouns = {n for pair in _NOUN_KEYS.values() for n in pair}
    return {
        "explain.": ({f"explain.{r}" for r in REASONS}, set()),
        "explain.noun.": ({f"explain.noun.{n}" for n in nouns}, set()),
        "label.": ({f"label.{r}" for r in REASONS}, set()),
        "state.": ({f"state.{s.name}" for s in TcpState}, set()),
        "call.": ({"call.any.any", "call.any.error"}, {f"call.{c}.{o}" for c in calls for o in outcomes}),
        "exit.": ({f"exit.{n}" for n in EXIT_NAMES.values()}, set()),
        "filter.": ({f"filter.{e}" for e in FILTER_ERRORS}, set()),
        "flag.": ({f"flag.{f.json_name}" for f in AnalysisFlag}, set()),
        "decode.": (set(), set()),  # DecodeNote keys: literal first arguments of decode._note
    }


def _decode_note_keys() -> set[str]:
    tree = ast.parse((SOURCE / "core" / "decode.py").read_text(encoding="utf-8"))
    return {
        f"decode.{n.args[0].value}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _call_name(n) == "_note" and isinstance(n.args[0], ast.Constant)
    }


def _walk_scope(scope: ast.AST) -> Iterator[ast.AST]:
    """The nodes of one scope, without descending into the functions defined in it."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def _module(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _words_definitions(trees: dict[str, ast.Module]) -> dict[str, dict[str, str]]:
    """Per module: name -> catalogue prefix, for ``NAME = Words("p.")`` and the functions
    that return ``NAME[lang]`` (such as ``words(lang)``)."""
    defs: dict[str, dict[str, str]] = {}
    for mod, tree in trees.items():
        own: dict[str, str] = {}
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and _call_name(node.value) == "Words" and isinstance(node.value.args[0], ast.Constant)):
                prefix = node.value.args[0].value
                own.update({tgt.id: prefix for tgt in node.targets if isinstance(tgt, ast.Name)})
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                for ret in ast.walk(node):
                    if (isinstance(ret, ast.Return) and isinstance(ret.value, ast.Subscript)
                            and isinstance(ret.value.value, ast.Name) and ret.value.value.id in own):
                        own[node.name] = own[ret.value.value.id]
        defs[mod] = own
    return defs


def _words_keys() -> tuple[set[str], dict[str, set[str]]]:
    """(keys looked up as ``w["name"]`` through a Words table, prefix -> string constants of the
    modules that use it: the names it may look up with a computed key, e.g. a role)."""
    trees = {_module(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SOURCE.rglob("*.py"))}
    defs = _words_definitions(trees)
    need: set[str] = set()
    constants: dict[str, set[str]] = {}
    for mod, tree in trees.items():
        env = dict(defs[mod])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in defs:
                env.update({a.asname or a.name: defs[node.module][a.name]
                            for a in node.names if a.name in defs[node.module]})
        if not env:
            continue

        def table_of(expr: ast.expr, bound: dict[str, str], env: dict[str, str] = env) -> str | None:
            if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
                return env.get(expr.value.id)  # WORDS[lang]
            if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
                return env.get(expr.func.id)  # words(lang)
            if isinstance(expr, ast.Name):
                return bound.get(expr.id)  # w, bound from one of the above
            return None

        functions = (ast.FunctionDef, ast.AsyncFunctionDef)
        scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, functions))]
        for scope in scopes:
            bound: dict[str, str] = {}
            for node in _walk_scope(scope):
                if isinstance(node, ast.Assign) and (prefix := table_of(node.value, {})) is not None:
                    bound.update({tgt.id: prefix for tgt in node.targets if isinstance(tgt, ast.Name)})
            for node in _walk_scope(scope):
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    prefix = table_of(node.value, bound)
                    if prefix is not None and isinstance(node.slice.value, str):
                        need.add(prefix + node.slice.value)
        names = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        for prefix in set(env.values()):
            constants.setdefault(prefix, set()).update(names)
    return need, constants


def _key_table_keys() -> set[str]:
    """The keys of ``tracer.tui.text.Key(keys, action, shown, "key.x", in_footer=...)`` rows."""
    out = set()
    for node in ast.walk(ast.parse((SOURCE / "tui" / "text.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and _call_name(node) == "Key"\
                and isinstance(node.args[3], ast.Constant):
            key = str(node.args[3].value)
            footer = any(k.arg == "in_footer" and isinstance(k.value, ast.Constant) and k.value.value
                         for k in node.keywords)
            out |= {key, key + ".footer"} if footer else {key}
    assert len(out) > 20
    return out


def _used_keys() -> tuple[set[str], set[str]]:
    """(keys the code needs, keys the code may look up)."""
    families = _families()
    need, may = _decode_note_keys(), set()
    unknown = []
    for kind, value, path in _source_keys():
        if kind == "key":
            need.add(value)
        elif value in families:
            need |= families[value][0]
            may |= families[value][1]
        else:
            unknown.append(f"{path.relative_to(REPO)}: f-string key prefix {value!r}")
    assert not unknown, "key families this test does not enumerate: " + "; ".join(unknown)
    words_need, constants = _words_keys()
    need |= words_need
    may |= {prefix + name for prefix, names in constants.items() for name in (*names, *ROLES)}
    need |= _key_table_keys()
    return need, may


@pytest.mark.parametrize("lang", LANGS)
def test_every_used_key_exists_and_every_key_is_used(lang: str) -> None:
    need, may = _used_keys()
    have = set(catalog(lang))
    missing = sorted(need - have)
    unused = sorted(have - need - may)
    assert not missing, f"keys missing from {LOCALES[lang]}/tracer.po: {missing}"
    assert not unused, f"keys in {LOCALES[lang]}/tracer.po that no code uses: {unused}"
    assert have == set(catalog("en")), sorted(have ^ set(catalog("en")))


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}


def test_placeholders_are_the_same_in_every_language() -> None:
    en = catalog("en")
    differ = [
        (lang, key, _fields(en[key]), _fields(text))
        for lang in LANGS
        for key, text in catalog(lang).items()
        if _fields(text) != _fields(en[key])
    ]
    assert not differ, differ


def _po_files() -> list[Path]:
    files = sorted(LOCALE_DIR.glob("*/LC_MESSAGES/tracer.po"))
    assert {f.parts[-3] for f in files} == set(LOCALES.values())
    return files


def _msgfmt() -> str:
    exe = shutil.which("msgfmt")
    assert exe, "msgfmt (GNU gettext) is not installed: apt-get install gettext"
    return exe


@pytest.mark.parametrize("path", _po_files(), ids=lambda p: p.parts[-3])
def test_po_file_is_valid_for_msgfmt(path: Path) -> None:
    run = subprocess.run([_msgfmt(), "--check-header", "--check-format", "-o", "/dev/null", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and not run.stderr, run.stderr


def _compiled(po_file: Path, tmp_path: Path) -> dict[str, str]:
    mo = tmp_path / (po_file.stem + ".mo")
    subprocess.run([_msgfmt(), "-o", str(mo), str(po_file)], check=True)
    with mo.open("rb") as f:
        translations = gettext.GNUTranslations(f)
    # _catalog is the whole compiled table; public gettext() can only ask for known keys.
    table: dict[str, str] = translations._catalog  # type: ignore[attr-defined]
    return {k: v for k, v in table.items() if k}


@pytest.mark.parametrize("path", _po_files(), ids=lambda p: p.parts[-3])
def test_parser_reads_what_gnu_gettext_compiles(path: Path, tmp_path: Path) -> None:
    assert po.parse(path.read_text(encoding="utf-8")) == _compiled(path, tmp_path)


CRAFTED = r'''# A translator's comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

#. multi-line, escapes
msgid "a.multi"
msgstr ""
"first line\n"
"tab\there \"quoted\" back\\slash "
"{name} continues"

#, fuzzy
msgid "a.fuzzy"
msgstr "a guess"

#, python-brace-format
msgid "a.flagged"
msgstr "kept {x}"

msgid "a.untranslated"
msgstr ""

#~ msgid "a.obsolete"
#~ msgstr "gone"

msgid "a.octal"
msgstr "\101\x42-C"
'''


def test_parser_agrees_with_gnu_gettext_on_the_hard_cases(tmp_path: Path) -> None:
    path = tmp_path / "crafted.po"
    path.write_text(CRAFTED, encoding="utf-8")
    parsed = po.parse(CRAFTED)
    assert parsed == _compiled(path, tmp_path)
    assert parsed == {"a.multi": 'first line\ntab\there "quoted" back\\slash {name} continues',
                      "a.flagged": "kept {x}", "a.octal": "AB-C"}


def test_parser_rejects_what_it_does_not_support() -> None:
    for bad in ('msgctxt "x"\nmsgid "a"\nmsgstr "b"\n', 'msgid "a"\nmsgstr "b\\q"\n',
                'msgid "a"\n', '"stray"\n', 'msgid "a"\nmsgid_plural "as"\nmsgstr[0] "b"\n'):
        with pytest.raises(po.PoError):
            po.parse(bad)


def test_writer_round_trips_through_the_parser() -> None:
    entries = [po.Entry("", "Content-Type: text/plain; charset=UTF-8\n"),
               po.Entry("k.one", 'two\nlines with "quotes" and \\ and \t', "a comment")]
    assert po.parse(po.dump(entries)) == {"k.one": entries[1].msgstr}


def test_lookup_rules() -> None:
    with pytest.raises(KeyError):
        t("no.such.key", "en")  # a bug must not hide behind a fallback
    assert template("explain.noun.client", "xx") == template("explain.noun.client", "en")  # unknown language
    en, zh = both("call.any.error", call="bind", errno="EADDRINUSE")
    assert en == "bind() failed with EADDRINUSE." and zh == "bind() 失败（EADDRINUSE）。"


def test_a_key_missing_from_a_translation_falls_back_to_english() -> None:
    zh = dict(catalog("zh"))
    del zh["call.any.error"]
    assert lookup("call.any.error", zh, catalog("en")) == catalog("en")["call.any.error"]
    assert lookup("call.any.any", zh, catalog("en")) == catalog("zh")["call.any.any"]
    with pytest.raises(KeyError):
        lookup("no.such.key", zh, catalog("en"))


def test_a_keyed_error_keeps_its_key_and_renders_each_language_on_one_line() -> None:
    from tracer.errors import CaptureError
    from tracer.i18n import Msg

    e = CaptureError("pcap.file", label="a\nb.pcap", what=Msg("pcap.what.cannot_read", reason="Bad\nthing"))
    assert e.key == "pcap.file" and e.exit_code == 2 and e.params["label"] == "a\nb.pcap"
    assert str(e) == e.message == e.text("en") == "a b.pcap: cannot read: Bad thing"
    assert e.message_zh == e.text("zh") == "a b.pcap：无法读取：Bad thing"
    assert e.text("xx") == e.message  # an unknown language gets English
    with pytest.raises(TypeError):  # every error is keyed: the (English, Chinese) pair form is gone
        CaptureError("english", "中文")
