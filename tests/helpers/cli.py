"""Running `python -m tracer` as a user would, and scenario texts the CLI tests share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BOOM = """
import socket
PROTO = "tcp"
PORT = 7002
def server(host, port):
    s = socket.socket()
    s.bind((host, port))
    s.listen()
    c, _ = s.accept()
    c.recv(10)
    raise RuntimeError("boom in the server")
def client(host, port):
    s = socket.socket()
    s.connect((host, port))
    s.sendall(b"x")
    s.recv(10)
    s.close()
"""


def run_tracer(*args: str | Path, timeout: float = 120,
               prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TRACER_DEBUG", "TRACER_LANG")}
    return subprocess.run([*prefix, sys.executable, "-m", "tracer", *map(str, args)], capture_output=True,
                          text=True, encoding="utf-8", cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          timeout=timeout, check=False)


def tracer_ok(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``run_tracer`` that must succeed."""
    proc = run_tracer(*args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc
