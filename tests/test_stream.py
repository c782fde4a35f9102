from __future__ import annotations

import numpy as np
import pytest

from codec.motion.params import HeadPose, MotionParams, keypoints_from_motion
from codec.packets import (
    KeyframePacket,
    MotionDecoder,
    MotionEncoder,
    MotionPacket,
    PacketError,
    StreamConfig,
    decode_packet,
    encode_packet,
)

from .data.make_packets import PNG

PIXEL = 2 / 256


def smooth_motion(n: int, seed: int = 0) -> list[MotionParams]:
    """A talking-head-like random walk: slow head turns, lips moving a few pixels."""
    rng = np.random.default_rng(seed)
    angles = np.cumsum(rng.normal(0, 0.4, (n, 3)), axis=0)
    shift = np.cumsum(rng.normal(0, 0.002, (n, 3)), axis=0)
    scale = np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    phase = np.linspace(0, 12, n)[:, None, None]
    delta = 3 * PIXEL * np.sin(phase + rng.uniform(0, 6, (1, 20, 3))) + rng.normal(0, 0.3 * PIXEL, (n, 20, 3))
    return [
        MotionParams(HeadPose(*angles[i], shift[i], float(scale[i])), delta[i].astype(np.float32)) for i in range(n)
    ]


def make_keyframe(config: StreamConfig, keyframe_id: int = 0) -> KeyframePacket:
    keypoints = np.random.default_rng(7).uniform(-0.5, 0.5, (20, 3)).astype(np.float32)
    return KeyframePacket(keyframe_id, 0, "png", PNG, 256, 256, keypoints, np.array([0, 0, 0, 0, 0, 0, 1.0]), config)


def test_round_trip_error_and_size() -> None:
    config = StreamConfig()
    keyframe = make_keyframe(config)
    encoder, decoder = MotionEncoder(config), MotionDecoder()
    encoder.start_keyframe(0)
    decoder.add_keyframe(decode_packet(encode_packet(keyframe)))  # type: ignore[arg-type]
    errors, sizes, absolute = [], [], []
    for i, motion in enumerate(smooth_motion(200)):
        packet = encoder.encode(motion, 40 * i)
        data = encode_packet(packet)
        sizes.append(len(data))
        absolute.append(packet.absolute)
        decoded = decoder.decode(decode_packet(data))  # type: ignore[arg-type]
        assert decoded is not None and decoded.seq == i and decoded.timestamp_ms == 40 * i
        exact = keypoints_from_motion(keyframe.canonical_keypoints, motion)
        errors.append(np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean() / PIXEL)
    assert np.mean(errors) < 1.0  # pixels at 256x256
    assert max(errors) < 2.0
    assert np.mean(sizes) <= 40
    assert absolute[:9] == [True] + [False] * 7 + [True]  # every 8th packet is absolute


def test_loss_recovers_at_next_absolute_packet() -> None:
    config = StreamConfig(absolute_interval=8)
    encoder, decoder = MotionEncoder(config), MotionDecoder()
    encoder.start_keyframe(0)
    decoder.add_keyframe(make_keyframe(config))
    results = []
    for i, motion in enumerate(smooth_motion(20)):
        packet = encoder.encode(motion, 40 * i)
        if i == 3:
            continue  # lost
        results.append((i, decoder.decode(packet)))
    undecodable = [i for i, r in results if r is None]
    assert undecodable == [4, 5, 6, 7]  # predicted from the lost packet, until absolute packet 8
    assert decoder.waiting == 4 and decoder.decoded == 15


def test_refresh_and_new_keyframe_make_absolute_packets() -> None:
    config = StreamConfig(absolute_interval=100)
    encoder = MotionEncoder(config)
    motions = smooth_motion(6)
    with pytest.raises(RuntimeError, match="start_keyframe"):
        encoder.encode(motions[0], 0)
    encoder.start_keyframe(0)
    flags = [encoder.encode(motions[0], 0).absolute, encoder.encode(motions[1], 40).absolute]
    encoder.request_absolute()
    flags.append(encoder.encode(motions[2], 80).absolute)
    encoder.start_keyframe(1)
    last = encoder.encode(motions[3], 120)
    assert flags == [True, False, True] and last.absolute and last.keyframe_id == 1


def test_unknown_keyframe_and_layout_mismatch() -> None:
    config = StreamConfig()
    decoder = MotionDecoder()
    packet = MotionPacket(0, 0, 5, True, (0,) * 7, (0,) * 60)
    assert decoder.decode(packet) is None and decoder.unknown_keyframe == 1
    decoder.add_keyframe(make_keyframe(config, keyframe_id=5))
    assert decoder.decode(packet) is not None
    with pytest.raises(PacketError, match="^motion packet 1 has 3 expression values, its keyframe needs 60$"):
        decoder.decode(MotionPacket(1, 0, 5, True, (0,) * 7, (0, 0, 0)))
    with pytest.raises(PacketError, match="^motion packet 2 has head-pose values out of range$"):
        decoder.decode(MotionPacket(2, 0, 5, True, (10**6,) + (0,) * 6, (0,) * 60))
    with pytest.raises(PacketError, match="^motion packet 3 has expression deltas out of range$"):
        decoder.decode(MotionPacket(3, 0, 5, True, (0,) * 7, (10**6,) + (0,) * 59))


def test_unknown_basis_is_a_packet_error() -> None:
    keyframe = make_keyframe(StreamConfig(basis="pca-k20m8-deadbeef"))
    with pytest.raises(PacketError, match="unknown expression basis 'pca-k20m8-deadbeef'"):
        MotionDecoder().add_keyframe(keyframe)


def test_concealment_keeps_decoding_and_resynchronizes() -> None:
    config = StreamConfig(absolute_interval=8)
    encoder, decoder = MotionEncoder(config), MotionDecoder(conceal=True)
    encoder.start_keyframe(0)
    keyframe = make_keyframe(config)
    decoder.add_keyframe(keyframe)
    motions = smooth_motion(12)
    errors = []
    for i, motion in enumerate(motions):
        packet = encoder.encode(motion, 40 * i)
        if i == 3:
            continue  # lost
        decoded = decoder.decode(packet)
        assert decoded is not None  # every packet that arrives is shown
        exact = keypoints_from_motion(keyframe.canonical_keypoints, motion)
        errors.append(np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean() / PIXEL)
    assert decoder.concealed == 1 and decoder.resynchronized  # packet 8 was absolute
    assert max(errors[3:7]) < 5.0  # approximate while concealing: one frame's change is missed
    assert max(errors[7:]) < 1.0  # exact again after the absolute packet
