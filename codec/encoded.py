"""What the encoder produced for one frame (:class:`EncodedFrame`), and how close the motion a
receiver decodes from it comes to the unquantized motion (:func:`keypoint_error_px`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .motion.extract import CanonicalFace
from .motion.params import MotionParams, keypoints_from_motion
from .packets import DecodedMotion, Packet, encode_packet
from .tracking import TrackResult

if TYPE_CHECKING:
    from .closed_loop import PictureCheck

__all__ = ["EncodedFrame", "keypoint_error_px"]


@dataclass
class EncodedFrame:
    """What one frame produced.

    Attributes:
        track: the tracker's result.
        time: capture time in seconds.
        packets: to send, in order (a keyframe comes before the motion that refers to it).
        messages: the same packets as wire bytes.
        motion: the unquantized motion of this frame (None without a face).
        keyframe_reason: why a keyframe was sent with this frame, if one was.
        canonical: the canonical face of the current keyframe.
        check: the closed loop's check of the receiver's picture, on a frame it checked.
    """

    track: TrackResult
    time: float
    packets: list[Packet] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    motion: MotionParams | None = None
    keyframe_reason: str | None = None
    canonical: CanonicalFace | None = None
    check: PictureCheck | None = None

    def add(self, packet: Packet, message: bytes | None = None) -> None:
        self.packets.append(packet)
        self.messages.append(message if message is not None else encode_packet(packet))


def keypoint_error_px(frame: EncodedFrame, decoded: DecodedMotion) -> float:
    """Mean 2D distance, in pixels of the crop, between the keypoints a receiver decodes from
    this frame's motion message and the keypoints before quantization."""
    if frame.motion is None or frame.canonical is None:
        raise ValueError("the frame has no motion to compare with")
    exact = keypoints_from_motion(frame.canonical.keypoints, frame.motion)
    error = np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean()
    return float(error) * decoded.keyframe.width / 2
