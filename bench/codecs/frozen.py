"""The floor: the receiver shows the first frame forever."""

from __future__ import annotations

import numpy as np

from codec.images import decode_image, encode_image

from ..inputs import ClipInput
from ..wire_rate import Route, SentUnit
from .base import Codec, CodecOutput

__all__ = ["FrozenKeyframe"]


class FrozenKeyframe(Codec):
    """One keyframe (the first crop, compressed like this codec's keyframes), nothing else; on
    the wire it travels as this codec's keyframes do, on the data channel.

    Args:
        image_codec: ``webp`` (default) or ``jpeg``; settings are its quality values.
    """

    name = "frozen"

    def __init__(self, image_codec: str = "webp", qualities: tuple[int, ...] = (90,)) -> None:
        self.image_codec = image_codec
        self.qualities = qualities

    def settings(self, size: int) -> list[float]:
        return [float(q) for q in self.qualities]

    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        data = encode_image(clip.frames[0], self.image_codec, int(setting))
        decoded = decode_image(data)
        frames = np.broadcast_to(decoded, clip.frames.shape)
        sent = (SentUnit(float(clip.times[0]), Route.DATA_CHANNEL, (len(data),)),)
        return CodecOutput(np.ascontiguousarray(frames), 8 * len(data), setting, {"keyframe_bytes": len(data)}, sent)
