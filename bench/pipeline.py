"""Benchmark: the reference simulation against a raw confluent-kafka round trip of as many messages.

Run with the stack up (``make bench``). Both are measured in this one run, side by side:

1. the reference simulation (AAPL, AMZN, SAP; 2024-01-02 + 180 trading days) through the real
   broker, processor, trader and scorer, wall time from reset to written files;
2. a raw confluent-kafka produce of the same number of messages (of the simulation's mean
   message size) to a fresh topic and a consume of all of them back.

The ratio says what redblue's pipeline (validation, Faust, three stages in sequence, Redis)
costs over moving the bytes alone.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]  # noqa: E402

from redblue.adapters.kafka import client_config, read_topic  # noqa: E402
from redblue.app.provision import reset_run  # noqa: E402
from redblue.app.simulate import SimulationRequest, simulate  # noqa: E402
from redblue.core.arena import DEFAULT_ARENA, load_arena  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from schemas import encode  # noqa: E402
from schemas.topics import BARS, FILLS, FORECASTS, ORDERS  # noqa: E402


def raw_round_trip(settings: Settings, count: int, size: int) -> float:
    """Seconds to produce ``count`` messages of ``size`` bytes and consume them all back."""
    topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=30)
    payload = b"x" * size
    began = time.perf_counter()
    producer = Producer({**client_config(settings), "enable.idempotence": True, "linger.ms": 5})
    for n in range(count):
        producer.produce(topic, key=str(n % 3).encode(), value=payload)
        producer.poll(0)
    producer.flush(30)
    consumer = Consumer({**client_config(settings), "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = 0
    while got < count:
        got += sum(1 for m in consumer.consume(num_messages=1000, timeout=1.0) if m.error() is None)
    consumer.close()
    elapsed = time.perf_counter() - began
    admin.delete_topics([topic])
    return elapsed


def main() -> None:
    settings = Settings()
    run = f"bench-{uuid.uuid4().hex[:8]}"
    arena = load_arena()
    out = REPO / "out" / run
    req = SimulationRequest(
        start=date(2024, 1, 2), days=180, arena=arena, arena_path=DEFAULT_ARENA, run_id=run, out=out
    )
    began = time.perf_counter()
    simulate(settings, req, say=lambda _: None)
    simulation = time.perf_counter() - began
    sizes = [len(encode(e)) for spec in (BARS, FORECASTS, ORDERS, FILLS) for e in read_topic(settings, run, spec)]
    messages, size = len(sizes), sum(sizes) // len(sizes)
    raw = raw_round_trip(settings, messages, size)
    reset_run(settings, run)
    print(f"messages through Kafka in the reference simulation: {messages} (mean payload {size} B)")
    print(f"{'':32}{'wall s':>10}{'msg/s':>12}")
    print(f"{'reference simulation':32}{simulation:>10.2f}{messages / simulation:>12.0f}")
    print(f"{'raw confluent-kafka round trip':32}{raw:>10.2f}{messages / raw:>12.0f}")
    print(f"ratio simulation / raw: {simulation / raw:.1f}x")


if __name__ == "__main__":
    main()
