"""When the encoder sends a new keyframe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion.params import HeadPose
from .tracking import CropBox
from .tracking.base import TrackResult, TrackStatus

__all__ = ["TURN_REASON", "KeyframePolicy", "crop_brightness"]

#: how the reason for a keyframe sent because the head turned away begins
TURN_REASON = "head turned"


@dataclass
class KeyframePolicy:
    """Decide, frame by frame, whether the picture moved too far from the keyframe.

    A keyframe is due when there is none yet, when the face was (re)acquired by the detector,
    when the crop jumped, when the head turned more than ``max_turn`` degrees (yaw or pitch)
    from the keyframe's pose, or when the crop's mean brightness changed by more than
    ``max_lighting_change``; the last two wait ``min_gap`` seconds after the previous
    keyframe, so that a head shaking around the threshold does not send a burst.

    Args:
        max_turn: degrees of yaw or pitch away from the keyframe's pose.
        min_gap: seconds between two pose- or light-triggered keyframes.
        max_lighting_change: relative change of the crop's mean level.
    """

    max_turn: float = 25.0
    min_gap: float = 2.0
    max_lighting_change: float = 0.2

    def __post_init__(self) -> None:
        self._keyframe_brightness: float | None = None
        self._keyframe_pose: HeadPose | None = None
        self._keyframe_time = float("-inf")

    def reason(self, track: TrackResult, pose: HeadPose | None, brightness: float | None = None) -> str | None:
        """Why a keyframe is due now (None: it is not).  ``pose`` is the frame's head pose
        relative to the current keyframe's canonical face; ``brightness`` the crop's mean
        level in [0, 255] (a lighting change also calls for a new keyframe)."""
        if not track.has_face:
            return None
        if self._keyframe_pose is None:
            return "first face"
        if track.status is TrackStatus.DETECTED:
            return "face re-acquired"
        if track.crop_changed:
            return "crop moved"
        if pose is not None and track.time - self._keyframe_time >= self.min_gap:
            turn = max(abs(pose.yaw - self._keyframe_pose.yaw), abs(pose.pitch - self._keyframe_pose.pitch))
            if turn > self.max_turn:
                return f"{TURN_REASON} {turn:.0f} degrees"
            if brightness is not None and self._keyframe_brightness is not None:
                change = abs(brightness - self._keyframe_brightness) / max(self._keyframe_brightness, 16.0)
                if change > self.max_lighting_change:
                    return f"lighting changed by {change:.0%}"
        return None

    def sent(self, time: float, pose: HeadPose, brightness: float | None = None) -> None:
        """Record that a keyframe with head pose ``pose`` (and mean level ``brightness``) was
        sent at ``time`` seconds."""
        self._keyframe_pose = pose
        self._keyframe_time = time
        self._keyframe_brightness = brightness

    def use_reference(self, pose: HeadPose) -> None:
        """Motion now animates another keyframe of the sender's bank, of head pose ``pose``:
        turns count from it (the time of the last keyframe stays)."""
        self._keyframe_pose = pose

    def reset(self) -> None:
        self._keyframe_pose = None
        self._keyframe_time = float("-inf")


def crop_brightness(frame: np.ndarray, crop: CropBox) -> float:
    """Mean level in [0, 255] of the crop's part of ``frame``, from about 32x32 samples."""
    height, width = frame.shape[:2]
    x0, y0 = max(int(crop.x0), 0), max(int(crop.y0), 0)
    x1, y1 = min(int(crop.x0 + crop.side), width), min(int(crop.y0 + crop.side), height)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    step = max(int(crop.side) // 32, 1)
    return float(frame[y0:y1:step, x0:x1:step].mean())
