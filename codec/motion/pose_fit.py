"""Robust similarity fit (scale, rotation, translation) between two 3D point sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SimilarityFit", "fit_similarity"]


@dataclass(frozen=True)
class SimilarityFit:
    """``target ~= scale * rotation @ source + translation``.

    Attributes:
        scale: float; rotation: (3, 3) float64 proper rotation; translation: (3,) float64.
        residuals: (N,) float64 distances after the fit; weights: (N,) the final robust weights.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    residuals: np.ndarray
    weights: np.ndarray


def _weighted_umeyama(
    source: np.ndarray, target: np.ndarray, weights: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    w = weights / weights.sum()
    mu_s = w @ source
    mu_t = w @ target
    src = source - mu_s
    tgt = target - mu_t
    covariance = (tgt * w[:, None]).T @ src
    u, d, vt = np.linalg.svd(covariance)
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2] = -1.0
    rotation = (u * sign) @ vt
    variance = float(w @ (src**2).sum(1))
    scale = float((d * sign).sum() / max(variance, 1e-12))
    translation = mu_t - scale * rotation @ mu_s
    return scale, rotation, translation


def fit_similarity(
    source: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray | None = None,
    iterations: int = 2,
    huber: float = 2.0,
) -> SimilarityFit:
    """Weighted least-squares similarity (Umeyama 1991) made robust by reweighting.

    After the first fit, points whose residual exceeds ``huber`` times a robust spread
    (1.4826 x median residual) are down-weighted (Huber weights), and the fit is redone.

    Args:
        source, target: (N, 3) float arrays, N >= 3 and not collinear.
        weights: (N,) non-negative prior weights (default: equal).
        iterations: reweighting rounds after the first fit.
        huber: Huber threshold in robust standard deviations.

    Raises:
        ValueError: on mismatched shapes, too few points or non-finite input.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3 or source.shape[0] < 3:
        raise ValueError(f"need two (N>=3, 3) point sets, got {source.shape} and {target.shape}")
    if not (np.isfinite(source).all() and np.isfinite(target).all()):
        raise ValueError("point sets contain NaN or inf")
    prior = np.ones(len(source)) if weights is None else np.asarray(weights, dtype=np.float64)
    if prior.shape != (len(source),) or (prior < 0).any() or prior.sum() <= 0:
        raise ValueError("weights must be (N,) non-negative with a positive sum")
    robust = np.ones_like(prior)
    for round_ in range(iterations + 1):
        scale, rotation, translation = _weighted_umeyama(source, target, prior * robust)
        residuals = np.linalg.norm(target - (scale * source @ rotation.T + translation), axis=1)
        if round_ == iterations:
            break
        spread = 1.4826 * float(np.median(residuals)) + 1e-12
        threshold = huber * spread
        robust = np.where(residuals <= threshold, 1.0, threshold / np.maximum(residuals, 1e-12))
    return SimilarityFit(scale, rotation, translation, residuals, prior * robust)
