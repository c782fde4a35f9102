"""Rendering a recorded packet stream: ``python -m receiver render`` and the sample sheet."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.packets import ControlPacket, KeyframePacket, MotionDecoder, MotionPacket, Packet, PacketError

from .render import Renderer

__all__ = ["RenderedFrame", "render_stream", "write_video"]


@dataclass(frozen=True)
class RenderedFrame:
    timestamp_ms: int
    image: np.ndarray
    held: bool  #: the packet could not be decoded (lost reference, no keyframe): the last frame is shown again


def render_stream(
    packets: Iterable[Packet],
    renderer: Renderer,
    user_rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),
    user_translation: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Iterator[RenderedFrame]:
    """One frame per motion packet, in order; undecodable packets repeat the last frame."""
    decoder = MotionDecoder()
    last: np.ndarray | None = None
    for packet in packets:
        if isinstance(packet, KeyframePacket):
            decoder.add_keyframe(packet)
            renderer.set_keyframe(packet)
            last = renderer.keyframe_image
        elif isinstance(packet, MotionPacket):
            try:
                decoded = decoder.decode(packet)
            except PacketError as exc:
                print(f"warning: motion packet {packet.seq} dropped: {exc}", file=sys.stderr)
                decoded = None
            if decoded is not None:
                last = renderer.render(decoded, user_rotation, user_translation)
                yield RenderedFrame(packet.timestamp_ms, last, False)
            elif last is not None:
                yield RenderedFrame(packet.timestamp_ms, last, True)
        elif isinstance(packet, ControlPacket):
            continue


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float, crf: int = 18) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 in an mp4; returns the frame count."""
    from fractions import Fraction

    import av

    count = 0
    with av.open(str(path), "w") as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf)}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return count
