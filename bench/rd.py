"""Rate-distortion arithmetic: bandwidth ratio against H.264's curve, and BD-rate.

The *bandwidth ratio* of a point (rate r, quality q) is the bitrate H.264 needs to reach q,
read off H.264's rate-quality curve with log-linear interpolation, divided by r.  When H.264's
lowest point already beats q, H.264 would need less than its floor: the ratio is then only
bounded above ("below H.264's floor").  When no H.264 point reaches q, it is bounded below.

BD-rate (Bjontegaard) compares two curves over the quality range they share: the mean
difference of log-rate at equal quality, here with piecewise-linear interpolation (robust for
the few points a codec has), as a percentage (negative: fewer bits than the reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["LOWER_IS_BETTER", "BandwidthRatio", "bandwidth_ratio", "bd_rate", "rate_for_quality"]

#: Metrics where smaller is better (all others: larger is better).
LOWER_IS_BETTER = frozenset({"akd", "mkr"})


@dataclass(frozen=True)
class BandwidthRatio:
    """H.264's rate for equal quality over ours.

    Attributes:
        kind: ``"exact"``, ``"below_floor"`` (H.264's lowest rate already does better: the
            true ratio is at most ``value``) or ``"above_range"`` (H.264 never gets there in
            the measured range: the ratio is more than ``value``); ``"undefined"`` without data.
        value: the ratio or its bound.
        h264_kbps: the H.264 rate it is based on.
    """

    kind: str
    value: float
    h264_kbps: float

    def text(self) -> str:
        if self.kind == "exact":
            return f"{self.value:.2f}x"
        if self.kind == "below_floor":
            return f"<= {self.value:.2f}x (below H.264's floor)"
        if self.kind == "above_range":
            return f"> {self.value:.2f}x (beyond H.264's range)"
        return "n/a"


def _oriented(quality: np.ndarray, metric: str) -> np.ndarray:
    return -quality if metric in LOWER_IS_BETTER else quality


def rate_for_quality(rates: np.ndarray, qualities: np.ndarray, target: float) -> float | None:
    """The lowest rate at which a curve reaches ``target`` (qualities: larger is better),
    interpolating linearly in log-rate between the points; None when it never does and
    ``rates[0]`` when its first point already does."""
    order = np.argsort(rates)
    rates, qualities = np.asarray(rates, float)[order], np.asarray(qualities, float)[order]
    keep = np.isfinite(qualities) & (rates > 0)
    rates, qualities = rates[keep], qualities[keep]
    if len(rates) == 0:
        return None
    if qualities[0] >= target:
        return float(rates[0])
    for i in range(len(rates) - 1):
        r0, q0, r1, q1 = rates[i], qualities[i], rates[i + 1], qualities[i + 1]
        if q0 < target <= q1:
            fraction = (target - q0) / (q1 - q0)
            return float(math.exp(math.log(r0) + fraction * (math.log(r1) - math.log(r0))))
    return None


def bandwidth_ratio(
    h264_rates: np.ndarray, h264_qualities: np.ndarray, rate: float, quality: float, metric: str
) -> BandwidthRatio:
    """Bandwidth ratio of the point (``rate``, ``quality``) against H.264's curve."""
    rates = np.asarray(h264_rates, float)
    qualities = _oriented(np.asarray(h264_qualities, float), metric)
    target = -quality if metric in LOWER_IS_BETTER else quality
    finite = np.isfinite(qualities)
    if not finite.any() or not math.isfinite(target) or rate <= 0:
        return BandwidthRatio("undefined", float("nan"), float("nan"))
    needed = rate_for_quality(rates, qualities, target)
    floor = float(rates[finite].min())
    if needed is None:
        top = float(rates[finite].max())
        return BandwidthRatio("above_range", top / rate, top)
    if needed == floor and qualities[finite][np.argmin(rates[finite])] > target:
        return BandwidthRatio("below_floor", floor / rate, floor)
    return BandwidthRatio("exact", needed / rate, needed)


def bd_rate(
    reference_rates: ArrayLike,
    reference_qualities: ArrayLike,
    test_rates: ArrayLike,
    test_qualities: ArrayLike,
    metric: str,
    samples: int = 200,
) -> float | None:
    """BD-rate in percent of the test curve against the reference (None without overlap or
    with fewer than two points on either curve)."""

    def curve(rates: ArrayLike, qualities: ArrayLike) -> tuple[np.ndarray, np.ndarray] | None:
        q = _oriented(np.asarray(qualities, float), metric)
        r = np.asarray(rates, float)
        keep = np.isfinite(q) & (r > 0)
        if keep.sum() < 2:
            return None
        q, log_r = q[keep], np.log(r[keep])
        order = np.argsort(q)
        q, log_r = q[order], log_r[order]
        # quality must rise with rate for interpolation: keep the monotone envelope
        envelope_q, envelope_r = [q[0]], [log_r[0]]
        for qi, ri in zip(q[1:], log_r[1:], strict=True):
            if qi > envelope_q[-1]:
                envelope_q.append(qi)
                envelope_r.append(max(ri, envelope_r[-1]))
        if len(envelope_q) < 2:
            return None
        return np.array(envelope_q), np.array(envelope_r)

    reference = curve(reference_rates, reference_qualities)
    test = curve(test_rates, test_qualities)
    if reference is None or test is None:
        return None
    low = max(reference[0][0], test[0][0])
    high = min(reference[0][-1], test[0][-1])
    if high <= low:
        return None
    grid = np.linspace(low, high, samples)
    difference = np.interp(grid, *test) - np.interp(grid, *reference)
    return float((math.exp(float(np.mean(difference))) - 1) * 100)
