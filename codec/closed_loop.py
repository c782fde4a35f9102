"""The closed loop: the sender runs the receiver's decoder on its own messages and checks the
picture it paints against the camera's crop.

Every :attr:`QualityTarget.interval` seconds the encoder renders the newest frame with the
same :class:`codec.Decoder` a receiver runs (same model, same messages, so the same picture
when nothing is lost) and measures its PSNR against the crop, over the whole picture and over
the face (the convex hull of the tracker's landmarks).  When either falls below the target on
:attr:`QualityTarget.patience` checks in a row, the receiver lacks something that warping
the keyframe cannot make up (a turned head, a hand, a new background): the encoder sends a
new keyframe, at most one per :attr:`QualityTarget.min_gap` seconds.  A keyframe that does
not hold (the first check after one the loop sent falls short already, or gains less than
:attr:`QualityTarget.min_gain` over the check that called for it: the picture is hard for
the model whatever the keyframe) multiplies that gap by :attr:`QualityTarget.backoff`, up
to :attr:`QualityTarget.max_gap`;
one that holds brings it back, so hard content does not turn into a stream of keyframes.

A check also paints the frame from each other reference of the bank it is given (the frame's
motion measured against that reference, :mod:`codec.references`): when one paints it better by
:data:`SWITCH_GAIN` dB, the encoder moves the motion to it (:meth:`ClosedLoop.take_better`).
The sender knows what the receiver would show from each reference, so it need not guess from
head poses which one serves a frame best.

Only one frame in ``interval * fps`` is rendered, so the sender stays real time: with the
mesh model a check costs about one receiver frame (~40 ms on 2 cores), ~2.5 ms a frame at
30 frames/s and a check every 0.5 s.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .decoder import Decoder
from .motion.params import MotionParams
from .packets import DecodedMotion
from .render import DEFAULT_MODEL, Renderer

__all__ = ["CHECK_INTERVAL", "SWITCH_GAIN", "ClosedLoop", "PictureCheck", "QualityTarget", "picture_psnr"]

#: seconds between two checks of the receiver's picture
CHECK_INTERVAL = 0.5
#: PSNR of two identical pictures (a finite number for reports)
MAX_PSNR = 99.0
#: dB by which another reference must paint a checked frame better (the worse of the picture's and
#: the face's PSNR) for the motion to move to it (a switch costs absolute motion and body messages)
SWITCH_GAIN = 0.5
#: seconds: frame times are sums of 1/fps, compared to intervals with this slack
TIME_SLACK = 1e-6


@dataclass(frozen=True)
class QualityTarget:
    """When the receiver's picture falls short.

    Args:
        min_psnr: dB over the whole picture.
        min_face_psnr: dB over the face region.
        patience: checks in a row below the target before a keyframe is sent (one bad check
            may be a blink or a fast move that the next frame undoes).
        interval: seconds between two checks.
        min_gap: seconds between two keyframes the loop sends (it bounds their rate:
            at most one keyframe of ~3.5 kB, 28 kbit, per ``min_gap``).
        max_gap: the longest gap (after keyframes that did not hold).
        backoff: what a keyframe that did not hold multiplies the gap by.
        min_gain: dB by which the first check after a keyframe the loop sent must beat the
            check that called for it (the worse of picture and face) for the keyframe to hold.
    """

    min_psnr: float = 21.0
    min_face_psnr: float = 21.0
    patience: int = 2
    interval: float = CHECK_INTERVAL
    min_gap: float = 2.0
    max_gap: float = 16.0
    backoff: float = 4.0
    min_gain: float = 3.0

    def __post_init__(self) -> None:
        if self.patience < 1 or self.interval <= 0 or not 0 <= self.min_gap <= self.max_gap or self.backoff < 1:
            raise ValueError(
                f"a quality target needs patience >= 1, interval > 0, 0 <= min_gap <= max_gap and backoff >= 1, "
                f"got patience={self.patience}, interval={self.interval}, min_gap={self.min_gap}, "
                f"max_gap={self.max_gap}, backoff={self.backoff}"
            )


@dataclass(frozen=True)
class PictureCheck:
    """One check: the receiver's picture at ``time`` seconds against the crop."""

    time: float
    psnr: float  #: dB, whole picture
    face_psnr: float | None  #: dB, face region (None without landmarks)


def picture_psnr(picture: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB of an (S, S, 3) uint8 picture against its reference, over the pixels of a
    (S, S) bool ``mask`` (default all); :data:`MAX_PSNR` when they are equal there.

    Raises:
        ValueError: the shapes differ, or the mask selects no pixel.
    """
    if picture.shape != reference.shape:
        raise ValueError(f"cannot compare a picture of {picture.shape} with a reference of {reference.shape}")
    error = (picture.astype(np.float32) - reference.astype(np.float32)) ** 2
    if mask is not None:
        if not mask.any():
            raise ValueError("the mask selects no pixel")
        error = error[mask]
    mse = float(error.mean()) / 255.0**2
    return MAX_PSNR if mse <= 10 ** (-MAX_PSNR / 10) else -10.0 * math.log10(mse)


def face_mask(landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """(size, size) bool convex hull of (N, >=2) crop-unit landmarks (x, y in [-1, 1]), or
    None when they are not finite."""
    import cv2

    if not np.isfinite(landmarks[:, :2]).all():
        return None
    points = np.round((landmarks[:, :2] + 1.0) * (size / 2.0)).astype(np.int32)
    mask = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(points), 1)
    return mask.astype(bool) if mask.any() else None


def _measure(picture: np.ndarray, crop: np.ndarray, mask: np.ndarray | None, time: float) -> PictureCheck:
    """The check of ``picture`` against ``crop``: whole picture, and face where ``mask`` (or None)."""
    face = picture_psnr(picture, crop, mask) if mask is not None else None
    return PictureCheck(time, picture_psnr(picture, crop), face)


def _worst(check: PictureCheck) -> float:
    """The worse of a check's picture and face PSNR."""
    return check.psnr if check.face_psnr is None else min(check.psnr, check.face_psnr)


class ClosedLoop:
    """The receiver's decoder, run by the sender on its own messages::

        loop = ClosedLoop()                        # the default model, the default target
        loop.receive(messages)                     # every message the encoder sends
        if loop.due(time):
            check = loop.check(crop, landmarks, time)
        reason = loop.falls_short(time)            # why a keyframe is due, or None

    Args:
        model: what the receiver paints with (a zoo name, ``"classical"``, or a
            :class:`codec.render.Renderer` of its own: not one a receiver of this process uses).
        target: when the picture falls short (None: the target of the encoder's quality
            level, :mod:`codec.quality`, set by the :class:`codec.Encoder` it is given to).
        device: for a model given by name.
    """

    def __init__(
        self, model: str | Renderer = DEFAULT_MODEL, target: QualityTarget | None = None, device: str = "cpu"
    ) -> None:
        self.decoder = Decoder(model, device, in_order=True)
        self.target = target or QualityTarget()
        self.target_given = target is not None  #: False: the encoder's quality level sets it
        self.checks = 0  #: pictures checked so far
        self.last: PictureCheck | None = None  #: the newest check
        self._below = 0  # checks in a row below the target
        self._next_check = -math.inf
        self._keyframe_time = -math.inf
        self.gap = self.target.min_gap  #: seconds the loop waits after a keyframe (see the module)
        self._judge_next = False  # the next check judges a keyframe the loop sent
        self._called_at: PictureCheck | None = None  # the check that called for it
        # messages not yet given to the decoder: the check hands them over, on its own thread
        # when a call runs it there (the lock guards these and the counters above)
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        self._better: int | None = None  # a reference that painted the last check better
        self.alternatives = 0  #: pictures painted from other references so far

    def set_target(self, target: QualityTarget) -> None:
        """Check against ``target`` from now on (the gap starts afresh from its ``min_gap``)."""
        with self._lock:
            self.target = target
            self.gap = target.min_gap

    def receive(self, messages: list[bytes]) -> None:
        """Every message the encoder sends, in sending order (keyframes included); the decoder
        gets them at the next :meth:`check` (so a keyframe is prepared there, off the encoder's
        path when the check runs on a thread of its own)."""
        with self._lock:
            self._pending.extend(messages)

    def keyframe_sent(self, time: float, by_loop: bool = False, in_use: bool = True) -> None:
        """A keyframe went out at ``time`` seconds (``by_loop``: because :meth:`falls_short`
        said so; otherwise for another reason): count afresh from it.  ``in_use``: the motion
        animates it from now on; else from :meth:`reference_started` (the encoder waits for the
        receiver's acknowledgement), and it is judged from then."""
        with self._lock:
            self._keyframe_sent(time, by_loop, in_use)

    def _keyframe_sent(self, time: float, by_loop: bool, in_use: bool) -> None:
        self._keyframe_time = time
        self._below = 0
        self._next_check = time + self.target.interval
        self._judge_next = by_loop and in_use
        self._called_at = self.last if by_loop else None
        self._better = None  # judged before this keyframe

    def reference_started(self, time: float) -> None:
        """The motion moved to the keyframe sent last (acknowledged now): judge it from its
        first check, ``interval`` seconds from now."""
        with self._lock:
            self._below = 0
            self._next_check = time + self.target.interval
            self._judge_next = self._called_at is not None

    def due(self, time: float) -> bool:
        """Whether the frame at ``time`` seconds is one to check."""
        with self._lock:
            return time >= self._next_check - TIME_SLACK and (bool(self._pending) or self.decoder.motion is not None)

    def check(
        self,
        crop: np.ndarray,
        landmarks: np.ndarray | None,
        time: float,
        alternatives: Sequence[tuple[int, MotionParams]] = (),
        motion: MotionParams | None = None,
    ) -> PictureCheck | None:
        """Render the newest decoded motion and measure it against ``crop``.

        Args:
            crop: (S, S, 3) uint8 RGB, the camera's crop of this frame.
            landmarks: (N, >=2) crop-unit landmarks of this frame (x, y in [-1, 1]), or None.
            time: seconds.
            alternatives: (keyframe id, this frame's motion against that keyframe) of the other
                references the motion could animate; the best one, when it paints the frame
                better by :data:`SWITCH_GAIN`, is handed out by :meth:`take_better`.
            motion: paint this motion (from the newest motion's keyframe) instead of the one
                sent: the frame's motion before a sender-side edit (:mod:`codec.edits`), whose
                picture differs from the camera on purpose.  It has not been through the wire's
                quantization, so its picture can be up to ~1 dB better than a receiver's.

        Returns:
            The check, or None when there was nothing to render (no keyframe yet) or the
            renderer failed (the decoder counts it).
        """
        with self._lock:
            self._next_check = time + self.target.interval
            pending, self._pending = self._pending, []
        for message in pending:
            self.decoder.receive(message)
        sent = self.decoder.motion
        if motion is not None and sent is not None:
            picture = self.decoder.render(DecodedMotion(sent.seq, sent.timestamp_ms, sent.keyframe, motion))
        else:
            picture = self.decoder.render()
        if picture is None or picture.shape != crop.shape:
            return None
        mask = face_mask(landmarks, crop.shape[0]) if landmarks is not None else None
        result = _measure(picture, crop, mask, time)
        better = self._better_reference(alternatives, crop, mask, _worst(result))
        with self._lock:
            self._better = better
            target = self.target
            face = result.face_psnr
            short = result.psnr < target.min_psnr or (face is not None and face < target.min_face_psnr)
            self._below = self._below + 1 if short else 0
            if self._judge_next and self._called_at is not None:  # did the loop's keyframe hold?
                held = not short and _worst(result) >= _worst(self._called_at) + target.min_gain
                self.gap = target.min_gap if held else min(target.backoff * self.gap, target.max_gap)
                self._judge_next = False
            self.checks += 1
            self.last = result
        return result

    def _better_reference(
        self,
        alternatives: Sequence[tuple[int, MotionParams]],
        crop: np.ndarray,
        mask: np.ndarray | None,
        current: float,
    ) -> int | None:
        """The keyframe id among ``alternatives`` that paints ``crop`` best, if better than
        ``current`` dB by :data:`SWITCH_GAIN` (the decoder's own state is left as it is)."""
        renderer = self.decoder.renderer
        best, best_score = None, current + SWITCH_GAIN
        for keyframe_id, motion in alternatives:
            keyframe = self.decoder.motion_decoder.keyframe(keyframe_id)
            if renderer is None or keyframe is None:
                continue
            renderer.body_nodes = None  # a switch restarts the body motion too
            renderer.mouth = self.decoder.mouth_of(keyframe)
            try:
                picture = renderer.render(DecodedMotion(0, 0, keyframe, motion))
            except Exception:  # a reference that cannot be painted is no better
                continue
            self.alternatives += 1
            if picture.shape != crop.shape:
                continue
            score = _worst(_measure(picture, crop, mask, 0.0))
            if score > best_score:
                best, best_score = keyframe_id, score
        return best

    def take_better(self) -> int | None:
        """The keyframe id of a reference that painted the last check better than the one in
        use (see :meth:`check`), once; None when there is none."""
        with self._lock:
            better, self._better = self._better, None
        return better

    def falls_short(self, time: float) -> str | None:
        """Why a keyframe is due at ``time`` seconds (None: the picture is good enough, or the
        last keyframe is too recent)."""
        with self._lock:
            if self._below < self.target.patience or time - self._keyframe_time < self.gap - TIME_SLACK:
                return None
            last = self.last
        assert last is not None
        face = f", face {last.face_psnr:.1f}" if last.face_psnr is not None else ""
        return f"the receiver's picture fell to {last.psnr:.1f} dB{face}"
