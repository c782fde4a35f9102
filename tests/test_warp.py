"""The volume warp: CPU fast path and CUDA kernel against torch's grid_sample."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from codec.ops.warp import cuda_kernel_source, to_channels_last, warp_volume, warp_volume_cpu


def _reference(volume: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _inputs(seed: int = 0, shape: tuple[int, ...] = (2, 5, 4, 6, 7), out: tuple[int, int, int] = (3, 5, 4)):
    generator = torch.Generator().manual_seed(seed)
    volume = torch.randn(*shape, generator=generator)
    grid = torch.rand(shape[0], *out, 3, generator=generator) * 2.6 - 1.3  # some samples fall outside
    return volume, grid


@pytest.mark.parametrize("seed", range(3))
def test_cpu_path_matches_reference(seed: int) -> None:
    volume, grid = _inputs(seed)
    np.testing.assert_allclose(warp_volume_cpu(volume, grid), _reference(volume, grid), atol=1e-5)
    rows = to_channels_last(volume)
    np.testing.assert_allclose(warp_volume(volume, grid, "cpu", rows), _reference(volume, grid), atol=1e-5)


def test_edges_and_identity() -> None:
    volume, _ = _inputs(1, (1, 3, 4, 4, 4))
    axis = (torch.arange(4) * 2 + 1) / 4 - 1
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    identity = torch.stack([x, y, z], -1).unsqueeze(0)
    np.testing.assert_allclose(warp_volume_cpu(volume, identity), volume, atol=1e-6)
    far = torch.full((1, 2, 2, 2, 3), 5.0)
    assert warp_volume_cpu(volume, far).abs().max() == 0  # outside: zero padding


def test_half_precision_and_dispatch() -> None:
    volume, grid = _inputs(2)
    half = warp_volume(volume.half(), grid, "cpu")
    assert half.dtype == torch.float16
    np.testing.assert_allclose(half.float(), _reference(volume.half().float(), grid), atol=2e-3)
    with pytest.raises(ValueError, match="unknown warp backend 'magic'"):
        warp_volume(volume, grid, "magic")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        warp_volume(volume, grid, "cuda")
    with pytest.raises(ValueError, match="need volume"):
        warp_volume(volume[0], grid)


def test_reference_backend_is_differentiable() -> None:
    volume, grid = _inputs(3)
    volume.requires_grad_(True)
    warp_volume(volume, grid, "torch").sum().backward()
    assert volume.grad is not None and volume.grad.abs().sum() > 0


# --- the CUDA source ---------------------------------------------------------------------------

_HOST_HARNESS = r"""
#define WARP_HOST
#include <cmath>
#include "warp_kernel.cu"
extern "C" void warp_host(const float* volume, const float* grid, float* out,
                          int B, int C, int D, int H, int W, int Do, int Ho, int Wo) {
    long voxels = (long)Do * Ho * Wo;
    for (int b = 0; b < B; ++b)
        for (long v = 0; v < voxels; ++v) {
            const float* g = grid + ((long)b * voxels + v) * 3;
            for (int c = 0; c < C; ++c)
                out[((long)b * C + c) * voxels + v] =
                    sample_voxel<float>(volume + ((long)b * C + c) * D * H * W, D, H, W, g[0], g[1], g[2]);
        }
}
"""


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kernel")
    (folder / "warp_kernel.cu").write_text(cuda_kernel_source())
    return folder


def test_cuda_source_compiles_with_nvcc(kernel_dir: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed: the CUDA kernel source cannot be compiled here")
    result = subprocess.run([nvcc, "--ptx", "--std=c++14", "-o", str(kernel_dir / "warp.ptx"),
                             str(kernel_dir / "warp_kernel.cu")], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    ptx = (kernel_dir / "warp.ptx").read_text()
    assert ".entry warp_volume_f32" in ptx and ".entry warp_volume_f16" in ptx


def test_host_compiled_sampling_matches_torch(kernel_dir: Path) -> None:
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the kernel's sampling function for the host")
    (kernel_dir / "harness.cpp").write_text(_HOST_HARNESS)
    library = kernel_dir / "libwarp_host.so"
    result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-I", str(kernel_dir), "-o", str(library),
                             str(kernel_dir / "harness.cpp")], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    warp_host = ctypes.CDLL(str(library)).warp_host
    for seed in range(4):
        volume, grid = _inputs(seed, (2, 3, 5, 6, 7), (4, 6, 5))
        out = np.zeros((2, 3, 4, 6, 5), np.float32)
        pointer = ctypes.POINTER(ctypes.c_float)
        warp_host(
            np.ascontiguousarray(volume.numpy()).ctypes.data_as(pointer),
            np.ascontiguousarray(grid.numpy()).ctypes.data_as(pointer),
            out.ctypes.data_as(pointer), 2, 3, 5, 6, 7, 4, 6, 5,
        )  # fmt: skip
        np.testing.assert_allclose(out, _reference(volume, grid).numpy(), atol=1e-5)


def _cuda_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _cuda_ready(), reason="needs a CUDA GPU with CuPy (pip install 'facevc[cuda]')")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_kernel_matches_reference(dtype: torch.dtype) -> None:
    volume, grid = _inputs(5, (2, 16, 8, 32, 32), (8, 32, 32))
    volume, grid = volume.cuda().to(dtype), grid.cuda()
    out = warp_volume(volume, grid, "cuda")
    reference = _reference(volume.float(), grid)
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    assert out.dtype == dtype
    np.testing.assert_allclose(out.float().cpu(), reference.cpu(), atol=tolerance)
