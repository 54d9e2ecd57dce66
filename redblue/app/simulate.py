"""A simulation: one run of the whole pipeline over history, through the real broker.

Before anything runs, the orchestrator resolves the model version each (team, model, symbol)
will serve (:func:`resolve_pins`: the versions the registry aliases point at now) and refuses the
simulation if any of them was trained on data after the run's first as-of day
(:func:`processors.pins.check_cutoffs`). Those versions are pinned for the whole run: the
processor gets them in a file and never follows a moved alias. The run id, ``summary.json`` and
the MLflow run record them.

Then it has the Faust processor run as its own process (started before anything else, see
:mod:`redblue.app.warm`: it imports while the run is planned and loads its models while the run
is reset: topics, consumer groups, leaderboard keys; then its worker starts), the trader and
scorer as consumers, replays the bars, waits until the scorer has seen the last bar, every
forecast and every equity mark, and writes the run's files from the topics and the leaderboard
while everything stops. The heavier modules are imported only once the processor is on its way.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from processors.book import ModelBook, ModelSource
from processors.pins import Pin, check_cutoffs, serve_from, walk_forward_cutoffs, write_pins
from producers.replay import ReplayPlan, plan_replay, replay
from redblue.adapters.kafka import EventProducer, shared_admin_clients
from redblue.app import warm
from redblue.core import runs
from redblue.core.arena import REPO_ROOT, Arena
from redblue.core.bars import DATA_DIR, data_fingerprint
from redblue.core.calendar import get_calendar
from redblue.core.clock import utc_now
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings, as_env
from redblue.core.spans import format_spans
from redblue.core.store import LeaderboardStore

if TYPE_CHECKING:
    from training.train import TrainResult

Print = Callable[[str], None]


class SimulationError(RedblueError):
    """The simulation could not complete; the message says which part and where its log is."""


@dataclass(frozen=True)
class SimulationRequest:
    start: date
    days: int | None
    arena: Arena
    arena_path: Path
    data_dir: Path = DATA_DIR
    run_id: str | None = None
    out: Path | None = None
    timeout: float = 300.0
    end: date | None = None  # the last target day, instead of ``days``
    retrain_every: int | None = None  # walk forward: retrain the team models every N trading days
    train_missing: bool = False  # train a team model that has no eligible champion (never moves champion)


@dataclass(frozen=True)
class SimulationResult:
    run: str
    out: Path
    summary: dict[str, object]
    report: str
    seconds: float


def default_run_id(req: SimulationRequest, pins: Sequence[Pin] = ()) -> str:
    """Derived from every input, the versions served included, so the same simulation always gets
    the same id (and replaces itself)."""
    digest = hashlib.sha256(req.arena.model_dump_json().encode())
    digest.update(data_fingerprint(req.data_dir, req.arena.symbols).encode())
    for pin in sorted(pins, key=lambda p: (p.key, p.serve_from or date.min)):
        digest.update(f"\n{'/'.join(pin.key)}@{pin.version}:{pin.serve_from}:{pin.data_hash}".encode())
    length = f"{req.days}d" if req.end is None else f"{req.end:%Y%m%d}"
    return f"sim-{req.start:%Y%m%d}-{length}-{digest.hexdigest()[:10]}"


def model_sources(settings: Settings, arena: Arena) -> dict[str, ModelSource]:
    """Where the arena's trained models come from (the MLflow registry, read as ``settings``'
    service), if it has any."""
    from redblue.core.model_names import KIND

    if not any(spec.kind == KIND for _, spec in arena.all_models()):
        return {}
    from redblue.adapters.mlflow.registry import RegistrySource
    from redblue.stack.mlflow import store_files

    login = settings.mlflow_login()  # a service's read-only user (the admin's for the admin)
    files = store_files(settings)  # this machine's stack server: its files are read directly
    return {KIND: RegistrySource(settings.mlflow_uri, settings.registry_prefix, login=login, files=files)}


def resolve_pins(settings: Settings, arena: Arena) -> list[Pin]:
    """The version every (team, model, symbol) serves now, loaded and validated as the processor would.

    A model that cannot be loaded gets a pin with its ``error`` (its forecasts will fail).
    """
    quiet = logging.getLogger("processors.book")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the book logs every model it serves: the processor's log, not the console
    try:
        book = ModelBook(arena, model_sources(settings.for_service("processor"), arena))  # as it will serve
    finally:
        quiet.setLevel(level)
    return [
        Pin(
            m.team,
            m.name,
            m.symbol,
            m.forecaster.version if m.forecaster else "",
            m.trained_until,
            m.data_hash,
            error=m.error,
        )
        for m in book.models
    ]


@dataclass
class _Services:
    """The running parts of a simulation and the first error any of them hit."""

    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    processor: subprocess.Popen[bytes] | None = None
    errors: list[str] = field(default_factory=list)

    def spawn(self, name: str, target: Callable[[], object]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception as err:
                self.errors.append(f"{name} failed: {type(err).__name__}: {err}")
                self.stop.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def check(self, processor_log: Path) -> None:
        if self.errors:
            raise SimulationError("; ".join(self.errors))
        if self.processor is not None and self.processor.poll() is not None:
            raise SimulationError(
                f"the processor exited with code {self.processor.returncode}; see {processor_log}:\n"
                + _tail(processor_log)
            )

    def begin_shutdown(self) -> None:
        """Ask every part to stop, without waiting (they stop while the caller goes on)."""
        self.stop.set()
        if self.processor is not None and self.processor.poll() is None:
            self.processor.terminate()

    def shutdown(self) -> None:
        """Stop every part; a consumer thread that does not stop would go on writing into the
        next run with this id, so that is an error, not something to leave behind."""
        self.begin_shutdown()
        for thread in self.threads:
            thread.join(timeout=60)
        if self.processor is not None:
            try:
                self.processor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.processor.kill()
                self.processor.wait()
        stuck = [thread.name for thread in self.threads if thread.is_alive()]
        if stuck:
            raise SimulationError(f"{', '.join(stuck)} did not stop within 60 s")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def simulate(
    settings: Settings,
    req: SimulationRequest,
    say: Print = print,
    on_written: Callable[[SimulationResult], None] | None = None,
) -> SimulationResult:
    """Run the whole simulation and write its files; raise :class:`SimulationError` if it stalls.

    ``on_written`` gets the result as soon as the files are written, before the services have
    stopped (this function returns once they have).
    """
    began = time.monotonic()
    calendar = get_calendar(req.arena.calendar)
    plan = plan_replay(
        req.data_dir, req.arena.symbols, req.start, None if req.end else req.days, req.arena.window, calendar,
        end=req.end,
    )  # fmt: skip
    pins = resolve_pins(settings, req.arena)
    if req.retrain_every is not None:
        pins = walk_forward(settings, req, plan, pins, say)
    elif req.train_missing:
        pins = train_missing(settings, req, plan, pins, say)
    check_cutoffs(pins, plan.first_as_of)
    for pin in pins:
        if pin.error:
            say(f"warning: {pin.team}/{pin.model} {pin.symbol} cannot be served: {pin.error} (or use --train-missing)")
        elif pin.trained_until is not None:
            period = f"from {pin.serve_from}" if pin.serve_from else "from the start"
            say(f"serving {pin.label} {period}, trained on data up to {pin.trained_until} (pinned)")
    run = req.run_id or default_run_id(req, pins)
    out_dir = req.out or REPO_ROOT / "out" / run
    say(
        f"run {run}: {len(req.arena.symbols)} symbol(s), targets {plan.first_target} .. {plan.last_target} "
        f"({plan.days} trading days), {len(plan.rows)} bars incl. {req.arena.window}-bar warm-up"
    )
    if not plan.uniform:
        for symbol, span in plan.spans.items():
            say(f"  {symbol}: warm-up from {span.warmup_first}, targets {span.first_target} .. {span.last}")
    with running_pipeline(settings, run, req, plan, out_dir / "logs", pins) as pipeline:
        ending = threading.Thread(target=_outputs, name="import-outputs", daemon=True)
        ending.start()  # while the processor's worker starts (this process waits for its first forecasts)
        assert pipeline.producer is not None
        replay(pipeline.producer, plan.rows, calendar, utc_now, progress=_progress("replaying bars"))
        pipeline.wait_until_complete()
        pipeline.services.begin_shutdown()  # the services stop while the files are written
        ending.join()
        written = _outputs().write(
            settings.for_service("leaderboard"), run, req.arena, plan, out_dir, end=req.end, served=pins
        )
        result = SimulationResult(run, out_dir, written.summary, written.report, time.monotonic() - began)
        pipeline.finished()
        if on_written is not None:
            on_written(result)  # e.g. print the report while the services finish stopping
    return result


def _outputs() -> Any:
    """:mod:`redblue.app.outputs` with what its board's tests compute with, imported when needed
    (a simulation starts its processor first)."""
    from consumers.significance import preload
    from redblue.app import outputs

    preload()
    return outputs


def walk_forward(
    settings: Settings, req: SimulationRequest, plan: ReplayPlan, pins: list[Pin], say: Print
) -> list[Pin]:
    """Replace the team models' pins by versions retrained every ``req.retrain_every`` trading days.

    Each version is trained on an expanding window of the run's own bar files that ends at its
    cutoff (an as-of day of the replay) and serves from the next bar on; all of them are trained
    (or found, if an identical one is registered) before the replay starts, which gives the
    same versions as retraining while the replay advances, since none sees past its cutoff.
    ``champion`` is never moved.
    """
    assert req.retrain_every is not None
    calendar = get_calendar(req.arena.calendar)
    cutoffs = walk_forward_cutoffs(plan.first_as_of, calendar.offset(plan.last_target, -1), req.retrain_every, calendar)
    say(f"walk-forward: training the team models up to {', '.join(map(str, cutoffs))}")
    trained = _train_versions(settings, req, cutoffs)
    served = [_trained_pin(until, result, serve_from(until, plan.first_as_of, calendar)) for until, result in trained]
    replaced = {p.key for p in served}
    return [p for p in pins if p.key not in replaced] + served


def train_missing(
    settings: Settings, req: SimulationRequest, plan: ReplayPlan, pins: list[Pin], say: Print
) -> list[Pin]:
    """Train, up to the first as-of day, every team model without an eligible champion (``champion`` is not moved)."""

    kinds = {(team, spec.name): spec.kind for team, spec in req.arena.all_models()}
    missing = {
        p.key
        for p in pins
        if kinds.get((p.team, p.model)) in model_sources(settings, req.arena)
        and (p.error or p.trained_until is None or p.trained_until > plan.first_as_of)
    }
    if not missing:
        return pins
    say(f"training {len(missing)} team model(s) without an eligible champion up to {plan.first_as_of}")
    trained = _train_versions(settings, req, [plan.first_as_of], keys=missing)
    served = [_trained_pin(until, result, None) for until, result in trained]
    return [p for p in pins if p.key not in missing] + served


def _train_versions(
    settings: Settings, req: SimulationRequest, cutoffs: Sequence[date], keys: set[tuple[str, str, str]] | None = None
) -> list[tuple[date, TrainResult]]:
    """Versions trained up to each cutoff, each team as its own MLflow user (created if missing)."""
    from redblue.app.provision import prepare_teams
    from training.train import train_versions

    prepare_teams(settings, req.arena.teams)
    return train_versions(req.arena, settings, cutoffs, req.data_dir, keys=keys)


def _trained_pin(until: date, result: TrainResult, start: date | None) -> Pin:
    return Pin(result.team, result.model, result.symbol, result.version, until, result.data_hash, start)


@contextmanager
def running_pipeline(
    settings: Settings,
    run: str,
    req: SimulationRequest,
    plan: ReplayPlan,
    log_dir: Path,
    pins: Sequence[Pin] | None = None,
    *,
    follow_aliases: bool = False,
) -> Iterator[Pipeline]:
    """Reset the run, create its topics and run processor, trader and scorer until the block ends.

    The processor serves exactly ``pins`` (default: :func:`resolve_pins`, cutoffs checked), or,
    with ``follow_aliases``, whatever the registry aliases point at as a live season does (for
    tests of the live behaviour; a simulation never does this).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    pin_file = None
    if not follow_aliases:
        if pins is None:
            pins = resolve_pins(settings, req.arena)
            check_cutoffs(pins, plan.first_as_of)
        pin_file = log_dir / "served.json"
        write_pins(pin_file, pins)
    from redblue.adapters.redis_store import RedisStore

    pipeline = Pipeline(settings, run, req, plan, log_dir / "processor.log", pin_file)
    store: RedisStore | None = None
    try:
        pipeline.launch()  # the processor imports and loads its models while the run is reset
        from redblue.app.provision import prepare_run, reset_run

        with shared_admin_clients():
            reset_run(settings, run)
            prepare_run(settings, run, granted=pipeline.make_producer)  # each service's rights, topics
        store = pipeline.store = RedisStore.from_settings(settings.for_service("admin"), run)
        runs.describe_simulation(store, req.arena, plan.first_target, plan.last_target, plan.days)
        pipeline.start()
        yield pipeline
    except BaseException as err:
        if store is not None:
            runs.finish(store, runs.FAILED, f"{type(err).__name__}: {err}")
        raise
    finally:
        pipeline.services.shutdown()
        if store is not None:
            store.close()


class Pipeline:
    """The processor (a Faust worker process) and the trader and scorer (consumer threads) of one run."""

    def __init__(
        self, settings: Settings, run: str, req: SimulationRequest, plan: ReplayPlan, log: Path, pins: Path | None
    ) -> None:
        self.settings, self.run, self.req, self.plan, self.log = settings, run, req, plan, log
        self.pins = pins
        self.services = _Services()
        self.store: LeaderboardStore | None = None  # the run's leaderboard, once the run is reset
        self.producer: EventProducer | None = None  # the replay's, once the run's rights exist

    def make_producer(self) -> None:
        """The replay's producer, made as soon as the producer service may write the run's bars:
        it has its idempotent producer id by the time they go out (made just before them,
        librdkafka acquired the id on a half-second retry timer and the first bars waited)."""
        self.producer = EventProducer(self.settings.for_service("producer"), self.run)

    def finished(self) -> None:
        """Note in the run's description that it completed."""
        if self.store is not None:
            runs.finish(self.store, runs.COMPLETE)

    def launch(self) -> None:
        """Give the processor its command (a process started earlier, its imports done or under
        way, see :mod:`redblue.app.warm`); it gets ready (models) and waits for :meth:`start`."""
        argv = [
            "process", "--run", self.run, "--arena", str(self.req.arena_path),
            "--symbols", ",".join(self.req.arena.symbols),
            "--first-target", self.plan.first_target.isoformat(), "--last-target", self.plan.last_target.isoformat(),
            "--spans", format_spans(self.plan.spans), "--wait-for-go",
            *(["--pins", str(self.pins)] if self.pins is not None else []),
        ]  # fmt: skip
        self.services.processor = warm.claim()
        warm.order(self.services.processor, argv, self.log, as_env(self.settings.for_service("processor")))

    def start(self) -> None:
        """Let the processor's worker start (the run's topics exist now); start the trader and scorer."""
        from consumers.scorer import run_scorer
        from consumers.trader import bootstrap_trader, run_trader

        processor = self.services.processor
        assert processor is not None and processor.stdin is not None
        try:
            processor.stdin.write(b"go\n")
            processor.stdin.close()
        except BrokenPipeError:
            pass  # it exited already: services.check() reports it with its log
        run, stop, spans = self.run, self.services.stop, self.plan.spans
        trading, scoring = self.settings.for_service("trader"), self.settings.for_service("scorer")
        trader = bootstrap_trader(run, self.req.arena, spans=spans)
        self.services.spawn("trader", lambda: run_trader(trading, run, trader, stop, spans))
        self.services.spawn("scorer", lambda: run_scorer(scoring, run, self.req.arena, stop, spans=spans))

    def wait_until_complete(self) -> None:
        """Poll the leaderboard's progress until the run is complete; fail after ``timeout`` without progress."""
        from redblue.adapters.redis_store import RedisStore
        from redblue.app.coverage import Steps

        steps = Steps(self.req.arena, self.plan, get_calendar(self.req.arena.calendar))
        expected = steps.total
        show = _progress("pipeline (bars and equity marks through to the scorer)")
        last, since = -1, time.monotonic()
        with RedisStore.from_settings(self.settings.for_service("leaderboard"), self.run) as store:
            while True:
                self.services.check(self.log)
                done = steps.done(store)
                show(done, expected)
                if done >= expected:
                    return
                if done != last:
                    last, since = done, time.monotonic()
                elif time.monotonic() - since > self.req.timeout:
                    raise SimulationError(
                        f"no progress for {self.req.timeout:.0f}s at {done}/{expected} steps; "
                        f"processor log {self.log}:\n" + _tail(self.log)
                    )
                time.sleep(0.1)


def _progress(label: str) -> Callable[[int, int], None]:
    state = {"shown": -1.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - state["shown"] > 0.5:
            state["shown"] = now
            end = "\n" if done >= total else ""
            print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show
