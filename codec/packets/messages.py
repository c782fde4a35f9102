"""The three kinds of message a call carries, as Python objects.

Wire layout (msgpack, see :mod:`codec.packets.wire`): every message is an array that starts
with ``[version, kind, ...]``.

- motion (kind 1), sent every frame, kept tiny:
  ``[1, 1, seq, timestamp_ms, keyframe_id, flags, payload]`` where ``payload`` (bin) holds the
  7 pose integers and the expression integers, Exp-Golomb coded; ``flags`` bit 0 = absolute
  (otherwise each integer is the difference to the packet ``seq - 1``).
- keyframe (kind 0): ``[1, 0, {fields}]``: the source image and the stream's metadata.
- control (kind 2): ``[1, 2, {fields}]``: requests and notices between the peers.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .quant import QuantSteps

__all__ = [
    "PACKET_VERSION",
    "ControlPacket",
    "ControlType",
    "KeyframePacket",
    "MotionPacket",
    "Packet",
    "PacketKind",
    "StreamConfig",
]

#: Version written in (and required of) every message.
PACKET_VERSION = 1


class PacketKind(enum.IntEnum):
    KEYFRAME = 0
    MOTION = 1
    CONTROL = 2


class ControlType(enum.Enum):
    KEYFRAME_REQUEST = "keyframe_request"  #: receiver -> sender: send a new keyframe
    MOTION_REFRESH = "motion_refresh"  #: receiver -> sender: send an absolute motion packet
    NO_FACE = "no_face"  #: sender -> receiver: no face in the picture; hold the last frame
    FACE_FOUND = "face_found"  #: sender -> receiver: a face is back (a keyframe follows)
    BYE = "bye"  #: either side: the call ends


@dataclass(frozen=True)
class StreamConfig:
    """How to read the motion packets that refer to a keyframe.

    Attributes:
        fps: nominal frame rate of the sender.
        crop_size: side in pixels of the square crop the keyframe shows.
        scheme: landmark scheme of the keypoints (``mediapipe478``, ``ibug68``).
        steps: quantization steps.
        absolute_interval: at least every this many motion packets is absolute.
        basis: id of the expression basis the deltas are coded in, or None for raw deltas.
    """

    fps: float = 25.0
    crop_size: int = 256
    scheme: str = "mediapipe478"
    steps: QuantSteps = field(default_factory=QuantSteps)
    absolute_interval: int = 8
    basis: str | None = None


@dataclass(frozen=True)
class KeyframePacket:
    """A source image and what the receiver needs to animate it.

    Attributes:
        keyframe_id: 0..255, wraps; motion packets name the keyframe they animate.
        timestamp_ms: capture time, milliseconds since the start of the stream.
        image_codec: ``"jpeg"``, ``"webp"`` or ``"png"``; image: the encoded crop.
        width, height: of the image in pixels.
        canonical_keypoints: (K, 3) float32 ``x_c`` in crop units.
        head_pose: (7,) float64 the keyframe's pose: yaw, pitch, roll (deg), tx, ty, tz, scale.
        config: the stream's metadata.
    """

    keyframe_id: int
    timestamp_ms: int
    image_codec: str
    image: bytes
    width: int
    height: int
    canonical_keypoints: np.ndarray
    head_pose: np.ndarray
    config: StreamConfig

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyframePacket):
            return NotImplemented
        return (
            (self.keyframe_id, self.timestamp_ms, self.image_codec, self.image, self.width, self.height, self.config)
            == (
                other.keyframe_id,
                other.timestamp_ms,
                other.image_codec,
                other.image,
                other.width,
                other.height,
                other.config,
            )
            and np.array_equal(self.canonical_keypoints, other.canonical_keypoints)
            and np.array_equal(self.head_pose, other.head_pose)
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class MotionPacket:
    """One frame's quantized motion.

    Attributes:
        seq: 0..2**32-1, +1 per motion packet (wraps).
        timestamp_ms: capture time in milliseconds since the start of the stream.
        keyframe_id: the keyframe these parameters animate.
        absolute: the integers are values, not differences to packet ``seq - 1``.
        pose: 7 ints (:data:`codec.packets.quant.POSE_FIELDS`).
        expression: ints: K*3 row-major deltas, or the basis coefficients.
    """

    seq: int
    timestamp_ms: int
    keyframe_id: int
    absolute: bool
    pose: tuple[int, ...]
    expression: tuple[int, ...]


@dataclass(frozen=True)
class ControlPacket:
    """A request or notice; ``reason`` is free text for logs (at most 200 characters)."""

    type: ControlType
    timestamp_ms: int
    keyframe_id: int | None = None
    reason: str = ""


Packet = KeyframePacket | MotionPacket | ControlPacket
