"""Benchmark: what SASL/SCRAM, ACLs and Redis ACL users cost on the replay.

Run with the (secured) stack up. In this one run, side by side, alternating so that the
machine's load hits both alike:

1. a scratch stack WITHOUT any authentication (its own Kafka and Redis on free ports) against
   the secured stack, in alternating order: the reference simulation window (AAPL, AMZN, SAP, 2024-01-02 + 180 trading
   days, baselines arena: a scratch stack has no MLflow server for registry models), from
   reset to written files, ROUNDS times each; the files must be byte-identical;
2. a raw confluent-kafka produce + consume of as many messages as the simulation moves;
3. connecting: a new admin client's first metadata answer (the SCRAM handshake: 8192 PBKDF2
   iterations on each side).

Each stack first runs the simulation once untimed (a brand-new broker takes tens of seconds to
elect its first group coordinator). Prints medians and the ratios secured / plain.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]  # noqa: E402

from bench.pipeline import raw_round_trip  # noqa: E402
from redblue import stack  # noqa: E402
from redblue.adapters.kafka import client_config, read_topic  # noqa: E402
from redblue.app.provision import reset_run  # noqa: E402
from redblue.app.simulate import SimulationRequest, simulate  # noqa: E402
from redblue.core.arena import REPO_ROOT, load_arena  # noqa: E402
from redblue.core.settings import Settings  # noqa: E402
from schemas import encode  # noqa: E402
from schemas.topics import BARS, FILLS, FORECASTS, ORDERS  # noqa: E402

BASELINES = REPO_ROOT / "arenas" / "baselines.yaml"
ROUNDS = 4
FILES = ("forecasts.csv", "orders.csv", "fills.csv", "equity.csv", "summary.json")


def simulation(settings: Settings, run: str, out: Path) -> float:
    req = SimulationRequest(date(2024, 1, 2), 180, load_arena(BASELINES), BASELINES, run_id=run, out=out, timeout=300)
    began = time.perf_counter()
    simulate(settings, req, say=lambda _: None)
    return time.perf_counter() - began


def connect(settings: Settings) -> float:
    began = time.perf_counter()
    AdminClient({**client_config(settings), "log_level": 0}).list_topics(timeout=30)
    return time.perf_counter() - began


def main() -> None:
    secured = Settings()
    assert secured.security, "run against the secured stack (REDBLUE_SECURITY is false)"
    from redblue.stack.scratch import scratch_settings

    with tempfile.TemporaryDirectory(prefix="redblue-bench-plain-") as home:
        plain = stack.up(scratch_settings(secured, Path(home), security=False), out=lambda _: None)
        try:
            measure(secured, plain)
        finally:
            stack.down(plain, out=lambda _: None)


def measure(secured: Settings, plain: Settings) -> None:
    stacks = {"secured": secured, "plain": plain}
    run = f"bench-sec-{uuid.uuid4().hex[:8]}"
    sims: dict[str, list[float]] = {name: [] for name in stacks}
    outs: dict[str, Path] = {}
    for name, settings in stacks.items():  # warm-up, untimed: a brand-new broker's first groups take long
        simulation(settings, run, REPO / "out" / f"{run}-{name}-warmup")
    for n in range(ROUNDS):
        order = list(stacks.items()) if n % 2 == 0 else list(reversed(stacks.items()))  # the load drifts
        for name, settings in order:
            outs[name] = REPO / "out" / f"{run}-{name}-{n}"
            sims[name].append(simulation(settings, run, outs[name]))
    identical = all((outs["secured"] / f).read_bytes() == (outs["plain"] / f).read_bytes() for f in FILES)
    sizes = [len(encode(e)) for spec in (BARS, FORECASTS, ORDERS, FILLS) for e in read_topic(secured, run, spec)]
    messages, size = len(sizes), sum(sizes) // len(sizes)
    raws: dict[str, list[float]] = {name: [] for name in stacks}
    connects: dict[str, list[float]] = {name: [] for name in stacks}
    for _ in range(ROUNDS):
        for name, settings in stacks.items():
            raws[name].append(raw_round_trip(settings, messages, size))
            connects[name].extend(connect(settings) for _ in range(5))
    for settings in stacks.values():
        reset_run(settings, run)
    print(f"reference window, baselines arena: {messages} messages (mean payload {size} B); {ROUNDS} rounds each")
    print(f"files byte-identical secured vs plain: {identical}")
    print(f"{'median s':34}{'plain':>10}{'secured':>10}{'ratio':>8}")
    for label, found in (
        ("reference simulation", sims),
        ("raw produce + consume round trip", raws),
        ("new client's first metadata", connects),
    ):
        p, s = statistics.median(found["plain"]), statistics.median(found["secured"])
        print(f"{label:34}{p:>10.3f}{s:>10.3f}{s / p:>7.2f}x")
    print("all simulation rounds (s):", {k: [round(v, 1) for v in vs] for k, vs in sims.items()})


if __name__ == "__main__":
    main()
