"""Events on the wire: the JSON envelope ``{"data": {...}, "type": "forecast", "v": 1}``.

Each event is validated once on its way through a process: :func:`encode` serialises an event
that its validating constructor already checked (``revalidate=True`` checks one that may have
been built with ``model_construct``), and :func:`decode` parses and validates a message in one
pass of pydantic's JSON parser. A message that pass refuses is taken apart step by step, so the
reason says exactly what is wrong (not JSON, not an envelope, an unknown type or version, which
field); that slow path is also the authority on what is accepted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, create_model

from schemas.events import EVENTS, REGISTRY, Event, SchemaError, reason


def _envelope(cls: type[Event]) -> Any:
    fields: dict[str, Any] = {"type": (Literal[cls.TYPE], ...), "v": (Literal[cls.VERSION], ...), "data": (cls, ...)}
    return create_model(f"{cls.__name__}Envelope", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


_ANY_ENVELOPE: Any = Annotated[Union[tuple(_envelope(cls) for cls in EVENTS)], Field(discriminator="type")]  # noqa: UP007
_ENVELOPES: TypeAdapter[Any] = TypeAdapter(_ANY_ENVELOPE)


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


def decode(raw: bytes | None, expect: tuple[type[Event], ...] | None = None) -> Event:
    """Parse and validate one message; raise :class:`SchemaError` with a readable reason."""
    if raw is None:
        raise SchemaError("empty message (no value)")
    try:
        event: Event = _ENVELOPES.validate_json(raw).data
    except ValidationError:
        return _decode_slowly(raw, expect)
    if expect is not None and type(event) not in expect:
        raise _unexpected(type(event), expect)
    return event


def _decode_slowly(raw: bytes, expect: tuple[type[Event], ...] | None) -> Event:
    try:
        envelope: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SchemaError(f"not JSON: {err}") from err
    if not isinstance(envelope, dict) or set(envelope) != {"type", "v", "data"}:
        raise SchemaError("not an event envelope: expected an object with keys type, v, data")
    cls = REGISTRY.get(str(envelope["type"]))
    if cls is None:
        raise SchemaError(f"unknown event type {envelope['type']!r}")
    if envelope["v"] != cls.VERSION:
        raise SchemaError(f"unsupported version {envelope['v']!r} of {cls.TYPE} (this code reads {cls.VERSION})")
    if expect is not None and cls not in expect:
        raise _unexpected(cls, expect)
    try:
        return cls.model_validate(envelope["data"])
    except ValidationError as err:
        raise SchemaError(reason(err)) from err


def _unexpected(cls: type[Event], expect: tuple[type[Event], ...]) -> SchemaError:
    return SchemaError(f"unexpected event type {cls.TYPE!r} here (expected {', '.join(c.TYPE for c in expect)})")
