"""Explanations: complete in both languages, cheap templates, correct socket facts."""

from __future__ import annotations

import re
import string

import pytest

from tracer.core.model import Side, TcpState
from tracer.core.reasons import CALL_NAMES, REASONS
from tracer.i18n.explain import LANGS, explain, reasons_missing_text, state_name, template

CJK = re.compile(r"[\u4e00-\u9fff]")
PLACEHOLDERS = {"src", "dst", "len", "seq", "ack"}


def test_reason_and_call_names_are_stable_identifiers() -> None:
    assert len(set(REASONS)) == len(REASONS) and REASONS[0] == "unknown"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", r) for r in REASONS)
    assert CALL_NAMES[0] == "" and len(set(CALL_NAMES)) == len(CALL_NAMES)
    for call in ("connect", "send", "sendto", "close", "shutdown", "accept", "listen", "recv", "bind"):
        assert call in CALL_NAMES
    assert LANGS == ("en", "zh")


@pytest.mark.parametrize("reason", REASONS)
def test_every_reason_side_and_language_has_a_template(reason: str) -> None:
    assert not reasons_missing_text()
    for side in Side:
        en = template(reason, side, "en")
        zh = template(reason, side, "zh")
        assert en.strip() and zh.strip()
        assert CJK.search(zh), (reason, side, zh)
        assert not CJK.search(en), (reason, side, en)
        for text in (en, zh):
            assert "<S" not in text and "<P" not in text  # nouns were substituted
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
            assert names <= PLACEHOLDERS, (reason, names)
            assert text.count("(") == text.count(")") and text.count("（") == text.count("）")


@pytest.mark.parametrize("reason", REASONS)
def test_explain_fills_placeholders(reason: str) -> None:
    values = {"src": "10.0.0.1:40000", "dst": "10.0.0.2:80", "len": 42, "seq": 1, "ack": 1}
    for lang in LANGS:
        text = explain(reason, Side.CLIENT, lang, **values)
        assert "{" not in text and "}" not in text
        bare = explain(reason, Side.CLIENT, lang)  # values are optional
        assert "{" not in bare and "}" not in bare


def test_side_nouns() -> None:
    assert explain("connect_syn", Side.CLIENT, "en").startswith("The client called connect()")
    assert explain("send_data", Side.SERVER, "en").startswith("The server called send()")
    assert explain("send_data", Side.NONE, "en").startswith("The sender")
    assert explain("connect_syn", Side.CLIENT, "zh").startswith("客户端调用了 connect()")
    assert explain("send_data", Side.SERVER, "zh").startswith("服务器")
    text = explain("rst_no_listener", Side.SERVER, "en", src="10.0.0.2:9")
    assert text.startswith("No socket listens on 10.0.0.2:9")


# Socket API facts (POSIX / Linux man pages connect(2), recv(2), socket(7), tcp(7)).
FACTS = {
    "listen_queue_synack": ["listen()", "accept()"],
    "rst_no_listener": ["ECONNREFUSED", "connect()"],
    "rst_abort": ["SO_LINGER", "ECONNRESET", "close()"],
    "fin_ack": ["recv()", "0"],
    "close_fin": ["close()", "TIME-WAIT"],
    "icmp_port_unreachable": ["ECONNREFUSED"],
    "keep_alive": ["SO_KEEPALIVE"],
    "udp_datagram": ["sendto()"],
    "zero_window": ["recv()"],
}


@pytest.mark.parametrize(("reason", "words"), sorted(FACTS.items()))
def test_key_facts_are_stated_in_both_languages(reason: str, words: list[str]) -> None:
    for lang in LANGS:
        text = template(reason, Side.SERVER, lang)
        for w in words:
            assert w in text, (reason, lang, w)


def test_state_names_follow_rfc_9293() -> None:
    # RFC 9293 §3.3.2 spells the states with hyphens.
    rfc = {"LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2",
           "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", "CLOSED"}
    names = {state_name(st, "en") for st in TcpState if st is not TcpState.UNKNOWN}
    assert names == rfc
    for st in TcpState:
        zh = state_name(st, "zh")
        assert CJK.search(zh) and zh.startswith(state_name(st, "en"))


def test_bad_input_never_raises() -> None:
    assert template("no_such_reason", Side.CLIENT, "en") == template("unknown", Side.CLIENT, "en")
    assert template("send_data", 99, "xx") == template("send_data", Side.NONE, "en")
    assert state_name(-1, "zh") == state_name(TcpState.UNKNOWN, "zh")
    assert template("send_data", None, "en") == template("send_data", Side.NONE, "en")  # type: ignore[arg-type]
    assert explain("send_data", 1, "en", len="{x}").count("{x}") == 1  # values are not re-parsed
