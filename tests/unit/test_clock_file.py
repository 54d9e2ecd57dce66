"""The replayed clock shared by separate processes: a file holding ``now``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from redblue.core.clock import ClockError, FileClock, clock_of, set_clock_file, utc_now
from redblue.core.settings import Settings

T0 = datetime(2024, 1, 2, 21, 30, tzinfo=UTC)


def test_every_new_moment_is_seen_at_once_even_within_the_same_instant(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    set_clock_file(path, T0)
    clock = FileClock(path)
    assert clock() == T0
    first = os.stat(path)
    for minutes in range(1, 50):  # writes within one coarse mtime tick: a cache keyed by mtime (and size) misses them
        set_clock_file(path, T0 + timedelta(minutes=minutes))
        os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
        assert clock() == T0 + timedelta(minutes=minutes)


def test_a_moment_is_read_in_utc_whatever_zone_it_was_written_in(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    set_clock_file(path, T0.astimezone(timezone(timedelta(hours=-5))))
    assert FileClock(path)() == T0 and FileClock(path)().tzinfo == UTC


def test_another_process_sees_the_moment_written_here(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    set_clock_file(path, T0)
    read = f"print(FileClock(Path({str(path)!r}))())"
    code = f"from pathlib import Path; from redblue.core.clock import FileClock; {read}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert datetime.fromisoformat(out.strip()) == T0


def test_a_missing_or_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    with pytest.raises(ClockError, match=r"replayed clock .*clock: No such file"):
        FileClock(path)()
    path.write_text("tomorrow\n")
    with pytest.raises(ClockError, match="'tomorrow' is not an ISO-8601 timestamp"):
        FileClock(path)()
    path.write_text("2024-01-02T21:30:00\n")
    with pytest.raises(ClockError, match="has no timezone"):
        FileClock(path)()
    with pytest.raises(ClockError, match="has no timezone"):
        set_clock_file(path, datetime(2024, 1, 2))


def test_the_settings_choose_the_clock(tmp_path: Path) -> None:
    assert clock_of(Settings(home=tmp_path)) is utc_now
    path = tmp_path / "clock"
    set_clock_file(path, T0)
    clock = clock_of(Settings(home=tmp_path, clock_file=path))
    assert clock() == T0
