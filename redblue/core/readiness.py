"""A service's readiness: a small file it writes once it has rebuilt its state and can act.

The season supervisor gives each service it starts a file of its own (``REDBLUE_READY_FILE``,
the ``ready_file`` setting) and removes it before every start; the service writes its pid and
the time into it, atomically, once it has done what it does before acting (the trader: rebuilt
its positions from its topics, reconciled with its brokers and re-read its forecasts; the
processor: loaded its models and recovered its windows; ...). The supervisor copies that time
into its state (``season status``), but only when the pid is the one it started: a file left by
a killed predecessor never makes its successor look ready.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Ready:
    pid: int
    at: float  # epoch seconds


def announce_ready(path: Path | None, pid: int | None = None, now: float | None = None) -> None:
    """Write that this process (``pid``) is ready; nothing when the service has no ready file."""
    if path is None:
        return
    ready = Ready(os.getpid() if pid is None else pid, time.time() if now is None else now)
    tmp = path.with_name(f".{path.name}.{ready.pid}.tmp")
    tmp.write_text(json.dumps({"pid": ready.pid, "at": ready.at}))
    tmp.replace(path)


def read_ready(path: Path) -> Ready | None:
    """What the ready file says (None when there is none, or it cannot be read)."""
    try:
        raw = json.loads(path.read_text())
        return Ready(int(raw["pid"]), float(raw["at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
