"""Kafka in the local stack: Apache Kafka's jars from Maven Central, one single-node KRaft broker.

Files under the stack's directory (``settings.stack_home``): ``kafka/server.properties``,
``log4j2.properties``, ``data/``, ``logs/``, ``kafka.pid``; the jars once per machine under
``<home>/kafka/<version>/lib`` (``.complete`` marker).
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from pydantic import SecretStr

from redblue.adapters.kafka import broker_answers
from redblue.adapters.kafka_security import upsert_users
from redblue.core.settings import KAFKA_CONTROLLER_PORT, KAFKA_PORT, Settings
from redblue.stack.credentials import ensure_credentials
from redblue.stack.process import (
    Out,
    Service,
    StackError,
    is_local,
    port_in_use,
    run_captured,
    service_down,
    spawn_detached,
    wait_ready,
    write_private,
)

KAFKA_FILES = Path(__file__).resolve().parents[2] / "stack" / "kafka"
POM = KAFKA_FILES / "pom.xml"
LOG4J_CONFIG = KAFKA_FILES / "log4j2.properties"
USERS_MARKER = ".redblue-users"  # in the data directory: formatted with the admin's SCRAM user


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


def kafka_address(bootstrap: str) -> tuple[str, int]:
    """Host and port of the first broker in a bootstrap string like ``127.0.0.1:19092``."""
    first = bootstrap.split(",", maxsplit=1)[0].strip().rpartition("://")[2]
    host, _, port = first.rpartition(":")
    return (host.strip("[]") or first, int(port) if port.isdigit() else 9092)


def controller_port(broker_port: int) -> int:
    """The KRaft controller listens next to the broker (19093 for the default 19092)."""
    return broker_port + KAFKA_CONTROLLER_PORT - KAFKA_PORT


@dataclass(frozen=True)
class KafkaSecrets:
    """The passwords the broker's own configuration carries: its admin (the broker half logs in to
    itself with it, SCRAM) and its controller listener's user (PLAIN)."""

    admin: SecretStr
    controller: SecretStr


def render_server_properties(data_dir: Path, port: int, secrets: KafkaSecrets | None = None) -> str:
    """server.properties of the single-node KRaft broker on 127.0.0.1:``port``.

    With ``secrets`` (the default stack): clients log in with SASL/SCRAM-SHA-512, the controller
    listener with SASL/PLAIN (KRaft controllers cannot use SCRAM), the StandardAuthorizer denies
    whatever no ACL allows, and only ``admin`` and ``controller`` are super users.
    """
    ctl = controller_port(port)
    common = f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctl}
controller.listener.names=CONTROLLER
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
    head = "# Written by redblue/stack/kafka.py on every start; edit that, not this.\n"
    if secrets is None:
        return (
            head
            + f"""listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
"""
            + common
        )
    admin, controller = secrets.admin.get_secret_value(), secrets.controller.get_secret_value()
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    plain_users = f'username="controller" password="{controller}" user_controller="{controller}"'
    return (
        head
        + f"""# Contains passwords: mode 0600, never print it.
listeners=BROKER://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}
advertised.listeners=BROKER://127.0.0.1:{port}
inter.broker.listener.name=BROKER
listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.broker.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.broker.scram-sha-512.sasl.jaas.config={scram} username="admin" password="{admin}";
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain} {plain_users};
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:controller
"""
        + common
    )


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


def kafka_service(settings: Settings) -> Service:
    host, port = kafka_address(settings.kafka_bootstrap)
    state = settings.stack_home / "kafka"
    return Service(
        name="kafka",
        host=host,
        port=port,
        env_var="REDBLUE_KAFKA_BOOTSTRAP",
        pid_file=state / "kafka.pid",
        log_file=state / "logs" / "server.log",
        marker="kafka.Kafka",
        answers=lambda: broker_answers(settings.for_service("admin")),
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
    done = run_captured([mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(root / "pom.xml"), *goal])
    if done.returncode != 0:
        raise StackError(f"kafka: Maven could not fetch Kafka {kafka_version()}:\n{done.stdout[-3000:]}")
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    marker.write_text(digest + "\n")
    return lib


def stop_kafka(settings: Settings, out: Out = print) -> None:
    """Stop the broker ``start_kafka`` (or ``up``) started for these settings; data stays."""
    service_down(kafka_service(settings), out)


def start_kafka(settings: Settings, out: Out = print) -> None:
    """Start the single-node broker of these settings (formatting fresh storage the first time).

    With security on, the stack's passwords are generated first if missing, the admin's SCRAM
    user is written at format time and every service's SCRAM user once the broker answers.
    """
    settings = ensure_credentials(settings, out)
    service = kafka_service(settings)
    if port_in_use(service.host, controller_port(service.port)):
        raise StackError(f"kafka: controller port {controller_port(service.port)} is taken by another program")
    java, lib = _require_java(), fetch_kafka(settings, out)
    state = service.pid_file.parent
    data, logs, props = state / "data", state / "logs", state / "server.properties"
    logs.mkdir(parents=True, exist_ok=True)
    secrets = kafka_secrets(settings)
    write_private(props, render_server_properties(data, service.port, secrets))
    shutil.copyfile(LOG4J_CONFIG, state / "log4j2.properties")
    classpath = ["-cp", f"{lib}/*"]
    if not (data / "meta.properties").exists():
        _format(java, classpath, props, data, secrets, out)
    elif secrets is not None and not (data / USERS_MARKER).exists():
        raise StackError(
            f"kafka: the data in {data} was formatted before the stack had users and passwords, so its admin "
            f"cannot log in. Its topics belong to runs, which are reproducible: stop Kafka (bin/redblue stack down), "
            f"remove {data} and run bin/redblue stack up again (or use a fresh REDBLUE_STACK_DIR)"
        )
    jvm = [
        "-Xms256m",
        "-Xmx512m",
        f"-Dkafka.logs.dir={logs}",
        f"-Dlog4j2.configurationFile={state / 'log4j2.properties'}",
    ]
    mode = "SASL/SCRAM and ACLs" if secrets else "WITHOUT authentication"
    out(f"kafka: starting Kafka {kafka_version()} on {service.address}, {mode} (log: {service.log_file})")
    pid = spawn_detached([java, *jvm, *classpath, "kafka.Kafka", str(props)], logs / "stdout.log", cwd=state)
    service.pid_file.write_text(f"{pid}\n")
    wait_ready(service, pid, extra_log=logs / "stdout.log")
    kafka_users_up(settings, out)


def kafka_users_up(settings: Settings, out: Out) -> None:
    """Create or update every service's SCRAM user (the admin's exists since format time)."""
    if not settings.security or not is_local(kafka_service(settings).host):
        return
    users = settings.kafka_service_passwords()
    upsert_users(settings.for_service("admin"), users)
    out(f"kafka: SCRAM users admin, {', '.join(sorted(users))} ready")


def kafka_secrets(settings: Settings) -> KafkaSecrets | None:
    """The broker's own passwords, or None when the stack runs without security."""
    if not settings.security:
        return None
    return KafkaSecrets(
        settings.stack_login("kafka", "admin").password, settings.stack_login("kafka", "controller").password
    )


def _format(java: str, classpath: list[str], props: Path, data: Path, secrets: KafkaSecrets | None, out: Out) -> None:
    out("kafka: formatting KRaft storage (first start)")
    fmt = ["kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(props), "--ignore-formatted"]
    hidden = ""
    if secrets is not None:
        hidden = secrets.admin.get_secret_value()
        fmt += ["--add-scram", f"SCRAM-SHA-512=[name=admin,password={hidden}]"]
    done = run_captured([java, *classpath, *fmt])
    if done.returncode != 0:
        shown = done.stdout.replace(hidden, "******") if hidden else done.stdout
        raise StackError(f"kafka: formatting {data} failed:\n{shown[-3000:]}")
    if secrets is not None:
        (data / USERS_MARKER).write_text("admin SCRAM-SHA-512 user written at format time\n")
