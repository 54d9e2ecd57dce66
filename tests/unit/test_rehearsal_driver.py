"""The rehearsal driver waits for the services' readiness, not for a few seconds of uptime."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from redblue.app.season.supervisor import SeasonFiles, ServiceState
from redblue.core.settings import Settings
from scripts.rehearse import BASELINES, Kill, Rehearsal, killable


def driver(tmp_path: Path) -> Rehearsal:
    return Rehearsal(Settings(home=tmp_path, stack_dir=tmp_path), "r1", BASELINES, date(2024, 1, 2), 2, say=print)


def running(name: str, pid: int, ready: bool = True) -> ServiceState:
    return ServiceState(name, "running", pid, started_at=100.0, ready_at=130.0 if ready else None)


def test_the_driver_goes_on_only_when_every_current_process_said_it_is_ready(tmp_path: Path) -> None:
    rehearsal = driver(tmp_path)
    files = SeasonFiles.of(rehearsal.settings.stack_home, "r1")
    files.root.mkdir(parents=True)
    assert not rehearsal._all_ready()  # no state yet
    states = [running(name, 10 + n) for n, name in enumerate(killable(2))]
    files.write_states(states)
    assert rehearsal._all_ready()
    states[2] = running("trader", 99, ready=False)  # restarted, running, still rebuilding
    files.write_states(states)
    assert not rehearsal._all_ready()
    states[2] = running("trader", 99)
    states[3] = ServiceState("processor", "restarting", None, restarts=1)
    files.write_states(states)
    assert not rehearsal._all_ready()


def test_a_kill_is_recovered_when_the_new_process_is_ready_and_its_group_caught_up(tmp_path: Path) -> None:
    rehearsal = driver(tmp_path)
    files = SeasonFiles.of(rehearsal.settings.stack_home, "r1")
    files.root.mkdir(parents=True)
    kill = Kill("trader", 7, at=0.0, step="close 2024-01-02")
    rehearsal.kills.append(kill)
    lags = {"processor": 0, "trader": 0, "scorer": 0}
    files.write_states([running("trader", 8, ready=False)])
    rehearsal._note_recoveries(lags)
    assert kill.recovered is None  # running again, but not ready: it may not have re-read its forecasts
    files.write_states([running("trader", 8)])
    rehearsal._note_recoveries({**lags, "trader": 3})
    assert kill.recovered is None
    rehearsal._note_recoveries(lags)
    assert kill.recovered is not None
