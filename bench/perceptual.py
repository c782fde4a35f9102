"""A perceptual video score: ColorVideoVDP (``cvvdp``, MIT; the ``perceptual`` extra).

ColorVideoVDP is a parametric model of human vision (contrast sensitivity, masking, temporal
channels) whose parameters ship inside its package: nothing is downloaded.  It scores a test
video against its reference in JOD (just-objectionable differences): 10 for identical videos,
lower for visibly worse ones.  The videos are taken as shown on :data:`DISPLAY` (a 24-inch
full-HD office monitor), the crop at its native size.

The package imports torchvision for one blur, and torchvision has no CPU build for every torch
(on these machines its PyPI wheel, built for CUDA, fails to load against the CPU torch).  When
torchvision does not import, :func:`load_cvvdp` puts a stand-in in its place that provides what
the parametric metric uses, :class:`GaussianBlur` (torchvision's semantics: a separable
Gaussian of ``kernel_size`` taps, reflected borders); the ML variants of cvvdp, which need
torchvision's MLP and downloaded weights, are not used.

Cost: on the 2 CPU cores here, ~0.4 s a 256x256 frame; a CUDA device makes it practical for
the whole ``bench rd`` grid.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

import numpy as np
import torch

__all__ = ["DISPLAY", "CvvdpMeter", "GaussianBlur", "load_cvvdp"]

#: ColorVideoVDP's display model the videos are seen on
DISPLAY = "standard_fhd"


class GaussianBlur(torch.nn.Module):
    """torchvision.transforms.GaussianBlur's arithmetic: a separable Gaussian over the last two
    dimensions (``kernel_size`` taps, standard deviation ``sigma``), borders reflected."""

    def __init__(self, kernel_size: int | tuple[int, int], sigma: float | tuple[float, float] = (0.1, 2.0)) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size[0] if isinstance(kernel_size, tuple) else kernel_size)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"the kernel size must be odd and positive, got {kernel_size}")
        self.sigma = float(sigma[0] if isinstance(sigma, tuple) else sigma)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(..., H, W) float -> the same shape, blurred."""
        half = (self.kernel_size - 1) / 2
        taps = torch.linspace(-half, half, self.kernel_size, dtype=image.dtype, device=image.device)
        weights = torch.exp(-0.5 * (taps / self.sigma) ** 2)
        weights = weights / weights.sum()
        shape = image.shape
        planes = image.reshape(-1, 1, shape[-2], shape[-1])
        pad = self.kernel_size // 2
        planes = torch.nn.functional.pad(planes, (pad, pad, pad, pad), mode="reflect")
        planes = torch.nn.functional.conv2d(planes, weights.view(1, 1, 1, -1))
        planes = torch.nn.functional.conv2d(planes, weights.view(1, 1, -1, 1))
        return planes.reshape(shape)


def _without_ml(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("cvvdp's ML variants need torchvision, which did not import here")


def _stand_in_torchvision() -> None:
    """Put a torchvision with :class:`GaussianBlur` (and an MLP that refuses) in sys.modules."""
    package = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    ops = types.ModuleType("torchvision.ops")
    transforms.GaussianBlur = GaussianBlur  # type: ignore[attr-defined]
    ops.MLP = _without_ml  # type: ignore[attr-defined]
    package.transforms = transforms  # type: ignore[attr-defined]
    package.ops = ops  # type: ignore[attr-defined]
    for name in [key for key in sys.modules if key == "torchvision" or key.startswith("torchvision.")]:
        del sys.modules[name]  # a half-imported torchvision, if its import failed
    sys.modules.update({"torchvision": package, "torchvision.transforms": transforms, "torchvision.ops": ops})


def load_cvvdp() -> Any | None:
    """The ``pycvvdp`` module, or None when the package is not installed."""
    if importlib.util.find_spec("pycvvdp") is None:
        return None
    try:
        importlib.import_module("torchvision.transforms")
    except (ImportError, RuntimeError):  # absent, or a CUDA build that does not load on a CPU torch
        _stand_in_torchvision()
    return importlib.import_module("pycvvdp")


class CvvdpMeter:
    """Scores videos with ColorVideoVDP.

    Args:
        device: ``cpu`` or ``cuda``.

    Raises:
        RuntimeError: the ``cvvdp`` package is not installed (the message says how to).
    """

    def __init__(self, device: str = "cpu") -> None:
        pycvvdp = load_cvvdp()
        if pycvvdp is None:
            raise RuntimeError('cvvdp is not installed: pip install -e ".[perceptual]"')
        self.metric = pycvvdp.cvvdp(display_name=DISPLAY, device=torch.device(device), quiet=True)

    def jod(self, test: np.ndarray, reference: np.ndarray, fps: float) -> float:
        """JOD of (N, H, W, 3) uint8 sRGB ``test`` frames against ``reference`` (10: identical).

        Raises:
            ValueError: the shapes differ or are not (N, H, W, 3).
        """
        if test.shape != reference.shape or test.ndim != 4 or test.shape[-1] != 3:
            raise ValueError(
                f"cvvdp compares two (N, H, W, 3) videos of one shape, got {test.shape} and {reference.shape}"
            )
        with torch.no_grad():
            quality, _ = self.metric.predict(test, reference, dim_order="FHWC", frames_per_second=fps)
        return float(quality)
