"""SSIM and MS-SSIM maps in torch (differentiable), shared by training losses and the benchmark.

Wang et al. 2004 / 2003: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, valid
convolution; MS-SSIM with 5 scales and weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["MS_WEIGHTS", "WINDOW", "gaussian_blur", "ms_ssim", "ssim_maps"]

MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5


def _window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(WINDOW, dtype=dtype, device=device) - WINDOW // 2
    g = torch.exp(-(coords**2) / (2 * SIGMA**2))
    return g / g.sum()


def gaussian_blur(x: torch.Tensor) -> torch.Tensor:
    """Separable 11x11 Gaussian, valid convolution, per channel: (B, C, H, W) -> (B, C, H-10, W-10)."""
    channels = x.shape[1]
    window = _window(x.dtype, x.device)
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, WINDOW)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, WINDOW, 1)
    return F.conv2d(F.conv2d(x, horizontal, groups=channels), vertical, groups=channels)


def ssim_maps(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps of (B, C, H, W) images: each (B, C, H-10, W-10)."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = gaussian_blur(x), gaussian_blur(y)
    sigma_x = gaussian_blur(x * x) - mu_x**2
    sigma_y = gaussian_blur(y * y) - mu_y**2
    sigma_xy = gaussian_blur(x * y) - mu_x * mu_y
    cs = (2 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    return (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs, cs


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, floor: float = 0.0) -> torch.Tensor:
    """(B,) MS-SSIM of (B, C, H, W) images (mean over channels).

    Images of 176 pixels and more use the standard 5 scales; smaller ones use the scales that
    fit the 11-pixel window, with the weights renormalised.  ``floor`` clamps each scale's term
    from below (0 as in the usual definition; a small positive value keeps gradients finite
    when used as a training loss)."""
    levels = 1
    while levels < len(MS_WEIGHTS) and min(x.shape[-2:]) // 2**levels >= WINDOW:
        levels += 1
    values = []
    for level in range(levels):
        ssim_map, cs_map = ssim_maps(x, y, data_range)
        last = level == levels - 1
        values.append((ssim_map if last else cs_map).mean(dim=(2, 3)).clamp(min=floor))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    weights = torch.tensor(MS_WEIGHTS[:levels], dtype=x.dtype, device=x.device).view(-1, 1, 1)
    weights = weights / weights.sum()
    return torch.prod(torch.stack(values) ** weights, dim=0).mean(dim=1)
