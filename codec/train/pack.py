"""A prepared training set, packed small enough to carry to another machine (a GPU box).

The training cache (:mod:`codec.train.data`) holds raw crops: about 5 GB for the train split.
A pack keeps, per clip, every ``frame_step``-th crop as near-transparent H.264 (4:4:4, CRF
:data:`PACK_CRF`: about 41-42 dB against the crop) and the motion arrays, the mesh delta-coded
at :data:`MESH_STEPS_PER_UNIT` steps per crop unit (0.03 px at 256) and LZMA-compressed: about
2.3 KB a frame instead of 200 KB.  Unpacking writes the cache layout again, so training reads
the same arrays either way.

    python -m codec.train pack --out /tmp/pack           # train + val splits, from the cache
    python -m codec.train fit --pack /tmp/pack ...       # unpacks once, then trains from it

Layout: ``PACK/{split}/{clip}.mp4`` and ``PACK/{split}/{clip}.npz``.
"""

from __future__ import annotations

import io
import lzma
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .data import ClipData, load_clip_data

__all__ = ["MESH_STEPS_PER_UNIT", "PACK_CRF", "pack_clip", "pack_note", "unpack", "unpack_clip"]

#: x264 constant rate factor of the packed crops (4:4:4): 41-42 dB PSNR against the crops
PACK_CRF = 16
#: quantization of the packed mesh: steps per crop unit (1/8192 of the crop's half-width)
MESH_STEPS_PER_UNIT = 4096.0
_SPLITS = ("train", "val")


def _encode_frames(frames: np.ndarray, fps: float) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=max(1, round(fps)))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(PACK_CRF), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _decode_frames(path: Path) -> np.ndarray:
    """(N, S, S, 3) uint8 RGB, with PyAV where installed, else OpenCV (a bare GPU image has it)."""
    try:
        import av
    except ImportError:
        return _decode_with_opencv(path)
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _decode_with_opencv(path: Path) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise ValueError(f"{path}: OpenCV decoded no frame (is its FFmpeg backend missing?)")
    return np.stack(frames)


def pack_clip(clip: ClipData, out: Path, frame_step: int = 2) -> int:
    """Write ``out.mp4`` and ``out.npz`` for every ``frame_step``-th frame of ``clip``; returns bytes written."""
    keep = np.arange(0, len(clip.frames), frame_step)
    fps = clip.fps / frame_step
    video = _encode_frames(np.asarray(clip.frames[keep]), fps)
    mesh = np.round(clip.landmarks[keep].astype(np.float64) * MESH_STEPS_PER_UNIT).astype(np.int32)
    deltas = np.diff(mesh, axis=0, prepend=0)
    if np.abs(deltas).max(initial=0) > np.iinfo(np.int16).max:
        raise ValueError(f"{clip.name}: a mesh step does not fit 16 bits")
    mesh_bytes = lzma.compress(deltas.astype("<i2").tobytes(), preset=9)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".mp4").write_bytes(video)
    np.savez_compressed(out.with_suffix(".npz"), keypoints=clip.keypoints[keep], rotation=clip.rotation[keep],
                        scale=clip.scale[keep], valid=clip.valid[keep], fps=fps, frame_step=frame_step,
                        mesh=np.frombuffer(mesh_bytes, np.uint8), mesh_shape=np.array(mesh.shape))  # fmt: skip
    return len(video) + out.with_suffix(".npz").stat().st_size


def unpack_clip(packed: Path, folder: Path) -> Path:
    """Rebuild a cache folder (``frames.npy``, ``motion.npz``) from ``packed`` (.mp4 + .npz)."""
    if (folder / "motion.npz").is_file():
        return folder
    frames = _decode_frames(packed.with_suffix(".mp4"))
    with np.load(packed.with_suffix(".npz")) as motion:
        arrays = {k: motion[k] for k in ("keypoints", "rotation", "scale", "valid", "fps")}
        shape = tuple(int(n) for n in motion["mesh_shape"])
        deltas = np.frombuffer(lzma.decompress(motion["mesh"].tobytes()), "<i2").reshape(shape)
    if len(frames) != shape[0]:
        raise ValueError(f"{packed.with_suffix('')}: {len(frames)} frames in its .mp4, {shape[0]} in its .npz")
    landmarks = (np.cumsum(deltas.astype(np.int32), axis=0) / MESH_STEPS_PER_UNIT).astype(np.float16)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "frames.npy", frames)
    np.savez(folder / "motion.partial.npz", landmarks=landmarks, **arrays)
    (folder / "motion.partial.npz").replace(folder / "motion.npz")  # written last: marks the folder complete
    return folder


def pack_splits(folders: dict[str, list[Path]], out: Path, frame_step: int = 2) -> int:
    """Pack prepared cache folders by split; returns the pack's size in bytes."""
    from tqdm import tqdm

    total = 0
    for split, split_folders in folders.items():
        for folder in tqdm(split_folders, unit="clip", file=sys.stderr, desc=f"packing {split}"):
            total += pack_clip(load_clip_data(folder), out / split / folder.name, frame_step)
    return total


def pack_note(pack: Path) -> str:
    """What a run trained from ``pack`` saw, for its model card (the frames kept per split)."""
    kept = []
    for split in _SPLITS:
        clips = sorted((pack / split).glob("*.npz"))
        if clips:
            with np.load(clips[0]) as motion:
                step = int(motion["frame_step"]) if "frame_step" in motion else 0
            kept.append(f"{split}: every {_ordinal(step)}frame" if step else f"{split}: frames kept unknown")
    return f"packed (python -m codec.train pack; 4:4:4 H.264 crops at CRF {PACK_CRF}; {', '.join(kept)})"


def _ordinal(number: int) -> str:
    """ "" for 1 ("every frame"), else "2nd ", "3rd ", "4th "..."""
    return {1: "", 2: "2nd ", 3: "3rd "}.get(number, f"{number}th ")


def unpack(pack: Path, cache: Path, workers: int = 8) -> dict[str, list[Path]]:
    """Unpack every clip of ``pack`` into ``cache/{split}/{clip}`` (in parallel); folders by split.

    Raises:
        FileNotFoundError: ``pack`` has no ``train`` clip.
    """
    jobs = {split: sorted((pack / split).glob("*.mp4")) for split in _SPLITS}
    if not jobs["train"]:
        raise FileNotFoundError(f"{pack}: no packed train clip (expected {pack}/train/*.mp4)")
    result: dict[str, list[Path]] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for split, paths in jobs.items():
            folders = [cache / split / p.stem for p in paths]
            result[split] = list(pool.map(unpack_clip, paths, folders))
    return result
