"""facevc's codec: frames in, wire messages out (:class:`Encoder`); messages in, pictures out
(:class:`Decoder`).  No network or device I/O; see README, "Use it as a library"."""

from .decoder import Decoder, DecoderStats
from .encoded import EncodedFrame
from .encoder import Encoder

__all__ = ["Decoder", "DecoderStats", "EncodedFrame", "Encoder"]
