"""Keyframe images: compressing a crop for a keyframe packet, and decoding it back."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["decode_image", "encode_image"]

_FORMATS = {
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
    "png": (".png", cv2.IMWRITE_PNG_COMPRESSION),
}


def encode_image(image: np.ndarray, codec: str = "webp", quality: int = 90) -> bytes:
    """Compress an (H, W, 3) uint8 RGB image as ``jpeg``, ``webp`` or ``png`` (quality 1-100;
    ignored for png, which is lossless)."""
    if codec not in _FORMATS:
        raise ValueError(f"image codec must be one of {sorted(_FORMATS)}, got {codec!r}")
    extension, flag = _FORMATS[codec]
    value = 9 if codec == "png" else quality
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [flag, value])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {codec} image")
    return bytes(buffer.tobytes())


def decode_image(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB from compressed bytes.

    Raises:
        ValueError: the bytes are not an image OpenCV can decode.
    """
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the image data does not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
