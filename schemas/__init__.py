"""Event contracts of redblue: the single source of truth for every message on Kafka.

Each event is an immutable, validated pydantic model. On the wire it is JSON in a small
envelope ``{"type": ..., "v": ..., "data": {...}}`` so a consumer can tell what it holds and
which version of the contract wrote it. Every event is validated when it is built (or by
:func:`encode` when asked) and :func:`decode` validates everything that is consumed; a failure
raises :class:`SchemaError` whose message is the reason written to the dead-letter topic.
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
    TeamState,
)
from schemas.topics import TOPICS, TopicSpec, topic_name
from schemas.wire import decode, decode_all, encode, encode_many

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
    "TeamState",
    "TopicSpec",
    "decode",
    "decode_all",
    "encode",
    "encode_many",
    "topic_name",
]
