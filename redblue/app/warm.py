"""A ``redblue`` process started before it knows its command, so that its imports overlap its parent's work.

A simulation's processor spends ~0.5 s of CPU importing (Faust, aiohttp, the schemas) before it
can load a model, and a simulation knows the processor's command line only once it has planned
the run and resolved the model versions. ``python -m redblue simulate`` therefore starts one of
these first thing (:func:`prestart`, before it imports anything heavy itself), and the simulation
hands it the command when it has one (:func:`order`); without a prestarted one (a simulation run
from Python) :func:`claim` starts it then.

The process (``python -m redblue --await-command``, :func:`receive`) imports the processor's
modules, then reads one line from stdin: the command as JSON
(``argv`` for :func:`redblue.app.cli.main`, the ``log`` file its output goes to, ``env`` to add to
its environment). Until then its output is its parent's (an import error shows on the console).
The rest of stdin is the command's (a processor's "go"). End of input before the line (the
parent ended or failed first) ends it quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout (core.arena's REPO_ROOT, which imports pydantic)
AWAIT = "--await-command"  # ``python -m redblue --await-command``: see :func:`receive`

_waiting: list[subprocess.Popen[bytes]] = []  # prestarted, not yet claimed


def start() -> subprocess.Popen[bytes]:
    """A new waiting process, in this process's directory (a relative path in its command, an
    arena, ``--out``, means what it means here) with this process's environment and the checkout
    on its Python path."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.Popen([sys.executable, "-m", "redblue", AWAIT], stdin=subprocess.PIPE, env=env)


def prestart() -> None:
    """Start the waiting process that :func:`claim` hands out next."""
    _waiting.append(start())


def claim() -> subprocess.Popen[bytes]:
    """The prestarted process, if one was started and is still waiting, else a new one."""
    while _waiting:
        process = _waiting.pop()
        if process.poll() is None:
            return process
    return start()


def order(process: subprocess.Popen[bytes], argv: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
    """Give ``process`` its command; its stdin stays open for the command's own input.

    A process that has exited already is left as it is: its exit code is what its owner reports.
    """
    assert process.stdin is not None
    line = json.dumps({"argv": list(argv), "log": str(log), "env": dict(env)}) + "\n"
    try:
        process.stdin.write(line.encode())
        process.stdin.flush()
    except BrokenPipeError:
        pass


def receive() -> list[str] | None:
    """In the waiting process: import, wait for the command, take its environment and log; its
    arguments for :func:`redblue.app.cli.main` (``None``: no command came)."""
    import processors.app  # noqa: F401  (the slow imports, done while the parent plans)

    line = sys.stdin.readline()
    if not line:
        return None
    command = json.loads(line)
    os.environ.update(command["env"])
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return list(command["argv"])
