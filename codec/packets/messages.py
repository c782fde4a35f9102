"""The five kinds of message a call carries, as Python objects.

Wire layout (msgpack, see :mod:`codec.packets.wire`): every message is an array that starts
with ``[version, kind, ...]``.

- motion (kind 1), sent every frame, kept tiny (see :mod:`codec.packets.motion_coding`): one
  msgpack ``bin`` whose first byte holds the version (high nibble) and the sequence number
  modulo 16 (low nibble); the rest is arithmetic-coded: flags, keyframe, frame clock, pose,
  expression and gaze integers, each either absolute or the difference to the previous packet.
- keyframe (kind 0): ``[2, 0, {fields}]``: the source image and the stream's metadata.
- control (kind 2): ``[2, 2, {fields}]``: requests and notices between the peers.
- body (kind 3), a few times a second: the coarse motion outside the face, a msgpack ``ext``
  of its own format (see :mod:`codec.packets.body_coding`).
- mouth (kind 4): ``[2, 4, {fields}]``: an open mouth the sender has seen, for a keyframe
  whose own mouth is closed (see :mod:`codec.geometry.mouth_reference`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .quant import QuantSteps

__all__ = [
    "DEFAULT_BASIS",
    "PACKET_VERSION",
    "BodyPacket",
    "ControlPacket",
    "ControlType",
    "KeyframePacket",
    "MotionPacket",
    "MouthPacket",
    "Packet",
    "PacketKind",
    "StreamConfig",
]

#: Version written in (and required of) every message.
PACKET_VERSION = 2
#: the expression basis of a stream unless its settings say otherwise (ships in codec/motion/data)
DEFAULT_BASIS = "pca-k20m24-3384d501"


class PacketKind(enum.IntEnum):
    KEYFRAME = 0
    MOTION = 1
    CONTROL = 2
    BODY = 3
    MOUTH = 4


class ControlType(enum.Enum):
    KEYFRAME_REQUEST = "keyframe_request"  #: receiver -> sender: send a new keyframe
    MOTION_REFRESH = "motion_refresh"  #: receiver -> sender: send an absolute motion packet
    NO_FACE = "no_face"  #: sender -> receiver: no face in the picture; hold the last frame
    FACE_FOUND = "face_found"  #: sender -> receiver: a face is back (a keyframe follows)
    BYE = "bye"  #: either side: the call ends
    KEYFRAME_ACK = "keyframe_ack"  #: receiver -> sender: keyframe ``keyframe_id`` is held and ready to paint
    #: sender -> receiver: paint the newest mouth received into keyframe ``keyframe_id``'s pictures too
    MOUTH_REUSE = "mouth_reuse"


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
    absolute_interval: int = 120
    basis: str | None = DEFAULT_BASIS


@dataclass(frozen=True)
class KeyframePacket:
    """A source image and what the receiver needs to animate it.

    Attributes:
        keyframe_id: 0..255, wraps; motion packets name the keyframe they animate.
        timestamp_ms: capture time, milliseconds since the start of the stream.
        image_codec: ``"avif"``, ``"jpeg"``, ``"webp"`` or ``"png"``; image: the encoded crop.
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


#: motion sequence numbers wrap at this (the receiver extends them with its clock)
SEQ_MODULO = 16


@dataclass(frozen=True)
class MotionPacket:
    """One frame's quantized motion, as on the wire.

    Attributes:
        seq: 0..15, +1 per motion packet (wraps; :data:`SEQ_MODULO`).
        absolute: the integers are values, not differences to the previous packet.
        keyframe_id: the keyframe these parameters animate: its id (0..255) in an absolute
            packet, its id modulo 2 in a predicted one (which continues its reference's keyframe).
        ticks: capture time in frames of the stream's clock (``config.fps``) since the
            stream's start; in a predicted packet, frames since the previous packet.
        pose: 7 ints (:data:`codec.packets.quant.POSE_FIELDS`).
        expression: ints: the expression basis coefficients, or K*3 row-major deltas.
        gaze: 4 ints (right eye u, v, left eye u, v), or none when the tracker has no irises.
    """

    seq: int
    absolute: bool
    keyframe_id: int
    ticks: int
    pose: tuple[int, ...]
    expression: tuple[int, ...]
    gaze: tuple[int, ...] = ()


@dataclass(frozen=True)
class ControlPacket:
    """A request or notice; ``reason`` is free text for logs (at most 200 characters)."""

    type: ControlType
    timestamp_ms: int
    keyframe_id: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class BodyPacket:
    """The body field of one moment, as on the wire.

    Attributes:
        seq: 0..15, +1 per body message (its own sequence, not the motion's).
        absolute: the values are values, not differences to body message ``seq - 1``.
        keyframe_id: the keyframe the field is relative to: its id (0..255) when absolute,
            its parity when predicted.
        nodes: nodes per side of the grid.
        values: 2 * nodes**2 ints (x, y per node, row by row), in 1/BODY_STEPS_PER_UNIT crop units.
    """

    seq: int
    absolute: bool
    keyframe_id: int
    nodes: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class MouthPacket:
    """An open mouth for the pictures of one keyframe (:mod:`codec.geometry.mouth_reference`).

    Attributes:
        keyframe_id: 0..255, the keyframe whose pictures it is painted into.
        image_codec: as a keyframe's; image: the encoded window around the mouth.
        width, height: of the window in pixels.
        ring: (20, 2) float32 pixel positions of the inner lip line in the window
            (:data:`codec.geometry.flow.MOUTH_RING` order), within ``[0, width] x [0,
            height]``; on the wire in :data:`RING_LEVELS` steps of the window's width and
            height (:func:`ring_on_wire`: a quarter pixel for a 64-pixel mouth).
    """

    keyframe_id: int
    image_codec: str
    image: bytes
    width: int
    height: int
    ring: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MouthPacket):
            return NotImplemented
        return (self.keyframe_id, self.image_codec, self.image, self.width, self.height) == (
            other.keyframe_id,
            other.image_codec,
            other.image,
            other.width,
            other.height,
        ) and np.array_equal(self.ring, other.ring)

    __hash__ = None  # type: ignore[assignment]


#: a mouth packet's ring positions are sent as this many steps of its window's side (a byte)
RING_LEVELS = 255


def ring_levels(ring: np.ndarray, width: int, height: int) -> np.ndarray:
    """(20, 2) uint8 wire steps of a (20, 2) pixel ring in a ``width`` x ``height`` window."""
    fraction = np.asarray(ring, np.float64) / np.array([width, height], np.float64)
    return np.clip(np.round(fraction * RING_LEVELS), 0, RING_LEVELS).astype(np.uint8)


def ring_from_levels(levels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(20, 2) float32 pixel ring of (20, 2) wire steps (:func:`ring_levels`)."""
    return (levels.astype(np.float32) * np.array([width, height], np.float32) / np.float32(RING_LEVELS)).astype(
        np.float32
    )


def ring_on_wire(ring: np.ndarray, width: int, height: int) -> np.ndarray:
    """(20, 2) float32: a pixel ring as the receiver reads it (positions outside the window clamped to it)."""
    return ring_from_levels(ring_levels(ring, width, height), width, height)


Packet = KeyframePacket | MotionPacket | ControlPacket | BodyPacket | MouthPacket
