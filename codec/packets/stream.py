"""Motion packets in a stream: numbering, prediction from the previous packet, periodic
absolute packets, and the receiver's side that undoes all of it.

Prediction is closed-loop on the integers: a predicted packet carries ``q_t - q_{t-1}``, so
sender and receiver hold exactly the same numbers and nothing drifts.  A lost packet breaks
the chain only until the next absolute packet (at most ``absolute_interval`` packets later,
or sooner when the receiver asks with a ``motion_refresh`` control message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..motion.basis import ExpressionBasis, load_basis
from ..motion.params import MotionParams, keypoints_from_motion
from .errors import PacketError
from .messages import KeyframePacket, MotionPacket, StreamConfig
from .quant import dequantize_motion, quantize_motion

__all__ = ["DecodedMotion", "MotionDecoder", "MotionEncoder"]

_UINT32 = 2**32
#: Reconstructed pose values beyond these are refused: yaw/pitch/roll, |t|, |log scale|.
_POSE_LIMITS = np.array([180.0, 180.0, 180.0, 100.0, 100.0, 100.0, 7.0])
#: Largest expression delta accepted, in crop units (a face is about 1 across).
_MAX_DELTA = 10.0


def _expression_to_ints(motion: MotionParams, config: StreamConfig, basis: ExpressionBasis | None) -> np.ndarray:
    if basis is None:
        return quantize_motion(motion, config.steps)[1]
    return basis.quantize(motion.expression_delta)


class MotionEncoder:
    """Sender side.

    Args:
        config: the stream's settings (also sent in every keyframe).
        basis: the expression basis named by ``config.basis`` (loaded when omitted).
    """

    def __init__(self, config: StreamConfig, basis: ExpressionBasis | None = None) -> None:
        self.config = config
        self.basis = basis if basis is not None or config.basis is None else load_basis(config.basis)
        self._seq = 0
        self._keyframe_id: int | None = None
        self._previous: np.ndarray | None = None
        self._since_absolute = 0
        self._absolute_left = 0

    def start_keyframe(self, keyframe_id: int) -> None:
        """A new keyframe was sent: the next packet refers to it and is absolute."""
        self._keyframe_id = keyframe_id
        self._previous = None

    def request_absolute(self, count: int = 1) -> None:
        """Make the next ``count`` packets absolute (e.g. the receiver asked for a refresh: on a
        lossy link, more than one makes sure one gets through)."""
        self._previous = None
        self._absolute_left = max(self._absolute_left, count)

    def encode(self, motion: MotionParams, timestamp_ms: int) -> MotionPacket:
        """Quantize one frame's motion into the next packet."""
        if self._keyframe_id is None:
            raise RuntimeError("start_keyframe() must be called before the first motion packet")
        pose_q = quantize_motion(motion, self.config.steps)[0]
        values = np.concatenate([pose_q, _expression_to_ints(motion, self.config, self.basis)])
        absolute = (
            self._previous is None
            or self._absolute_left > 0
            or self._since_absolute + 1 >= self.config.absolute_interval
        )
        self._absolute_left = max(self._absolute_left - 1, 0)
        coded = values if absolute else values - self._previous
        self._since_absolute = 0 if absolute else self._since_absolute + 1
        self._previous = values
        packet = MotionPacket(
            seq=self._seq,
            timestamp_ms=int(timestamp_ms) % _UINT32,
            keyframe_id=self._keyframe_id,
            absolute=absolute,
            pose=tuple(int(v) for v in coded[:7]),
            expression=tuple(int(v) for v in coded[7:]),
        )
        self._seq = (self._seq + 1) % _UINT32
        return packet


@dataclass(frozen=True)
class DecodedMotion:
    """A motion packet made usable: the keyframe it animates and its motion parameters."""

    seq: int
    timestamp_ms: int
    keyframe: KeyframePacket
    motion: MotionParams

    def keypoints(self) -> np.ndarray:
        """(K, 3) float64 driving keypoints in crop units."""
        return keypoints_from_motion(self.keyframe.canonical_keypoints, self.motion)


class MotionDecoder:
    """Receiver side.  Keeps the recent keyframes and the last decoded integers.

    ``extra_bases``: expression bases to know besides the shipped ones (for experiments).

    ``conceal``: when a predicted packet's reference was lost, apply its differences to the last
    decoded values anyway (the lost packet's change is missed, a fraction of a pixel, until the
    next absolute packet resynchronizes) instead of refusing it.  A live call wants this: the
    picture keeps moving; a file inspection does not.

    Counters (for statistics): ``decoded``, ``concealed`` (decoded approximately),
    ``waiting`` (predicted packets refused for a lost reference), ``unknown_keyframe``
    (packets for a keyframe not received).
    """

    def __init__(
        self, max_keyframes: int = 4, extra_bases: Mapping[str, ExpressionBasis] | None = None, conceal: bool = False
    ) -> None:
        self.conceal = conceal
        self.concealed = 0
        self.resynchronized = True  #: False after a concealed packet, until an absolute one
        self._extra_bases = dict(extra_bases or {})
        self._keyframes: dict[int, KeyframePacket] = {}
        self._bases: dict[int, ExpressionBasis | None] = {}
        self._max_keyframes = max_keyframes
        self._last: tuple[int, int, np.ndarray] | None = None  # keyframe id, seq, integers
        self.decoded = self.waiting = self.unknown_keyframe = 0

    @property
    def keyframe_ids(self) -> set[int]:
        """Ids of the keyframes held."""
        return set(self._keyframes)

    def add_keyframe(self, keyframe: KeyframePacket) -> None:
        """Register a keyframe.

        Raises:
            PacketError: its basis is unknown or does not fit its keypoints.
        """
        name = keyframe.config.basis
        try:
            basis = None if name is None else self._extra_bases.get(name) or load_basis(name)
        except KeyError as exc:
            raise PacketError(str(exc.args[0])) from exc
        if basis is not None and basis.num_keypoints != len(keyframe.canonical_keypoints):
            raise PacketError(
                f"expression basis {basis.basis_id} is for {basis.num_keypoints} keypoints, "
                f"the keyframe has {len(keyframe.canonical_keypoints)}"
            )
        self._keyframes.pop(keyframe.keyframe_id, None)
        self._keyframes[keyframe.keyframe_id] = keyframe
        self._bases[keyframe.keyframe_id] = basis
        while len(self._keyframes) > self._max_keyframes:
            oldest = next(iter(self._keyframes))
            del self._keyframes[oldest], self._bases[oldest]
        if self._last is not None and self._last[0] == keyframe.keyframe_id:
            self._last = None  # a re-sent id starts a new chain

    def forget_keyframe(self, keyframe_id: int) -> None:
        """Drop a keyframe (e.g. its replacement with the same id turned out unusable): motion
        naming it is then undecodable, not decoded against an older face."""
        self._keyframes.pop(keyframe_id, None)
        self._bases.pop(keyframe_id, None)
        if self._last is not None and self._last[0] == keyframe_id:
            self._last = None

    def decode(self, packet: MotionPacket) -> DecodedMotion | None:
        """Decode a motion packet.

        Returns:
            The motion, or None when it cannot be decoded yet: its keyframe has not arrived
            (ask for one) or it is predicted from a packet that was lost (ask for a refresh
            or wait for the next absolute packet).

        Raises:
            PacketError: the packet does not fit its keyframe's layout or its values are out
            of range.
        """
        keyframe = self._keyframes.get(packet.keyframe_id)
        if keyframe is None:
            self.unknown_keyframe += 1
            return None
        basis = self._bases[packet.keyframe_id]
        expected = basis.num_coefficients if basis is not None else 3 * len(keyframe.canonical_keypoints)
        if len(packet.expression) != expected:
            raise PacketError(
                f"motion packet {packet.seq} has {len(packet.expression)} expression values, "
                f"its keyframe needs {expected}"
            )
        coded = np.array(packet.pose + packet.expression, dtype=np.int64)
        if packet.absolute:
            values = coded
            self.resynchronized = True
        else:
            last = self._last
            if last is None or last[0] != packet.keyframe_id:
                self.waiting += 1
                return None
            if (last[1] + 1) % _UINT32 != packet.seq:
                ahead = (packet.seq - last[1]) % _UINT32
                if not self.conceal or ahead >= 2**31:  # refused, or an old packet arriving late
                    self.waiting += 1
                    return None
                self.concealed += 1
                self.resynchronized = False
            values = last[2] + coded
        steps = keyframe.config.steps
        pose_values = np.abs(values[:7] * steps.pose_steps())
        if (pose_values > _POSE_LIMITS).any():
            raise PacketError(f"motion packet {packet.seq} has head-pose values out of range")
        if basis is None:
            motion = dequantize_motion(values[:7], values[7:], steps)
        else:
            motion = MotionParams(
                dequantize_motion(values[:7], np.zeros(0, np.int64), steps).head_pose, basis.dequantize(values[7:])
            )
        if not np.all(np.abs(motion.expression_delta) <= _MAX_DELTA):
            raise PacketError(f"motion packet {packet.seq} has expression deltas out of range")
        self._last = (packet.keyframe_id, packet.seq, values)
        self.decoded += 1
        return DecodedMotion(packet.seq, packet.timestamp_ms, keyframe, motion)
