"""Benchmark: redblue's throughput end to end through the real broker, side by side in one run with
(a) a raw confluent-kafka pipeline moving the same messages through the same four stages and
(b) backtrader running the same strategy on the same bars (in its own environment).

Workload (issue 12): one team trading the 20-day drift baseline (``arenas/drift.yaml``, no costs),
AAPL, AMZN, SAP, IBM, MSFT, 1999-04-01 + 1,000 trading days (5,300 bars). Also: all seven bundled
symbols 1999-04-01 to 2025-09-29 (each from its own first bar), the reference simulation (Ludwig
team models; needs ``redblue train``) and a sampled CPU profile of the hot path.

Run with the stack up: ``make bench`` (or ``python bench/throughput.py``). Prints markdown tables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import measure  # noqa: E402
import raw_pipeline  # noqa: E402

from producers.replay import plan_replay  # noqa: E402
from redblue.adapters.kafka import client_config  # noqa: E402
from redblue.core.arena import load_arena  # noqa: E402
from redblue.core.bars import DATA_DIR  # noqa: E402
from redblue.core.calendar import get_calendar  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from schemas import decode_all, encode  # noqa: E402

DRIFT = REPO / "arenas" / "drift.yaml"
FIVE = ("AAPL", "AMZN", "SAP", "IBM", "MSFT")
SEVEN = (*FIVE, "GOOGL", "TSLA")
BASELINE_BARS_PER_S = 88.0  # issue 12, measured before this work on the same workload
REPEATS = 5  # the 5-symbol workload's runs; its median run is reported


def simulate(run: str, out: Path, *args: str) -> dict[str, Any]:
    """``bin/redblue simulate`` as a user runs it, measured; the run's topics counted afterwards."""
    cmd = [str(REPO / "bin" / "redblue"), "simulate", "--run-id", run, "--out", str(out), "--no-mlflow", *args]
    done = measure.run(cmd, env=dict(os.environ), cwd=REPO)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n" + "\n".join(line for _, line in done.lines[-30:]))
    took = float(re.search(r"took ([0-9.]+)s", "\n".join(line for _, line in done.lines)).group(1))  # type: ignore[union-attr]
    settings = Settings()
    topics = {t: measure.topic_stats(client_config(settings.for_service("admin")), f"{settings.topic_prefix}.{run}.{t}")
              for t in ("bars", "forecasts", "orders", "fills")}  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    trader_last = max(topics["orders"].last_ts, topics["fills"].last_ts)
    return {
        "command_s": done.wall_s,
        "report_s": done.first("Simulation period"),
        "sim_s": took,
        "processing_s": trader_last - topics["forecasts"].first_ts,
        "bars": topics["bars"].events,
        "forecasts": sum(1 for _, v in topics["forecasts"].payloads for e in decode_all(v) if e.TYPE == "forecast"),
        "topics": topics,
        "procs": done.procs,
        "summary": summary,
    }


def backtrader(spans: dict[str, Any], arena: Any) -> dict[str, Any]:
    python = subprocess.run(
        [str(REPO / "bench" / "backtrader_env.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    spec = {
        "data": str(DATA_DIR),
        "spans": {s: [str(v.warmup_first), str(v.first_as_of), str(v.last)] for s, v in spans.items()},
        "cash": arena.strategy.initial_cash,
        "allocation": arena.strategy.allocation,
        "threshold": arena.strategy.threshold,
        "lookback": 20,
    }
    began = time.perf_counter()
    done = subprocess.run(
        [python, str(REPO / "bench" / "backtrader_drift.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["command_s"] = time.perf_counter() - began
    return result


def single_events(payloads: list[tuple[bytes | None, bytes]]) -> list[tuple[bytes | None, bytes]]:
    """The same events, one message each (what a pipeline without batches would move)."""
    return [(key, encode(e, revalidate=False)) for key, value in payloads for e in decode_all(value)]


def raw(config: dict[str, str], result: dict[str, Any], singles: bool) -> tuple[float, int]:
    topics = result["topics"]
    pick = single_events if singles else list
    bars, forecasts = pick(topics["bars"].payloads), pick(topics["forecasts"].payloads)
    trades = pick(topics["orders"].payloads) + pick(topics["fills"].payloads)
    seconds = raw_pipeline.run(config, bars, forecasts, trades)
    return seconds, len(bars) + len(forecasts) + len(trades)


def procs_table(procs: list[measure.Proc]) -> list[str]:
    rows = []
    for p in procs:
        role = "processor" if p.processor else "simulate (trader, scorer, orchestrator)"
        if "redblue" in p.cmdline and "python" in p.cmdline:  # not the bin/redblue shell wrapper
            rows.append(f"| {role} | {p.peak_rss_mb:.0f} | {p.cpu_s:.2f} |")
    return rows


def profile(run: str, out: Path) -> str:
    """The drift workload once more, the processor and the simulate process under the sampler."""
    report = out / "processor-profile.txt"
    env = dict(os.environ)
    code = (
        "import sys, subprocess; sys.path.insert(0, 'bench');"
        "from sampler import Sampler;"
        "import redblue.app.simulate as sim;"
        "real = subprocess.Popen;"
        f"sim.subprocess.Popen = lambda cmd, **kw: real([cmd[0], 'bench/sampled.py', {str(report)!r}, *cmd[1:]], **kw);"
        "from redblue.app.cli import main;"
        "s = Sampler(200); s.__enter__();"
        f"main(['simulate', '--run-id', {run!r}, '--out', {str(out)!r}, '--no-mlflow', '--arena', {str(DRIFT)!r},"
        f" '--symbols', {','.join(FIVE)!r}, '--start', '1999-04-01', '--days', '1000']);"
        "s.__exit__(None, None, None);"
        "print('=== simulate process'); print(s.report(['trader', 'scorer'], top=12))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if done.returncode:
        return f"(the profiled run failed with exit code {done.returncode}:\n{done.stderr[-2000:]})"
    text = done.stdout[done.stdout.find("=== simulate process") :]
    return "=== processor process\n" + (report.read_text() if report.exists() else "(no report)") + "\n" + text


def main() -> None:
    settings = Settings()
    arena = load_arena(DRIFT).with_symbols(FIVE)
    plan = plan_replay(DATA_DIR, FIVE, date(1999, 4, 1), 1000, arena.window, get_calendar())
    arena7 = load_arena(DRIFT).with_symbols(SEVEN)
    plan7 = plan_replay(DATA_DIR, SEVEN, date(1999, 4, 1), None, arena7.window, get_calendar(), end=date(2025, 9, 29))
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="redblue-throughput-") as tmp:
        work = Path(tmp)
        fives = [
            simulate("bench-drift", work / "five", "--arena", str(DRIFT), "--symbols", ",".join(FIVE),
                     "--start", "1999-04-01", "--days", "1000")
            for _ in range(REPEATS)
        ]  # fmt: skip
        five = sorted(fives, key=lambda run: run["sim_s"])[REPEATS // 2]  # the median run: one run is noisy
        bt = backtrader(plan.spans, arena)
        bt7 = backtrader(plan7.spans, arena7)
        batched_s, batched_n = raw(client_config(settings.for_service("admin")), five, singles=False)
        single_s, single_n = raw(client_config(settings.for_service("admin")), five, singles=True)
        seven = simulate("bench-drift7", work / "seven", "--arena", str(DRIFT), "--symbols", ",".join(SEVEN),
                         "--start", "1999-04-01", "--end", "2025-09-29")  # fmt: skip
        reference = simulate("bench-reference", work / "reference", "--start", "2024-01-02", "--days", "180")
        profiled = profile("bench-drift-profiled", work / "profiled")
    print_report(load, fives, five, seven, reference, (bt, bt7), (batched_s, batched_n), (single_s, single_n), profiled)


def print_report(
    load: float,
    fives: list[dict[str, Any]],
    five: dict[str, Any],
    seven: dict[str, Any],
    reference: dict[str, Any],
    bts: tuple[dict[str, Any], dict[str, Any]],
    batched: tuple[float, int],
    single: tuple[float, int],
    profiled: str,
) -> None:
    print(f"load average at start: {load:.1f} (2 cores, shared)\n")
    took = " / ".join(f"{run['sim_s']:.1f}" for run in fives)
    command = " / ".join(f"{run['command_s']:.1f}" for run in fives)
    print(f"drift, 5 symbols, {REPEATS} runs in a row: took {took} s, command {command} s; the median run below\n")
    print("| | bars | seconds | bars/s | vs 88 bars/s |")
    print("|---|---:|---:|---:|---:|")
    for label, run, key in (
        ("redblue drift, 5 symbols: command (start-up included)", five, "command_s"),
        ("redblue drift, 5 symbols: simulation (`took`)", five, "sim_s"),
        ("redblue drift, 5 symbols: processor→trader (first forecast to last order/fill)", five, "processing_s"),
        ("redblue drift, 7 symbols 1999-2025: command", seven, "command_s"),
        ("redblue drift, 7 symbols 1999-2025: simulation", seven, "sim_s"),
        ("redblue drift, 7 symbols 1999-2025: processor→trader", seven, "processing_s"),
    ):
        n = run["bars"]
        print(f"| {label} | {n:,} | {run[key]:.2f} | {n / run[key]:,.0f} | {n / run[key] / BASELINE_BARS_PER_S:.1f}x |")
    for label, bt in zip(("5 symbols", "7 symbols 1999-2025"), bts, strict=True):
        print(f"| backtrader {label}, same strategy and bars (cerebro.run) | {bt['bars']:,} | "
              f"{bt['run_seconds']:.2f} | {bt['bars'] / bt['run_seconds']:,.0f} | |")  # fmt: skip
        whole = bt["bars"] / bt["command_s"]
        print(f"| backtrader {label}, whole process | {bt['bars']:,} | {bt['command_s']:.2f} | {whole:,.0f} | |")
    print()
    print("| raw confluent-kafka, 4 stages | messages | seconds | msg/s | redblue simulation ÷ raw |")
    print("|---|---:|---:|---:|---:|")
    for label, (seconds, n) in (
        ("the same messages (redblue's batches)", batched),
        ("the same events, one message each", single),
    ):
        print(f"| {label} | {n:,} | {seconds:.2f} | {n / seconds:,.0f} | {five['sim_s'] / seconds:.1f}x |")
    print()
    for label, run, bt in (("5 symbols", five, bts[0]), ("7 symbols 1999-2025", seven, bts[1])):
        team = run["summary"]["teams"][0]
        agree = "agree to the cent" if round(team["final_equity"], 2) == round(bt["final_equity"], 2) else "DIFFER"
        print(f"final equity, {label}: redblue {team['final_equity']:.2f}, backtrader {bt['final_equity']:.2f} — "
              f"{agree}; fills {team['trades']} vs backtrader's {bt['trades']}")  # fmt: skip
    print(f"forecasts: {five['forecasts']:,} in {five['processing_s']:.2f}s processing "
          f"= {five['forecasts'] / five['processing_s']:,.0f} forecasts/s")  # fmt: skip
    print()
    print("| reference simulation (Ludwig models) | seconds |")
    print("|---|---:|")
    print(f"| command to printed report | {reference['report_s']:.2f} |")
    print(f"| whole command | {reference['command_s']:.2f} |")
    print(f"| simulation (`took`) | {reference['sim_s']:.2f} |")
    print()
    for label, run in (("drift, 5 symbols", five), ("drift, 7 symbols", seven), ("reference", reference)):
        print(f"| process ({label}) | peak RSS MB | CPU s |")
        print("|---|---:|---:|")
        print("\n".join(procs_table(run["procs"])))
        print()
    print("CPU profile (sampled, weighed by CPU time: share of each thread's CPU):\n")
    print(profiled)


if __name__ == "__main__":
    main()
