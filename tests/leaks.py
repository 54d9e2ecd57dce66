"""Finding secrets where they must not be: in bytes, files, and every message of a topic.

Used by the secrets scan after a simulation (``tests/integration/test_secrets.py``) and after a
rehearsal through misbehaving vendors (``scripts/vendor_faults.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from redblue.adapters.kafka import client_config
from redblue.core import credentials
from redblue.core.settings import Settings


def stack_secrets(settings: Settings) -> dict[str, str]:
    """Every password this stack knows: its credentials file and the passwords in ``settings``."""
    found = {k: v for k, v in credentials.read_file(settings.credentials_file).items() if v}
    for field in credentials.secret_fields():
        value = getattr(settings, field)
        if value is not None and value.get_secret_value():
            found[field] = value.get_secret_value()
    return found


def leaks(text: bytes | str, known: dict[str, str]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in known.items() if value.encode() in data]


def files_under(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
    elif root.is_dir():
        yield from (p for p in root.rglob("*") if p.is_file())


def raw_messages(settings: Settings, topic: str) -> list[tuple[bytes, bytes]]:
    """Every message of ``topic`` as (key, value) bytes (the admin reads everything)."""
    consumer = Consumer({**client_config(settings), "group.id": f"secrets-scan-{topic}", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        values: list[tuple[bytes, bytes]] = []
        for partition in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            while len(values) < 10_000:
                msg = consumer.poll(5.0)
                if msg is None:
                    break
                if msg.error() is None:
                    values.append((msg.key() or b"", msg.value() or b""))
                    if msg.offset() + 1 >= high:
                        break
        return values
    finally:
        consumer.close()
