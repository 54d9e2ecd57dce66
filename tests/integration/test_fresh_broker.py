"""What a newcomer's first run meets: a brand-new broker (fresh data directory, no consumer group
ever committed) and topics created while the consumers are already subscribing.

The consume loops must ride out what such a broker really says (unknown topic while metadata
propagates, coordinator not available while ``__consumer_offsets`` is created, batches holding
only error events) and lose nothing.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from redblue.adapters.kafka import EventProducer, Outgoing, client_config, consume, ensure_topics
from redblue.app.simulate import SimulationRequest, simulate
from redblue.core import credentials
from redblue.core.arena import load_arena
from redblue.core.settings import Settings
from redblue.stack import kafka as stack_kafka
from redblue.stack.credentials import with_stack_credentials
from schemas import Bar, Event, topic_name
from schemas.topics import BARS
from tests.factories import BASELINES, bar

pytestmark = pytest.mark.integration


def _free_port_pair() -> int:
    """A port p such that p (broker) and p + 1 (controller) can both be listened on: drawn below
    the kernel's ephemeral range (32768 up), where no outgoing connection takes a local port
    (one on p + 1 once made the broker's controller fail with 'Address already in use'), and
    both bound once to be sure."""
    for _ in range(100):
        port = random.randrange(20000, 32000)
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", port))
                two.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


@contextmanager
def brand_new_broker(settings: Settings, home: Path, **update: object) -> Iterator[Settings]:
    """A brand-new single-node Kafka (its own empty data directory and ports, the jars shared) with
    its own generated Kafka passwords; Redis and MLflow stay the stack's. ``update``: more settings."""
    (home / "kafka").symlink_to(stack_kafka.fetch_kafka(settings).parent.parent, target_is_directory=True)
    kafka_passwords = {name: None for name in credentials.secret_fields() if name.startswith("kafka_")}
    where = {"home": home, "stack_dir": home / "stack", "kafka_bootstrap": f"127.0.0.1:{_free_port_pair()}"}
    fresh = settings.model_copy(update=where | kafka_passwords | update)
    stack_kafka.start_kafka(fresh, out=lambda _: None)
    fresh = with_stack_credentials(fresh)  # the new broker's own (generated) Kafka passwords
    try:
        yield fresh
    finally:
        stack_kafka.stop_kafka(fresh, out=lambda _: None)


@pytest.fixture
def fresh_broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A brand-new single-node Kafka for each test."""
    with brand_new_broker(settings, tmp_path_factory.mktemp("fresh-home")) as fresh:
        yield fresh


def _committed(settings: Settings, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({**client_config(settings), "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


def test_consumers_subscribed_before_their_topics_exist_lose_nothing(fresh_broker: Settings, run_id: str) -> None:
    seen: list[Event] = []
    stop, failures = threading.Event(), []

    def handle(event: Event) -> list[Outgoing]:
        seen.append(event)
        return []

    def loop() -> None:
        try:
            consume(fresh_broker, run_id, group=f"g-{run_id}", specs=[BARS], expect=(Bar,), handle=handle,
                    stop=stop, stage="test")  # fmt: skip
        except Exception as err:  # the bug: a batch of error events made the commit raise
            failures.append(err)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    time.sleep(2.0)  # the consumer is subscribed and polling while the topic does not exist yet
    ensure_topics(fresh_broker, run_id)
    producer = EventProducer(fresh_broker, run_id)
    days = [date(2024, 1, d) for d in (2, 3, 4, 5, 8)]
    for symbol in ("AAPL", "AMZN", "SAP"):
        for day in days:
            producer.send(Outgoing(BARS, symbol, bar(symbol, day, 100.0 + day.day)))
    producer.flush()

    deadline = time.monotonic() + 60
    while len(seen) < 15 and not failures and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(timeout=30)

    assert not failures, f"the consume loop died: {failures[0]!r}"
    assert len(seen) == 15
    topic = topic_name(fresh_broker.topic_prefix, run_id, BARS)
    assert _committed(fresh_broker, f"g-{run_id}", topic, BARS.partitions) == 15


def test_the_first_simulation_on_a_brand_new_broker_completes(
    fresh_broker: Settings, run_id: str, tmp_path: Path
) -> None:
    """The newcomer's ``make demo``: processor, trader and scorer all start on a broker that has
    never seen a consumer group, and the run ends with every forecast scored."""
    arena = load_arena(BASELINES)
    req = SimulationRequest(date(2024, 1, 2), 5, arena, BASELINES, run_id=run_id, out=tmp_path / "out", timeout=120)
    result = simulate(fresh_broker, req, say=lambda _: None)
    scored = {(row["team"], row["model"], row["symbol"]): row["count"] for row in result.summary["series"]}
    assert len(scored) == len(arena.symbols) * len(list(arena.all_models())), scored
    assert set(scored.values()) == {5}, scored


def test_a_producer_made_once_the_run_is_granted_gets_its_id_on_a_brand_new_broker(
    fresh_broker: Settings, run_id: str
) -> None:
    """A simulation makes its replay's producer inside ``prepare_run`` (``granted``), early, so it
    has its producer id when the bars go out. The broker gives an idempotent producer an id only if
    it may write some topic (KIP-679), and a brand-new broker has no other run's ACLs: a producer
    made before the run's ACLs failed fatally (CI's first ``make demo``, never a warm stack)."""
    from redblue.app.provision import prepare_run

    made: list[EventProducer] = []

    def make() -> None:
        producer = EventProducer(fresh_broker.for_service("producer"), run_id)
        time.sleep(1.5)  # librdkafka asks for the id within this (a half-second retry timer)
        made.append(producer)

    prepare_run(fresh_broker, run_id, granted=make)
    [producer] = made
    producer.send(Outgoing(BARS, "AAPL", bar("AAPL", date(2024, 1, 2), 100.0)))
    producer.flush(timeout=30)  # raises if the producer failed
