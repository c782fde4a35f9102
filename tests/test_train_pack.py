"""Packing the prepared training set for a GPU machine, and batches sampled by worker processes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.train import pack as pack_module
from codec.train.__main__ import main as train_main
from codec.train.data import ClipData, load_clip_data
from codec.train.pack import MESH_STEPS_PER_UNIT, pack_clip, unpack, unpack_clip
from codec.train.trainer import PairSampler, TrainSettings, batch_stream


def _clip(frames: int = 10, size: int = 64) -> ClipData:
    """A smooth moving picture (what H.264 keeps well) and a mesh on a random walk."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    pictures = []
    for index in range(frames):
        red = 128 + 100 * np.sin((x + 2 * index) / 9)
        green = 128 + 100 * np.cos(y / 11)
        blue = 0.5 * (red + green)
        pictures.append(np.stack([red, green, blue], axis=-1).round().astype(np.uint8))
    mesh = np.cumsum(rng.normal(0, 0.003, (frames, 478, 3)), axis=0) + rng.uniform(-0.8, 0.8, (1, 478, 3))
    rotation = np.tile(np.eye(3, dtype=np.float32), (frames, 1, 1))
    return ClipData("walk", np.stack(pictures), rng.uniform(-0.4, 0.4, (frames, 20, 3)).astype(np.float32), rotation,
                    rng.uniform(0.9, 1.1, frames).astype(np.float32), np.arange(frames) != 3, 24.0,
                    mesh.astype(np.float16))  # fmt: skip


def test_a_packed_clip_unpacks_to_the_same_arrays(tmp_path: Path) -> None:
    clip = _clip()
    size = pack_clip(clip, tmp_path / "pack" / "train" / "walk", frame_step=2)
    assert size == sum(f.stat().st_size for f in (tmp_path / "pack" / "train").iterdir())
    assert size < clip.frames[::2].nbytes / 4
    folder = unpack_clip(tmp_path / "pack" / "train" / "walk", tmp_path / "cache" / "walk")
    unpacked = load_clip_data(folder)
    kept = slice(0, None, 2)
    assert unpacked.frames.shape == (5, 64, 64, 3) and unpacked.fps == 12.0
    mse = np.mean((unpacked.frames.astype(np.float64) - clip.frames[kept]) ** 2)
    assert 10 * np.log10(255**2 / mse) > 38.0
    np.testing.assert_array_equal(unpacked.valid, clip.valid[kept])
    np.testing.assert_array_equal(unpacked.keypoints, clip.keypoints[kept])
    np.testing.assert_array_equal(unpacked.scale, clip.scale[kept])
    # the mesh to half a quantization step (plus float16's own rounding of values under 1)
    error = np.abs(unpacked.landmarks.astype(np.float64) - clip.landmarks[kept].astype(np.float64)).max()
    assert error <= 0.5 / MESH_STEPS_PER_UNIT + 2**-11
    assert unpack_clip(tmp_path / "pack" / "train" / "walk", folder) == folder  # reused, not decoded again


def test_opencv_decodes_a_pack_where_pyav_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare GPU image has OpenCV but not PyAV."""
    pytest.importorskip("cv2")
    clip = _clip(4)
    pack_clip(clip, tmp_path / "walk", frame_step=1)
    with_av = pack_module._decode_frames(tmp_path / "walk.mp4")
    monkeypatch.setitem(__import__("sys").modules, "av", None)
    with_opencv = pack_module._decode_frames(tmp_path / "walk.mp4")
    assert with_opencv.shape == with_av.shape == (4, 64, 64, 3)
    assert np.abs(with_opencv.astype(int) - with_av).max() <= 2  # YUV to RGB rounding


def test_unpack_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        unpack(tmp_path, tmp_path / "cache")
    assert str(error.value) == f"{tmp_path}: no packed train clip (expected {tmp_path}/train/*.mp4)"
    pack_clip(_clip(6), tmp_path / "train" / "walk", frame_step=2)
    pack_clip(_clip(8), tmp_path / "other" / "walk", frame_step=2)
    (tmp_path / "other" / "walk.mp4").replace(tmp_path / "train" / "walk.mp4")  # 4 frames, 3 in the motion
    with pytest.raises(ValueError) as mismatch:
        unpack(tmp_path, tmp_path / "cache", workers=1)
    assert str(mismatch.value) == f"{tmp_path}/train/walk: 4 frames in its .mp4, 3 in its .npz"
    assert train_main(["fit", "--pack", str(tmp_path / "none"), "--run", str(tmp_path / "run")]) == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_from_worker_processes(workers: int) -> None:
    clip = _clip()
    sampler = PairSampler([clip], np.random.default_rng(0))
    stream = batch_stream(sampler, TrainSettings(batch=3, workers=workers), start_step=0)
    batches = [next(stream) for _ in range(4)]
    assert all(b["source_image"].shape == (3, 3, 64, 64) and b["kp_source"].shape == (3, 20, 3) for b in batches)
    pairs = {tuple(b["kp_driving"][:, 0, 0].tolist()) for b in batches}
    assert len(pairs) == 4  # every worker draws its own pairs
    if workers == 0:  # the training process's own generator: reproducible from a checkpoint
        again = PairSampler([clip], np.random.default_rng(0)).batch(3)
        assert torch.equal(again["kp_driving"], batches[0]["kp_driving"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_training_step_on_cuda() -> None:
    from codec.train.trainer import Trainer

    trainer = Trainer(TrainSettings(batch=2, gan_start=0, device="cuda"), None)
    batch = PairSampler([_clip()], trainer.rng).batch(2)
    values = trainer.train_step(batch)
    assert np.isfinite(values["total"]) and next(trainer.model.parameters()).is_cuda


def test_a_terminated_run_with_workers_saves_its_checkpoint(tmp_path: Path) -> None:
    """SIGTERM to the whole process group (as `timeout` or a job scheduler sends it) ends the
    workers too: the trainer still stops cleanly and saves where it was."""
    import os
    import signal
    import subprocess
    import sys
    import time

    for split in ("train", "val"):
        pack_clip(_clip(12, size=256), tmp_path / "pack" / split / "walk", frame_step=1)
    command = [sys.executable, "-m", "codec.train", "fit", "--pack", str(tmp_path / "pack"), "--run",
               str(tmp_path / "run"), "--size", "tiny", "--batch", "1", "--workers", "2", "--steps", "100000",
               "--validate-every", "100000", "--sample-every", "100000", "--checkpoint-every", "100000"]  # fmt: skip
    environment = {**os.environ, "HOME": str(tmp_path)}  # the unpacked cache goes under this HOME
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True, env=environment)
    assert process.stderr is not None
    output = ""
    deadline = time.monotonic() + 120
    while "l1=" not in output:  # the progress bar shows a finished step's losses
        character = process.stderr.read(1)
        assert character and time.monotonic() < deadline, output
        output += character
    os.killpg(process.pid, signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 0, output + rest
    saved = [line for line in rest.splitlines() if line.startswith("saved ")]
    assert saved and saved[-1].startswith(f"saved {tmp_path / 'run' / 'checkpoint.pt'} at step ")
    step = int(saved[-1].rsplit(" ", 1)[1])
    assert step >= 1 and torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == step
