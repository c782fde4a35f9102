"""The jaw-opening fit (codec.train.fit_jaw): a known direction is recovered, noise is scored."""

from __future__ import annotations

import numpy as np
import pytest

from codec.train.fit_jaw import fit_jaw_opening


def test_fit_recovers_a_known_direction_and_scores_noise() -> None:
    rng = np.random.default_rng(0)
    gap = rng.normal(0.0, 0.1, 2000)
    direction = np.zeros((3, 3))
    direction[0] = (0.0, 0.75, 0.3)  # follows the gap exactly
    direction[1] = (0.0, 0.4, 0.0)  # follows it, with as much noise again
    deltas = gap[:, None, None] * direction
    deltas[:, 1, 1] += rng.normal(0.0, 0.04, 2000)
    deltas[:, 2, 0] = rng.normal(0.0, 0.05, 2000)  # unrelated to the gap
    fitted, r2 = fit_jaw_opening(gap, deltas)
    np.testing.assert_allclose(fitted[0], direction[0], atol=1e-12)
    assert r2[0, 1] == pytest.approx(1.0) and r2[0, 2] == pytest.approx(1.0)
    assert fitted[1, 1] == pytest.approx(0.4, abs=0.02)
    assert r2[1, 1] == pytest.approx(0.4**2 * 0.01 / (0.4**2 * 0.01 + 0.04**2), abs=0.05)  # 0.5
    assert abs(r2[2, 0]) < 0.01


def test_fit_refuses_what_it_cannot_fit() -> None:
    with pytest.raises(ValueError, match=r"need \(F,\) gaps and \(F, K, 3\) deltas, got \(4,\) and \(3, 2, 3\)"):
        fit_jaw_opening(np.ones(4), np.zeros((3, 2, 3)))
    with pytest.raises(ValueError, match="the inner-lip gap never changes: nothing to fit"):
        fit_jaw_opening(np.zeros(4), np.zeros((4, 2, 3)))
