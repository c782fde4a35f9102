from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codec.packets import (
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionPacket,
    PacketError,
    QuantSteps,
    StreamConfig,
    decode_packet,
    encode_packet,
)

from .data.make_packets import flat_png, keyframe, motion
from .data.make_packets import predicted as make_predicted

PACKETS = Path(__file__).parent / "data" / "packets"

#: exact messages for the saved malformed packets
EXPECTED_ERRORS = {
    "bad_empty": "empty packet",
    "bad_not_msgpack": "packet is not valid msgpack (reserved format byte)",
    "bad_truncated": "packet is truncated (incomplete msgpack)",
    "bad_trailing": "packet has trailing bytes after the message",
    "bad_not_array": "packet must be a msgpack array [version, kind, ...]",
    "bad_version": "unsupported packet version 3, this decoder reads version 2",
    "bad_version_1_motion": "unsupported packet version 1, this decoder reads version 2 "
    "(written by an older facevc: encode the clip again)",
    "bad_kind": "unknown packet kind 7",
    "bad_motion_array": "a motion message has a format of its own, not an array",
    "bad_motion_length": "motion message says 29 bytes, has 28",
    "bad_motion_version": "unsupported motion packet version 1 (this decoder reads version 2)",
    "bad_motion_padded": "motion payload is not what an encoder writes (damaged or padded)",
    "bad_keyframe_id_range": "keyframe id=300 is outside [0, 255]",
    "bad_keyframe_missing_field": "keyframe lacks field(s) kp",
    "bad_keyframe_unknown_field": "keyframe has unknown field(s) extra",
    "bad_keyframe_image_magic": "image data is not png",
    "bad_keyframe_nan_pose": "head pose[0]=nan is outside [-180, 180]",
    "bad_keyframe_keypoints": "canonical keypoints must be K x 3 float32 with 1 <= K <= 128, got 13 bytes",
    "bad_control_type": "unknown control type 'reboot'",
    "bad_ext": "msgpack extension type 5 is not allowed",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_saved_malformed_packets(name: str) -> None:
    with pytest.raises(PacketError) as info:
        decode_packet((PACKETS / f"{name}.bin").read_bytes())
    assert str(info.value) == EXPECTED_ERRORS[name]


def test_every_saved_bad_packet_has_an_expected_message() -> None:
    assert {p.stem for p in PACKETS.glob("bad_*.bin")} == set(EXPECTED_ERRORS)


def test_saved_valid_packets() -> None:
    assert decode_packet((PACKETS / "valid_keyframe.bin").read_bytes()) == keyframe()
    assert decode_packet((PACKETS / "valid_motion_absolute.bin").read_bytes()) == motion(True)
    predicted = decode_packet((PACKETS / "valid_motion_predicted.bin").read_bytes())
    assert predicted == make_predicted() and isinstance(predicted, MotionPacket) and not predicted.absolute
    control = decode_packet((PACKETS / "valid_control.bin").read_bytes())
    assert control == ControlPacket(ControlType.KEYFRAME_REQUEST, 2000, 3, "receiver has no keyframe")
    # the encoder still writes exactly the saved bytes: the wire format did not change by accident
    assert encode_packet(keyframe()) == (PACKETS / "valid_keyframe.bin").read_bytes()
    assert encode_packet(motion(True)) == (PACKETS / "valid_motion_absolute.bin").read_bytes()


def test_round_trips() -> None:
    config = StreamConfig(
        fps=30.0, crop_size=512, scheme="ibug68", steps=QuantSteps(angle=0.5), absolute_interval=4, basis=None
    )
    key = KeyframePacket(
        255,
        2**32 - 1,
        "png",
        flat_png(512, 512),
        512,
        512,
        np.ones((20, 3), np.float32),
        np.array([-179.0, 0, 179, -99, 0, 99, 0.5]),
        config,
    )
    assert decode_packet(encode_packet(key)) == key
    for control_type in ControlType:
        packet = ControlPacket(control_type, 5, None)
        assert decode_packet(encode_packet(packet)) == packet
    for packet in (
        MotionPacket(15, True, 255, 2**32 - 1, (-(2**31),) * 7, (2**31,) * 10, (-5, 5, 0, 1)),
        MotionPacket(0, False, 1, 0, (0,) * 7, (40, -13, 13, 12, -12) * 3),  # escapes, a layout without tables
        MotionPacket(7, False, 0, 1000, (0,) * 7, (0,) * 60),
    ):
        assert decode_packet(encode_packet(packet)) == packet
    with pytest.raises(ValueError, match="^a motion message holds at most 255 bytes, this one needs "):
        encode_packet(MotionPacket(0, True, 0, 0, (0,) * 7, (2**31,) * 384))
    with pytest.raises(ValueError, match=r"^seq=16 is outside \[0, 15\]$"):
        encode_packet(MotionPacket(16, True, 0, 0, (0,) * 7, (0,) * 24))


def test_motion_packet_is_compact() -> None:
    still = MotionPacket(3, False, 1, 1, (0,) * 7, (0,) * 24, (0,) * 4)
    assert len(encode_packet(still)) <= 6  # bin header, version and seq, 3 bytes of payload
    talking = MotionPacket(4, False, 1, 1, (0, 1, 0, 0, 0, 0, -1), (0, 1, -1) + (0,) * 21, (1, 0, 0, 0))
    assert len(encode_packet(talking)) <= 9


def test_version_in_every_message() -> None:
    import msgpack

    for name in ("valid_keyframe", "valid_control"):
        assert msgpack.unpackb((PACKETS / f"{name}.bin").read_bytes())[0] == 2
    for name in ("valid_motion_absolute", "valid_motion_predicted"):
        assert msgpack.unpackb((PACKETS / f"{name}.bin").read_bytes())[0] >> 4 == 2  # a bin: version, seq


def test_wrong_argument_type() -> None:
    with pytest.raises(PacketError, match="^packet must be bytes, got str$"):
        decode_packet("hello")  # type: ignore[arg-type]
    with pytest.raises(PacketError, match="exceeds the limit"):
        decode_packet(b"\x00" * (4 * 1024 * 1024 + 1))
