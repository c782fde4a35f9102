"""The body messages' two ends: quantize and predict on the sender, rebuild on the receiver.

A body message is relative to the keyframe of its stream (displacements from the keyframe's
picture, not from the last frame), so a lost one costs nothing but the time until the next:
a predicted message needs the one just before it; without it the receiver keeps the field it
has until the next absolute message (one every :data:`ABSOLUTE_EVERY`).
"""

from __future__ import annotations

import numpy as np

from .body_coding import BODY_STEPS_PER_UNIT, MAX_BODY_VALUE
from .errors import PacketError
from .messages import SEQ_MODULO, BodyPacket

__all__ = ["ABSOLUTE_EVERY", "BodyDecoder", "BodyEncoder"]

#: every this many body messages, an absolute one (a receiver that lost one catches up)
ABSOLUTE_EVERY = 10
#: a node keeps its sent value until the measure leaves it by this many quantization steps
#: (the optical flow's jitter would otherwise cost bytes in every message)
HYSTERESIS = 0.8


class BodyEncoder:
    """Sender side: float node displacements in, body packets out (None when nothing changed)."""

    def __init__(self) -> None:
        self.keyframe_id: int | None = None
        self._sent: np.ndarray | None = None  # the integers of the last message
        self._seq = -1
        self._since_absolute = 0

    def start_keyframe(self, keyframe_id: int) -> None:
        """A new keyframe: the next message is absolute, against a still body."""
        self.keyframe_id = keyframe_id
        self._sent = None

    def encode(self, nodes: np.ndarray) -> BodyPacket | None:
        """(n, n, 2) float crop-unit node displacements -> the packet to send, or None when the
        quantized field is what the receiver already has (and no refresh is due).

        Raises:
            RuntimeError: before :meth:`start_keyframe`.
        """
        if self.keyframe_id is None:
            raise RuntimeError("body motion needs a keyframe first")
        scaled = np.asarray(nodes, np.float64).reshape(-1) * BODY_STEPS_PER_UNIT
        values = np.round(scaled)
        if self._sent is not None and len(self._sent) == len(values):
            values = np.where(np.abs(scaled - self._sent) < HYSTERESIS, self._sent, values)
        values = np.clip(values, -MAX_BODY_VALUE, MAX_BODY_VALUE).astype(np.int64)
        absolute = self._sent is None or len(self._sent) != len(values) or self._since_absolute >= ABSOLUTE_EVERY - 1
        if not absolute and self._sent is not None and np.array_equal(values, self._sent):
            return None
        self._seq = (self._seq + 1) % SEQ_MODULO
        if absolute:
            self._since_absolute = 0
            out = values
        else:
            assert self._sent is not None
            self._since_absolute += 1
            out = values - self._sent
        self._sent = values
        n = int(np.asarray(nodes).shape[0])
        keyframe = self.keyframe_id if absolute else self.keyframe_id % 2
        return BodyPacket(self._seq, absolute, keyframe, n, tuple(int(v) for v in out))


class BodyDecoder:
    """Receiver side: body packets in, the current field out (of :attr:`keyframe_id`: the
    keyframe the sender measured it against, the newest or another of the bank)."""

    def __init__(self) -> None:
        self.keyframe_id: int | None = None
        self._values: np.ndarray | None = None
        self._nodes = 0
        self._seq: int | None = None

    def start_keyframe(self, keyframe_id: int) -> None:
        """A new keyframe: its body is still until its first absolute message."""
        self.keyframe_id = keyframe_id
        self._values, self._seq = None, None

    @property
    def field(self) -> np.ndarray | None:
        """(n, n, 2) float32 crop-unit node displacements, or None (still)."""
        if self._values is None:
            return None
        return (self._values.reshape(self._nodes, self._nodes, 2) / BODY_STEPS_PER_UNIT).astype(np.float32)

    def decode(self, packet: BodyPacket) -> bool:
        """Apply one packet; False when it cannot be used (predicted for another keyframe, or
        from a message this side does not have: the field stays as it was).  An absolute
        packet makes its keyframe (any of the bank's) the field's keyframe.

        Raises:
            PacketError: the values leave their range (a hostile or broken sender).
        """
        if self.keyframe_id is None:
            return False
        values = np.asarray(packet.values, dtype=np.int64)
        if packet.absolute:  # names its keyframe in full: the sender may have switched references
            self.keyframe_id = packet.keyframe_id
        else:
            follows = self._seq is not None and packet.seq == (self._seq + 1) % SEQ_MODULO
            if (not follows or self._values is None or packet.nodes != self._nodes
                    or packet.keyframe_id != self.keyframe_id % 2):  # fmt: skip
                self._seq = None  # wait for the next absolute message
                return False
            values = self._values + values
        if np.abs(values).max(initial=0) > MAX_BODY_VALUE:
            raise PacketError(f"body values leave +-{MAX_BODY_VALUE}")
        self._values, self._nodes, self._seq = values, packet.nodes, packet.seq
        return True
