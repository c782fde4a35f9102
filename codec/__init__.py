"""facevc's codec: frames in, wire messages out (:class:`Encoder`); messages in, pictures out
(:class:`Decoder`).  No network or device I/O::

    from codec import Encoder, Decoder
    encoder, decoder = Encoder(), Decoder()
    for frame in frames:                              # (H, W, 3) uint8 RGB, any size
        for message in encoder.encode(frame):         # list[bytes], in sending order
            picture = decoder.decode(message)         # (S, S, 3) uint8 RGB, or None

The two classes are imported on first use, so that ``import codec.packets`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .decoder import Decoder, DecoderStats
    from .encoder import EncodedFrame, Encoder

__all__ = ["Decoder", "DecoderStats", "EncodedFrame", "Encoder"]


def __getattr__(name: str) -> Any:
    if name in ("Encoder", "EncodedFrame"):
        from . import encoder

        return getattr(encoder, name)
    if name in ("Decoder", "DecoderStats"):
        from . import decoder

        return getattr(decoder, name)
    raise AttributeError(f"module 'codec' has no attribute {name!r}")
