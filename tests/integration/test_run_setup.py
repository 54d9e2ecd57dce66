"""Setting a run up and reading it, against the real broker: what a simulation's start-up and
its stages' hand-overs rely on."""

from __future__ import annotations

import time
from datetime import date

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import ConfigResource  # type: ignore[attr-defined]

from redblue.adapters.kafka import (
    EventProducer,
    KafkaUnavailable,
    Outgoing,
    admin_client,
    client_config,
    ensure_compacted_topics,
    take,
)
from redblue.app.provision import prepare_run, reset_run
from redblue.core.access import processor_changelogs, reader_group
from redblue.core.settings import Settings
from schemas import topic_name
from schemas.topics import BARS
from tests.factories import bar

pytestmark = pytest.mark.integration


def test_a_run_set_up_holds_the_processors_changelogs_in_the_broker_s_metadata(settings: Settings, run_id: str) -> None:
    """The processor's worker of a simulation starts without Faust's pause: its changelog topic
    must exist (compacted, with the bars topic's partitions, each led) once the run is set up."""
    try:
        topics = prepare_run(settings, run_id)
        admin = admin_client(settings.for_service("admin"))
        listed = admin.list_topics(timeout=10).topics
        [(changelog, partitions)] = processor_changelogs(run_id).items()
        assert changelog in topics and partitions == BARS.partitions
        assert len(listed[changelog].partitions) == partitions
        assert all(p.leader >= 0 for p in listed[changelog].partitions.values())
        [future] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, changelog)]).values()
        assert future.result(timeout=10)["cleanup.policy"].value == "compact"
    finally:
        reset_run(settings, run_id)
    assert changelog not in admin_client(settings.for_service("admin")).list_topics(timeout=10).topics


def test_a_consumer_takes_what_has_arrived_without_waiting_for_a_full_batch(settings: Settings, run_id: str) -> None:
    """``take`` hands over the one message there is at once. (``Consumer.consume(1000, timeout)``
    waits for 1,000 messages or the whole timeout: with a replay's few large batch messages each
    stage waited its full timeout on every call.)"""
    try:
        prepare_run(settings, run_id)
        producer = EventProducer(settings.for_service("producer"), run_id)
        producer.send(Outgoing(BARS, "AAPL", bar("AAPL", date(2024, 1, 2), 100.0)))
        producer.flush()
        admin = settings.for_service("admin")
        consumer = Consumer({**client_config(admin), "group.id": reader_group(run_id), "enable.auto.commit": False})
        name = topic_name(settings.topic_prefix, run_id, BARS)
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in range(BARS.partitions)])
        try:
            began = time.monotonic()
            got = take(consumer, 1000, timeout=30)
            waited = time.monotonic() - began
        finally:
            consumer.close()
        assert [m.error() for m in got] == [None]
        assert waited < 15, f"took {waited:.1f}s for one message that was there: it waited for a full batch"
    finally:
        reset_run(settings, run_id)


def test_a_changelog_left_with_other_partitions_is_a_clear_error(settings: Settings, run_id: str) -> None:
    """A topic of the run that exists with the wrong number of partitions is named at once (a
    worker would meet it as Faust's PartitionsMismatch on its first table write)."""
    [(changelog, partitions)] = processor_changelogs(run_id).items()
    try:
        ensure_compacted_topics(settings.for_service("admin"), {changelog: partitions - 1})
        with pytest.raises(
            KafkaUnavailable, match=f"{changelog} exists with {partitions - 1} partitions, not {partitions}"
        ):
            prepare_run(settings, run_id)
    finally:
        reset_run(settings, run_id)
