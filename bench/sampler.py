"""A small sampling profiler of CPU time for every thread of this process (Python 3.12's cProfile
profiles one thread at a time and no other profiler is installed in the environment).

``with Sampler() as s: ...`` looks at every thread's stack ``hz`` times a second and weighs each
look by the CPU time the thread used since the previous one (its ``pthread`` CPU clock), so a
thread waiting in C (a socket, a lock, librdkafka) counts for nothing; ``s.report()`` lists, per
thread, the functions most often on top of the stack (self) and anywhere on it (total), as
shares of that thread's sampled CPU time.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from types import FrameType, TracebackType


class Sampler:
    def __init__(self, hz: float = 500.0) -> None:
        self._interval = 1.0 / hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self.own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.total: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.samples: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        used: dict[int, int] = {}  # per thread, its CPU nanoseconds at the previous look
        while not self._stop.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                try:
                    now = time.clock_gettime_ns(time.pthread_getcpuclockid(ident))
                except OSError:  # the thread has just ended
                    continue
                spent, used[ident] = now - used.get(ident, now), now
                if spent > 0:
                    self._record(names.get(ident, str(ident)), frame, spent)
            time.sleep(self._interval)

    def _record(self, thread: str, frame: FrameType | None, weight: int) -> None:
        self.samples[thread] += weight
        seen: set[str] = set()
        first = True
        while frame is not None:
            code = frame.f_code
            where = f"{code.co_filename.rsplit('site-packages/', 1)[-1].rsplit('/wt-12/', 1)[-1]}:{code.co_name}"
            if first:
                self.own[thread][where] += weight
                first = False
            if where not in seen:
                self.total[thread][where] += weight
                seen.add(where)
            frame = frame.f_back

    def report(self, threads: list[str] | None = None, top: int = 12) -> str:
        lines = []
        for thread in threads or sorted(self.samples):
            n = self.samples[thread]
            if not n:
                continue
            lines.append(f"thread {thread}: {n / 1e9:.2f} s of CPU sampled")
            lines.append(f"  {'self %':>7} {'total %':>7}  function")
            for where, count in self.own[thread].most_common(top):
                lines.append(f"  {100 * count / n:7.1f} {100 * self.total[thread][where] / n:7.1f}  {where}")
        return "\n".join(lines)
