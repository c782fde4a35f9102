"""The trained talking-head model as a renderer (face-vid2vid: F once per keyframe, then M +
3D warp and G per frame)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry.body import body_field
from ..geometry.dense_expression import load_dense_map
from ..geometry.eyelids import EyeColours, keyframe_eye_colours, paint_closed_eyes
from ..geometry.inputs import KeyframeGeometry, keyframe_geometry, mesh_maps
from ..geometry.mesh import driving_mesh
from ..geometry.mouth_reference import paint_open_mouth
from ..motion.params import HeadPose, MotionParams, keypoints_from_motion
from ..ops.allocator import keep_frame_buffers
from ..packets import KeyframePacket
from .base import Renderer, keyframe_landmarks

__all__ = ["GEOMETRIC_VIEW_RAMP", "NeuralRenderer", "model_inputs"]

#: degrees of a viewer's turn over which a mesh model's picture goes from the generator's to
#: the geometry's where the keyframe saw the face (:func:`codec.models.mesh_head.geometric_view`):
#: a view slider leaving the front blends, never jumps
GEOMETRIC_VIEW_RAMP = 5.0


def model_inputs(keyframe: KeyframePacket, motion: MotionParams) -> dict[str, Any]:
    """The per-frame inputs of :class:`codec.models.TalkingHeadModel` for one motion of a keyframe.

    Returns (CPU tensors, batch of 1): ``kp_source``, ``kp_driving`` (1, K, 3) float32 in crop
    units, ``jacobian`` (1, 3, 3) float32 ``(s_s / s_d) R_s R_d^T``.
    """
    import torch

    from ..models.talking_head import pose_jacobian

    source = MotionParams(HeadPose.from_vector(keyframe.head_pose), np.zeros_like(keyframe.canonical_keypoints))
    kp_source = keypoints_from_motion(keyframe.canonical_keypoints, source).astype(np.float32)
    kp_driving = keypoints_from_motion(keyframe.canonical_keypoints, motion).astype(np.float32)
    jacobian = pose_jacobian(
        torch.from_numpy(source.head_pose.rotation()).float()[None],
        torch.from_numpy(motion.head_pose.rotation()).float()[None],
        torch.tensor([source.head_pose.scale]), torch.tensor([motion.head_pose.scale]),
    )  # fmt: skip
    return {"kp_source": torch.from_numpy(kp_source)[None], "kp_driving": torch.from_numpy(kp_driving)[None],
            "jacobian": jacobian}  # fmt: skip


class NeuralRenderer(Renderer):
    """The trained talking-head model; timed stages ``warp`` (inputs, M, 3D warp), ``generate``
    (G) and ``paint`` (a mouth received from the sender, :mod:`codec.geometry.mouth_reference`).
    A mesh model (``arch: mesh``) rebuilds each frame's mesh from the motion for its geometry
    (the keyframe's own mesh comes from the tracker, once per keyframe).

    Args:
        model: a :class:`codec.models.TalkingHeadModel` in eval mode.
        device: ``cpu`` or ``cuda``.
        fine_detail: a mesh model warps the keyframe image at full resolution around the eyes
            and the mouth (:mod:`codec.geometry.detail`: the irises follow the gaze, lip edges
            stay sharp), not only by its volume's grid upsampled.
    """

    name = "neural"
    prepared_state = ("_cache", "_geometry", "_eye_colours")

    def __init__(self, model: Any, device: str = "cpu", fine_detail: bool = True) -> None:
        super().__init__()
        self.fine_detail = fine_detail
        import torch

        self.model = model
        self.device = torch.device(device)
        self._cache: dict[str, Any] | None = None
        self.mesh = getattr(model.config, "arch", "keypoints") == "mesh"  #: geometry from the mesh
        self.dense_map = load_dense_map() if self.mesh else None
        self._geometry: KeyframeGeometry | None = None
        self._eye_colours: EyeColours | None = None  # the keyframe's, for painting closed eyes
        if self.device.type == "cpu":
            keep_frame_buffers()  # about 20 % of a CPU frame was page faults (see codec.ops.allocator)

    def _prepare(self) -> None:
        import torch

        assert self.keyframe is not None and self.keyframe_image is not None
        size = self.model.config.image_size
        image = self.keyframe_image
        if image.shape[0] != size:
            import cv2

            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        if self.mesh:  # geometry from the keyframe's own mesh; a keyframe without a face is shown as it is
            landmarks = keyframe_landmarks(image)
            self._geometry = keyframe_geometry(landmarks) if landmarks is not None else None
            geometry = self._geometry
            self._eye_colours = keyframe_eye_colours(self.keyframe_image, geometry.mesh) if geometry else None
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
        with torch.no_grad():
            self._cache = self.model.encode_keyframe(tensor)

    def _render(self, motion: MotionParams) -> np.ndarray:
        import torch

        assert self.keyframe is not None and self._cache is not None and self.keyframe_image is not None
        if self.mesh and self._geometry is None:
            return self.keyframe_image
        mesh = None  # the frame's rebuilt mesh (a mesh model): warped by, then painted on
        with torch.no_grad():
            with self.timer("warp"):
                if self._geometry is not None and self.dense_map is not None:
                    size = self.model.config.volume_size
                    body = body_field(self.body_nodes, size) if self.body_nodes is not None else None
                    image_size = self.model.config.image_size if self.fine_detail else None
                    mesh = driving_mesh(self._geometry.canonical.landmarks, motion, self.dense_map)
                    maps, fine = mesh_maps(self._geometry, mesh, size, image_size, body)
                    geometry = torch.from_numpy(maps)[None].to(self.device)
                    detail = torch.from_numpy(fine)[None].to(self.device) if fine is not None else None
                    warped = self.model.warp(self._cache, geometry, detail)
                else:
                    inputs = {k: v.to(self.device) for k, v in model_inputs(self.keyframe, motion).items()}
                    warped = self.model.warp(self._cache, inputs["kp_source"], inputs["kp_driving"],
                                             inputs["jacobian"])  # fmt: skip
            with self.timer("generate"):
                out = self.model.generate(self._cache, warped)
                if mesh is not None and self.view_turn > 0.0:
                    from ..models.mesh_head import geometric_view

                    out = geometric_view(out, warped["guide"], self.view_turn / GEOMETRIC_VIEW_RAMP)
        if not bool(torch.isfinite(out["image"]).all()):
            raise RuntimeError("the model produced non-finite pixels (NaN or inf)")
        image = out["image"][0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        size = self.keyframe.width
        if image.shape[0] != size:
            import cv2

            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        image = np.ascontiguousarray(image)
        if mesh is not None and self._geometry is not None:
            with self.timer("paint"):
                image = paint_closed_eyes(image, self.keyframe_image, self._geometry.mesh, mesh, self._eye_colours)
                if self.mouth is not None:
                    image = paint_open_mouth(image, self.mouth, mesh)
        return image
