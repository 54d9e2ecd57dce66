"""Run a module (``python bench/sampled.py REPORT -m module args...``) under :class:`sampler.Sampler`
and write the sampler's report to REPORT when the process exits (the benchmark wraps the
processor worker with it to profile its hot path)."""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sampler import Sampler


def main() -> None:
    report, flag, module, *args = sys.argv[1:]
    assert flag == "-m", "usage: sampled.py REPORT -m module [args...]"
    sampler = Sampler(hz=200)
    sampler.__enter__()

    def write() -> None:
        sampler.__exit__(None, None, None)
        Path(report).write_text(sampler.report(top=15))

    atexit.register(write)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
