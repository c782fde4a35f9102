"""The perceptual score (:mod:`bench.perceptual`): the blur it stands in with, and cvvdp itself when installed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from bench.perceptual import CvvdpMeter, GaussianBlur, load_cvvdp


def test_stand_in_blur_is_the_gaussian_opencv_computes() -> None:
    planes = np.random.default_rng(3).random((2, 3, 40, 50)).astype(np.float32)
    for size, sigma in ((5, 1.0), (9, 2.0), (1, 0.5)):
        blurred = GaussianBlur(size, sigma)(torch.from_numpy(planes)).numpy()
        reflect = cv2.BORDER_REFLECT_101
        expected = np.stack([
            np.stack([cv2.GaussianBlur(plane, (size, size), sigma, borderType=reflect) for plane in batch])
            for batch in planes
        ])  # fmt: skip
        np.testing.assert_allclose(blurred, expected, atol=2e-6)
    with pytest.raises(ValueError, match="^the kernel size must be odd and positive, got 4$"):
        GaussianBlur(4, 1.0)


def test_meter_says_how_to_install_cvvdp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.perceptual.load_cvvdp", lambda: None)
    with pytest.raises(RuntimeError, match=r'^cvvdp is not installed: pip install -e "\.\[perceptual\]"$'):
        CvvdpMeter()


def test_cvvdp_scores_identical_videos_10_and_noisy_ones_lower() -> None:
    if load_cvvdp() is None:
        pytest.skip('cvvdp is not installed (pip install -e ".[perceptual]")')
    meter = CvvdpMeter("cpu")
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 64, dtype=np.float32)
    reference = np.repeat(np.stack([ramp[None, :].repeat(64, 0)] * 3, -1)[None], 8, axis=0).astype(np.uint8)

    def noisy(amplitude: int) -> np.ndarray:
        noise = rng.integers(-amplitude, amplitude + 1, reference.shape)
        return np.clip(reference.astype(np.int16) + noise, 0, 255).astype(np.uint8)

    assert meter.jod(reference, reference, 25.0) == pytest.approx(10.0, abs=1e-3)
    assert 10.0 > meter.jod(noisy(4), reference, 25.0) > meter.jod(noisy(24), reference, 25.0)
    with pytest.raises(ValueError, match=r"^cvvdp compares two \(N, H, W, 3\) videos of one shape"):
        meter.jod(reference[:4], reference, 25.0)
