from __future__ import annotations

import numpy as np
import pytest

from codec.images import encode_image
from codec.keyframes import KeyframePolicy, crop_brightness
from codec.motion.params import HeadPose
from codec.packets import ControlPacket, ControlType, MotionPacket, PacketError, PacketFileWriter, iter_packet_file
from codec.packets.container import read_packet_records
from codec.tracking import CropBox, TrackResult, TrackStatus
from receiver.inspect import inspect_file

from .data.make_packets import keyframe, motion


def _track(status: TrackStatus, time: float, crop_changed: bool = False, face: bool = True) -> TrackResult:
    landmarks = np.zeros((478, 3), np.float32) if face else None
    return TrackResult(status, time, landmarks, landmarks, "mediapipe478", crop=CropBox(0, 0, 10),
                       crop_changed=crop_changed)  # fmt: skip


def test_keyframe_policy() -> None:
    policy = KeyframePolicy(max_turn=25, min_gap=2.0)
    assert policy.reason(_track(TrackStatus.NO_FACE, 0.0, face=False), None) is None
    assert policy.reason(_track(TrackStatus.DETECTED, 0.0), None) == "first face"
    policy.sent(0.0, HeadPose(0.0, 0.0, 0.0))
    assert policy.reason(_track(TrackStatus.TRACKED, 0.04), HeadPose(10.0, 0.0, 0.0)) is None
    assert policy.reason(_track(TrackStatus.TRACKED, 0.08, crop_changed=True), None) == "crop moved"
    assert policy.reason(_track(TrackStatus.DETECTED, 0.12), None) == "face re-acquired"
    assert policy.reason(_track(TrackStatus.TRACKED, 1.0), HeadPose(30.0, 0.0, 0.0)) is None  # too soon
    assert policy.reason(_track(TrackStatus.TRACKED, 2.5), HeadPose(0.0, -31.0, 0.0)) == "head turned 31 degrees"


def test_encode_image_formats() -> None:
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert encode_image(image, "jpeg").startswith(b"\xff\xd8\xff")
    assert encode_image(image, "png").startswith(b"\x89PNG")
    webp = encode_image(image, "webp")
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    with pytest.raises(ValueError, match="image codec must be one of"):
        encode_image(image, "gif")


def test_packet_file_round_trip_and_bad_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "call.fvc"
    packets = [keyframe(), motion(True), ControlPacket(ControlType.BYE, 3000)]
    with PacketFileWriter(path) as writer:
        sizes = [len(writer.write(p)) for p in packets]
    assert path.stat().st_size == 4 + sum(4 + s for s in sizes)
    assert list(iter_packet_file(path)) == packets
    # a garbage record between good ones is counted, the rest is still read
    records = list(read_packet_records(path))
    damaged = tmp_path / "damaged.fvc"
    with damaged.open("wb") as file:
        file.write(b"FVC1")
        for data in (records[0], b"\x92\x01", records[1], records[2]):
            file.write(len(data).to_bytes(4, "big") + data)
    report = inspect_file(damaged)
    assert report.bad_packets == ["#1: packet is truncated (incomplete msgpack)"]
    assert report.motion_count == 1 and report.controls["bye"] == 1 and len(report.keyframes) == 1
    with pytest.raises(PacketError):
        list(iter_packet_file(damaged))
    assert isinstance(list(iter_packet_file(path))[1], MotionPacket)


def test_lighting_change_calls_for_a_keyframe() -> None:
    policy = KeyframePolicy(min_gap=1.0, max_lighting_change=0.2)
    policy.sent(0.0, HeadPose(0.0, 0.0, 0.0), brightness=100.0)
    assert policy.reason(_track(TrackStatus.TRACKED, 2.0), HeadPose(0.0, 0.0, 0.0), brightness=110.0) is None
    assert policy.reason(_track(TrackStatus.TRACKED, 2.0), HeadPose(0.0, 0.0, 0.0), brightness=70.0) == (
        "lighting changed by 30%"
    )
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[20:60, 20:60] = 200
    assert crop_brightness(frame, CropBox(20, 20, 40)) == 200.0
    assert crop_brightness(frame, CropBox(200, 200, 10)) == 0.0  # outside the frame


def test_camera_source_frames_through_an_ffmpeg_device() -> None:
    """The camera path (FFmpeg device input via aiortc's MediaPlayer), fed by a lavfi test pattern."""
    import asyncio

    from sender.sources import CameraSource

    async def first_frames() -> list:  # type: ignore[type-arg]
        camera = CameraSource(audio=False, device=("testsrc=size=320x240:rate=25", "lavfi"))
        try:
            frames = []
            async for frame in camera.frames():
                frames.append(frame)
                if len(frames) == 5:
                    return frames
            return frames
        finally:
            camera.close()

    frames = asyncio.run(first_frames())
    assert len(frames) == 5
    assert all(f.image.shape == (240, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[0].image.std() > 20  # the test pattern, not a blank picture
    times = [f.time for f in frames]
    assert times == sorted(times)


def test_a_missing_camera_says_what_to_do() -> None:
    from sender.sources import CameraSource

    with pytest.raises(RuntimeError, match=r"camera 0 cannot be opened \(.*\); check --camera or use --video FILE"):
        CameraSource(audio=False, device=("/nonexistent/video0", "video4linux2"))


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="V4L2 device names are Linux's")
def test_a_camera_number_with_no_device() -> None:
    from pathlib import Path

    from sender.sources import CameraSource

    assert not Path("/dev/video57").exists()
    with pytest.raises(RuntimeError, match=r"^camera 57 cannot be opened \(.*\); check --camera or use --video FILE$"):
        CameraSource(57, audio=False)
