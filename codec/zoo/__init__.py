"""Released weights: a small table of named models, files named ``{arch}-{version}-{sha8}.pth``.

Weights are trained by this project (``python -m codec.train``), stored in fp16 and loaded
with ``torch.load(weights_only=True)``; a key-renaming shim keeps older files loadable.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..models.build import build_model
from ..models.config import ModelConfig, load_config
from ..models.mesh_head import MeshTalkingHeadModel
from ..models.talking_head import TalkingHeadModel

__all__ = ["ModelLoadError", "available_models", "load_model", "load_weights", "weights_path"]

#: (old prefix, new prefix) of state-dict keys renamed since the first release
_RENAMED_KEYS: tuple[tuple[str, str], ...] = ()


class ModelLoadError(RuntimeError):
    """Weights are missing, damaged or do not fit the model; the message says which and why."""


def _table() -> dict[str, dict[str, Any]]:
    return json.loads(resources.files("codec.zoo").joinpath("models.json").read_text())


def available_models() -> list[str]:
    """Names of the released models in this install."""
    return sorted(_table())


def weights_path(name: str) -> Path:
    """The weight file of a released model.

    Raises:
        ModelLoadError: unknown name or missing file.
    """
    table = _table()
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise ModelLoadError(f"no released model {name!r} (released: {known}); train one with `python -m codec.train`")
    path = Path(str(resources.files("codec.zoo").joinpath("weights", table[name]["file"])))
    if not path.is_file():
        raise ModelLoadError(f"the weights of {name!r} ({path}) are missing from this install")
    return path


def _rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for old, new in _RENAMED_KEYS:
            if key.startswith(old):
                key = new + key[len(old) :]
        renamed[key] = value
    return renamed


def _payload(name_or_path: str | Path) -> tuple[Path, Any]:
    path = Path(name_or_path)
    if not path.suffix:
        path = weights_path(str(name_or_path))
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such weight file")
    blob = path.read_bytes()
    expected = path.stem.rsplit("-", 1)[-1]
    if len(expected) == 8 and all(c in "0123456789abcdef" for c in expected):
        actual = hashlib.sha256(blob).hexdigest()[:8]
        if actual != expected:
            raise ModelLoadError(f"{path}: sha256 starts with {actual}, the name says {expected}: the file is damaged")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelLoadError(f"{path}: not a loadable weight file ({type(exc).__name__}: {exc})") from exc
    return path, payload


def load_weights(name_or_path: str | Path, config: ModelConfig | None = None) -> dict[str, torch.Tensor]:
    """A float32 state dict from a zoo name or a ``.pth`` file; the file's sha256 must start
    with the 8 hex digits at the end of its name (``...-{sha8}.pth``) when it has them."""
    return _state_dict(*_payload(name_or_path))


def _state_dict(path: Path, payload: Any) -> dict[str, torch.Tensor]:
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: holds no state dict")
    return {k: v.float() for k, v in _rename(state).items()}


def load_model(name: str = "mesh", device: str = "cpu") -> TalkingHeadModel | MeshTalkingHeadModel:
    """A released model, in eval mode: a zoo name, or the path of a weight file written by
    ``python -m codec.train release`` (which names its model size).

    Raises:
        ModelLoadError: unknown, missing or incompatible weights.
    """
    path, payload = _payload(name)  # an unknown name or a missing file raises here, saying so
    if Path(name).suffix:
        size = payload.get("config") if isinstance(payload, dict) else None
        if not isinstance(size, str):
            raise ModelLoadError(
                f"{path}: does not say its model size (not written by `python -m codec.train release`)"
            )
    else:
        size = _table()[name]["config"]
    try:
        config = load_config(size)
    except (KeyError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unknown model size {size!r}") from exc
    model = build_model(config)
    state = _state_dict(path, payload)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"the weights of {name!r} do not fit the {config.name} model: {exc}") from exc
    return model.eval().to(device)
