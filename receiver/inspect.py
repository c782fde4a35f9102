"""``python -m receiver inspect FILE.fvc``: decode a packet file and summarize it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.packets import (
    BodyPacket,
    ControlPacket,
    KeyframePacket,
    MotionDecoder,
    MotionPacket,
    PacketError,
    decode_packet,
    read_packet_records,
)
from codec.packets.messages import SEQ_MODULO

__all__ = ["InspectReport", "inspect_file"]


@dataclass
class InspectReport:
    """What a packet file holds."""

    path: Path
    keyframes: list[tuple[KeyframePacket, int]] = field(default_factory=list)  # packet, bytes
    motion_count: int = 0
    motion_bytes: int = 0
    body_count: int = 0
    body_bytes: int = 0
    absolute_count: int = 0
    controls: Counter[str] = field(default_factory=Counter)
    bad_packets: list[str] = field(default_factory=list)
    file_error: str | None = None
    seq_gaps: int = 0
    undecodable: int = 0
    poses: list[np.ndarray] = field(default_factory=list)
    first_ms: int | None = None
    last_ms: int | None = None

    @property
    def duration(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        fps = self.keyframes[0][0].config.fps if self.keyframes else 25.0
        return (self.last_ms - self.first_ms) / 1000 + 1 / fps

    def lines(self) -> list[str]:
        controls = sum(self.controls.values())
        total = len(self.keyframes) + self.motion_count + self.body_count + controls + len(self.bad_packets)
        out = [
            f"{self.path}: {total} packets ({len(self.keyframes)} keyframe, {self.motion_count} motion, "
            f"{self.body_count} body, {controls} control, {len(self.bad_packets)} bad), {self.duration:.2f} s"
        ]
        for keyframe, size in self.keyframes:
            yaw, pitch, roll = keyframe.head_pose[:3]
            out.append(
                f"  keyframe #{keyframe.keyframe_id} at {keyframe.timestamp_ms / 1000:.2f} s: {keyframe.image_codec} "
                f"{keyframe.width}x{keyframe.height}, {size / 1000:.1f} KB, K={len(keyframe.canonical_keypoints)}, "
                f"{keyframe.config.scheme}, yaw {yaw:+.1f} pitch {pitch:+.1f} roll {roll:+.1f} deg"
            )
        if self.motion_count:
            per_frame = self.motion_bytes / self.motion_count
            kbps = self.motion_bytes * 8 / max(self.duration, 1e-9) / 1000
            out.append(
                f"  motion: {per_frame:.1f} bytes/frame ({kbps:.1f} kbps), "
                f"{100 * self.absolute_count / self.motion_count:.1f}% absolute, "
                f"{self.undecodable} undecodable, {self.seq_gaps} sequence gaps"
            )
        if self.body_count:
            kbps = self.body_bytes * 8 / max(self.duration, 1e-9) / 1000
            out.append(f"  body: {self.body_bytes / self.body_count:.1f} bytes/message ({kbps:.2f} kbps)")
        if self.poses:
            poses = np.array(self.poses)
            names = ("yaw", "pitch", "roll")
            ranges = ", ".join(f"{n} [{poses[:, i].min():+.1f}, {poses[:, i].max():+.1f}]" for i, n in enumerate(names))
            out.append(f"  head pose: {ranges} deg, scale [{poses[:, 6].min():.3f}, {poses[:, 6].max():.3f}]")
        if self.controls:
            out.append("  control: " + ", ".join(f"{name} x {n}" for name, n in sorted(self.controls.items())))
        for message in self.bad_packets[:5]:
            out.append(f"  bad packet: {message}")
        if self.file_error:
            out.append(f"  file error: {self.file_error}")
        return out


def inspect_file(path: str | Path) -> InspectReport:
    """Decode every packet of an ``.fvc`` file.  Bad packets are counted and skipped; a
    damaged file (truncated record) ends the report with ``file_error`` set.

    Raises:
        FileNotFoundError: no such file.
    """
    report = InspectReport(Path(path))
    decoder = MotionDecoder()
    previous_seq: int | None = None
    try:
        for index, data in enumerate(read_packet_records(path)):
            try:
                packet = decode_packet(data)
                if isinstance(packet, KeyframePacket):
                    decoder.add_keyframe(packet)
                    report.keyframes.append((packet, len(data)))
                elif isinstance(packet, MotionPacket):
                    report.motion_count += 1
                    report.motion_bytes += len(data)
                    report.absolute_count += packet.absolute
                    if previous_seq is not None and packet.seq != (previous_seq + 1) % SEQ_MODULO:
                        report.seq_gaps += 1
                    previous_seq = packet.seq
                    decoded = decoder.decode(packet)
                    if decoded is None:
                        report.undecodable += 1
                    else:
                        report.poses.append(decoded.motion.head_pose.as_vector())
                        if report.first_ms is None:
                            report.first_ms = decoded.timestamp_ms
                        report.last_ms = decoded.timestamp_ms
                elif isinstance(packet, BodyPacket):
                    report.body_count += 1
                    report.body_bytes += len(data)
                elif isinstance(packet, ControlPacket):
                    report.controls[packet.type.value] += 1
            except PacketError as exc:
                report.bad_packets.append(f"#{index}: {exc}")
    except PacketError as exc:
        report.file_error = str(exc)
    return report
