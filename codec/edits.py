"""Live edits of the face, in motion space: expression, eyes, gaze, eye contact.

A frame's motion is numbers (:class:`codec.motion.params.MotionParams`: head pose, expression
deltas of 20 keypoints, gaze), so a decoder (or an encoder, before sending) can change them
before the face is painted; a pixel codec cannot.  The receiver rebuilds the dense mesh from
the edited keypoints as from sent ones, so an edit moves the whole face coherently.

The expression directions are defined on the keypoints, in the face's own (canonical) frame
and in units of its eye-corner distance, rather than learned: the dense expression map
(:mod:`codec.geometry.dense_expression`) is fitted to follow keypoints, not to name
expressions, and a few named offsets (a smile pulls the mouth corners out and up) are exact,
inspectable and person-independent.  ``neutral`` moves the face to the keyframe's own
expression (deltas are relative to it) with the mouth closed (:func:`neutral_delta`): a
keyframe taken mid-word would otherwise keep its open mouth.

Every edit has a strength in [0, 1] that moves towards its target by at most 1 per
:data:`RAMP_SECONDS` of stream time, so toggling one never makes the face jump.  An edit that
would give a non-finite motion is skipped for that frame (the motion goes out unedited).

    editor = FaceEditor(FaceEdits(expression="smile", strength=0.5, eye_contact=True))
    motion = editor.apply(motion, keyframe.canonical_keypoints, time)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace

import numpy as np

from .motion.params import HeadPose, MotionParams
from .motion.schemes import KEYPOINT_NAMES

__all__ = [
    "CONTACT_SECONDS",
    "CONTACT_SWAY",
    "EXPRESSIONS",
    "EYES",
    "JAW_OPENING",
    "NEUTRAL_LIP_GAP",
    "RAMP_SECONDS",
    "STRAIGHT_GAZE",
    "SURPRISE_LIP_GAP",
    "FaceEditor",
    "FaceEdits",
    "add_edit_arguments",
    "edits_from_arguments",
    "eye_corner_distance",
    "inner_lip_gap",
    "neutral_delta",
    "parse_expression",
]

#: named expressions (``neutral`` moves the deltas to :func:`neutral_delta`; the others add an offset)
EXPRESSIONS = ("neutral", "smile", "surprise")
#: eye edits
EYES = ("open", "closed")
#: seconds for an edit's strength to go from 0 to 1 (or back)
RAMP_SECONDS = 0.25
#: eye contact removes the head's slow orientation, averaged over about this many seconds,
#: and keeps the faster movements around it
CONTACT_SECONDS = 1.0
#: ... and squeezes those faster movements into +-this many degrees (a quick turn aside stays
#: near the camera; a small sway passes nearly as it is: 1 degree -> 0.92)
CONTACT_SWAY = 2.0
#: ``neutral`` closes a keyframe's open mouth to this gap between the inner lips (eye-corner
#: distances; the relaxed closed mouths of the val keyframes measure 0.00-0.004)
NEUTRAL_LIP_GAP = 0.02
#: where ``eyes closed`` puts the upper lid, as a share of the keyframe's lid gap above the lower lid.  The
#: renderer closes the whole lid line with it and paints the lid and its lashes
#: (:mod:`codec.geometry.eyelids`); lids that stop just short of each other leave the painted lash line where the
#: tracker reads a closed eye (3 val clips, closed/unedited opening <= 0.3 on 58 % of frames at 0, 67 % at 0.1,
#: 63 % at 0.2; crossing at -0.15 and -0.3: 40 % and 33 %)
CLOSED_GAP = 0.1

#: gaze (u, v per eye, :mod:`codec.motion.gaze`) of an eye that looks straight ahead: centred
#: between the corners, a little above their line (v is down).  The train split's frontal frames
#: (|yaw|, |pitch| <= 10 degrees) measure a median v of -0.151 over 93 clips (quartiles -0.179 and
#: -0.117; u 0.008): at v = 0 the iris would sit on the lower lid, looking down
STRAIGHT_GAZE = (0.0, -0.15)

#: how the lower face moves as the mouth opens, per unit of inner-lip gap (lower lip's y minus the
#: upper lip's, canonical frame, y down): least squares through zero of each keypoint's delta on the
#: gap's change over the training clips' frames (``python -m codec.train.fit_jaw``: 124 clips, 24353
#: frames; R^2 0.89 for the lower lip's y, 0.53 and 0.66 for the chin's y and z; components below
#: R^2 0.1 are 0), mirrored to be symmetric.  The jaw turns about its hinge: the chin moves 0.41 of
#: the gap and in depth as much.  (Closing the lower lip and the chin by the whole gap, straight up,
#: left the tracker reading a chin that had not risen: ``bench edits`` neutral residue 0.571 -> 0.494)
JAW_OPENING: dict[str, tuple[float, float, float]] = {
    "upper_lip": (0.0, -0.254, 0.0),
    "lower_lip": (0.0, 0.746, 0.296),
    "chin": (0.0, 0.408, 0.384),
    "mouth_right": (0.0, 0.0, 0.219),
    "mouth_left": (0.0, 0.0, 0.219),
}

#: how far ``surprise`` opens the mouth: inner-lip gap added, eye-corner distances, along
#: :data:`JAW_OPENING` (it used to drop the lower lip and chin straight down)
SURPRISE_LIP_GAP = 0.2

_K = {name: index for index, name in enumerate(KEYPOINT_NAMES)}


def _jaw_offsets(gap: float) -> dict[str, tuple[float, float, float]]:
    """Keypoint offsets that open the mouth by ``gap`` of inner-lip gap along :data:`JAW_OPENING`
    (a negative ``gap`` closes it; offsets in the unit of ``gap``)."""
    return {name: (gap * x, gap * y, gap * z) for name, (x, y, z) in JAW_OPENING.items()}


#: expression offsets: keypoint -> (x, y, z) in eye-corner distances, canonical frame (x to the
#: image's right, y down); the subject's right side is the image's left
_OFFSETS: dict[str, dict[str, tuple[float, float, float]]] = {
    "smile": {
        "mouth_right": (-0.10, -0.08, 0.0),  # the lips stay together: parting them shows a dark seam
        "mouth_left": (0.10, -0.08, 0.0),
        "right_lower_lid": (0.0, -0.02, 0.0),
        "left_lower_lid": (0.0, -0.02, 0.0),
    },
    "surprise": {
        "right_brow_mid": (0.0, -0.10, 0.0),
        "right_brow_inner": (0.0, -0.08, 0.0),
        "left_brow_mid": (0.0, -0.10, 0.0),
        "left_brow_inner": (0.0, -0.08, 0.0),
        "right_upper_lid": (0.0, -0.04, 0.0),
        "left_upper_lid": (0.0, -0.04, 0.0),
        **_jaw_offsets(SURPRISE_LIP_GAP),  # the jaw drops along its path ...
        "mouth_right": (0.03, 0.0, SURPRISE_LIP_GAP * JAW_OPENING["mouth_right"][2]),  # ... the corners draw in
        "mouth_left": (-0.03, 0.0, SURPRISE_LIP_GAP * JAW_OPENING["mouth_left"][2]),
    },
}
_LIDS = (("right_upper_lid", "right_lower_lid"), ("left_upper_lid", "left_lower_lid"))


@dataclass(frozen=True)
class FaceEdits:
    """What to change (the targets an editor ramps towards).

    Attributes:
        expression: one of :data:`EXPRESSIONS`, or None.
        strength: the expression's strength in [0, 1].
        eyes: one of :data:`EYES`, or None.
        gaze_to_camera: the irises looking straight ahead (:data:`STRAIGHT_GAZE`).
        eye_contact: head turned to the camera (slow orientation removed) and irises looking straight.
    """

    expression: str | None = None
    strength: float = 1.0
    eyes: str | None = None
    gaze_to_camera: bool = False
    eye_contact: bool = False

    @staticmethod
    def from_dict(values: object) -> FaceEdits:
        """Edits from JSON-like values (a viewer page's message): ``expression``, ``strength``,
        ``eyes``, ``gaze_to_camera``, ``eye_contact``, each optional.

        Raises:
            ValueError: not an object, an unknown key, a wrong type or value (said which).
        """
        return _from_dict(values)

    def __post_init__(self) -> None:
        if self.expression is not None and self.expression not in EXPRESSIONS:
            raise ValueError(f"unknown expression {self.expression!r}: one of {', '.join(EXPRESSIONS)}")
        if self.eyes is not None and self.eyes not in EYES:
            raise ValueError(f"unknown eyes edit {self.eyes!r}: one of {', '.join(EYES)}")
        if not (math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0):
            raise ValueError(f"an expression's strength must be in [0, 1], got {self.strength}")


def _from_dict(values: object) -> FaceEdits:
    """See :meth:`FaceEdits.from_dict`."""
    if not isinstance(values, dict):
        raise ValueError(f"edits must be an object, got {type(values).__name__}")
    unknown = set(values) - {"expression", "strength", "eyes", "gaze_to_camera", "eye_contact"}
    if unknown:
        raise ValueError(f"unknown edit(s): {', '.join(sorted(map(str, unknown)))}")
    expression, eyes = values.get("expression"), values.get("eyes")
    strength = values.get("strength", 1.0)
    flags = {name: values.get(name, False) for name in ("gaze_to_camera", "eye_contact")}
    if not (expression is None or isinstance(expression, str)) or not (eyes is None or isinstance(eyes, str)):
        raise ValueError("expression and eyes must be names or null")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise ValueError(f"strength must be a number, got {strength!r}")
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise ValueError("gaze_to_camera and eye_contact must be true or false")
    return FaceEdits(expression or None, float(strength), eyes or None, flags["gaze_to_camera"], flags["eye_contact"])


def parse_expression(text: str) -> tuple[str, float]:
    """``"smile"`` or ``"smile:0.5"`` -> (name, strength).

    Raises:
        ValueError: an unknown name or a strength outside [0, 1].
    """
    name, _, value = text.partition(":")
    try:
        strength = float(value) if value else 1.0
    except ValueError:
        raise ValueError(f"expression strength must be a number in [0, 1], got {value!r}") from None
    FaceEdits(expression=name, strength=strength)  # validates
    return name, strength


class FaceEditor:
    """Applies :class:`FaceEdits` to a stream of motions, ramping each edit in and out."""

    def __init__(self, edits: FaceEdits | None = None) -> None:
        self.target = edits or FaceEdits()
        self._levels: dict[str, float] = {}  # edit -> current strength
        self._time: float | None = None
        self._slow: tuple[float, float] | None = None  # the head's slow yaw and pitch

    def set(self, edits: FaceEdits) -> None:
        """New targets; the current strengths ramp towards them from the next frame on."""
        self.target = edits

    @property
    def active(self) -> bool:
        """Whether any edit is on or still ramping out."""
        return any(v > 0 for v in self._levels.values()) or self._targets() != {}

    def _targets(self) -> dict[str, float]:
        t = self.target
        targets = {}
        if t.expression is not None and t.strength > 0:
            targets[f"expression:{t.expression}"] = t.strength
        if t.eyes is not None:
            targets[f"eyes:{t.eyes}"] = 1.0
        if t.gaze_to_camera:
            targets["gaze"] = 1.0
        if t.eye_contact:
            targets["contact"] = 1.0
        return targets

    def _ramp(self, time: float) -> None:
        targets = self._targets()
        if self._time is None:  # edits set before the first frame start at their strength
            self._levels = dict(targets)
            return
        step = max(0.0, min(time - self._time, 1.0)) / RAMP_SECONDS
        for name in set(self._levels) | set(targets):
            goal, level = targets.get(name, 0.0), self._levels.get(name, 0.0)
            level = min(goal, level + step) if level < goal else max(goal, level - step)
            if level > 0:
                self._levels[name] = level
            else:
                self._levels.pop(name, None)

    def apply(self, motion: MotionParams, canonical_keypoints: np.ndarray, time: float) -> MotionParams:
        """The edited motion of the frame at ``time`` seconds (stream time).

        Args:
            motion: the frame's motion; canonical_keypoints: (K, 3) the keyframe's ``x_c``.
        """
        self._ramp(time)
        dt = 0.0 if self._time is None else max(0.0, time - self._time)
        self._time = time
        self._follow_slow_pose(motion.head_pose, dt)
        if not self._levels:
            return motion
        try:
            edited = self._edit(motion, np.asarray(canonical_keypoints, dtype=np.float64))
        except (ValueError, FloatingPointError, IndexError):
            return motion
        finite = np.isfinite(edited.expression_delta).all() and np.isfinite(edited.head_pose.as_vector()).all()
        if not finite or (edited.gaze is not None and not np.isfinite(edited.gaze).all()):
            return motion
        return edited

    def _follow_slow_pose(self, pose: HeadPose, dt: float) -> None:
        if not (math.isfinite(pose.yaw) and math.isfinite(pose.pitch)):
            return
        if self._slow is None:
            self._slow = (pose.yaw, pose.pitch)
            return
        blend = 1.0 - math.exp(-dt / CONTACT_SECONDS)
        self._slow = (self._slow[0] + blend * (pose.yaw - self._slow[0]),
                      self._slow[1] + blend * (pose.pitch - self._slow[1]))  # fmt: skip

    def _edit(self, motion: MotionParams, canonical: np.ndarray) -> MotionParams:
        delta = np.asarray(motion.expression_delta, dtype=np.float64).copy()
        unit = eye_corner_distance(canonical)
        if not unit > 0:
            raise ValueError("the keyframe's eye corners coincide")
        for name, level in self._levels.items():
            kind, _, which = name.partition(":")
            if kind != "expression":
                continue
            if which == "neutral":
                delta += level * (neutral_delta(canonical) - delta)
            else:
                for keypoint, offset in _OFFSETS[which].items():
                    delta[_K[keypoint]] += level * unit * np.asarray(offset)
        closed, opened = self._levels.get("eyes:closed", 0.0), self._levels.get("eyes:open", 0.0)
        for upper, lower in _LIDS:
            u, lo = _K[upper], _K[lower]
            rest = canonical[lo, 1] - canonical[u, 1]  # the keyframe's lid gap (y down: lower below)
            gap = (canonical[lo, 1] + delta[lo, 1]) - (canonical[u, 1] + delta[u, 1])
            if opened and gap < rest:  # open: at least the keyframe's gap
                delta[u, 1] -= opened * (rest - gap)
                gap = (canonical[lo, 1] + delta[lo, 1]) - (canonical[u, 1] + delta[u, 1])
            if closed:  # (an eye already closed stays so)
                delta[u, 1] += closed * max(0.0, gap - CLOSED_GAP * rest)
        pose, gaze = motion.head_pose, motion.gaze
        contact = self._levels.get("contact", 0.0)
        if contact and self._slow is not None:
            yaw, pitch = _sway(pose.yaw - self._slow[0]), _sway(pose.pitch - self._slow[1])
            pose = replace(pose, yaw=pose.yaw + contact * (yaw - pose.yaw),
                           pitch=pose.pitch + contact * (pitch - pose.pitch))  # fmt: skip
        centre = max(self._levels.get("gaze", 0.0), contact)
        if centre and gaze is not None:
            sent = np.asarray(gaze, dtype=np.float64)
            gaze = (sent + centre * (np.asarray(STRAIGHT_GAZE) - sent)).astype(np.float32)
        return MotionParams(pose, delta.astype(np.float32), gaze)


def eye_corner_distance(keypoints: np.ndarray) -> float:
    """The unit of the edits: the distance between the outer eye corners of (K, 3) keypoints."""
    return float(np.linalg.norm(keypoints[_K["right_eye_outer"]] - keypoints[_K["left_eye_outer"]]))


def inner_lip_gap(keypoints: np.ndarray) -> float:
    """The lower lip's y minus the upper lip's, of (K, 3) keypoints (y down: positive when open)."""
    return float(keypoints[_K["lower_lip"], 1] - keypoints[_K["upper_lip"], 1])


def neutral_delta(canonical_keypoints: np.ndarray) -> np.ndarray:
    """(K, 3) float64 expression deltas of the neutral face that ``neutral`` moves to: the
    keyframe's own face with its mouth closed until the inner lips are :data:`NEUTRAL_LIP_GAP`
    eye-corner distances apart, the lips, corners and chin moving as a closing jaw moves them
    (:data:`JAW_OPENING`); a closed mouth gives zeros.

    Args:
        canonical_keypoints: (K, 3) the keyframe's ``x_c`` (canonical frame, y down).
    """
    canonical = np.asarray(canonical_keypoints, dtype=np.float64)
    closing = max(0.0, inner_lip_gap(canonical) - NEUTRAL_LIP_GAP * eye_corner_distance(canonical))
    delta = np.zeros_like(canonical)
    for keypoint, offset in _jaw_offsets(-closing).items():
        delta[_K[keypoint]] = offset
    return delta


def _sway(angle: float) -> float:
    """An eye-contact head angle (degrees, its slow part removed) squeezed into +-CONTACT_SWAY."""
    return CONTACT_SWAY * math.tanh(angle / CONTACT_SWAY)


def add_edit_arguments(parser: argparse.ArgumentParser) -> None:
    """``--expression NAME[:STRENGTH]``, ``--eyes open|closed``, ``--gaze-to-camera``,
    ``--eye-contact`` (the command-line side of :class:`FaceEdits`)."""
    group = parser.add_argument_group("face edits (codec.edits)")
    names = ", ".join(EXPRESSIONS)
    group.add_argument("--expression", default=None, metavar="NAME[:STRENGTH]",
                       help=f"one of {names}, strength in [0, 1] (default 1), e.g. smile:0.5")  # fmt: skip
    group.add_argument("--eyes", choices=EYES, default=None, help="force the eyes open or closed")
    group.add_argument("--gaze-to-camera", action="store_true", help="the irises look straight ahead")
    group.add_argument("--eye-contact", action="store_true", help="turn the head and gaze to the camera")


def edits_from_arguments(args: argparse.Namespace) -> FaceEdits | None:
    """The :class:`FaceEdits` of :func:`add_edit_arguments`' options, or None when none is set.

    Raises:
        ValueError: a bad ``--expression``.
    """
    expression, strength = parse_expression(args.expression) if args.expression else (None, 1.0)
    edits = FaceEdits(expression, strength, args.eyes, args.gaze_to_camera, args.eye_contact)
    return None if edits == FaceEdits() else edits
