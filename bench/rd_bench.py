"""``python -m bench rd``: every contender on every clip, measured and summarized.

Per clip and setting: the actual bitrate (payload bytes, and bytes on the wire in a call:
:mod:`bench.wire_rate`) and the mean of each per-frame metric.  Then per clip and overall:
H.264's rate-quality curve, the other contenders' points, their bandwidth ratio against H.264
for each metric, and BD-rate where curves overlap, once on payload rates and once on wire rates.  Besides
the whole-frame and face metrics: the face PSNR over the frames whose mouth is open wider than in the
keyframe, those frames' share, and the iris error (:mod:`bench.metrics`).  Clips
that cannot be measured (missing, not a video, no face) are reported with the reason; the
others are still measured.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .codecs import Codec
from .inputs import ClipError, ClipInput, landmarks_of_frames, prepare_clip
from .metrics import akd, face_masks, frame_metrics, iris_error, mean_over, open_mouth_frames
from .perceptual import CvvdpMeter
from .rd import bandwidth_ratio, bd_rate

__all__ = ["METRICS", "ClipReport", "Point", "keep_previous", "measure", "run_rd", "summarize"]

#: Reported metrics, in table order.  ``mouth_psnr``: face PSNR (dB) over the open-mouth frames;
#: ``open_frames``: their share of the frames; ``iris_px``: iris-centre error in pixels.  A point
#: measured before a metric existed (kept by ``--update``) lacks it: NaN, "n/a" in tables.
METRICS = ("psnr", "ssim", "msssim", "face_psnr", "face_ssim", "face_msssim", "akd", "mkr",
           "mouth_psnr", "open_frames", "iris_px", "cvvdp")  # fmt: skip
#: Metrics averaged over clips weighted by a count in each point's ``info`` (over frames, not
#: clips: a clip with 2 open-mouth frames must not weigh as much as one with 200): metric -> info key.
FRAME_WEIGHTED = {"mouth_psnr": "open_mouth_frames", "open_frames": "frames"}
#: Metrics a bandwidth ratio is given for.
RATIO_METRICS = ("psnr", "msssim", "akd")
#: ... and those given one only when every point has them (measured on request)
OPTIONAL_RATIO_METRICS = ("cvvdp",)


@dataclass
class Point:
    """One contender at one setting on one clip (or averaged over clips).

    Attributes:
        kbps: payload rate, kbit/s.
        wire_kbps: rate on the wire in a call, headers included (:mod:`bench.wire_rate`), kbit/s;
            None for a point measured before it was (kept by ``--update``) or a contender that
            does not say what it sends.
        seconds: how long the measurement took.
    """

    codec: str
    setting: float
    kbps: float
    metrics: dict[str, float]
    info: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    wire_kbps: float | None = None


def _payload_kbps(point: Point) -> float | None:
    return point.kbps


def _wire_kbps(point: Point) -> float | None:
    return point.wire_kbps


#: the rates the analysis is made on: (key prefix in the summary, rate of a point)
RATES: tuple[tuple[str, Callable[[Point], float | None]], ...] = (("", _payload_kbps), ("wire_", _wire_kbps))


@dataclass
class ClipReport:
    """One clip's points, or why it was not measured.

    Attributes:
        open_mouth_frames: how many of its frames are open-mouth (:func:`bench.metrics.open_mouth_frames`
            on the original landmarks); None when not measured.
    """

    clip: str
    frames: int = 0
    fps: float = 0.0
    error: str | None = None
    points: list[Point] = field(default_factory=list)
    open_mouth_frames: int | None = None


def measure(clip: ClipInput, codec: Codec, setting: float, cvvdp: CvvdpMeter | None = None) -> Point:
    """Code the clip, then measure every metric against the original crops (``cvvdp``: the
    perceptual score too, :mod:`bench.perceptual`; NaN without it).

    The tracker runs once on the output frames; its landmarks serve AKD, MKR and the iris error.
    ``info`` gets ``frames`` and ``open_mouth_frames`` (counts) for the frame-weighted means.
    """
    start = time.perf_counter()
    output = codec.run(clip, setting)
    per_frame = frame_metrics(clip.frames, output.frames, face_masks(clip.landmarks, clip.size))
    metrics = per_frame.means()
    output_landmarks = landmarks_of_frames(output.frames, clip.fps)
    distances, missing = akd(clip.landmarks, output_landmarks)
    metrics["akd"] = mean_over(distances)
    metrics["mkr"] = missing
    open_mouth = open_mouth_frames(clip.landmarks)
    metrics["mouth_psnr"] = mean_over(per_frame.face_psnr, open_mouth)
    metrics["open_frames"] = float(open_mouth.mean()) if len(open_mouth) else float("nan")
    metrics["iris_px"] = mean_over(iris_error(clip.landmarks, output_landmarks))
    metrics["cvvdp"] = cvvdp.jod(output.frames, clip.frames, clip.fps) if cvvdp is not None else float("nan")
    wire = output.wire()
    counts = {"frames": float(len(clip.frames)), "open_mouth_frames": float(open_mouth.sum())}
    info = {**output.info, **(wire.info(clip.duration) if wire is not None else {}), **counts}
    wire_kbps = wire.kbps(clip.duration) if wire is not None else None
    seconds = time.perf_counter() - start
    return Point(codec.name, setting, output.kbps(clip.duration), metrics, info, seconds, wire_kbps)


def run_rd(
    clips: list[Path],
    codecs: list[Codec],
    size: int = 256,
    seconds: float | None = 10.0,
    progress: bool = True,
    cvvdp: CvvdpMeter | None = None,
) -> list[ClipReport]:
    """Measure every contender at each of its settings on every clip."""
    from tqdm import tqdm

    runs = sum(len(c.settings(size)) for c in codecs)
    bar = tqdm(total=len(clips) * runs, unit="run", disable=not progress, file=sys.stderr)
    reports = []
    for path in clips:
        report = ClipReport(path.name)
        reports.append(report)
        bar.set_description(path.name)
        try:
            clip = prepare_clip(path, size=size, seconds=seconds)
        except ClipError as exc:
            report.error = str(exc)
            print(f"warning: skipped: {exc}", file=sys.stderr)
            bar.update(runs)
            continue
        report.frames, report.fps = len(clip.frames), clip.fps
        report.open_mouth_frames = int(open_mouth_frames(clip.landmarks).sum())
        for codec in codecs:
            for setting in codec.settings(size):
                try:
                    report.points.append(measure(clip, codec, setting, cvvdp))
                except (RuntimeError, ValueError) as exc:
                    print(f"warning: {path.name}: {codec.name} at {setting:g}: {exc}", file=sys.stderr)
                bar.update(1)
    bar.close()
    return reports


def keep_previous(
    reports: list[ClipReport],
    previous: dict[str, Any],
    measured: list[str],
    settings: Mapping[str, Collection[float]] | None = None,
) -> list[str]:
    """Add to ``reports`` the points of a previous summary for contenders not measured now.

    Used to re-measure one contender (say, a newly trained model) without re-running the
    others.  With ``settings`` (contender -> the settings measured now), a measured contender's
    points at other settings are kept too (one level of the quality knob re-measured).  Only
    clips of this run get points; a clip the previous run could not measure stays as this run
    found it.  Returns what was kept: a contender's name, or ``"name at s1, s2"`` when only some
    of its settings were.
    """
    by_clip = {r.clip: r for r in reports}
    kept: dict[str, set[float]] = {}

    def keep(point: dict[str, Any]) -> bool:
        if point["codec"] not in measured:
            return True
        return settings is not None and point["codec"] in settings and point["setting"] not in settings[point["codec"]]

    for entry in previous.get("clips", []):
        report = by_clip.get(entry["clip"])
        if report is None or report.error:
            continue
        old = [Point(**p) for p in entry["points"] if keep(p)]
        report.points = old + report.points
        for point in old:
            kept.setdefault(point.codec, set()).add(point.setting)
    return sorted(
        name if name not in measured else f"{name} at {', '.join(f'{s:g}' for s in sorted(values))}"
        for name, values in kept.items()
    )


def _mean_metric(points: list[Point], metric: str) -> float:
    """``metric`` averaged over the points that have a finite value of it (NaN if none): plain
    mean, or weighted by the count :data:`FRAME_WEIGHTED` names when every such point has it."""
    values = np.array([p.metrics.get(metric, np.nan) for p in points], dtype=np.float64)
    weight_key = FRAME_WEIGHTED.get(metric)
    weights = np.array([p.info.get(weight_key, np.nan) if weight_key else 1.0 for p in points], dtype=np.float64)
    keep = np.isfinite(values)
    if not keep.any():
        return float("nan")
    if not np.isfinite(weights[keep]).all() or weights[keep].sum() <= 0:
        return float(values[keep].mean())
    return float(np.average(values[keep], weights=weights[keep]))


def _mean_points(reports: list[ClipReport]) -> list[Point]:
    """Each (codec, setting) averaged over the clips that have it (rates and metrics; the metrics
    of :data:`FRAME_WEIGHTED` over frames)."""
    groups: dict[tuple[str, float], list[Point]] = {}
    for report in reports:
        for point in report.points:
            groups.setdefault((point.codec, point.setting), []).append(point)
    means = []
    for (codec, setting), points in groups.items():
        metrics = {m: _mean_metric(points, m) for m in METRICS}
        info_keys = set.intersection(*(set(p.info) for p in points))
        info = {k: float(np.mean([p.info[k] for p in points])) for k in sorted(info_keys)}
        info["clips"] = float(len(points))
        wires = [p.wire_kbps for p in points]
        wire = float(np.mean([w for w in wires if w is not None])) if None not in wires else None
        means.append(Point(codec, setting, float(np.mean([p.kbps for p in points])), metrics, info, wire_kbps=wire))
    return sorted(means, key=lambda p: (p.codec, p.setting))


def _ratio_metrics(points: list[Point]) -> tuple[str, ...]:
    """:data:`RATIO_METRICS`, and the optional ones every point of ``points`` has a value of."""
    optional = tuple(
        m for m in OPTIONAL_RATIO_METRICS if all(np.isfinite(p.metrics.get(m, float("nan"))) for p in points)
    )
    return RATIO_METRICS + optional


def _analysis(
    points: list[Point], rate: Callable[[Point], float | None] = _payload_kbps, reference: str = "h264"
) -> dict[str, object]:
    """Bandwidth ratios of every non-reference point, and BD-rates, for one set of points, on
    the rates ``rate`` gives.  Points without that rate are left out; so is everything when a
    reference point lacks it (no curve to compare with)."""
    rated = [(value, p) for p in points if (value := rate(p)) is not None]
    h264 = sorted(((r, p) for r, p in rated if p.codec == reference), key=lambda pair: pair[0])
    ratios = []
    bd = []
    if h264 and len(h264) == sum(p.codec == reference for p in points):
        rates = np.array([r for r, _ in h264])
        others = [(r, p) for r, p in rated if p.codec != reference]
        for own_rate, point in others:
            for metric in _ratio_metrics([p for _, p in h264] + [point]):
                quality = np.array([p.metrics[metric] for _, p in h264])
                ratio = bandwidth_ratio(rates, quality, own_rate, point.metrics[metric], metric)
                ratios.append({"codec": point.codec, "setting": point.setting, "metric": metric, **asdict(ratio),
                               "text": ratio.text()})  # fmt: skip
        for codec in sorted({p.codec for _, p in others}):
            own = [(r, p) for r, p in others if p.codec == codec]
            for metric in _ratio_metrics([p for _, p in h264] + [p for _, p in own]):
                value = bd_rate(rates, [p.metrics[metric] for _, p in h264], [r for r, _ in own],
                                [p.metrics[metric] for _, p in own], metric)  # fmt: skip
                bd.append({"codec": codec, "metric": metric, "bd_rate_percent": value})
    return {"ratios": ratios, "bd_rate": bd}


def _analyses(points: list[Point]) -> dict[str, object]:
    """:func:`_analysis` on payload rates (``ratios``, ``bd_rate``) and on wire rates
    (``wire_ratios``, ``wire_bd_rate``)."""
    return {f"{prefix}{key}": value for prefix, rate in RATES for key, value in _analysis(points, rate).items()}


def summarize(reports: list[ClipReport], meta: dict[str, object]) -> dict[str, object]:
    """The machine-readable summary (stable keys; see README)."""
    overall_points = _mean_points([r for r in reports if r.points])
    h264 = sorted((p for p in overall_points if p.codec == "h264"), key=lambda p: p.kbps)
    anchors: dict[str, float | bool | None] = {}
    if h264:
        from .rd import rate_for_quality

        rates = np.array([p.kbps for p in h264])
        anchors = {"h264_lowest_kbps": float(rates.min())}
        for key, metric, target in (("psnr_24", "psnr", 24.0), ("msssim_0.90", "msssim", 0.90)):
            qualities = np.array([p.metrics[metric] for p in h264])
            anchors[f"h264_kbps_at_{key}"] = rate_for_quality(rates, qualities, target)
            anchors[f"h264_{key}_below_floor"] = bool(qualities[0] > target)
    return {
        "meta": meta,
        "clips": [
            {
                "clip": r.clip,
                "frames": r.frames,
                "fps": r.fps,
                "error": r.error,
                "open_mouth_frames": r.open_mouth_frames,
                "points": [asdict(p) for p in r.points],
                **_analyses(r.points),
            }
            for r in reports
        ],
        "overall": {
            "clips": sum(1 for r in reports if r.points),
            "points": [asdict(p) for p in overall_points],
            **_analyses(overall_points),
            "h264_anchors": anchors,
        },
        "errors": [{"clip": r.clip, "error": r.error} for r in reports if r.error],
    }
