"""Packet format: msgpack messages, quantization, prediction and ``.fvc`` files."""

from .body_stream import BodyDecoder, BodyEncoder
from .container import PacketFileWriter, iter_packet_file, read_packet_records
from .errors import PacketError
from .messages import (
    PACKET_VERSION,
    BodyPacket,
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionPacket,
    MouthPacket,
    Packet,
    PacketKind,
    StreamConfig,
)
from .quant import QuantSteps, pose_from_ints, pose_units
from .stream import DecodedMotion, MotionDecoder, MotionEncoder
from .wire import decode_packet, encode_packet, packet_kind

__all__ = [
    "PACKET_VERSION",
    "BodyDecoder",
    "BodyEncoder",
    "BodyPacket",
    "ControlPacket",
    "ControlType",
    "DecodedMotion",
    "KeyframePacket",
    "MotionDecoder",
    "MotionEncoder",
    "MotionPacket",
    "MouthPacket",
    "Packet",
    "PacketError",
    "PacketFileWriter",
    "PacketKind",
    "QuantSteps",
    "StreamConfig",
    "decode_packet",
    "encode_packet",
    "iter_packet_file",
    "packet_kind",
    "pose_from_ints",
    "pose_units",
    "read_packet_records",
]
