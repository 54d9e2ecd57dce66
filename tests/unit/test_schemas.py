from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import Bar, BarProcessed, BarRevision, DeadLetter, Forecast, SchemaError, decode, encode, topic_name
from schemas.topics import BARS, FORECASTS, check_run_id
from tests.factories import T0, bar


def forecast(**over: object) -> Forecast:
    fields: dict[str, object] = {
        "run": "r1",
        "team": "red",
        "model": "drift",
        "model_version": "1",
        "symbol": "AAPL",
        "as_of": date(2024, 1, 2),
        "target": date(2024, 1, 3),
        "predicted_close": 101.0,
        "last_close": 100.0,
        "produced_at": T0,
    }
    return Forecast.model_validate({**fields, **over})


def test_round_trip_every_event() -> None:
    b = bar("AAPL", date(2024, 1, 2), 100.0)
    for event in (b, forecast(), BarProcessed(run="r1", bar=b, forecasts=2, failed=("red/x",), produced_at=T0)):
        assert decode(encode(event)) == event


def test_envelope_names_type_and_version() -> None:
    envelope = json.loads(encode(forecast()))
    assert envelope["type"] == "forecast" and envelope["v"] == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"a": 1}', "not an event envelope"),
        (b'{"type": "nope", "v": 1, "data": {}}', "unknown event type"),
        (b'{"type": "bar", "v": 99, "data": {}}', "unsupported version 99"),
        (None, "empty message"),
    ],
)
def test_decode_rejects_with_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(SchemaError, match=reason):
        decode(raw)


def test_bar_with_high_below_close_is_rejected() -> None:
    good = json.loads(encode(bar("AAPL", date(2024, 1, 2), 100.0)))
    good["data"]["high"] = 50.0
    with pytest.raises(SchemaError, match="inconsistent bar"):
        decode(json.dumps(good).encode())


def test_negative_price_and_missing_field_are_named() -> None:
    data = json.loads(encode(bar("AAPL", date(2024, 1, 2), 100.0)))
    data["data"]["close"] = -1
    del data["data"]["volume"]
    with pytest.raises(SchemaError) as err:
        decode(json.dumps(data).encode())
    assert "close" in str(err.value) and "volume" in str(err.value)


def test_forecast_target_must_follow_as_of() -> None:
    with pytest.raises(ValueError, match="not after"):
        forecast(target=date(2024, 1, 2))


def test_a_forecast_records_its_model_s_cutoff_which_is_never_after_its_as_of_day() -> None:
    made = forecast(model_trained_until=date(2023, 12, 29))
    assert decode(encode(made)) == made
    old = json.loads(encode(forecast()))
    del old["data"]["model_trained_until"]  # written before the field existed
    assert decode(json.dumps(old).encode()) == forecast()
    assert forecast(model_trained_until=date(2024, 1, 2)).model_trained_until == date(2024, 1, 2)  # the as-of day
    with pytest.raises(ValueError, match="drift version 1, trained on data up to 2024-01-03: it has seen the answer"):
        forecast(model_trained_until=date(2024, 1, 3))


def test_decode_checks_expected_types() -> None:
    with pytest.raises(SchemaError, match="unexpected event type 'forecast'"):
        decode(encode(forecast()), (Bar,))


def test_encode_refuses_an_invalid_event() -> None:
    broken = Forecast.model_construct(**{**forecast().model_dump(), "predicted_close": float("nan")})
    with pytest.raises(SchemaError, match="predicted_close"):
        encode(broken)


def test_dead_letter_keeps_original_bytes() -> None:
    letter = DeadLetter.of(
        stage="p", topic="t", partition=0, offset=5, key=b"AAPL", value=b"\xff\x00raw", reason="bad", produced_at=T0
    )
    assert decode(encode(letter)).original == b"\xff\x00raw"  # type: ignore[attr-defined]


def test_topic_names_are_per_run_and_checked() -> None:
    assert topic_name("redblue", "sim-1", BARS) == "redblue.sim-1.bars"
    with pytest.raises(ValueError, match="invalid run id"):
        check_run_id("has space")


def _slow_or_error(raw: bytes) -> object:
    from schemas.wire import _decode_slowly

    try:
        [event] = _decode_slowly(raw)
        return event
    except SchemaError as err:
        return str(err)


def _fast_or_error(raw: bytes) -> object:
    try:
        return decode(raw)
    except SchemaError as err:
        return str(err)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats() | st.text(max_size=12)
    | st.sampled_from(["2024-01-02", "2024-01-02T21:00:00Z", "AAPL", "1", "1.5", "buy", "NaN", "-0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 3), st.text(min_size=1, max_size=14), json_values, st.booleans())
def test_the_one_pass_decoder_accepts_and_refuses_exactly_what_the_step_by_step_one_does(
    which: int, field: str, value: object, known_field: bool
) -> None:
    b = bar("AAPL", date(2024, 1, 2), 100.0)
    event = (b, forecast(), BarProcessed(run="r1", bar=b, forecasts=2, produced_at=T0), forecast(model="x"))[which]
    envelope = json.loads(encode(event))
    fields = sorted(envelope["data"])
    key = fields[len(field) % len(fields)] if known_field else field
    if which == 3:
        envelope[key if key in ("type", "v") else "v"] = value
    else:
        envelope["data"][key] = value
    raw = json.dumps(envelope).encode()
    assert _fast_or_error(raw) == _slow_or_error(raw)


def test_encoding_does_not_validate_again_unless_asked() -> None:
    broken = Forecast.model_construct(**{**forecast().model_dump(), "predicted_close": -1.0})
    assert json.loads(encode(broken, revalidate=False))["data"]["predicted_close"] == -1.0
    with pytest.raises(SchemaError, match="predicted_close"):
        encode(broken)


def test_a_batch_carries_events_in_order_and_is_refused_whole() -> None:
    from schemas import decode_all, encode_many

    b = bar("AAPL", date(2024, 1, 2), 100.0)
    events = [forecast(), BarProcessed(run="r1", bar=b, forecasts=1, produced_at=T0), forecast(model="other")]
    raw = encode_many(events)
    assert json.loads(raw)["type"] == "batch"
    assert decode_all(raw) == events
    assert decode_all(raw, (Forecast, BarProcessed)) == events
    single = encode_many(events[:1])
    assert decode_all(single) == events[:1] and json.loads(single)["type"] == "forecast"
    with pytest.raises(SchemaError, match="unexpected event type 'bar_processed'"):
        decode_all(raw, (Forecast,))
    with pytest.raises(SchemaError, match="a batch of 3 events where one event was expected"):
        decode(raw)
    broken = json.loads(raw)
    broken["data"]["events"][1]["data"]["forecasts"] = -1
    with pytest.raises(SchemaError, match="batch event 1: forecasts: Input should be greater than or equal to 0"):
        decode_all(json.dumps(broken).encode())


def test_a_bar_revision_names_what_changed_and_travels_with_bars_and_forecasts() -> None:
    first = bar("AAPL", date(2024, 1, 2), 100.0)
    later = first.model_copy(update={"close": 100.5, "high": 101.5, "produced_at": T0})
    revision = BarRevision(bar=later, previous=first, produced_at=T0)
    assert revision.changed == ("high", "close")
    assert decode(encode(revision), (Bar, BarRevision)) == revision
    assert json.loads(encode(revision))["type"] == "bar_revision"
    assert "bar_revision" in BARS.carries and "bar_revision" in FORECASTS.carries


def test_a_revision_must_change_something_of_the_same_session() -> None:
    first = bar("AAPL", date(2024, 1, 2), 100.0)
    with pytest.raises(ValueError, match="changes nothing"):
        BarRevision(bar=first, previous=first, produced_at=T0)
    with pytest.raises(ValueError, match="carries the bar of AAPL 2024-01-03"):
        BarRevision(bar=bar("AAPL", date(2024, 1, 3), 100.0), previous=first, produced_at=T0)
