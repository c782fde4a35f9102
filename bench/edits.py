"""``python -m bench edits``: each face edit (:mod:`codec.edits`) on the val clips, measured.

Each clip is coded as ``bench freeview`` codes it (the tracker's 256x256 crops, ``codec.Encoder``
to ``codec.Decoder``) and every ``every``-th decoded frame is painted unedited and with each
edit of :data:`EDITS` (one :class:`codec.edits.FaceEditor` per edit over the whole clip, as a
receiver runs it).  The tracker measures each picture (unsmoothed):

- **eyes closed**: eye opening (lid gap over eye width, mesh 159/145 over 33/133 and 386/374
  over 362/263, both eyes' mean) against the unedited picture's, per frame; judged on the frames
  whose unedited eyes are open (at least :data:`BLINK_SHARE` of the clip's median opening: a
  frame where the source blinks has nothing left to close), and reported over all frames too;
- **smile**: mouth width (mesh 61-291) against the unedited picture's, and the corners' height
  over the lips' middle (mesh 13/14), positive = raised;
- **neutral**: the expression deltas the sender's extractor measures on the picture, against
  the neutral face ``neutral`` moves to (:func:`codec.edits.neutral_delta` of the face on the
  first keyframe as the decoder holds it: that face with its mouth closed), their mean
  magnitude against the unedited picture's;
- **eye contact**: the head pose measured on the picture (absolute yaw and pitch) and the iris
  centres' distance to their eye opening's centre (across: the corners' middle; up and down: the
  lids' middle, where real straight looks have the iris: :func:`_iris_to_opening`), to the
  corners' middle (px), their height above the corner line (px; an eye looking straight ahead
  sits ~1.9 px above it at 256, where :data:`codec.edits.STRAIGHT_GAZE` puts it) and their
  distance to that straight-ahead point,
  on the frames where the unedited picture's head looks within :data:`CONTACT_RANGE` degrees of
  the camera;
- for every edit, the PSNR against the original crop over the pixels outside the edited region
  (:func:`region_mask`) minus the unedited picture's there: what the edit costs the rest.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from codec.edits import STRAIGHT_GAZE, FaceEditor, FaceEdits, neutral_delta
from codec.motion.gaze import EYES as EYE_POINTS
from codec.motion.gaze import iris_positions, measure_gaze
from codec.render import Renderer

from .freeview import _input, clip_canonical, clip_encoder
from .inputs import ClipError, ClipInput

__all__ = ["BLINK_SHARE", "CONTACT_RANGE", "EDITS", "EditClipResult", "region_mask", "run_edits", "summarize_edits"]

#: the edits measured (name -> edits)
EDITS: dict[str, FaceEdits] = {
    "eyes-closed": FaceEdits(eyes="closed"),
    "smile": FaceEdits(expression="smile"),
    "neutral": FaceEdits(expression="neutral"),
    "eye-contact": FaceEdits(eye_contact=True),
}
#: a frame whose unedited eye opening is below this share of its clip's median is a blink of the
#: source (its eyes are closed already: an edit cannot close them to 30 % of that); eyes closed is
#: judged on the other frames
BLINK_SHARE = 0.5
#: eye contact is judged on frames whose unedited head looks within this many degrees of the camera
CONTACT_RANGE = 20.0
#: mesh ids of the regions an edit changes: the eyes (lids, brows' lower edge) and the mouth
_EYE_IDS = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
            263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)  # fmt: skip
#: each eye's middle upper and lower lid points, in :data:`EYE_POINTS`'s order
_LID_MIDDLES = ((159, 145), (386, 374))
_REGION_PAD = 0.15  # of the face's width, around a region's landmarks


@dataclasses.dataclass
class EditClipResult:
    clip: str
    frames: int = 0
    values: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # per-frame measures by name
    error: str | None = None

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(float(value))


def _distance(mesh: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(mesh[a, :2] - mesh[b, :2]))


def _eye_opening(mesh: np.ndarray) -> float:
    ratios = [_distance(mesh, u, lo) / max(_distance(mesh, a, b), 1e-6)
              for u, lo, a, b in ((159, 145, 33, 133), (386, 374, 362, 263))]  # fmt: skip
    return float(np.mean(ratios))


def _corner_height(mesh: np.ndarray) -> float:
    """px the mouth corners sit above the lips' middle (positive: raised)."""
    middle = (mesh[13, 1] + mesh[14, 1]) / 2
    return float(middle - (mesh[61, 1] + mesh[291, 1]) / 2)


def _iris_offset(mesh: np.ndarray) -> float:
    """px from each iris centre to its eye's centre (the corners' middle), both eyes' mean."""
    offsets = [np.linalg.norm(mesh[iris, :2] - (mesh[a, :2] + mesh[b, :2]) / 2) for iris, a, b in EYE_POINTS]
    return float(np.mean(offsets))


def _iris_to_opening(mesh: np.ndarray) -> float:
    """px from each iris centre to its eye opening's centre (across: the corners' middle; up and
    down: the middle of the lids, mesh 159/145 and 386/374), both eyes' mean.  Where a straight
    look has the iris: on the train split's frontal frames (|yaw|, |pitch| <= 10 degrees, 3862
    eyes at 256) it sits 1.53 px from there on average (0.36 px above), and 2.44 px from the
    corners' middle (1.79 above)."""
    offsets = [np.linalg.norm(mesh[iris, :2] - [(mesh[a, 0] + mesh[b, 0]) / 2, (mesh[up, 1] + mesh[low, 1]) / 2])
               for (iris, a, b), (up, low) in zip(EYE_POINTS, _LID_MIDDLES, strict=True)]  # fmt: skip
    return float(np.mean(offsets))


def _iris_to_straight(mesh: np.ndarray) -> float:
    """px from each iris centre to where an eye looking straight ahead has it
    (:data:`codec.edits.STRAIGHT_GAZE` in its eye's frame), both eyes' mean."""
    corners = np.array([[mesh[a, :2], mesh[b, :2]] for _, a, b in EYE_POINTS])
    straight = iris_positions(np.array([STRAIGHT_GAZE] * 2), corners)
    return float(np.mean(np.linalg.norm(mesh[[iris for iris, _, _ in EYE_POINTS], :2] - straight, axis=1)))


def _iris_height(mesh: np.ndarray) -> float:
    """px each iris centre sits above its eye's corner line (positive: above), both eyes' mean.
    An eye looking straight ahead measures about 0.15 of half its width
    (:data:`codec.edits.STRAIGHT_GAZE`): ~1.9 px at 256."""
    gaze = measure_gaze(mesh)
    if gaze is None:
        return float("nan")
    half_widths = [np.linalg.norm(mesh[b, :2] - mesh[a, :2]) / 2 for _, a, b in EYE_POINTS]
    return float(-np.mean(gaze[:, 1] * np.array(half_widths)))


def region_mask(name: str, meshes: list[np.ndarray], size: int) -> np.ndarray:
    """(size, size) bool: what edit ``name`` changes, around the landmarks of ``meshes`` (the
    unedited and edited pictures'): the eyes for eye edits, the face below the eyes for
    expressions, the whole face and the neck for eye contact (the head turns)."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    for mesh in meshes:
        width = float(np.ptp(mesh[:, 0]))
        pad = _REGION_PAD * width
        if name == "eyes-closed":
            for ids in (_EYE_IDS[:16], _EYE_IDS[16:]):
                points = mesh[list(ids), :2]
                x0, y0 = points.min(axis=0) - pad
                x1, y1 = points.max(axis=0) + pad
                cv2.rectangle(mask, (int(x0), int(y0)), (int(np.ceil(x1)), int(np.ceil(y1))), 1, -1)
            continue
        points = mesh[:, :2]
        if name == "eye-contact":  # the head moves: the face, its outline padded, down to the crop's bottom
            x0, y0 = points.min(axis=0) - pad
            x1 = points[:, 0].max() + pad
            cv2.rectangle(mask, (int(x0), int(y0)), (int(np.ceil(x1)), size), 1, -1)
            continue
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
        mask = np.asarray(cv2.dilate(mask, np.ones((int(2 * pad) | 1, int(2 * pad) | 1), np.uint8)), np.uint8)
    return mask.astype(bool)


def _psnr(picture: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any():
        return float("nan")
    error = (picture.astype(np.float64) - reference.astype(np.float64))[mask] ** 2
    return float(10 * np.log10(255.0**2 / max(float(error.mean()), 1e-10)))


def run_clip(clip: ClipInput, renderer: Renderer, every: int = 2, progress: Any = None) -> EditClipResult:
    """Code ``clip``, paint every ``every``-th frame unedited and with each edit, measure them."""
    from codec.decoder import Decoder
    from codec.motion.extract import MotionExtractor
    from codec.packets import DecodedMotion
    from codec.tracking import CropBox
    from codec.tracking.mediapipe import MediaPipeTracker

    result = EditClipResult(clip.name)
    encoder = clip_encoder(clip)
    decoder = Decoder(renderer)
    editors = {name: FaceEditor(edits) for name, edits in EDITS.items()}
    trackers = {name: MediaPipeTracker(smoothing=None) for name in ["unedited", *EDITS]}
    extractor = MotionExtractor()
    whole = CropBox(0.0, 0.0, float(clip.size))
    canonical = clip_canonical(clip, extractor)
    held = None  # the first keyframe's face as the decoder holds it
    for index, (image, time) in enumerate(zip(clip.frames, clip.times, strict=True)):
        for message in encoder.encode(np.ascontiguousarray(image), float(time)):
            decoder.receive(message)
        motion = decoder.motion
        if motion is None:
            continue
        if held is None and renderer.keyframe_image is not None:
            found = MediaPipeTracker(smoothing=None).process(renderer.keyframe_image, 0.0).raw_landmarks
            held = canonical if found is None else extractor.canonicalize(whole.normalize(found))
        edited = {name: editor.apply(motion.motion, motion.keyframe.canonical_keypoints, float(time))
                  for name, editor in editors.items()}  # fmt: skip  # every frame: the ramps and eye contact run
        if index % every:
            continue
        pictures: dict[str, np.ndarray] = {}
        for name, shown in [("unedited", motion.motion), *edited.items()]:
            picture = decoder.render(DecodedMotion(motion.seq, motion.timestamp_ms, motion.keyframe, shown))
            if picture is None:
                raise RuntimeError(f"{clip.name}: the decoder painted nothing ({decoder.stats.last_error})")
            pictures[name] = picture
        meshes = {name: trackers[name].process(p, float(time)).raw_landmarks for name, p in pictures.items()}
        if progress is not None:
            progress.update(1)
        plain = meshes["unedited"]
        if plain is None:
            continue
        result.frames += 1
        pose = extractor.head_pose(whole.normalize(plain), canonical)
        for name, mesh in meshes.items():
            if name == "unedited":
                continue
            result.add(f"{name}:face", mesh is not None)
            if mesh is None:
                continue
            mask = ~region_mask(name, [plain, mesh], clip.size)
            original = np.ascontiguousarray(image)
            result.add(f"{name}:outside_psnr_change",
                       _psnr(pictures[name], original, mask) - _psnr(pictures["unedited"], original, mask))  # fmt: skip
            if name == "eyes-closed":
                result.add("eyes-closed:opening_ratio", _eye_opening(mesh) / max(_eye_opening(plain), 1e-6))
                result.add("eyes-closed:unedited_opening", _eye_opening(plain))
            elif name == "smile":
                result.add("smile:width_ratio", _distance(mesh, 61, 291) / max(_distance(plain, 61, 291), 1e-6))
                result.add("smile:corner_raise_px", _corner_height(mesh) - _corner_height(plain))
            elif name == "neutral":
                face = held or canonical
                rest = neutral_delta(face.landmarks[extractor.scheme.keypoint_ids])  # the face neutral moves to
                plain_delta = extractor.extract(whole.normalize(plain), face).expression_delta - rest
                delta = extractor.extract(whole.normalize(mesh), face).expression_delta - rest
                magnitude = float(np.linalg.norm(plain_delta, axis=1).mean())
                result.add("neutral:delta_ratio", float(np.linalg.norm(delta, axis=1).mean()) / max(magnitude, 1e-9))
            elif name == "eye-contact" and max(abs(pose.yaw), abs(pose.pitch)) <= CONTACT_RANGE:
                contact = extractor.head_pose(whole.normalize(mesh), canonical)
                result.add("eye-contact:abs_yaw", abs(contact.yaw))
                result.add("eye-contact:abs_pitch", abs(contact.pitch))
                result.add("eye-contact:iris_px", _iris_offset(mesh))
                result.add("eye-contact:source_iris_px", _iris_offset(plain))
                result.add("eye-contact:iris_to_opening_px", _iris_to_opening(mesh))
                result.add("eye-contact:source_iris_to_opening_px", _iris_to_opening(plain))
                result.add("eye-contact:iris_to_straight_px", _iris_to_straight(mesh))
                result.add("eye-contact:source_iris_to_straight_px", _iris_to_straight(plain))
                result.add("eye-contact:iris_height_px", _iris_height(mesh))
                result.add("eye-contact:source_iris_height_px", _iris_height(plain))
    return result


def run_edits(clips: list[Path], renderer: Renderer, seconds: float = 5.0, every: int = 2,
              progress: bool = True) -> list[EditClipResult]:  # fmt: skip
    """:func:`run_clip` on every clip; a clip that cannot be measured is reported with the reason."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="frame", disable=not progress, file=sys.stderr)
    results = []
    for path in clips:
        bar.set_description(path.name)
        try:
            clip = _input(path, seconds)
            bar.total += len(range(0, len(clip.frames), every))
            bar.refresh()
            results.append(run_clip(clip, renderer, every, bar))
        except (ClipError, RuntimeError, ValueError) as exc:
            print(f"warning: skipped: {path.name}: {exc}", file=sys.stderr)
            results.append(EditClipResult(path.name, error=str(exc)))
    bar.close()
    return results


def _open_eye_ratios(result: EditClipResult) -> np.ndarray:
    """The eyes-closed ratios of ``result``'s frames whose unedited eyes are open (not a blink of
    the source: at least :data:`BLINK_SHARE` of the clip's median unedited opening)."""
    ratios = np.asarray(result.values.get("eyes-closed:opening_ratio", []), dtype=np.float64)
    opening = np.asarray(result.values.get("eyes-closed:unedited_opening", []), dtype=np.float64)
    if len(opening) != len(ratios) or not len(ratios):
        return np.zeros(0)
    return ratios[opening >= BLINK_SHARE * float(np.median(opening))]


def summarize_edits(results: list[EditClipResult], meta: dict[str, Any]) -> dict[str, Any]:
    """Pooled over the frames of all clips: means, and the acceptance shares of issue 14."""
    pooled: dict[str, list[float]] = {}
    for result in results:
        for name, values in result.values.items():
            pooled.setdefault(name, []).extend(values)

    def mean(name: str) -> float | None:
        values = np.asarray(pooled.get(name, []), dtype=np.float64)
        values = values[np.isfinite(values)]
        return float(values.mean()) if len(values) else None

    def share(name: str, test: Any) -> float | None:
        values = np.asarray(pooled.get(name, []), dtype=np.float64)
        return float(np.mean(test(values))) if len(values) else None

    overall = {name: mean(name) for name in sorted(pooled)}
    overall["eyes-closed:share_at_most_30pct"] = share("eyes-closed:opening_ratio", lambda v: v <= 0.3)
    open_ratios = np.concatenate([_open_eye_ratios(r) for r in results] or [np.zeros(0)])
    overall["eyes-closed:open_frames"] = len(open_ratios)
    overall["eyes-closed:open_share_at_most_30pct"] = float(np.mean(open_ratios <= 0.3)) if len(open_ratios) else None
    overall["eyes-closed:open_opening_ratio"] = float(open_ratios.mean()) if len(open_ratios) else None
    overall["eye-contact:share_within_3deg"] = share("eye-contact:abs_yaw", lambda v: v <= 3.0)
    overall["eye-contact:frames"] = len(pooled.get("eye-contact:abs_yaw", []))
    return {
        "meta": meta,
        "overall": overall,
        "clips": [
            dataclasses.asdict(r) | {"means": {k: float(np.nanmean(v)) for k, v in r.values.items()}} for r in results
        ],
    }


def markdown(summary: dict[str, Any]) -> str:
    """The report: pooled numbers against the acceptance of issue 14, then per clip."""
    meta, o = summary["meta"], summary["overall"]

    def cell(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    rows = [
        ("eyes closed: eye opening / unedited (mean; all frames)",
         f"{cell(o.get('eyes-closed:open_opening_ratio'), '.3f')} ({cell(o.get('eyes-closed:opening_ratio'), '.3f')})",
         "<= 0.30"),
        (f"eyes closed: frames at <= 30 % ({o.get('eyes-closed:open_frames', 0)} with the unedited eyes open; "
         "all frames)",
         f"{cell(o.get('eyes-closed:open_share_at_most_30pct'), '.1%')} "
         f"({cell(o.get('eyes-closed:share_at_most_30pct'), '.1%')})", ">= 95 %"),
        ("smile: mouth width / unedited", cell(o.get("smile:width_ratio"), ".3f"), ">= 1.08"),
        ("smile: corners raised (px)", cell(o.get("smile:corner_raise_px"), "+.2f"), "> 0"),
        ("neutral: expression deltas / unedited", cell(o.get("neutral:delta_ratio"), ".3f"), "< 0.40"),
        ("eye contact: mean abs yaw (deg)", cell(o.get("eye-contact:abs_yaw"), ".2f"), "<= 3"),
        ("eye contact: mean abs pitch (deg)", cell(o.get("eye-contact:abs_pitch"), ".2f"), "<= 3"),
        ("eye contact: frames with abs yaw <= 3", cell(o.get("eye-contact:share_within_3deg"), ".1%"), ""),
        ("eye contact: iris to the eye opening's centre (px; source)",
         f"{cell(o.get('eye-contact:iris_to_opening_px'), '.2f')} "
         f"({cell(o.get('eye-contact:source_iris_to_opening_px'), '.2f')})", "<= 1.5"),
        ("eye contact: iris to the corners' middle (px; source)",
         f"{cell(o.get('eye-contact:iris_px'), '.2f')} ({cell(o.get('eye-contact:source_iris_px'), '.2f')})", ""),
        ("eye contact: iris to where a straight look has it (px; source)",
         f"{cell(o.get('eye-contact:iris_to_straight_px'), '.2f')} "
         f"({cell(o.get('eye-contact:source_iris_to_straight_px'), '.2f')})", ""),
        ("eye contact: iris above the corner line (px; source)",
         f"{cell(o.get('eye-contact:iris_height_px'), '+.2f')} "
         f"({cell(o.get('eye-contact:source_iris_height_px'), '+.2f')})", ""),
    ]  # fmt: skip
    lines = [
        "# Face edits: `python -m bench edits`",
        "",
        f"{meta['when']}, `{meta['command']}`, renderer {meta['renderer']} ({meta['model']}), {meta['clips']} clip(s), "
        f"first {meta['seconds']:g} s, every {meta['every']} frame(s), {meta['minutes']:.1f} min.",
        "",
        "Pooled over the painted frames where the tracker finds a face on the unedited picture; eyes closed over "
        f"those whose unedited eyes are open (at least {BLINK_SHARE:.0%} of the clip's median opening: where the "
        "source blinks there is nothing left to close), all frames in brackets; eye contact over "
        f"those whose unedited head looks within {CONTACT_RANGE:g} degrees of the camera "
        f"({o.get('eye-contact:frames', 0)} frames). See `bench/edits.py` for each measure.",
        "",
        "| measure | value | issue 14 asks |",
        "|---|---:|---:|",
        *[f"| {name} | {value} | {target} |" for name, value, target in rows],
        "",
        "Outside the edited region, PSNR against the original crop, edited minus unedited (dB; 0: the rest is "
        "untouched):",
        "",
        "| edit | face found % | PSNR change outside |",
        "|---|---:|---:|",
        *[f"| {name} | {cell(None if o.get(f'{name}:face') is None else 100 * o[f'{name}:face'], '.1f')} | "
          f"{cell(o.get(f'{name}:outside_psnr_change'), '+.2f')} |" for name in EDITS],
        "",
        "## Per clip",
        "",
        "| clip | frames | eyes closed opening (all frames) | smile width | neutral deltas | contact yaw | "
        "contact iris to opening px |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for clip in summary["clips"]:
        if clip["error"]:
            lines.append(f"| {clip['clip']} | skipped: {clip['error']} | | | | | |")
            continue
        m = clip["means"]
        lines.append(
            f"| {clip['clip']} | {clip['frames']} | {cell(m.get('eyes-closed:opening_ratio'), '.3f')} | "
            f"{cell(m.get('smile:width_ratio'), '.3f')} | {cell(m.get('neutral:delta_ratio'), '.3f')} | "
            f"{cell(m.get('eye-contact:abs_yaw'), '.2f')} | {cell(m.get('eye-contact:iris_to_opening_px'), '.2f')} |"
        )
    return "\n".join(lines) + "\n"


def write_edits(summary: dict[str, Any], out: Path) -> str:
    """``edits.json`` and ``edits.md`` into ``out``; returns the Markdown."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / "edits.json").write_text(json.dumps(summary, indent=1, default=float))
    text = markdown(summary)
    (out / "edits.md").write_text(text)
    return text
