"""What every renderer implements: paint a frame of the keyframe's person for a decoded motion,
seen from a viewer rotation composed with the sent head pose (``R_u R_d``, ``t_u + t_d``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..images import decode_image
from ..motion.params import MotionParams, compose_view
from ..packets import DecodedMotion, KeyframePacket
from ..timing import Timer, no_timer

__all__ = ["Renderer", "Vector3", "decode_keyframe_image", "keyframe_landmarks"]

Vector3 = tuple[float, float, float]


def decode_keyframe_image(keyframe: KeyframePacket) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a keyframe's image, which must be the keyframe's width x height
    (checked from the image's header before decoding).

    Raises:
        ValueError: the image does not decode, or is not of the keyframe's size.
    """
    try:
        return decode_image(keyframe.image, (keyframe.width, keyframe.height))
    except ValueError as exc:
        raise ValueError(f"its {keyframe.image_codec} image does not decode ({exc})") from exc


def keyframe_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(478, 3) float64 crop-unit landmarks of the face in a keyframe image (the tracker run on
    the whole image, once per keyframe), or None when it finds no face.

    Args:
        image: (S, S, 3) uint8 RGB.
    """
    from ..tracking import CropPolicy
    from ..tracking.mediapipe import MediaPipeTracker

    tracker = MediaPipeTracker(smoothing=None, crop_policy=CropPolicy(scale=1e6))
    result = tracker.process(np.ascontiguousarray(image), 0.0)
    return np.asarray(result.crop_landmarks(), dtype=np.float64) if result.has_face else None


class Renderer(ABC):
    """Paints frames of the current keyframe's person.  ``timer``: see :mod:`codec.timing`."""

    name: str

    def __init__(self) -> None:
        self.keyframe: KeyframePacket | None = None
        self.keyframe_image: np.ndarray | None = None
        self.timer: Timer = no_timer
        #: (n, n, 2) float32 crop-unit motion outside the face (:mod:`codec.geometry.body`) for
        #: the frames that follow, or None (still); renderers without a use for it ignore it
        self.body_nodes: np.ndarray | None = None

    def set_keyframe(self, keyframe: KeyframePacket) -> None:
        """Prepare a new keyframe (once; the per-frame work reuses it).  On failure the renderer
        keeps the keyframe it had.

        Raises:
            ValueError: its image does not decode; or whatever preparing it raised.
        """
        previous = self.keyframe, self.keyframe_image
        self.keyframe_image = decode_keyframe_image(keyframe)
        self.keyframe = keyframe
        try:
            self._prepare()
        except Exception:
            self.keyframe, self.keyframe_image = previous
            raise

    @abstractmethod
    def _prepare(self) -> None: ...

    @abstractmethod
    def _render(self, motion: MotionParams) -> np.ndarray: ...

    def render(
        self,
        motion: DecodedMotion,
        user_rotation: Vector3 = (0.0, 0.0, 0.0),
        user_translation: Vector3 = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """(S, S, 3) uint8 RGB of one frame, seen from the viewer's rotation (degrees of yaw,
        pitch, roll) and translation (crop units)."""
        if motion.keyframe is not self.keyframe:  # another keyframe (ids repeat across streams)
            self.set_keyframe(motion.keyframe)
        return self._render(compose_view(motion.motion, user_rotation, user_translation))
