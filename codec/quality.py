"""The quality knob: one number that trades bits for fidelity.

A level sets what decides a stream's bytes (see the README's RD table for what each level
costs and gives on the bench clips):

- the keyframe image's quality (AVIF): the keyframe is most of a short call's bytes;
- the closed loop's target (:class:`codec.closed_loop.QualityTarget`): how low the receiver's
  picture may fall before the sender spends a keyframe on it, and how often it may;
- how often the motion outside the face (body, background) is measured and sent;
- at the lowest level, how often the motion itself is sent (every other frame).

The motion quantization is not part of it: its entropy tables are fitted to the default steps,
so coarser steps saved 2 % of the motion bytes (grid_lbbc2a, steps x1.5) for a less exact face.

Level :data:`DEFAULT_QUALITY` is the default of the encoder, the sender and the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from .closed_loop import QualityTarget

__all__ = ["DEFAULT_QUALITY", "QUALITY_LEVELS", "QualityLevel", "quality_level"]


@dataclass(frozen=True)
class QualityLevel:
    """What one level of the knob sets.

    Attributes:
        image_quality: AVIF quality of keyframes (1-100).
        target: the closed loop's quality target.
        body_interval: seconds between two measures of the motion outside the face.
        motion_every: a motion message every this many frames (1: every frame; 2: half the
            motion bytes, the receiver paints half the frames; an absolute message, after a
            keyframe or a request, is never held back).
        mouth_quality: WebP quality of the open mouths sent (:mod:`codec.mouth_sender`): as
            sharp as the level's AVIF keyframes.  A window of ~60x25 px is mostly container
            in AVIF: on 15 val mouths, AVIF 50 took 495 bytes for 35.2 dB, WebP 80 343 for 35.8.
    """

    image_quality: int
    target: QualityTarget
    body_interval: float
    motion_every: int = 1
    mouth_quality: int = 80


#: the levels, lowest rate first; the loop's target rises with them: a low level spends a
#: keyframe only on a picture gone badly wrong, and waits longer between two
QUALITY_LEVELS: dict[int, QualityLevel] = {
    1: QualityLevel(12, QualityTarget(17.0, 17.0, min_gap=4.0), body_interval=0.6, motion_every=2, mouth_quality=20),
    2: QualityLevel(30, QualityTarget(19.0, 19.0), body_interval=0.4, mouth_quality=35),
    3: QualityLevel(50, QualityTarget(21.0, 21.0), body_interval=0.2, mouth_quality=80),
    4: QualityLevel(65, QualityTarget(23.0, 23.0), body_interval=0.2, mouth_quality=85),
    5: QualityLevel(80, QualityTarget(25.0, 25.0, min_gap=1.0), body_interval=0.2, mouth_quality=92),
}
#: the level used when none is given
DEFAULT_QUALITY = 3


def quality_level(level: int) -> QualityLevel:
    """The settings of a knob level.

    Raises:
        ValueError: not one of :data:`QUALITY_LEVELS`.
    """
    if isinstance(level, bool) or level not in QUALITY_LEVELS:
        raise ValueError(f"quality must be one of {', '.join(map(str, QUALITY_LEVELS))}, got {level!r}")
    return QUALITY_LEVELS[level]
