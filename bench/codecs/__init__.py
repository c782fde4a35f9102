"""Benchmark contenders behind one small interface (:class:`Codec`)."""

from .base import Codec, CodecOutput
from .frozen import FrozenKeyframe
from .h264 import H264
from .motion import MotionCodec, Synthesizer, hold_keyframe

__all__ = ["H264", "Codec", "CodecOutput", "FrozenKeyframe", "MotionCodec", "Synthesizer", "hold_keyframe"]
