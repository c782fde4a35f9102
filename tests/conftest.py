from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_clip(name: str) -> Path:
    """A real clip from ../shared/data/clips, or skip the test saying why."""
    path = SHARED_DATA / "clips" / name
    if not path.is_file():
        pytest.skip(f"real clips are not available ({path} is absent); they live in ../shared/data")
    return path


def shared_frames(name: str, count: int) -> list[np.ndarray]:
    """The first ``count`` (H, W, 3) uint8 RGB frames of a real clip (skips as :func:`shared_clip` does)."""
    from codec.video import VideoReader

    frames: list[np.ndarray] = []
    with VideoReader(shared_clip(name)) as reader:
        for frame in reader:
            frames.append(frame.image)
            if len(frames) == count:
                break
    return frames


def shared_clips(split: str | None = None) -> list[Path]:
    manifest = SHARED_DATA / "manifest.csv"
    if not manifest.is_file():
        pytest.skip(f"real clips are not available ({manifest} is absent)")
    with manifest.open() as file:
        rows = list(csv.DictReader(file))
    return [SHARED_DATA / "clips" / r["file"] for r in rows if split is None or r["split"] == split]


def write_video(path: Path, frames: list[np.ndarray], fps: int = 25, codec: str = "libx264") -> Path:
    """Encode (H, W, 3) uint8 RGB frames into a video file with PyAV."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def bench_on_a_faceless_clip(tmp_path: Path, command: str, earlier: tuple[str, str]) -> tuple[int, Path]:
    """Run ``python -m bench COMMAND`` (classical model) on a 5-frame clip without a face, its
    ``--out`` folder already holding an ``earlier`` (file name, text) result; its exit code and
    that folder."""
    from bench.__main__ import main as bench_main

    clip = write_video(tmp_path / "noface.mp4", [np.full((96, 128, 3), 60, np.uint8)] * 5)
    out = tmp_path / "out"
    out.mkdir()
    (out / earlier[0]).write_text(earlier[1])
    return bench_main([command, "--clips", str(clip), "--model", "classical", "--out", str(out)]), out


@pytest.fixture(scope="session")
def tracker_factory():  # type: ignore[no-untyped-def]
    from codec.tracking.mediapipe import MediaPipeTracker

    return MediaPipeTracker


@contextlib.contextmanager
def nan_generator(renderer: Any) -> Iterator[None]:
    """Inside the block, ``renderer``'s model (a :class:`codec.render.NeuralRenderer`'s) paints NaN."""
    original = renderer.model.generate

    def broken(*args: Any) -> Any:
        out = original(*args)
        out["image"] = out["image"] * float("nan")
        return out

    renderer.model.generate = broken
    try:
        yield
    finally:
        del renderer.model.generate
