"""The RD benchmark's open-mouth face PSNR and iris error (issue 12, item 5): the measures on
synthetic landmarks with hand-computed values, their place in a measured point, the report's
columns, and rd.json files written before these metrics existed."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.codecs import Codec
from bench.codecs.base import CodecOutput
from bench.inputs import ClipInput
from bench.metrics import (
    IRIS_IDS,
    OPEN_MOUTH_MARGIN,
    PSNR_CAP,
    iris_error,
    mean_over,
    mouth_opening,
    open_mouth_frames,
    psnr,
)
from bench.rd_bench import ClipReport, Point, keep_previous, measure, summarize
from bench.report import write_report

ROOT = Path(__file__).resolve().parent.parent
META = {"when": "today", "command": "test", "minutes": 0.1, "size": 256, "seconds": 1.0,
        "codecs": ["h264", "fvc-neural"], "machine": "test"}  # fmt: skip
#: the metrics of a point measured before issue 12 (no mouth or iris keys)
OLD_METRICS = {"psnr": 25.0, "ssim": 0.8, "msssim": 0.9, "face_psnr": 24.0, "face_ssim": 0.7, "face_msssim": 0.85,
               "akd": 2.0, "mkr": 0.0}  # fmt: skip


def _mouths(gaps: list[float], width: float = 32.0) -> np.ndarray:
    """(N, 478, 3) float32 landmarks, all at (128, 128) but the mouth: corners ``width`` px apart
    (61 at x = 112, 291 at x = 112 + width), inner lips (13, 14) ``gap`` px apart; NaN gap: no face."""
    landmarks = np.full((len(gaps), 478, 3), 128.0, np.float32)
    for index, gap in enumerate(gaps):
        if math.isnan(gap):
            landmarks[index] = np.nan
            continue
        landmarks[index, 61, :2] = (112.0, 150.0)
        landmarks[index, 291, :2] = (112.0 + width, 150.0)
        landmarks[index, 13, :2] = (128.0, 146.0)
        landmarks[index, 14, :2] = (128.0, 146.0 + gap)
    return landmarks


# --- the measures -------------------------------------------------------------------------------


def test_mouth_opening_is_the_inner_lip_gap_over_the_mouth_width() -> None:
    opening = mouth_opening(_mouths([0.0, 4.0, 16.0, math.nan], width=32.0))
    assert opening.dtype == np.float64 and opening.shape == (4,)
    np.testing.assert_array_equal(opening[:3], [0.0, 0.125, 0.5])
    assert math.isnan(opening[3])
    # a tilted mouth: distances, not coordinates
    tilted = _mouths([0.0])
    tilted[0, 61, :2], tilted[0, 291, :2] = (100.0, 100.0), (130.0, 140.0)  # 50 px apart
    tilted[0, 13, :2], tilted[0, 14, :2] = (110.0, 120.0), (116.0, 128.0)  # 10 px apart
    assert mouth_opening(tilted)[0] == pytest.approx(0.2)
    # no width: undefined, not infinite
    assert math.isnan(mouth_opening(_mouths([4.0], width=0.0))[0])


def test_open_mouth_frames_are_those_wider_than_the_keyframe_by_the_margin() -> None:
    assert OPEN_MOUTH_MARGIN == 0.05
    # the keyframe is the first frame with a face (frame 1: opening 4/32 = 0.125)
    gaps = [math.nan, 4.0, 4.0, 5.0, 5.5, 5.75, 12.0, math.nan, 0.0]
    # openings -, 0.125, 0.125, 0.15625, 0.171875, 0.1796875, 0.375, -, 0 (exact in float32):
    # above 0.125 + 0.05 = 0.175 are frames 5 and 6
    selected = open_mouth_frames(_mouths(gaps))
    assert selected.dtype == bool
    assert np.flatnonzero(selected).tolist() == [5, 6]
    # exactly at the threshold is not open: 0.125 + 0.25 = 0.375 (exact in binary) is not above it
    assert np.flatnonzero(open_mouth_frames(_mouths(gaps), margin=0.25)).tolist() == []
    assert np.flatnonzero(open_mouth_frames(_mouths(gaps), margin=0.0)).tolist() == [3, 4, 5, 6]
    # a keyframe with an open mouth (0.375): only openings above 0.425 count (0.5, not 0.40625)
    assert np.flatnonzero(open_mouth_frames(_mouths([12.0, 0.0, 16.0, 13.0]))).tolist() == [2]
    # no face anywhere: nothing is open
    assert not open_mouth_frames(_mouths([math.nan, math.nan])).any()


def test_iris_error_is_the_mean_distance_of_the_two_iris_centres() -> None:
    assert IRIS_IDS == (468, 473)
    reference = np.random.default_rng(0).uniform(0, 256, (3, 478, 3)).astype(np.float32)
    output = reference.copy()
    output[:, :468] += 40.0  # the other landmarks do not count
    output[0, 468, :2] += (3.0, 4.0)  # 5 px
    output[0, 473, 2] += 30.0  # depth does not count
    output[1, 468, :2] -= (6.0, 8.0)  # 10 px ...
    output[1, 473, :2] += (0.0, 2.0)  # ... and 2 px
    output[2] = np.nan  # no face on the output
    error = iris_error(reference, output)
    assert error.dtype == np.float64 and error.shape == (3,)
    np.testing.assert_allclose(error[:2], [2.5, 6.0], atol=1e-4)
    assert math.isnan(error[2])
    assert math.isnan(iris_error(np.full_like(reference, np.nan), reference)[0])
    assert mean_over(error) == pytest.approx(4.25, abs=1e-4)


def test_masked_psnr_over_a_subset_of_frames() -> None:
    """Face PSNR per frame (mask of 4 pixels), then the mean over the selected frames."""
    reference = np.zeros((4, 4, 4, 3), np.uint8)
    output = reference.copy()
    mask = np.zeros((4, 4, 4), bool)
    mask[:, 1:3, 1:3] = True
    output[:, 0, 0] = 255  # outside the mask everywhere: never counted
    output[0, 1, 1] = 255  # frame 0: 1 of 4 masked pixels wrong by 255 -> MSE 255^2 / 4
    output[1, 1, 1:3] = 255  # frame 1: 2 of 4 -> MSE 255^2 / 2
    output[2, 1:3, 1:3] = 255  # frame 2: all 4 -> 0 dB
    face = psnr(reference, output, mask)  # frame 3 is perfect: PSNR_CAP
    np.testing.assert_allclose(face, [10 * math.log10(4), 10 * math.log10(2), 0.0, PSNR_CAP])
    assert mean_over(face, np.array([True, True, False, False])) == pytest.approx(
        (10 * math.log10(4) + 10 * math.log10(2)) / 2
    )
    assert mean_over(face, np.array([False, False, True, False])) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        assert math.isnan(mean_over(face, np.zeros(4, bool)))
        assert math.isnan(mean_over(np.array([np.nan, 3.0]), np.array([True, False])))


# --- in a measured point ------------------------------------------------------------------------


class _Brighten(Codec):
    """Adds ``setting`` grey levels to every pixel of frames 2 and 3 (others unchanged)."""

    name = "brighten"

    def settings(self, size: int) -> list[float]:
        return [10.0]

    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        frames = clip.frames.copy()
        frames[2:4] += np.uint8(setting)
        return CodecOutput(frames, 8000, setting)


def test_measure_reports_open_mouth_psnr_and_iris_error_with_one_tracker_run(monkeypatch: Any) -> None:
    n, size = 5, 192
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 200, (n, size, size, 3), dtype=np.uint8)
    reference = _mouths([0.0, 0.0, 8.0, 8.0, 0.0])  # frames 2 and 3 open (0.25 > 0 + 0.05)
    reference[:, :4, :2] = [[40, 40], [150, 40], [150, 150], [40, 150]]  # the face hull: a square
    clip = ClipInput("synthetic.mp4", 25.0, frames, np.arange(n) / 25.0, reference, 0)
    output_landmarks = reference.copy()
    output_landmarks[:, 468, 0] += 3.0  # 3 px and 1 px: iris error 2 px on every frame
    output_landmarks[:, 473, 1] -= 1.0
    output_landmarks[4] = np.nan  # the tracker finds no face in the last output
    calls: list[int] = []

    def fake_tracker(images: np.ndarray, fps: float) -> np.ndarray:
        calls.append(len(images))
        return output_landmarks

    monkeypatch.setattr("bench.rd_bench.landmarks_of_frames", fake_tracker)
    point = measure(clip, _Brighten(), 10.0)
    assert calls == [n]  # the output is tracked once, for AKD and the irises
    expected = 10 * math.log10(255**2 / 10**2)  # every face pixel 10 grey levels off
    assert point.metrics["mouth_psnr"] == pytest.approx(expected)
    assert point.metrics["face_psnr"] == pytest.approx((2 * expected + 3 * PSNR_CAP) / 5)
    assert point.metrics["open_frames"] == pytest.approx(2 / 5)
    assert point.metrics["iris_px"] == pytest.approx(2.0)
    assert point.metrics["mkr"] == pytest.approx(1 / 5)
    assert point.info["frames"] == 5 and point.info["open_mouth_frames"] == 2


def _point(codec: str, setting: float, mouth: float | None, opened: int, frames: int, iris: float) -> Point:
    metrics = {**OLD_METRICS, "open_frames": opened / frames, "iris_px": iris}
    metrics["mouth_psnr"] = float("nan") if mouth is None else mouth
    info = {"frames": float(frames), "open_mouth_frames": float(opened)}
    return Point(codec, setting, 10.0, metrics, info)


def test_means_over_clips_weigh_open_mouth_frames() -> None:
    reports = [
        ClipReport("a.mp4", 100, 25.0, points=[_point("fvc-neural", 70, 20.0, 10, 100, 1.0)], open_mouth_frames=10),
        ClipReport("b.mp4", 300, 25.0, points=[_point("fvc-neural", 70, 30.0, 30, 300, 2.0)], open_mouth_frames=30),
        ClipReport("c.mp4", 100, 25.0, points=[_point("fvc-neural", 70, None, 0, 100, 3.0)], open_mouth_frames=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = summarize(reports, META)["overall"]["points"][0]  # type: ignore[index]
    assert mean["metrics"]["mouth_psnr"] == pytest.approx((10 * 20.0 + 30 * 30.0) / 40)  # c has none
    assert mean["metrics"]["open_frames"] == pytest.approx(40 / 500)
    assert mean["metrics"]["iris_px"] == pytest.approx(2.0)  # per clip, as AKD


# --- the report, and rd.json files from before -----------------------------------------------


def test_the_report_has_the_open_mouth_and_iris_columns(tmp_path: Path) -> None:
    h264 = [_point("h264", rate, 20.0 + rate / 10, 5, 50, 3.0 - rate / 100) for rate in (10, 20, 40)]
    for point, rate in zip(h264, (10, 20, 40), strict=True):
        point.kbps = float(rate)
        point.metrics["psnr"] = 25.0 + rate / 10
    ours = _point("fvc-neural", 70, 24.5, 5, 50, 1.234)
    summary = summarize([ClipReport("a.mp4", 50, 25.0, points=[*h264, ours], open_mouth_frames=5)], META)
    write_report(summary, tmp_path)
    text = (tmp_path / "rd.md").read_text()
    header = ("| codec | setting | kbps | wire kbps | PSNR dB | SSIM | MS-SSIM | face PSNR | face SSIM | "
              "face MS-SSIM | AKD px | MKR | open-mouth face PSNR | open share | iris px |")  # fmt: skip
    assert text.count(header) == 2  # the mean table and the clip's
    assert "| fvc-neural | 70 | 10.00 | n/a | 25.00 | 0.8000 | 0.9000 | 24.00 | 0.7000 | 0.8500 | 2.00 | 0.000 | " \
           "24.50 | 0.100 | 1.23 |" in text  # fmt: skip
    assert "Open-mouth frames: 5 of 50 (10.0 %), in 1 of 1 clips." in text
    assert "### a.mp4 (50 frames, 5 open-mouth, 25 fps)" in text
    assert "above the keyframe's by more than 0.05" in text and "(mesh 468, 473)" in text
    stored = json.loads((tmp_path / "rd.json").read_text())
    point = next(p for p in stored["overall"]["points"] if p["codec"] == "fvc-neural")
    assert point["metrics"]["mouth_psnr"] == 24.5 and point["metrics"]["iris_px"] == 1.234
    assert point["metrics"]["open_frames"] == 0.1 and stored["clips"][0]["open_mouth_frames"] == 5
    # no ratio or BD-rate on the new columns
    assert {r["metric"] for r in stored["overall"]["ratios"]} == {"psnr", "msssim", "akd"}


def test_points_of_an_old_rd_json_load_with_update(tmp_path: Path) -> None:
    """Points kept from an rd.json written before these metrics: n/a in their columns, and the
    new points' values stand alone in the means."""
    old_h264 = {"codec": "h264", "setting": 20, "kbps": 17.0, "metrics": OLD_METRICS, "info": {}, "seconds": 1.0}
    previous = {"meta": {"when": "yesterday", "command": "old run"}, "clips": [
        {"clip": "a.mp4", "frames": 50, "fps": 25.0, "error": None, "points": [old_h264]},
        {"clip": "b.mp4", "frames": 50, "fps": 25.0, "error": None, "points": [old_h264]}]}  # fmt: skip
    reports = [ClipReport("a.mp4", 50, 25.0, points=[_point("fvc-neural", 70, 24.5, 5, 50, 1.5)], open_mouth_frames=5),
               ClipReport("b.mp4", 50, 25.0, points=[], open_mouth_frames=0)]  # fmt: skip
    assert keep_previous(reports, json.loads(json.dumps(previous)), ["fvc-neural"]) == ["h264"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = summarize(reports, META)
    means = {p["codec"]: p for p in summary["overall"]["points"]}  # type: ignore[index]
    assert math.isnan(means["h264"]["metrics"]["mouth_psnr"]) and math.isnan(means["h264"]["metrics"]["iris_px"])
    assert means["h264"]["metrics"]["psnr"] == 25.0
    write_report(summary, tmp_path)
    text = (tmp_path / "rd.md").read_text()
    assert "| h264 | 20 | 17.00 | n/a | 25.00 | 0.8000 | 0.9000 | 24.00 | 0.7000 | 0.8500 | 2.00 | 0.000 | n/a | " \
           "n/a | n/a |" in text  # fmt: skip
    stored = json.loads((tmp_path / "rd.json").read_text())
    assert next(p for p in stored["overall"]["points"] if p["codec"] == "h264")["metrics"]["mouth_psnr"] is None


def test_the_committed_rd_json_still_loads(tmp_path: Path) -> None:
    """The results in the repository (written before these metrics) go through ``--update``."""
    committed = ROOT / "bench" / "results" / "rd-256" / "rd.json"
    if not committed.is_file():
        pytest.skip(f"{committed} is absent")
    previous = json.loads(committed.read_text())
    reports = [ClipReport(c["clip"], c["frames"], c["fps"]) for c in previous["clips"] if not c["error"]]
    kept = keep_previous(reports, previous, ["fvc-neural"])
    assert "h264" in kept and all(r.points for r in reports)
    summary = summarize(reports, META)
    write_report(summary, tmp_path)
    assert "| h264 | 8 |" in (tmp_path / "rd.md").read_text()
    assert "Open-mouth frames" not in (tmp_path / "rd.md").read_text()  # no counts in those clips
