"""Exact running sums of floats, so that metrics over a whole history cost O(1) per new value.

Every finite double is an integer multiple of 2**-1074, so a sum of doubles (and of their squares,
multiples of 2**-2148) is kept exactly as a Python integer. Reading it rounds once, correctly:
:attr:`ExactSum.value` is what :func:`math.fsum` returns for the same values, and
:meth:`Moments.stdev` what :func:`statistics.stdev` returns (which also computes exactly and
rounds once). Results therefore do not depend on how the values were grouped or when they were
read, and equal the batch functions bit for bit (tested with random data against them).
"""

from __future__ import annotations

import math
import sys

_BITS = 1074  # 2**-1074 is the smallest positive double
_SQRT_WIDTH = 2 * sys.float_info.mant_dig + 3  # enough bits for a correctly rounded square root


def _scaled(x: float, bits: int = _BITS) -> tuple[int, int]:
    """``x`` as the integer ``x * 2**bits`` and ``x**2 * 2**(2 * bits)`` (both exact)."""
    numerator, denominator = x.as_integer_ratio()
    shift = bits - (denominator.bit_length() - 1)
    return numerator << shift, (numerator * numerator) << (2 * shift)


class ExactSum:
    """A sum of floats without rounding error; ``value`` is it rounded once (like ``math.fsum``)."""

    def __init__(self) -> None:
        self._total = 0

    def add(self, x: float) -> None:
        self._total += _scaled(x)[0]

    @property
    def value(self) -> float:
        return self._total / (1 << _BITS)


class Moments:
    """Count, exact sum and exact sum of squares of floats: mean and sample deviation in O(1)."""

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0
        self._squares = 0

    def add(self, x: float) -> None:
        single, square = _scaled(x)
        self.count += 1
        self._sum += single
        self._squares += square

    def fmean(self) -> float:
        """The mean as :func:`statistics.fmean` computes it: the correctly rounded sum over n."""
        return (self._sum / (1 << _BITS)) / self.count

    def stdev(self) -> float:
        """The sample standard deviation, correctly rounded (as :func:`statistics.stdev`); n >= 2."""
        n = self.count
        if n < 2:
            raise ValueError("stdev needs at least two values")
        # variance = (n * sum(x^2) - sum(x)^2) / (n (n - 1)), exactly
        numerator = n * self._squares - self._sum * self._sum
        return _sqrt_of_ratio(numerator, (n * (n - 1)) << (2 * _BITS))


def _sqrt_of_ratio(n: int, m: int) -> float:
    """The square root of n/m as a float, correctly rounded (round-to-odd integer square root)."""
    if n == 0:
        return 0.0
    q = (n.bit_length() - m.bit_length() - _SQRT_WIDTH) // 2
    if q >= 0:
        return float(_isqrt_round_to_odd(n, m << 2 * q) << q)
    return _isqrt_round_to_odd(n << -2 * q, m) / (1 << -q)


def _isqrt_round_to_odd(n: int, m: int) -> int:
    root = math.isqrt(n // m)
    return root | (root * root * m != n)
