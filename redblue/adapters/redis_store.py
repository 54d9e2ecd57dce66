"""The Redis leaderboard store: the only module that imports ``redis``.

Every key of a run starts with ``{prefix}:{run}:`` (``p`` below), so runs never mix and
:meth:`RedisStore.delete_run` can remove one run completely:

====================================  ======  ============================================
``p:series``                          set     ``team/model/symbol`` of every scored series
``p:scored:{team}/{model}/{symbol}``  hash    target day -> scored forecast (JSON)
``p:errors:{team}/{model}/{symbol}``  hash    the series' error sums (``ErrorSums`` fields)
``p:insample``                        hash    ``{symbol}:{field}`` -> the symbol's ``NaiveScale``
``p:fills:{team}``                    hash    ``{client_order_id}/{execution}`` -> fill (JSON)
``p:marks:{team}``                    hash    ``{day}/{symbol}`` -> position mark (JSON)
``p:equity:{team}``                   hash    day -> equity at that close
``p:progress``                        hash    ``bar:{symbol}`` / ``equity:{team}`` -> last day
``p:rank:{metric}``                   zset    member -> score, lower is better
``p:latest``                          hash    ``team/model/symbol`` -> its latest forecast (JSON)
``p:versions``                        hash    ``team/model/symbol/version`` -> first as_of served
``p:orders:{team}``                   hash    client_order_id -> order (JSON)
``p:closes:{symbol}``                 hash    day -> close
``p:meta``                            hash    the run's description (:mod:`consumers.runs`)
``{prefix}:runs``                     set     the run ids that have keys
====================================  ======  ============================================

A forecast is scored once: a Lua script sets its ``scored`` field with HSETNX and only if that
succeeds adds it to the error sums, in IEEE doubles like :class:`redblue.core.metrics.ErrorSums`
(results are bit-identical to the in-memory store); a symbol's in-sample closes are added to its
:class:`redblue.core.metrics.NaiveScale` the same way, once per day. Fills (per execution) and
orders are recorded once by HSETNX. Inside :meth:`RedisStore.batch` the writes are coalesced (one
script call per series, one command per team's marks or equity and per symbol's closes, one
progress update per field) and sent as one MULTI/EXEC transaction.
:class:`RedisStores` opens the store of any run under one prefix over one connection pool
(what ``redblue serve`` reads).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date
from itertools import chain
from typing import Any, Concatenate, Protocol, cast
from urllib.parse import urlsplit

import redis

from redblue.core.credentials import Login
from redblue.core.metrics import ErrorSums, NaiveScale, ScoredForecast
from redblue.core.settings import Settings
from redblue.core.store import Series, StoreError, StoreRefused, StoreUnavailable, fill_order, sums_of
from schemas import Fill, Forecast, Order, PositionMark
from schemas.topics import check_run_id

_SUM_FIELDS = ("abs_error", "squared_error", "pct_error", "naive_abs_error")

# KEYS: scored, errors, series set. ARGV: the series, then per score: target, record, the four sums,
# hit (0/1). Adds, in order, the scores whose target is new; the sums stay IEEE doubles throughout
# ('%.17g' round-trips them), so adding scores one call each or many in one call is bit-identical.
_ADD_SCORES = """
local cur = redis.call('HMGET', KEYS[2], 'count', 'abs_error', 'squared_error', 'pct_error',
                       'naive_abs_error', 'direction_hits')
local function num(x) if x then return tonumber(x) else return 0 end end
local n, a, s, p, v, h = num(cur[1]), num(cur[2]), num(cur[3]), num(cur[4]), num(cur[5]), num(cur[6])
local added = 0
for i = 2, #ARGV, 7 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    n = n + 1
    a = a + tonumber(ARGV[i + 2])
    s = s + tonumber(ARGV[i + 3])
    p = p + tonumber(ARGV[i + 4])
    v = v + tonumber(ARGV[i + 5])
    h = h + tonumber(ARGV[i + 6])
    added = added + 1
  end
end
if added == 0 then return 0 end
local function f(x) return string.format('%.17g', x) end
redis.call('HSET', KEYS[2], 'count', string.format('%d', n), 'abs_error', f(a), 'squared_error', f(s),
           'pct_error', f(p), 'naive_abs_error', f(v), 'direction_hits', string.format('%d', h))
redis.call('SADD', KEYS[3], ARGV[1])
return added
"""

# KEYS: insample hash. ARGV: symbol, ISO day, close. NaiveScale.add in Lua: days after the last only.
_ADD_INSAMPLE = """
local p = ARGV[1] .. ':'
local last = redis.call('HGET', KEYS[1], p .. 'last')
if last and ARGV[2] <= last then return 0 end
if not last then
  redis.call('HSET', KEYS[1], p .. 'count', '0', p .. 'abs_diff', '0', p .. 'first', ARGV[2],
             p .. 'last', ARGV[2], p .. 'close', ARGV[3])
  return 1
end
local cur = redis.call('HMGET', KEYS[1], p .. 'count', p .. 'abs_diff', p .. 'close')
local diff = math.abs(tonumber(ARGV[3]) - tonumber(cur[3]))
redis.call('HSET', KEYS[1], p .. 'count', string.format('%d', tonumber(cur[1]) + 1),
           p .. 'abs_diff', string.format('%.17g', tonumber(cur[2]) + diff),
           p .. 'last', ARGV[2], p .. 'close', ARGV[3])
return 1
"""

# KEYS: a hash. ARGV: field, value, field, value... Sets each field that is not set yet (HSETNX
# each: one call for a batch's many instead of a command each).
_SET_ONCE = """
for i = 1, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 0
"""

# KEYS: a hash. ARGV: field, ISO day. Keeps the latest day.
_ADVANCE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or cur < ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""


# KEYS: latest, versions. ARGV: series path, as_of, forecast JSON, model version.
# Keeps the forecast with the latest as_of (the first one on a tie) and each version's first as_of.
_NOTE_FORECAST = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or cjson.decode(cur)['as_of'] < ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
local field = ARGV[1] .. '/' .. ARGV[4]
local first = redis.call('HGET', KEYS[2], field)
if (not first) or ARGV[2] < first then redis.call('HSET', KEYS[2], field, ARGV[2]) end
return 0
"""


class _Located(Protocol):
    where: str
    user: str


def _translated[S: _Located, **P, R](method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Turn redis-py exceptions into :class:`StoreRefused` (login or ACL), :class:`StoreUnavailable`
    or :class:`StoreError`."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (redis.exceptions.AuthenticationError, redis.exceptions.NoPermissionError) as err:
            raise StoreRefused(f"Redis at {self.where} refused {self.user}: {err}") from err
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
            raise StoreUnavailable(
                f"Redis at {self.where} is not reachable: {err} — start the stack: bin/redblue stack up"
            ) from err
        except redis.exceptions.RedisError as err:
            raise StoreError(f"Redis at {self.where} failed: {err}") from err

    functools.update_wrapper(wrapper, method)
    return wrapper


def _redacted(url: str) -> str:
    """``url`` without credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisStore:
    """One run's leaderboard in Redis (a :class:`consumers.leaderboard.LeaderboardStore`).

    No connection is opened before the first command; :meth:`ping` checks the server early.
    """

    def __init__(
        self, url: str, prefix: str, run: str, *, client: redis.Redis | None = None, login: Login | None = None
    ) -> None:
        self.where = _redacted(url)
        self.user = _who(login)
        self._owns_client = client is None
        self._client = client if client is not None else _connect(url, login)
        self._prefix = prefix
        self._run = check_run_id(run)
        self._p = f"{prefix}:{run}"
        self._add_scores = self._client.register_script(_ADD_SCORES)
        self._advance = self._client.register_script(_ADVANCE)
        self._set_once = self._client.register_script(_SET_ONCE)
        self._add_insample = self._client.register_script(_ADD_INSAMPLE)
        self._note_forecast = self._client.register_script(_NOTE_FORECAST)
        self._registered = False
        self._pipe: Any = None  # the open batch's transaction (see batch())
        self._queue = _Queue()  # the open batch's coalesced writes

    @classmethod
    def from_settings(cls, settings: Settings, run: str) -> RedisStore:
        """The store of ``run`` at the configured Redis URL and key prefix, as ``settings.service``'s user."""
        return cls(settings.redis_url, settings.redis_prefix, run, login=settings.redis_login())

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_translated
    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if Redis does not answer."""
        self._client.ping()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Queue the writes made inside and send them as one MULTI/EXEC transaction at the end.

        Readers never see half a batch. Inside, ``add_score``, ``add_fill`` and ``add_order``
        cannot know yet whether the write was new and answer ``True``. A nested batch joins the
        outer one.
        """
        if self._pipe is not None:
            yield
            return
        self._pipe = self._client.pipeline(transaction=True)
        self._queue = _Queue()
        try:
            yield
            self._queue.write(self, self._pipe)
            self._execute(self._pipe)
        finally:
            self._pipe = None

    @_translated
    def _execute(self, pipe: Any) -> None:
        pipe.execute()

    @property
    def _writer(self) -> Any:
        """Where writes go: the open batch, else straight to Redis."""
        return self._client if self._pipe is None else self._pipe

    def _register(self) -> None:
        if not self._registered:
            self._writer.sadd(f"{self._prefix}:runs", self._run)
            self._registered = True

    # forecasts

    @_translated
    def add_score(self, scored: ScoredForecast) -> bool:
        self._register()
        path = f"{scored.team}/{scored.model}/{scored.symbol}"
        sums = [repr(getattr(scored, name)) for name in _SUM_FIELDS]
        args = [scored.target.isoformat(), _dump_scored(scored), *sums, str(int(scored.direction_correct))]
        if self._pipe is not None:
            self._queue.scores.setdefault(path, []).extend(args)
            return True
        return bool(self._write_scores(path, args, self._client))

    def _write_scores(self, path: str, args: list[str], client: Any) -> Any:
        keys = [f"{self._p}:scored:{path}", f"{self._p}:errors:{path}", f"{self._p}:series"]
        return self._add_scores(keys=keys, args=[path, *args], client=client)

    @_translated
    def revise_score(self, scored: ScoredForecast) -> bool:
        if self._pipe is not None:  # a revision reads what the batch wrote so far: send that first (rare)
            self._queue.write(self, self._pipe)
            self._execute(self._pipe)
            self._pipe, self._queue = self._client.pipeline(transaction=True), _Queue()
        path = f"{scored.team}/{scored.model}/{scored.symbol}"
        key, record = f"{self._p}:scored:{path}", _dump_scored(scored)
        known = self._client.hget(key, scored.target.isoformat())
        if known is None or _text(known) == record:
            return False
        self._client.hset(key, scored.target.isoformat(), record)
        sums = sums_of(self.scored(Series(scored.team, scored.model, scored.symbol)))
        fields = {name: repr(getattr(sums, name)) for name in _SUM_FIELDS}
        fields |= {"count": str(sums.count), "direction_hits": str(sums.direction_hits)}
        pipe = self._client.pipeline(transaction=True)
        for name, value in fields.items():
            pipe.hset(f"{self._p}:errors:{path}", name, value)
        pipe.execute()
        return True

    @_translated
    def scored(self, series: Series) -> list[ScoredForecast]:
        raw = self._hash(f"{self._p}:scored:{'/'.join(series)}")
        return [_load_scored(series, day, raw[day]) for day in sorted(raw)]

    @_translated
    def scored_many(self, series: Sequence[Series]) -> dict[Series, list[ScoredForecast]]:
        pipe = self._client.pipeline(transaction=False)
        for one in series:
            pipe.hgetall(f"{self._p}:scored:{'/'.join(one)}")
        found = {}
        for one, raw in zip(series, pipe.execute(), strict=True):
            rows = {_text(k): _text(v) for k, v in raw.items()}
            found[one] = [_load_scored(one, day, rows[day]) for day in sorted(rows)]
        return found

    @_translated
    def error_sums(self) -> dict[Series, ErrorSums]:
        return self._sums_of(self._members(f"{self._p}:series"))

    @_translated
    def error_sums_of(self, team: str, model: str) -> dict[str, ErrorSums]:
        paths = [p for p in self._members(f"{self._p}:series") if p.startswith(f"{team}/{model}/")]
        return {series.symbol: sums for series, sums in self._sums_of(paths).items()}

    def _sums_of(self, paths: Sequence[str]) -> dict[Series, ErrorSums]:
        pipe = self._client.pipeline(transaction=False)
        for path in paths:
            pipe.hgetall(f"{self._p}:errors:{path}")
        rows = [{_text(k): _text(v) for k, v in raw.items()} for raw in pipe.execute()]
        return {Series(*path.split("/")): _load_sums(raw) for path, raw in zip(paths, rows, strict=True)}

    def _hash(self, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self._client.hgetall(key).items()}

    def _members(self, key: str) -> list[str]:
        return sorted(_text(m) for m in self._client.smembers(key))

    @_translated
    def add_insample_close(self, symbol: str, day: date, close: float) -> None:
        self._register()
        self._add_insample(
            keys=[f"{self._p}:insample"], args=[symbol, day.isoformat(), repr(close)], client=self._writer
        )

    @_translated
    def naive_scales(self) -> dict[str, NaiveScale]:
        fields: dict[str, dict[str, str]] = {}
        for key, value in self._hash(f"{self._p}:insample").items():
            symbol, _, name = key.rpartition(":")
            fields.setdefault(symbol, {})[name] = value
        return {symbol: _load_scale(raw) for symbol, raw in sorted(fields.items())}

    # trading

    @_translated
    def add_fill(self, fill: Fill) -> bool:
        self._register()
        return bool(self._writer.hsetnx(f"{self._p}:fills:{fill.team}", fill.key, fill.model_dump_json()))

    @_translated
    def fills(self, team: str) -> list[Fill]:
        found = [Fill.model_validate_json(raw) for raw in self._client.hvals(f"{self._p}:fills:{team}")]
        return sorted(found, key=fill_order)

    @_translated
    def set_mark(self, mark: PositionMark) -> None:
        self._register()
        field, value = f"{mark.as_of.isoformat()}/{mark.symbol}", mark.model_dump_json()
        if self._pipe is not None:
            self._queue.marks.setdefault(mark.team, {}).setdefault(field, value)
        else:
            self._client.hsetnx(f"{self._p}:marks:{mark.team}", field, value)  # written once (see set_mark)

    @_translated
    def marks(self, team: str, day: date, symbols: Sequence[str]) -> dict[str, PositionMark]:
        if not symbols:
            return {}
        raw = self._client.hmget(f"{self._p}:marks:{team}", [f"{day.isoformat()}/{s}" for s in symbols])
        return {s: PositionMark.model_validate_json(r) for s, r in zip(symbols, raw, strict=True) if r is not None}

    @_translated
    def set_equity(self, team: str, day: date, value: float) -> None:
        self._register()
        if self._pipe is not None:
            self._queue.equity.setdefault(team, {})[day.isoformat()] = repr(value)
            self._queue.advance(f"equity:{team}", day)
            return
        self._client.hset(f"{self._p}:equity:{team}", day.isoformat(), repr(value))
        self._advance(keys=[f"{self._p}:progress"], args=[f"equity:{team}", day.isoformat()])

    @_translated
    def equity_history(self, team: str) -> list[tuple[date, float]]:
        raw = self._hash(f"{self._p}:equity:{team}")
        return [(date.fromisoformat(day), float(raw[day])) for day in sorted(raw)]

    @_translated
    def equity_dates(self) -> dict[str, date]:
        return self._progress("equity:")

    # progress

    @_translated
    def advance_bar(self, symbol: str, day: date) -> None:
        self._register()
        if self._pipe is not None:
            self._queue.advance(f"bar:{symbol}", day)
        else:
            self._advance(keys=[f"{self._p}:progress"], args=[f"bar:{symbol}", day.isoformat()])

    @_translated
    def bar_dates(self) -> dict[str, date]:
        return self._progress("bar:")

    def _progress(self, kind: str) -> dict[str, date]:
        raw = self._hash(f"{self._p}:progress")
        return {k.removeprefix(kind): date.fromisoformat(v) for k, v in sorted(raw.items()) if k.startswith(kind)}

    # rankings

    @_translated
    def set_rank(self, metric: str, member: str, score: float | None) -> None:
        self._register()
        key = f"{self._p}:rank:{metric}"
        if score is None:
            self._writer.zrem(key, member)
        else:
            self._writer.zadd(key, {member: score})

    @_translated
    def ranking(self, metric: str, limit: int | None = None) -> list[tuple[str, float]]:
        if limit is not None and limit < 1:
            return []
        end = -1 if limit is None else limit - 1
        rows = cast(list[tuple[Any, Any]], self._client.zrange(f"{self._p}:rank:{metric}", 0, end, withscores=True))
        return [(_text(member), float(score)) for member, score in rows]

    @_translated
    def rank(self, metric: str, member: str) -> tuple[int, float] | None:
        key = f"{self._p}:rank:{metric}"
        score = self._client.zscore(key, member)
        if score is None:
            return None
        return 1 + int(self._client.zcount(key, "-inf", f"({float(score)!r}")), float(score)

    # what the web page shows besides the scores

    @_translated
    def note_forecasts(self, forecasts: Sequence[Forecast]) -> None:
        if not forecasts:
            return
        self._register()
        if self._pipe is not None:
            self._queue.note(forecasts)
            return
        pipe = self._client.pipeline(transaction=False)
        self._write_forecasts(forecasts, pipe)
        pipe.execute()

    def _write_forecasts(self, forecasts: Sequence[Forecast], pipe: Any) -> None:
        keys = [f"{self._p}:latest", f"{self._p}:versions"]
        for f in forecasts:
            path = "/".join(Series.of(f))
            self._note_forecast(keys=keys, args=[path, f.as_of.isoformat(), f.model_dump_json(), f.model_version],
                                client=pipe)  # fmt: skip

    @_translated
    def latest_forecasts(self) -> list[Forecast]:
        raw = self._hash(f"{self._p}:latest")
        return [Forecast.model_validate_json(raw[path]) for path in sorted(raw, key=lambda p: Series(*p.split("/")))]

    @_translated
    def model_versions(self) -> dict[Series, dict[str, date]]:
        found: dict[Series, dict[str, date]] = {}
        for field, day in self._hash(f"{self._p}:versions").items():
            team, model, symbol, version = field.split("/", 3)
            found.setdefault(Series(team, model, symbol), {})[version] = date.fromisoformat(day)
        return {s: dict(sorted(v.items())) for s, v in sorted(found.items())}

    @_translated
    def add_order(self, order: Order) -> bool:
        self._register()
        key = f"{self._p}:orders:{order.team}"
        return bool(self._writer.hsetnx(key, order.client_order_id, order.model_dump_json()))

    @_translated
    def orders(self, team: str) -> list[Order]:
        found = [Order.model_validate_json(raw) for raw in self._client.hvals(f"{self._p}:orders:{team}")]
        return sorted(found, key=lambda o: (o.as_of, o.symbol, o.client_order_id))

    @_translated
    def set_halt(self, team: str, reason: str) -> None:
        self._register()
        if reason:
            self._writer.hset(f"{self._p}:halts", team, reason)
        else:
            self._writer.hdel(f"{self._p}:halts", team)

    @_translated
    def halts(self) -> dict[str, str]:
        return dict(sorted(self._hash(f"{self._p}:halts").items()))

    @_translated
    def set_close(self, symbol: str, day: date, close: float) -> None:
        self._register()
        if self._pipe is not None:
            self._queue.closes.setdefault(symbol, {})[day.isoformat()] = repr(close)
        else:
            self._client.hset(f"{self._p}:closes:{symbol}", day.isoformat(), repr(close))

    @_translated
    def closes(self, symbol: str) -> list[tuple[date, float]]:
        raw = self._hash(f"{self._p}:closes:{symbol}")
        return [(date.fromisoformat(day), float(raw[day])) for day in sorted(raw)]

    @_translated
    def set_meta(self, fields: Mapping[str, str], *, only_missing: bool = False) -> None:
        if not fields:
            return
        self._register()
        key = f"{self._p}:meta"
        pipe = self._client.pipeline(transaction=False)
        for name, value in fields.items():
            (pipe.hsetnx if only_missing else pipe.hset)(key, name, value)
        pipe.execute()

    @_translated
    def meta(self) -> dict[str, str]:
        return self._hash(f"{self._p}:meta")

    # runs

    @_translated
    def delete_run(self) -> int:
        """Remove every key of this run (before re-running a run id); return how many."""
        pattern = _glob_escape(f"{self._p}:") + "*"
        deleted = 0
        batch: list[str] = []
        for key in self._client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(self._client.delete(*batch))
                batch = []
        if batch:
            deleted += int(self._client.delete(*batch))
        self._client.srem(f"{self._prefix}:runs", self._run)
        self._registered = False
        return deleted

    @_translated
    def list_runs(self) -> list[str]:
        """The run ids with a leaderboard under this prefix."""
        return self._members(f"{self._prefix}:runs")


class _Queue:
    """A batch's writes, coalesced: one script call per series for its scores (in order), the
    marks of a team (first one of a day and symbol kept), its equity and each symbol's closes in
    one command each, one progress update per field (the latest day), and per series only the
    forecasts that can change what is noted (the latest, and each version's earliest)."""

    def __init__(self) -> None:
        self.scores: dict[str, list[str]] = {}
        self.marks: dict[str, dict[str, str]] = {}
        self.equity: dict[str, dict[str, str]] = {}
        self.closes: dict[str, dict[str, str]] = {}
        self.progress: dict[str, str] = {}
        self.noted: dict[tuple[Series, str], Forecast] = {}  # (series, version or "") -> forecast

    def advance(self, field: str, day: date) -> None:
        self.progress[field] = max(self.progress.get(field, ""), day.isoformat())

    def note(self, forecasts: Sequence[Forecast]) -> None:
        for f in forecasts:
            for slot, later in (((Series.of(f), ""), True), ((Series.of(f), f.model_version), False)):
                known = self.noted.get(slot)
                if known is None or (f.as_of > known.as_of if later else f.as_of < known.as_of):
                    self.noted[slot] = f

    def write(self, store: RedisStore, pipe: Any) -> None:
        for path, args in self.scores.items():
            store._write_scores(path, args, pipe)
        for team, marks in self.marks.items():
            pairs = list(chain.from_iterable(marks.items()))
            store._set_once(keys=[f"{store._p}:marks:{team}"], args=pairs, client=pipe)
        for team, curve in self.equity.items():
            pipe.hset(f"{store._p}:equity:{team}", mapping=cast(Any, curve))
        for symbol, closes in self.closes.items():
            pipe.hset(f"{store._p}:closes:{symbol}", mapping=cast(Any, closes))
        noted = sorted({id(f): f for f in self.noted.values()}.values(), key=lambda f: f.as_of)
        store._write_forecasts(noted, pipe)
        for field, day in self.progress.items():
            store._advance(keys=[f"{store._p}:progress"], args=[field, day], client=pipe)


class RedisStores:
    """The stores of every run under one key prefix, over one shared connection pool."""

    def __init__(self, url: str, prefix: str, login: Login | None = None) -> None:
        self.where = _redacted(url)
        self.user = _who(login)
        self._url = url
        self._prefix = prefix
        self._login = login
        self._client = _connect(url, login)

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisStores:
        """The stores at the configured URL and prefix, as ``settings.service``'s user."""
        return cls(settings.redis_url, settings.redis_prefix, settings.redis_login())

    def open(self, run: str) -> RedisStore:
        """The store of ``run`` (``ValueError`` for an invalid run id); closing it keeps the pool."""
        return RedisStore(self._url, self._prefix, run, client=self._client, login=self._login)

    @_translated
    def runs(self) -> list[str]:
        """The run ids with keys under this prefix."""
        return sorted(_text(m) for m in self._client.smembers(f"{self._prefix}:runs"))

    def close(self) -> None:
        self._client.close()


def _connect(url: str, login: Login | None) -> redis.Redis:
    auth = {} if login is None else {"username": login.username, "password": login.password.get_secret_value()}
    try:
        return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30, **auth)
    except ValueError as err:
        raise StoreError(f"invalid Redis URL {_redacted(url)}: {err}") from err


def _who(login: Login | None) -> str:
    return "an unauthenticated client" if login is None else f"user {login.username}"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _dump_scored(scored: ScoredForecast) -> str:
    record = {
        "as_of": scored.as_of.isoformat(),
        "predicted": scored.predicted,
        "last_close": scored.last_close,
        "actual": scored.actual,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _load_scored(series: Series, target: str, raw: str) -> ScoredForecast:
    record: dict[str, Any] = json.loads(raw)
    return ScoredForecast(
        team=series.team,
        model=series.model,
        symbol=series.symbol,
        as_of=date.fromisoformat(record["as_of"]),
        target=date.fromisoformat(target),
        predicted=float(record["predicted"]),
        last_close=float(record["last_close"]),
        actual=float(record["actual"]),
    )


def _load_sums(raw: dict[str, str]) -> ErrorSums:
    floats = {name: float(raw.get(name, 0.0)) for name in _SUM_FIELDS}
    return ErrorSums(count=int(raw.get("count", 0)), direction_hits=int(raw.get("direction_hits", 0)), **floats)


def _load_scale(raw: dict[str, str]) -> NaiveScale:
    return NaiveScale(
        count=int(raw["count"]),
        abs_diff=float(raw["abs_diff"]),
        first=date.fromisoformat(raw["first"]),
        last=date.fromisoformat(raw["last"]),
        last_close=float(raw["close"]),
    )
