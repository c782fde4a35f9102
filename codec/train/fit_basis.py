"""``python -m codec.train.fit_basis``: learn a PCA expression basis on training clips and
compare it with raw deltas on validation clips (bytes per frame, keypoint error).

Deltas are collected with :class:`codec.Encoder` (its tracker and keyframe policy) and cached under
``~/.cache/facevc/`` so that trying other sizes is quick.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from ..motion.basis import ExpressionBasis, fit_basis, save_basis
from .data import clips_in_split

CACHE = Path("~/.cache/facevc").expanduser()


def collect_motion(clips: list[Path], max_seconds: float | None) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """Per clip: (N, 7) pose vectors, (N, K, 3) deltas and the canonical keypoints of each frame."""
    from tqdm import tqdm

    from ..encoder import Encoder
    from ..packets import StreamConfig
    from ..video import VideoError, VideoReader

    out = []
    for path in tqdm(clips, unit="clip", file=sys.stderr):
        try:
            reader = VideoReader(path, max_seconds=max_seconds)
        except VideoError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        encoder = Encoder(StreamConfig(fps=reader.info.fps))
        poses, deltas, canonicals = [], [], []
        with reader:
            for frame in reader:
                result = encoder.encode_frame(frame.image, frame.time)
                if result.motion is not None and result.canonical is not None:
                    poses.append(result.motion.head_pose.as_vector())
                    deltas.append(result.motion.expression_delta)
                    canonicals.append(result.canonical.keypoints)
        if poses:
            out.append((np.array(poses), np.array(deltas), canonicals))
    return out


def cached_motion(clips: list[Path], max_seconds: float | None, tag: str) -> list:
    key = hashlib.sha256("|".join(p.name for p in clips).encode() + str(max_seconds).encode()).hexdigest()[:10]
    path = CACHE / f"motion-{tag}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            n = int(data["n"])
            return [(data[f"p{i}"], data[f"d{i}"], list(data[f"c{i}"])) for i in range(n)]
    motion = collect_motion(clips, max_seconds)
    CACHE.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"n": np.array(len(motion))}
    for i, (p, d, c) in enumerate(motion):
        arrays[f"p{i}"], arrays[f"d{i}"], arrays[f"c{i}"] = p, d, np.array(c)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    return motion


def evaluate(motion: list, basis: ExpressionBasis | None, crop_size: int = 256) -> tuple[float, float]:
    """Mean motion bytes per frame and mean 2D keypoint error (pixels) against the exact
    keypoints, coding each clip as one stream."""
    from codec.motion.params import HeadPose, MotionParams, keypoints_from_motion
    from codec.packets import KeyframePacket, MotionDecoder, MotionEncoder, StreamConfig, encode_packet

    config = StreamConfig(basis=None if basis is None else basis.basis_id)
    extra = {} if basis is None else {basis.basis_id: basis}
    sizes: list[int] = []
    errors: list[float] = []
    for poses, deltas, canonicals in motion:
        encoder = MotionEncoder(config, basis=basis)
        decoder = MotionDecoder(extra_bases=extra)
        current: np.ndarray | None = None
        keyframe_id = 0
        for pose, delta, canonical in zip(poses, deltas, canonicals, strict=True):
            if current is None or not np.array_equal(canonical, current):
                current, keyframe_id = canonical, (keyframe_id + 1) % 256
                encoder.start_keyframe(keyframe_id, canonical)
                decoder.add_keyframe(
                    KeyframePacket(keyframe_id, 0, "png", b"\x89PNG\r\n\x1a\n", 256, 256, canonical, pose, config)
                )
            motion_params = MotionParams(HeadPose.from_vector(pose), delta)
            packet = encoder.encode(motion_params, 0)
            sizes.append(len(encode_packet(packet)))
            decoded = decoder.decode(packet)
            assert decoded is not None
            exact = keypoints_from_motion(canonical, motion_params)
            errors.append(float(np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean()))
    return float(np.mean(sizes)), float(np.mean(errors)) * crop_size / 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.fit_basis", description=__doc__)
    parser.add_argument("--clips", default="../shared/data/clips", help="folder of clips with ../manifest.csv")
    parser.add_argument("--seconds", type=float, default=20.0, help="first N seconds of each clip")
    parser.add_argument("--components", type=int, nargs="+", default=[8, 12, 16, 24])
    parser.add_argument("--steps", type=float, nargs="+", default=[1 / 128, 1.5 / 128])
    parser.add_argument(
        "--save", nargs=2, metavar=("COMPONENTS", "STEP"), help="save this basis into codec/motion/data"
    )
    args = parser.parse_args(argv)
    folder = Path(args.clips)
    train = cached_motion(clips_in_split(folder, "train"), args.seconds, "train")
    val = cached_motion(clips_in_split(folder, "val"), args.seconds, "val")
    deltas = np.concatenate([d for _, d, _ in train])
    print(f"train: {len(deltas)} frames from {len(train)} clips; val: {sum(len(p) for p, _, _ in val)} frames")
    size, error = evaluate(val, None)
    print(f"raw deltas        : {size:5.1f} bytes/frame, keypoint error {error:.3f} px")
    for components in args.components:
        for step in args.steps:
            basis = fit_basis(deltas, components, step)
            size, error = evaluate(val, basis)
            print(
                f"pca m={components:2d} step={step * 128:.2f}px: {size:5.1f} bytes/frame, keypoint error {error:.3f} px"
            )
    if args.save:
        basis = fit_basis(deltas, int(args.save[0]), float(args.save[1]))
        path = save_basis(basis, Path(__file__).parent / "data")
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
