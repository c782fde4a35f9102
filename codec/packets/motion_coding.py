"""The motion message of version 2: a msgpack ``bin`` of, typically, 6 to 10 bytes.

Layout: ``c4 LEN`` (msgpack bin 8), one byte ``version << 4 | seq % 16``, then the arithmetic-
coded payload (:mod:`codec.packets.arith`), in this order:

1. flags (one symbol): absolute, has gaze;
2. the number of expression values (one symbol: the shipped basis's 24, raw 60, or other);
3. absolute packets: keyframe id (8 bits), frame tick, then every integer as an Exp-Golomb
   code (they are rare: the first after a keyframe, a refresh, one every few seconds);
4. predicted packets: the keyframe id's parity (1 bit), frames since the previous packet, then
   each integer's difference to the previous packet, each field with its own static frequency
   table (an escape symbol leads to an Exp-Golomb code for rare large differences).

The tables are part of the format (version 2 means these tables): they are fitted on the
training clips by ``python -m codec.train.fit_motion_tables`` and ship as
``codec/packets/data/motion-v2-tables.npz``, whose digest a test pins.

Every byte string either decodes to a packet that encodes back to exactly the same bytes, or
raises :class:`PacketError`.  An arithmetic code has no redundancy to spare: a payload cut short
*and* relabelled with the shorter length can read as another valid packet.  The msgpack length
catches a cut alone, the transports' integrity checks (SRTP, DTLS) catch damage, and the stream
decoder's range checks catch most of the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from .arith import ArithmeticEncoder, cumulative_table, open_payload
from .errors import PacketError
from .messages import PACKET_VERSION, SEQ_MODULO, MotionPacket

__all__ = [
    "MAX_EXPRESSION_VALUES",
    "MOTION_TABLES_SHA256",
    "TABLE_RANGE",
    "MotionTables",
    "decode_motion",
    "encode_motion",
    "is_motion_message",
    "load_motion_tables",
]

#: msgpack ``bin 8`` marker: a motion message starts with it
BIN8 = 0xC4
MAX_EXPRESSION_VALUES = 384
#: a motion message's bytes after the bin header (msgpack bin 8)
MAX_PAYLOAD_BYTES = 255
#: differences in [-TABLE_RANGE, TABLE_RANGE] have a table entry; others escape
TABLE_RANGE = 12
#: table symbol of the escape (after the 2 * TABLE_RANGE + 1 values)
ESCAPE = 2 * TABLE_RANGE + 1
#: expression layouts with fitted tables, by value count (others use the generic table)
LAYOUTS = (24, 60)
#: Exp-Golomb orders of absolute values: frame tick, pose, expression, gaze
_ABSOLUTE_ORDERS = {"tick": 10, "pose": 5, "expression": 3, "gaze": 2}
_ESCAPE_ORDER = 2
#: largest frame tick (2**32 ms at 240 fps is far beyond any call)
MAX_TICK = 2**32 - 1
MOTION_TABLES_FILE = "motion-v2-tables.npz"
MOTION_TABLES_SHA256 = "93b2f2332ba94cb858988d420a6147d27d0f3c4a57104b29ca07da7196d0b353"


@dataclass(frozen=True)
class MotionTables:
    """Cumulative frequency tables (see :func:`codec.packets.arith.cumulative_table`)."""

    flags: tuple[int, ...]  #: 4 symbols: bit 0 absolute, bit 1 gaze
    layout: tuple[int, ...]  #: len(LAYOUTS) + 1 symbols: LAYOUTS[i], or "other"
    tick: tuple[int, ...]  #: frames since the previous packet minus 1
    pose: tuple[tuple[int, ...], ...]  #: 7 tables
    expression: dict[int, tuple[tuple[int, ...], ...]]  #: per layout: one table per value
    generic: tuple[int, ...]  #: expression values of other layouts
    gaze: tuple[tuple[int, ...], ...]  #: 2 tables: u, v

    def expression_table(self, count: int, index: int) -> tuple[int, ...]:
        tables = self.expression.get(count)
        return tables[index] if tables is not None else self.generic


def tables_from_counts(counts: dict[str, np.ndarray]) -> MotionTables:
    """Tables from (smoothed) symbol counts, as :mod:`codec.train.fit_motion_tables` saves them."""

    def rows(name: str) -> tuple[tuple[int, ...], ...]:
        return tuple(cumulative_table(row) for row in counts[name])

    return MotionTables(
        flags=cumulative_table(counts["flags"]),
        layout=cumulative_table(counts["layout"]),
        tick=cumulative_table(counts["tick"]),
        pose=rows("pose"),
        expression={count: rows(f"expression{count}") for count in LAYOUTS},
        generic=cumulative_table(counts["generic"]),
        gaze=rows("gaze"),
    )


@cache
def load_motion_tables() -> MotionTables:
    """The shipped tables of this version."""
    data = resources.files("codec.packets.data").joinpath(MOTION_TABLES_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MOTION_TABLES_SHA256:
        raise RuntimeError(f"{MOTION_TABLES_FILE} is damaged (sha256 {digest[:16]}...): reinstall facevc")
    import io

    with np.load(io.BytesIO(data)) as archive:
        return tables_from_counts({name: archive[name] for name in archive.files})


def is_motion_message(data: bytes) -> bool:
    """Whether ``data`` starts like a motion message of this version (not validated)."""
    return len(data) >= 3 and data[0] == BIN8 and data[2] >> 4 == PACKET_VERSION


def encode_motion(packet: MotionPacket, tables: MotionTables | None = None) -> bytes:
    """The wire bytes of a motion packet.

    Raises:
        ValueError: a field is out of its range (a bug of the caller).
    """
    tables = tables or load_motion_tables()
    if not 0 <= packet.seq < SEQ_MODULO:
        raise ValueError(f"seq={packet.seq} is outside [0, {SEQ_MODULO - 1}]")
    if len(packet.pose) != 7 or len(packet.gaze) not in (0, 4):
        raise ValueError("a motion packet has 7 pose values and 0 or 4 gaze values")
    if not 1 <= len(packet.expression) <= MAX_EXPRESSION_VALUES:
        raise ValueError(f"a motion packet has 1 to {MAX_EXPRESSION_VALUES} expression values")
    if not 0 <= packet.keyframe_id <= (255 if packet.absolute else 1):
        raise ValueError(f"keyframe id {packet.keyframe_id} is out of range for this packet")
    if not 0 <= packet.ticks <= MAX_TICK:
        raise ValueError(f"ticks={packet.ticks} is outside [0, {MAX_TICK}]")
    encoder = ArithmeticEncoder()
    encoder.symbol(tables.flags, int(packet.absolute) | 2 * bool(packet.gaze))
    count = len(packet.expression)
    layout = LAYOUTS.index(count) if count in LAYOUTS else len(LAYOUTS)
    encoder.symbol(tables.layout, layout)
    if layout == len(LAYOUTS):
        encoder.signed(count, 4)
    if packet.absolute:
        encoder.bits(packet.keyframe_id, 8)
        encoder.signed(packet.ticks, _ABSOLUTE_ORDERS["tick"])
        for group, values in (("pose", packet.pose), ("expression", packet.expression), ("gaze", packet.gaze)):
            for value in values:
                encoder.signed(value, _ABSOLUTE_ORDERS[group])
    else:
        encoder.bits(packet.keyframe_id, 1)
        encoder.difference(tables.tick, packet.ticks - 1, TABLE_RANGE, _ESCAPE_ORDER)
        for value, table in zip(packet.pose, tables.pose, strict=True):
            encoder.difference(table, value, TABLE_RANGE, _ESCAPE_ORDER)
        for index, value in enumerate(packet.expression):
            encoder.difference(tables.expression_table(count, index), value, TABLE_RANGE, _ESCAPE_ORDER)
        for index, value in enumerate(packet.gaze):
            encoder.difference(tables.gaze[index % 2], value, TABLE_RANGE, _ESCAPE_ORDER)
    payload = bytes([PACKET_VERSION << 4 | packet.seq]) + encoder.finish()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a motion message holds at most {MAX_PAYLOAD_BYTES} bytes, this one needs {len(payload)}")
    return bytes([BIN8, len(payload)]) + payload


#: largest value an absolute field may hold (bounds a hostile packet's numbers)
_MAX_ABSOLUTE = 2**31


def decode_motion(data: bytes, tables: MotionTables | None = None) -> MotionPacket:
    """Parse a motion message.

    Raises:
        PacketError: anything that is not exactly what :func:`encode_motion` writes.
    """
    tables = tables or load_motion_tables()
    if len(data) < 3 or data[0] != BIN8:
        raise PacketError("not a motion message (it must be a msgpack bin 8)")
    seq, decoder = open_payload(data, "motion", 2)
    flags = decoder.symbol(tables.flags)
    absolute, has_gaze = bool(flags & 1), bool(flags & 2)
    layout = decoder.symbol(tables.layout)
    count = LAYOUTS[layout] if layout < len(LAYOUTS) else decoder.signed(4)
    if not 1 <= count <= MAX_EXPRESSION_VALUES or (layout == len(LAYOUTS) and count in LAYOUTS):
        raise PacketError(f"motion packet has {count} expression values (1 to {MAX_EXPRESSION_VALUES} allowed)")
    sizes = {"pose": 7, "expression": count, "gaze": 4 if has_gaze else 0}
    values: dict[str, list[int]] = {}
    if absolute:
        keyframe_id = decoder.bits(8)
        ticks = decoder.signed(_ABSOLUTE_ORDERS["tick"])
        for group, size in sizes.items():
            values[group] = [decoder.signed(_ABSOLUTE_ORDERS[group]) for _ in range(size)]
            if any(abs(v) > _MAX_ABSOLUTE for v in values[group]):
                raise PacketError(f"motion packet has {group} values out of range")
    else:
        keyframe_id = decoder.bits(1)
        ticks = decoder.difference(tables.tick, TABLE_RANGE, _ESCAPE_ORDER) + 1
        values["pose"] = [decoder.difference(table, TABLE_RANGE, _ESCAPE_ORDER) for table in tables.pose]
        values["expression"] = [
            decoder.difference(tables.expression_table(count, i), TABLE_RANGE, _ESCAPE_ORDER) for i in range(count)
        ]
        values["gaze"] = [
            decoder.difference(tables.gaze[i % 2], TABLE_RANGE, _ESCAPE_ORDER) for i in range(sizes["gaze"])
        ]
    if not 0 <= ticks <= MAX_TICK:
        raise PacketError(f"motion packet's frame clock {ticks} is out of range")
    packet = MotionPacket(
        seq, absolute, keyframe_id, ticks, tuple(values["pose"]), tuple(values["expression"]), tuple(values["gaze"])
    )
    if encode_motion(packet, tables) != bytes(data):
        raise PacketError("motion payload is not what an encoder writes (damaged or padded)")
    return packet
