"""The local stack behind ``redblue stack up|down|status``: Kafka, Redis and MLflow's store.

No Docker needed. Kafka runs from Maven Central jars on the local JVM (single-node KRaft),
Redis is the system's ``redis-server``, MLflow is a sqlite store (no server process). Everything
lives under ``settings.home`` (default ``~/.cache/redblue``), outside the clone::

    kafka/<version>/lib/     the broker's jars, fetched once per machine (``.complete`` marker)
    stack/kafka/             server.properties, log4j2.properties, data/, logs/, kafka.pid
    stack/redis/             dump.rdb, redis.log, redis.pid
    stack/mlflow/            mlflow.db, artifacts/ (initialised once: ``.complete`` marker)

``up`` starts only what is not running, ``down`` stops only what ``up`` started (by pid file)
and keeps the data. When the settings point Kafka or Redis at another host (Docker Compose,
a shared cluster), nothing is started for it: ``up`` only checks that it answers.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from xml.etree import ElementTree

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from redblue.settings import KAFKA_CONTROLLER_PORT, KAFKA_PORT, Settings

KAFKA_FILES = Path(__file__).resolve().parent.parent / "stack" / "kafka"
POM = KAFKA_FILES / "pom.xml"
LOG4J_CONFIG = KAFKA_FILES / "log4j2.properties"
MLFLOW_EXPERIMENT = "redblue"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Out = Callable[[str], object]


class StackError(RuntimeError):
    """A part of the stack cannot be started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class ComponentStatus:
    """One part of the stack as ``status`` sees it. ``pid`` is set only for processes ``up`` started."""

    name: str
    state: Literal["running", "stopped"]
    address: str
    pid: int | None = None
    log_file: Path | None = None
    note: str = ""


@dataclass(frozen=True)
class _Service:
    """A server process of the stack: where it listens, its files, how to probe and start it."""

    name: str
    host: str
    port: int
    env_var: str
    pid_file: Path
    log_file: Path
    marker: str  # part of the process's command line, to tell our process from a reused pid
    answers: Callable[[], bool]
    start: Callable[[Out], None]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


# -- public API ---------------------------------------------------------------------------------


def up(settings: Settings, out: Out = print) -> None:
    """Start Kafka and Redis and initialise the MLflow store, unless already there (idempotent).

    Blocks until Kafka and Redis answer. Raises :class:`StackError` with a message that says
    what to install or which log to read when something cannot be started.
    """
    with _locked(settings):
        for service in _services(settings):
            _service_up(service, out)
        _mlflow_up(settings, out)


def down(settings: Settings, out: Out = print) -> None:
    """Stop the processes ``up`` started (SIGTERM, SIGKILL after 30 s); data stays in place."""
    with _locked(settings):
        for service in _services(settings):
            _service_down(service, out)
        out("mlflow: nothing to stop (a sqlite store, no server)")


def status(settings: Settings) -> list[ComponentStatus]:
    """Each part of the stack: running or stopped, its address, pid and log file."""
    return [*(_service_status(s) for s in _services(settings)), _mlflow_status(settings)]


@functools.cache
def kafka_version() -> str:
    """The Kafka version, read from ``stack/kafka/pom.xml``: the one place it is set."""
    found = (
        ElementTree.parse(POM)
        .getroot()
        .find("m:properties/m:kafka.version", {"m": "http://maven.apache.org/POM/4.0.0"})
    )
    if found is None or not found.text:
        raise StackError(f"{POM} has no <kafka.version> property")
    return found.text.strip()


# -- generic process handling -------------------------------------------------------------------


def port_in_use(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie (our own zombie children are reaped)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """True when /proc says ``pid`` has exited but is not reaped yet (a SIGKILLed JVM, briefly)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def read_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is ours, else None.

    A stale file (garbage, a dead process, or a pid reused by a process whose command line
    lacks ``marker``) is removed.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid = 0
    if pid > 0 and pid_alive(pid) and _runs(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _runs(pid: int, marker: str) -> bool:
    """False when /proc shows that ``pid`` runs a command line without ``marker`` (a reused pid)."""
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS) or not readable: trust the pid file
    return marker.encode() in cmdline


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise StackError(f"process {pid} survived SIGKILL")


def spawn_detached(cmd: list[str], output: Path, cwd: Path) -> int:
    """Start ``cmd`` in its own session (it outlives us), output appended to ``output``; its pid."""
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
    # Not ours to wait for (pid_alive reaps it if it dies while we run); this keeps Popen from
    # warning "subprocess is still running" when the object is collected.
    proc.returncode = 0
    return proc.pid


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@contextmanager
def _locked(settings: Settings) -> Iterator[None]:
    """Serialise ``up``/``down`` between processes sharing one home."""
    lock = settings.stack_home / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _service_up(service: _Service, out: Out) -> None:
    if not is_local(service.host):
        if not service.answers():
            raise StackError(f"{service.name}: {service.address} ({service.env_var}) does not answer")
        out(f"{service.name}: using {service.address} (not local, so not managed by redblue)")
        return
    pid = read_pid(service.pid_file, service.marker)
    if pid is not None:
        out(f"{service.name}: already running at {service.address} (pid {pid})")
        return
    if port_in_use(service.host, service.port):
        if not service.answers():
            raise StackError(
                f"{service.name}: port {service.port} on {service.host} is taken by another program that is not "
                f"{service.name}; stop it, or point {service.env_var} at another port"
            )
        out(f"{service.name}: {service.address} is already served by a {service.name} not started by redblue; using it")
        return
    service.start(out)


def _service_down(service: _Service, out: Out) -> None:
    pid = read_pid(service.pid_file, service.marker)
    if pid is None:
        if is_local(service.host) and port_in_use(service.host, service.port):
            out(f"{service.name}: {service.address} is served by a process not started by redblue; leaving it")
        else:
            out(f"{service.name}: not running")
        return
    out(f"{service.name}: stopping pid {pid}…")
    stop_pid(pid)
    service.pid_file.unlink(missing_ok=True)
    out(f"{service.name}: stopped (data kept)")


def _service_status(service: _Service) -> ComponentStatus:
    pid = read_pid(service.pid_file, service.marker)
    if pid is not None:
        return ComponentStatus(service.name, "running", service.address, pid, service.log_file)
    state: Literal["running", "stopped"] = "running" if port_in_use(service.host, service.port) else "stopped"
    if not is_local(service.host):
        return ComponentStatus(service.name, state, service.address, note="not local, not managed by redblue")
    if state == "running":
        return ComponentStatus(service.name, state, service.address, note="not started by redblue")
    return ComponentStatus(service.name, state, service.address, log_file=service.log_file)


def _services(settings: Settings) -> tuple[_Service, _Service]:
    return _kafka_service(settings), _redis_service(settings)


def is_local(host: str) -> bool:
    """True for loopback addresses, where ``up`` starts the service itself."""
    return host in LOCAL_HOSTS


# -- Kafka --------------------------------------------------------------------------------------


def kafka_address(bootstrap: str) -> tuple[str, int]:
    """Host and port of the first broker in a bootstrap string like ``127.0.0.1:19092``."""
    first = bootstrap.split(",", maxsplit=1)[0].strip().rpartition("://")[2]
    host, _, port = first.rpartition(":")
    return (host.strip("[]") or first, int(port) if port.isdigit() else 9092)


def controller_port(broker_port: int) -> int:
    """The KRaft controller listens next to the broker (19093 for the default 19092)."""
    return broker_port + KAFKA_CONTROLLER_PORT - KAFKA_PORT


def render_server_properties(data_dir: Path, port: int) -> str:
    """server.properties of the single-node KRaft broker on 127.0.0.1:``port``."""
    ctl = controller_port(port)
    return f"""# Written by redblue/stack.py on every start; edit that, not this.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctl}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one, without starting a JVM."""
    while (cid := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return cid


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``"1.8.0_292"`` is 8, ``"17.0.15"`` is 17)."""
    found = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def kafka_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _kafka_service(settings: Settings) -> _Service:
    host, port = kafka_address(settings.kafka_bootstrap)
    state = settings.stack_home / "kafka"
    return _Service(
        name="kafka",
        host=host,
        port=port,
        env_var="REDBLUE_KAFKA_BOOTSTRAP",
        pid_file=state / "kafka.pid",
        log_file=state / "logs" / "server.log",
        marker="kafka.Kafka",
        answers=lambda: kafka_answers(settings.kafka_bootstrap),
        start=lambda out: start_kafka(settings, out),
    )


def _require_java() -> str:
    java = shutil.which("java")
    found = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr if java else ""
    major = java_major(found)
    if java is None or major is None or major < 17:
        have = f" (found Java {major} at {java})" if java and major else ""
        raise StackError(
            f"kafka: Java 17 or newer is needed to run Kafka {kafka_version()}{have}. Install it, e.g. "
            "'apt-get install openjdk-17-jre-headless' (Debian/Ubuntu) or 'brew install openjdk@17' (macOS)"
        )
    return java


def fetch_kafka(settings: Settings, out: Out = print) -> Path:
    """The directory of the broker's jars, fetched with Maven from Maven Central once per machine."""
    root = settings.home / "kafka" / kafka_version()
    lib, marker = root / "lib", root / ".complete"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    if marker.exists() and marker.read_text().strip() == digest:
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "kafka: Apache Maven is needed once per machine to fetch Kafka's jars from Maven Central. "
            "Install it, e.g. 'apt-get install maven' (Debian/Ubuntu) or 'brew install maven' (macOS)"
        )
    out(f"kafka: fetching Apache Kafka {kafka_version()} from Maven Central… (once per machine, into {root})")
    partial = root / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(POM, root / "pom.xml")
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={partial}"]
    done = _run([mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(root / "pom.xml"), *goal])
    if done.returncode != 0:
        raise StackError(f"kafka: Maven could not fetch Kafka {kafka_version()}:\n{done.stdout[-3000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    marker.write_text(digest + "\n")
    return lib


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a short command, its stdout and stderr captured together."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def stop_kafka(settings: Settings, out: Out = print) -> None:
    """Stop the broker ``start_kafka`` (or ``up``) started for these settings; data stays."""
    _service_down(_kafka_service(settings), out)


def start_kafka(settings: Settings, out: Out = print) -> None:
    """Start the single-node broker of these settings (formatting fresh storage the first time)."""
    service = _kafka_service(settings)
    if port_in_use(service.host, controller_port(service.port)):
        raise StackError(f"kafka: controller port {controller_port(service.port)} is taken by another program")
    java, lib = _require_java(), fetch_kafka(settings, out)
    state = service.pid_file.parent
    data, logs, props = state / "data", state / "logs", state / "server.properties"
    logs.mkdir(parents=True, exist_ok=True)
    props.write_text(render_server_properties(data, service.port))
    shutil.copyfile(LOG4J_CONFIG, state / "log4j2.properties")
    classpath = ["-cp", f"{lib}/*"]
    if not (data / "meta.properties").exists():
        out("kafka: formatting KRaft storage (first start)")
        fmt = ["kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(props), "--ignore-formatted"]
        done = _run([java, *classpath, *fmt])
        if done.returncode != 0:
            raise StackError(f"kafka: formatting {data} failed:\n{done.stdout[-3000:]}")
    jvm = [
        "-Xms256m",
        "-Xmx512m",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={state / 'log4j2.properties'}",
    ]
    out(f"kafka: starting Kafka {kafka_version()} on {service.address} (log: {service.log_file})")
    pid = spawn_detached([java, *jvm, *classpath, "kafka.Kafka", str(props)], logs / "stdout.log", cwd=state)
    service.pid_file.write_text(f"{pid}\n")
    _wait_ready(service, pid, extra_log=logs / "stdout.log")


def _wait_ready(service: _Service, pid: int, extra_log: Path | None = None) -> None:
    """Wait until ``service`` answers; on death or timeout stop it and raise with the log's tail."""
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT:
        if not pid_alive(pid):
            service.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"{service.name}: exited during start-up; see {service.log_file}\n{_logs(service, extra_log)}"
            )
        if port_in_use(service.host, service.port) and service.answers():
            return
        time.sleep(0.3)
    stop_pid(pid)
    service.pid_file.unlink(missing_ok=True)
    raise StackError(
        f"{service.name}: not ready after {READY_TIMEOUT:.0f} s (stopped it again); see {service.log_file}\n"
        + _logs(service, extra_log)
    )


def _logs(service: _Service, extra_log: Path | None) -> str:
    parts = [(service.log_file, tail(service.log_file))]
    if extra_log is not None:
        parts.append((extra_log, tail(extra_log, 10)))
    return "\n".join(f"--- last lines of {path}:\n{text}" for path, text in parts if text)


# -- Redis --------------------------------------------------------------------------------------


def redis_address(url: str) -> tuple[str, int]:
    """Host and port of a ``redis://host:port/db`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis at ``host:port`` answers PING (without a password)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_service(settings: Settings) -> _Service:
    host, port = redis_address(settings.redis_url)
    state = settings.stack_home / "redis"
    return _Service(
        name="redis",
        host=host,
        port=port,
        env_var="REDBLUE_REDIS_URL",
        pid_file=state / "redis.pid",
        log_file=state / "redis.log",
        marker="redis-server",
        answers=lambda: redis_ping(host, port),
        start=lambda out: _start_redis(settings, out),
    )


def _require_redis_server(out: Out) -> str:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        out("redis: redis-server is missing; installing the Debian package redis-server…")
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
        for cmd in ([*apt, "update", "-qq"], [*apt, "install", "-y", "-qq", "redis-server"]):
            done = _run(cmd)
            if done.returncode != 0:
                raise StackError(f"redis: '{' '.join(cmd[2:])}' failed:\n{done.stdout[-2000:]}")
        if (found := shutil.which("redis-server")) is not None:
            return found
    raise StackError(
        "redis: redis-server is not installed. Install it, e.g. 'apt-get install redis-server' (Debian/Ubuntu) "
        "or 'brew install redis' (macOS)"
    )


def _start_redis(settings: Settings, out: Out) -> None:
    service = _redis_service(settings)
    server = _require_redis_server(out)
    state = service.pid_file.parent
    state.mkdir(parents=True, exist_ok=True)
    out(f"redis: starting on {service.address} (log: {service.log_file})")
    args = ["--port", str(service.port), "--bind", "127.0.0.1", "-::1", "--dir", str(state)]
    files = ["--pidfile", str(service.pid_file), "--logfile", str(service.log_file), "--daemonize", "yes"]
    done = _run([server, *args, *files])
    if done.returncode != 0:
        raise StackError(f"redis: redis-server failed to start:\n{done.stdout[-2000:]}\n{tail(service.log_file)}")
    deadline = time.monotonic() + 10
    while (pid := read_pid(service.pid_file, service.marker)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid is None:
        raise StackError(f"redis: did not start; see {service.log_file}\n{tail(service.log_file)}")
    _wait_ready(service, pid)


# -- MLflow -------------------------------------------------------------------------------------


def mlflow_dir(settings: Settings) -> Path:
    """The local MLflow store: ``mlflow.db`` and ``artifacts/``."""
    return settings.stack_home / "mlflow"


def _mlflow_up(settings: Settings, out: Out) -> None:
    uri = settings.mlflow_uri
    if uri.startswith(("http://", "https://")):
        if not _http_ok(uri.rstrip("/") + "/health"):
            raise StackError(f"mlflow: {uri} (REDBLUE_MLFLOW_TRACKING_URI) does not answer")
        out(f"mlflow: using the tracking server at {uri}")
        return
    if _mlflow_ready(settings):
        out(f"mlflow: store ready at {uri}")
    else:
        out(f"mlflow: initialising the store at {uri}…")
        _init_mlflow_store(uri, mlflow_dir(settings) / "artifacts")
        (mlflow_dir(settings) / ".complete").write_text(_mlflow_stamp(uri))
    out(f"mlflow: to browse it: mlflow ui --backend-store-uri {uri}")


def _mlflow_stamp(uri: str) -> str:
    return f"{uri} mlflow=={importlib.metadata.version('mlflow')}\n"


def _mlflow_ready(settings: Settings) -> bool:
    """True when ``up`` initialised this store with this MLflow version (and its db still exists)."""
    uri, marker = settings.mlflow_uri, mlflow_dir(settings) / ".complete"
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return False
    return marker.exists() and marker.read_text() == _mlflow_stamp(uri)


def _init_mlflow_store(uri: str, artifacts: Path) -> None:
    """Create the store's tables and the ``redblue`` experiment, its artifacts in ``artifacts``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(MLFLOW_EXPERIMENT) is None:
            client.create_experiment(MLFLOW_EXPERIMENT, artifact_location=artifacts.as_uri())
    except MlflowException as err:
        hint = f"if MLflow was upgraded, run: mlflow db upgrade {uri}"
        raise StackError(f"mlflow: cannot initialise the store at {uri} ({hint}):\n{err}") from err


def _mlflow_status(settings: Settings) -> ComponentStatus:
    uri = settings.mlflow_uri
    if uri.startswith(("http://", "https://")):
        answers = _http_ok(uri.rstrip("/") + "/health")
        return ComponentStatus("mlflow", "running" if answers else "stopped", uri, note="tracking server")
    note = f"a store, no server; UI: mlflow ui --backend-store-uri {uri}"
    return ComponentStatus("mlflow", "running" if _mlflow_ready(settings) else "stopped", uri, note=note)


def _http_ok(url: str, timeout: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(200 <= response.status < 300)
    except OSError:
        return False
