"""Processes of the local stack: pid files, spawning, stopping, waiting until a server answers.

Generic: nothing here knows Kafka or Redis. A :class:`Service` says where a server listens, its
files and how to probe and start it; :func:`service_up` / :func:`service_down` start only what
is not running and stop only what ``up`` started (by pid file).
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from redblue.core.errors import RedblueError

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Out = Callable[[str], object]


class StackError(RedblueError):
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
class Service:
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
    ready_timeout: float = READY_TIMEOUT
    group: bool = False  # stop the whole process group (a server that runs its workers as children)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


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
    pid = running_pid(pid_file, marker)
    if pid is None:
        pid_file.unlink(missing_ok=True)
    return pid


def running_pid(pid_file: Path, marker: str) -> int | None:
    """:func:`read_pid` without removing anything: for waiting on a pid file a daemon is writing
    (read a moment after it was created, it is empty: removing it lost the daemon's pid)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid > 0 and pid_alive(pid) and _runs(pid, marker) else None


def command_line(pid_file: Path) -> list[str] | None:
    """The command line of the live process in ``pid_file`` (from /proc), or None."""
    try:
        pid = int(pid_file.read_text().strip())
        if pid <= 0 or not pid_alive(pid):
            return None
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
    except (OSError, ValueError):
        return None


def _runs(pid: int, marker: str) -> bool:
    """False when /proc shows that ``pid`` runs a command line without ``marker`` (a reused pid)."""
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS) or not readable: trust the pid file
    return marker.encode() in cmdline


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, group: bool = False) -> None:
    """SIGTERM ``pid`` (with ``group``: its process group), wait up to ``timeout`` seconds, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.1)
    raise StackError(f"process {pid} survived SIGKILL")


def spawn_detached(cmd: list[str], output: Path, cwd: Path, env: dict[str, str] | None = None) -> int:
    """Start ``cmd`` in its own session (it outlives us; its pid is its process group's id),
    output appended to ``output``; its pid."""
    with output.open("ab") as sink:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            env=env,
        )
    # Not ours to wait for (pid_alive reaps it if it dies while we run); this keeps Popen from
    # warning "subprocess is still running" when the object is collected.
    proc.returncode = 0
    return proc.pid


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


@contextmanager
def locked(stack_home: Path) -> Iterator[None]:
    """Serialise ``up``/``down`` between processes sharing one stack directory."""
    lock = stack_home / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def service_up(service: Service, out: Out) -> None:
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


def service_down(service: Service, out: Out) -> None:
    pid = read_pid(service.pid_file, service.marker)
    if pid is None:
        if is_local(service.host) and port_in_use(service.host, service.port):
            out(f"{service.name}: {service.address} is served by a process not started by redblue; leaving it")
        else:
            out(f"{service.name}: not running")
        return
    out(f"{service.name}: stopping pid {pid}…")
    stop_pid(pid, group=service.group)
    service.pid_file.unlink(missing_ok=True)
    out(f"{service.name}: stopped (data kept)")


def service_status(service: Service) -> ComponentStatus:
    pid = read_pid(service.pid_file, service.marker)
    if pid is not None:
        return ComponentStatus(service.name, "running", service.address, pid, service.log_file)
    state: Literal["running", "stopped"] = "running" if port_in_use(service.host, service.port) else "stopped"
    if not is_local(service.host):
        return ComponentStatus(service.name, state, service.address, note="not local, not managed by redblue")
    if state == "running":
        return ComponentStatus(service.name, state, service.address, note="not started by redblue")
    return ComponentStatus(service.name, state, service.address, log_file=service.log_file)


def is_local(host: str) -> bool:
    """True for loopback addresses, where ``up`` starts the service itself."""
    return host in LOCAL_HOSTS


def run_captured(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a short command, its stdout and stderr captured together."""
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


def wait_ready(service: Service, pid: int, extra_log: Path | None = None) -> None:
    """Wait until ``service`` answers; on death or timeout stop it and raise with the log's tail."""
    started = time.monotonic()
    while time.monotonic() - started < service.ready_timeout:
        if not pid_alive(pid):
            service.pid_file.unlink(missing_ok=True)
            raise StackError(
                f"{service.name}: exited during start-up; see {service.log_file}\n{_logs(service, extra_log)}"
            )
        if port_in_use(service.host, service.port) and service.answers():
            return
        time.sleep(0.3)
    stop_pid(pid, group=service.group)
    service.pid_file.unlink(missing_ok=True)
    raise StackError(
        f"{service.name}: not ready after {service.ready_timeout:.0f} s (stopped it again); see {service.log_file}\n"
        + _logs(service, extra_log)
    )


def _logs(service: Service, extra_log: Path | None) -> str:
    parts = [(service.log_file, tail(service.log_file))]
    if extra_log is not None:
        parts.append((extra_log, tail(extra_log, 10)))
    return "\n".join(f"--- last lines of {path}:\n{text}" for path, text in parts if text)
