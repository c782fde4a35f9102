"""msgpack encoding of packets, and strict decoding.

Decoding trusts nothing: msgpack's own size limits bound the work a hostile message can
cause, then every field's type and range is checked.  Whatever is wrong, the only exception
is :class:`PacketError`, whose message names the problem.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import msgpack
import numpy as np

from ..images import image_size
from .body_coding import EXT8, decode_body, encode_body, is_body_message
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
    ring_from_levels,
    ring_levels,
)
from .motion_coding import BIN8, MAX_EXPRESSION_VALUES, decode_motion, encode_motion
from .quant import QuantSteps

__all__ = ["MAX_EXPRESSION_VALUES", "MAX_PACKET_BYTES", "decode_packet", "encode_packet", "packet_kind"]

#: No packet may be longer than this (a keyframe of a 1024x1024 crop fits easily).
MAX_PACKET_BYTES = 4 * 1024 * 1024
#: largest keyframe image side (and crop size) accepted: its picture is decoded before use
MAX_IMAGE_SIDE = 1024
MAX_KEYPOINTS = 128
#: points of a mouth packet's inner lip line (:data:`codec.geometry.flow.MOUTH_RING`)
MOUTH_RING_POINTS = 20
#: smallest side of a mouth packet's window, pixels
MIN_MOUTH_SIDE = 2
_UINT32 = 2**32
#: how each keyframe image format begins: (offset, bytes) pairs
_IMAGE_MAGIC = {
    "avif": ((4, b"ftypavif"),),
    "jpeg": ((0, b"\xff\xd8\xff"),),
    "png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "webp": ((0, b"RIFF"), (8, b"WEBP")),
}
_SCHEMES = ("mediapipe478", "ibug68")


def _fail(message: str) -> NoReturn:
    raise PacketError(message)


# --- encoding ----------------------------------------------------------------------------------


def _pack(message: list[Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def encode_packet(packet: Packet) -> bytes:
    """Serialize a packet.  The result always decodes back to an equal packet (a mouth's lip
    line when its positions lie on the wire's steps: :func:`codec.packets.messages.ring_on_wire`)."""
    if isinstance(packet, MotionPacket):
        return encode_motion(packet)
    if isinstance(packet, BodyPacket):
        return encode_body(packet)
    if isinstance(packet, KeyframePacket):
        config = packet.config
        body = {
            "id": packet.keyframe_id,
            "ts": packet.timestamp_ms,
            "codec": packet.image_codec,
            "image": packet.image,
            "w": packet.width,
            "h": packet.height,
            "kp": np.ascontiguousarray(packet.canonical_keypoints, dtype="<f4").tobytes(),
            "pose": [float(v) for v in packet.head_pose],
            "fps": float(config.fps),
            "crop": config.crop_size,
            "scheme": config.scheme,
            "quant": config.steps.as_list(),
            "interval": config.absolute_interval,
            "basis": config.basis,
        }
        return _pack([PACKET_VERSION, int(PacketKind.KEYFRAME), body])
    if isinstance(packet, MouthPacket):
        mouth = {
            "kf": packet.keyframe_id,
            "codec": packet.image_codec,
            "image": packet.image,
            "w": packet.width,
            "h": packet.height,
            "ring": ring_levels(packet.ring, packet.width, packet.height).tobytes(),
        }
        return _pack([PACKET_VERSION, int(PacketKind.MOUTH), mouth])
    if isinstance(packet, ControlPacket):
        control: dict[str, Any] = {"type": packet.type.value, "ts": packet.timestamp_ms}
        if packet.keyframe_id is not None:
            control["kf"] = packet.keyframe_id
        if packet.reason:
            control["reason"] = packet.reason
        return _pack([PACKET_VERSION, int(PacketKind.CONTROL), control])
    raise TypeError(f"not a packet: {type(packet).__name__}")


#: msgpack's fixarray markers of 2 to 15 elements: every message starts with one
_FIXARRAY = range(0x92, 0xA0)
#: the kinds written as ``[version, kind, {fields}]``
_ARRAY_KINDS = (PacketKind.KEYFRAME, PacketKind.CONTROL, PacketKind.MOUTH)


def packet_kind(data: bytes) -> PacketKind:
    """The kind of an encoded message, read from its first three bytes (no decoding): a
    transport's way to choose the channel.  The message is not validated.  Motion messages are
    a msgpack ``bin`` (see :mod:`codec.packets.motion_coding`), the others ``[version, kind, ...]``.

    Raises:
        PacketError: the bytes do not start like a message of this codec.
    """
    if len(data) >= 3 and data[0] == BIN8 and data[2] >> 4 == PACKET_VERSION:
        return PacketKind.MOTION
    if is_body_message(data):
        return PacketKind.BODY
    if len(data) < 3 or data[0] not in _FIXARRAY or data[1] != PACKET_VERSION or data[2] not in _ARRAY_KINDS:
        _fail("not a facevc message (its header is not [version, kind, ...])")
    return PacketKind(data[2])


# --- decoding ----------------------------------------------------------------------------------


def _int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        _fail(f"{name}={value} is outside [{low}, {high}]")
    return value


def _float(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"{name} must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        _fail(f"{name}={value} is outside [{low}, {high}]")
    return number


def _str(value: Any, name: str, max_len: int) -> str:
    if not isinstance(value, str):
        _fail(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > max_len:
        _fail(f"{name} is longer than {max_len} characters")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        _fail(f"{name} must be binary, got {type(value).__name__}")
    return value


def _fields(body: Any, kind: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        _fail(f"{kind} body must be a map, got {type(body).__name__}")
    missing = sorted(required - body.keys())
    if missing:
        _fail(f"{kind} lacks field(s) {', '.join(missing)}")
    unknown = sorted(set(body) - required - optional)
    if unknown:
        _fail(f"{kind} has unknown field(s) {', '.join(unknown)}")
    return body


def _image(body: dict[str, Any], kind: str, min_side: int) -> tuple[str, bytes, int, int]:
    """The image codec, image, width and height of a keyframe's or mouth's fields, checked."""
    codec = _str(body["codec"], "image codec", 8)
    if codec not in _IMAGE_MAGIC:
        _fail(f"image codec {codec!r} is not one of {', '.join(sorted(_IMAGE_MAGIC))}")
    image = _bytes(body["image"], "image")
    if not all(image[at : at + len(magic)] == magic for at, magic in _IMAGE_MAGIC[codec]):
        _fail(f"image data is not {codec}")
    width = _int(body["w"], "image width", min_side, MAX_IMAGE_SIDE)
    height = _int(body["h"], "image height", min_side, MAX_IMAGE_SIDE)
    try:  # checked before anything decodes it: a small file can claim a huge picture
        actual = image_size(image)
    except ValueError as exc:
        _fail(f"{codec} image: {exc}")
    if actual != (width, height):
        _fail(f"the {codec} image is {actual[0]}x{actual[1]}, the {kind} says {width}x{height}")
    return codec, image, width, height


_KEYFRAME_FIELDS = {
    "id",
    "ts",
    "codec",
    "image",
    "w",
    "h",
    "kp",
    "pose",
    "fps",
    "crop",
    "scheme",
    "quant",
    "interval",
    "basis",
}


def _decode_keyframe(message: list[Any]) -> KeyframePacket:
    if len(message) != 3:
        _fail(f"keyframe packet must have 3 elements, got {len(message)}")
    body = _fields(message[2], "keyframe", _KEYFRAME_FIELDS, set())
    codec, image, width, height = _image(body, "keyframe", 16)
    keypoint_bytes = _bytes(body["kp"], "canonical keypoints")
    if len(keypoint_bytes) % 12 or not 1 <= len(keypoint_bytes) // 12 <= MAX_KEYPOINTS:
        _fail(
            f"canonical keypoints must be K x 3 float32 with 1 <= K <= {MAX_KEYPOINTS}, got {len(keypoint_bytes)} bytes"
        )
    keypoints = np.frombuffer(keypoint_bytes, dtype="<f4").reshape(-1, 3).astype(np.float32)
    if not np.isfinite(keypoints).all() or np.abs(keypoints).max() > 100:
        _fail("canonical keypoints are not finite numbers within +-100")
    pose_list = body["pose"]
    if not isinstance(pose_list, list) or len(pose_list) != 7:
        _fail("head pose must be a list of 7 numbers")
    limits = [(-180, 180)] * 3 + [(-100, 100)] * 3 + [(1e-3, 1e3)]
    pose = np.array([_float(v, f"head pose[{i}]", *limits[i]) for i, v in enumerate(pose_list)])
    quant = body["quant"]
    if not isinstance(quant, list) or len(quant) != 6:
        _fail("quantization steps must be a list of 6 numbers")
    steps = QuantSteps(*(_float(v, f"quantization step[{i}]", 1e-6, 10) for i, v in enumerate(quant)))
    scheme = _str(body["scheme"], "scheme", 32)
    if scheme not in _SCHEMES:
        _fail(f"landmark scheme {scheme!r} is not one of {', '.join(_SCHEMES)}")
    basis = body["basis"]
    if basis is not None:
        basis = _str(basis, "basis", 64)
    config = StreamConfig(
        fps=_float(body["fps"], "fps", 1, 240),
        crop_size=_int(body["crop"], "crop size", 16, MAX_IMAGE_SIDE),
        scheme=scheme,
        steps=steps,
        absolute_interval=_int(body["interval"], "absolute interval", 1, 65535),
        basis=basis,
    )
    return KeyframePacket(
        keyframe_id=_int(body["id"], "keyframe id", 0, 255),
        timestamp_ms=_int(body["ts"], "timestamp", 0, _UINT32 - 1),
        image_codec=codec,
        image=image,
        width=width,
        height=height,
        canonical_keypoints=keypoints,
        head_pose=pose,
        config=config,
    )


def _decode_mouth(message: list[Any]) -> MouthPacket:
    if len(message) != 3:
        _fail(f"mouth packet must have 3 elements, got {len(message)}")
    body = _fields(message[2], "mouth", {"kf", "codec", "image", "w", "h", "ring"}, set())
    codec, image, width, height = _image(body, "mouth", MIN_MOUTH_SIDE)
    ring_bytes = _bytes(body["ring"], "inner lip line")
    if len(ring_bytes) != MOUTH_RING_POINTS * 2:
        _fail(f"the inner lip line must be {MOUTH_RING_POINTS} x 2 bytes, got {len(ring_bytes)}")
    levels = np.frombuffer(ring_bytes, dtype=np.uint8).reshape(MOUTH_RING_POINTS, 2)
    ring = ring_from_levels(levels, width, height)
    return MouthPacket(_int(body["kf"], "keyframe id", 0, 255), codec, image, width, height, ring)


def _decode_control(message: list[Any]) -> ControlPacket:
    if len(message) != 3:
        _fail(f"control packet must have 3 elements, got {len(message)}")
    body = _fields(message[2], "control", {"type", "ts"}, {"kf", "reason"})
    name = _str(body["type"], "control type", 32)
    try:
        control_type = ControlType(name)
    except ValueError:
        _fail(f"unknown control type {name!r}")
    keyframe_id = _int(body["kf"], "keyframe id", 0, 255) if "kf" in body else None
    reason = _str(body.get("reason", ""), "reason", 200)
    return ControlPacket(control_type, _int(body["ts"], "timestamp", 0, _UINT32 - 1), keyframe_id, reason)


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise PacketError(f"msgpack extension type {code} is not allowed")


def decode_packet(data: bytes) -> Packet:
    """Parse one message.

    Raises:
        PacketError: for anything that is not a valid packet of this version.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        _fail(f"packet must be bytes, got {type(data).__name__}")
    if len(data) == 0:
        _fail("empty packet")
    if len(data) > MAX_PACKET_BYTES:
        _fail(f"packet of {len(data)} bytes exceeds the limit of {MAX_PACKET_BYTES}")
    if data[0] == BIN8:
        return decode_motion(bytes(data))
    if data[0] == EXT8:
        return decode_body(bytes(data))
    try:
        message = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_refuse_ext,
            max_bin_len=MAX_PACKET_BYTES,
            max_str_len=1024,
            max_array_len=64,
            max_map_len=32,
            max_ext_len=64,
        )
    except PacketError:
        raise
    except msgpack.ExtraData:
        _fail("packet has trailing bytes after the message")
    except msgpack.FormatError:
        _fail("packet is not valid msgpack (reserved format byte)")
    except msgpack.StackError:
        _fail("packet is not valid msgpack (nested too deeply)")
    except UnicodeDecodeError:
        _fail("packet is not valid msgpack (a string is not UTF-8)")
    except ValueError as exc:
        text = str(exc)
        if "incomplete input" in text:
            _fail("packet is truncated (incomplete msgpack)")
        if "exceeds max" in text:
            _fail(f"packet exceeds a msgpack size limit ({text})")
        _fail(f"packet is not valid msgpack ({text})")
    except (msgpack.UnpackException, TypeError, RecursionError) as exc:
        _fail(f"packet is not valid msgpack ({type(exc).__name__}: {exc})")
    if not isinstance(message, list) or len(message) < 2:
        _fail("packet must be a msgpack array [version, kind, ...]")
    version = message[0]
    if not isinstance(version, int) or isinstance(version, bool):
        _fail(f"packet version must be an integer, got {type(version).__name__}")
    if version != PACKET_VERSION:
        older = " (written by an older facevc: encode the clip again)" if version < PACKET_VERSION else ""
        _fail(f"unsupported packet version {version}, this decoder reads version {PACKET_VERSION}{older}")
    kind = message[1]
    if not isinstance(kind, int) or isinstance(kind, bool):
        _fail(f"packet kind must be an integer, got {type(kind).__name__}")
    if kind in (PacketKind.MOTION, PacketKind.BODY):
        _fail(f"a {PacketKind(kind).name.lower()} message has a format of its own, not an array")
    if kind == PacketKind.KEYFRAME:
        return _decode_keyframe(message)
    if kind == PacketKind.CONTROL:
        return _decode_control(message)
    if kind == PacketKind.MOUTH:
        return _decode_mouth(message)
    _fail(f"unknown packet kind {kind!r}")
