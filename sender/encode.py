"""``python -m sender encode VIDEO -o FILE.fvc``: a clip's packets, written to a file."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.decoder import Decoder
from codec.edits import FaceEdits
from codec.encoded import keypoint_error_px
from codec.encoder import Encoder
from codec.images import DEFAULT_IMAGE_CODEC
from codec.packets import BodyPacket, ControlPacket, KeyframePacket, MotionPacket, PacketFileWriter, StreamConfig
from codec.quality import DEFAULT_QUALITY
from codec.video import VideoReader

__all__ = ["EncodeSummary", "encode_video"]


@dataclass
class EncodeSummary:
    """Sizes and counts of one encoded clip."""

    path: Path
    frames: int = 0
    frames_with_face: int = 0
    duration: float = 0.0
    motion_packets: int = 0
    motion_bytes: int = 0
    body_packets: int = 0
    body_bytes: int = 0
    keyframe_bytes: list[int] = field(default_factory=list)
    keyframe_reasons: list[str] = field(default_factory=list)
    control_packets: int = 0
    keypoint_errors_px: list[float] = field(default_factory=list)
    truncated: str | None = None

    @property
    def motion_bytes_per_frame(self) -> float:
        return self.motion_bytes / max(self.motion_packets, 1)

    @property
    def motion_kbps(self) -> float:
        return self.motion_bytes * 8 / max(self.duration, 1e-9) / 1000

    @property
    def body_kbps(self) -> float:
        return self.body_bytes * 8 / max(self.duration, 1e-9) / 1000

    @property
    def keypoint_error_px(self) -> float:
        """Mean 2D distance (pixels of the crop) between keypoints decoded from the packets
        and the keypoints before quantization."""
        return float(np.mean(self.keypoint_errors_px)) if self.keypoint_errors_px else float("nan")

    def line(self) -> str:
        keyframes = len(self.keyframe_bytes)
        mean_kb = np.mean(self.keyframe_bytes) / 1000 if keyframes else 0.0
        text = (
            f"frames {self.frames}, with face {self.frames_with_face}/{self.frames}, "
            f"motion {self.motion_bytes_per_frame:.1f} bytes/frame ({self.motion_kbps:.1f} kbps), "
            f"body {self.body_packets} messages ({self.body_kbps:.2f} kbps), keyframe {mean_kb:.1f} KB"
        )
        if keyframes > 1:
            text += f" x {keyframes}"
        text += f", keypoint error {self.keypoint_error_px:.2f} px"
        if self.truncated:
            text += f" [input truncated: {self.truncated}]"
        return text


def encode_video(
    video: str | Path,
    output: str | Path,
    config: StreamConfig | None = None,
    max_seconds: float | None = None,
    image_codec: str = DEFAULT_IMAGE_CODEC,
    image_quality: int | None = None,
    quality: int = DEFAULT_QUALITY,
    tracker_backend: str = "mediapipe",
    progress: bool = True,
    edits: FaceEdits | None = None,
) -> EncodeSummary:
    """Track a clip and write its packets to an ``.fvc`` file.

    Every message is also decoded again by a :class:`codec.Decoder` (motion only, nothing
    painted), as a receiver would, to measure the keypoint error that quantization causes.

    Raises:
        codec.video.VideoError: the input is missing or not a video.
    """
    from tqdm import tqdm

    from codec.tracking import create_tracker

    reader = VideoReader(video, max_seconds=max_seconds)
    base = config or StreamConfig(fps=reader.info.fps)
    encoder = Encoder(base, tracker=create_tracker(tracker_backend), image_codec=image_codec,
                      image_quality=image_quality, quality=quality, edits=edits)  # fmt: skip
    decoder = Decoder(model=None)
    summary = EncodeSummary(Path(output))
    total = reader.info.frame_count
    if max_seconds is not None and reader.info.fps:
        total = min(total or 10**9, int(max_seconds * reader.info.fps) + 1)
    last_time = 0.0
    with reader, PacketFileWriter(output) as writer:
        bar = tqdm(total=total, unit="frame", desc=Path(video).name, disable=not progress, file=sys.stderr)
        for frame in reader:
            out = encoder.encode_frame(frame.image, frame.time)
            summary.frames += 1
            summary.frames_with_face += out.track.has_face
            last_time = frame.time
            for packet, message in zip(out.packets, out.messages, strict=True):
                writer.write_message(message)
                decoded = decoder.receive(message)  # what the receiver will see
                if isinstance(packet, KeyframePacket):
                    summary.keyframe_bytes.append(len(message))
                    summary.keyframe_reasons.append(out.keyframe_reason or "")
                elif isinstance(packet, MotionPacket):
                    summary.motion_packets += 1
                    summary.motion_bytes += len(message)
                    if decoded is not None:
                        summary.keypoint_errors_px.append(keypoint_error_px(out, decoded))
                elif isinstance(packet, BodyPacket):
                    summary.body_packets += 1
                    summary.body_bytes += len(message)
                elif isinstance(packet, ControlPacket):
                    summary.control_packets += 1
            bar.update(1)
        bar.close()
    fps = reader.info.fps or 25.0
    summary.duration = last_time + 1 / fps if summary.frames else 0.0
    summary.truncated = reader.info.error if reader.info.truncated else None
    return summary
