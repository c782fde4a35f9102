"""When the receiver lacks an open mouth, and the message that gives it one.

A keyframe shows the mouth as it was when it was taken; one with closed lips holds no teeth
and no inner mouth, so the receiver's model has to guess them when the mouth opens (a pale or
dark blur).  The sender knows how open the keyframe's mouth is and how open the camera's is:
when a frame's mouth opens :data:`MOUTH_MARGIN` of its width wider than the keyframe in use
shows it (or :data:`WIDER_MARGIN` wider than a mouth sent for that keyframe before), the
sender cuts the mouth from that frame's crop and sends it (:class:`codec.packets.MouthPacket`:
a WebP window and its inner lip line, about 450 bytes at 256 px); the receiver paints its
inside into the pictures whose mouth is open (:mod:`codec.geometry.mouth_reference`).  At
most one per :data:`MOUTH_MIN_GAP` seconds.

A keyframe sent in the middle of a talk (the closed loop's, a head turn's) usually shows a
closed mouth again; the receiver then takes the newest mouth for it too (a ``mouth_reuse``
control message, a few bytes), so the mouth is painted from the keyframe's first picture on and
is not sent again.  A keyframe that starts afresh (the first, a lighting change, a face found
again, a receiver's request) does not take it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .geometry.mouth_reference import cut_mouth, mouth_opening
from .images import encode_image
from .packets import MouthPacket
from .packets.messages import ring_on_wire

__all__ = ["MOUTH_IMAGE_CODEC", "MOUTH_MARGIN", "MOUTH_MIN_GAP", "WIDER_MARGIN", "MouthSender"]

#: a frame's mouth opening (gap / width) above the keyframe's own by this much calls for a
#: mouth message (the model paints little inside a mouth opened wider than its keyframe's)
MOUTH_MARGIN = 0.15
#: ... and above the opening of the mouth sent for that keyframe by this much, for another
#: (a mouth opened somewhat wider than the one sent is painted well from it, stretched)
WIDER_MARGIN = 0.15
#: the image format of a mouth's window (a small picture: AVIF's container would be most of it)
MOUTH_IMAGE_CODEC = "webp"
#: seconds between two mouth messages
MOUTH_MIN_GAP = 1.0


def _pixels(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N, 2) float64 crop pixels of (N, >=2) crop-unit landmarks (x, y in [-1, 1])."""
    return (np.asarray(landmarks, np.float64)[:, :2] + 1.0) * (size / 2.0)


class MouthSender:
    """The sender's side of the mouth messages::

        mouths = MouthSender()
        mouths.keyframe_sent(keyframe_id, landmarks)         # with each keyframe
        packet = mouths.offer(keyframe_id, landmarks, time, crop_of_the_frame, "avif", 50)  # each frame

    The first frame that opens wide enough is sent at once.  Waiting for the opening's widest
    frame (measured on the val clips, level 3: the frame kept until its opening fell 0.04
    below the widest or 0.3 s passed) left the open frames before it unpainted: open-mouth face
    PSNR 26.57 on d0 against 27.24, 27.69 on d14 against 28.36.  A barely open first mouth
    paints the wide ones poorly (a margin of 0.08: 26.76 on d0, 28.00 on d14).

    Args:
        margin: see :data:`MOUTH_MARGIN`.
        wider_margin: see :data:`WIDER_MARGIN`.
        min_gap: see :data:`MOUTH_MIN_GAP`.
    """

    def __init__(
        self, margin: float = MOUTH_MARGIN, wider_margin: float = WIDER_MARGIN, min_gap: float = MOUTH_MIN_GAP
    ) -> None:
        self.margin = margin
        self.wider_margin = wider_margin
        self.min_gap = min_gap
        self.sent = 0  #: mouth messages made
        # keyframe id -> (the widest opening the receiver holds for it, whether a mouth message gave it)
        self._held: dict[int, tuple[float, bool]] = {}
        self._last_at = -math.inf
        self._newest: float | None = None  # the opening of the newest mouth sent

    def keyframe_sent(self, keyframe_id: int, landmarks: np.ndarray, carry: bool = False) -> bool:
        """A keyframe went out with this (478, >=2) crop-unit face: the receiver holds its mouth
        (and no longer any mouth sent for an older keyframe of the same id).  ``carry``: the
        keyframe continues the talk (same person, same light).

        Returns:
            Whether the receiver should take the newest mouth sent for it (a ``mouth_reuse``
            message): ``carry``, and that mouth opens :data:`MOUTH_MARGIN` wider than the
            keyframe's own.
        """
        opening = mouth_opening(landmarks)
        opening = opening if math.isfinite(opening) else 0.0
        if carry and self._newest is not None and self._newest > opening + self.margin:
            self._held[keyframe_id] = (self._newest, True)
            return True
        self._held[keyframe_id] = (opening, False)
        return False

    def wanted(self, keyframe_id: int, landmarks: np.ndarray, time: float) -> bool:
        """Whether the frame at ``time`` seconds, with (478, >=2) crop-unit ``landmarks``, opens
        its mouth wider than the receiver holds for keyframe ``keyframe_id`` (the one the
        motion animates), and the last mouth message is old enough."""
        held = self._held.get(keyframe_id)
        if held is None or time - self._last_at < self.min_gap:
            return False
        opening, sent = held
        return mouth_opening(landmarks) > opening + (self.wider_margin if sent else self.margin)

    def offer(
        self,
        keyframe_id: int,
        landmarks: np.ndarray,
        time: float,
        crop: Callable[[], np.ndarray],
        image_codec: str,
        quality: int,
    ) -> MouthPacket | None:
        """The mouth message to send with this frame, or None (see :meth:`wanted`).

        Args:
            keyframe_id: the keyframe the frame's motion animates.
            landmarks: (478, >=2) crop-unit landmarks of the frame.
            time: seconds.
            crop: the frame's (S, S, 3) uint8 RGB crop (called only when a message is due).
            image_codec, quality: how the window is compressed (as the keyframes).
        """
        if not self.wanted(keyframe_id, landmarks, time):
            return None
        return self.packet(keyframe_id, crop(), landmarks, time, image_codec, quality)

    def packet(
        self, keyframe_id: int, crop: np.ndarray, landmarks: np.ndarray, time: float, image_codec: str, quality: int
    ) -> MouthPacket | None:
        """The mouth message of a frame :meth:`wanted` one for, or None when its mouth cannot be cut.

        Args:
            keyframe_id: the keyframe the frame's motion animates.
            crop: (S, S, 3) uint8 RGB, the frame's crop.
            landmarks: (478, >=2) crop-unit landmarks of the frame.
            time: seconds.
            image_codec, quality: how the window is compressed (as the keyframes).
        """
        size = crop.shape[0]
        try:
            reference = cut_mouth(crop, _pixels(landmarks, size))
        except ValueError:  # the lip line is not finite, or off the crop
            return None
        height, width = reference.image.shape[:2]
        if (reference.ring < 0).any() or (reference.ring > (width, height)).any():
            return None  # the mouth runs off the crop's edge: the window does not hold it
        self._held[keyframe_id] = (mouth_opening(landmarks), True)
        self._newest = self._held[keyframe_id][0]
        self._last_at = time
        self.sent += 1
        image = encode_image(reference.image, image_codec, quality)
        ring = ring_on_wire(reference.ring, width, height)  # as the receiver reads it
        return MouthPacket(keyframe_id, image_codec, image, width, height, ring)
