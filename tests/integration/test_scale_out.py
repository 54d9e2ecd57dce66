"""Scale-out: two processor workers in one consumer group, one killed mid-season (twice).

A short rehearsal (``scripts/rehearse.py``: every service its own process under ``season up``,
the Alpaca stand-ins, the replayed clock) with ``--processors 2``: the group's description must
show both workers holding bars partitions (the three split between them); ``processor-2`` is
killed with SIGKILL mid-season, and its restarted successor again later (so the first worker
gets back a partition it held before: its memory copy of that window is stale); after each kill
the group without the killed worker must hold every partition (the survivor alone until the
restarted worker joins, or both); and the season must end with the forecasts and orders of the
clean one-process replay of the same sessions — no forecast missing, none with two values, no
order doubled at the broker stand-ins.
"""

from __future__ import annotations

from datetime import date

import pytest

from redblue.core.settings import Settings
from schemas.topics import BARS
from scripts.rehearse import BASELINES, Chaos, against_clean_replay, doubled, rehearse, repeated

pytestmark = pytest.mark.integration
START, DAYS = date(2024, 1, 2), 5
ALL = list(range(BARS.partitions))


def held(share: dict[int, list[int]]) -> list[int]:
    return sorted(p for partitions in share.values() for p in partitions)


def test_two_processor_workers_share_the_partitions_and_one_takes_over_from_the_other(
    settings: Settings, run_id: str
) -> None:
    chaos = Chaos(kills=2, seed=6, victims=("processor-2",))  # kills at the closes of sessions 2 and 5
    storm, kills = rehearse(settings, run_id, BASELINES, START, DAYS, chaos, say=lambda _: None, processors=2)

    assert [k.service for k in kills] == ["processor-2"] * 2 and all(k.recovered is not None for k in kills), kills
    for kill in kills:
        last = max(i for i, share in enumerate(storm.shares) if kill.pid in share)
        split = [s for s in storm.shares[: last + 1] if kill.pid in s and len(s) == 2 and all(s.values())]
        assert split and all(held(s) == ALL for s in split), storm.shares  # two members, the partitions split
        after = storm.shares[last + 1 :]
        assert any(held(s) == ALL for s in after), storm.shares  # the group without the killed worker holds all
        assert all(kill.pid not in s for s in after)

    assert against_clean_replay(settings, storm, BASELINES, START, DAYS) == {
        "forecasts as the clean replay": True, "orders as the clean replay": True,
    }  # fmt: skip
    assert repeated(storm) == {}  # a re-sent forecast (a bar redelivered after a kill) is the same forecast
    assert len({f[:4] for f in storm.forecasts}) >= 3 * 3 * DAYS
    assert storm.accepted == storm.submitted_events and doubled(storm) == {}
