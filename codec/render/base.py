"""What every renderer implements: paint a frame of the keyframe's person for a decoded motion,
seen from a viewer rotation composed with the sent head pose (``R_u R_d``, ``t_u + t_d``)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..geometry.mouth_reference import MouthReference
from ..images import decode_image
from ..motion.params import MotionParams, compose_view
from ..motion.rotation import out_of_plane_angle, rotation_matrix
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


#: keyframes a renderer keeps prepared: motion may name any keyframe of the receiver's bank
#: (:class:`codec.packets.MotionDecoder` holds 4), and switching back to one must not cost
#: preparing it again (the tracker and the appearance encoder: several frames' time)
MAX_PREPARED = 4


class Renderer(ABC):
    """Paints frames of the current keyframe's person.  ``timer``: see :mod:`codec.timing`.

    A subclass names in :attr:`prepared_state` the attributes its ``_prepare`` fills; the
    base keeps them for the :data:`MAX_PREPARED` newest keyframes, so that motion switching
    between the keyframes of a bank costs nothing.
    """

    name: str
    #: attributes that ``_prepare`` sets for the current keyframe
    prepared_state: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.keyframe: KeyframePacket | None = None
        self.keyframe_image: np.ndarray | None = None
        self.timer: Timer = no_timer
        #: (n, n, 2) float32 crop-unit motion outside the face (:mod:`codec.geometry.body`) for
        #: the frames that follow, or None (still); renderers without a use for it ignore it
        self.body_nodes: np.ndarray | None = None
        #: an open mouth the sender has seen, painted into the frames that follow where their
        #: mouth is open (:mod:`codec.geometry.mouth_reference`), or None; renderers without a
        #: mesh of the frame ignore it
        self.mouth: MouthReference | None = None
        #: degrees by which the viewer's rotation of the frame being painted turns the face
        #: (:func:`codec.motion.rotation.out_of_plane_angle`; 0: the sender's own view)
        self.view_turn = 0.0
        # prepared keyframes, oldest first: (keyframe, image, prepared attributes)
        self._prepared: list[tuple[KeyframePacket, np.ndarray, dict[str, object]]] = []

    def set_keyframe(self, keyframe: KeyframePacket) -> None:
        """Make ``keyframe`` current: prepare it (once; the per-frame work reuses it, and so
        does a later switch back to it).  On failure the renderer keeps the keyframe it had.

        Raises:
            ValueError: its image does not decode; or whatever preparing it raised.
        """
        for held, image, state in self._prepared:
            if held is keyframe:
                self.keyframe, self.keyframe_image = keyframe, image
                for attribute, value in state.items():
                    setattr(self, attribute, value)
                return
        previous = self.keyframe, self.keyframe_image
        self.keyframe_image = decode_keyframe_image(keyframe)
        self.keyframe = keyframe
        try:
            self._prepare()
        except Exception:
            self.keyframe, self.keyframe_image = previous
            self._restore_current()
            raise
        self._prepared.append((keyframe, self.keyframe_image, {a: getattr(self, a) for a in self.prepared_state}))
        del self._prepared[:-MAX_PREPARED]

    def _restore_current(self) -> None:
        """Put back the prepared attributes of the current keyframe (after a failed prepare)."""
        for held, _, state in self._prepared:
            if held is self.keyframe:
                for attribute, value in state.items():
                    setattr(self, attribute, value)

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
        self.view_turn = out_of_plane_angle(rotation_matrix(*user_rotation)) if any(user_rotation) else 0.0
        return self._render(compose_view(motion.motion, user_rotation, user_translation))
