"""Per-frame quality metrics: PSNR, SSIM, MS-SSIM (whole crop and face region) and AKD.

SSIM follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid
convolution, per RGB channel then averaged); MS-SSIM follows Wang et al. 2003 (5 scales,
weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333), as in the usual PyTorch implementations.
The face-region variants average the same maps over the face's convex hull only.

AKD (average keypoint distance) is the mean distance in pixels between the tracker's
landmarks on an output frame and on the original frame, over all 478 landmarks (x, y);
MKR (missing keypoint rate) is the share of frames where the original has a face and the
output has none.

Two views of the face's hardest parts, both on the tracker's 478-point mesh:

- open-mouth frames: a frame whose mouth is open wider than in the keyframe (the first frame
  with a face) by more than :data:`OPEN_MOUTH_MARGIN` of the mouth's width, measured on the
  original frame's landmarks (:func:`mouth_opening`, :func:`open_mouth_frames`); the face-region
  PSNR over those frames says how well the inside of the mouth (teeth, tongue) is painted,
  which the keyframe does not show;
- iris error: the distance in pixels between the iris centres (mesh 468 and 473) on the output
  and on the original frame (:func:`iris_error`): where the eyes look, and where they are.

No learned perceptual metric is reported: LPIPS and DISTS need network
weights that cannot be downloaded here, and none ships inside a PyPI package.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from codec.geometry.mouth_reference import MOUTH_CORNER_IDS, MOUTH_INNER_LIP_IDS  # the codec's own opening measure
from codec.ops.ssim import MS_WEIGHTS, WINDOW, ssim_maps

__all__ = [
    "IRIS_IDS",
    "MOUTH_CORNER_IDS",
    "MOUTH_INNER_LIP_IDS",
    "OPEN_MOUTH_MARGIN",
    "PSNR_CAP",
    "FrameMetrics",
    "akd",
    "face_masks",
    "frame_metrics",
    "iris_error",
    "mean_over",
    "mouth_opening",
    "open_mouth_frames",
    "psnr",
]

#: PSNR of identical frames (infinite) is reported as this many dB.
PSNR_CAP = 100.0
#: MediaPipe mesh ids of the iris centres (the subject's right eye, then left; mesh with irises).
IRIS_IDS = (468, 473)
#: A frame's mouth is open when its opening (inner-lip gap / mouth width) exceeds the keyframe's by
#: more than this: 0.05 of the mouth's width, about 2-3 px on a 256-pixel crop, well above the mesh's
#: jitter on closed lips (openings of 0.002-0.01 on the val clips' closed mouths).
OPEN_MOUTH_MARGIN = 0.05


@dataclass(frozen=True)
class FrameMetrics:
    """(N,) float64 arrays, one value per frame; NaN where a value is undefined (face
    metrics on frames without a face)."""

    psnr: np.ndarray
    ssim: np.ndarray
    msssim: np.ndarray
    face_psnr: np.ndarray
    face_ssim: np.ndarray
    face_msssim: np.ndarray

    def means(self) -> dict[str, float]:
        return {name: float(np.nanmean(getattr(self, name))) if np.isfinite(getattr(self, name)).any() else float("nan")
                for name in ("psnr", "ssim", "msssim", "face_psnr", "face_ssim", "face_msssim")}  # fmt: skip


def psnr(reference: np.ndarray, output: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """PSNR in dB of (N, H, W, 3) uint8 frames (capped at :data:`PSNR_CAP`); with an
    (N, H, W) bool ``mask``, over the masked pixels only (NaN for an empty mask)."""
    error = (reference.astype(np.float64) - output.astype(np.float64)) ** 2
    error = error.mean(axis=3)
    if mask is None:
        mse = error.reshape(len(error), -1).mean(axis=1)
    else:
        count = mask.reshape(len(mask), -1).sum(axis=1)
        total = (error * mask).reshape(len(error), -1).sum(axis=1)
        mse = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 10 * np.log10(255.0**2 / mse)
    return np.where(mse == 0, PSNR_CAP, np.minimum(value, PSNR_CAP))


def _masked_mean(maps: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over pixels, per channel, (B, C); with a (B, 1, h, w) mask cropped to the map size."""
    if mask is None:
        return maps.mean(dim=(2, 3))
    border_y = (mask.shape[2] - maps.shape[2]) // 2
    border_x = (mask.shape[3] - maps.shape[3]) // 2
    inner = mask[:, :, border_y : border_y + maps.shape[2], border_x : border_x + maps.shape[3]]
    weight = inner.sum(dim=(2, 3))
    total = (maps * inner).sum(dim=(2, 3))
    return torch.where(weight > 0, total / weight.clamp(min=1), torch.full_like(total, float("nan")))


def _ssim_and_msssim(
    reference: torch.Tensor, output: torch.Tensor, masks: list[torch.Tensor | None]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(SSIM, MS-SSIM) per frame for each region in ``masks`` (None = the whole frame), from
    one computation of the SSIM maps."""
    x, y = reference, output
    regions = list(masks)
    values: list[list[torch.Tensor]] = [[] for _ in regions]
    ssims: list[torch.Tensor] = []
    for level in range(len(MS_WEIGHTS)):
        ssim_map, cs_map = ssim_maps(x, y, 255.0)
        last = level == len(MS_WEIGHTS) - 1
        for index, mask in enumerate(regions):
            if level == 0:
                ssims.append(_masked_mean(ssim_map, mask))
            values[index].append(torch.relu(_masked_mean(ssim_map if last else cs_map, mask)))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            regions = [None if m is None else (F.avg_pool2d(m, 2) > 0.5).to(m.dtype) for m in regions]
    weights = torch.tensor(MS_WEIGHTS, dtype=x.dtype).view(-1, 1, 1)
    out = []
    for ssim, scales in zip(ssims, values, strict=True):
        msssim = torch.prod(torch.stack(scales, dim=0) ** weights, dim=0)  # per channel, as Wang et al.
        out.append((ssim.mean(dim=1), msssim.mean(dim=1)))
    return out


def face_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size) bool face regions: the convex hull of each frame's (N, 478, >=2)
    landmarks (all False for a frame whose landmarks are NaN)."""
    masks = np.zeros((len(landmarks), size, size), dtype=np.uint8)
    for index, points in enumerate(landmarks):
        if not np.isfinite(points[:, :2]).all():
            continue
        hull = cv2.convexHull(np.round(points[:, :2]).astype(np.int32))
        cv2.fillConvexPoly(masks[index], hull, 1)
    return masks.astype(bool)


def frame_metrics(
    reference: np.ndarray, output: np.ndarray, masks: np.ndarray | None = None, batch: int = 32
) -> FrameMetrics:
    """All image metrics of (N, S, S, 3) uint8 outputs against their references.

    Args:
        masks: (N, S, S) bool face regions (see :func:`face_masks`); None: no face metrics.

    Raises:
        ValueError: shapes differ, or frames are smaller than MS-SSIM's 161 pixels.
    """
    if reference.shape != output.shape or reference.ndim != 4 or reference.shape[3] != 3:
        raise ValueError(f"need two (N, H, W, 3) frame stacks of one shape, got {reference.shape}, {output.shape}")
    if min(reference.shape[1:3]) <= (WINDOW - 1) * 2 ** (len(MS_WEIGHTS) - 1):
        raise ValueError(f"MS-SSIM needs frames larger than 160 pixels, got {reference.shape[1:3]}")
    n = len(reference)
    results = {key: np.full(n, np.nan) for key in ("ssim", "msssim", "face_ssim", "face_msssim")}
    with torch.no_grad():
        for start in range(0, n, batch):
            part = slice(start, start + batch)
            x = torch.from_numpy(reference[part]).permute(0, 3, 1, 2).to(torch.float32)
            y = torch.from_numpy(output[part]).permute(0, 3, 1, 2).to(torch.float32)
            regions: list[torch.Tensor | None] = [None]
            if masks is not None:
                regions.append(torch.from_numpy(masks[part]).unsqueeze(1).to(torch.float32))
            (ssim, msssim), *face = _ssim_and_msssim(x, y, regions)
            results["ssim"][part], results["msssim"][part] = ssim.numpy(), msssim.numpy()
            if face:
                results["face_ssim"][part], results["face_msssim"][part] = face[0][0].numpy(), face[0][1].numpy()
    face_psnr = psnr(reference, output, masks) if masks is not None else np.full(n, np.nan)
    return FrameMetrics(psnr(reference, output), results["ssim"], results["msssim"], face_psnr,
                        results["face_ssim"], results["face_msssim"])  # fmt: skip


def akd(reference_landmarks: np.ndarray, output_landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-frame AKD in pixels and the missing-keypoint rate.

    Args:
        reference_landmarks, output_landmarks: (N, 478, 3) float, NaN where no face.

    Returns:
        (N,) distances (NaN where either frame has no face) and MKR in [0, 1] (share of
        frames with a face in the reference and none in the output).
    """
    has_reference = np.isfinite(reference_landmarks).all(axis=(1, 2))
    has_output = np.isfinite(output_landmarks).all(axis=(1, 2))
    distance = np.linalg.norm(reference_landmarks[..., :2] - output_landmarks[..., :2], axis=2).mean(axis=1)
    distance = np.where(has_reference & has_output, distance, np.nan)
    missing = float((has_reference & ~has_output).sum() / max(int(has_reference.sum()), 1))
    return distance, missing


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """How far each frame's mouth is open: the gap between the inner lips' midpoints divided by
    the distance between the mouth's corners (dimensionless, 0 for closed lips).

    Args:
        landmarks: (N, 478, >=2) float MediaPipe mesh landmarks (any pixel unit; x, y used),
            NaN where no face.

    Returns:
        (N,) float64 openings; NaN for a frame without a face (or with both corners at one point).
    """
    points = np.asarray(landmarks, dtype=np.float64)[..., :2]
    upper, lower = MOUTH_INNER_LIP_IDS
    left, right = MOUTH_CORNER_IDS
    gap = np.linalg.norm(points[:, upper] - points[:, lower], axis=1)
    width = np.linalg.norm(points[:, left] - points[:, right], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 0, gap / width, np.nan)


def open_mouth_frames(landmarks: np.ndarray, margin: float = OPEN_MOUTH_MARGIN) -> np.ndarray:
    """The frames whose mouth is open wider than in the keyframe.

    The keyframe is the first frame with a face (where a call sends its first keyframe); a
    frame is open-mouth when its :func:`mouth_opening` exceeds the keyframe's by more than
    ``margin`` (strictly).

    Args:
        landmarks: (N, 478, >=2) float original frames' landmarks, NaN where no face.
        margin: opening above the keyframe's, in mouth widths.

    Returns:
        (N,) bool; all False without any face (and False on frames without one).
    """
    opening = mouth_opening(landmarks)
    measured = np.flatnonzero(np.isfinite(opening))
    if len(measured) == 0:
        return np.zeros(len(opening), dtype=bool)
    threshold = opening[measured[0]] + margin
    return np.isfinite(opening) & (opening > threshold)


def iris_error(reference_landmarks: np.ndarray, output_landmarks: np.ndarray) -> np.ndarray:
    """Per frame, the mean distance in pixels between the iris centres (:data:`IRIS_IDS`) found on
    the output and on the original frame (both eyes averaged).

    Args:
        reference_landmarks, output_landmarks: (N, 478, >=2) float landmarks in crop pixels,
            NaN where no face.

    Returns:
        (N,) float64 pixels; NaN where either frame has no face.
    """
    ids = list(IRIS_IDS)
    reference = np.asarray(reference_landmarks, dtype=np.float64)[:, ids, :2]
    output = np.asarray(output_landmarks, dtype=np.float64)[:, ids, :2]
    return np.linalg.norm(reference - output, axis=2).mean(axis=1)  # NaN propagates from a missing face


def mean_over(values: np.ndarray, selection: np.ndarray | None = None) -> float:
    """Mean of the finite ``values`` ((N,) float) among the ``selection`` ((N,) bool; None: all);
    NaN when there are none (no warning)."""
    values = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(values) if selection is None else np.isfinite(values) & np.asarray(selection, dtype=bool)
    return float(values[keep].mean()) if keep.any() else float("nan")
