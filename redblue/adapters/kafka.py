"""The Kafka adapter: the only module that imports ``confluent_kafka``.

It creates and deletes a run's topics, produces validated events, runs consume loops that
send anything undecodable to the dead-letter topic (with the reason and the original bytes),
and reads a whole topic back for reports.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from redblue.core.clock import Clock, utc_now
from redblue.core.errors import RedblueError
from redblue.core.retry import Backoff, retrying
from redblue.core.settings import Settings
from schemas import TOPICS, DeadLetter, Event, SchemaError, TopicSpec, decode, encode, topic_name
from schemas.topics import DEADLETTER

log = logging.getLogger(__name__)


class KafkaUnavailable(RedblueError):
    """The broker did not answer or refused an operation."""


@dataclass(frozen=True)
class Outgoing:
    """An event to produce: where, with which key."""

    spec: TopicSpec
    key: str
    event: Event


def _admin(settings: Settings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.kafka_bootstrap})


def check_broker(settings: Settings, timeout: float = 5.0) -> None:
    """Raise :class:`KafkaUnavailable` with a hint unless the broker answers within ``timeout``."""
    try:
        _admin(settings).list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaUnavailable(
            f"Kafka at {settings.kafka_bootstrap} is not reachable ({err}); start the stack: bin/redblue stack up"
        ) from err


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request (quietly: no retry logs)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def run_topics(settings: Settings, run: str, specs: Iterable[TopicSpec] = TOPICS) -> dict[str, TopicSpec]:
    return {topic_name(settings.topic_prefix, run, spec): spec for spec in specs}


def ensure_topics(settings: Settings, run: str) -> list[str]:
    """Create the run's topics (explicitly; the broker does not auto-create). Existing ones are kept."""
    check_broker(settings)
    wanted = run_topics(settings, run)
    admin = _admin(settings)  # keep a reference until the futures resolve
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=spec.partitions, replication_factor=1) for name, spec in wanted.items()]
    )
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailable(f"cannot create topic {name}: {err}") from err
    return list(wanted)


def delete_run(
    settings: Settings, run: str, extra_prefixes: Sequence[str] = (), groups: Sequence[str] = ()
) -> list[str]:
    """Delete every topic of ``run`` (and of ``extra_prefixes``, e.g. the processor's internal
    ones) and the consumer ``groups`` that read them, so a run id can start again from nothing."""
    check_broker(settings)
    admin = _admin(settings)
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
    if not groups:
        return
    for group, future in admin.delete_consumer_groups(list(groups), request_timeout=30).items():
        try:
            future.result(timeout=30)
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
    """Produces events of one run; every event is validated by :func:`schemas.encode` first."""

    def __init__(self, settings: Settings, run: str, transactional_id: str | None = None) -> None:
        self._settings = settings
        self._run = run
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": settings.kafka_bootstrap,
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

    def begin(self) -> None:
        """Open a transaction (a producer made with a ``transactional_id``)."""
        self._producer.begin_transaction()

    def commit_with(self, consumer: Consumer) -> None:
        """Commit the open transaction together with ``consumer``'s positions: all of it or nothing."""
        try:
            positions = consumer.position(consumer.assignment())
            self._producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(30)
        except KafkaException as err:
            if isinstance(err.args[0], KafkaError) and err.args[0].txn_requires_abort():
                self._producer.abort_transaction(30)
            raise KafkaUnavailable(f"transaction not committed (its output is discarded): {err}") from err

    def topic(self, spec: TopicSpec) -> str:
        return topic_name(self._settings.topic_prefix, self._run, spec)

    def send(self, out: Outgoing) -> None:
        self.send_raw(out.spec, out.key, encode(out.event))

    def send_raw(self, spec: TopicSpec, key: str | None, value: bytes) -> None:
        """Produce bytes as they are (tests use it to inject malformed messages)."""
        while True:
            try:
                self._producer.produce(self.topic(spec), value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err.str()}")

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything sent so far is acknowledged; raise if anything failed."""
        left = self._producer.flush(timeout)
        if left or self._errors:
            raise KafkaUnavailable(f"{left} message(s) not delivered; errors: {self._errors[:3]}")


Handler = Callable[[Event], list[Outgoing]]


@dataclass(frozen=True)
class Received:
    """A consumed message, translated out of confluent-kafka's types."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


_LEADER_ELECTION = Backoff(attempts=8, first=0.25, most=2.0)  # about 8 s for a new topic's leaders

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


def commit(consumer: Consumer, stage: str) -> None:
    """Commit the consumed positions synchronously; a transient failure is logged and left to the
    next commit (which covers the same positions), a lasting one raises :class:`KafkaUnavailable`.

    A commit lost to a rebalance means those messages are delivered again: at-least-once, and
    every handler is idempotent.
    """
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as err:
        error = err.args[0]
        if not isinstance(error, KafkaError) or not is_transient(error):
            raise KafkaUnavailable(f"{stage}: Kafka commit failed: {err}") from err
        _transient_log.warning(stage, error, "commit not done")


@dataclass
class ConsumerStats:
    consumed: int = 0
    dead_lettered: int = 0


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
    transactional_id: str | None = None,
) -> ConsumerStats:
    """Consume ``specs`` until ``stop`` is set: decode, handle, produce the results, commit.

    With ``transactional_id`` each batch's output and offsets are one Kafka transaction:
    a process killed mid-batch leaves none of that batch's output visible (to ``read_committed``
    readers: every consumer here) and a restarted one with the same id fences it.

    A message that fails its contract goes to the run's dead-letter topic with the reason and
    the original bytes; offsets are committed only after the handler's output is acknowledged
    (at-least-once; the handlers are idempotent). With ``from_start`` every start re-reads the
    topics from their beginning, for a projection that keeps working state in memory and must
    rebuild it after a restart.
    """
    producer = EventProducer(settings, run, transactional_id)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([producer.topic(s) for s in specs], on_assign=_rewind if from_start else _keep)
    stats = ConsumerStats()
    try:
        while not stop.is_set():
            handled = 0
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                received = _received(msg, stage)
                if received is not None:
                    if transactional_id is not None and not handled:
                        producer.begin()
                    _one(received, producer, handle, expect, stage, stats, clock)
                    handled += 1
            if handled and transactional_id is not None:
                producer.commit_with(consumer)
            elif handled:  # a batch of error events or EOF notices has nothing to commit
                producer.flush()
                commit(consumer, stage)
    finally:
        consumer.close()
    return stats


def _rewind(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    for partition in partitions:
        partition.offset = OFFSET_BEGINNING
    consumer.assign(partitions)


def _keep(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Resume from the committed offsets (the default)."""


def _one(
    msg: Received,
    producer: EventProducer,
    handle: Handler,
    expect: tuple[type[Event], ...],
    stage: str,
    stats: ConsumerStats,
    clock: Clock,
) -> None:
    stats.consumed += 1
    try:
        event = decode(msg.value, expect)
    except SchemaError as err:
        stats.dead_lettered += 1
        producer.send(Outgoing(DEADLETTER, msg.topic, dead_letter(msg, stage, str(err), clock)))
        log.warning("%s: dead-lettered %s[%d]@%d: %s", stage, msg.topic, msg.partition, msg.offset, err)
        return
    for out in handle(event):
        producer.send(out)


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

    Returns decoded events; undecodable messages come back as :class:`SchemaError` instances.
    """
    name = topic_name(settings.topic_prefix, run, spec)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"redblue-reader-{run}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # transaction markers take offsets no message is read at
        }
    )
    try:
        meta = consumer.list_topics(name, timeout=10).topics[name]
        ends = {p: _watermarks(consumer, TopicPartition(name, p)) for p in meta.partitions}
        wanted = {p: hi for p, (lo, hi) in ends.items() if hi > lo}
        consumer.assign([TopicPartition(name, p, ends[p][0]) for p in wanted])
        return _drain(consumer, wanted, timeout)
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    """A partition's (low, high) offsets; a topic created a moment ago may have no leader yet: retried."""

    def transient(err: BaseException) -> bool:
        return isinstance(err, KafkaException) and isinstance(err.args[0], KafkaError) and is_transient(err.args[0])

    offsets: tuple[int, int] = retrying(
        lambda: consumer.get_watermark_offsets(partition, timeout=10), transient, _LEADER_ELECTION
    )
    return offsets


def _drain(consumer: Consumer, ends: dict[int, int], timeout: float) -> list[Any]:
    by_partition: dict[int, list[Any]] = {p: [] for p in ends}
    done: set[int] = set()
    deadline = utc_now().timestamp() + timeout
    while len(done) < len(ends):
        if utc_now().timestamp() > deadline:
            raise KafkaUnavailable(f"timed out reading topic; partitions done {sorted(done)} of {sorted(ends)}")
        for raw in consumer.consume(num_messages=1000, timeout=0.5):
            error = raw.error()
            if error is not None and error.code() == KafkaError._PARTITION_EOF and raw.partition() in ends:
                done.add(raw.partition() or 0)
                continue
            msg = _received(raw, "reader")
            if msg is None:
                continue
            try:
                by_partition[msg.partition].append(decode(msg.value))
            except SchemaError as err:
                by_partition[msg.partition].append(err)
            if msg.offset + 1 >= ends[msg.partition]:
                done.add(msg.partition)
    return [event for p in sorted(by_partition) for event in by_partition[p]]


def group_lag(settings: Settings, run: str, group: str, specs: Sequence[TopicSpec], timeout: float = 10.0) -> int:
    """How many messages of the run's ``specs`` topics consumer ``group`` has not committed yet.

    Per partition: high watermark minus the committed offset (or minus the low watermark when the
    group committed nothing there). A missing topic counts as no lag.
    """
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
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
