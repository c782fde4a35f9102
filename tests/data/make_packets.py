"""Regenerate the saved packets of ``tests/data/packets`` (run from the repository root:
``python tests/data/make_packets.py``).  The files are committed; tests read them as they are,
so a change of the wire format shows up as a test failure, not as silently new files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import msgpack
import numpy as np

from codec.packets import (
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionPacket,
    StreamConfig,
    encode_packet,
)

HERE = Path(__file__).parent / "packets"


def flat_png(width: int = 256, height: int = 256, level: int = 128) -> bytes:
    """A gray RGB PNG of ``width`` x ``height``, built by hand (a few hundred bytes at 256x256)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes([level]) * (3 * width)) * height  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


#: the keyframe image of the saved packets: its size matches the keyframe's 256x256
PNG = flat_png()


def keyframe() -> KeyframePacket:
    keypoints = (np.arange(60, dtype=np.float32).reshape(20, 3) - 30) / 40
    return KeyframePacket(
        3,
        1000,
        "png",
        PNG,
        256,
        256,
        keypoints,
        np.array([5.0, -3.0, 1.5, 0.01, -0.02, 0.0, 1.0]),
        StreamConfig(fps=25.0),
    )


def motion(absolute: bool = True) -> MotionPacket:
    return MotionPacket(9, absolute, 3, 41, (20, -12, 6, 3, -5, 0, 1), tuple(range(-12, 12)), (2, -1, 3, 0))


def predicted() -> MotionPacket:
    return MotionPacket(10, False, 1, 1, (0, 1, 0, 0, -1, 0, 0), (0,) * 23 + (1,), (0, 0, 0, 0))


def raw(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    valid = {
        "valid_keyframe": encode_packet(keyframe()),
        "valid_motion_absolute": encode_packet(motion(True)),
        "valid_motion_predicted": encode_packet(predicted()),
        "valid_control": encode_packet(
            ControlPacket(ControlType.KEYFRAME_REQUEST, 2000, 3, "receiver has no keyframe")
        ),
    }
    good_motion = valid["valid_motion_absolute"]
    good_key = msgpack.unpackb(valid["valid_keyframe"], raw=False)
    body = good_key[2]
    malformed = {
        "bad_empty": b"",
        "bad_not_msgpack": b"\xc1\x00\x01",
        "bad_truncated": valid["valid_keyframe"][:-3],
        "bad_trailing": valid["valid_keyframe"] + b"\x00",
        "bad_not_array": raw({"v": 1}),
        "bad_version": raw([3, *good_key[1:]]),
        "bad_version_1_motion": raw([1, 1, 41, 1640, 3, 1, b"\x81\x00"]),
        "bad_kind": raw([2, 7, {}]),
        "bad_motion_array": raw([2, 1, 41, 1640, 3, 1, b"\x81\x00"]),
        "bad_motion_length": good_motion[:1] + bytes([good_motion[1] + 1]) + good_motion[2:],
        "bad_motion_version": good_motion[:2] + bytes([0x10 | good_motion[2] & 15]) + good_motion[3:],
        "bad_motion_padded": good_motion[:1] + bytes([good_motion[1] + 1]) + good_motion[2:] + b"\x00",
        "bad_keyframe_id_range": raw([2, 0, {**body, "id": 300}]),
        "bad_keyframe_missing_field": raw([2, 0, {k: v for k, v in body.items() if k != "kp"}]),
        "bad_keyframe_unknown_field": raw([2, 0, {**body, "extra": 1}]),
        "bad_keyframe_image_magic": raw([2, 0, {**body, "image": b"GIF89a"}]),
        "bad_keyframe_nan_pose": raw([2, 0, {**body, "pose": [float("nan"), 0, 0, 0, 0, 0, 1]}]),
        "bad_keyframe_keypoints": raw([2, 0, {**body, "kp": b"\x00" * 13}]),
        "bad_control_type": raw([2, 2, {"type": "reboot", "ts": 0}]),
        "bad_ext": b"\x93\x01\x02\xd4\x05\x00",
    }
    for name, data in {**valid, **malformed}.items():
        (HERE / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":
    main()
