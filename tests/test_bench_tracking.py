from __future__ import annotations

import json

import numpy as np
import pytest

from bench.__main__ import main as bench_main

from .conftest import shared_clip, write_video


def test_bench_tracking_reports_bad_inputs_and_keeps_going(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    empty = write_video(tmp_path / "noface.mp4", [np.full((96, 128, 3), 60, np.uint8)] * 5)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    assert bench_main(["tracking", "--clips", str(empty), str(broken), "--out", str(out), "--repeat", "1"]) == 0
    data = json.loads((out / "tracking.json").read_text())
    rows = {row["clip"]: row for row in data["clips"]}
    assert rows["noface.mp4"]["frames"] == 5 and rows["noface.mp4"]["frames_with_face"] == 0
    assert "broken.mp4: not a readable video" in rows["broken.mp4"]["error"]
    assert "broken.mp4: not a readable video" in capsys.readouterr().err
    assert "| broken.mp4 | error:" in (out / "tracking.md").read_text()


@pytest.mark.shared
def test_bench_tracking_on_a_real_clip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clip = shared_clip("grid_lbbc2a.mp4")
    out = tmp_path / "out"
    args = ["tracking", "--clips", str(clip), "--out", str(out), "--seconds", "1", "--repeat", "1", "--plot", clip.name]
    assert bench_main(args) == 0
    (row,) = json.loads((out / "tracking.json").read_text())["clips"]
    assert row["face_rate"] == 1.0 and row["frames"] == 25 and row["keyframes"] == 1
    assert set(row["stage_ms"]) == {"track", "crop", "extract", "pack"}
    assert 4 < row["motion_bytes_per_frame"] <= 14 and row["keypoint_error_px"] < 0.6
    assert (out / "head_pose_grid_lbbc2a.png").stat().st_size > 10_000
