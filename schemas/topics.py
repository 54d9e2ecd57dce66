"""Topic names, partition counts and keys: defined here and nowhere else.

Every run (a simulation or a live season) has its own set of topics,
``{prefix}.{run_id}.{suffix}``, so runs can never mix their events. Topics are created
explicitly by :func:`redblue.adapters.kafka.ensure_topics`; the local broker has auto-create off.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class TopicSpec:
    """One logical topic: its suffix, partition count, what it is keyed by and what it carries."""

    suffix: str
    partitions: int
    key: str
    carries: tuple[str, ...]


# A ``bar_revision`` (a vendor changed a published bar) follows the bar it revises on its key.
BARS = TopicSpec("bars", 3, "symbol", ("bar", "bar_revision"))
# The processor writes each bar's forecasts and then a ``bar_processed`` marker carrying the
# bar itself, all keyed by symbol: within a partition a consumer therefore sees every forecast
# made from bar D before it sees bar D's marker, which is what makes replays deterministic.
# It forwards each ``bar_revision`` here too, in its place among the markers.
FORECASTS = TopicSpec("forecasts", 3, "symbol", ("forecast", "bar_processed", "bar_revision"))
# A ``team_state`` (whether the trader trades a team, and if not why) is keyed by the team.
ORDERS = TopicSpec("orders", 3, "symbol", ("order", "team_state"))
# Fills of (team, symbol) up to day D are followed by that day's ``position_mark``.
FILLS = TopicSpec("fills", 3, "symbol", ("fill", "position_mark"))
DEADLETTER = TopicSpec("deadletter", 1, "source topic", ("dead_letter",))

TOPICS: tuple[TopicSpec, ...] = (BARS, FORECASTS, ORDERS, FILLS, DEADLETTER)


def partition_of(key: str, partitions: int) -> int:
    """The partition of a message keyed ``key``: what librdkafka's default partitioner picks
    (CRC-32 of the key), so messages sent with an explicit partition (batches of several keys)
    land where a message keyed by any of their keys would."""
    return zlib.crc32(key.encode()) % partitions


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is usable in topic and key names, else raise ``ValueError``."""
    if not RUN_ID_PATTERN.match(run_id):
        raise ValueError(
            f"invalid run id {run_id!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )
    return run_id


def topic_name(prefix: str, run_id: str, spec: TopicSpec) -> str:
    """The Kafka topic that carries ``spec`` for one run."""
    return f"{prefix}.{check_run_id(run_id)}.{spec.suffix}"
