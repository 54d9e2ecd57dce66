"""Which broker errors a consume loop rides out and which stop the service (issue: a fresh broker)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from redblue.adapters.kafka import KafkaUnavailable, commit, is_transient


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
