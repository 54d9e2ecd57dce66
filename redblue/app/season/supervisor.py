"""The season supervisor: one detached process that runs a season's services and restarts them.

Standard library only (``subprocess`` + signals). Each service is a child process whose output
goes to its own log file. A child that exits is started again after an exponential backoff
(``base * 2**n`` seconds, at most ``cap``); one that keeps dying (``max_failures`` exits in a row,
each within ``healthy_after`` seconds of its start) is marked ``failed`` with its last log lines
and left alone. A consuming service that is alive but stuck (a :class:`Watchdog` sees its
consumer group behind and its committed offsets unchanged for ``stall_after`` seconds, after it
had committed something since its start: e.g. the Faust processor after a broker restart) is
killed, and so restarted like a dead one. Several workers sharing one consumer group (the
processor's) are each judged on the partitions the group gave it.
Each child gets a ready file of its own (``REDBLUE_READY_FILE``, removed before every start; see
:mod:`redblue.core.readiness`); when the child's pid writes it, the time goes into its state.
The supervisor writes every service's state to ``state.json`` (atomically) for
``season status``; SIGTERM stops every child (SIGTERM, then SIGKILL) and then the supervisor.

Where the state lives: nothing here needs rebuilding after a crash. Every service keeps its own
state in Kafka, Redis or the broker and rebuilds it on start (see each service's docstring).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from redblue.core.readiness import read_ready
from redblue.stack.process import tail

State = Literal["starting", "running", "restarting", "failed", "stopped"]
STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class Backoff:
    """When to start a dead service again, and when to give up on it."""

    base: float = 1.0
    cap: float = 60.0
    max_failures: int = 6
    healthy_after: float = 60.0  # a run this long resets the count of quick deaths

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, failures - 1)))


@dataclass(frozen=True)
class Progress:
    """How far a consumer is: offsets committed in total and events behind, on what it reads.

    ``share``: the partitions it holds when several workers share its consumer group (its
    offsets and backlog are then those of its share); a new share is a new start, not progress.
    """

    committed: int
    behind: int
    share: frozenset[tuple[str, int]] | None = None


@dataclass(frozen=True)
class Watchdog:
    """Restarts a service whose consumer group stays behind without committing anything.

    ``progress(service, pid)``: how far it is (:class:`Progress`), None when it is not a consumer
    or that cannot be known now (e.g. Kafka is down, a worker not in its group: nothing is judged).
    """

    progress: Callable[[str, int], Progress | None]
    stall_after: float = 120.0
    every: float = 5.0


@dataclass
class ServiceState:
    """One service as the supervisor last saw it (what ``state.json`` holds)."""

    name: str
    state: State = "starting"
    pid: int | None = None
    restarts: int = 0
    started_at: float | None = None  # epoch seconds of the current (or last) start
    last_exit: int | None = None
    failures: int = 0  # quick deaths in a row
    last_lines: str = ""
    ready_at: float | None = None  # epoch seconds when this start (its pid) said it was ready


@dataclass(frozen=True)
class SeasonFiles:
    """Where a season's supervisor keeps its pid file, state and logs."""

    root: Path

    @classmethod
    def of(cls, stack_home: Path, season: str) -> SeasonFiles:
        return cls(stack_home / "seasons" / season)

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    def log(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def ready(self, service: str) -> Path:
        return self.root / "ready" / f"{service}.json"

    def read_states(self) -> list[ServiceState]:
        """The services' states as last written ([] before the supervisor wrote any)."""
        try:
            rows = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return [ServiceState(**row) for row in rows]

    def write_states(self, states: list[ServiceState]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(s) for s in states], indent=1))
        tmp.replace(self.state_file)


@dataclass
class _Child:
    state: ServiceState
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    due: float = 0.0  # monotonic time of the next start
    started: float = field(default=0.0)
    committed: int = -1  # the watchdog's last look: offsets committed, and since when unchanged while behind
    still_since: float = 0.0
    share: frozenset[tuple[str, int]] | None = None
    progressed: bool = False  # committed something since its start (one still starting up is never judged)


class Supervisor:
    """Runs ``commands`` (service name -> full argv) until ``stop`` is set."""

    def __init__(
        self,
        commands: Mapping[str, list[str]],
        files: SeasonFiles,
        cwd: Path,
        backoff: Backoff = Backoff(),
        clock: Callable[[], float] = time.monotonic,
        watchdog: Watchdog | None = None,
    ) -> None:
        self._children = [_Child(ServiceState(name), list(argv)) for name, argv in commands.items()]
        self._files = files
        self._cwd = cwd
        self._backoff = backoff
        self._clock = clock
        self._watchdog = watchdog
        self._looked = 0.0
        (files.root / "logs").mkdir(parents=True, exist_ok=True)
        (files.root / "ready").mkdir(parents=True, exist_ok=True)

    def run(self, stop: threading.Event, tick: float = 0.2) -> None:
        try:
            while not stop.is_set():
                changed = [self._watch(child) for child in self._children]
                self._look_for_stalls()
                if any(changed):
                    self._save()
                stop.wait(tick)
        finally:
            self._stop_all()

    def _watch(self, child: _Child) -> bool:
        """Start a due child, notice a dead one; True when its state changed."""
        now = self._clock()
        if child.state.state == "failed":
            return False
        if child.proc is None:
            if now >= child.due:
                self._start(child, now)
                return True
            return False
        code = child.proc.poll()
        if code is None:
            if child.state.state == "starting":
                child.state.state = "running"
                return True
            return self._ready(child)
        self._died(child, code, now)
        return True

    def _ready(self, child: _Child) -> bool:
        """Note when the running child said it was ready; True when that is new."""
        if child.state.ready_at is not None:
            return False
        ready = read_ready(self._files.ready(child.state.name))
        if ready is None or ready.pid != child.state.pid:
            return False
        child.state.ready_at = ready.at
        return True

    def _look_for_stalls(self) -> None:
        """Kill a running consumer whose group stayed behind without committing for ``stall_after`` s."""
        dog, now = self._watchdog, self._clock()
        if dog is None or now - self._looked < dog.every:
            return
        self._looked = now
        for child in self._children:
            if child.proc is None or child.state.state != "running":
                continue
            try:
                seen = dog.progress(child.state.name, child.proc.pid)
            except Exception as err:  # the watchdog's look must never take the supervisor (and the season) down
                self._note(child.state.name, f"watchdog could not look: {err!r}")
                continue
            if seen is None:
                continue
            committed, behind = seen.committed, seen.behind
            if seen.share != child.share:  # a new share of the group's partitions: a new start
                child.committed, child.still_since, child.share = -1, now, seen.share
            if child.committed >= 0 and committed != child.committed:
                child.progressed = True
            if behind == 0 or committed != child.committed:
                child.committed, child.still_since = committed, now
                continue
            if child.progressed and now - child.still_since >= dog.stall_after:
                note = f"{behind} events behind, nothing committed for {now - child.still_since:.0f} s"
                self._note(child.state.name, f"stalled ({note}): killed")
                child.proc.kill()
                child.committed = -1

    def _note(self, service: str, text: str) -> None:
        with self._files.log(service).open("ab") as sink:
            sink.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n".encode())

    def _start(self, child: _Child, now: float) -> None:
        log, ready = self._files.log(child.state.name), self._files.ready(child.state.name)
        ready.unlink(missing_ok=True)
        env = {**os.environ, "REDBLUE_READY_FILE": str(ready)}
        with log.open("ab") as sink:
            sink.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(child.argv)}\n".encode())
            sink.flush()
            child.proc = subprocess.Popen(
                child.argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=self._cwd, env=env
            )
        child.started = now
        child.committed, child.progressed, child.share = -1, False, None
        child.state.pid = child.proc.pid
        child.state.started_at = time.time()
        child.state.ready_at = None
        child.state.state = "starting"

    def _died(self, child: _Child, code: int, now: float) -> None:
        st = child.state
        st.last_exit, st.pid, child.proc, st.ready_at = code, None, None, None
        st.last_lines = tail(self._files.log(st.name), 20)
        st.failures = 1 if now - child.started >= self._backoff.healthy_after else st.failures + 1
        if st.failures >= self._backoff.max_failures:
            st.state = "failed"
            return
        st.state = "restarting"
        st.restarts += 1
        child.due = now + self._backoff.delay(st.failures)

    def _save(self) -> None:
        self._files.write_states([c.state for c in self._children])

    def _stop_all(self) -> None:
        running = [c for c in self._children if c.proc is not None]
        for child in reversed(running):  # the producer first: nothing new enters while the rest drain
            if child.proc is not None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = self._clock() + STOP_TIMEOUT
        for child in running:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=max(0.1, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        for child in self._children:
            child.proc = None
            if child.state.state != "failed":
                child.state.state = "stopped"
            child.state.pid = child.state.ready_at = None
        self._save()
