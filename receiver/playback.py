"""Rendering a recorded message stream (``python -m receiver render``), and writing frames to mp4."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.decoder import Decoder
from codec.packets import PacketError, PacketKind, decode_packet, packet_kind

__all__ = ["RenderedFrame", "render_stream", "write_video"]


@dataclass(frozen=True)
class RenderedFrame:
    timestamp_ms: int
    image: np.ndarray
    held: bool  #: the motion could not be decoded (lost reference, no keyframe): the last picture is shown again


def render_stream(messages: Iterable[bytes], decoder: Decoder) -> Iterator[RenderedFrame]:
    """One frame per motion message, in order, painted by ``decoder`` from its current view;
    a motion message that cannot be decoded repeats the last picture.  Bad messages are
    counted in ``decoder.stats``."""
    for message in messages:
        picture = decoder.decode(message)
        try:
            if packet_kind(message) is not PacketKind.MOTION:
                continue
        except PacketError:
            continue
        if picture is not None and decoder.motion is not None:
            yield RenderedFrame(decoder.motion.timestamp_ms, picture, False)
        elif decoder.picture is not None:
            try:
                timestamp_ms = decode_packet(message).timestamp_ms
            except PacketError:
                continue
            yield RenderedFrame(timestamp_ms, decoder.picture, True)


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
