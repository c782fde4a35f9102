"""The mesh receiver: geometry from the tracker's mesh, the network only repairs.

Per keyframe, F lifts the keyframe into a feature volume (as face-vid2vid does).  Per frame the
warp comes from geometry (:mod:`codec.geometry`): the keyframe's mesh moved by the sent motion,
rasterized into a backward grid, a depth shift and region maps (:data:`GEOMETRY_CHANNELS`, at
the volume's resolution).  A small refiner R looks at the keyframe moved by that grid and at the
region maps, and predicts a bounded correction of the grid and an occlusion map; the corrected
grid warps the cached volume in 3D (every depth layer by the same 2D motion, its depth shifted by
the surface's) and the full-resolution keyframe image in 2D.  The generator G (with the region
maps as a guide) paints what geometry cannot know: the mouth's inside, the eyes, seams, light.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..geometry.inputs import GEOMETRY_CHANNELS
from ..ops.warp import warp_volume
from .appearance import AppearanceEncoder
from .config import ModelConfig
from .generator import Generator
from .layers import ConvAct
from .motion_field import identity_grid
from .talking_head import keyframe_cache

__all__ = [
    "FEATURE_MARGIN",
    "GRID_CORRECTION",
    "GUIDE_CHANNELS",
    "GeometryRefiner",
    "MeshTalkingHeadModel",
    "full_resolution_grid",
    "geometric_view",
]

#: the largest correction the refiner may add to the geometry's grid (grid units: 0.05 = 6 px at 256)
GRID_CORRECTION = 0.05
#: the geometry maps the generator and refiner see as guides (all but the grid and depth shift)
GUIDE_CHANNELS = len(GEOMETRY_CHANNELS) - 3
#: the refiner's inputs: the keyframe moved by the grid (3), the grid's displacement (2), depth shift, guides
_REFINER_INPUTS = 3 + 2 + 1 + GUIDE_CHANNELS
#: occlusion logit before training: the warped volume is mostly trusted
_OCCLUSION_BIAS = 2.0
#: crop units around the mouth's and eyes' regions that :func:`geometric_view` leaves to the
#: generator (0.06: 8 pixels at 256: the lips' and lids' edges)
FEATURE_MARGIN = 0.06
_GUIDE = {name: index for index, name in enumerate(GEOMETRY_CHANNELS[3:])}


def geometric_view(outputs: dict[str, torch.Tensor], guide: torch.Tensor, weight: float) -> dict[str, torch.Tensor]:
    """Free view: the keyframe warped by the geometry wherever the keyframe saw what is shown.

    A viewer's turn shows the face from where no training pair did; the generator's painting
    of skin and hair there is out of its training (a dotted texture on a disoccluded cheek).
    The turned mesh is right wherever the keyframe saw the surface, so there the picture is
    the warped keyframe (``warped_image``), and outside the face the same (the warp's smooth
    falloff); the generator keeps the mouth and the eyes (with :data:`FEATURE_MARGIN` around
    them) and the face's pixels the keyframe never saw.  ``weight`` blends the two, so a view
    slider moving away from the front does not jump.

    Args:
        outputs: :meth:`MeshTalkingHeadModel.generate`'s dict: ``image`` and ``warped_image``
            (B, 3, S, S) in [0, 1].
        guide: (B, GUIDE_CHANNELS, V, V) the geometry's guide maps (``warp``'s ``guide``).
        weight: in [0, 1]; 0 returns ``outputs`` as they are.

    Returns:
        ``outputs`` with ``image`` replaced (and ``geometric`` (B, 1, S, S): the warped
        keyframe's share), or ``outputs`` itself at weight 0.
    """
    if weight <= 0.0:
        return outputs
    image, warped = outputs["image"], outputs["warped_image"]
    size = image.shape[-1]
    maps = F.interpolate(guide, size=(size, size), mode="bilinear", align_corners=False)
    inner = maps[:, _GUIDE["mouth"]] + maps[:, _GUIDE["eye"]] + maps[:, _GUIDE["iris"]]  # (B, S, S)
    radius = max(1, round(FEATURE_MARGIN * size / 2))
    features = F.max_pool2d(inner.clamp(0, 1)[:, None], 2 * radius + 1, 1, radius)
    face = (maps[:, _GUIDE["skin"]] + inner).clamp(0, 1)
    unseen = (face * (1 - maps[:, _GUIDE["visible"]])).clamp(0, 1)[:, None]
    geometric = min(weight, 1.0) * (1 - features) * (1 - unseen)
    return {**outputs, "image": image + geometric * (warped - image), "geometric": geometric}


def full_resolution_grid(refined: torch.Tensor, geometric: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
    """The keyframe image's grid at the picture's resolution S: the refined volume grid
    upsampled (as the generator upsamples it), plus, where the detail maps' weight says, what the
    mesh's full-resolution warp adds to the geometric grid upsampled the same way.

    Args:
        refined: (B, V, V, 2) the refined grid; geometric: (B, 2, V, V) the geometry's own grid;
        detail: (B, 3, S, S) the full-resolution grid (2 channels) and its weight in [0, 1].

    Returns:
        (B, S, S, 2) grid units.
    """
    size = detail.shape[-1]

    def upsample(grid: torch.Tensor) -> torch.Tensor:  # (B, 2, V, V) -> (B, S, S, 2)
        return F.interpolate(grid, size=(size, size), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)

    weight = detail[:, 2:3].permute(0, 2, 3, 1)
    return upsample(refined.permute(0, 3, 1, 2)) + weight * (detail[:, :2].permute(0, 2, 3, 1) - upsample(geometric))


class GeometryRefiner(nn.Module):
    """R: a small U-shaped network at the volume's resolution: grid correction and occlusion."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width = config.motion_channels
        self.inlet = ConvAct(_REFINER_INPUTS, width)
        self.down = nn.Sequential(ConvAct(width, 2 * width, 3, 2), ConvAct(2 * width, 2 * width))
        self.outlet = ConvAct(3 * width, width)
        self.correction = nn.Conv2d(width, 2, 3, 1, 1)
        self.occlusion = nn.Conv2d(width, 1, 3, 1, 1)
        nn.init.zeros_(self.correction.weight)
        nn.init.zeros_(self.correction.bias)  # type: ignore[arg-type]
        nn.init.constant_(self.occlusion.bias, _OCCLUSION_BIAS)  # type: ignore[arg-type]

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs: (B, _REFINER_INPUTS, V, V) -> correction (B, V, V, 2) in grid units, occlusion
        (B, 1, V, V) in [0, 1]."""
        x = self.inlet(inputs)
        low = self.down(x)
        x = self.outlet(torch.cat([x, F.interpolate(low, scale_factor=2.0, mode="nearest")], dim=1))
        correction = GRID_CORRECTION * torch.tanh(self.correction(x)).permute(0, 2, 3, 1)
        return correction, torch.sigmoid(self.occlusion(x))


class MeshTalkingHeadModel(nn.Module):
    """The mesh receiver (``arch: mesh``).  ``forward`` takes and returns dicts:

    - ``source_image``: (B, 3, S, S) float32 in [0, 1], the keyframe (or ``keyframe``: the dict
      :meth:`encode_keyframe` returned),
    - ``geometry``: (B, 9, V, V) float32 :data:`codec.geometry.inputs.GEOMETRY_CHANNELS` at the
      volume's resolution V,
    - optionally ``detail``: (B, 3, S, S) float32, the mesh's warp at the picture's resolution
      around the eyes and the mouth (:func:`codec.geometry.detail.detail_maps`): the keyframe
      image is then warped by a full-resolution grid (:func:`full_resolution_grid`).

    Outputs: ``image`` (B, 3, S, S) in [0, 1], ``warped_image``, ``alpha``, ``occlusion``,
    ``flow`` (B, D, V, V, 3), ``grid`` (B, V, V, 2: the corrected 2D grid).

    Args:
        config: model sizes (``arch: mesh``).
        warp_backend: see :func:`codec.ops.warp.warp_volume`.
    """

    def __init__(self, config: ModelConfig, warp_backend: str = "auto") -> None:
        super().__init__()
        self.config = config
        self.warp_backend = warp_backend
        self.appearance = AppearanceEncoder(config)
        self.refiner = GeometryRefiner(config)
        self.generator = Generator(config, guide_channels=GUIDE_CHANNELS, own_image_flow=False)
        depth_axis = identity_grid(config.volume_depth, 1, 1)[:, 0, 0, 2]  # (D,) voxel z in [-1, 1]
        self.register_buffer("depth_axis", depth_axis, persistent=False)
        self.depth_axis: torch.Tensor

    def encode_keyframe(self, source_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """F and what else depends only on the keyframe; cache it for the keyframe's lifetime."""
        return keyframe_cache(self.appearance(source_image), source_image, self.config.volume_size)

    def warp(
        self, keyframe: dict[str, torch.Tensor], geometry: torch.Tensor, detail: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The refined geometry and the 3D warp of the cached volume.

        Args:
            keyframe: the dict :meth:`encode_keyframe` returned.
            geometry: (B, 9, V, V) float32 geometry maps.
            detail: (B, 3, S, S) float32 detail maps, or None.

        Returns:
            ``volume`` (B, C, D, V, V), ``occlusion`` (B, 1, V, V), ``flow`` (B, D, V, V, 3),
            ``grid`` (B, V, V, 2; with ``detail``: (B, S, S, 2), :func:`full_resolution_grid`),
            ``guide`` (B, GUIDE_CHANNELS, V, V).
        """
        v = self.config.volume_size
        if geometry.shape[1:] != (len(GEOMETRY_CHANNELS), v, v):
            raise ValueError(f"geometry must be (B, {len(GEOMETRY_CHANNELS)}, {v}, {v}), got {tuple(geometry.shape)}")
        grid = geometry[:, :2].permute(0, 2, 3, 1)  # (B, V, V, 2)
        depth_shift, guide = geometry[:, 2:3], geometry[:, 3:]
        moved = F.grid_sample(keyframe["source_small"], grid, mode="bilinear", padding_mode="border",
                              align_corners=False)  # fmt: skip
        identity = identity_grid(1, v, v, geometry.device)[0, ..., :2]  # (V, V, 2)
        displacement = (grid - identity).permute(0, 3, 1, 2)
        correction, occlusion = self.refiner(torch.cat([moved * 2 - 1, displacement, depth_shift, guide], dim=1))
        grid = grid + correction
        # every depth layer moves by the same 2D grid; its depth by the surface's shift (grid units)
        b, d = grid.shape[0], self.config.volume_depth
        xy = grid.unsqueeze(1).expand(b, d, v, v, 2)
        z = self.depth_axis.view(1, d, 1, 1) + depth_shift / self.config.z_range  # (B, D, V, V)
        flow = torch.cat([xy, z.unsqueeze(-1)], dim=-1)
        backend = self.warp_backend
        if backend == "auto" and torch.is_grad_enabled() and self.training:
            backend = "torch"
        volume = warp_volume(keyframe["volume"], flow, backend, keyframe.get("volume_rows"))
        if detail is not None:
            grid = full_resolution_grid(grid, geometry[:, :2], detail)
        return {"volume": volume, "occlusion": occlusion, "flow": flow, "grid": grid, "guide": guide}

    def generate(self, keyframe: dict[str, torch.Tensor], warped: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """G paints the frame from what :meth:`warp` returned; the outputs of :meth:`forward`."""
        out = self.generator(warped["volume"], warped["occlusion"], warped["flow"], keyframe["source_image"],
                             guide=warped["guide"], image_flow=warped["grid"])  # fmt: skip
        return {**out, "occlusion": warped["occlusion"], "flow": warped["flow"], "grid": warped["grid"]}

    def forward(self, inputs: dict[str, torch.Tensor | dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        keyframe = inputs.get("keyframe")
        if not isinstance(keyframe, dict):
            source = inputs["source_image"]
            assert isinstance(source, torch.Tensor)
            keyframe = self.encode_keyframe(source)
        geometry, detail = inputs["geometry"], inputs.get("detail")
        assert isinstance(geometry, torch.Tensor) and (detail is None or isinstance(detail, torch.Tensor))
        return self.generate(keyframe, self.warp(keyframe, geometry, detail))
