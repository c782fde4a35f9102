"""``python -m codec.train.fit_motion_tables``: fit the static frequency tables of the motion
message (:mod:`codec.packets.motion_coding`) on the training clips, and report the motion
bytes per frame and the keypoint error on the validation clips.

The clips are tracked with :class:`codec.Encoder` (its tracker, keyframe policy and motion
extraction) once; the motion is cached under ``~/.cache/facevc/``.  The tables count, per
field, the differences that the stream's own :class:`codec.packets.MotionEncoder` produces,
for the shipped expression basis and for raw deltas.  Writing new tables changes the format:
only do it together with a new packet version.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

from ..motion.params import HeadPose, MotionParams, keypoints_from_motion
from ..packets.motion_coding import ESCAPE, LAYOUTS, MOTION_TABLES_FILE, TABLE_RANGE, tables_from_counts
from .data import clips_in_split

CACHE = Path("~/.cache/facevc").expanduser()
#: added to every count: a value never seen in training still codes (in about 15 bits)
PRIOR = 0.5
_SYMBOLS = ESCAPE + 1

Clip = dict[str, np.ndarray]


def collect(path: Path) -> Clip | None:
    """One clip's motion: times (N,), keyframe flags (N,), poses (N, 7), deltas (N, K, 3),
    gaze (N, 2, 2) (NaN without irises) and canonical keypoints (N, K, 3); frames with a face."""
    from ..encoder import Encoder
    from ..packets import StreamConfig
    from ..video import VideoError, VideoReader

    try:
        reader = VideoReader(path)
    except VideoError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return None
    encoder = Encoder(StreamConfig(fps=reader.info.fps))
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("time", "keyframe", "pose", "delta", "gaze", "canonical")}
    with reader:
        for frame in reader:
            out = encoder.encode_frame(frame.image, frame.time)
            if out.motion is None or out.canonical is None:
                continue
            rows["time"].append(np.array(frame.time))
            rows["keyframe"].append(np.array(out.keyframe_reason is not None))
            rows["pose"].append(out.motion.head_pose.as_vector())
            rows["delta"].append(out.motion.expression_delta)
            gaze = out.motion.gaze
            rows["gaze"].append(np.full((2, 2), np.nan, np.float32) if gaze is None else gaze)
            rows["canonical"].append(out.canonical.keypoints)
    if not rows["time"]:
        return None
    clip = {k: np.stack(v) for k, v in rows.items()}
    clip["fps"] = np.array(reader.info.fps or 25.0)
    return clip


def cached_clips(paths: list[Path], tag: str) -> list[Clip]:
    from tqdm import tqdm

    key = hashlib.sha256("|".join(p.name for p in paths).encode()).hexdigest()[:10]
    path = CACHE / f"motion-gaze-{tag}-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            n = int(data["n"])
            return [{k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/")} for i in range(n)]
    clips = [c for c in (collect(p) for p in tqdm(paths, unit="clip", desc=tag, file=sys.stderr)) if c is not None]
    CACHE.mkdir(parents=True, exist_ok=True)
    arrays = {f"{i}/{k}": v for i, clip in enumerate(clips) for k, v in clip.items()}
    np.savez_compressed(path, n=np.array(len(clips)), **arrays)  # type: ignore[arg-type]
    return clips


def stream_packets(clip: Clip, basis: str | None, tables: object = None) -> tuple[list, list[float]]:
    """Code a clip as one stream: its motion packets, and each decoded frame's keypoint error in
    pixels of a 256 crop (decoding through the wire bytes when ``tables`` are given)."""
    from ..packets import KeyframePacket, MotionDecoder, MotionEncoder, StreamConfig
    from ..packets.motion_coding import decode_motion, encode_motion

    config = StreamConfig(fps=float(clip["fps"]), basis=basis)
    encoder, decoder = MotionEncoder(config), MotionDecoder()
    packets, errors = [], []
    keyframe_id = -1
    for i in range(len(clip["time"])):
        canonical = clip["canonical"][i]
        if keyframe_id < 0 or clip["keyframe"][i]:
            keyframe_id = (keyframe_id + 1) % 256
            encoder.start_keyframe(keyframe_id, canonical)
            decoder.add_keyframe(
                KeyframePacket(keyframe_id, 0, "png", b"", 256, 256, canonical, clip["pose"][i], config)
            )
        gaze = None if np.isnan(clip["gaze"][i]).any() else clip["gaze"][i]
        motion = MotionParams(HeadPose.from_vector(clip["pose"][i]), clip["delta"][i], gaze)
        packet = encoder.encode(motion, round(float(clip["time"][i]) * 1000))
        packets.append(packet)
        if tables is not None:
            packet = decode_motion(encode_motion(packet, tables), tables)  # type: ignore[arg-type]
        decoded = decoder.decode(packet)
        assert decoded is not None
        exact = keypoints_from_motion(canonical, motion)
        errors.append(float(np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean()) * 128)
    return packets, errors


def _add(counts: np.ndarray, value: int) -> None:
    counts[value + TABLE_RANGE if -TABLE_RANGE <= value <= TABLE_RANGE else ESCAPE] += 1


def count_symbols(clips: list[Clip]) -> dict[str, np.ndarray]:
    """Symbol counts of the training streams (plus :data:`PRIOR`)."""
    counts = {
        "flags": np.full(4, PRIOR),
        "layout": np.full(len(LAYOUTS) + 1, PRIOR),
        "tick": np.full(_SYMBOLS, PRIOR),
        "pose": np.full((7, _SYMBOLS), PRIOR),
        "generic": np.full(_SYMBOLS, PRIOR),
        "gaze": np.full((2, _SYMBOLS), PRIOR),
    }
    for count in LAYOUTS:
        counts[f"expression{count}"] = np.full((count, _SYMBOLS), PRIOR)
    from ..motion.basis import available_bases

    bases = {None: 60, sorted(available_bases())[0]: 24}
    for basis, size in bases.items():
        for clip in clips:
            for packet in stream_packets(clip, basis)[0]:
                counts["flags"][int(packet.absolute) | 2 * bool(packet.gaze)] += 1
                counts["layout"][LAYOUTS.index(size)] += 1
                if packet.absolute:
                    continue
                _add(counts["tick"], packet.ticks - 1)
                for field, value in enumerate(packet.pose):
                    _add(counts["pose"][field], value)
                for index, value in enumerate(packet.expression):
                    _add(counts[f"expression{size}"][index], value)
                    _add(counts["generic"], value)
                for index, value in enumerate(packet.gaze):
                    _add(counts["gaze"][index % 2], value)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.fit_motion_tables", description=__doc__)
    parser.add_argument("--clips", default="../shared/data/clips", help="folder of clips with ../manifest.csv")
    parser.add_argument("--save", action="store_true", help=f"write codec/packets/data/{MOTION_TABLES_FILE}")
    args = parser.parse_args(argv)
    folder = Path(args.clips)
    train = cached_clips(clips_in_split(folder, "train"), "train")
    val = cached_clips(clips_in_split(folder, "val"), "val")
    counts = count_symbols(train)
    tables = tables_from_counts(counts)
    from ..packets.motion_coding import encode_motion

    for basis in (None, "pca-k20m24-3384d501"):
        sizes, errors = [], []
        for clip in val:
            packets, clip_errors = stream_packets(clip, basis, tables)
            sizes += [len(encode_motion(p, tables)) for p in packets]
            errors += clip_errors
        name = basis or "raw deltas"
        print(f"val, {name}: {np.mean(sizes):.2f} bytes/frame, keypoint error {np.mean(errors):.3f} px")
    if args.save:
        path = Path(__file__).parents[1] / "packets" / "data" / MOTION_TABLES_FILE
        path.parent.mkdir(exist_ok=True)
        np.savez_compressed(path, **{k: v.astype(np.float32) for k, v in counts.items()})  # type: ignore[arg-type]
        print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
