"""Readiness: the ready file, and when a consume loop has read everything its topics held."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import TopicPartition

from redblue.adapters.kafka import _caught_up
from redblue.core.readiness import Ready, announce_ready, read_ready

INVALID = -1001  # librdkafka's "no offset": nothing read there yet, nothing committed


def test_the_ready_file_holds_the_pid_and_the_time(tmp_path: Path) -> None:
    path = tmp_path / "trader.json"
    assert read_ready(path) is None
    announce_ready(path, pid=42, now=1000.5)
    assert read_ready(path) == Ready(42, 1000.5)
    announce_ready(None)  # a service started without a supervisor: nothing written, no error
    path.write_text("{half")
    assert read_ready(path) is None


@dataclass
class FakeConsumer:
    """What ``_caught_up`` asks a consumer: assignment, positions, committed offsets, watermarks."""

    marks: dict[int, tuple[int, int]]  # partition -> (low, high)
    positions: dict[int, int] = field(default_factory=dict)
    commits: dict[int, int] = field(default_factory=dict)

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", p) for p in self.marks]

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition("t", tp.partition, self.positions.get(tp.partition, INVALID)) for tp in tps]

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [TopicPartition("t", tp.partition, self.commits.get(tp.partition, INVALID)) for tp in tps]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return self.marks[tp.partition]


def test_a_consumer_that_rereads_from_the_start_is_caught_up_at_the_end_of_every_partition() -> None:
    consumer = FakeConsumer({0: (0, 10), 1: (0, 0), 2: (4, 4)})  # 1 and 2: nothing to read
    assert not _caught_up(consumer, from_start=True)  # type: ignore[arg-type]
    consumer.commits[0] = 10  # its predecessor committed the end: a re-reading consumer is not there yet
    assert not _caught_up(consumer, from_start=True)  # type: ignore[arg-type]
    consumer.positions[0] = 9
    assert not _caught_up(consumer, from_start=True)  # type: ignore[arg-type]
    consumer.positions[0] = 10
    assert _caught_up(consumer, from_start=True)  # type: ignore[arg-type]


def test_a_consumer_that_resumes_is_caught_up_where_its_group_committed_the_end() -> None:
    consumer = FakeConsumer({0: (0, 10), 1: (3, 7)}, commits={0: 10, 1: 5})
    assert not _caught_up(consumer, from_start=False)  # type: ignore[arg-type]
    consumer.positions[1] = 7
    assert _caught_up(consumer, from_start=False)  # type: ignore[arg-type]


def test_a_consumer_without_partitions_is_not_caught_up() -> None:
    assert not _caught_up(FakeConsumer({}), from_start=True)  # type: ignore[arg-type]
