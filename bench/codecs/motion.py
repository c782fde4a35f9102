"""This codec as a contender: keyframes + motion messages, from :class:`codec.Encoder` to
:class:`codec.Decoder` with any renderer.

The encoder runs exactly as in a call (tracker, keyframe policy, quantized motion), on the
benchmark's crops (its own crop is then the whole frame).  The bits counted are every
message's bytes: keyframes, motion and control.  Each frame shows the decoder's picture
after that frame's messages (black until the first keyframe).  On the wire (:mod:`bench.wire_rate`),
motion messages ride on the call's audio packets and the others on the data channel, as in a call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from codec.closed_loop import ClosedLoop
from codec.decoder import Decoder
from codec.encoder import Encoder
from codec.motion.params import MotionParams
from codec.packets import PacketFileWriter, PacketKind, StreamConfig, packet_kind
from codec.quality import QUALITY_LEVELS, quality_level
from codec.render import Renderer

from ..inputs import ClipInput
from ..wire_rate import Route, SentUnit
from .base import Codec, CodecOutput

__all__ = ["HoldKeyframe", "MotionCodec"]


class HoldKeyframe(Renderer):
    """The trivial renderer: show the keyframe (the floor that motion must beat)."""

    name = "hold"

    def _prepare(self) -> None:
        pass

    def _render(self, motion: MotionParams) -> np.ndarray:
        assert self.keyframe_image is not None
        return self.keyframe_image


class MotionCodec(Codec):
    """Keyframes + motion messages.

    Args:
        renderer: paints the frames (one instance, reused for every run); :class:`HoldKeyframe`
            by default.
        label: name in tables (default ``fvc-<renderer name>``).
        levels: quality knob levels to measure (the settings; :mod:`codec.quality`).
        config: stream settings (fps and crop size are taken from each clip).
        record_dir: when set, each run's packets are also written to
            ``{record_dir}/{clip}-q{setting}.fvc`` (to check the accounting, or to replay).
        closed_loop: makes the encoder's closed loop for a run (None: no closed loop).
    """

    def __init__(
        self,
        renderer: Renderer | None = None,
        label: str | None = None,
        levels: tuple[int, ...] = tuple(QUALITY_LEVELS),
        config: StreamConfig | None = None,
        record_dir: Path | None = None,
        closed_loop: Callable[[], ClosedLoop] | None = None,
    ) -> None:
        self.record_dir = record_dir
        self.closed_loop = closed_loop
        self.renderer = renderer or HoldKeyframe()
        self.name = label or f"fvc-{self.renderer.name}"
        for level in levels:
            quality_level(level)  # a bad level fails before any clip
        self.levels = levels
        self.config = config or StreamConfig()

    def settings(self, size: int) -> list[float]:
        return [float(level) for level in self.levels]

    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        import dataclasses

        from codec.tracking import CropPolicy
        from codec.tracking.mediapipe import MediaPipeTracker

        config = dataclasses.replace(self.config, fps=clip.fps, crop_size=clip.size)
        tracker = MediaPipeTracker(crop_policy=CropPolicy(scale=1e6))  # the crop is the whole (already cropped) frame
        loop = self.closed_loop() if self.closed_loop is not None else None
        encoder = Encoder(config, tracker=tracker, quality=int(setting), closed_loop=loop)
        decoder = Decoder(self.renderer)
        frames = np.zeros_like(clip.frames)  # black until the first keyframe
        recorder = None
        if self.record_dir is not None:
            self.record_dir.mkdir(parents=True, exist_ok=True)
            recorder = PacketFileWriter(self.record_dir / f"{Path(clip.name).stem}-q{setting:g}.fvc")
        counts = dict.fromkeys(PacketKind, 0)
        sizes = dict.fromkeys(PacketKind, 0)
        sent: list[SentUnit] = []
        for index, (image, time) in enumerate(zip(clip.frames, clip.times, strict=True)):
            for message in encoder.encode(np.ascontiguousarray(image), float(time)):
                if recorder is not None:
                    recorder.write_message(message)
                kind = packet_kind(message)
                counts[kind] += 1
                sizes[kind] += len(message)
                route = Route.AUDIO_EXTENSION if kind in (PacketKind.MOTION, PacketKind.BODY) else Route.DATA_CHANNEL
                sent.append(SentUnit(float(time), route, (len(message),)))
                decoder.decode(message)
            if decoder.picture is not None:
                frames[index] = decoder.picture
        if recorder is not None:
            recorder.close()
        if decoder.stats.bad_packets:
            raise RuntimeError(f"{decoder.stats.bad_packets} message(s) did not decode: {decoder.stats.last_error}")
        bits = 8 * sum(sizes.values())
        keyframes, motion = PacketKind.KEYFRAME, PacketKind.MOTION
        info = {
            "keyframes": float(counts[keyframes]),
            "keyframe_bytes": float(sizes[keyframes]) / max(counts[keyframes], 1),
            "motion_bytes_per_frame": float(sizes[motion]) / max(counts[motion], 1),
            "motion_kbps": 8 * sizes[motion] / clip.duration / 1000,
            "body_kbps": 8 * sizes[PacketKind.BODY] / clip.duration / 1000,
            "mouths": float(counts[PacketKind.MOUTH]),
            "mouth_kbps": 8 * sizes[PacketKind.MOUTH] / clip.duration / 1000,
        }
        if loop is not None:
            info["checks"] = float(loop.checks)
        return CodecOutput(frames, bits, setting, info, tuple(sent))
