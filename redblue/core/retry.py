"""Retrying a vendor call with exponential backoff, the same way in every adapter (tenacity).

Vendors answer 429 (rate limit) and 5xx in bursts, and networks time out: such a failure is
*transient* and the call is tried again after 1, 2, 4, ... seconds (with jitter, capped),
``attempts`` times in all; anything else (a 4xx refusal, bad data) is raised at once. The
adapters decide what is transient and turn the last failure into their own error, saying how
many attempts were made. ``sleep`` is injected so tests and replays never wait in real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter


@dataclass(frozen=True)
class Backoff:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 4  # calls in all, the first included
    first: float = 1.0  # seconds before the second call; doubled each time
    most: float = 30.0  # the longest wait between two calls
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")


PATIENT = Backoff()  # the default: 4 calls over about 7 s
NO_WAIT = Backoff(sleep=lambda _: None)  # for tests and replays: same attempts, no waiting


def retrying[T](
    call: Callable[[], T],
    transient: Callable[[BaseException], bool],
    backoff: Backoff,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """``call()``, retried while it raises a ``transient`` exception; the last exception is re-raised.

    ``on_retry(error, attempt)`` is told of each failure that will be retried (e.g. to log it).
    """

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_retry is not None and error is not None:
            on_retry(error, state.attempt_number)

    retryer = Retrying(
        stop=stop_after_attempt(backoff.attempts),
        wait=wait_exponential_jitter(multiplier=backoff.first, max=backoff.most, jitter=backoff.first),
        retry=retry_if_exception(transient),
        sleep=backoff.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retryer(call)
