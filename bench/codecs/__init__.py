"""Benchmark contenders behind one small interface (:class:`Codec`)."""

from .base import Codec, CodecOutput
from .frozen import FrozenKeyframe
from .h264 import H264
from .motion import HoldKeyframe, MotionCodec

__all__ = ["H264", "Codec", "CodecOutput", "FrozenKeyframe", "HoldKeyframe", "MotionCodec"]
