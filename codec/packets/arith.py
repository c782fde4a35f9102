"""Exact arithmetic coding of short messages, with static frequency tables.

A motion message holds a few dozen symbols, so the coder keeps its interval as exact Python
integers (no renormalisation, no carries): after each symbol the interval is
``[low, low + width) / 2**shift``.  The output is the shortest byte string whose value, padded
with zero bits, lies in the final interval: on average the information content plus about
half a byte, with no flush bytes.  The decoder pads with zero bits the same way, so every byte
string decodes to *some* symbols: callers check the result (and that re-encoding gives the same
bytes) to reject what a real encoder would not write.

Tables are cumulative frequencies: ``cumulative[s]`` .. ``cumulative[s + 1]`` is symbol ``s``'s
share of ``cumulative[-1]`` (a power of two, :data:`TABLE_BITS` bits), every symbol at least 1.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

from .errors import PacketError
from .messages import PACKET_VERSION

__all__ = ["TABLE_BITS", "ArithmeticDecoder", "ArithmeticEncoder", "cumulative_table"]

#: frequency tables sum to 2**TABLE_BITS
TABLE_BITS = 15
_TOTAL = 1 << TABLE_BITS
#: longest Exp-Golomb prefix read (values below 2**40)
_MAX_PREFIX = 40


def cumulative_table(counts: Sequence[float] | np.ndarray) -> tuple[int, ...]:
    """Cumulative frequencies summing to ``2**TABLE_BITS`` from (smoothed) counts; every symbol
    keeps a frequency of at least 1."""
    weights = np.asarray(counts, dtype=np.float64)
    if weights.ndim != 1 or len(weights) < 1 or len(weights) > _TOTAL // 2 or (weights < 0).any():
        raise ValueError("counts must be a 1-D array of 1 to 16384 non-negative numbers")
    frequencies = np.maximum(np.floor(weights / max(weights.sum(), 1e-12) * _TOTAL), 1).astype(np.int64)
    frequencies[int(np.argmax(frequencies))] += _TOTAL - int(frequencies.sum())
    return tuple(int(v) for v in np.concatenate([[0], np.cumsum(frequencies)]))


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


class ArithmeticEncoder:
    def __init__(self) -> None:
        self._low = 0
        self._width = 1
        self._shift = 0

    def symbol(self, cumulative: Sequence[int], symbol: int) -> None:
        """Code ``symbol`` (0 <= symbol < len(cumulative) - 1) with a table's probabilities."""
        start, end = cumulative[symbol], cumulative[symbol + 1]
        self._low = (self._low << TABLE_BITS) + self._width * start
        self._width *= end - start
        self._shift += TABLE_BITS

    def bits(self, value: int, count: int) -> None:
        """Code ``count`` raw bits of the non-negative ``value`` (most significant first)."""
        self._low = (self._low << count) + self._width * value
        self._shift += count

    def signed(self, value: int, order: int) -> None:
        """Code a signed integer as zig-zag Exp-Golomb of ``order`` in raw bits."""
        shifted = _zigzag(value) + (1 << order)
        length = shifted.bit_length()
        self.bits(0, length - 1 - order)
        self.bits(shifted, length)

    def difference(self, table: Sequence[int], value: int, span: int, escape_order: int) -> None:
        """Code a small signed integer with ``table`` (symbols ``-span..span``, then an escape
        followed by the value as an Exp-Golomb code of ``escape_order`` for the rest)."""
        if -span <= value <= span:
            self.symbol(table, value + span)
        else:
            self.symbol(table, 2 * span + 1)
            self.signed(value, escape_order)

    def finish(self) -> bytes:
        """The shortest byte string (zero-padded) inside the final interval."""
        low, high, shift = self._low, self._low + self._width, self._shift
        count = 0
        while True:
            drop = shift - 8 * count
            if drop <= 0:
                return (low << -drop).to_bytes(count, "big") if count else b""
            value = -((-low) >> drop)  # ceil(low / 2**drop)
            if value << drop < high:
                return value.to_bytes(count, "big") if count else b""
            count += 1


class ArithmeticDecoder:
    """Reads what :class:`ArithmeticEncoder` wrote; beyond the data it reads zero bits."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._value_bits = 8 * len(data)
        self._low = 0
        self._width = 1
        self._shift = 0

    def _position(self, bits: int) -> int:
        """``floor(offset * 2**bits)`` where offset in [0, 1) is the value's place in the interval."""
        scale = max(self._shift, self._value_bits)
        numerator = (self._value << (scale - self._value_bits)) - (self._low << (scale - self._shift))
        return (numerator << bits) // (self._width << (scale - self._shift))

    def symbol(self, cumulative: Sequence[int]) -> int:
        position = self._position(TABLE_BITS)
        symbol = bisect_right(cumulative, position) - 1
        start, end = cumulative[symbol], cumulative[symbol + 1]
        self._low = (self._low << TABLE_BITS) + self._width * start
        self._width *= end - start
        self._shift += TABLE_BITS
        return symbol

    def bits(self, count: int) -> int:
        value = self._position(count)
        self._low = (self._low << count) + self._width * value
        self._shift += count
        return value

    def signed(self, order: int) -> int:
        zeros = 0
        while self.bits(1) == 0:
            zeros += 1
            if zeros > _MAX_PREFIX:
                raise PacketError("motion payload holds an out-of-range value")
        shifted = (1 << (zeros + order)) | self.bits(zeros + order)
        code = shifted - (1 << order)
        return code // 2 if code % 2 == 0 else -(code + 1) // 2

    def difference(self, table: Sequence[int], span: int, escape_order: int) -> int:
        """Read what :meth:`ArithmeticEncoder.difference` wrote."""
        symbol = self.symbol(table)
        return symbol - span if symbol <= 2 * span else self.signed(escape_order)


def open_payload(data: bytes, kind: str, start: int) -> tuple[int, ArithmeticDecoder]:
    """Check the length byte (``data[1]``: the bytes after index ``start - 1``) and the
    ``version << 4 | seq`` byte at ``start`` of a ``kind`` message (motion, body); returns the
    sequence number and a decoder of the arithmetic-coded payload after it.

    Raises:
        PacketError: the length or the version is wrong.
    """
    if data[1] != len(data) - start:
        raise PacketError(f"{kind} message says {data[1]} bytes, has {len(data) - start}")
    version, seq = data[start] >> 4, data[start] & 0x0F
    if version != PACKET_VERSION:
        raise PacketError(f"unsupported {kind} packet version {version} (this decoder reads version {PACKET_VERSION})")
    return seq, ArithmeticDecoder(data[start + 1 :])
