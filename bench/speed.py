"""``python -m bench speed``: milliseconds per stage of a call, and frames per second.

Sender: decode (the video file), track, extract (pose and deltas), pack (quantize + msgpack),
pinned to one core.  Receiver: unpack (msgpack + prediction), warp (motion field + 3D warp of
the cached volume), generate, on all cores (or the GPU).  Every stage runs over the same
frames several times after a warm-up; the median per frame is reported.  The receiver's
warp and generate stages are measured when a receiver model is given (``Receiver`` below);
until one exists they are reported as not available.  Stages on a CUDA device are timed
with CUDA events; CPU stages with ``time.perf_counter``.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from codec.images import decode_image, encode_image
from codec.models.talking_head import TalkingHeadModel
from codec.ops.warp import warp_volume
from codec.packets import DecodedMotion
from receiver.render import model_inputs

__all__ = ["STAGES", "ModelReceiver", "Receiver", "SpeedReport", "StageTimer", "run_speed"]

STAGES = ("decode", "track", "extract", "pack", "unpack", "warp", "generate")


class Receiver(Protocol):
    """A receiver model split into its two timed stages; ``warp`` gets a
    :class:`codec.packets.DecodedMotion` and returns whatever ``generate`` needs."""

    device: str

    def warp(self, motion: DecodedMotion) -> Any: ...

    def generate(self, warped: Any) -> Any: ...


class StageTimer:
    """Times stages on the CPU, or on a CUDA device with CUDA events::

    with timer("track"):
        result = tracker.process(frame, t)
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.samples: dict[str, list[float]] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Record the duration of the ``with`` block in milliseconds under ``stage``."""
        if self.device.startswith("cuda"):
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            torch.cuda.synchronize()
            elapsed = float(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            yield
            elapsed = (time.perf_counter() - begin) * 1000
        self.samples.setdefault(stage, []).append(elapsed)

    def drop_last(self, *stages: str) -> None:
        """Forget the latest sample of these stages (warm-up frames)."""
        for stage in stages:
            if self.samples.get(stage):
                self.samples[stage].pop()


class ModelReceiver:
    """The talking-head model split into the timed stages: ``warp`` = motion field (M) + 3D warp
    of the cached volume, ``generate`` = G.  The keyframe is encoded once, outside the timers."""

    def __init__(self, model: TalkingHeadModel, device: str = "cpu") -> None:
        self.model = model
        self.device = device
        self._keyframe_id: int | None = None
        self._cache: dict[str, torch.Tensor] = {}

    def _inputs(self, motion: DecodedMotion) -> dict[str, torch.Tensor]:
        keyframe = motion.keyframe
        if keyframe.keyframe_id != self._keyframe_id:
            image = torch.from_numpy(decode_image(keyframe.image)).permute(2, 0, 1)[None].float().div(255)
            with torch.no_grad():
                self._cache = self.model.encode_keyframe(image.to(self.device))
            self._keyframe_id = keyframe.keyframe_id
        return {k: v.to(self.device) for k, v in model_inputs(keyframe, motion.motion).items()}

    def warp(self, motion: DecodedMotion) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = self._inputs(motion)
        with torch.no_grad():
            field = self.model.motion(
                self._cache["source_small"], inputs["kp_source"], inputs["kp_driving"], inputs["jacobian"]
            )
            warped = warp_volume(
                self._cache["volume"], field["flow"], self.model.warp_backend, self._cache.get("volume_rows")
            )
        return warped, field

    def generate(self, warped: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> torch.Tensor:
        volume, field = warped
        with torch.no_grad():
            out = self.model.generator(volume, field["occlusion"], field["flow"], self._cache["source_image"])
        return out["image"]


@dataclass
class SpeedReport:
    clip: str
    device: str
    frames: int
    repeats: int
    stage_ms: dict[str, float | None] = field(default_factory=dict)  # median per frame; None = not available
    sender_fps: float = 0.0  # track + extract + pack
    receiver_fps: float | None = None  # unpack + warp + generate
    meta: dict[str, str] = field(default_factory=dict)


def run_speed(
    clip: Path, max_frames: int = 100, repeats: int = 3, warmup: int = 10, receiver: Receiver | None = None
) -> SpeedReport:
    """Time every stage on the first ``max_frames`` frames of ``clip``.

    Raises:
        codec.video.VideoError: the clip cannot be read.
    """
    import os

    from codec.motion.extract import MotionExtractor
    from codec.packets import (
        KeyframePacket,
        MotionDecoder,
        MotionEncoder,
        MotionPacket,
        StreamConfig,
        decode_packet,
        encode_packet,
    )
    from codec.tracking.mediapipe import MediaPipeTracker
    from codec.video import VideoReader

    from .tracking import pin_to_one_core

    all_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = pin_to_one_core()  # the sender's stages: one core, as in a call
    timer = StageTimer()
    frames: list[np.ndarray] = []
    with VideoReader(clip, threads=1) as reader:
        iterator = iter(reader)
        while len(frames) < max_frames:
            with timer("decode"):
                frame = next(iterator, None)
            if frame is None:
                timer.drop_last("decode")
                break
            frames.append(frame.image)
        fps = reader.info.fps
    if not frames:
        raise ValueError(f"{clip}: no frame decoded")
    device = receiver.device if receiver is not None else "cpu"
    decoded_frames: list[DecodedMotion] = []
    for repeat in range(repeats):
        tracker, extractor = MediaPipeTracker(num_threads=1), MotionExtractor()
        config = StreamConfig(fps=fps)
        encoder, decoder = MotionEncoder(config), MotionDecoder()
        canonical = None
        for index, image in enumerate(frames):
            with timer("track"):
                result = tracker.process(image, index / fps)
            if not result.has_face:
                continue
            landmarks = result.crop_landmarks()
            if canonical is None:
                canonical = extractor.canonicalize(landmarks)
                encoder.start_keyframe(0)
                pose = canonical.head_pose.as_vector()
                crop = result.crop.extract(image, 256) if result.crop is not None else image
                picture = encode_image(crop, "webp", 90)
                decoder.add_keyframe(KeyframePacket(0, 0, "webp", picture, 256, 256, canonical.keypoints, pose, config))
            with timer("extract"):
                motion = extractor.extract(landmarks, canonical)
            with timer("pack"):
                data = encode_packet(encoder.encode(motion, index))
            with timer("unpack"):
                packet = decode_packet(data)
                decoded = decoder.decode(packet) if isinstance(packet, MotionPacket) else None
            if repeat == 0 and decoded is not None:
                decoded_frames.append(decoded)
            if repeat == 0 and index < warmup:
                timer.drop_last("track", "extract", "pack", "unpack")
    # the receiver's stages run on a machine of their own: all cores (or the GPU)
    if all_cores is not None:
        os.sched_setaffinity(0, all_cores)
    gpu_timer = StageTimer(device)
    if receiver is not None:
        for repeat in range(repeats):
            for index, decoded in enumerate(decoded_frames):
                with gpu_timer("warp"):
                    warped = receiver.warp(decoded)
                with gpu_timer("generate"):
                    receiver.generate(warped)
                if repeat == 0 and index < warmup:
                    gpu_timer.drop_last("warp", "generate")
    samples = {**timer.samples, **gpu_timer.samples}
    stage_ms: dict[str, float | None] = {
        stage: round(statistics.median(samples[stage]), 3) if samples.get(stage) else None for stage in STAGES
    }
    sender = sum(stage_ms[s] or 0.0 for s in ("track", "extract", "pack"))
    receiver_ms = [stage_ms[s] for s in ("unpack", "warp", "generate")]
    return SpeedReport(
        clip=clip.name,
        device=device,
        frames=len(frames),
        repeats=repeats,
        stage_ms=stage_ms,
        sender_fps=round(1000 / sender, 1) if sender else 0.0,
        receiver_fps=None if None in receiver_ms else round(1000 / sum(v or 0.0 for v in receiver_ms), 1),
        meta={
            "when": time.strftime("%Y-%m-%d"),
            "cpu": platform.machine(),
            "pinned": f"sender pinned to {pinned}, receiver on {len(all_cores or [0])} cores",
        },
    )


def write_speed(report: SpeedReport, out: Path) -> str:
    """``speed.json`` and ``speed.md`` into ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(asdict(report), indent=1))
    rows = [f"| {stage} | {'n/a (no receiver model yet)' if ms is None else f'{ms:.3f}'} |"
            for stage, ms in report.stage_ms.items()]  # fmt: skip
    receiver = "n/a (no receiver model yet)" if report.receiver_fps is None else f"{report.receiver_fps:.0f}"
    text = "\n".join([
        "# Speed per stage",
        "",
        f"{report.meta['when']}, {report.meta['cpu']}, {report.meta['pinned']}, device {report.device}; clip "
        f"{report.clip}, {report.frames} frames x {report.repeats} runs, median ms per frame.",
        "",
        "| stage | ms |",
        "|---|---:|",
        *rows,
        "",
        f"Sender (track + extract + pack): {report.sender_fps:.0f} fps. "
        f"Receiver (unpack + warp + generate): {receiver} fps.",
        "",
    ])  # fmt: skip
    (out / "speed.md").write_text(text)
    print(text, file=sys.stdout)
    return text
