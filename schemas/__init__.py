"""Event contracts of redblue: the single source of truth for every message on Kafka.

Each event is an immutable, validated pydantic model. On the wire it is JSON in a small
envelope ``{"type": ..., "v": ..., "data": {...}}`` so a consumer can tell what it holds and
which version of the contract wrote it. :func:`encode` validates before anything is produced
and :func:`decode` validates everything that is consumed; a failure raises
:class:`SchemaError` whose message is the reason written to the dead-letter topic.
"""

from schemas.events import (
    Bar,
    BarProcessed,
    BarRevision,
    DeadLetter,
    Event,
    Fill,
    Forecast,
    Order,
    PositionMark,
    SchemaError,
    decode,
    encode,
)
from schemas.topics import TOPICS, TopicSpec, topic_name

__all__ = [
    "TOPICS",
    "Bar",
    "BarProcessed",
    "BarRevision",
    "DeadLetter",
    "Event",
    "Fill",
    "Forecast",
    "Order",
    "PositionMark",
    "SchemaError",
    "TopicSpec",
    "decode",
    "encode",
    "topic_name",
]
