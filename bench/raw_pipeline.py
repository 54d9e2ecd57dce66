"""A raw confluent-kafka pipeline moving given messages through redblue's four stages, for comparison.

Stage 1 (this process) produces the bars; stage 2 (its own process, as the processor is) consumes
them and, for each bar message, produces its share of the forecast messages; stage 3 (a thread,
as the trader is) consumes the forecasts and produces its share of the trader's messages; stage 4
(a thread, as the scorer is) consumes forecasts and trader messages until it has them all. Each
stage subscribes with a fresh consumer group, as redblue's do. No decoding, no logic: only moving
the same bytes, so the time is what Kafka and the client cost.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

Payload = tuple[bytes | None, bytes]


Config = dict[str, str]  # client settings: the servers and, on a secured stack, the login


def _producer(config: Config) -> Producer:
    return Producer({**config, "enable.idempotence": True, "linger.ms": 5})


def _consumer(config: Config, topics: list[str]) -> Consumer:
    consumer = Consumer(
        {
            **config,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe(topics)
    return consumer


def _take(consumer: Consumer) -> list[Message]:
    """What has arrived, as soon as one message has: ``consume(1000, timeout)`` would wait the
    whole timeout whenever fewer than 1,000 messages come (the way redblue's stages read too)."""
    first = consumer.poll(0.2)
    return [] if first is None else [first, *consumer.consume(999, timeout=0)]


def _send(producer: Producer, topic: str, payloads: Sequence[Payload]) -> None:
    for key, value in payloads:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)


def relay(config: Config, source: list[str], target: str, outputs: Sequence[Payload], inputs: int) -> None:
    """Consume ``inputs`` messages from ``source``; after the i-th, produce its share of ``outputs``."""
    consumer, producer = _consumer(config, source), _producer(config)
    seen = sent = 0
    while seen < inputs:
        for msg in _take(consumer):
            if msg.error() is None:
                seen += 1
                due = len(outputs) * seen // inputs
                _send(producer, target, outputs[sent:due])
                sent = due
        producer.poll(0)
    producer.flush(30)
    consumer.close()


def drain(config: Config, source: list[str], inputs: int) -> None:
    consumer = _consumer(config, source)
    seen = 0
    while seen < inputs:
        seen += sum(1 for msg in _take(consumer) if msg.error() is None)
    consumer.close()


def run(config: Config, bars: list[Payload], forecasts: list[Payload], trades: list[Payload]) -> float:
    """Seconds to move the messages through the four stages (the stage-2 process start included)."""
    name = uuid.uuid4().hex[:8]
    topics = {t: f"raw-{name}-{t}" for t in ("bars", "forecasts", "trades")}
    admin = AdminClient(config)
    for future in admin.create_topics(
        [NewTopic(t, num_partitions=3, replication_factor=1) for t in topics.values()]
    ).values():
        future.result(timeout=30)
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as handle:
        pickle.dump((config, forecasts, len(bars)), handle)  # a 0600 file, removed below
    producer = _producer(config)  # made first, as redblue's replay makes its producer before the run starts
    try:
        began = time.perf_counter()
        stage2 = subprocess.Popen(
            [sys.executable, __file__, "stage2", topics["bars"], topics["forecasts"], handle.name]
        )
        stage3 = threading.Thread(
            target=relay, args=(config, [topics["forecasts"]], topics["trades"], trades, len(forecasts))
        )
        stage4 = threading.Thread(
            target=drain, args=(config, [topics["forecasts"], topics["trades"]], len(forecasts) + len(trades))
        )
        stage3.start()
        stage4.start()
        _send(producer, topics["bars"], bars)
        producer.flush(30)
        stage4.join()
        elapsed = time.perf_counter() - began
        stage3.join()
        stage2.wait(timeout=60)
    finally:
        Path(handle.name).unlink(missing_ok=True)
        admin.delete_topics(list(topics.values()))
    return elapsed


if __name__ == "__main__" and sys.argv[1:2] == ["stage2"]:
    _, _, bars_topic, forecasts_topic, path = sys.argv
    config, outputs, inputs = pickle.loads(Path(path).read_bytes())
    relay(config, [bars_topic], forecasts_topic, outputs, inputs)
