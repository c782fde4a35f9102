"""The RD benchmark: metrics, rate accounting, ratio arithmetic, bad clips."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codecs import H264, FrozenKeyframe, MotionCodec
from bench.codecs.h264 import x264_info_sei_bytes
from bench.inputs import ClipError, ClipInput, prepare_clip
from bench.metrics import PSNR_CAP, akd, face_masks, frame_metrics, psnr
from bench.rd import bandwidth_ratio, bd_rate, rate_for_quality
from bench.rd_bench import ClipReport, Point, keep_previous, run_rd, summarize
from bench.report import write_report

from .conftest import shared_clip, write_video


def _synthetic_clip(n: int = 12, size: int = 256, seed: int = 0) -> ClipInput:
    """A moving textured pattern (no face)."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (size * 2, size * 2, 3), dtype=np.uint8)
    texture = np.asarray(torch.nn.functional.avg_pool2d(torch.from_numpy(texture).permute(2, 0, 1).float(), 5, 1, 2)
                         .permute(1, 2, 0).round().byte())  # fmt: skip
    frames = np.stack([texture[i * 3 : i * 3 + size, i * 2 : i * 2 + size] for i in range(n)])
    landmarks = np.full((n, 478, 3), np.nan, np.float32)
    return ClipInput("synthetic.mp4", 25.0, frames, np.arange(n) / 25.0, landmarks, 0)


# --- metrics ------------------------------------------------------------------------------------


def test_identical_frames_are_ideal() -> None:
    clip = _synthetic_clip()
    masks = np.zeros((len(clip.frames), 256, 256), bool)
    masks[:, 60:200, 50:210] = True
    metrics = frame_metrics(clip.frames, clip.frames.copy(), masks)
    assert (metrics.psnr == PSNR_CAP).all() and (metrics.face_psnr == PSNR_CAP).all()
    np.testing.assert_allclose(metrics.ssim, 1.0, atol=1e-6)
    np.testing.assert_allclose(metrics.msssim, 1.0, atol=1e-6)
    np.testing.assert_allclose(metrics.face_msssim, 1.0, atol=1e-6)
    landmarks = np.random.default_rng(0).uniform(0, 256, (4, 478, 3)).astype(np.float32)
    distances, missing = akd(landmarks, landmarks.copy())
    assert (distances == 0).all() and missing == 0.0


def test_metrics_agree_with_an_independent_implementation() -> None:
    from pytorch_msssim import ms_ssim, ssim

    clip = _synthetic_clip(6)
    noisy = np.clip(clip.frames + np.random.default_rng(1).normal(0, 12, clip.frames.shape), 0, 255).astype(np.uint8)
    ours = frame_metrics(clip.frames, noisy)
    x = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).double()
    y = torch.from_numpy(noisy).permute(0, 3, 1, 2).double()
    np.testing.assert_allclose(ours.ssim, ssim(x, y, data_range=255, size_average=False).numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.msssim, ms_ssim(x, y, data_range=255, size_average=False).numpy(), atol=1e-5)
    mse = ((clip.frames.astype(float) - noisy) ** 2).reshape(6, -1).mean(1)
    np.testing.assert_allclose(ours.psnr, 10 * np.log10(255**2 / mse))
    # a worse picture scores lower everywhere
    worse = frame_metrics(clip.frames, np.clip(noisy.astype(int) * 0.7, 0, 255).astype(np.uint8))
    assert worse.psnr.mean() < ours.psnr.mean() and worse.msssim.mean() < ours.msssim.mean()


def test_masked_psnr_and_face_masks() -> None:
    reference = np.zeros((1, 4, 4, 3), np.uint8)
    output = reference.copy()
    output[0, 0, 0] = 255  # one wrong pixel, outside the mask
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 2:, 2:] = True
    assert psnr(reference, output, mask)[0] == PSNR_CAP
    assert psnr(reference, output)[0] == pytest.approx(10 * math.log10(16))
    square = np.array([[[10, 10, 0], [50, 10, 0], [50, 50, 0], [10, 50, 0]] + [[30, 30, 0]] * 474], np.float32)
    masks = face_masks(np.concatenate([square, np.full_like(square, np.nan)]), 64)
    assert masks[0].sum() == 41 * 41 and not masks[1].any()


def test_akd_missing_faces() -> None:
    reference = np.zeros((3, 478, 3), np.float32)
    output = reference + np.array([3.0, 4.0, 100.0], np.float32)  # z is ignored
    output[2] = np.nan
    distances, missing = akd(reference, output)
    assert distances[0] == pytest.approx(5.0) and math.isnan(distances[2])
    assert missing == pytest.approx(1 / 3)


# --- rate accounting -----------------------------------------------------------------------------


def test_h264_rate_is_the_sum_of_its_packets() -> None:
    clip = _synthetic_clip(25)
    codec = H264()
    packets = codec.encode(clip, 100)
    sei = x264_info_sei_bytes(packets[0])
    assert 300 < sei < 1500  # x264's version-and-options SEI
    output = codec.run(clip, 100)
    assert output.bits == 8 * (sum(len(p) for p in packets) - sei)
    assert output.info["kbps_with_sei"] == pytest.approx(8 * sum(len(p) for p in packets) / 1.0 / 1000)
    assert output.frames.shape == clip.frames.shape
    assert 20 < output.kbps(clip.duration) < 130  # the rate control roughly holds the target
    assert frame_metrics(clip.frames, output.frames).psnr.mean() > 20
    with pytest.raises(ValueError, match="at least 1 kbps"):
        codec.run(clip, 0.5)


def test_frozen_keyframe_counts_its_one_image() -> None:
    clip = _synthetic_clip(5)
    output = FrozenKeyframe().run(clip, 90)
    assert output.bits == 8 * output.info["keyframe_bytes"]
    assert (output.frames == output.frames[0]).all()


@pytest.mark.shared
def test_motion_codec_rate_is_the_sum_of_its_packets(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bench.inputs import landmarks_of_frames
    from codec.packets import PacketKind, packet_kind, read_packet_records

    clip = prepare_clip(shared_clip("grid_lbbc2a.mp4"), seconds=1.0, use_cache=False)
    distances, missing = akd(clip.landmarks, landmarks_of_frames(clip.frames.copy(), clip.fps))
    assert np.isfinite(distances).all() and (distances == 0).all() and missing == 0  # identical frames: AKD 0
    output = MotionCodec(levels=(3,), record_dir=tmp_path).run(clip, 3)
    records = list(read_packet_records(tmp_path / "grid_lbbc2a-q3.fvc"))
    assert output.bits == 8 * sum(len(r) for r in records)
    bodies = round(output.info["body_kbps"] * 1000 * clip.duration / 8)  # bytes
    body_count = sum(packet_kind(r) is PacketKind.BODY for r in records)
    assert output.info["keyframes"] == 1 and len(records) == 1 + len(clip.frames) + body_count
    assert 1 <= body_count <= 5 and bodies == sum(len(r) for r in records if packet_kind(r) is PacketKind.BODY)
    # on the wire: motion and body on the audio packets, the keyframe on the data channel, in the order sent
    from bench.wire_rate import Route

    assert output.sent is not None and [u.sizes for u in output.sent] == [(len(r),) for r in records]
    assert [u.route for u in output.sent] == [Route.DATA_CHANNEL] + [Route.AUDIO_EXTENSION] * (len(records) - 1)
    cost = output.wire()
    assert cost is not None and cost.audio_packets_with_motion == math.ceil(clip.duration / 0.06)
    assert cost.total_bytes > output.bits // 8


# --- rate-distortion arithmetic ------------------------------------------------------------------

RATES = np.array([10.0, 20.0, 40.0, 80.0])
PSNRS = np.array([30.0, 32.0, 34.0, 36.0])


def test_bandwidth_ratio_on_a_known_curve() -> None:
    # 33 dB lies half-way (in log-rate) between 20 and 40 kbps: H.264 needs 20 * sqrt(2) kbps
    ratio = bandwidth_ratio(RATES, PSNRS, 5.0, 33.0, "psnr")
    assert ratio.kind == "exact" and ratio.value == pytest.approx(20 * math.sqrt(2) / 5)
    assert bandwidth_ratio(RATES, PSNRS, 5.0, 30.0, "psnr").value == pytest.approx(2.0)
    floor = bandwidth_ratio(RATES, PSNRS, 5.0, 29.0, "psnr")
    assert floor.kind == "below_floor" and floor.value == pytest.approx(2.0) and "floor" in floor.text()
    beyond = bandwidth_ratio(RATES, PSNRS, 5.0, 40.0, "psnr")
    assert beyond.kind == "above_range" and beyond.value == pytest.approx(16.0)
    # AKD: lower is better
    akds = np.array([4.0, 3.0, 2.0, 1.0])
    assert bandwidth_ratio(RATES, akds, 10.0, 2.5, "akd").value == pytest.approx(20 * math.sqrt(2) / 10)
    assert bandwidth_ratio(RATES, akds, 10.0, 5.0, "akd").kind == "below_floor"
    assert rate_for_quality(RATES, PSNRS, 35.0) == pytest.approx(40 * math.sqrt(2))


def test_bd_rate_of_a_shifted_curve() -> None:
    assert bd_rate(RATES, PSNRS, RATES / 2, PSNRS, "psnr") == pytest.approx(-50.0)
    assert bd_rate(RATES, PSNRS, RATES * 1.5, PSNRS, "psnr") == pytest.approx(50.0)
    assert bd_rate(RATES, PSNRS, [5.0], [31.0], "psnr") is None  # one point: no curve
    assert bd_rate(RATES, PSNRS, [1.0, 2.0], [40.0, 41.0], "psnr") is None  # no overlap


# --- bad clips do not stop the benchmark ---------------------------------------------------------


def test_bad_clips_are_named_and_skipped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    noface = write_video(tmp_path / "noface.mp4", [np.full((120, 160, 3), 90, np.uint8)] * 10)
    notvideo = tmp_path / "notes.mp4"
    notvideo.write_text("hello\n" * 500)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(noface.read_bytes()[:300])
    with pytest.raises(ClipError, match=r"noface\.mp4: no face found in the first 10 s"):
        prepare_clip(noface, use_cache=False)
    with pytest.raises(ClipError, match=r"notes\.mp4: not a readable video"):
        prepare_clip(notvideo, use_cache=False)
    with pytest.raises(ClipError, match=r"truncated\.mp4"):
        prepare_clip(truncated, use_cache=False)
    with pytest.raises(ClipError, match=r"missing\.mp4: no such file"):
        prepare_clip(tmp_path / "missing.mp4")


@pytest.mark.shared
def test_rd_run_measures_good_clips_around_bad_ones(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("bench.inputs.CACHE_DIR", tmp_path / "cache")
    good = shared_clip("grid_lbbc2a.mp4")
    notvideo = tmp_path / "broken.mp4"
    notvideo.write_bytes(b"\x00" * 100)
    codecs = [H264(rates={256: (20, 60)}), FrozenKeyframe(), MotionCodec(levels=(4,))]
    reports = run_rd([notvideo, good], codecs, seconds=1.0, progress=False)
    assert reports[0].error is not None and "broken.mp4" in reports[0].error and not reports[0].points
    assert [(p.codec, p.setting) for p in reports[1].points] == [
        ("h264", 20.0), ("h264", 60.0), ("frozen", 90.0), ("fvc-hold", 4.0)]  # fmt: skip
    h264_60 = reports[1].points[1]
    assert h264_60.metrics["psnr"] > reports[1].points[0].metrics["psnr"] > 20
    assert 0 <= h264_60.metrics["akd"] < 3 and h264_60.metrics["mkr"] == 0
    summary = summarize(reports, {"when": "today", "command": "test", "minutes": 0.1, "size": 256, "seconds": 1.0,
                                  "codecs": [c.name for c in codecs], "machine": "test"})  # fmt: skip
    write_report(summary, tmp_path / "out")
    text = (tmp_path / "out" / "rd.md").read_text()
    assert "broken.mp4" in text and "| h264 | 20 |" in text and "ratio on PSNR" in text
    assert (tmp_path / "out" / "rd.png").stat().st_size > 10_000
    assert Path(tmp_path / "out" / "clips" / "grid_lbbc2a.png").is_file()
    # the prepared crops were cached and are reused
    assert len(list((tmp_path / "cache").glob("grid_lbbc2a-256-1.0s-*.npz"))) == 1


def test_update_keeps_the_points_of_contenders_not_measured_again(tmp_path) -> None:  # type: ignore[no-untyped-def]
    metrics = {"psnr": 25.0, "ssim": 0.8, "msssim": 0.9, "face_psnr": 24.0, "face_ssim": 0.7, "face_msssim": 0.85,
               "akd": 2.0, "mkr": 0.0}  # fmt: skip
    stale = Point("fvc-neural", 90, 9.0, {**metrics, "psnr": 20.0})
    old = [ClipReport("a.mp4", 10, 25.0, points=[Point("h264", 20, 17.0, metrics), stale])]
    old.append(ClipReport("b.mp4", 10, 25.0, points=[Point("h264", 20, 15.0, metrics)]))
    previous = summarize(old, {"when": "yesterday", "command": "first run", "minutes": 1.0, "size": 256,
                               "seconds": 1.0, "codecs": ["h264", "fvc-neural"], "machine": "test"})  # fmt: skip
    new = [ClipReport("a.mp4", 10, 25.0, points=[Point("fvc-neural", 90, 9.0, {**metrics, "psnr": 26.0})]),
           ClipReport("c.mp4", error="c.mp4: no face")]  # fmt: skip
    kept = keep_previous(new, previous, ["fvc-neural"])
    assert kept == ["h264"]
    assert [(p.codec, p.kbps, p.metrics["psnr"]) for p in new[0].points] == [("h264", 17.0, 25.0),
                                                                            ("fvc-neural", 9.0, 26.0)]  # fmt: skip
    assert new[1].points == []  # a clip the new run could not measure gets no old points
    summary = summarize(new, {"when": "today", "command": "update", "minutes": 0.1, "size": 256, "seconds": 1.0,
                              "codecs": ["h264", "fvc-neural"], "machine": "test",
                              "kept_from": {"codecs": kept, "when": "yesterday", "command": "first run"}})  # fmt: skip
    write_report(summary, tmp_path / "out")
    text = (tmp_path / "out" / "rd.md").read_text()
    assert "Points of h264 are kept from the run of yesterday (`first run`)." in text
    assert "| fvc-neural | 90 | 9.00 | n/a | 26.00 |" in text  # no wire rate given


def test_update_can_keep_the_settings_of_a_contender_not_measured_again() -> None:
    metrics = {"psnr": 25.0, "msssim": 0.9, "akd": 2.0}
    old = [ClipReport("a.mp4", 10, 25.0, points=[Point("h264", 20, 17.0, metrics), Point("fvc-neural", 1, 5.0, metrics),
                                                 Point("fvc-neural", 2, 7.0, metrics)])]  # fmt: skip
    previous = json.loads(json.dumps({"clips": [{"clip": "a.mp4", "points": [asdict(p) for p in old[0].points]}]}))
    new = [ClipReport("a.mp4", 10, 25.0, points=[Point("fvc-neural", 1, 4.0, {**metrics, "psnr": 24.0})])]
    assert keep_previous(new, previous, ["fvc-neural"], {"fvc-neural": {1.0}}) == ["fvc-neural at 2", "h264"]
    assert [(p.codec, p.setting, p.kbps) for p in new[0].points] == [
        ("h264", 20, 17.0), ("fvc-neural", 2, 7.0), ("fvc-neural", 1, 4.0)]  # fmt: skip


def test_update_without_a_previous_run_says_what_to_do(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bench.__main__ import main

    clip = write_video(tmp_path / "clip.mp4", [np.zeros((64, 64, 3), np.uint8)] * 3)
    assert main(["rd", "--clips", str(clip), "--out", str(tmp_path / "out"), "--codecs", "frozen", "--update"]) == 1
    expected = f"error: --update: {tmp_path / 'out' / 'rd.json'} does not exist (run without --update first)"
    assert expected in capsys.readouterr().err


def test_rd_refuses_unknown_levels_and_says_when_no_clip_is_long_enough(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from bench.__main__ import main

    clip = write_video(tmp_path / "clip.mp4", [np.zeros((64, 64, 3), np.uint8)] * 3)
    out = str(tmp_path / "out")
    assert main(["rd", "--clips", str(clip), "--out", out, "--codecs", "fvc-hold", "--levels", "0"]) == 2
    assert "error: --levels: quality must be one of 1, 2, 3, 4, 5, got 0" in capsys.readouterr().err
    assert main(["rd", "--clips", str(tmp_path), "--out", out, "--min-seconds", "30", "--seconds", "0"]) == 1
    assert f"error: no clips at least 30 s long found in {tmp_path}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="^quality must be one of 1, 2, 3, 4, 5, got 7$"):
        MotionCodec(levels=(3, 7))


def test_rd_measures_the_products_decoder_by_default() -> None:
    from bench.__main__ import _parser

    args = _parser().parse_args(["rd", "--clips", "clips", "--out", "out"])
    assert args.codecs == ["h264", "frozen", "fvc-neural"] and args.model == "mesh"
