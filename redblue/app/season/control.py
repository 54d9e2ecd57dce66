"""``redblue season up|down|status``: start, stop and inspect a season's supervisor.

``up`` starts the supervisor detached (``python -m redblue season supervise ...``) with its pid
file, state and logs under ``<stack dir>/seasons/<season>/``; ``down`` stops it (SIGTERM, then
SIGKILL; it stops its services the same way); ``status`` reads its state file and asks Kafka
and Redis how far each stage is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from redblue.app.season.services import SeasonSpec, kind_of, service_args
from redblue.app.season.supervisor import Progress, SeasonFiles, ServiceState
from redblue.core.arena import Arena
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings
from redblue.stack.process import pid_alive, read_pid, spawn_detached, stop_pid
from schemas.topics import TopicSpec

REPO = Path(__file__).resolve().parents[3]
MARKER = "supervise"


class SeasonError(RedblueError):
    """A season cannot be started, stopped or inspected; the message says why."""


def supervised_commands(spec: SeasonSpec) -> dict[str, list[str]]:
    """The full argv of each service as the supervisor runs it."""
    return {name: [sys.executable, "-m", "redblue", *args] for name, args in service_args(spec).items()}


def up(settings: Settings, spec: SeasonSpec, wait: float = 10.0) -> int:
    """Start the season's supervisor (an error if it already runs); its pid."""
    files = SeasonFiles.of(settings.stack_home, spec.season)
    if (pid := read_pid(files.pid_file, MARKER)) is not None:
        raise SeasonError(f"season {spec.season} is already up (supervisor pid {pid}); see: season status")
    files.root.mkdir(parents=True, exist_ok=True)
    files.state_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "redblue", "season", "supervise", "--season", spec.season, "--source", spec.source]
    cmd += ["--port", str(spec.port)]
    cmd += ["--arena", str(spec.arena.resolve())] if spec.arena is not None else []
    cmd += ["--first-target", str(spec.first_target)] if spec.first_target is not None else []
    cmd += ["--interval", str(spec.interval)] if spec.interval is not None else []
    cmd += ["--processors", str(spec.processors)]
    pid = spawn_detached(cmd, files.supervisor_log, REPO)
    files.pid_file.write_text(f"{pid}\n")
    deadline = time.monotonic() + wait
    while not files.read_states() and time.monotonic() < deadline:
        if not pid_alive(pid):  # the pid we just started (read_pid could drop the file on a misread)
            raise SeasonError(f"the supervisor of season {spec.season} exited; see {files.supervisor_log}")
        time.sleep(0.2)
    return pid


def down(settings: Settings, season: str) -> bool:
    """Stop the season's supervisor and its services; False when it was not running."""
    files = SeasonFiles.of(settings.stack_home, season)
    pid = read_pid(files.pid_file, MARKER)
    if pid is not None:
        stop_pid(pid, timeout=30.0)
    for state in files.read_states():  # a supervisor killed with -9 leaves its services behind
        if state.pid is not None and pid_alive(state.pid):
            stop_pid(state.pid)
    files.pid_file.unlink(missing_ok=True)
    return pid is not None


@dataclass(frozen=True)
class Account:
    team: str
    day: date | None
    equity: float | None
    cash: float | None
    positions: dict[str, int]
    halted: str = ""  # why the trader stopped trading the team ("" while it trades)


@dataclass(frozen=True)
class SeasonStatus:
    season: str
    supervisor_pid: int | None
    services: list[ServiceState]
    lag: dict[str, int | str]  # stage -> messages not yet committed (or why unknown)
    last_bars: dict[str, date]
    next_bars: dict[str, tuple[date, datetime] | None]  # symbol -> next session and when it closes
    accounts: list[Account]
    shares: dict[int, list[int]] | str = ""  # processor worker pid -> its bars partitions (or why unknown)


def status(settings: Settings, season: str, arena: Arena) -> SeasonStatus:
    files = SeasonFiles.of(settings.stack_home, season)
    last = _last_bars(settings, season)
    return SeasonStatus(
        season=season,
        supervisor_pid=read_pid(files.pid_file, MARKER),
        services=files.read_states(),
        shares=processor_shares(settings, season),
        lag=_lags(settings, season),
        last_bars=last,
        next_bars=_next_bars(arena, last),
        accounts=_accounts(settings, season, arena),
    )


def consumer_groups(run: str) -> dict[str, tuple[str, list[TopicSpec]]]:
    """Each consuming service's consumer group and the topics it reads."""
    from consumers.scorer import TOPICS as SCORED
    from schemas.topics import BARS, FORECASTS

    return {
        "processor": (f"redblue-processor-{run}", [BARS]),  # processors.app.app_id (not imported: Faust)
        "trader": (f"redblue-trader-{run}", [FORECASTS]),
        "scorer": (f"redblue-scorer-{run}", list(SCORED)),
    }


def progress_of(settings: Settings, run: str) -> Callable[[str, int], Progress | None]:
    """For the supervisor's watchdog: how far the service (process ``pid``) is; None if it is not
    a consumer or Kafka cannot say now.

    A processor worker is judged on its share of the group's partitions; one that is not in the
    group while others are is not judged (they hold the partitions); when the group has no member
    at all, each worker is judged on the whole group (a lone worker that dropped out of it)."""
    from processors import worker_pid
    from redblue.adapters.kafka import KafkaUnavailable, group_members, group_progress

    groups = consumer_groups(run)

    def progress(service: str, pid: int) -> Progress | None:
        kind = kind_of(service)
        if kind not in groups:
            return None
        group, specs = groups[kind]
        try:
            if kind != "processor":
                return Progress(*group_progress(settings, run, group, specs, timeout=5.0))
            members = group_members(settings, group, timeout=5.0)
            mine = [m for m in members if worker_pid(m.client_id) == pid]
            if not mine:
                return None if members else Progress(*group_progress(settings, run, group, specs, timeout=5.0))
            share = frozenset(_read_by(mine[0].partitions, settings, run, specs))
            return Progress(*group_progress(settings, run, group, specs, timeout=5.0, only=share), share=share)
        except KafkaUnavailable:
            return None

    return progress


def _read_by(
    assigned: frozenset[tuple[str, int]], settings: Settings, run: str, specs: list[TopicSpec]
) -> set[tuple[str, int]]:
    """The partitions of ``specs`` (the run's topics) among ``assigned`` (a Faust worker also
    holds its tables' changelog partitions)."""
    from schemas import topic_name

    names = {topic_name(settings.topic_prefix, run, spec) for spec in specs}
    return {(topic, p) for topic, p in assigned if topic in names}


def processor_shares(settings: Settings, run: str) -> dict[int, list[int]] | str:
    """Each processor worker's (pid) partitions of the bars topic, as its consumer group says."""
    from processors import worker_pid
    from redblue.adapters.kafka import KafkaUnavailable, group_members

    group, specs = consumer_groups(run)["processor"]
    try:
        members = group_members(settings, group, timeout=5.0)
    except KafkaUnavailable as err:
        return f"unknown ({err})"
    return {
        pid: sorted(p for _, p in _read_by(m.partitions, settings, run, specs))
        for m in members
        if (pid := worker_pid(m.client_id)) is not None
    }


def _lags(settings: Settings, run: str) -> dict[str, int | str]:
    from redblue.adapters.kafka import KafkaUnavailable, group_backlog

    lags: dict[str, int | str] = {}
    for stage, (group, specs) in consumer_groups(run).items():
        try:
            lags[stage] = group_backlog(settings, run, group, specs)
        except KafkaUnavailable as err:
            lags[stage] = f"unknown ({err})"
    return lags


def _last_bars(settings: Settings, run: str) -> dict[str, date]:
    from redblue.adapters.kafka import KafkaUnavailable, read_topic
    from schemas import Bar
    from schemas.topics import BARS

    last: dict[str, date] = {}
    try:
        events = read_topic(settings, run, BARS)
    except KafkaUnavailable:
        return last
    for bar in events:
        if isinstance(bar, Bar) and bar.date > last.get(bar.symbol, date.min):
            last[bar.symbol] = bar.date
    return last


def _next_bars(arena: Arena, last: dict[str, date]) -> dict[str, tuple[date, datetime] | None]:
    from redblue.core.calendar import CalendarError, get_calendar

    calendar = get_calendar(arena.calendar)
    out: dict[str, tuple[date, datetime] | None] = {}
    for symbol in arena.symbols:
        if symbol not in last:
            out[symbol] = None
            continue
        try:
            day = calendar.next_session(last[symbol])
            out[symbol] = (day, calendar.close_time(day))
        except CalendarError:
            out[symbol] = None
    return out


def _accounts(settings: Settings, run: str, arena: Arena) -> list[Account]:
    from redblue.adapters.redis_store import RedisStores
    from redblue.core.store import StoreError

    stores = RedisStores.from_settings(settings)
    try:
        store = stores.open(run)
        accounts = []
        halts = store.halts()
        for team in sorted(arena.teams):
            history = store.equity_history(team)
            if not history:
                accounts.append(Account(team, None, None, None, {}, halts.get(team, "")))
                continue
            day, equity = history[-1]
            marks = store.marks(team, day, arena.symbols)
            cash = arena.strategy.initial_cash + sum(m.net_cash_flow for m in marks.values())
            positions = {s: m.quantity for s, m in marks.items() if m.quantity}
            accounts.append(Account(team, day, equity, cash, positions, halts.get(team, "")))
        return accounts
    except StoreError:
        return []
    finally:
        stores.close()


def _share_text(shares: dict[int, list[int]] | str, pid: int | None) -> str:
    if isinstance(shares, str):
        return shares
    held = shares.get(pid or -1)
    return "none (not in the group)" if held is None else ",".join(map(str, held)) or "none"


def render(st: SeasonStatus, now: float) -> str:
    """``season status`` as text."""
    sup = f"supervisor pid {st.supervisor_pid}" if st.supervisor_pid else "supervisor NOT running"
    head = f"{'service':<12} {'state':<11} {'pid':>7} {'restarts':>8} {'uptime':>7}  ready"
    lines = [f"season {st.season}: {sup}", "", head]
    for s in st.services:
        started = s.started_at if s.state in ("running", "starting") else None
        up_for = f"{now - started:.0f}s" if started else "-"
        ready = "-" if not started else "not yet" if s.ready_at is None else f"after {s.ready_at - started:.0f}s"
        row = f"{s.name:<12} {s.state:<11} {s.pid or '-':>7} {s.restarts:>8} {up_for:>7}  {ready}"
        if kind_of(s.name) == "processor" and started:
            row += f"; bars partitions {_share_text(st.shares, s.pid)}"
        lines.append(row)
        if s.state == "failed" and s.last_lines:
            lines += [f"    | {line}" for line in s.last_lines.splitlines()[-10:]]
    lines += ["", "consumer lag: " + ", ".join(f"{stage} {lag}" for stage, lag in st.lag.items()), ""]
    for symbol, nxt in st.next_bars.items():
        last = st.last_bars.get(symbol)
        expected = f"next {nxt[0]} (final after {nxt[1]:%Y-%m-%d %H:%M}Z)" if nxt else "next: unknown"
        lines.append(f"{symbol:<6} last final bar {last or 'none'}; {expected}")
    lines.append("")
    for a in st.accounts:
        if a.day is None:
            lines.append(f"{a.team:<8} no marks yet")
        else:
            held = ", ".join(f"{s} {q}" for s, q in sorted(a.positions.items())) or "flat"
            lines.append(f"{a.team:<8} {a.day}: equity {a.equity:,.2f} cash {a.cash:,.2f} positions {held}")
        if a.halted:
            lines.append(f"{'':<8} HALTED, not traded: {a.halted}")
    return "\n".join(lines)
