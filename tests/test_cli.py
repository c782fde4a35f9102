from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from codec.packets import ControlType, KeyframePacket, MotionPacket, iter_packet_file
from receiver.__main__ import main as receiver_main
from receiver.inspect import inspect_file
from sender.__main__ import main as sender_main

from .conftest import shared_clip, write_video


def test_help_is_instant_and_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "sender", "--help"], capture_output=True, text=True, check=True)
    assert "encode" in out.stdout
    out = subprocess.run([sys.executable, "-m", "receiver", "--help"], capture_output=True, text=True, check=True)
    assert "inspect" in out.stdout


def test_encode_missing_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert sender_main(["encode", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "x.fvc")]) == 1
    assert "nope.mp4: no such file" in capsys.readouterr().err


def test_encode_video_without_a_face(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    frames = [np.full((120, 160, 3), 30 + i, np.uint8) for i in range(10)]
    video = write_video(tmp_path / "empty.mp4", frames)
    assert sender_main(["encode", str(video), "-o", str(tmp_path / "empty.fvc"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("frames 10, with face 0/10, motion 0.0 bytes/frame (0.0 kbps)")
    assert "no face found" in captured.err
    notices = list(iter_packet_file(tmp_path / "empty.fvc"))  # 0.4 s without a face: one no_face notice
    assert [(p.type, p.timestamp_ms) for p in notices] == [(ControlType.NO_FACE, 0)]  # type: ignore[union-attr]


@pytest.mark.shared
def test_encode_and_inspect_a_real_clip(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    clip = shared_clip("fomm_demo08.mp4")
    output = tmp_path / "clip.fvc"
    assert sender_main(["encode", str(clip), "-o", str(output), "--seconds", "2", "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    match = re.fullmatch(
        r"frames (\d+), with face (\d+)/\1, motion ([\d.]+) bytes/frame \(([\d.]+) kbps\), "
        r"body (\d+) messages \(([\d.]+) kbps\), keyframe ([\d.]+) KB, keypoint error ([\d.]+) px",
        line,
    )
    assert match, line
    frames, with_face, per_frame, _, bodies, body_kbps, keyframe_kb, error = match.groups()
    assert int(frames) == 70 and int(with_face) == 70  # 2 s at 35 fps
    assert 1 <= int(bodies) <= 10 and 0 < float(body_kbps) < 4  # measured every 0.2 s, sent when it changed
    assert float(per_frame) <= 40 and float(error) < 1.0 and 1 < float(keyframe_kb) < 40
    packets = list(iter_packet_file(output))
    assert isinstance(packets[0], KeyframePacket)
    assert sum(isinstance(p, MotionPacket) for p in packets) == 70
    report = inspect_file(output)
    assert report.motion_count == 70 and report.undecodable == 0 and not report.bad_packets
    assert report.body_count == int(bodies)
    assert receiver_main(["inspect", str(output)]) == 0
    text = capsys.readouterr().out
    assert f"1 keyframe, 70 motion, {bodies} body" in text and "0 undecodable, 0 sequence gaps" in text


def test_inspect_reports_damage(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.fvc"
    bad.write_bytes(b"FVC1\x00\x00\x00\x10abc")
    assert receiver_main(["inspect", str(bad)]) == 1
    assert "truncated record at byte 4 (3 of 16 bytes)" in capsys.readouterr().out
    other = tmp_path / "other.fvc"
    other.write_bytes(b"RIFF....")
    assert receiver_main(["inspect", str(other)]) == 1
    assert "not a packet file (no FVC1 header)" in capsys.readouterr().out
    assert receiver_main(["inspect", str(tmp_path / "missing.fvc")]) == 1
    assert "missing.fvc: no such file" in capsys.readouterr().err


@pytest.mark.shared
def test_render_a_packet_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import av

    clip = shared_clip("grid_lbbc2a.mp4")
    packets = tmp_path / "clip.fvc"
    assert sender_main(["encode", str(clip), "-o", str(packets), "--seconds", "1", "--quiet"]) == 0
    output = tmp_path / "out.mp4"
    args = ["render", str(packets), "-o", str(output), "--model", "classical", "--original", str(clip), "--yaw", "10"]
    assert receiver_main(args) == 0
    assert "25 frames at 25 fps, rendered by the classical renderer" in capsys.readouterr().out
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) == 25 and (frames[0].width, frames[0].height) == (512, 256)  # original | rendered
    assert receiver_main(["render", str(tmp_path / "none.fvc"), "-o", str(output)]) == 1
    assert "none.fvc: no such file" in capsys.readouterr().err


@pytest.mark.shared
def test_sample_sheet(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import cv2

    output = tmp_path / "sheet.png"
    args = ["sheet", "--clip", str(shared_clip("grid_lbbc2a.mp4")), "-o", str(output), "--model", "classical",
            "--frames", "2"]  # fmt: skip
    assert receiver_main(args) == 0
    sheet = cv2.imread(str(output))
    assert sheet.shape == (6 * 256, 3 * 256, 3)  # originals, renders, 4 free views; keyframe + 2 frames
    assert receiver_main([*args, "--edits"]) == 0
    edited = cv2.imread(str(output))
    assert edited.shape == (11 * 256, 3 * 256, 3)  # and a row per face edit
    renders, closed = edited[256:512, 256:], edited[9 * 256 : 10 * 256, 256:]  # unedited, eyes closed
    assert np.abs(renders.astype(int) - closed).mean() > 0.3
