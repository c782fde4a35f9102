"""Turning keyframes and decoded motion into frames, with free view.

Two renderers share one small interface: the trained model (the default) and the classical
warp (the fallback when no weights load, and a benchmark contender).  Both accept a viewer
rotation and translation composed with the sent head pose (``R_u R_d``, ``t_u + t_d``).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from codec.images import decode_image
from codec.motion.params import HeadPose, MotionParams, compose_view, keypoints_from_motion
from codec.packets import DecodedMotion, KeyframePacket

__all__ = [
    "ClassicalFallback",
    "NeuralRenderer",
    "Renderer",
    "create_renderer",
    "decode_keyframe_image",
    "model_inputs",
]

log = logging.getLogger(__name__)

Vector3 = tuple[float, float, float]


def decode_keyframe_image(keyframe: KeyframePacket) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a keyframe's image.

    Raises:
        ValueError: the image does not decode.
    """
    try:
        return decode_image(keyframe.image)
    except ValueError as exc:
        raise ValueError(f"keyframe {keyframe.keyframe_id}: its {keyframe.image_codec} image does not decode") from exc


def model_inputs(keyframe: KeyframePacket, motion: MotionParams) -> dict[str, Any]:
    """The per-frame inputs of :class:`codec.models.TalkingHeadModel` for one motion of a keyframe.

    Returns (CPU tensors, batch of 1): ``kp_source``, ``kp_driving`` (1, K, 3) float32 in crop
    units, ``jacobian`` (1, 3, 3) float32 ``(s_s / s_d) R_s R_d^T``.
    """
    import torch

    from codec.models.talking_head import pose_jacobian

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


class Renderer(ABC):
    """Paints frames of the current keyframe's person."""

    name: str

    def __init__(self) -> None:
        self.keyframe: KeyframePacket | None = None
        self.keyframe_image: np.ndarray | None = None

    def set_keyframe(self, keyframe: KeyframePacket) -> None:
        """Prepare a new keyframe (once; the per-frame work reuses it)."""
        self.keyframe = keyframe
        self.keyframe_image = decode_keyframe_image(keyframe)
        self._prepare()

    @abstractmethod
    def _prepare(self) -> None: ...

    @abstractmethod
    def _render(self, motion: MotionParams) -> np.ndarray: ...

    def render(
        self,
        motion: DecodedMotion,
        user_rotation: Vector3 = (0.0, 0.0, 0.0),
        user_translation: Vector3 = (0.0, 0.0, 0.0),
    ) -> np.ndarray:
        """(S, S, 3) uint8 RGB of one frame, seen from the viewer's rotation and translation."""
        if motion.keyframe is not self.keyframe:  # another keyframe (ids repeat across streams)
            self.set_keyframe(motion.keyframe)
        return self._render(compose_view(motion.motion, user_rotation, user_translation))

    def __call__(self, keyframe: KeyframePacket, keyframe_image: np.ndarray, motion: DecodedMotion) -> np.ndarray:
        """The benchmark's synthesizer interface."""
        return self.render(motion)


class ClassicalFallback(Renderer):
    """The classical piecewise-affine warp (no weights needed)."""

    name = "classical"

    def __init__(self) -> None:
        super().__init__()
        from codec.render.classical import ClassicalRenderer

        self._classical = ClassicalRenderer()
        self._setup: object | None = None

    def _prepare(self) -> None:
        assert self.keyframe_image is not None
        self._setup = self._classical.prepare(self.keyframe_image)

    def _render(self, motion: MotionParams) -> np.ndarray:
        assert self.keyframe_image is not None
        if self._setup is None:  # no face in the keyframe: nothing to move
            return self.keyframe_image
        return self._classical.warp.render(self._setup, motion)  # type: ignore[arg-type]


class NeuralRenderer(Renderer):
    """The trained talking-head model.

    Args:
        model: a :class:`codec.models.TalkingHeadModel` in eval mode.
        device: ``cpu`` or ``cuda``.
    """

    name = "neural"

    def __init__(self, model: object, device: str = "cpu") -> None:
        super().__init__()
        import torch

        self.model = model
        self.device = torch.device(device)
        self._cache: dict[str, object] | None = None

    def _prepare(self) -> None:
        import torch

        assert self.keyframe is not None and self.keyframe_image is not None
        size = self.model.config.image_size  # type: ignore[attr-defined]
        image = self.keyframe_image
        if image.shape[0] != size:
            import cv2

            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
        with torch.no_grad():
            self._cache = self.model.encode_keyframe(tensor)  # type: ignore[attr-defined]

    def _render(self, motion: MotionParams) -> np.ndarray:
        import torch

        assert self.keyframe is not None and self._cache is not None
        inputs = {k: v.to(self.device) for k, v in model_inputs(self.keyframe, motion).items()}
        with torch.no_grad():
            out = self.model({"keyframe": self._cache, **inputs})  # type: ignore[operator]
        if not bool(torch.isfinite(out["image"]).all()):
            raise RuntimeError("the model produced non-finite pixels (NaN or inf)")
        image = out["image"][0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
        size = self.keyframe.width
        if image.shape[0] != size:
            import cv2

            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        return np.ascontiguousarray(image)


def create_renderer(model: str = "tiny", device: str = "auto") -> Renderer:
    """The neural renderer with released weights ``model``, or the classical fallback (with a
    warning saying why) when they cannot be loaded; ``model="classical"`` asks for the fallback."""
    if model == "classical":
        return ClassicalFallback()
    import torch

    from codec.zoo import ModelLoadError, load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return NeuralRenderer(load_model(model, device), device)
    except (ModelLoadError, ValueError) as exc:
        log.warning("using the classical renderer: %s", exc)
        return ClassicalFallback()
