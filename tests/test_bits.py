from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.packets.bits import decode_groups, encode_groups, exp_golomb_bits
from codec.packets.errors import PacketError


def test_code_lengths() -> None:
    assert [exp_golomb_bits(v, 0) for v in (0, -1, 1, -2, 2, -3)] == [1, 3, 3, 5, 5, 5]
    assert exp_golomb_bits(0, 2) == 3


def test_mostly_zero_residuals_are_small() -> None:
    data = encode_groups([[0, 1, 0, 0, 0, -1, 0], [0] * 60])
    assert len(data) == 10  # 6 bits of orders + 7 + ... rounds up to whole bytes
    assert decode_groups(data, [7], 100) == [[0, 1, 0, 0, 0, -1, 0], [0] * 60]


@given(st.lists(st.integers(-(2**30), 2**30), min_size=7, max_size=7), st.lists(st.integers(-5000, 5000), max_size=120))
def test_round_trip(pose: list[int], expression: list[int]) -> None:
    assert decode_groups(encode_groups([pose, expression]), [7], 384) == [pose, expression]


def test_errors() -> None:
    data = encode_groups([[3] * 7, [1, 2, 3]])
    with pytest.raises(PacketError, match="^motion payload is truncated$"):
        decode_groups(data[:2], [7], 10)
    with pytest.raises(PacketError, match="^motion payload holds more than 2 expression values$"):
        decode_groups(data, [7], 2)
    with pytest.raises(PacketError, match="^motion payload holds an out-of-range value$"):
        decode_groups(b"\x00" + b"\x00" * 8 + b"\x01", [7], 10)
