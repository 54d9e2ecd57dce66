"""The season supervisor: services restarted with backoff, a service that keeps dying marked failed."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from redblue.app.cli import build_parser
from redblue.app.season.control import supervised_commands
from redblue.app.season.services import SERVICES, SeasonSpec, service_args
from redblue.app.season.supervisor import Backoff, SeasonFiles, ServiceState, Supervisor, Watchdog
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
    commits, once = iter(range(10**6)), iter([5, 6])
    progress = {  # "starting" never committed since its start: it may be loading its models
        "stuck": lambda: (next(once, 7), 3), "busy": lambda: (next(commits), 3), "idle": lambda: (7, 0),
        "starting": lambda: (7, 3),
    }  # fmt: skip
    dog = Watchdog(lambda name: progress[name](), stall_after=0.5, every=0.05)
    supervisor = Supervisor({n: sleep for n in progress}, files, tmp_path, Backoff(base=0.05), watchdog=dog)
    stop = threading.Event()
    thread = threading.Thread(target=supervisor.run, args=(stop,))
    thread.start()
    try:
        _until(lambda: _states(files).get("stuck", ServiceState("x")).restarts >= 1)
        time.sleep(0.3)
        states = _states(files)
        assert states["busy"].restarts == states["idle"].restarts == states["starting"].restarts == 0
        assert "stalled (3 events behind, nothing committed for" in files.log("stuck").read_text()
    finally:
        stop.set()
        thread.join(timeout=30)
