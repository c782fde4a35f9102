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
    return MotionPacket(41, 1640, 3, absolute, (20, -12, 6, 3, -5, 0, 1), tuple(range(-30, 30)))


def raw(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    valid = {
        "valid_keyframe": encode_packet(keyframe()),
        "valid_motion_absolute": encode_packet(motion(True)),
        "valid_motion_predicted": encode_packet(MotionPacket(42, 1680, 3, False, (0, 1, 0, 0, -1, 0, 0), (0,) * 60)),
        "valid_control": encode_packet(
            ControlPacket(ControlType.KEYFRAME_REQUEST, 2000, 3, "receiver has no keyframe")
        ),
    }
    good_motion = msgpack.unpackb(valid["valid_motion_absolute"])
    good_key = msgpack.unpackb(valid["valid_keyframe"], raw=False)
    body = good_key[2]
    malformed = {
        "bad_empty": b"",
        "bad_not_msgpack": b"\xc1\x00\x01",
        "bad_truncated": valid["valid_motion_absolute"][:-3],
        "bad_trailing": valid["valid_motion_absolute"] + b"\x00",
        "bad_not_array": raw({"v": 1}),
        "bad_version": raw([2, *good_motion[1:]]),
        "bad_kind": raw([1, 7, {}]),
        "bad_motion_length": raw(good_motion[:6]),
        "bad_seq_type": raw([1, 1, "41", *good_motion[3:]]),
        "bad_keyframe_id_range": raw([1, 1, 41, 1640, 300, 1, good_motion[6]]),
        "bad_motion_payload_truncated": raw([1, 1, 41, 1640, 3, 1, b"\x00\x00\x00"]),
        "bad_keyframe_missing_field": raw([1, 0, {k: v for k, v in body.items() if k != "kp"}]),
        "bad_keyframe_unknown_field": raw([1, 0, {**body, "extra": 1}]),
        "bad_keyframe_image_magic": raw([1, 0, {**body, "image": b"GIF89a"}]),
        "bad_keyframe_nan_pose": raw([1, 0, {**body, "pose": [float("nan"), 0, 0, 0, 0, 0, 1]}]),
        "bad_keyframe_keypoints": raw([1, 0, {**body, "kp": b"\x00" * 13}]),
        "bad_control_type": raw([1, 2, {"type": "reboot", "ts": 0}]),
        "bad_ext": b"\x93\x01\x02\xd4\x05\x00",
    }
    for name, data in {**valid, **malformed}.items():
        (HERE / f"{name}.bin").write_bytes(data)


if __name__ == "__main__":
    main()
