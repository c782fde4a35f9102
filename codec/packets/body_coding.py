"""The body message: the coarse motion outside the face (:mod:`codec.geometry.body`).

Sent a few times a second next to the motion messages (the same fast unreliable path), only
when the field changed.  Layout: a msgpack ``ext 8`` of type :data:`BODY_EXT_TYPE`:
``c7 LEN 01``, one byte ``version << 4 | seq % 16``, then the arithmetic-coded payload
(:mod:`codec.packets.arith`):

1. one bit: absolute;
2. absolute: the keyframe id (8 bits); predicted: its parity (1 bit);
3. the grid's nodes per side (4 bits, 2 to 15);
4. the 2 n^2 integers (x then y of each node, row by row; units of 1 / :data:`BODY_STEPS_PER_UNIT`
   crop units): absolute: the values; predicted: their differences to the previous body
   message (seq - 1).  Either is coded as its residual to the node on its left (the first
   column: to the node above; the field is smooth), absolute as signed Exp-Golomb codes,
   predicted with a static table (:data:`DIFFERENCE_COUNTS`) and an escape.

Like the motion message, every byte string either decodes to a packet that encodes back to
exactly the same bytes, or raises :class:`PacketError`.
"""

from __future__ import annotations

from functools import cache

from .arith import ArithmeticEncoder, cumulative_table, open_payload
from .errors import PacketError
from .messages import PACKET_VERSION, SEQ_MODULO, BodyPacket

__all__ = [
    "BODY_EXT_TYPE",
    "BODY_STEPS_PER_UNIT",
    "MAX_BODY_VALUE",
    "decode_body",
    "encode_body",
    "is_body_message",
]

#: msgpack ``ext 8`` marker and the extension type of a body message
EXT8 = 0xC7
BODY_EXT_TYPE = 1
#: quantization: node displacements in steps of 1/64 crop units (1 px of a 128-px crop); on the
#: val pairs 1/64 costs 0.06 dB of the model's PSNR against unquantized, 1/32 costs 0.15
BODY_STEPS_PER_UNIT = 64
#: largest |value| (2 crop units: the whole crop)
MAX_BODY_VALUE = 2 * BODY_STEPS_PER_UNIT
#: nodes per side the format can say
MIN_NODES, MAX_NODES = 2, 15
#: Exp-Golomb order of absolute residuals, and of escaped differences
ABSOLUTE_ORDER = 0
ESCAPE_ORDER = 2
#: differences in [-DIFFERENCE_RANGE, DIFFERENCE_RANGE] have a table entry, others escape
DIFFERENCE_RANGE = 4
#: frequencies of the residuals -4..4 and the escape of predicted messages (0.2 s apart), measured
#: on 5 training clips (11,466 residuals: 72 % zero; 23 B a message against 28 without the
#: left-neighbour prediction)
DIFFERENCE_COUNTS = (32, 70, 225, 1020, 7245, 1020, 225, 70, 32, 61)


@cache
def _difference_table() -> tuple[int, ...]:
    return cumulative_table(DIFFERENCE_COUNTS)


def _neighbours(nodes: int) -> list[int]:
    """For each value, the index of the value it is predicted from (-1: none): the same
    component of the node on the left, in the first column the node above."""
    out = []
    for row in range(nodes):
        for column in range(nodes):
            for component in range(2):
                if column:
                    out.append(2 * (row * nodes + column - 1) + component)
                elif row:
                    out.append(2 * ((row - 1) * nodes) + component)
                else:
                    out.append(-1)
    return out


def is_body_message(data: bytes) -> bool:
    """Whether ``data`` starts like a body message of this version (not validated)."""
    return len(data) >= 4 and data[0] == EXT8 and data[2] == BODY_EXT_TYPE and data[3] >> 4 == PACKET_VERSION


def encode_body(packet: BodyPacket) -> bytes:
    """The wire bytes of a body packet.

    Raises:
        ValueError: a field is out of its range (a bug of the caller).
    """
    if not 0 <= packet.seq < SEQ_MODULO:
        raise ValueError(f"seq={packet.seq} is outside [0, {SEQ_MODULO - 1}]")
    if not MIN_NODES <= packet.nodes <= MAX_NODES:
        raise ValueError(f"a body grid has {MIN_NODES} to {MAX_NODES} nodes per side, not {packet.nodes}")
    if len(packet.values) != 2 * packet.nodes**2:
        raise ValueError(f"a {packet.nodes}x{packet.nodes} body grid has {2 * packet.nodes**2} values")
    if not 0 <= packet.keyframe_id <= (255 if packet.absolute else 1):
        raise ValueError(f"keyframe id {packet.keyframe_id} is out of range for this packet")
    limit = MAX_BODY_VALUE if packet.absolute else 2 * MAX_BODY_VALUE
    if any(abs(v) > limit for v in packet.values):
        raise ValueError(f"body values must lie within +-{limit}")
    encoder = ArithmeticEncoder()
    encoder.bits(int(packet.absolute), 1)
    encoder.bits(packet.keyframe_id, 8 if packet.absolute else 1)
    encoder.bits(packet.nodes, 4)
    table = _difference_table()
    for value, neighbour in zip(packet.values, _neighbours(packet.nodes), strict=True):
        value -= packet.values[neighbour] if neighbour >= 0 else 0
        if packet.absolute:
            encoder.signed(value, ABSOLUTE_ORDER)
        else:
            encoder.difference(table, value, DIFFERENCE_RANGE, ESCAPE_ORDER)
    payload = bytes([PACKET_VERSION << 4 | packet.seq]) + encoder.finish()
    if len(payload) > 255:
        raise ValueError(f"a body message holds at most 255 bytes, this one needs {len(payload)}")
    return bytes([EXT8, len(payload), BODY_EXT_TYPE]) + payload


def decode_body(data: bytes) -> BodyPacket:
    """Parse a body message.

    Raises:
        PacketError: anything that is not exactly what :func:`encode_body` writes.
    """
    if len(data) < 4 or data[0] != EXT8 or data[2] != BODY_EXT_TYPE:
        raise PacketError("not a body message (it must be a msgpack ext 8 of type 1)")
    seq, decoder = open_payload(data, "body", 3)
    absolute = bool(decoder.bits(1))
    keyframe_id = decoder.bits(8 if absolute else 1)
    nodes = decoder.bits(4)
    if not MIN_NODES <= nodes <= MAX_NODES:
        raise PacketError(f"a body grid of {nodes} nodes per side")
    table = _difference_table()
    values: list[int] = []
    limit = MAX_BODY_VALUE if absolute else 2 * MAX_BODY_VALUE
    for neighbour in _neighbours(nodes):
        if absolute:
            value = decoder.signed(ABSOLUTE_ORDER)
        else:
            value = decoder.difference(table, DIFFERENCE_RANGE, ESCAPE_ORDER)
        value += values[neighbour] if neighbour >= 0 else 0
        if abs(value) > limit:
            raise PacketError(f"body value {value} is outside +-{limit}")
        values.append(value)
    packet = BodyPacket(seq, absolute, keyframe_id, nodes, tuple(values))
    if encode_body(packet) != bytes(data):
        raise PacketError("body message is not in canonical form (damaged or not written by facevc)")
    return packet
