"""Run one part of a scenario: ``_launch.py SCENARIO.py ROLE HOST PORT MARK_FD ACK_FD``.

tracer runs this under its socket-call recorder inside a lab namespace, as an
unprivileged user who may not be able to read the scenario file: tracer passes
its source on stdin, and it is compiled under its own file name so that the
recorded calls point at the scenario's lines.  Then ``ROLE(host, port)`` is
called (``server`` or ``client``), or ``ROLE(host, port, mark)`` if the function
takes a third parameter: ``mark("label")`` pauses the part while tracer records
the kernel's socket states (``ss``) in every lab namespace under that label.
"""

import os
import sys
import time
import types

path, role, host, port, mark_fd, ack_fd = sys.argv[1:7]


def mark(label):
    """Record the kernel's socket states now, labelled ``label``; returns when done."""
    os.write(int(mark_fd), " ".join(str(label).split()).encode() + b"\n")
    os.read(int(ack_fd), 1)


source = sys.stdin.buffer.read()
module = types.ModuleType("scenario")
module.__file__ = path
exec(compile(source, path, "exec"), module.__dict__)
part = getattr(module, role)
try:
    if part.__code__.co_argcount >= 3:
        part(host, int(port), mark)
    else:
        part(host, int(port))
except BaseException:
    # When it failed, on the packet clock: tracer places the error on the timeline
    # there, not when it noticed (after the process exited and closed its sockets).
    os.write(2, f"tracer-failed-at {time.time_ns()}\n".encode())
    raise
