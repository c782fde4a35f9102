"""Rendering a recorded message stream (``python -m receiver render``), and writing frames to mp4."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codec.decoder import Decoder
from codec.packets import PacketError, PacketKind, packet_kind

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
            # undecodable: repeat the last picture one frame after the last decoded motion
            last = decoder.motion
            fps = decoder.keyframe.config.fps if decoder.keyframe is not None else 25.0
            timestamp_ms = last.timestamp_ms + round(1000 / fps) if last is not None else 0
            yield RenderedFrame(timestamp_ms, decoder.picture, True)


def write_video(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: float,
    crf: int = 18,
    audio: Sequence[Any] = (),
    audio_delay: float = 0.0,
) -> int:
    """Encode (H, W, 3) uint8 RGB frames as H.264 in an mp4, with ``audio`` (consecutive
    ``av.AudioFrame``s, as AAC) starting ``audio_delay`` seconds in; returns the frame count."""
    from fractions import Fraction

    import av

    pictures = iter(frames)
    first = next(pictures, None)
    with av.open(str(path), "w") as container:
        if first is None:
            return 0
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = first.shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf)}
        sound = container.add_stream("aac", rate=audio[0].sample_rate) if audio else None
        if sound is not None:
            sound.layout = audio[0].layout.name
        count = 0
        for image in itertools.chain([first], pictures):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = count
            container.mux(video.encode(frame))
            count += 1
        container.mux(video.encode())
        if sound is not None:
            samples = round(audio_delay * audio[0].sample_rate)
            for frame in audio:
                frame.pts, frame.time_base = samples, Fraction(1, frame.sample_rate)
                samples += frame.samples
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return count
