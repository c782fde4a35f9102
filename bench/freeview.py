"""``python -m bench freeview``: the receiver's free view, measured.

Each clip is coded as ``bench rd`` codes it for ``fvc-neural`` (the tracker's stable 256x256
crops, :class:`codec.Encoder` to :class:`codec.Decoder`, keyframes at quality 70 in the encoder's
codec, AVIF), and each decoded frame is painted by the decoder at every view of :data:`ANGLES`: the viewer's
rotation is set with :meth:`codec.Decoder.view` and composed with the sent head pose by the
renderer (:func:`codec.motion.params.compose_view`, ``R_u R_d``), as in a call.  Per view:

- **face found**: share of painted frames where the project's tracker finds a face;
- **measured turn**: the head pose the tracker + :class:`codec.motion.extract.MotionExtractor`
  measure on the rotated picture, relative to the same measure on the unrotated picture of
  the same frame: the angles of ``R_rotated R_front^T`` (exactly ``R_u`` for a perfect
  renderer; a plain difference of Euler angles is not, once pitch and yaw mix), and its error
  against the requested angle;
- **identity**: dlib's descriptor distance between the picture and the first keyframe
  (:mod:`bench.freeview_identity`; reported as not measured without the ``bench`` extra).

Cost per painted frame: nine renders and nine tracker runs, plus ten dlib descriptors (the views
and the input) on the frames sampled for identity; so by default
every 2nd frame of the first 5 s is painted and identity measured on every 5th painted one.
The command runs torch on one thread (``--threads``): modest beside other work, and on this
2-core machine under load two threads made a render 5-7 times slower (threads waiting on each
other), not faster.

Results: :func:`summarize` (JSON), :mod:`bench.freeview_report` (Markdown, plots, grid).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codec.render import Renderer

from .freeview_identity import SAME_PERSON_DISTANCE, IdentityModel, descriptor_distance
from .inputs import ClipError, ClipInput, prepare_clip

if TYPE_CHECKING:
    from codec.encoder import Encoder
    from codec.motion.extract import CanonicalFace, MotionExtractor

__all__ = [
    "ANGLES",
    "FRONT",
    "Angle",
    "AngleStats",
    "ClipResult",
    "angle_stats",
    "identity_stats",
    "mean_stats",
    "measured_turn",
    "run_clip",
    "run_freeview",
    "summarize",
]

#: Requested yaw and pitch of the views, degrees (issue 12).
YAW_DEGREES = (-20.0, -10.0, 10.0, 20.0)
PITCH_DEGREES = (-15.0, -10.0, 10.0, 15.0)
#: Crop side of the benchmark input (the released models' size).
CROP_SIZE = 256
#: Keyframe image quality (the encoder's codec, AVIF): ``bench rd``'s headline point of fvc-neural.
KEYFRAME_QUALITY = 70
#: ``bench rd``'s default length: its cached crops are reused and cut when ``--seconds`` is shorter.
RD_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class Angle:
    """One view: the viewer's rotation in degrees (see :mod:`codec.motion.rotation`)."""

    name: str
    yaw: float = 0.0
    pitch: float = 0.0

    @property
    def axis(self) -> str | None:
        """``"yaw"`` or ``"pitch"``: the turned axis; None for the front view."""
        return "yaw" if self.yaw else "pitch" if self.pitch else None

    @property
    def requested(self) -> float:
        """The requested angle on :attr:`axis` (0 for the front view)."""
        return self.yaw or self.pitch


#: The unrotated render: the reference every other view is measured against.
FRONT = Angle("front")
#: Name of the input frames' identity (the real person against their own keyframe).
INPUT = "input"
#: Every view, front first.
ANGLES: tuple[Angle, ...] = (
    FRONT,
    *(Angle(f"yaw{a:+g}", yaw=a) for a in YAW_DEGREES),
    *(Angle(f"pitch{a:+g}", pitch=a) for a in PITCH_DEGREES),
)


@dataclass
class AngleStats:
    """One view on one clip (or averaged over clips).  Angles in degrees; None: not measured.

    Attributes:
        frames: painted frames.
        face_found: share of them where the tracker finds a face.
        pose_frames: frames with a face on both this view and the front view (the turn is measured on these).
        measured_yaw, measured_pitch, measured_roll: mean measured turn (``R_view R_front^T``).
        error: mean measured turn on the requested axis minus the requested angle.
        abs_error: mean over frames of the absolute error on the requested axis.
        identity_frames: frames sampled for identity where dlib finds a face.
        identity_missed: share of sampled frames where dlib finds none.
        identity_distance: mean descriptor distance to the first keyframe.
        identity_same: share of sampled frames with a face below :data:`SAME_PERSON_DISTANCE`.
    """

    frames: int = 0
    face_found: float | None = None
    pose_frames: int = 0
    measured_yaw: float | None = None
    measured_pitch: float | None = None
    measured_roll: float | None = None
    error: float | None = None
    abs_error: float | None = None
    identity_frames: int = 0
    identity_missed: float | None = None
    identity_distance: float | None = None
    identity_same: float | None = None


@dataclass
class ClipResult:
    """One clip: stats per view name, the input frames' identity distance (a reference: the
    real person against their own keyframe), and the sample frames of the grid."""

    clip: str
    frames: int = 0
    fps: float = 0.0
    error: str | None = None
    angles: dict[str, AngleStats] = field(default_factory=dict)
    input_identity: AngleStats | None = None
    samples: dict[str, np.ndarray] = field(default_factory=dict)  #: (S, S, 3) uint8; "keyframe" and view names


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def measured_turn(front: np.ndarray, rotated: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of ``rotated @ front.T``: the turn between two (3, 3) head
    rotations measured on the same frame, as :func:`codec.motion.params.compose_view` applies it."""
    from codec.motion.rotation import euler_angles

    return euler_angles(np.asarray(rotated, np.float64) @ np.asarray(front, np.float64).T)


def angle_stats(angle: Angle, face: np.ndarray, turns: np.ndarray, distances: np.ndarray | None) -> AngleStats:
    """Aggregate one view on one clip.

    Args:
        face: (N,) bool, the tracker found a face on the painted frame.
        turns: (N, 3) float64 measured (yaw, pitch, roll) turn per frame, NaN where this view
            or the front view has no face.
        distances: (M,) float64 identity distance of the sampled frames, NaN where dlib found
            no face; None when identity is not measured.
    """
    face = np.asarray(face, bool)
    turns = np.asarray(turns, np.float64).reshape(-1, 3)
    stats = AngleStats(frames=len(face), face_found=float(face.mean()) if len(face) else None)
    valid = np.isfinite(turns).all(axis=1)
    stats.pose_frames = int(valid.sum())
    if angle.axis is not None and stats.pose_frames:
        stats.measured_yaw, stats.measured_pitch, stats.measured_roll = (float(v) for v in turns[valid].mean(axis=0))
        on_axis = turns[valid, 0 if angle.axis == "yaw" else 1] - angle.requested
        stats.error, stats.abs_error = float(on_axis.mean()), float(np.abs(on_axis).mean())
    if distances is not None:
        identity_stats(distances, stats)
    return stats


def identity_stats(distances: np.ndarray, stats: AngleStats | None = None) -> AngleStats:
    """Fill the identity fields of ``stats`` (a new :class:`AngleStats` by default) from (M,)
    float64 descriptor distances, NaN where dlib found no face."""
    stats = AngleStats() if stats is None else stats
    distances = np.asarray(distances, np.float64)
    found = np.isfinite(distances)
    stats.identity_frames = int(found.sum())
    stats.identity_missed = float(1 - found.mean()) if len(distances) else None
    stats.identity_distance = _mean(distances)
    stats.identity_same = float((distances[found] < SAME_PERSON_DISTANCE).mean()) if found.any() else None
    return stats


def mean_stats(stats: Sequence[AngleStats]) -> AngleStats:
    """Each number averaged over clips (each clip weighs the same; a clip where it is None is
    left out); the frame counts are summed."""
    out = AngleStats()
    for item in dataclasses.fields(AngleStats):
        values = [getattr(s, item.name) for s in stats]
        if item.type == "int":
            setattr(out, item.name, int(sum(values)))
        else:
            present = [v for v in values if v is not None]
            setattr(out, item.name, float(np.mean(present)) if present else None)
    return out


def _input(path: Path, seconds: float) -> ClipInput:
    """The clip's cached crops (bench rd's cache when ``seconds`` fits in it), first ``seconds`` only."""
    clip = prepare_clip(path, CROP_SIZE, RD_CACHE_SECONDS if seconds <= RD_CACHE_SECONDS else seconds)
    keep = clip.times < clip.times[0] + seconds
    return dataclasses.replace(clip, frames=clip.frames[keep], times=clip.times[keep], landmarks=clip.landmarks[keep])


def clip_encoder(clip: ClipInput) -> Encoder:
    """The encoder a bench clip is coded with: as bench rd's MotionCodec, the crop is the whole
    (already cropped) frame; keyframes at :data:`KEYFRAME_QUALITY`."""
    from codec.encoder import Encoder
    from codec.packets import StreamConfig
    from codec.tracking import CropPolicy
    from codec.tracking.mediapipe import MediaPipeTracker

    config = StreamConfig(fps=clip.fps, crop_size=clip.size)
    return Encoder(config, tracker=MediaPipeTracker(crop_policy=CropPolicy(scale=1e6)), image_quality=KEYFRAME_QUALITY)


def clip_canonical(clip: ClipInput, extractor: MotionExtractor) -> CanonicalFace:
    """The canonical face of the clip's first crop with a face (measures are taken against it).

    Raises:
        ClipError: no crop of the clip has a face.
    """
    from codec.tracking import CropBox

    reference = next((lm for lm in clip.landmarks if np.isfinite(lm).all()), None)
    if reference is None:
        raise ClipError(f"{clip.name}: the tracker finds no face in its crops")
    return extractor.canonicalize(CropBox(0.0, 0.0, float(clip.size)).normalize(reference))


def run_clip(
    clip: ClipInput,
    renderer: Renderer,
    identity: IdentityModel | None = None,
    every: int = 2,
    identity_every: int = 5,
    progress: Any = None,
) -> ClipResult:
    """Code ``clip``, paint every ``every``-th frame at every view, measure each view.

    Args:
        renderer: the decoder's renderer (reused across clips).
        identity: dlib's model, or None (identity not measured).
        identity_every: identity on every this many painted frames (dlib's network costs ~75 ms a face).
        progress: a tqdm bar, advanced by one per painted frame.
    """
    from codec.decoder import Decoder
    from codec.motion.extract import MotionExtractor
    from codec.tracking import CropBox
    from codec.tracking.mediapipe import MediaPipeTracker

    result = ClipResult(clip.name, len(clip.frames), clip.fps)
    encoder = clip_encoder(clip)
    decoder = Decoder(renderer)
    trackers = {a.name: MediaPipeTracker(smoothing=None) for a in ANGLES}  # unsmoothed, as bench rd's AKD
    extractor = MotionExtractor()
    whole = CropBox(0.0, 0.0, float(clip.size))
    canonical = clip_canonical(clip, extractor)
    faces: dict[str, list[bool]] = {a.name: [] for a in ANGLES}
    turns: dict[str, list[np.ndarray]] = {a.name: [] for a in ANGLES}
    distances: dict[str, list[float]] = {name: [] for name in [*(a.name for a in ANGLES), INPUT]}
    keyframe_descriptor: np.ndarray | None = None
    sample_index = (len(clip.frames) // 2) // every * every
    painted = 0
    for index, (image, time) in enumerate(zip(clip.frames, clip.times, strict=True)):
        for message in encoder.encode(np.ascontiguousarray(image), float(time)):
            decoder.receive(message)
        if "keyframe" not in result.samples and decoder.keyframe is not None and renderer.keyframe_image is not None:
            result.samples["keyframe"] = renderer.keyframe_image.copy()
            if identity is not None:
                keyframe_descriptor = identity.descriptor(renderer.keyframe_image)
                if keyframe_descriptor is None:
                    print(f"warning: {clip.name}: dlib finds no face on the keyframe: no identity", file=sys.stderr)
        if index % every or decoder.motion is None:
            continue
        measure_identity = identity is not None and keyframe_descriptor is not None and painted % identity_every == 0
        rotations: dict[str, np.ndarray | None] = {}
        for angle in ANGLES:
            decoder.view(yaw=angle.yaw, pitch=angle.pitch)
            picture = decoder.render()  # the newest motion, from this view: the receiver's own path
            if picture is None:
                raise RuntimeError(f"{clip.name}: the decoder painted nothing ({decoder.stats.last_error})")
            landmarks = trackers[angle.name].process(picture, float(time)).raw_landmarks
            faces[angle.name].append(landmarks is not None)
            rotations[angle.name] = (
                None if landmarks is None else extractor.head_pose(whole.normalize(landmarks), canonical).rotation()
            )
            if index == sample_index:
                result.samples[angle.name] = picture.copy()
            if measure_identity:
                assert identity is not None and keyframe_descriptor is not None
                found = identity.descriptor(picture)
                distances[angle.name].append(
                    np.nan if found is None else descriptor_distance(found, keyframe_descriptor)
                )
        if measure_identity:
            assert identity is not None and keyframe_descriptor is not None
            found = identity.descriptor(image)
            distances[INPUT].append(np.nan if found is None else descriptor_distance(found, keyframe_descriptor))
        front = rotations[FRONT.name]
        for angle in ANGLES:
            rotated, turn = rotations[angle.name], np.full(3, np.nan)
            if front is not None and rotated is not None:
                turn = np.asarray(measured_turn(front, rotated), dtype=np.float64)
            turns[angle.name].append(turn)
        painted += 1
        if progress is not None:
            progress.update(1)
    decoder.view()
    if decoder.stats.bad_packets:
        raise RuntimeError(f"{decoder.stats.bad_packets} message(s) did not decode: {decoder.stats.last_error}")
    measured = identity is not None and keyframe_descriptor is not None
    for angle in ANGLES:
        result.angles[angle.name] = angle_stats(
            angle,
            np.array(faces[angle.name], bool),
            np.array(turns[angle.name]).reshape(-1, 3),
            np.array(distances[angle.name]) if measured else None,
        )
    if measured:
        result.input_identity = identity_stats(np.array(distances[INPUT]))
    return result


def run_freeview(
    clips: list[Path],
    renderer: Renderer,
    identity: IdentityModel | None,
    seconds: float = 5.0,
    every: int = 2,
    identity_every: int = 5,
    progress: bool = True,
) -> list[ClipResult]:
    """:func:`run_clip` on every clip; a clip that cannot be measured is reported with the reason."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", disable=not progress, file=sys.stderr)
    results = []
    for path in clips:
        bar.set_description(path.name)
        expected = bar.n
        try:
            clip = _input(path, seconds)
            expected += len(range(0, len(clip.frames), every))
            bar.total = expected
            bar.refresh()
            results.append(run_clip(clip, renderer, identity, every, identity_every, bar))
        except (ClipError, RuntimeError, ValueError) as exc:
            print(f"warning: skipped: {path.name}: {exc}", file=sys.stderr)
            results.append(ClipResult(path.name, error=str(exc)))
        bar.update(expected - bar.n)  # frames not painted (no motion yet, or the clip failed)
    bar.close()
    return results


def _stats_dict(stats: AngleStats | None) -> dict[str, Any] | None:
    return None if stats is None else dataclasses.asdict(stats)


def summarize(results: list[ClipResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary: the views, per clip and per view the stats, their means over the
    measured clips, and the clips that could not be measured."""
    measured = [r for r in results if r.error is None]
    inputs = [r.input_identity for r in measured if r.input_identity is not None]
    return {
        "meta": meta,
        "angles": [{"name": a.name, "yaw": a.yaw, "pitch": a.pitch} for a in ANGLES],
        "clips": [
            {
                "clip": r.clip,
                "frames": r.frames,
                "fps": r.fps,
                "error": r.error,
                "angles": {name: _stats_dict(s) for name, s in r.angles.items()},
                "input_identity": _stats_dict(r.input_identity),
            }
            for r in results
        ],
        "overall": {
            "clips": len(measured),
            "angles": {a.name: _stats_dict(mean_stats([r.angles[a.name] for r in measured])) for a in ANGLES},
            "input_identity": _stats_dict(mean_stats(inputs)) if inputs else None,
        },
        "errors": [{"clip": r.clip, "error": r.error} for r in results if r.error is not None],
    }
