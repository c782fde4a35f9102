from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.export import AppearancePart, FramePart, example_inputs, export_onnx
from codec.models.config import load_config
from codec.models.talking_head import TalkingHeadModel

ort = pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime (the dev extra)")


def test_onnx_matches_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TalkingHeadModel(load_config("tiny")).eval()
    appearance_path, frame_path = export_onnx(model, tmp_path)
    image, kp_source, kp_driving, jacobian = example_inputs(model)
    volume, small = ort.InferenceSession(str(appearance_path)).run(None, {"image": image.numpy()})
    with torch.no_grad():
        torch_volume, torch_small = AppearancePart(model)(image)
        reference = FramePart(model)(torch_volume, torch_small, image, kp_source, kp_driving, jacobian).numpy()
    np.testing.assert_allclose(volume, torch_volume.numpy(), atol=1e-4)
    frame = ort.InferenceSession(str(frame_path)).run(None, {
        "volume": volume, "source_small": small, "source_image": image.numpy(), "kp_source": kp_source.numpy(),
        "kp_driving": kp_driving.numpy(), "jacobian": jacobian.numpy(),
    })[0]  # fmt: skip
    assert frame.shape == (1, 3, 256, 256)
    np.testing.assert_allclose(frame, reference, atol=1e-3)
    assert model.warp_backend == "auto"  # export restored the model's own warp backend
