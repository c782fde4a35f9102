"""The sender's per-frame work: track, extract motion, decide on keyframes, make packets.

Transport-agnostic: the ``encode`` command writes the packets to a file, the live call
(aiortc) sends them over data channels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from codec.images import encode_image
from codec.motion.extract import CanonicalFace, MotionExtractor
from codec.motion.params import MotionParams
from codec.packets import (
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionEncoder,
    Packet,
    StreamConfig,
)
from codec.tracking import CropBox, FaceTracker, TrackResult, create_tracker

from .keyframes import KeyframePolicy

__all__ = ["FrameOutput", "SenderPipeline"]


def crop_brightness(frame: np.ndarray, crop: CropBox) -> float:
    """Mean level in [0, 255] of the crop's part of ``frame``, from about 32x32 samples."""
    height, width = frame.shape[:2]
    x0, y0 = max(int(crop.x0), 0), max(int(crop.y0), 0)
    x1, y1 = min(int(crop.x0 + crop.side), width), min(int(crop.y0 + crop.side), height)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    step = max(int(crop.side) // 32, 1)
    return float(frame[y0:y1:step, x0:x1:step].mean())


@dataclass
class FrameOutput:
    """What one frame produced.

    Attributes:
        track: the tracker's result.
        packets: to send, in order (a keyframe comes before the motion that refers to it).
        motion: the unquantized motion of this frame (None without a face).
        keyframe_reason: why a keyframe was sent with this frame, if one was.
        canonical: the canonical face of the current keyframe.
    """

    track: TrackResult
    packets: list[Packet] = field(default_factory=list)
    motion: MotionParams | None = None
    keyframe_reason: str | None = None
    canonical: CanonicalFace | None = None


class SenderPipeline:
    """Frames in, packets out.

    Args:
        config: stream settings (sent in each keyframe).
        tracker: face tracker (default: :func:`codec.tracking.create_tracker`).
        image_codec, image_quality: how keyframes are compressed.
        keyframe_policy: when to send keyframes.
    """

    def __init__(
        self,
        config: StreamConfig | None = None,
        tracker: FaceTracker | None = None,
        image_codec: str = "webp",
        image_quality: int = 90,
        keyframe_policy: KeyframePolicy | None = None,
    ) -> None:
        self.config = config or StreamConfig()
        self.tracker = tracker or create_tracker()
        self.extractor = MotionExtractor(self.tracker.scheme)
        if self.extractor.scheme.name != self.config.scheme:
            self.config = dataclasses.replace(self.config, scheme=self.extractor.scheme.name)
        self.encoder = MotionEncoder(self.config)
        self.policy = keyframe_policy or KeyframePolicy()
        self.image_codec = image_codec
        self.image_quality = image_quality
        self._canonical: CanonicalFace | None = None
        self._keyframe_id = -1
        self._had_face = False
        self._keyframe_requested = False

    def request_keyframe(self) -> None:
        """Send a keyframe with the next frame that has a face."""
        self._keyframe_requested = True

    def request_absolute(self, count: int = 3) -> None:
        """Make the next ``count`` motion packets absolute (a refresh after a loss)."""
        self.encoder.request_absolute(count)

    def _keyframe(self, frame: np.ndarray, track: TrackResult, timestamp_ms: int) -> KeyframePacket:
        assert track.crop is not None
        self._canonical = self.extractor.canonicalize(track.crop_landmarks())
        self._keyframe_id = (self._keyframe_id + 1) % 256
        self.encoder.start_keyframe(self._keyframe_id)
        crop = track.crop.extract(frame, self.config.crop_size)
        return KeyframePacket(
            keyframe_id=self._keyframe_id,
            timestamp_ms=timestamp_ms,
            image_codec=self.image_codec,
            image=encode_image(crop, self.image_codec, self.image_quality),
            width=self.config.crop_size,
            height=self.config.crop_size,
            canonical_keypoints=self._canonical.keypoints,
            head_pose=self._canonical.head_pose.as_vector(),
            config=self.config,
        )

    def process(self, frame: np.ndarray, time: float) -> FrameOutput:
        """Handle one (H, W, 3) uint8 RGB frame taken at ``time`` seconds."""
        track = self.tracker.process(frame, time)
        timestamp_ms = max(0, round(time * 1000))
        output = FrameOutput(track)
        if not track.has_face:
            if self._had_face:
                output.packets.append(ControlPacket(ControlType.NO_FACE, timestamp_ms, reason="face lost"))
            self._had_face = False
            return output
        if not self._had_face and self._canonical is not None:
            output.packets.append(ControlPacket(ControlType.FACE_FOUND, timestamp_ms))
        self._had_face = True
        landmarks = track.crop_landmarks()
        motion = self.extractor.extract(landmarks, self._canonical) if self._canonical is not None else None
        brightness = crop_brightness(frame, track.crop) if track.crop is not None else None
        head_pose = motion.head_pose if motion is not None else None
        reason = "requested" if self._keyframe_requested else self.policy.reason(track, head_pose, brightness)
        if reason is not None:
            output.packets.append(self._keyframe(frame, track, timestamp_ms))
            assert self._canonical is not None
            self.policy.sent(time, self._canonical.head_pose, brightness)
            self._keyframe_requested = False
            output.keyframe_reason = reason
            motion = self.extractor.extract(landmarks, self._canonical)
        assert motion is not None and self._canonical is not None
        output.canonical = self._canonical
        output.motion = motion
        output.packets.append(self.encoder.encode(motion, timestamp_ms))
        return output
