"""One-Euro filter (Casiez et al., CHI 2012): low jitter at rest, little lag in motion."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter"]


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Element-wise One-Euro filter over arrays of a fixed shape.

    The cutoff frequency grows with the signal's speed: ``cutoff = min_cutoff + beta * |dx/dt|``.

    Args:
        min_cutoff: cutoff in Hz when the signal is still (lower = smoother).
        beta: how fast the cutoff rises with speed (higher = less lag).
        derivative_cutoff: cutoff in Hz of the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, derivative_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or derivative_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and derivative_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.derivative_cutoff = derivative_cutoff
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def reset(self) -> None:
        self._value = self._speed = None
        self._time = None

    def __call__(self, value: np.ndarray, time: float) -> np.ndarray:
        """Filter one sample taken at ``time`` seconds; returns an array of ``value``'s shape."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or self._time is None or self._speed is None or value.shape != self._value.shape:
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), time
            return value.copy()
        dt = time - self._time
        if dt <= 0:  # repeated or out-of-order timestamp: keep the state, do not divide by 0
            return self._value.copy()
        speed = (value - self._value) / dt
        self._speed = self._speed + _alpha(self.derivative_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + _alpha(cutoff, dt) * (value - self._value)
        self._time = time
        return self._value.copy()
