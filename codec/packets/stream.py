"""Motion packets in a stream: quantization with a dead zone, numbering, prediction from the
previous packet, periodic absolute packets, and the receiver's side that undoes all of it.

Prediction is closed-loop on the integers: a predicted packet carries ``q_t - q_{t-1}``, so
sender and receiver hold exactly the same numbers and nothing drifts.  A lost packet breaks
the chain only until the next absolute packet (at most ``absolute_interval`` packets later,
or sooner when the receiver asks with a ``motion_refresh`` control message).

Quantization is closed-loop on the keypoints too: the expression deltas are measured against
the *quantized* head pose, so they absorb the pose's rounding error; and a value keeps its
previous integer while it stays within :data:`DEAD_ZONE` steps of it (tracker jitter then costs
no bits; what moves is still followed to within a step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..motion.basis import ExpressionBasis, load_basis
from ..motion.params import MotionParams, keypoints_from_motion
from .errors import PacketError
from .messages import SEQ_MODULO, KeyframePacket, MotionPacket, StreamConfig
from .quant import pose_from_ints, pose_units

__all__ = ["DEAD_ZONE", "DecodedMotion", "MotionDecoder", "MotionEncoder"]

#: Reconstructed pose values beyond these are refused: yaw/pitch/roll, |t|, |log scale|.
_POSE_LIMITS = np.array([180.0, 180.0, 180.0, 100.0, 100.0, 100.0, 7.0])
#: Largest expression delta accepted, in crop units (a face is about 1 across).
_MAX_DELTA = 10.0
#: Largest gaze value accepted (eye half-widths: an iris is within about 1 of the centre).
_MAX_GAZE = 8.0
#: a value keeps its previous integer while within this many steps of it (0.5 = plain rounding)
DEAD_ZONE = 0.75


def _quantize(units: np.ndarray, held: np.ndarray | None) -> np.ndarray:
    rounded = np.round(units)
    if held is None or held.shape != units.shape:
        return rounded.astype(np.int64)
    return np.where(np.abs(units - held) < DEAD_ZONE, held, rounded).astype(np.int64)


def _stream_tick(timestamp_ms: float, fps: float) -> int:
    return max(0, round(timestamp_ms * fps / 1000))


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
        self._canonical: np.ndarray | None = None
        self._previous: np.ndarray | None = None  # the integers of the last packet, its tick
        self._previous_tick = 0
        self._held: np.ndarray | None = None
        self._since_absolute = 0
        self._absolute_left = 0

    def start_keyframe(self, keyframe_id: int, canonical_keypoints: np.ndarray) -> None:
        """A new keyframe was sent: the next packet refers to it and is absolute.

        Args:
            canonical_keypoints: (K, 3) its canonical keypoints ``x_c``.
        """
        self._keyframe_id = keyframe_id
        self._canonical = np.asarray(canonical_keypoints, dtype=np.float64)
        self._previous = self._held = None

    @property
    def absolute_next(self) -> bool:
        """Whether the next packet will be absolute (after a keyframe, a switch or a request)."""
        return self._previous is None or self._absolute_left > 0

    def request_absolute(self, count: int = 1) -> None:
        """Make the next ``count`` packets absolute (e.g. the receiver asked for a refresh: on a
        lossy link, more than one makes sure one gets through)."""
        self._previous = None
        self._absolute_left = max(self._absolute_left, count)

    def _expression_units(self, motion: MotionParams, pose_q: np.ndarray) -> np.ndarray:
        """The expression deltas against the quantized pose, in quantizer steps."""
        assert self._canonical is not None
        pose = pose_from_ints(pose_q, self.config.steps)
        keypoints = keypoints_from_motion(self._canonical, motion)
        delta = ((keypoints - pose.translation) @ pose.rotation() / pose.scale - self._canonical).reshape(-1)
        if self.basis is not None:
            return np.asarray(self.basis.components @ (delta - self.basis.mean) / self.basis.steps)
        return delta / self.config.steps.delta_steps(len(delta) // 3)

    def encode(self, motion: MotionParams, timestamp_ms: int) -> MotionPacket:
        """Quantize one frame's motion into the next packet."""
        if self._keyframe_id is None or self._canonical is None:
            raise RuntimeError("start_keyframe() must be called before the first motion packet")
        steps = self.config.steps
        held = self._held
        pose_q = _quantize(pose_units(motion.head_pose, steps), None if held is None else held[:7])
        expression_units = self._expression_units(motion, pose_q)
        units = [expression_units]
        if motion.gaze is not None:
            units.append(np.asarray(motion.gaze, dtype=np.float64).reshape(4) / steps.gaze)
        rest = np.concatenate(units)
        values = np.concatenate([pose_q, _quantize(rest, None if held is None else held[7:])])
        self._held = values.astype(np.float64)
        tick = _stream_tick(timestamp_ms, self.config.fps)
        if self._previous is not None and len(self._previous) != len(values):
            self._previous = None  # the gaze came or went: start afresh
        absolute = (
            self._previous is None
            or self._absolute_left > 0
            or self._since_absolute + 1 >= self.config.absolute_interval
            or tick < self._previous_tick
        )
        self._absolute_left = max(self._absolute_left - 1, 0)
        coded = values if absolute else values - self._previous
        self._since_absolute = 0 if absolute else self._since_absolute + 1
        ticks = tick if absolute else tick - self._previous_tick
        self._previous, self._previous_tick = values, tick
        count = len(expression_units)
        packet = MotionPacket(
            seq=self._seq % SEQ_MODULO,
            absolute=absolute,
            keyframe_id=self._keyframe_id if absolute else self._keyframe_id % 2,
            ticks=ticks,
            pose=tuple(int(v) for v in coded[:7]),
            expression=tuple(int(v) for v in coded[7 : 7 + count]),
            gaze=tuple(int(v) for v in coded[7 + count :]),
        )
        self._seq += 1
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
    (packets for a keyframe not received).  ``missing_keyframe``: after a refused packet, True
    when its keyframe is what is missing (ask for a keyframe) rather than its reference (ask for
    a refresh).
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
        self._last: tuple[int, int, np.ndarray, int] | None = None  # keyframe id, seq, integers, tick
        self._seq: int | None = None  # the last sequence number seen, extended beyond 16
        self.decoded = self.waiting = self.unknown_keyframe = 0
        self.missing_keyframe = False
        self._renumbered = False  # restart_sequence() since the last decoded packet

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

    def keyframe(self, keyframe_id: int) -> KeyframePacket | None:
        """The keyframe held with this id, or None."""
        return self._keyframes.get(keyframe_id)

    def forget_keyframe(self, keyframe_id: int) -> None:
        """Drop a keyframe (e.g. its replacement with the same id turned out unusable): motion
        naming it is then undecodable, not decoded against an older face."""
        self._keyframes.pop(keyframe_id, None)
        self._bases.pop(keyframe_id, None)
        if self._last is not None and self._last[0] == keyframe_id:
            self._last = None

    def sequence_gap(self, seq: int, elapsed_frames: float | None = None) -> int | None:
        """How far packet ``seq`` (0..15) is ahead of the last one seen: 1 = the next, more =
        packets lost, 0 or less = a duplicate or a late packet; None for the first packet.

        Args:
            elapsed_frames: frames of the stream's clock since the last packet arrived: it
                tells a gap of 3 from one of 19 (without it, the nearest forward gap is taken).
        """
        if self._seq is None:
            return None
        ahead = (seq - self._seq) % SEQ_MODULO
        expected = ahead if elapsed_frames is None else elapsed_frames
        return int(ahead + SEQ_MODULO * round((expected - ahead) / SEQ_MODULO))

    def restart_sequence(self) -> None:
        """Forget the numbering (the next packet is taken as it comes).  A predicted packet that
        follows is decoded against the last values as if one had been lost (when concealing):
        its number says nothing about the chain's any more."""
        self._seq = None
        self._renumbered = True

    def decode(self, packet: MotionPacket, gap: int | None = None) -> DecodedMotion | None:
        """Decode a motion packet.

        Args:
            gap: its :meth:`sequence_gap` (default: computed without a clock).

        Returns:
            The motion, or None when it cannot be decoded yet: its keyframe has not arrived
            (ask for one) or it is predicted from a packet that was lost (ask for a refresh
            or wait for the next absolute packet).

        Raises:
            PacketError: the packet does not fit its keyframe's layout or its values are out
            of range.
        """
        if gap is None:
            gap = self.sequence_gap(packet.seq)
        seq = packet.seq if self._seq is None or gap is None else self._seq + gap
        if gap is None or gap > 0:
            self._seq = seq
        last = self._last
        self.missing_keyframe = False
        if packet.absolute:
            keyframe_id = packet.keyframe_id
        elif last is None or last[0] % 2 != packet.keyframe_id:
            self.missing_keyframe = last is None and not self._keyframes
            self.waiting += 1
            return None
        else:
            keyframe_id = last[0]
        keyframe = self._keyframes.get(keyframe_id)
        if keyframe is None:
            self.unknown_keyframe += 1
            self.missing_keyframe = True
            return None
        basis = self._bases[keyframe_id]
        expected = basis.num_coefficients if basis is not None else 3 * len(keyframe.canonical_keypoints)
        if len(packet.expression) != expected:
            raise PacketError(
                f"motion packet {seq} has {len(packet.expression)} expression values, its keyframe needs {expected}"
            )
        coded = np.array(packet.pose + packet.expression + packet.gaze, dtype=np.int64)
        if packet.absolute:
            values, tick = coded, packet.ticks
            self.resynchronized = True
        else:
            assert last is not None
            if self._renumbered and self.conceal and len(last[2]) == len(coded):
                last = (last[0], seq - 2, last[2], last[3] - 1)  # one packet lost, of one frame
            if last[1] + 1 != seq:
                if not self.conceal or seq <= last[1] or len(last[2]) != len(coded):
                    self.waiting += 1
                    return None
                self.concealed += 1
                self.resynchronized = False
            elif len(last[2]) != len(coded):
                raise PacketError(f"motion packet {seq} has {len(coded)} values, its reference {len(last[2])}")
            values, tick = last[2] + coded, last[3] + packet.ticks + (seq - last[1] - 1)
        steps = keyframe.config.steps
        if (np.abs(values[:7] * steps.pose_steps()) > _POSE_LIMITS).any():
            raise PacketError(f"motion packet {seq} has head-pose values out of range")
        expression = values[7 : 7 + expected]
        if basis is None:
            delta = (expression * steps.delta_steps(expected // 3)).reshape(-1, 3).astype(np.float32)
        else:
            delta = basis.dequantize(expression)
        gaze = values[7 + expected :] * steps.gaze if packet.gaze else None
        if not np.all(np.abs(delta) <= _MAX_DELTA) or (gaze is not None and np.abs(gaze).max() > _MAX_GAZE):
            raise PacketError(f"motion packet {seq} has expression or gaze values out of range")
        motion = MotionParams(
            pose_from_ints(values[:7], steps), delta, None if gaze is None else gaze.reshape(2, 2).astype(np.float32)
        )
        self._last = (keyframe_id, seq, values, tick)
        self._renumbered = False
        self.decoded += 1
        timestamp_ms = round(tick * 1000 / keyframe.config.fps)
        return DecodedMotion(seq, timestamp_ms, keyframe, motion)
