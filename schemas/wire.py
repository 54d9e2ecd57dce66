"""Events on the wire: the JSON envelope ``{"data": {...}, "type": "forecast", "v": 1}``.

Each event is validated once on its way through a process: :func:`encode` serialises an event
that its validating constructor already checked (``revalidate=True`` checks one that may have
been built with ``model_construct``), and :func:`decode` parses and validates a message in one
pass of pydantic's JSON parser. A message that pass refuses is taken apart step by step, so the
reason says exactly what is wrong (not JSON, not an envelope, an unknown type or version, which
field); that slow path is also the authority on what is accepted.

A message may also carry several events of one partition, in order: a *batch*,
``{"data": {"events": [envelope, ...]}, "type": "batch", "v": 1}`` (:func:`encode_many`). A
consumer reads it with :func:`decode_all` and handles its events one by one, exactly as if each
had come in a message of its own; a batch with one bad event is refused as a whole.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from schemas.events import EVENTS, REGISTRY, Event, SchemaError, reason
from schemas.topics import partition_of

BATCH = "batch"
BATCH_VERSION = 1
_FROZEN = ConfigDict(extra="forbid", frozen=True)


def _envelope(cls: type[Event]) -> Any:
    fields: dict[str, Any] = {"type": (Literal[cls.TYPE], ...), "v": (Literal[cls.VERSION], ...), "data": (cls, ...)}
    return create_model(f"{cls.__name__}Envelope", __config__=_FROZEN, **fields)


_ANY_ENVELOPE: Any = Annotated[Union[tuple(_envelope(cls) for cls in EVENTS)], Field(discriminator="type")]  # noqa: UP007
_EVENTS: Any = create_model("BatchEvents", __config__=_FROZEN, events=(tuple[_ANY_ENVELOPE, ...], ...))
_BATCH_FIELDS: dict[str, Any] = {
    "type": (Literal[BATCH], ...),
    "v": (Literal[BATCH_VERSION], ...),
    "data": (_EVENTS, ...),
}
_BATCH: Any = create_model("BatchEnvelope", __config__=_FROZEN, **_BATCH_FIELDS)
_MESSAGES: TypeAdapter[Any] = TypeAdapter(
    Annotated[Union[_ANY_ENVELOPE, _BATCH], Field(discriminator="type")]  # noqa: UP007
)


def encode(event: Event, *, revalidate: bool = True) -> bytes:
    """The message bytes of ``event``.

    ``revalidate`` validates it again first (it may have been built with ``model_construct``);
    a process that built ``event`` with its validating constructor passes ``False``.
    """
    if revalidate:
        try:
            event = type(event).model_validate(event.model_dump())
        except ValidationError as err:
            raise SchemaError(reason(err)) from err
    data: bytes = event.__pydantic_serializer__.to_json(event)
    return b'{"data":%s,"type":"%s","v":%d}' % (data, event.TYPE.encode(), event.VERSION)


def encode_many(events: Sequence[Event], *, revalidate: bool = True) -> bytes:
    """One message carrying ``events`` in order (a batch; a single event is encoded as itself)."""
    if len(events) == 1:
        return encode(events[0], revalidate=revalidate)
    inner = b",".join(encode(event, revalidate=revalidate) for event in events)
    return b'{"data":{"events":[%s]},"type":"%s","v":%d}' % (inner, BATCH.encode(), BATCH_VERSION)


def pack(
    keyed: Sequence[tuple[str, Event]], partitions: int, *, per_message: int = 500, revalidate: bool = True
) -> list[tuple[int, str, bytes]]:
    """Messages that carry ``keyed`` events (key, event) in order: the events whose keys map to
    one partition (:func:`~schemas.topics.partition_of`) together, at most ``per_message`` per
    message; each message as (partition, key of its first event, bytes). Each key keeps its order.
    """
    groups: dict[int, list[tuple[str, Event]]] = {}
    for key, event in keyed:
        groups.setdefault(partition_of(key, partitions), []).append((key, event))
    messages = []
    for partition, items in groups.items():
        for start in range(0, len(items), per_message):
            part = items[start : start + per_message]
            messages.append((partition, part[0][0], encode_many([e for _, e in part], revalidate=revalidate)))
    return messages


def decode(raw: bytes | None, expect: tuple[type[Event], ...] | None = None) -> Event:
    """Parse and validate a message of one event; raise :class:`SchemaError` with a readable reason."""
    events = decode_all(raw, expect)
    if len(events) != 1:
        raise SchemaError(f"a batch of {len(events)} events where one event was expected")
    return events[0]


def decode_all(raw: bytes | None, expect: tuple[type[Event], ...] | None = None) -> list[Event]:
    """The events of a message (one, or a batch's in order); raise :class:`SchemaError` with a
    readable reason if the message, or any event of a batch, breaks its contract."""
    if raw is None:
        raise SchemaError("empty message (no value)")
    try:
        message = _MESSAGES.validate_json(raw)
    except ValidationError:
        events = _decode_slowly(raw)
    else:
        events = [e.data for e in message.data.events] if message.type == BATCH else [message.data]
    if expect is not None:
        for event in events:
            if type(event) not in expect:
                raise _unexpected(type(event), expect)
    return events


def _decode_slowly(raw: bytes) -> list[Event]:
    try:
        envelope: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"not JSON: {err}") from err
    if isinstance(envelope, dict) and envelope.get("type") == BATCH:
        return _batch_slowly(envelope)
    return [_event_slowly(envelope)]


def _batch_slowly(envelope: dict[str, Any]) -> list[Event]:
    if set(envelope) != {"type", "v", "data"}:
        raise SchemaError("not a batch envelope: expected an object with keys type, v, data")
    if envelope["v"] != BATCH_VERSION:
        raise SchemaError(f"unsupported version {envelope['v']!r} of {BATCH} (this code reads {BATCH_VERSION})")
    data = envelope["data"]
    if not isinstance(data, dict) or set(data) != {"events"} or not isinstance(data["events"], list):
        raise SchemaError("not a batch: expected data with one key, events, a list")
    events = []
    for i, inner in enumerate(data["events"]):
        try:
            events.append(_event_slowly(inner))
        except SchemaError as err:
            raise SchemaError(f"batch event {i}: {err}") from err
    return events


def _event_slowly(envelope: Any) -> Event:
    if not isinstance(envelope, dict) or set(envelope) != {"type", "v", "data"}:
        raise SchemaError("not an event envelope: expected an object with keys type, v, data")
    cls = REGISTRY.get(str(envelope["type"]))
    if cls is None:
        raise SchemaError(f"unknown event type {envelope['type']!r}")
    if envelope["v"] != cls.VERSION:
        raise SchemaError(f"unsupported version {envelope['v']!r} of {cls.TYPE} (this code reads {cls.VERSION})")
    try:
        return cls.model_validate(envelope["data"])
    except ValidationError as err:
        raise SchemaError(reason(err)) from err


def _unexpected(cls: type[Event], expect: tuple[type[Event], ...]) -> SchemaError:
    return SchemaError(f"unexpected event type {cls.TYPE!r} here (expected {', '.join(c.TYPE for c in expect)})")
