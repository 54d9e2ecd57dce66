"""Redis in the local stack: Debian's ``redis-server`` (installed with apt when missing and allowed).

Files under the stack's directory: ``redis/dump.rdb``, ``redis.log``, ``redis.pid``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from urllib.parse import urlsplit

from redblue.core.settings import Settings
from redblue.stack.credentials import ensure_credentials
from redblue.stack.process import Out, Service, StackError, run_captured, running_pid, tail, wait_ready, write_private


def redis_address(url: str) -> tuple[str, int]:
    """Host and port of a ``redis://host:port/db`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Redis answers at ``host:port``: PONG, or "NOAUTH" from one that wants a login."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


# the scorer's Lua scripts as redis-py runs them, and MULTI/EXEC (a revised score's sums)
SCRIPTS = "+evalsha +eval +script|load +script|exists +multi +exec +discard"


def render_acl(settings: Settings) -> str:
    """The ACL file of the stack's Redis: the default user off, one user per service that uses Redis.

    - ``admin``: everything (stack and run setup, resetting a run's keys);
    - ``scorer``: reads and writes the leaderboard's keys (``<prefix>:*``), runs its Lua scripts;
      no dangerous or keyless admin commands (FLUSHALL, CONFIG, KEYS, ...);
    - ``leaderboard`` (the CLI, the web page): read commands on the leaderboard's keys only.
    """
    prefix = settings.redis_prefix
    keys = f"~{_acl_glob(prefix)}:*"
    rules = {
        "admin": "~* &* +@all",
        "scorer": f"{keys} resetchannels -@all +@read +@write +@connection {SCRIPTS} -@dangerous",
        "leaderboard": f"%R{keys} resetchannels -@all +@read +@connection -@dangerous",
    }
    lines = ["user default off resetpass -@all"]  # an ACL file has no comments: redis.py writes it on every start
    for user, rule in rules.items():
        digest = hashlib.sha256(settings.stack_login("redis", user).password.get_secret_value().encode()).hexdigest()
        lines.append(f"user {user} on resetpass #{digest} {rule}")
    return "\n".join(lines) + "\n"


def _acl_glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def redis_service(settings: Settings) -> Service:
    host, port = redis_address(settings.redis_url)
    state = settings.stack_home / "redis"
    return Service(
        name="redis",
        host=host,
        port=port,
        env_var="REDBLUE_REDIS_URL",
        pid_file=state / "redis.pid",
        log_file=state / "redis.log",
        marker="redis-server",
        answers=lambda: redis_ping(host, port),
        start=lambda out: start_redis(settings, out),
    )


def _require_redis_server(out: Out) -> str:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        out("redis: redis-server is missing; installing the Debian package redis-server…")
        # wait for another apt (e.g. an unattended upgrade) instead of failing on its lock
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=300"]
        for cmd in ([*apt, "update", "-qq"], [*apt, "install", "-y", "-qq", "redis-server"]):
            done = run_captured(cmd)
            if done.returncode != 0:
                raise StackError(f"redis: '{' '.join(cmd[2:])}' failed:\n{done.stdout[-2000:]}")
        if (found := shutil.which("redis-server")) is not None:
            return found
    raise StackError(
        "redis: redis-server is not installed. Install it, e.g. 'apt-get install redis-server' (Debian/Ubuntu) "
        "or 'brew install redis' (macOS)"
    )


def start_redis(settings: Settings, out: Out) -> None:
    """Start the stack's Redis; with security on, with an ACL file of per-service users (default user off)."""
    settings = ensure_credentials(settings, out)
    service = redis_service(settings)
    server = _require_redis_server(out)
    state = service.pid_file.parent
    state.mkdir(parents=True, exist_ok=True)
    args = ["--port", str(service.port), "--bind", "127.0.0.1", "-::1", "--dir", str(state)]
    if settings.security:
        write_private(state / "users.acl", render_acl(settings))
        args += ["--aclfile", str(state / "users.acl")]
        out(f"redis: starting on {service.address}, users admin, scorer, leaderboard (log: {service.log_file})")
    else:
        out(f"redis: starting on {service.address} WITHOUT authentication (log: {service.log_file})")
    files = ["--pidfile", str(service.pid_file), "--logfile", str(service.log_file), "--daemonize", "yes"]
    done = run_captured([server, *args, *files])
    if done.returncode != 0:
        raise StackError(f"redis: redis-server failed to start:\n{done.stdout[-2000:]}\n{tail(service.log_file)}")
    deadline = time.monotonic() + 10
    while (pid := running_pid(service.pid_file, service.marker)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid is None:
        raise StackError(f"redis: did not start; see {service.log_file}\n{tail(service.log_file)}")
    wait_ready(service, pid)
