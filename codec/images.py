"""Keyframe images: compressing a crop for a keyframe packet, and decoding it back."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["DEFAULT_IMAGE_QUALITY", "check_image_codec", "decode_image", "encode_image", "image_size"]

#: keyframe quality by default (WebP): on 21 shared clips' keyframe crops (256x256) 75 is 39.6 dB
#: at ~3.9 KB where 90 was 42.5 dB at 7.3 KB; the rendered picture, made by the model from the
#: keyframe, loses far less (see the README's RD table), and the keyframe is most of a short
#: call's video bytes
DEFAULT_IMAGE_QUALITY = 75

_FORMATS = {
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
    "png": (".png", cv2.IMWRITE_PNG_COMPRESSION),
}


def check_image_codec(codec: str) -> None:
    """Raises ValueError unless ``codec`` is ``jpeg``, ``webp`` or ``png``."""
    if codec not in _FORMATS:
        raise ValueError(f"image codec must be one of {sorted(_FORMATS)}, got {codec!r}")


def encode_image(image: np.ndarray, codec: str = "webp", quality: int = DEFAULT_IMAGE_QUALITY) -> bytes:
    """Compress an (H, W, 3) uint8 RGB image as ``jpeg``, ``webp`` or ``png`` (quality 1-100;
    ignored for png, which is lossless)."""
    check_image_codec(codec)
    extension, flag = _FORMATS[codec]
    value = 9 if codec == "png" else quality
    ok, buffer = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [flag, value])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {codec} image")
    return bytes(buffer.tobytes())


#: JPEG start-of-frame markers (SOF0-SOF15 but DHT, JPG and DAC), which hold the dimensions
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    offset = 2
    while offset + 9 <= len(data):
        if data[offset] != 0xFF:
            break
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _JPEG_SOF:
            height, width = (int.from_bytes(data[at : at + 2], "big") for at in (offset + 5, offset + 7))
            return width, height
        offset += 2 + int.from_bytes(data[offset + 2 : offset + 4], "big")
    raise ValueError("the JPEG data has no frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise ValueError("the WebP data has no frame header")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, JPEG or WebP image read from its header, without decoding it
    (so that a huge picture can be refused before it costs memory).

    Raises:
        ValueError: not one of these formats, or no readable header.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("the PNG data has no image header")
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_size(data)
    raise ValueError("the image header is not PNG, JPEG or WebP")


def decode_image(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB from compressed bytes; with ``size`` = (width, height), the header
    is checked first and the decoded picture must have exactly that size.

    Raises:
        ValueError: the bytes are not an image OpenCV can decode, or not of ``size``.
    """
    if size is not None and image_size(data) != size:
        width, height = image_size(data)
        raise ValueError(f"the image is {width}x{height}, not {size[0]}x{size[1]}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the image data does not decode")
    if size is not None and (image.shape[1], image.shape[0]) != size:
        raise ValueError(f"the image decodes to {image.shape[1]}x{image.shape[0]}, not {size[0]}x{size[1]}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
