"""One plain-language sentence for a socket call, from the catalogue (``call.<call>.<outcome>``).

Packets are explained by their cause (``tracer.i18n.explain``); a call row needs its
own sentence, above all for the calls that send nothing (listen, accept, recv),
which course diagrams most often get wrong.  ``any`` in a key stands for any call
or any outcome: ``call.recv.eof``, then ``call.recv.any``, then ``call.any.error`` or
``call.any.any`` is used, the first the catalogue has.
"""

from __future__ import annotations

from tracer.core.model import SocketCall
from tracer.i18n import has, t

# Python's wrappers (and the other system calls that do the same) -> the call they stand for.
SAME_AS = {"connect_ex": "connect", "sendall": "send", "recv_into": "recv", "recvfrom_into": "recvfrom",
            "recvmsg": "recv", "sendmsg": "send", "read": "recv", "write": "send", "accept4": "accept"}


def same_as(call: str) -> str:
    """The call ``call`` does the work of: ``sendall`` -> ``send``, ``connect_ex`` -> ``connect``."""
    return SAME_AS.get(call, call)


def outcome(c: SocketCall) -> str:
    """``error``, ``eof`` (a recv that returned 0) or ``ok``."""
    if c.error is not None:
        return "error"
    name = same_as(c.call)
    if name == "recv" and c.result == "0":
        return "eof"
    return "ok"


def explain_call(c: SocketCall, lang: str = "en") -> str:
    """The sentence for call ``c`` in ``lang`` ("en" or "zh")."""
    name = same_as(c.call)
    out = outcome(c)
    for call, result in ((name, out), (name, "any"), ("any", "error" if out == "error" else "any")):
        if has(f"call.{call}.{result}"):
            return t(f"call.{call}.{result}", lang, call=c.call, errno=c.error or "", result=c.result or "")
    raise AssertionError("unreachable: the catalogue has catch-all keys")  # pragma: no cover
