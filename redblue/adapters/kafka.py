"""The Kafka adapter: the only module that imports ``confluent_kafka``.

It creates and deletes a run's topics, produces validated events, runs consume loops that
send anything undecodable to the dead-letter topic (with the reason and the original bytes),
and reads a whole topic back for reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from redblue.core.access import reader_group
from redblue.core.clock import Clock, utc_now
from redblue.core.errors import RedblueError
from redblue.core.settings import Settings
from schemas import TOPICS, DeadLetter, Event, SchemaError, TopicSpec, decode_all, encode, topic_name
from schemas.topics import DEADLETTER
from schemas.wire import pack

log = logging.getLogger(__name__)
_UNASSIGNED = -1  # librdkafka's RD_KAFKA_PARTITION_UA
Offsets = dict[tuple[str, int], int]  # (topic, partition) -> the next offset to read


class KafkaUnavailable(RedblueError):
    """The broker did not answer or refused an operation."""


@dataclass(frozen=True)
class Outgoing:
    """An event to produce: where, with which key."""

    spec: TopicSpec
    key: str
    event: Event


def client_config(settings: Settings) -> dict[str, Any]:
    """Where the broker is and, with security on, the SASL/SCRAM login of ``settings.service``."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap}
    login = settings.kafka_login()
    if login is not None:
        config |= {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": login.username,
            "sasl.password": login.password.get_secret_value(),
        }
    return config


_SHARED_ADMINS: ContextVar[dict[str, AdminClient] | None] = ContextVar("redblue_shared_admins", default=None)


@contextmanager
def shared_admin_clients() -> Iterator[None]:
    """Inside the block (in this thread), :func:`admin_client` hands out one client per login:
    a new one costs a connection and a SCRAM handshake (~0.1 s), and setting a run up asks
    several times. Outside, every call gets a new client (a long-lived process, e.g. a season's
    supervisor, never keeps one in reconnect back-off across a broker restart)."""
    token = _SHARED_ADMINS.set({})
    try:
        yield
    finally:
        _SHARED_ADMINS.reset(token)


def admin_client(settings: Settings) -> AdminClient:
    """An admin client as ``settings.service`` (topic and ACL changes need the admin service)."""
    config = {**client_config(settings), "log_level": 3}
    shared = _SHARED_ADMINS.get()
    if shared is None:
        return AdminClient(config)
    key = repr(sorted(config.items()))
    if key not in shared:
        shared[key] = AdminClient(config)
    return shared[key]


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """Raise :class:`KafkaUnavailable` with a hint unless the broker answers within ``timeout``."""
    try:
        admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaUnavailable(
            f"Kafka at {settings.kafka_bootstrap} is not reachable ({err}); start the stack: bin/redblue stack up"
        ) from err


def broker_answers(settings: Settings, timeout: float = 5.0) -> bool:
    """True when the broker answers ``settings.service``'s metadata request (quietly: no retry logs)."""
    admin = AdminClient({**client_config(settings), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def run_topics(settings: Settings, run: str, specs: Iterable[TopicSpec] = TOPICS) -> dict[str, TopicSpec]:
    return {topic_name(settings.topic_prefix, run, spec): spec for spec in specs}


def ensure_topics(settings: Settings, run: str, compacted: Mapping[str, int] | None = None) -> list[str]:
    """Create the run's topics (explicitly; the broker does not auto-create) and the ``compacted``
    ones (name -> partitions, e.g. the processor's table changelogs). Existing ones are kept."""
    check_broker(settings)
    wanted = run_topics(settings, run)
    plain = [NewTopic(name, num_partitions=spec.partitions, replication_factor=1) for name, spec in wanted.items()]
    _create(admin_client(settings), [*plain, *_compacted(compacted or {})])
    return [*wanted, *(compacted or {})]


def _compacted(partitions: Mapping[str, int]) -> list[NewTopic]:
    config = {"cleanup.policy": "compact"}
    return [NewTopic(n, num_partitions=p, replication_factor=1, config=config) for n, p in partitions.items()]


def _create(admin: AdminClient, topics: list[NewTopic]) -> None:
    """Create ``topics``; those that exist already are kept. Returns once the broker's metadata
    shows each with every partition led: a client that starts next finds them all (a Faust worker
    whose consumer missed its changelog failed with PartitionsMismatch)."""
    for name, future in admin.create_topics(topics).items():
        try:
            future.result(timeout=30)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(f"cannot create topic {name}: {err}") from err
    _wait_led(admin, {t.topic: t.num_partitions for t in topics})


def _wait_led(admin: AdminClient, wanted: Mapping[str, int], attempts: int = 100) -> None:
    """Wait until the broker's metadata lists each topic with a leader for every partition; a
    topic that exists with another number of partitions is an error at once."""
    for _ in range(attempts):
        listed = admin.list_topics(timeout=10).topics
        ready = 0
        for name, n in wanted.items():
            meta = listed.get(name)
            if meta is None or meta.error is not None or not meta.partitions:
                continue
            if len(meta.partitions) != n:
                raise KafkaUnavailable(f"topic {name} exists with {len(meta.partitions)} partitions, not {n}")
            ready += all(p.leader >= 0 for p in meta.partitions.values())
        if ready == len(wanted):
            return
        threading.Event().wait(0.05)
    raise KafkaUnavailable(
        f"topics created but not led in the broker's metadata after {attempts} looks: {sorted(wanted)}"
    )


def ensure_compacted_topics(settings: Settings, partitions: Mapping[str, int]) -> None:
    """Create compacted topics (name -> partitions) unless they exist, e.g. a processor's table
    changelogs, so that its worker never meets one that the cluster metadata does not show yet."""
    _create(admin_client(settings), _compacted(partitions))


def delete_run(
    settings: Settings, run: str, extra_prefixes: Sequence[str] = (), groups: Sequence[str] = ()
) -> list[str]:
    """Delete every topic of ``run`` (and of ``extra_prefixes``, e.g. the processor's internal
    ones) and the consumer ``groups`` that read them, so a run id can start again from nothing."""
    check_broker(settings)
    admin = admin_client(settings)
    _delete_groups(admin, groups)
    prefixes = (f"{settings.topic_prefix}.{run}.", *extra_prefixes)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if names:
        for name, future in admin.delete_topics(names, operation_timeout=30).items():
            try:
                future.result(timeout=30)
            except KafkaException as err:
                log.warning("could not delete topic %s: %s", name, err)
    _wait_gone(admin, names)
    return names


def _delete_groups(admin: AdminClient, groups: Sequence[str]) -> None:
    """Delete those of ``groups`` the broker knows (asking first: deleting a group needs its
    coordinator, which a brand-new broker may take long to elect, while listing does not)."""
    try:
        known = {g.group_id for g in admin.list_consumer_groups(request_timeout=30).result(timeout=30).valid}
        groups = [g for g in groups if g in known]
    except (KafkaException, TimeoutError) as err:
        log.warning("could not list consumer groups (%s): deleting all of %s", err, ", ".join(groups))
    if not groups:
        return
    for group, future in admin.delete_consumer_groups(list(groups), request_timeout=30).items():
        try:
            future.result(timeout=35)
        except TimeoutError:  # a brand-new, busy broker still electing its group coordinator
            log.warning("could not delete consumer group %s: no answer in 35 s", group)
        except KafkaException as err:
            # NOT_COORDINATOR: no group was ever committed on this broker (no offsets topic yet)
            if err.args[0].code() not in (KafkaError.GROUP_ID_NOT_FOUND, KafkaError.NOT_COORDINATOR):
                log.warning("could not delete consumer group %s: %s", group, err)


def _wait_gone(admin: AdminClient, names: list[str], attempts: int = 50) -> None:
    for _ in range(attempts):
        if not set(names) & set(admin.list_topics(timeout=10).topics):
            return
        threading.Event().wait(0.2)
    raise KafkaUnavailable(f"topics still present after deletion: {names}")


class EventProducer:
    """Produces events of one run (validated by :func:`schemas.encode` unless already validated)."""

    def __init__(self, settings: Settings, run: str, transactional_id: str | None = None) -> None:
        self._settings = settings
        self._run = run
        config: dict[str, str | int | bool] = {
            **client_config(settings),
            "enable.idempotence": True,
            "linger.ms": 5,
            "log_level": 3,  # errors only: transient start-up retries are not news
        }
        if transactional_id is not None:  # a restarted process with the same id fences the old one
            config["transactional.id"] = transactional_id
        self._producer = Producer(config)
        if transactional_id is not None:
            self._producer.init_transactions(30)
        self._errors: list[str] = []
        self._topics: dict[TopicSpec, str] = {}

    def begin(self) -> None:
        """Open a transaction (a producer made with a ``transactional_id``)."""
        self._producer.begin_transaction()

    def commit_with(self, consumer: Consumer, offsets: Offsets | None = None) -> None:
        """Commit the open transaction together with ``offsets`` of ``consumer`` (default: its
        positions): all of it or nothing."""
        try:
            if offsets is None:
                positions = consumer.position(consumer.assignment())
            else:
                positions = [TopicPartition(topic, partition, at) for (topic, partition), at in offsets.items()]
            self._producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(30)
        except KafkaException as err:
            if isinstance(err.args[0], KafkaError) and err.args[0].txn_requires_abort():
                self._producer.abort_transaction(30)
            raise KafkaUnavailable(f"transaction not committed (its output is discarded): {err}") from err

    def topic(self, spec: TopicSpec) -> str:
        name = self._topics.get(spec)
        if name is None:
            name = self._topics[spec] = topic_name(self._settings.topic_prefix, self._run, spec)
        return name

    def send(self, out: Outgoing, *, revalidate: bool = True) -> None:
        """Produce ``out``; ``revalidate=False`` for an event built with its validating constructor."""
        self.send_raw(out.spec, out.key, encode(out.event, revalidate=revalidate))

    def send_many(self, outs: Sequence[Outgoing], *, revalidate: bool = True, per_message: int = 500) -> None:
        """Produce ``outs`` in order, those bound for one partition together in one message (a
        batch of at most ``per_message`` events; see :func:`schemas.encode_many`).

        An event goes to the partition its key maps to (see :func:`schemas.wire.pack`: the
        partition a message with that key alone would get), so each key keeps its order.
        """
        by_topic: dict[TopicSpec, list[tuple[str, Event]]] = {}
        for out in outs:
            by_topic.setdefault(out.spec, []).append((out.key, out.event))
        for spec, keyed in by_topic.items():
            for partition, key, value in pack(keyed, spec.partitions, per_message=per_message, revalidate=revalidate):
                self.send_raw(spec, key, value, partition)

    def send_raw(self, spec: TopicSpec, key: str | None, value: bytes, partition: int | None = None) -> None:
        """Produce bytes as they are (tests use it to inject malformed messages)."""
        target = _UNASSIGNED if partition is None else partition  # unassigned: the key picks it
        with _refusals(self._settings):
            while True:
                try:
                    self._producer.produce(
                        self.topic(spec), value=value, key=key, partition=target, on_delivery=self._delivered
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
            self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything sent so far is acknowledged; raise if anything failed."""
        with _refusals(self._settings):
            left = self._producer.flush(timeout)
        if left or self._errors:
            raise KafkaUnavailable(f"{left} message(s) not delivered; errors: {self._errors[:3]}")

    def delivered(self) -> bool:
        """Whether everything sent so far is acknowledged, without waiting; raise if anything failed."""
        with _refusals(self._settings):
            self._producer.poll(0)
        if self._errors:
            raise KafkaUnavailable(f"message(s) not delivered: {self._errors[:3]}")
        return len(self._producer) == 0


@contextmanager
def _refusals(settings: Settings) -> Iterator[None]:
    """A fatal producer error (e.g. CLUSTER_AUTHORIZATION_FAILED: this service may write no topic
    at all, so the broker refuses it an idempotent producer id) as :class:`KafkaUnavailable`.

    confluent-kafka raises it from inside ``poll``/``flush`` with the delivery callback then
    failing on the pending exception (a ``SystemError`` whose cause chain holds the real error).
    """
    try:
        yield
    except (KafkaException, SystemError) as err:
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, KafkaException):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise KafkaUnavailable(f"Kafka refused the {settings.service} service's producer: {cause}") from err


Handler = Callable[[Event], list[Outgoing]]


@dataclass(frozen=True)
class Received:
    """A consumed message, translated out of confluent-kafka's types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


# Errors a consumer meets on a fresh or busy broker and recovers from by itself: a topic whose
# metadata has not propagated yet, a group coordinator being elected (the first group on a new
# broker creates __consumer_offsets), a rebalance, a broker restarting. Logged and retried.
TRANSIENT = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._NO_OFFSET,  # a commit with nothing to commit (e.g. partitions just revoked)
        KafkaError._STATE,
        KafkaError._WAIT_COORD,
        KafkaError._ASSIGNMENT_LOST,
    }
)


def is_transient(error: KafkaError) -> bool:
    """True for errors the client recovers from by retrying; False for those that need a person."""
    return not error.fatal() and (error.code() in TRANSIENT or error.retriable())


class _Throttled:
    """Logs each (stage, error code) at most once per ``every`` seconds, so a broker that takes a
    minute to come back does not print thousands of identical lines."""

    def __init__(self, every: float = 10.0) -> None:
        self._every = every
        self._last: dict[tuple[str, int], float] = {}

    def warning(self, stage: str, error: KafkaError, what: str) -> None:
        now = utc_now().timestamp()
        key = (stage, error.code())
        if now - self._last.get(key, -self._every) >= self._every:
            self._last[key] = now
            log.warning("%s: %s (transient, retrying): %s", stage, what, error.str())


_transient_log = _Throttled()


def _received(msg: Message, stage: str) -> Received | None:
    """The message, or None for an end-of-partition notice or a transient consumer error (logged).

    Raises :class:`KafkaUnavailable` for an error the client cannot recover from (authorisation,
    a fatal error), so the service stops with a message that says why.
    """
    error = msg.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            return None
        if is_transient(error):
            _transient_log.warning(stage, error, "consumer error")
            return None
        raise KafkaUnavailable(f"{stage}: Kafka consumer error: {error.str()} ({error.name()})")
    key, value = msg.key(), msg.value()
    return Received(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=key.encode() if isinstance(key, str) else key,
        value=value.encode() if isinstance(value, str) else value,
    )


def commit(consumer: Consumer, stage: str, offsets: Offsets | None = None, *, asynchronous: bool = False) -> None:
    """Commit ``offsets`` (default: the consumed positions); a transient failure is logged and left
    to the next commit (which covers the same positions), a lasting one raises :class:`KafkaUnavailable`.

    A commit lost to a rebalance means those messages are delivered again: at-least-once, and
    every handler is idempotent. An asynchronous commit's failure reaches the consume loop's commit
    callback (see :class:`_Commits`).
    """
    try:
        if offsets is None:
            consumer.commit(asynchronous=asynchronous)  # type: ignore[call-overload]
        else:
            tps = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
            consumer.commit(offsets=tps, asynchronous=asynchronous)  # type: ignore[call-overload]
    except KafkaException as err:
        error = err.args[0]
        if not isinstance(error, KafkaError) or not is_transient(error):
            raise KafkaUnavailable(f"{stage}: Kafka commit failed: {err}") from err
        _transient_log.warning(stage, error, "commit not done")


class _Commits:
    """Commits what a consume loop has handled once everything it produced before is acknowledged,
    without waiting for the acknowledgements on every unit of work.

    After each unit the handled offsets are committed (asynchronously) if the producer has nothing
    in flight; otherwise the commit is left to a later unit, and at most every ``every`` seconds
    (and when the loop is idle or stops) the loop waits for the producer and commits. So offsets
    never run ahead of the outputs they caused: at-least-once, as with a flush per unit.
    """

    def __init__(
        self, consumer: Consumer, producer: EventProducer, stage: str, failed: list[KafkaError], every: float = 1.0
    ) -> None:
        self._consumer, self._producer, self._stage, self._every = consumer, producer, stage, every
        self._handled: Offsets = {}
        self._last = utc_now().timestamp()
        self._failed = failed  # filled by the consumer's commit callback (served inside ``consume``)

    def after(self, handled: Offsets) -> None:
        """Note the offsets a unit of work handled (its outputs sent) and commit when it can."""
        self._handled.update(handled)
        self._check()
        if self._producer.delivered():
            self._commit(asynchronous=True)
        elif utc_now().timestamp() - self._last >= self._every:
            self.settle()

    def settle(self) -> None:
        """Wait for the producer and commit synchronously (when idle and when stopping)."""
        if self._handled:
            self._producer.flush()
            self._commit(asynchronous=False)

    def _commit(self, *, asynchronous: bool) -> None:
        commit(self._consumer, self._stage, self._handled, asynchronous=asynchronous)
        self._handled = {}
        self._last = utc_now().timestamp()

    def _check(self) -> None:
        failed = list(self._failed)
        self._failed.clear()
        for error in failed:
            if error.code() == KafkaError._NO_OFFSET or is_transient(error):
                _transient_log.warning(self._stage, error, "commit not done")
            else:
                raise KafkaUnavailable(f"{self._stage}: Kafka commit failed: {error.str()}")


@dataclass
class ConsumerStats:
    consumed: int = 0  # messages
    dead_lettered: int = 0  # messages
    events: int = 0  # events handled (a batch message carries several)


def consume(
    settings: Settings,
    run: str,
    *,
    group: str,
    specs: Sequence[TopicSpec],
    expect: tuple[type[Event], ...],
    handle: Handler,
    stop: threading.Event,
    stage: str,
    clock: Clock = utc_now,
    from_start: bool = False,
    batch: Callable[[], AbstractContextManager[object]] = nullcontext,
    transactional_id: str | None = None,
    on_ready: Callable[[], None] | None = None,
    unit: int = 2000,
) -> ConsumerStats:
    """Consume ``specs`` until ``stop`` is set: decode, handle, produce the results, commit.

    With ``transactional_id`` each unit's output and offsets are one Kafka transaction:
    a process killed mid-batch leaves none of that batch's output visible (to ``read_committed``
    readers: every consumer here) and a restarted one with the same id fences it.

    A message that fails its contract goes to the run's dead-letter topic with the reason and
    the original bytes; offsets are committed only after the handler's output is acknowledged
    (at-least-once; the handlers are idempotent; see :class:`_Commits`). The handler's events
    were validated when it built them and are not validated again. ``batch`` wraps the handling
    of each batch of consumed messages (e.g. to write a projection's changes in one round trip).
    With ``from_start`` every start re-reads the topics from their beginning, for a projection
    that keeps working state in memory and must rebuild it after a restart. ``on_ready`` is
    called once, when the loop has handled everything its topics held (see :func:`_caught_up`).
    ``unit``: at most this many consumed events are handled, sent and committed together.
    """
    producer = EventProducer(settings, run, transactional_id)
    failed: list[KafkaError] = []
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
            "on_commit": lambda error, _partitions: failed.extend([error] if error is not None else []),
        }
    )
    commits = _Commits(consumer, producer, stage, failed)
    consumer.subscribe([producer.topic(s) for s in specs], on_assign=_rewind if from_start else _keep)
    stats = ConsumerStats()
    work = _Work(producer, handle, batch, commits, consumer if transactional_id is not None else None, size=unit)
    try:
        while not stop.is_set():
            messages = take(consumer, 1000, timeout=0.2)
            if not messages:
                commits.settle()
                if on_ready is not None and _caught_up(consumer, from_start):
                    on_ready()
                    on_ready = None
                continue
            for msg in messages:
                received = _received(msg, stage)
                if received is not None:
                    work.start()  # a transaction opens before a dead letter is sent: it belongs to it
                    work.add(received, _decoded(received, producer, expect, stage, stats, clock))
            work.finish()
        commits.settle()
    finally:
        consumer.close()
    return stats


class _Work:
    """Consumed messages handled in units of at most ``size`` events: a unit's events are handled
    inside ``batch``, its outputs sent, then its offsets committed (see :class:`_Commits`), or,
    given the ``transactional`` consumer, its outputs and offsets committed as one transaction.
    Units keep the stages of a pipeline overlapping when a message carries many events."""

    def __init__(
        self,
        producer: EventProducer,
        handle: Handler,
        batch: Callable[[], AbstractContextManager[object]],
        commits: _Commits,
        transactional: Consumer | None = None,
        size: int = 2000,
    ) -> None:
        self._producer, self._handle, self._batch, self._commits, self._size = producer, handle, batch, commits, size
        self._transactional = transactional
        self._open = False
        self._unit: list[list[Event]] = []
        self._offsets: Offsets = {}
        self._events = 0

    def start(self) -> None:
        """Before a message is decoded: a transactional unit opens its transaction."""
        if self._transactional is not None and not self._open:
            self._producer.begin()
            self._open = True

    def add(self, msg: Received, events: list[Event]) -> None:
        self._unit.append(events)
        self._offsets[(msg.topic, msg.partition)] = msg.offset + 1
        self._events += len(events)
        if self._events >= self._size:
            self.finish()

    def finish(self) -> None:
        if not self._offsets:
            return
        outs: list[Outgoing] = []
        with self._batch():
            for events in self._unit:
                for event in events:
                    outs += self._handle(event)
        self._producer.send_many(outs, revalidate=False)  # built by the handler with validating constructors
        if self._transactional is not None:
            self._producer.commit_with(self._transactional, self._offsets)
            self._open = False
        else:
            self._commits.after(self._offsets)
        self._unit, self._offsets, self._events = [], {}, 0


def take(consumer: Consumer, most: int, timeout: float) -> list[Message]:
    """Up to ``most`` messages (or events), as soon as there is one: waiting at most ``timeout``
    for the first, then whatever else has already arrived.

    (``Consumer.consume(most, timeout)`` waits until it has ``most`` messages or the timeout
    passes: with a replay's few large batch messages every call waited the whole timeout.)
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=most - 1, timeout=0)] if most > 1 else [first]


def _caught_up(consumer: Consumer, from_start: bool, timeout: float = 5.0) -> bool:
    """Whether the consumer has partitions and has read each to its end (as of now): its position,
    or where it starts when it has read nothing there (the beginning with ``from_start``, else the
    committed offset), is at the high watermark. (A read_committed consumer's position passes the
    transaction markers at a partition's end.)"""
    try:
        assigned = consumer.assignment()
        if not assigned:
            return False
        positions = consumer.position(assigned)
        committed = [None] * len(assigned) if from_start else consumer.committed(assigned, timeout=timeout)
        for at, done in zip(positions, committed, strict=True):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(at.topic, at.partition), timeout=timeout)
            start = at.offset if at.offset >= 0 else done.offset if done is not None and done.offset >= 0 else lo
            if start < hi:
                return False
        return True
    except KafkaException:
        return False


def _rewind(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    for partition in partitions:
        partition.offset = OFFSET_BEGINNING
    consumer.assign(partitions)


def _keep(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Resume from the committed offsets (the default)."""


def _decoded(
    msg: Received,
    producer: EventProducer,
    expect: tuple[type[Event], ...],
    stage: str,
    stats: ConsumerStats,
    clock: Clock,
) -> list[Event]:
    """The events of one message; none if it breaks its contract (then it is dead-lettered)."""
    stats.consumed += 1
    try:
        events = decode_all(msg.value, expect)
    except SchemaError as err:
        stats.dead_lettered += 1
        producer.send(Outgoing(DEADLETTER, msg.topic, dead_letter(msg, stage, str(err), clock)), revalidate=False)
        log.warning("%s: dead-lettered %s[%d]@%d: %s", stage, msg.topic, msg.partition, msg.offset, err)
        return []
    stats.events += len(events)
    return events


def dead_letter(msg: Received, stage: str, reason: str, clock: Clock) -> DeadLetter:
    return DeadLetter.of(
        stage=stage,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        reason=reason,
        produced_at=clock(),
    )


def read_topic(settings: Settings, run: str, spec: TopicSpec, timeout: float = 30.0) -> list[Any]:
    """Every message of one run topic, from the beginning to the end as of now, in partition order.

    Returns decoded events (a batch's one by one); undecodable messages come back as
    :class:`SchemaError` instances.
    """
    return read_topics(settings, run, [spec], timeout)[spec]


def read_topics(
    settings: Settings, run: str, specs: Sequence[TopicSpec], timeout: float = 30.0
) -> dict[TopicSpec, list[Any]]:
    """:func:`read_topic` of several topics at once (one consumer reads them all)."""
    names = {topic_name(settings.topic_prefix, run, spec): spec for spec in specs}
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": reader_group(run),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,  # a partition already read to its end must not hold up the others
            "enable.partition.eof": True,  # transaction markers take offsets no message is read at
            # a short read closes while librdkafka still logs in to the group's coordinator (which a
            # reader never uses) and it logs that as an error: only critical logs; a failed read raises
            "log_level": 2,
        }
    )
    try:
        partitions: list[TopicPartition] = []
        for name in names:
            meta = consumer.list_topics(name, timeout=10).topics[name]
            if meta.error is not None and meta.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise KafkaUnavailable(f"cannot read {name} as the {settings.service} service: {meta.error.str()}")
            partitions += [TopicPartition(name, p, OFFSET_BEGINNING) for p in meta.partitions]
        # no watermark requests (two round trips a partition): each partition is read from its
        # beginning until the consumer says it reached the end (a partition EOF event)
        consumer.assign(partitions)
        read = _drain(consumer, {(tp.topic, tp.partition) for tp in partitions}, timeout)
    finally:
        consumer.close()
    return {
        spec: [event for (topic, _), events in sorted(read.items()) if topic == name for event in events]
        for name, spec in names.items()
    }


def _drain(consumer: Consumer, partitions: set[tuple[str, int]], timeout: float) -> dict[tuple[str, int], list[Any]]:
    """Each partition's events until its end (as of when the consumer reached it)."""
    by_partition: dict[tuple[str, int], list[Any]] = {tp: [] for tp in partitions}
    done: set[tuple[str, int]] = set()
    deadline = utc_now().timestamp() + timeout
    while len(done) < len(partitions):
        if utc_now().timestamp() > deadline:
            raise KafkaUnavailable(f"timed out reading topics; partitions done {sorted(done)} of {sorted(partitions)}")
        for raw in take(consumer, 1000, timeout=0.5):
            error = raw.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                done.add((raw.topic() or "", raw.partition() or 0))
                continue
            msg = _received(raw, "reader")
            if msg is None:
                continue
            tp = (msg.topic, msg.partition)
            if tp in done:
                continue  # appended after the end this read stops at
            try:
                by_partition[tp].extend(decode_all(msg.value))
            except SchemaError as err:
                by_partition[tp].append(err)
    return by_partition


def group_lag(settings: Settings, run: str, group: str, specs: Sequence[TopicSpec], timeout: float = 10.0) -> int:
    """How many messages of the run's ``specs`` topics consumer ``group`` has not committed yet.

    Per partition: high watermark minus the committed offset (or minus the low watermark when the
    group committed nothing there). A missing topic counts as no lag.
    """
    consumer = Consumer({**client_config(settings), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = []
        for name in (topic_name(settings.topic_prefix, run, spec) for spec in specs):
            meta = consumer.list_topics(name, timeout=timeout).topics.get(name)
            if meta is None or meta.error is not None:
                continue
            partitions += [TopicPartition(name, p) for p in meta.partitions]
        lag = 0
        for tp in consumer.committed(partitions, timeout=timeout) if partitions else []:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            lag += hi - (tp.offset if tp.offset >= 0 else lo)
        return lag
    except KafkaException as err:
        raise KafkaUnavailable(f"cannot read the lag of consumer group {group}: {err}") from err
    finally:
        consumer.close()


def group_backlog(settings: Settings, run: str, group: str, specs: Sequence[TopicSpec], timeout: float = 10.0) -> int:
    """How many events of the run's ``specs`` topics consumer ``group`` has not committed yet.

    Unlike :func:`group_lag`, offsets taken by transaction markers (a transactional producer
    ends every transaction with one; no message is read there) do not count: each partition the
    group is behind on is read from its committed offset to its end.
    """
    return group_progress(settings, run, group, specs, timeout)[1]


@dataclass(frozen=True)
class GroupMember:
    """One member of a consumer group as the group coordinator describes it."""

    member_id: str
    client_id: str
    partitions: frozenset[tuple[str, int]]  # (topic, partition) assigned to it


def group_members(settings: Settings, group: str, timeout: float = 10.0) -> list[GroupMember]:
    """The members of consumer ``group`` and the partitions each was assigned ([] when it has
    none, e.g. while it rebalances)."""
    admin = admin_client(settings)
    try:
        described = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout=timeout)
    except (KafkaException, TimeoutError) as err:  # the future times out while the broker is away
        raise KafkaUnavailable(f"cannot describe consumer group {group}: {err!r}") from err
    return [GroupMember(m.member_id, m.client_id, _held(m.assignment.topic_partitions)) for m in described.members]


def _held(partitions: Iterable[TopicPartition]) -> frozenset[tuple[str, int]]:
    return frozenset((tp.topic, tp.partition) for tp in partitions)


def group_progress(
    settings: Settings,
    run: str,
    group: str,
    specs: Sequence[TopicSpec],
    timeout: float = 10.0,
    only: Iterable[tuple[str, int]] | None = None,
) -> tuple[int, int]:
    """(offsets committed in total, events not committed yet) of consumer ``group`` on the run's
    ``specs`` topics (``only`` those (topic, partition) if given: e.g. one member's share):
    a group behind whose committed total does not move is stalled."""
    kept = None if only is None else set(only)
    consumer = Consumer(
        {
            **client_config(settings),  # this service's login (with security)
            "group.id": group,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = []
        for name in (topic_name(settings.topic_prefix, run, spec) for spec in specs):
            meta = consumer.list_topics(name, timeout=timeout).topics.get(name)
            if meta is not None and meta.error is None:
                partitions += [TopicPartition(name, p) for p in meta.partitions if kept is None or (name, p) in kept]
        ends: dict[tuple[str, int], int] = {}
        starts = []
        committed = 0
        for tp in consumer.committed(partitions, timeout=timeout) if partitions else []:
            lo, hi = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
            start = tp.offset if tp.offset >= 0 else lo
            committed += max(tp.offset, 0)
            if hi > start:
                ends[(tp.topic, tp.partition)] = hi
                starts.append(TopicPartition(tp.topic, tp.partition, start))
        if not starts:
            return committed, 0
        consumer.assign(starts)
        return committed, sum(len(events) for events in _drain(consumer, set(ends), timeout).values())
    except KafkaException as err:
        raise KafkaUnavailable(f"cannot read the progress of consumer group {group}: {err}") from err
    finally:
        consumer.close()
