"""The pure parts of the local stack: rendered config, pid files, ports. No services started."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from redblue import stack
from redblue.core.settings import KAFKA_CONTROLLER_PORT, KAFKA_PORT, Settings
from redblue.stack import kafka as stack_kafka
from redblue.stack import process
from redblue.stack import redis as stack_redis


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A short-lived child whose command line carries a marker."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "rb-test-marker"])
    yield proc
    proc.kill()
    proc.wait()


def test_server_properties_single_node_kraft(tmp_path: Path) -> None:
    props = properties(stack_kafka.render_server_properties(tmp_path / "data", KAFKA_PORT))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{KAFKA_PORT},CONTROLLER://127.0.0.1:{KAFKA_CONTROLLER_PORT}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{KAFKA_PORT}"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{KAFKA_CONTROLLER_PORT}"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "3"
    assert props["offsets.topic.replication.factor"] == "1"


def test_controller_port_moves_with_the_broker_port() -> None:
    assert stack_kafka.controller_port(KAFKA_PORT) == KAFKA_CONTROLLER_PORT
    assert stack_kafka.controller_port(29092) == 29093


def test_cluster_id_is_a_kafka_uuid() -> None:
    cluster_id = stack_kafka.new_cluster_id()
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_kafka_version_comes_from_the_pom() -> None:
    assert stack_kafka.kafka_version().count(".") == 2
    assert f"<kafka.version>{stack_kafka.kafka_version()}</kafka.version>" in stack_kafka.POM.read_text()


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_292"', 8),
        ("bash: java: command not found", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert stack_kafka.java_major(output) == major


@pytest.mark.parametrize(
    ("bootstrap", "address"),
    [
        ("127.0.0.1:19092", ("127.0.0.1", 19092)),
        ("kafka:9092", ("kafka", 9092)),
        ("PLAINTEXT://localhost:29092,other:9092", ("localhost", 29092)),
        ("[::1]:19092", ("::1", 19092)),
    ],
)
def test_kafka_address(bootstrap: str, address: tuple[str, int]) -> None:
    assert stack_kafka.kafka_address(bootstrap) == address


def test_redis_address_and_locality() -> None:
    assert stack_redis.redis_address("redis://127.0.0.1:16379/0") == ("127.0.0.1", 16379)
    assert stack_redis.redis_address("redis://redis/0") == ("redis", 6379)
    assert process.is_local("localhost") and process.is_local("127.0.0.1")
    assert not process.is_local("kafka")


def test_port_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert process.port_in_use("127.0.0.1", port)
    assert not process.port_in_use("127.0.0.1", port)


def test_redis_ping_is_false_for_a_non_redis_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert not stack_redis.redis_ping("127.0.0.1", listener.getsockname()[1], timeout=0.2)


def test_read_pid_of_a_live_process(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{sleeper.pid}\n")
    assert process.read_pid(pid_file, "rb-test-marker") == sleeper.pid
    assert pid_file.exists()


def test_read_pid_removes_a_file_whose_pid_is_someone_else(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{sleeper.pid}\n")
    if not Path("/proc/self").exists():
        pytest.skip("command lines are only checked where /proc exists")
    assert process.read_pid(pid_file, "kafka.Kafka") is None
    assert not pid_file.exists()


def test_read_pid_removes_stale_and_garbage_files(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file = tmp_path / "x.pid"
    for content in (f"{dead.pid}\n", "not a pid\n", ""):
        pid_file.write_text(content)
        assert process.read_pid(pid_file, "python") is None
        assert not pid_file.exists()
    assert process.read_pid(pid_file, "python") is None  # no file at all


def test_stop_pid_terminates(sleeper: subprocess.Popen[bytes]) -> None:
    process.stop_pid(sleeper.pid, timeout=5)
    assert not process.pid_alive(sleeper.pid)


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    assert process.tail(log, 2) == "line 48\nline 49"
    assert process.tail(tmp_path / "missing.log") == ""


def fresh_settings(home: Path) -> Settings:
    return Settings(
        home=home,
        stack_dir=home / "stack",  # never the stack of REDBLUE_STACK_DIR (CI's)
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}",
    )


def test_status_and_down_on_a_fresh_home(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    states = {c.name: c for c in stack.status(settings)}
    assert {name: c.state for name, c in states.items()} == {
        "kafka": "stopped",
        "redis": "stopped",
        "mlflow": "stopped",
    }
    assert states["kafka"].log_file == tmp_path / "stack" / "kafka" / "logs" / "server.log"
    assert states["mlflow"].address == settings.mlflow_uri.removeprefix("http://")
    assert states["mlflow"].log_file == tmp_path / "stack" / "mlflow" / "logs" / "server.log"
    said: list[str] = []
    stack.down(settings, out=said.append)
    assert said == ["kafka: not running", "redis: not running", "mlflow: not running"]


def test_up_refuses_a_port_taken_by_something_else(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        settings = fresh_settings(tmp_path).model_copy(
            update={"redis_url": f"redis://127.0.0.1:{listener.getsockname()[1]}/0"}
        )
        with pytest.raises(stack.StackError, match="taken by another program that is not redis"):
            process.service_up(stack_redis.redis_service(settings), print)


def test_spawn_detached_runs_in_its_own_session(tmp_path: Path) -> None:
    script = "import os, sys, time; print(os.getsid(0) == os.getpid(), flush=True); time.sleep(30)"
    pid = process.spawn_detached([sys.executable, "-c", script, "rb-test-marker"], tmp_path / "out.log", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while "True" not in (tmp_path / "out.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (tmp_path / "out.log").read_text() == "True\n"
    finally:
        process.stop_pid(pid, timeout=5)
    assert not process.pid_alive(pid)


def test_waiting_for_a_daemon_s_pid_file_never_removes_it(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    """Redis creates its pid file, then writes it: read in between it is empty. The start's wait
    must not remove it (CI's brand-new stack once failed with "redis: did not start" that way)."""
    pid_file = tmp_path / "redis.pid"
    pid_file.write_text("")
    assert process.running_pid(pid_file, "rb-test-marker") is None
    assert pid_file.exists()
    pid_file.write_text(f"{sleeper.pid}\n")  # the daemon finished writing
    assert process.running_pid(pid_file, "rb-test-marker") == sleeper.pid
