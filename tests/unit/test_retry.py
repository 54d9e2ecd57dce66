"""Retrying with backoff: transient failures are tried again with growing waits, others raised at once."""

from __future__ import annotations

import pytest

from redblue.core.retry import Backoff, retrying


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def transient(err: BaseException) -> bool:
    return isinstance(err, TimeoutError)


def test_transient_failures_are_retried_with_growing_waits_and_reported() -> None:
    waits: list[float] = []
    told: list[tuple[str, int]] = []
    call = Flaky([TimeoutError("a"), TimeoutError("b"), TimeoutError("c")])
    backoff = Backoff(attempts=4, first=1.0, most=30.0, sleep=waits.append)
    assert retrying(call, transient, backoff, lambda e, n: told.append((str(e), n))) == "ok"
    assert call.calls == 4 and told == [("a", 1), ("b", 2), ("c", 3)]
    assert [int(w) for w in waits] == [1, 2, 4]  # 1, 2, 4 s plus up to 1 s of jitter


def test_the_last_transient_failure_is_raised_after_all_attempts() -> None:
    call = Flaky([TimeoutError(str(n)) for n in range(5)])
    with pytest.raises(TimeoutError, match=r"^2$"):
        retrying(call, transient, Backoff(attempts=3, sleep=lambda _: None))
    assert call.calls == 3


def test_other_failures_are_raised_at_once() -> None:
    call = Flaky([PermissionError("403")])
    with pytest.raises(PermissionError):
        retrying(call, transient, Backoff(sleep=lambda _: None))
    assert call.calls == 1
    with pytest.raises(ValueError, match="at least 1"):
        Backoff(attempts=0)
