from __future__ import annotations

import numpy as np
import pytest

from codec.video import VideoError, VideoReader

from .conftest import write_video


def _frames(n: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    width, height = size
    return [np.full((height, width, 3), 10 * i % 256, np.uint8) for i in range(n)]


def test_reads_frames_and_times(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_video(tmp_path / "clip.mp4", _frames(20), fps=25)
    with VideoReader(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps) == (64, 48, 25.0)
        frames = list(reader)
    assert len(frames) == 20
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    np.testing.assert_allclose([f.time for f in frames], np.arange(20) / 25, atol=1e-6)
    assert not reader.info.truncated


def test_max_seconds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_video(tmp_path / "clip.mp4", _frames(50), fps=25)
    assert len(list(VideoReader(path, max_seconds=1.0))) == 25


def test_missing_and_not_a_video(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(VideoError, match=r"missing\.mp4: no such file"):
        VideoReader(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoError, match=r"notes\.mp4: not a readable video"):
        VideoReader(text)


def test_truncated_video_keeps_what_it_decoded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(30)]
    path = write_video(tmp_path / "clip.mkv", frames, fps=25)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoReader(cut)
    decoded = list(reader)
    assert 0 < len(decoded) < 30  # the first half decodes, the rest is gone, no exception


def test_frame_size_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_video(tmp_path / "clip.mp4", _frames(2, (256, 256)))
    with pytest.raises(VideoError, match=r"frames of 256x256 exceed the limit of 1000 pixels"):
        VideoReader(path, max_pixels=1000)
