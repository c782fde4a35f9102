"""The motion outside the face: measured by the sender, sent as body messages, used by the geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from codec.geometry.body import BODY_NODES, body_field, face_mask, measure_body_motion
from codec.geometry.flow import mesh_flow
from codec.packets import BodyDecoder, BodyEncoder, BodyPacket, PacketError, PacketKind, decode_packet, packet_kind
from codec.packets.body_coding import BODY_STEPS_PER_UNIT, decode_body, encode_body
from codec.packets.body_stream import ABSOLUTE_EVERY

from .synthetic import face_mesh

SIZE = 256


def _texture(seed: int = 0) -> np.ndarray:
    """(SIZE, SIZE, 3) uint8: smooth random texture (optical flow has something to follow)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (SIZE // 8, SIZE // 8, 3)).astype(np.float32)
    return np.clip(cv2.resize(noise, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The picture's content moved by (dx, dy) pixels."""
    affine = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, affine, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_a_moved_background_is_measured_as_the_backward_shift() -> None:
    keyframe = _texture()
    frame = _shifted(keyframe, 6.0, -4.0)  # content 6 px right, 4 px up: each pixel came from (x - 6, y + 4)
    nodes = measure_body_motion(keyframe, frame, None)
    assert nodes.shape == (BODY_NODES, BODY_NODES, 2) and nodes.dtype == np.float32
    inner = nodes[1:-1, 1:-1] * SIZE / 2  # pixels; the border nodes see the reflected edge
    assert np.allclose(inner[..., 0], -6.0, atol=0.6) and np.allclose(inner[..., 1], 4.0, atol=0.6)
    field = body_field(nodes, 64)  # the receiver's field at 64 px: a quarter of the shift
    assert field.shape == (64, 64, 2)
    assert np.allclose(field[16:48, 16:48].mean(axis=(0, 1)), [-1.5, 1.0], atol=0.15)


def test_the_face_is_left_out_of_the_fit() -> None:
    """The face moves one way and the background another: the nodes follow the background."""
    keyframe = _texture()
    frame = _shifted(keyframe, 5.0, 0.0)
    face = face_mesh()
    mask = face_mask(face, SIZE)
    frame[mask] = _shifted(keyframe, -8.0, 0.0)[mask]
    nodes = measure_body_motion(keyframe, frame, face)
    corners = nodes[[0, 0, -1, -1], [0, -1, 0, -1], 0] * SIZE / 2
    assert np.allclose(corners, -5.0, atol=1.0)
    assert not face_mask(np.full((478, 3), np.nan), SIZE).any()


def test_body_field_refuses_bad_nodes() -> None:
    with pytest.raises(ValueError, match=r"body nodes must be \(n, n, 2\) with n >= 2, got \(3, 2, 2\)"):
        body_field(np.zeros((3, 2, 2)), 64)


def test_mesh_flow_moves_the_background_by_the_body_field() -> None:
    face = face_mesh()
    body = np.zeros((64, 64, 2))
    body[..., 0] = 3.0  # every outside pixel comes from 3 px to its right
    still = mesh_flow(face, face, 64)
    moved = mesh_flow(face, face, 64, body_motion=body)
    far = still.face_weight < 1e-3
    far[:, 64 - 4 :] = False  # the grid stops at the keyframe's edge
    shift = (moved.grid - still.grid)[far] * 64 / 2
    assert far.sum() > 500 and np.allclose(shift[:, 0], 3.0, atol=0.01) and np.allclose(shift[:, 1], 0.0)
    inside = still.face_weight == 1.0
    assert np.array_equal(moved.grid[inside], still.grid[inside])  # the face is the mesh's
    with pytest.raises(ValueError, match=r"body_motion must be \(64, 64, 2\) finite pixels, got \(32, 32, 2\)"):
        mesh_flow(face, face, 64, body_motion=np.zeros((32, 32, 2)))


def test_body_messages_round_trip_and_say_their_kind() -> None:
    values = tuple(int(v) for v in np.random.default_rng(0).integers(-40, 41, 2 * 7 * 7))
    for packet in (
        BodyPacket(seq=3, absolute=True, keyframe_id=200, nodes=7, values=values),
        BodyPacket(seq=15, absolute=False, keyframe_id=1, nodes=7, values=tuple(v // 8 for v in values)),
    ):
        data = encode_body(packet)
        assert decode_body(data) == packet and decode_packet(data) == packet
        assert packet_kind(data) is PacketKind.BODY
    still = encode_body(BodyPacket(0, False, 0, 7, (0,) * 98))
    assert len(still) <= 20  # a body that held still costs a few bytes


def test_damaged_body_messages_raise_packet_errors() -> None:
    data = encode_body(BodyPacket(1, True, 5, 7, tuple(range(-49, 49))))
    with pytest.raises(PacketError, match=f"body message says {len(data) - 3} bytes, has {len(data) - 4}"):
        decode_body(data[:-1])
    with pytest.raises(PacketError, match="unsupported body packet version 1"):
        decode_body(data[:3] + bytes([0x11]) + data[4:])
    rng = np.random.default_rng(1)
    for _ in range(300):  # random damage: an error or a packet that encodes back to exactly the bytes
        damaged = bytearray(data)
        damaged[int(rng.integers(4, len(data)))] ^= 1 << int(rng.integers(8))
        try:
            packet = decode_body(bytes(damaged))
        except PacketError:
            continue
        assert encode_body(packet) == bytes(damaged)


def test_body_stream_predicts_holds_still_and_recovers_from_a_loss() -> None:
    encoder, decoder = BodyEncoder(), BodyDecoder()
    encoder.start_keyframe(9)
    decoder.start_keyframe(9)
    rng = np.random.default_rng(2)
    field = rng.normal(0, 0.05, (5, 5, 2))
    packets: list[BodyPacket] = []
    for step in range(2 * ABSOLUTE_EVERY):
        field = field + rng.normal(0, 0.02, field.shape)
        packet = encoder.encode(field)
        assert packet is not None
        packets.append(packet)
        if step == 3:
            continue  # lost: the next predicted ones cannot be used until an absolute one
        used = decoder.decode(packet)
        assert used == (step < 3 or step >= ABSOLUTE_EVERY)
        if used:
            assert decoder.field is not None
            assert np.abs(decoder.field - field).max() <= 1 / BODY_STEPS_PER_UNIT  # quantization and hysteresis
    assert [p.absolute for p in packets] == [True, *[False] * 9] * 2
    fresh = BodyEncoder()
    fresh.start_keyframe(1)
    field = np.round(field * BODY_STEPS_PER_UNIT) / BODY_STEPS_PER_UNIT
    assert fresh.encode(field) is not None
    assert fresh.encode(field + 0.7 / BODY_STEPS_PER_UNIT) is None  # jitter under the hysteresis: nothing to send
    moved = fresh.encode(field + 1.5 / BODY_STEPS_PER_UNIT)
    assert moved is not None and not moved.absolute and set(moved.values) <= {1, 2}
    other = BodyDecoder()
    other.start_keyframe(10)
    assert not other.decode(packets[1])  # predicted from a field it does not have
    assert other.decode(packets[0]) and other.keyframe_id == 9  # absolute: names its keyframe (one of the bank's)
    assert not other.decode(packets[2])  # predicted, but not from packets[1]
    with pytest.raises(RuntimeError, match="body motion needs a keyframe first"):
        BodyEncoder().encode(field)


def test_a_bundle_carries_body_messages_next_to_motion() -> None:
    from codec.packets.bundle import bundle_messages, split_bundle

    body = encode_body(BodyPacket(2, True, 7, 7, tuple(range(-49, 49))))
    motion = bytes([0xC4, 3, 0x21, 0x0B, 0x1A])
    assert split_bundle(bundle_messages([body, motion, body])) == [body, motion, body]


def test_what_comes_from_beyond_the_keyframe_is_its_mirror_image() -> None:
    from codec.geometry.flow import _mirror

    grid = np.array([-3.2, -1.2, -1.0, -0.3, 0.0, 0.7, 1.0, 1.1, 2.5])
    np.testing.assert_allclose(_mirror(grid), [0.8, -0.8, -1.0, -0.3, 0.0, 0.7, 1.0, 0.9, -0.5], atol=1e-12)
    face = face_mesh()
    body = np.zeros((64, 64, 2))
    body[..., 1] = -6.0  # everything came from 6 px higher: the top rows from above the keyframe
    flow = mesh_flow(face, face, 64, body_motion=body)
    top = flow.grid[0, :8, 1]  # the top-left corner, far from the face
    np.testing.assert_allclose(top, -1 + (6 - 0.5) * 2 / 64, atol=1e-3)  # mirrored across the top edge
