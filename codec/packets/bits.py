"""Bit-level coding of small signed integers: zig-zag + Exp-Golomb of order k.

Motion residuals are mostly 0 or +-1; an order-0 Exp-Golomb code spends 1 bit on a 0 and
3 bits on +-1.  Each group of values carries its own order k (3 bits), chosen by the encoder
to minimise the group's size.  The bit string is zero-padded to whole bytes; since every
code word holds a 1 bit, a reader knows padding from data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import PacketError

__all__ = ["BitReader", "BitWriter", "decode_groups", "encode_groups", "exp_golomb_bits"]

_MAX_K = 7
_MAX_PREFIX = 40  # longest run of leading zeros accepted (values below 2**40)


def _zigzag(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzigzag(code: int) -> int:
    return code // 2 if code % 2 == 0 else -(code + 1) // 2


def exp_golomb_bits(value: int, k: int) -> int:
    """Length in bits of the order-k code of the signed ``value``."""
    return 2 * (_zigzag(value) + (1 << k)).bit_length() - 1 - k


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[str] = []

    def write(self, value: int, width: int) -> None:
        if width:
            self._bits.append(format(value, f"0{width}b"))

    def write_exp_golomb(self, value: int, k: int) -> None:
        shifted = _zigzag(value) + (1 << k)
        length = shifted.bit_length()
        self._bits.append("0" * (length - 1 - k) + format(shifted, "b"))

    def getvalue(self) -> bytes:
        bits = "".join(self._bits)
        bits += "0" * (-len(bits) % 8)
        return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


class BitReader:
    def __init__(self, data: bytes) -> None:
        self._bits = "".join(format(byte, "08b") for byte in data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._bits) - self._pos

    def read(self, width: int) -> int:
        if width > self.remaining:
            raise PacketError("motion payload is truncated")
        value = int(self._bits[self._pos : self._pos + width], 2) if width else 0
        self._pos += width
        return value

    def at_padding(self) -> bool:
        """True when only zero padding (fewer than 8 bits) is left."""
        rest = self._bits[self._pos :]
        return len(rest) < 8 and "1" not in rest

    def read_exp_golomb(self, k: int) -> int:
        one = self._bits.find("1", self._pos)
        if one < 0:
            raise PacketError("motion payload is truncated")
        zeros = one - self._pos
        if zeros > _MAX_PREFIX:
            raise PacketError("motion payload holds an out-of-range value")
        length = zeros + 1 + k
        if self._pos + zeros + length > len(self._bits):
            raise PacketError("motion payload is truncated")
        self._pos += zeros
        shifted = int(self._bits[self._pos : self._pos + length], 2)
        self._pos += length
        return _unzigzag(shifted - (1 << k))


def _best_order(values: Sequence[int]) -> int:
    """The order k in 0..7 that codes ``values`` in the fewest bits."""
    if len(values) == 0:
        return 0
    signed = np.asarray(values, dtype=np.float64)
    codes = np.where(signed >= 0, 2 * signed, -2 * signed - 1)  # zig-zag, exact below 2**52
    orders = np.arange(_MAX_K + 1, dtype=np.float64)
    lengths = np.frexp(codes[None, :] + 2.0 ** orders[:, None])[1]  # bit lengths, per k
    totals = (2 * lengths - 1).sum(axis=1) - orders * len(codes)
    return int(np.argmin(totals))


def encode_groups(groups: Sequence[Sequence[int]]) -> bytes:
    """Pack groups of signed ints; group sizes are not stored (the reader must know all but
    the last one, which runs to the end)."""
    writer = BitWriter()
    orders = [_best_order(group) for group in groups]
    for k in orders:
        writer.write(k, 3)
    for k, group in zip(orders, groups, strict=True):
        for value in group:
            writer.write_exp_golomb(int(value), k)
    return writer.getvalue()


def decode_groups(data: bytes, leading_sizes: Sequence[int], max_last: int) -> list[list[int]]:
    """Inverse of :func:`encode_groups` for ``len(leading_sizes) + 1`` groups.

    Args:
        data: the packed bytes.
        leading_sizes: sizes of all groups but the last.
        max_last: the most values the last group may hold.

    Raises:
        PacketError: truncated data, non-zero padding, or too many values.
    """
    reader = BitReader(data)
    orders = [reader.read(3) for _ in range(len(leading_sizes) + 1)]
    groups = [[reader.read_exp_golomb(orders[i]) for _ in range(size)] for i, size in enumerate(leading_sizes)]
    last: list[int] = []
    while not reader.at_padding():
        if len(last) == max_last:
            raise PacketError(f"motion payload holds more than {max_last} expression values")
        last.append(reader.read_exp_golomb(orders[-1]))
    groups.append(last)
    return groups
