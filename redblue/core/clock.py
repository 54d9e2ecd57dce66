"""Wall-clock time, injected so tests and replays control it.

A rehearsal replays market time across separate processes: ``REDBLUE_CLOCK_FILE`` names a file
holding one ISO-8601 timestamp, and every service built with :func:`clock_of` reads ``now``
from it (re-read only when the file changed) instead of the wall clock. The driver moves it
with :func:`set_clock_file` (written to a new file, then renamed over the old one, so a reader
never sees half a timestamp).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from redblue.core.errors import RedblueError

if TYPE_CHECKING:
    from redblue.core.settings import Settings

Clock = Callable[[], datetime]


class ClockError(RedblueError):
    """The replayed clock's file is missing or does not hold a timezone-aware ISO timestamp."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class FileClock:
    """``now`` as written in ``path``; the file is read again only when it was replaced or changed."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[int, int, int] | None = None  # (inode, mtime ns, size) of the file last read
        self._now = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        try:
            st = os.stat(self._path)
        except OSError as err:
            raise ClockError(f"replayed clock {self._path}: {err.strerror}") from None
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            self._now = read_clock_file(self._path)
            self._seen = seen
        return self._now


def read_clock_file(path: Path) -> datetime:
    """The moment written in ``path`` (UTC)."""
    try:
        text = path.read_text().strip()
    except OSError as err:
        raise ClockError(f"replayed clock {path}: {err.strerror}") from None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ClockError(f"replayed clock {path}: {text!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise ClockError(f"replayed clock {path}: {text!r} has no timezone")
    return moment.astimezone(UTC)


def set_clock_file(path: Path, moment: datetime) -> None:
    """Write ``moment`` (timezone-aware) into ``path`` atomically: a new file renamed over the old."""
    if moment.tzinfo is None:
        raise ClockError(f"replayed clock: {moment!r} has no timezone")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(moment.astimezone(UTC).isoformat() + "\n")
    tmp.replace(path)


def clock_of(settings: Settings) -> Clock:
    """The service's clock: the replayed one of ``settings.clock_file`` if set, else the wall clock."""
    return FileClock(settings.clock_file) if settings.clock_file is not None else utc_now
