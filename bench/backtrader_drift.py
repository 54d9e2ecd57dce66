"""The 20-day drift strategy in backtrader, on the same bars and with the same rules as redblue's
drift arena (``arenas/drift.yaml``): run in the benchmark's own environment (bench/backtrader_env.sh),
never in the product's.

Rules, as redblue's trader applies them: at each close D of a symbol's span (its first as-of day up
to the day before its last), the forecast of D+1 is ``close * exp((ln close - ln close_20_days_ago) / 20)``;
the team is long when that beats the close by more than ``threshold``; a new position buys
``floor(allocation / close)`` whole shares at D's close, held while the signal stays long, sold
when it turns; market orders fill at D+1's open, no slippage, no commission. Equity is cash plus
every position at the last close.

Input: one JSON argument ``{"data": dir, "spans": {symbol: [warmup_first, first_as_of, last]},
"cash": .., "allocation": .., "threshold": .., "lookback": ..}``. Output: one JSON line with the
bars fed, seconds (feeding and running), final equity and trades.
"""

from __future__ import annotations

import json
import math
import sys
import time

import backtrader as bt
import pandas as pd


class Drift(bt.Strategy):  # type: ignore[misc]
    params = (("spans", {}), ("allocation", 10_000.0), ("threshold", 0.001), ("lookback", 20))

    def __init__(self) -> None:
        self.trades = 0

    def prenext(self) -> None:  # before every symbol has started (spans begin at different dates)
        self.next()

    def next(self) -> None:
        started = [data for data in self.datas if len(data)]
        today = max(data.datetime.date(0) for data in started)
        for data in started:
            if data.datetime.date(0) != today:
                continue  # no bar of this symbol today: nothing new to decide on
            first_as_of, last = self.p.spans[data._name]
            day = today.isoformat()
            if not first_as_of <= day < last or len(data) < self.p.lookback + 1:
                continue
            closes = data.close.get(size=self.p.lookback + 1)
            mean = (math.log(closes[-1]) - math.log(closes[0])) / self.p.lookback
            predicted = closes[-1] * math.exp(mean)
            long = predicted > closes[-1] * (1 + self.p.threshold)
            held = self.getposition(data).size
            if long and held > 0:
                continue
            target = math.floor(self.p.allocation / closes[-1]) if long else 0
            if target > held:
                self.buy(data=data, size=target - held)
            elif target < held:
                self.sell(data=data, size=held - target)

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            self.trades += 1


def main() -> None:
    spec = json.loads(sys.argv[1])
    began = time.perf_counter()
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(spec["cash"])
    bars = 0
    spans = {}
    for symbol, (warmup_first, first_as_of, last) in sorted(spec["spans"].items()):
        frame = pd.read_csv(f"{spec['data']}/{symbol}.csv", parse_dates=["date"], index_col="date")
        frame = frame.loc[warmup_first:last, ["open", "high", "low", "close", "volume"]]
        bars += len(frame)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame), name=symbol)
        spans[symbol] = (first_as_of, last)
    cerebro.addstrategy(
        Drift, spans=spans, allocation=spec["allocation"], threshold=spec["threshold"], lookback=spec["lookback"]
    )
    fed = time.perf_counter()
    [strategy] = cerebro.run()
    done = time.perf_counter()
    result = {
        "bars": bars,
        "seconds": done - began,
        "run_seconds": done - fed,
        "final_equity": cerebro.broker.getvalue(),
        "trades": strategy.trades,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
