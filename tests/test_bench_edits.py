"""bench edits: the measures on known meshes, the regions, the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.edits import (
    EDITS,
    EditClipResult,
    _corner_height,
    _eye_opening,
    _iris_height,
    _iris_offset,
    _iris_to_opening,
    _iris_to_straight,
    markdown,
    region_mask,
    summarize_edits,
    write_edits,
)
from codec.edits import STRAIGHT_GAZE
from codec.motion.gaze import iris_positions

from .conftest import bench_on_a_faceless_clip
from .synthetic import face_mesh


def _pixels(mesh: np.ndarray, size: int = 256) -> np.ndarray:
    return (mesh + 1.0) * size / 2


def test_measures_on_a_known_mesh() -> None:
    mesh = _pixels(face_mesh())
    opening = _eye_opening(mesh)
    closed = mesh.copy()
    closed[[159, 386], 1] = closed[[145, 374], 1]  # upper lids on the lower ones
    assert 0.1 < opening < 0.6 and _eye_opening(closed) == 0.0
    raised = mesh.copy()
    raised[[61, 291], 1] -= 3.0
    assert _corner_height(raised) - _corner_height(mesh) == 3.0
    centred = mesh.copy()
    for iris, a, b in ((468, 33, 133), (473, 362, 263)):
        centred[iris, :2] = (mesh[a, :2] + mesh[b, :2]) / 2
    assert _iris_offset(centred) == 0.0
    assert _iris_height(centred) == pytest.approx(0.0, abs=1e-9)
    straight = mesh.copy()
    corners = np.array([[mesh[a, :2], mesh[b, :2]] for _, a, b in ((468, 33, 133), (473, 362, 263))])
    straight[[468, 473], :2] = iris_positions(np.array([STRAIGHT_GAZE] * 2), corners)
    half_width = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1).mean() / 2
    assert _iris_to_straight(straight) == pytest.approx(0.0, abs=1e-9)
    assert _iris_height(straight) == pytest.approx(-STRAIGHT_GAZE[1] * half_width)  # above the corner line
    assert _iris_to_straight(centred) == pytest.approx(_iris_offset(straight))
    eyes = list(zip(((468, 33, 133), (473, 362, 263)), ((159, 145), (386, 374)), strict=True))
    opening = mesh.copy()  # each iris in the middle of its eye's opening: across the corners', up and down the lids'
    for (iris, a, b), (up, low) in eyes:
        opening[iris, :2] = ((mesh[a, 0] + mesh[b, 0]) / 2, (mesh[up, 1] + mesh[low, 1]) / 2)
    assert _iris_to_opening(opening) == pytest.approx(0.0, abs=1e-9)
    lids = np.mean(
        [abs((mesh[up, 1] + mesh[low, 1]) / 2 - (mesh[a, 1] + mesh[b, 1]) / 2) for (_, a, b), (up, low) in eyes]
    )
    assert _iris_to_opening(centred) == pytest.approx(lids)  # the corners' middle is off the opening's by that


def test_regions_cover_what_each_edit_changes() -> None:
    mesh = _pixels(face_mesh())
    eyes = region_mask("eyes-closed", [mesh], 256)
    face = region_mask("smile", [mesh], 256)
    head = region_mask("eye-contact", [mesh], 256)
    for iris in (468, 473):
        x, y = np.round(mesh[iris, :2]).astype(int)
        assert eyes[y, x] and face[y, x] and head[y, x]
    x, y = np.round(mesh[14, :2]).astype(int)  # the lower lip: not an eye region
    assert not eyes[y, x] and face[y, x]
    assert eyes.sum() < face.sum() < head.sum() < 256 * 256 and head[-1].any() and not face[0].any()


def test_the_report_pools_frames_and_says_what_issue_14_asks(tmp_path: Path) -> None:
    first, second = EditClipResult("a.mp4", 2), EditClipResult("b.mp4", 1)
    for ratio, unedited in ((0.2, 0.3), (0.4, 0.05)):  # the second frame: the source blinks
        first.add("eyes-closed:opening_ratio", ratio)
        first.add("eyes-closed:unedited_opening", unedited)
    second.add("eyes-closed:opening_ratio", 0.1)
    second.add("eyes-closed:unedited_opening", 0.3)
    for name in EDITS:
        first.add(f"{name}:face", True)
        first.add(f"{name}:outside_psnr_change", -0.5)
    first.add("eye-contact:abs_yaw", 2.0)
    first.add("eye-contact:abs_yaw", 4.0)
    failed = EditClipResult("c.mp4", error="the tracker finds no face in its crops")
    meta = {"when": "2026-11-22", "command": "python -m bench edits", "renderer": "neural", "model": "m.pth",
            "clips": 2, "seconds": 5.0, "every": 2, "minutes": 3.2}  # fmt: skip
    summary = summarize_edits([first, second, failed], meta)
    overall = summary["overall"]
    assert overall["eyes-closed:opening_ratio"] == np.mean([0.2, 0.4, 0.1])  # pooled over frames, not clips
    assert overall["eyes-closed:share_at_most_30pct"] == 2 / 3 and overall["eye-contact:share_within_3deg"] == 0.5
    # judged where the unedited eyes are open: 0.05 is below half of a.mp4's median opening (0.175)
    assert overall["eyes-closed:open_frames"] == 2 and overall["eyes-closed:open_share_at_most_30pct"] == 1.0
    assert overall["eyes-closed:open_opening_ratio"] == pytest.approx(0.15)
    text = write_edits(summary, tmp_path)
    assert text == markdown(summary) == (tmp_path / "edits.md").read_text() and (tmp_path / "edits.json").is_file()
    assert "| eyes closed: eye opening / unedited (mean; all frames) | 0.150 (0.233) | <= 0.30 |" in text
    assert (
        "| eyes closed: frames at <= 30 % (2 with the unedited eyes open; all frames) | 100.0% (66.7%) | >= 95 % |"
        in text
    )
    assert "| smile: mouth width / unedited | n/a | >= 1.08 |" in text
    assert "| eyes-closed | 100.0 | -0.50 |" in text
    assert "| c.mp4 | skipped: the tracker finds no face in its crops |" in text


def test_no_measurable_clip_leaves_the_results_as_they_were(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = bench_on_a_faceless_clip(tmp_path, "edits", ("edits.md", "earlier results"))
    assert code == 1
    err = capsys.readouterr().err
    assert "noface.mp4" in err and f"error: no clip could be measured; {out} left as it was" in err
    assert (out / "edits.md").read_text() == "earlier results" and sorted(p.name for p in out.iterdir()) == ["edits.md"]
