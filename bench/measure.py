"""What the benchmarks measure with: a command's wall time (and when each output line came), the
peak memory and CPU time of every process it starts (sampled from ``/proc``), and what a run's
topics hold (messages, bytes, events, produce timestamps)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """One process seen while a command ran: its command line, peak RSS and last CPU seconds."""

    pid: int
    cmdline: str
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0

    @property
    def processor(self) -> bool:
        """A simulation's processor (``redblue --await-command``, then told to ``process``)."""
        return "--await-command" in self.cmdline or " process " in self.cmdline


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _sample(pid: int, into: dict[int, Proc]) -> None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return
    rss = next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)
    proc = into.setdefault(pid, Proc(pid, cmd))
    proc.cmdline = cmd or proc.cmdline  # the latest (bin/redblue, a shell script, execs Python); a zombie's is empty
    proc.peak_rss_mb = max(proc.peak_rss_mb, rss)
    proc.cpu_s = (int(stat[11]) + int(stat[12])) / CLOCK_TICKS  # utime + stime
    for child in _children(pid):
        _sample(child, into)


@dataclass
class Command:
    """A finished command: wall seconds, output lines with the second each appeared, processes."""

    wall_s: float
    returncode: int
    lines: list[tuple[float, str]]
    procs: list[Proc] = field(default_factory=list)

    def first(self, text: str) -> float | None:
        """When the first line containing ``text`` appeared (seconds after start)."""
        return next((t for t, line in self.lines if text in line), None)


def run(args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None, hz: float = 10.0) -> Command:
    """Run ``args``, sampling its process tree ``hz`` times a second, until it exits."""
    began = time.monotonic()
    child = subprocess.Popen(
        list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True, bufsize=1
    )
    procs: dict[int, Proc] = {}
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            for part in line.replace("\r", "\n").splitlines():
                lines.append((time.monotonic() - began, part))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while child.poll() is None:
        _sample(child.pid, procs)
        time.sleep(1 / hz)
    reader.join()
    return Command(time.monotonic() - began, child.returncode, lines, sorted(procs.values(), key=lambda p: p.pid))


@dataclass
class TopicStats:
    """A run topic: messages, bytes, events (a batch counts its events) and produce times."""

    messages: int
    bytes: int
    events: int
    first_ts: float
    last_ts: float
    payloads: list[tuple[bytes | None, bytes]]  # (key, value) of every message in partition order


def topic_stats(config: dict[str, str], topic: str) -> TopicStats:
    """``topic``'s messages and their time span, read with the client settings ``config``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from redblue.adapters.kafka import take
    from schemas import decode_all

    consumer = Consumer(
        {
            **config,
            "group.id": f"bench-{os.getpid()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # transaction markers take offsets no message is read at
        }
    )
    payloads: list[tuple[bytes | None, bytes]] = []
    events, first, last = 0, float("inf"), 0.0
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for p in sorted(partitions):
            lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if hi <= lo:
                continue
            consumer.assign([TopicPartition(topic, p, lo)])
            done = False
            while not done:
                for msg in take(consumer, 1000, timeout=5):  # not consume(): it waits the whole timeout
                    error = msg.error()
                    if error is not None:
                        done = done or error.code() == KafkaError._PARTITION_EOF
                        continue
                    done = done or (msg.offset() or 0) + 1 >= hi
                    value: Any = msg.value()
                    payloads.append((msg.key(), value))
                    events += len(decode_all(value))
                    stamp = msg.timestamp()[1] / 1000
                    first, last = min(first, stamp), max(last, stamp)
    finally:
        consumer.close()
    return TopicStats(len(payloads), sum(len(v) for _, v in payloads), events, first, last, payloads)
