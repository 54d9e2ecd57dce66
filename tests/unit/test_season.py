"""The season supervisor: services restarted with backoff, a service that keeps dying marked failed."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redblue.app.cli import build_parser
from redblue.app.season.control import supervised_commands
from redblue.app.season.services import SERVICES, SeasonSpec, kind_of, processor_names, service_args
from redblue.app.season.supervisor import Backoff, Progress, SeasonFiles, ServiceState, Supervisor, Watchdog
from redblue.stack.process import pid_alive


def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _states(files: SeasonFiles) -> dict[str, ServiceState]:
    return {s.name: s for s in files.read_states()}


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5, 9)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_every_service_command_is_one_the_cli_accepts(tmp_path: Path) -> None:
    spec = SeasonSpec("s1", arena=tmp_path / "a.yaml", source="alpaca")
    args = service_args(spec)
    assert list(args) == list(SERVICES)
    parsed = {name: build_parser().parse_args(argv) for name, argv in args.items()}
    assert {p.command for p in parsed.values()} == {"serve", "score", "trade", "process", "produce"}
    assert all(p.run == "s1" and p.arena == tmp_path / "a.yaml" for n, p in parsed.items() if n != "web")
    assert parsed["producer"].source == "alpaca"
    assert supervised_commands(spec)["trader"] == [sys.executable, "-m", "redblue", *args["trader"]]


def test_several_processor_workers_run_the_same_command_line(tmp_path: Path) -> None:
    args = service_args(SeasonSpec("s1", arena=tmp_path / "a.yaml", processors=3))
    assert list(args) == ["web", "scorer", "trader", "processor", "processor-2", "processor-3", "producer"]
    assert args["processor"] == args["processor-2"] == args["processor-3"]
    assert processor_names(1) == ["processor"] and {kind_of(n) for n in args} == set(SERVICES)
    assert kind_of("processor-x") == "processor-x"
    parsed = build_parser().parse_args(["season", "up", "--season", "s1", "--processors", "2"])
    assert parsed.processors == 2


def test_a_dead_service_is_restarted_and_one_that_keeps_dying_fails(tmp_path: Path) -> None:
    files = SeasonFiles(tmp_path / "season")
    commands = {
        "steady": [sys.executable, "-c", "import time; time.sleep(60)"],
        "crashy": [sys.executable, "-c", "print('boom: cannot start'); raise SystemExit(3)"],
    }
    supervisor = Supervisor(commands, files, tmp_path, Backoff(base=0.05, cap=0.2, max_failures=3, healthy_after=30))
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        _until(lambda: _states(files).get("crashy", ServiceState("x")).state == "failed")
        crashy = _states(files)["crashy"]
        assert (crashy.restarts, crashy.last_exit, crashy.pid) == (2, 3, None)
        assert "boom: cannot start" in crashy.last_lines
        steady = _states(files)["steady"]
        assert steady.state == "running" and steady.restarts == 0 and steady.pid is not None
        first_pid = steady.pid
        import os
        import signal

        os.kill(first_pid, signal.SIGKILL)
        _until(lambda: (s := _states(files)["steady"]).state == "running" and s.pid not in (None, first_pid))
        assert _states(files)["steady"].restarts == 1
        assert _states(files)["steady"].last_exit == -signal.SIGKILL
    finally:
        stop.set()
        thread.join(timeout=30)
    final = _states(files)
    assert final["steady"].state == "stopped" and final["crashy"].state == "failed"
    assert not thread.is_alive()
    last_pid = final["steady"].pid
    assert last_pid is None
    assert "starting:" in files.log("steady").read_text()


def test_stopping_the_supervisor_stops_its_services(tmp_path: Path) -> None:
    files = SeasonFiles(tmp_path / "season")
    supervisor = Supervisor({"a": [sys.executable, "-c", "import time; time.sleep(60)"]}, files, tmp_path)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    _until(lambda: _states(files).get("a", ServiceState("x")).state == "running")
    pid = _states(files)["a"].pid
    assert pid is not None and pid_alive(pid)
    stop.set()
    thread.join(timeout=30)
    assert not pid_alive(pid)
    assert _states(files)["a"].state == "stopped"


def test_the_watchdog_restarts_a_consumer_that_is_alive_but_stuck(tmp_path: Path) -> None:
    """'stuck' stays behind without committing; 'busy' is behind but commits; 'idle' has nothing to do."""
    files = SeasonFiles(tmp_path / "season")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    commits, once, looks = iter(range(10**6)), iter([5, 6]), iter(range(10**6))

    def moved() -> Progress:  # a starting worker given a bigger share of the partitions (a rebalance):
        first = next(looks) == 0  # its committed total grows with the share, which is no progress of its own
        return (
            Progress(5, 3, frozenset({("bars", 0)})) if first else Progress(9, 3, frozenset({("bars", 0), ("bars", 1)}))
        )

    progress = {  # "starting" never committed since its start: it may be loading its models
        "stuck": lambda: Progress(next(once, 7), 3), "busy": lambda: Progress(next(commits), 3),
        "idle": lambda: Progress(7, 0), "starting": lambda: Progress(7, 3), "moved": moved,
    }  # fmt: skip
    dog = Watchdog(lambda name, _pid: progress[name](), stall_after=0.5, every=0.05)
    supervisor = Supervisor({n: sleep for n in progress}, files, tmp_path, Backoff(base=0.05), watchdog=dog)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        _until(lambda: _states(files).get("stuck", ServiceState("x")).restarts >= 1)
        time.sleep(0.3)
        states = _states(files)
        assert states["busy"].restarts == states["idle"].restarts == states["starting"].restarts == 0
        assert states["moved"].restarts == 0
        assert "stalled (3 events behind, nothing committed for" in files.log("stuck").read_text()
    finally:
        stop.set()
        thread.join(timeout=30)


_READY_CHILD = """
import os, sys, time
from redblue.core.readiness import announce_ready
from redblue.core.settings import Settings
time.sleep(float(sys.argv[1]))
announce_ready(Settings().ready_file)
time.sleep(60)
"""


def test_a_service_is_ready_only_when_its_own_process_says_so(tmp_path: Path) -> None:
    """The supervisor gives each child its ready file (REDBLUE_READY_FILE, the ``ready_file``
    setting); the time is taken when the child's pid wrote it, a predecessor's file is ignored."""
    from redblue.app.season.control import REPO
    from redblue.core.readiness import announce_ready

    files = SeasonFiles(tmp_path / "season")
    commands = {name: [sys.executable, "-c", _READY_CHILD, wait] for name, wait in (("quick", "0"), ("late", "3"))}
    supervisor = Supervisor(commands, files, REPO, Backoff(base=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        _until(lambda: _states(files).get("late", ServiceState("x")).state == "running")
        announce_ready(files.ready("late"), pid=999_999)  # e.g. left by a killed predecessor: not this process
        _until(lambda: _states(files).get("quick", ServiceState("x")).ready_at is not None)
        quick, late = _states(files)["quick"], _states(files)["late"]
        assert late.ready_at is None  # not written by its own process yet
        assert quick.started_at is not None and quick.ready_at is not None and quick.ready_at >= quick.started_at
        first = quick.pid
        assert first is not None
        import os
        import signal

        os.kill(first, signal.SIGKILL)
        _until(lambda: (s := _states(files)["quick"]).pid not in (None, first) and s.state == "running")
        restarted = _states(files)["quick"]
        assert restarted.ready_at is None or restarted.ready_at >= (restarted.started_at or 0)
        _until(lambda: _states(files)["quick"].ready_at is not None and _states(files)["late"].ready_at is not None)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert all(s.ready_at is None for s in _states(files).values())  # stopped: nobody is ready


def test_status_shows_readiness_and_each_processor_workers_partitions() -> None:
    from redblue.app.season.control import SeasonStatus, render

    services = [
        ServiceState("trader", "running", 11, started_at=100.0, ready_at=114.0),
        ServiceState("processor", "running", 12, started_at=100.0, ready_at=130.0),
        ServiceState("processor-2", "running", 13, started_at=150.0),
        ServiceState("scorer", "restarting", None, restarts=1),
    ]
    text = render(SeasonStatus("s1", 5, services, {}, {}, {}, [], shares={12: [0, 2], 99: [1]}), now=160.0)
    rows = {line.split()[0]: line for line in text.splitlines() if line.split() and line.split()[0] in _NAMES}
    assert rows["trader"].endswith("after 14s")
    assert rows["processor"].endswith("after 30s; bars partitions 0,2")
    assert rows["processor-2"].endswith("not yet; bars partitions none (not in the group)")
    assert rows["scorer"].split()[1:3] == ["restarting", "-"] and rows["scorer"].endswith("-")


_NAMES = {"trader", "processor", "processor-2", "scorer"}


def test_a_watchdog_that_cannot_look_does_not_take_the_season_down(tmp_path: Path) -> None:
    """E.g. describing the processor's group times out while the broker restarts (seen in the
    60-session rehearsal: the supervisor died and stopped every service)."""

    def blind(_name: str, _pid: int) -> Progress:
        raise TimeoutError()

    files = SeasonFiles(tmp_path / "season")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor({"a": sleep}, files, tmp_path, watchdog=Watchdog(blind, stall_after=0.1, every=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        _until(
            lambda: files.log("a").exists() and "watchdog could not look: TimeoutError()" in files.log("a").read_text()
        )
        time.sleep(0.3)
        assert thread.is_alive() and _states(files)["a"].state == "running"
    finally:
        stop.set()
        thread.join(timeout=30)
