"""What both Alpaca clients (trading and market data) share: timeouts, retries, error texts, secrets.

alpaca-py's ``RESTClient`` sends every request through a plain ``requests.Session`` with **no
timeout** (a hung server blocks forever) and retries only 429 and 504, three times, sleeping a
fixed 3 s in real time. :func:`tune` therefore gives the client a session with a timeout and
turns its own retries off; :func:`call` retries instead, with exponential backoff
(:mod:`redblue.core.retry`), on 429, every 5xx, timeouts and connection errors. POSTs are
retried too, which is safe because every order carries its deterministic ``client_order_id``
(a retry that meets its own first attempt gets HTTP 422 and is reconciled).

:class:`Secrets` keeps the account's key and secret out of every text we build from a vendor
answer: an error body (or a misbehaving proxy) can echo request headers, and those texts end up
in logs and in ``Order`` events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from pydantic import SecretStr

from redblue.core.retry import Backoff, retrying

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0  # seconds for connecting and for each read


class _TimeoutSession(requests.Session):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


def tune(client: RESTClient, timeout: float) -> None:
    """Give ``client`` a request timeout and switch off its fixed-wait retries (we retry with backoff)."""
    client._session = _TimeoutSession(timeout)  # alpaca-py offers no timeout setting
    client._retry = 0


def plain(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class Secrets:
    """Replaces the account's key and secret by ``***`` in any text (error messages, reasons)."""

    def __init__(self, values: Iterable[str]) -> None:
        self._values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


def status(err: APIError) -> int | None:
    code = err.status_code
    return int(code) if code is not None else None


def message(err: APIError) -> str:
    """Alpaca's ``message`` from the error body (``{"code": ..., "message": ...}``), else the body."""
    text = str(err)
    try:
        body = json.loads(text)
    except ValueError:
        return text
    return str(body.get("message", text)) if isinstance(body, dict) else text


def describe(err: Exception) -> str:
    """``HTTP 503: service unavailable``, ``timed out (ReadTimeout)``, ``ConnectionError: ...``."""
    if isinstance(err, APIError):
        code = status(err)
        return f"HTTP {code}: {message(err)}" if code is not None else message(err)
    if isinstance(err, requests.Timeout):
        return f"timed out ({type(err).__name__})"
    return f"{type(err).__name__}: {err}"


def is_transient(err: BaseException) -> bool:
    """Worth another try: 429, 5xx, a timeout or a connection failure."""
    if isinstance(err, APIError):
        code = status(err)
        return code is None or code == 429 or code >= 500
    return isinstance(err, requests.ConnectionError | requests.Timeout)


def call[T](request: Callable[[], T], backoff: Backoff, what: str, secrets: Secrets) -> T:
    """``request()``, retried with ``backoff`` while it fails transiently (each retry logged)."""

    def retried(err: BaseException, attempt: int) -> None:
        text = describe(err) if isinstance(err, Exception) else repr(err)
        log.warning("%s: %s; trying again (%d of %d)", what, secrets.scrub(text), attempt + 1, backoff.attempts)

    return retrying(request, is_transient, backoff, retried)
