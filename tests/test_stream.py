from __future__ import annotations

import numpy as np
import pytest

from codec.motion.basis import load_basis
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


def smooth_motion(n: int, seed: int = 0, basis: str | None = None) -> list[MotionParams]:
    """A talking-head-like random walk: slow head turns, lips moving a few pixels (expressions
    inside ``basis`` when one is named)."""
    rng = np.random.default_rng(seed)
    angles = np.cumsum(rng.normal(0, 0.4, (n, 3)), axis=0)
    shift = np.cumsum(rng.normal(0, 0.002, (n, 3)), axis=0)
    scale = np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    phase = np.linspace(0, 12, n)[:, None, None]
    delta = 3 * PIXEL * np.sin(phase + rng.uniform(0, 6, (1, 20, 3))) + rng.normal(0, 0.3 * PIXEL, (n, 20, 3))
    if basis is not None:
        shape = load_basis(basis)
        coefficients = 4 * np.sin(phase[:, :, 0] + rng.uniform(0, 6, (1, shape.num_coefficients)))
        delta = np.stack([shape.dequantize(c) for c in coefficients])
    gaze = 0.2 * np.sin(phase[:, :, :1] + np.array([[[0.0], [0.3]]])) * np.array([1.0, 0.4])
    return [
        MotionParams(
            HeadPose(*angles[i], shift[i], float(scale[i])), delta[i].astype(np.float32), gaze[i].astype(np.float32)
        )
        for i in range(n)
    ]


def make_keyframe(config: StreamConfig, keyframe_id: int = 0) -> KeyframePacket:
    keypoints = np.random.default_rng(7).uniform(-0.5, 0.5, (20, 3)).astype(np.float32)
    return KeyframePacket(keyframe_id, 0, "png", PNG, 256, 256, keypoints, np.array([0, 0, 0, 0, 0, 0, 1.0]), config)


@pytest.mark.parametrize("basis", [StreamConfig().basis, None])
def test_round_trip_error_and_size(basis: str | None) -> None:
    config = StreamConfig(absolute_interval=8, basis=basis)
    keyframe = make_keyframe(config)
    encoder, decoder = MotionEncoder(config), MotionDecoder()
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
    decoder.add_keyframe(decode_packet(encode_packet(keyframe)))  # type: ignore[arg-type]
    errors, sizes, absolute = [], [], []
    for i, motion in enumerate(smooth_motion(200, basis=basis)):
        packet = encoder.encode(motion, 40 * i)
        data = encode_packet(packet)
        sizes.append(len(data))
        absolute.append(packet.absolute)
        decoded = decoder.decode(decode_packet(data))  # type: ignore[arg-type]
        assert decoded is not None and decoded.timestamp_ms == 40 * i
        assert packet.seq == i % 16 and decoded.seq == i
        exact = keypoints_from_motion(keyframe.canonical_keypoints, motion)
        errors.append(np.linalg.norm((decoded.keypoints() - exact)[:, :2], axis=1).mean() / PIXEL)
        assert decoded.motion.gaze is not None and motion.gaze is not None
        assert np.abs(decoded.motion.gaze - motion.gaze).max() <= 0.75 / 10 + 1e-6  # the dead zone, in steps
    assert np.mean(errors) < 0.6  # pixels at 256x256
    assert max(errors) < 2.5
    assert np.mean(sizes) <= 40
    assert absolute[:9] == [True] + [False] * 7 + [True]  # every 8th packet is absolute


def test_loss_recovers_at_next_absolute_packet() -> None:
    config = StreamConfig(absolute_interval=8, basis=None)
    encoder, decoder = MotionEncoder(config), MotionDecoder()
    keyframe = make_keyframe(config)
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
    decoder.add_keyframe(keyframe)
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
    canonical = make_keyframe(config).canonical_keypoints
    encoder.start_keyframe(0, canonical)
    flags = [encoder.encode(motions[0], 0).absolute, encoder.encode(motions[1], 40).absolute]
    encoder.request_absolute()
    flags.append(encoder.encode(motions[2], 80).absolute)
    encoder.start_keyframe(1, canonical)
    last = encoder.encode(motions[3], 120)
    assert flags == [True, False, True] and last.absolute and last.keyframe_id == 1


def test_unknown_keyframe_and_layout_mismatch() -> None:
    config = StreamConfig(basis=None)
    decoder = MotionDecoder()
    packet = MotionPacket(0, True, 5, 0, (0,) * 7, (0,) * 60)
    assert decoder.decode(packet) is None and decoder.unknown_keyframe == 1 and decoder.missing_keyframe
    decoder.add_keyframe(make_keyframe(config, keyframe_id=5))
    assert decoder.decode(packet) is not None
    with pytest.raises(PacketError, match="^motion packet 1 has 3 expression values, its keyframe needs 60$"):
        decoder.decode(MotionPacket(1, True, 5, 0, (0,) * 7, (0, 0, 0)))
    with pytest.raises(PacketError, match="^motion packet 2 has head-pose values out of range$"):
        decoder.decode(MotionPacket(2, True, 5, 0, (10**6,) + (0,) * 6, (0,) * 60))
    with pytest.raises(PacketError, match="^motion packet 3 has expression or gaze values out of range$"):
        decoder.decode(MotionPacket(3, True, 5, 0, (0,) * 7, (10**6,) + (0,) * 59))
    with pytest.raises(PacketError, match="^motion packet 4 has expression or gaze values out of range$"):
        decoder.decode(MotionPacket(4, True, 5, 0, (0,) * 7, (0,) * 60, (0, 0, 10**4, 0)))
    # a predicted packet whose keyframe parity differs from its reference's waits for an absolute one
    assert decoder.decode(MotionPacket(5, False, 0, 1, (0,) * 7, (0,) * 60)) is None and decoder.waiting == 1


def test_unknown_basis_is_a_packet_error() -> None:
    keyframe = make_keyframe(StreamConfig(basis="pca-k20m8-deadbeef"))
    with pytest.raises(PacketError, match="unknown expression basis 'pca-k20m8-deadbeef'"):
        MotionDecoder().add_keyframe(keyframe)


def test_concealment_keeps_decoding_and_resynchronizes() -> None:
    config = StreamConfig(absolute_interval=8, basis=None)
    encoder, decoder = MotionEncoder(config), MotionDecoder(conceal=True)
    keyframe = make_keyframe(config)
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
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


def test_after_renumbering_the_chain_goes_on_concealed() -> None:
    """Once the numbering is forgotten (a long run of packets that read as old), the next
    predicted packet is applied to the last values, not refused until an absolute one."""
    config = StreamConfig(basis=None, absolute_interval=1000)
    keyframe = make_keyframe(config)
    encoder, decoder = MotionEncoder(config), MotionDecoder(conceal=True)
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
    decoder.add_keyframe(keyframe)
    packets = [encoder.encode(motion, 40 * i) for i, motion in enumerate(smooth_motion(24))]
    for packet in packets[:20]:
        assert decoder.decode(packet) is not None
    decoder.restart_sequence()
    decoded = decoder.decode(packets[20])  # number 4: "older" than the chain's 19
    assert decoded is not None and decoded.timestamp_ms == 800
    assert decoder.concealed == 1 and not decoder.resynchronized  # approximate: a refresh is due
    reference = MotionDecoder()  # the same packets, never renumbered
    reference.add_keyframe(keyframe)
    same = [reference.decode(packet) for packet in packets[:21]][-1]
    assert same is not None and np.array_equal(decoded.keypoints(), same.keypoints())  # nothing was lost
    follower = decoder.decode(packets[21])
    assert follower is not None and follower.timestamp_ms == 840 and decoder.concealed == 1


def test_sequence_numbers_wrap_and_the_clock_tells_long_gaps() -> None:
    decoder = MotionDecoder()
    assert decoder.sequence_gap(3) is None
    decoder.decode(MotionPacket(3, True, 0, 0, (0,) * 7, (0,) * 24))  # no keyframe: only numbered
    assert decoder.sequence_gap(4) == 1 and decoder.sequence_gap(3) == 0
    assert decoder.sequence_gap(2, elapsed_frames=0.2) == -1  # late
    assert decoder.sequence_gap(6, elapsed_frames=19.0) == 19  # 3 + 19 = 22 = 6 (mod 16)
    assert decoder.sequence_gap(2) == 15  # without a clock: the nearest forward gap


def test_dead_zone_holds_jitter_and_follows_motion() -> None:
    config = StreamConfig(basis=None)
    keyframe = make_keyframe(config)
    encoder = MotionEncoder(config)
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
    still = smooth_motion(1)[0]
    first = encoder.encode(still, 0)
    step = config.steps.delta_xy
    jitter = MotionParams(still.head_pose, still.expression_delta + np.float32(0.25 * step), still.gaze)
    assert encoder.encode(jitter, 40).expression == (0,) * 60  # within the dead zone: nothing to send
    moved = MotionParams(still.head_pose, still.expression_delta + np.float32(3 * step), still.gaze)
    assert set(encoder.encode(moved, 80).expression[::3]) <= {2, 3, 4}  # followed to within a step
    assert first.absolute
