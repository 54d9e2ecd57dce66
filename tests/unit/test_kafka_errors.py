"""Which broker errors a consume loop rides out and which stop the service (issue: a fresh broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from redblue.adapters.kafka import KafkaUnavailable, admin_client, commit, is_transient, shared_admin_clients
from redblue.core.settings import Settings


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.UNKNOWN_TOPIC_OR_PART,  # subscribed before the topic's metadata propagated
        KafkaError.COORDINATOR_NOT_AVAILABLE,  # first group on a new broker: __consumer_offsets is being made
        KafkaError.NOT_COORDINATOR,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._NO_OFFSET,  # a commit with nothing consumed since the last one
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
    ],
)
def test_what_a_fresh_or_busy_broker_says_is_transient(code: int) -> None:
    assert is_transient(KafkaError(code))


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
    ],
)
def test_what_needs_a_person_is_not(code: int) -> None:
    assert not is_transient(KafkaError(code))


def test_a_fatal_error_is_never_transient() -> None:
    assert not is_transient(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, fatal=True))


class _Consumer:
    def __init__(self, code: int | None) -> None:
        self.code, self.calls = code, 0

    def commit(self, asynchronous: bool = True) -> None:
        self.calls += 1
        if self.code is not None:
            raise KafkaException(KafkaError(self.code))


def test_a_commit_with_nothing_to_commit_is_not_fatal() -> None:
    consumer = _Consumer(KafkaError._NO_OFFSET)
    commit(consumer, "trader")  # type: ignore[arg-type]
    assert consumer.calls == 1


def test_a_commit_refused_for_lack_of_rights_stops_with_a_clear_message() -> None:
    with pytest.raises(KafkaUnavailable, match="scorer: Kafka commit failed"):
        commit(_Consumer(KafkaError.GROUP_AUTHORIZATION_FAILED), "scorer")  # type: ignore[arg-type]


class _Producer:
    """In flight: how many outputs are not yet acknowledged."""

    def __init__(self) -> None:
        self.in_flight, self.flushes = 0, 0

    def delivered(self) -> bool:
        return self.in_flight == 0

    def flush(self) -> None:
        self.flushes += 1
        self.in_flight = 0


class _Recorder:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def commit(self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True) -> None:
        where = ",".join(f"{tp.partition}@{tp.offset}" for tp in offsets or [])
        self.log.append(("async " if asynchronous else "sync ") + where)


def test_offsets_are_committed_only_once_the_outputs_before_them_are_acknowledged() -> None:
    from redblue.adapters.kafka import _Commits

    log: list[str] = []
    producer, failed = _Producer(), []
    commits = _Commits(_Recorder(log), producer, "trader", failed, every=3600.0)  # type: ignore[arg-type]
    producer.in_flight = 2
    commits.after({("t", 0): 10})
    assert log == [] and producer.flushes == 0  # outputs in flight: no commit, and no waiting
    producer.in_flight = 0
    commits.after({("t", 1): 5})
    assert log == ["async 0@10,1@5"]  # everything before is acknowledged: commit without waiting
    producer.in_flight = 1
    commits.after({("t", 0): 12})
    commits.settle()  # idle or stopping: wait for the outputs, then commit
    assert (log, producer.flushes) == (["async 0@10,1@5", "sync 0@12"], 1)
    commits.settle()
    assert log == ["async 0@10,1@5", "sync 0@12"]  # nothing new to commit


def test_a_lasting_asynchronous_commit_failure_stops_the_loop() -> None:
    from redblue.adapters.kafka import _Commits

    failed: list[KafkaError] = []
    commits = _Commits(_Recorder([]), _Producer(), "scorer", failed)  # type: ignore[arg-type]
    failed.append(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    commits.after({("t", 0): 1})  # transient: logged, retried by the next commit
    failed.append(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))
    with pytest.raises(KafkaUnavailable, match="scorer: Kafka commit failed"):
        commits.after({("t", 0): 2})


def test_a_big_batch_is_handled_in_units_each_sent_and_committed_before_the_next() -> None:
    from contextlib import nullcontext
    from datetime import date

    from redblue.adapters.kafka import Outgoing, Received, _Work
    from schemas.topics import FILLS
    from tests.factories import bar

    log: list[str] = []

    class Sent:
        def send_many(self, outs: list[Outgoing], revalidate: bool = True) -> None:
            log.append(f"send {len(outs)}")

    class Commits:
        def after(self, offsets: dict[tuple[str, int], int]) -> None:
            log.append(f"commit {sorted(offsets.items())}")

    def handle(event: object) -> list[Outgoing]:
        log.append("handle")
        return [Outgoing(FILLS, "AAPL", event)]  # type: ignore[arg-type]

    work = _Work(Sent(), handle, nullcontext, Commits(), size=3)  # type: ignore[arg-type]
    b = bar("AAPL", date(2024, 1, 2), 100.0)
    work.add(Received("t", 0, 7, None, None), [b, b])
    assert log == []
    work.add(Received("t", 1, 3, None, None), [b, b])  # 4 events: the unit is full
    assert log == ["handle"] * 4 + ["send 4", "commit [(('t', 0), 8), (('t', 1), 4)]"]
    work.add(Received("t", 0, 8, None, None), [])  # a dead-lettered message: nothing to handle, still committed
    work.finish()
    assert log[-2:] == ["send 0", "commit [(('t', 0), 9)]"]


def test_admin_clients_are_shared_only_inside_the_block() -> None:
    """Setting a run up shares one admin client per login; anywhere else (a supervisor that lives
    through broker restarts) each call gets a new one, never one stuck in reconnect back-off."""
    admin = Settings(kafka_bootstrap="127.0.0.1:1", security=False).for_service("admin")
    other = admin.model_copy(update={"kafka_bootstrap": "127.0.0.1:2"})
    assert admin_client(admin) is not admin_client(admin)
    with shared_admin_clients():
        first = admin_client(admin)
        assert admin_client(admin) is first
        assert admin_client(other) is not first
    assert admin_client(admin) is not first
