"""Renderers: keyframe + decoded motion -> picture, with free view.

The trained model (:class:`NeuralRenderer`, the default) and the classical warp
(:class:`ClassicalRenderer`, the fallback when no weights load) share one small base,
:class:`Renderer`.
"""

from __future__ import annotations

import logging

from .base import Renderer, Vector3, decode_keyframe_image
from .classical import ClassicalRenderer
from .neural import NeuralRenderer, model_inputs

__all__ = [
    "DEFAULT_MODEL",
    "ClassicalRenderer",
    "NeuralRenderer",
    "Renderer",
    "Vector3",
    "create_renderer",
    "decode_keyframe_image",
    "model_inputs",
]

log = logging.getLogger(__name__)

#: the released model a decoder paints with unless told otherwise (a zoo name); the command
#: lines repeat it as a literal (they import nothing heavy before parsing)
DEFAULT_MODEL = "mesh"


def create_renderer(model: str = DEFAULT_MODEL, device: str = "auto") -> Renderer:
    """The neural renderer with released weights ``model`` (a zoo name or a ``.pth`` file), or
    the classical fallback (with a warning saying why) when they cannot be loaded;
    ``model="classical"`` asks for the fallback."""
    if model == "classical":
        return ClassicalRenderer()
    import torch

    from ..zoo import ModelLoadError, load_model

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return NeuralRenderer(load_model(model, device), device)
    except (ModelLoadError, ValueError) as exc:
        log.warning("using the classical renderer: %s", exc)
        return ClassicalRenderer()
