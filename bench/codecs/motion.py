"""This codec as a contender: keyframes + motion packets, rendered by any synthesis callable.

The sender runs exactly as in a call (tracker, keyframe policy, quantized motion packets),
on the benchmark's crops (its own crop is then the whole frame).  The bits counted are
every packet's bytes: keyframes, motion and control.  The receiver decodes the packets and
asks a :class:`Synthesizer` for each frame; the benchmark does not depend on a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from codec.packets import (
    KeyframePacket,
    MotionDecoder,
    MotionPacket,
    PacketFileWriter,
    StreamConfig,
    decode_packet,
    encode_packet,
)
from codec.packets.stream import DecodedMotion
from receiver.render import decode_keyframe_image

from ..inputs import ClipInput
from .base import Codec, CodecOutput

__all__ = ["MotionCodec", "Synthesizer", "hold_keyframe"]


class Synthesizer(Protocol):
    """Paints one frame.

    Args:
        keyframe: the keyframe packet the motion refers to.
        keyframe_image: (S, S, 3) uint8 RGB, the decoded keyframe image.
        motion: the decoded motion of the frame (``motion.keypoints()`` gives the driving
            keypoints; ``keyframe.canonical_keypoints`` with ``keyframe.head_pose`` the source's).

    Returns:
        (S, S, 3) uint8 RGB.
    """

    def __call__(self, keyframe: KeyframePacket, keyframe_image: np.ndarray, motion: DecodedMotion) -> np.ndarray: ...


def hold_keyframe(keyframe: KeyframePacket, keyframe_image: np.ndarray, motion: DecodedMotion) -> np.ndarray:
    """The trivial synthesizer: show the keyframe (until a receiver model exists)."""
    return keyframe_image


class MotionCodec(Codec):
    """Keyframes + motion packets.

    Args:
        synthesizer: paints the frames; :func:`hold_keyframe` by default.
        label: name in tables (default ``fvc-<synthesizer name>``).
        qualities: keyframe image qualities to measure (the settings).
        config: stream settings (fps and crop size are taken from each clip).
        record_dir: when set, each run's packets are also written to
            ``{record_dir}/{clip}-q{setting}.fvc`` (to check the accounting, or to replay).
    """

    def __init__(
        self,
        synthesizer: Synthesizer = hold_keyframe,
        label: str | None = None,
        qualities: tuple[int, ...] = (70, 90),
        config: StreamConfig | None = None,
        record_dir: Path | None = None,
    ) -> None:
        self.record_dir = record_dir
        self.synthesizer = synthesizer
        self.name = label or f"fvc-{getattr(synthesizer, '__name__', type(synthesizer).__name__)}"
        self.qualities = qualities
        self.config = config or StreamConfig()

    def settings(self, size: int) -> list[float]:
        return [float(q) for q in self.qualities]

    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        import dataclasses

        from codec.tracking import CropPolicy
        from codec.tracking.mediapipe import MediaPipeTracker
        from sender.pipeline import SenderPipeline

        config = dataclasses.replace(self.config, fps=clip.fps, crop_size=clip.size)
        tracker = MediaPipeTracker(crop_policy=CropPolicy(scale=1e6))  # the crop is the whole (already cropped) frame
        sender = SenderPipeline(config, tracker, image_quality=int(setting))
        decoder = MotionDecoder()
        keyframe: KeyframePacket | None = None
        keyframe_image: np.ndarray | None = None
        shown = clip.frames[0] * 0  # black until the first keyframe
        frames = np.empty_like(clip.frames)
        recorder = None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            recorder = PacketFileWriter(self.record_dir / f"{Path(clip.name).stem}-q{setting:g}.fvc")
        counts = {"keyframe": 0, "motion": 0, "control": 0}
        sizes = {"keyframe": 0, "motion": 0, "control": 0}
        for index, (image, time) in enumerate(zip(clip.frames, clip.times, strict=True)):
            for packet in sender.process(np.ascontiguousarray(image), float(time)).packets:
                data = recorder.write(packet) if recorder is not None else encode_packet(packet)
                received = decode_packet(data)
                kind = "keyframe" if isinstance(received, KeyframePacket) else (
                    "motion" if isinstance(received, MotionPacket) else "control")  # fmt: skip
                counts[kind] += 1
                sizes[kind] += len(data)
                if isinstance(received, KeyframePacket):
                    decoder.add_keyframe(received)
                    keyframe, keyframe_image = received, decode_keyframe_image(received)
                    shown = keyframe_image
                elif isinstance(received, MotionPacket):
                    decoded = decoder.decode(received)
                    if decoded is not None and keyframe is not None and keyframe_image is not None:
                        shown = self.synthesizer(decoded.keyframe, keyframe_image, decoded)
            frames[index] = shown
        if recorder is not None:
            recorder.close()
        bits = 8 * sum(sizes.values())
        info = {
            "keyframes": float(counts["keyframe"]),
            "keyframe_bytes": float(sizes["keyframe"]) / max(counts["keyframe"], 1),
            "motion_bytes_per_frame": float(sizes["motion"]) / max(counts["motion"], 1),
            "motion_kbps": 8 * sizes["motion"] / clip.duration / 1000,
        }
        return CodecOutput(frames, bits, setting, info)
