"""A team's equity from its marks: complete days only, symbols entering late and leaving early."""

from __future__ import annotations

import random
from datetime import date

from consumers.equity import EquityBook
from redblue.core.spans import Span, format_spans, parse_spans
from schemas import PositionMark
from tests.factories import T0, days

D = days(date(2024, 1, 2), 10)


def mark(symbol: str, i: int, quantity: int = 0, close: float = 10.0, cash: float = 0.0) -> PositionMark:
    return PositionMark(
        run="r1", team="red", symbol=symbol, as_of=D[i], quantity=quantity, close=close, net_cash_flow=cash,
        produced_at=T0,
    )  # fmt: skip


def test_a_day_completes_when_every_symbol_is_marked() -> None:
    book = EquityBook(1000.0, ("A", "B"))
    assert book.add(mark("A", 0, quantity=2, close=10.0, cash=-21.0)) == []
    assert book.add(mark("A", 1, quantity=2, close=11.0, cash=-21.0)) == []  # A runs ahead of B
    assert book.add(mark("B", 0)) == [(D[0], 999.0)]
    assert book.add(mark("B", 1)) == [(D[1], 1001.0)]
    assert book.add(mark("B", 1)) == []  # a redelivered mark changes nothing
    assert book.last == D[1]


def test_a_symbol_entering_late_counts_from_its_first_as_of_day() -> None:
    spans = {"A": Span(D[0], D[0], D[1], D[9]), "B": Span(D[0], D[3], D[4], D[9])}
    book = EquityBook(1000.0, ("A", "B"), spans)
    done = [d for i in range(3) for d in book.add(mark("A", i, cash=float(i)))]
    assert done == [(D[0], 1000.0), (D[1], 1001.0), (D[2], 1002.0)]
    assert book.add(mark("A", 3)) == []  # from D[3] on, B takes part
    assert book.add(mark("B", 3, cash=5.0)) == [(D[3], 1005.0)]


def test_a_symbol_that_left_counts_with_its_last_mark() -> None:
    spans = {"A": Span(D[0], D[0], D[1], D[9]), "B": Span(D[0], D[0], D[1], D[1])}
    book = EquityBook(1000.0, ("A", "B"), spans)
    assert book.add(mark("A", 0)) == []
    assert book.add(mark("A", 1)) == []
    assert book.add(mark("A", 2)) == []  # B's last mark (D[1]) is still to come
    assert book.add(mark("B", 0, cash=1.0)) == [(D[0], 1001.0)]
    assert book.add(mark("B", 1, quantity=1, close=7.0, cash=-3.0)) == [(D[1], 1004.0), (D[2], 1004.0)]
    assert book.add(mark("A", 3, cash=1.0)) == [(D[3], 1005.0)]


def test_interleavings_give_the_same_curve() -> None:
    spans = {s: Span(D[0], D[i], D[i + 1], D[9 - i]) for i, s in enumerate("ABC")}
    streams = {s: [mark(s, i, quantity=i % 3, close=10.0 + i, cash=-0.1 * i) for i in range(10) if spans[s].marks(D[i])]
               for s in "ABC"}  # fmt: skip
    curves = []
    for seed in range(5):
        rnd, queues, curve = random.Random(seed), {s: list(v) for s, v in streams.items()}, []
        book = EquityBook(1000.0, ("A", "B", "C"), spans)
        while any(queues.values()):
            curve += book.add(queues[rnd.choice([s for s, q in queues.items() if q])].pop(0))
        curves.append(curve)
    assert all(c == curves[0] for c in curves)
    assert [d for d, _ in curves[0]] == D


def test_spans_round_trip_through_text() -> None:
    spans = {"AAPL": Span(D[0], D[1], D[2], D[9]), "TSLA": Span(D[3], D[4], D[5], D[6])}
    assert parse_spans(format_spans(spans)) == spans
