from __future__ import annotations

import numpy as np
import pytest

from codec.motion.basis import fit_basis, load_basis
from codec.motion.params import HeadPose, MotionParams
from codec.packets import KeyframePacket, MotionDecoder, MotionEncoder, StreamConfig

from .data.make_packets import PNG


def _correlated_deltas(n: int = 500, seed: int = 0) -> np.ndarray:
    """Deltas driven by 3 hidden factors (jaw, smile, blink), like real expressions."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 0.02, (3, 60))
    factors = rng.normal(0, 1, (n, 3))
    return (factors @ patterns + rng.normal(0, 0.0005, (n, 60))).reshape(n, 20, 3)


def test_basis_captures_low_rank_expressions() -> None:
    deltas = _correlated_deltas()
    basis = fit_basis(deltas, 3, step=1 / 128)
    assert basis.basis_id.startswith("pca-k20m3-") and len(basis.basis_id) == len("pca-k20m3-") + 8
    codes = basis.quantize(deltas[0])
    assert codes.shape == (3,) and codes.dtype == np.int64
    error = np.abs(basis.dequantize(codes) - deltas[0]).max()
    assert error < 0.01  # half a step per coefficient plus the noise it drops


def test_basis_in_a_stream() -> None:
    deltas = _correlated_deltas(50, seed=1)
    basis = fit_basis(deltas, 3, step=1 / 256)
    config = StreamConfig(basis=basis.basis_id)
    encoder = MotionEncoder(config, basis=basis)
    decoder = MotionDecoder(extra_bases={basis.basis_id: basis})
    pose = np.array([0, 0, 0, 0, 0, 0, 1.0])
    keyframe = KeyframePacket(0, 0, "png", PNG, 256, 256, np.zeros((20, 3), np.float32), pose, config)
    decoder.add_keyframe(keyframe)
    encoder.start_keyframe(0, keyframe.canonical_keypoints)
    for i, delta in enumerate(deltas):
        packet = encoder.encode(MotionParams(HeadPose(1.0, 2.0, 3.0), delta.astype(np.float32)), i)
        assert len(packet.expression) == 3
        decoded = decoder.decode(packet)
        assert decoded is not None
        # within the dead zone's reach of the basis's own reconstruction (steps of 1/256)
        expected = basis.dequantize(basis.quantize(delta))
        np.testing.assert_allclose(decoded.motion.expression_delta, expected, atol=2 / 256)


def test_unknown_basis() -> None:
    with pytest.raises(KeyError, match="unknown expression basis 'nope'"):
        load_basis("nope")


def test_shipped_basis_loads_and_codes() -> None:
    from codec.motion.basis import available_bases

    shipped = [b for b in available_bases() if b.startswith("pca-k20m24-")]
    assert shipped, available_bases()
    basis = load_basis(shipped[0])
    assert basis.num_keypoints == 20 and basis.num_coefficients == 24
    np.testing.assert_allclose(basis.components @ basis.components.T, np.eye(24), atol=1e-9)
    config = StreamConfig(basis=shipped[0])
    encoder, decoder = MotionEncoder(config), MotionDecoder()  # both load the basis by id
    decoder.add_keyframe(
        KeyframePacket(
            0, 0, "png", PNG, 256, 256, np.zeros((20, 3), np.float32), np.array([0, 0, 0, 0, 0, 0, 1.0]), config
        )
    )
    encoder.start_keyframe(0, np.zeros((20, 3), np.float32))
    delta = basis.dequantize(np.arange(24) - 12)  # an expression inside the basis
    decoded = decoder.decode(encoder.encode(MotionParams(HeadPose(0.0, 0.0, 0.0), delta), 0))
    assert decoded is not None
    np.testing.assert_allclose(decoded.motion.expression_delta, delta, atol=1e-6)
