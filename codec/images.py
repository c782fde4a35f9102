"""Keyframe images: compressing a crop for a keyframe packet, and decoding it back."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "DEFAULT_IMAGE_CODEC",
    "DEFAULT_IMAGE_QUALITY",
    "IMAGE_CODECS",
    "check_image_codec",
    "decode_image",
    "default_quality",
    "encode_image",
    "image_size",
]

#: keyframe image format by default: AVIF (an AV1 intra frame) is ~20 % smaller than WebP at
#: the same PSNR on face crops (30 first frames of the shared train clips, 256x256: AVIF 50 is
#: 38.4 dB at 3.2 KB where WebP 75 is 38.3 dB at 4.0 KB), and the keyframe is most of a call's
#: video bytes
DEFAULT_IMAGE_CODEC = "avif"

#: keyframe quality by default, per format (each format's own 1-100 scale): AVIF 50 and WebP 75
#: are the same 38.3-38.4 dB on those crops (WebP 90 is 42.3 dB at 7.8 KB); the rendered
#: picture, made by the model from the keyframe, gains far less from a better keyframe (see the
#: README's RD table)
DEFAULT_IMAGE_QUALITY = {"avif": 50, "webp": 75, "jpeg": 85, "png": 100}

#: libavif's encoder speed (0 slowest .. 10): 6 encodes a 256x256 crop in ~30 ms on one core,
#: 8 % larger than speed 3 (~300 ms)
AVIF_SPEED = 6

_FORMATS = {
    "avif": (".avif", cv2.IMWRITE_AVIF_QUALITY),
    "jpeg": (".jpg", cv2.IMWRITE_JPEG_QUALITY),
    "webp": (".webp", cv2.IMWRITE_WEBP_QUALITY),
    "png": (".png", cv2.IMWRITE_PNG_COMPRESSION),
}
#: the formats a keyframe may use
IMAGE_CODECS = tuple(sorted(_FORMATS))


def check_image_codec(codec: str) -> None:
    """Raises ValueError unless ``codec`` is ``avif``, ``jpeg``, ``webp`` or ``png``."""
    if codec not in _FORMATS:
        raise ValueError(f"image codec must be one of {sorted(_FORMATS)}, got {codec!r}")


def default_quality(codec: str) -> int:
    """The default quality of an image codec (its own 1-100 scale)."""
    check_image_codec(codec)
    return DEFAULT_IMAGE_QUALITY[codec]


def encode_image(image: np.ndarray, codec: str = DEFAULT_IMAGE_CODEC, quality: int | None = None) -> bytes:
    """Compress an (H, W, 3) uint8 RGB image as ``avif``, ``jpeg``, ``webp`` or ``png``
    (quality 1-100 on the format's own scale, default :data:`DEFAULT_IMAGE_QUALITY`; ignored
    for png, which is lossless).

    Raises:
        ValueError: unknown codec, or quality outside 1-100.
        RuntimeError: this OpenCV cannot write the format (AVIF needs OpenCV built with libavif).
    """
    check_image_codec(codec)
    quality = default_quality(codec) if quality is None else quality
    if not 1 <= quality <= 100:
        raise ValueError(f"image quality must be in 1..100, got {quality}")
    extension, flag = _FORMATS[codec]
    options = [flag, 9 if codec == "png" else quality]
    if codec == "avif":
        options += [cv2.IMWRITE_AVIF_SPEED, AVIF_SPEED]
    try:
        ok, buffer = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options)
    except cv2.error:
        ok = False
    if not ok:
        hint = " (this OpenCV has no AVIF: install opencv-contrib-python>=5, or use webp)" if codec == "avif" else ""
        raise RuntimeError(f"OpenCV could not encode a {codec} image{hint}")
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


def _boxes(data: bytes, start: int, end: int) -> dict[bytes, tuple[int, int]]:
    """ISO BMFF boxes from ``start`` to ``end``: type -> (payload start, box end), first of each."""
    found: dict[bytes, tuple[int, int]] = {}
    offset = start
    while offset + 8 <= end:
        size, kind, header = int.from_bytes(data[offset : offset + 4], "big"), data[offset + 4 : offset + 8], 8
        if size == 1:  # a 64-bit size follows
            if offset + 16 > end:
                break
            size, header = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif size == 0:  # to the end
            size = end - offset
        if size < header or offset + size > end:
            break
        found.setdefault(kind, (offset + header, offset + size))
        offset += size
    return found


def _avif_size(data: bytes) -> tuple[int, int]:
    """The largest image spatial extent (``ispe``) of an AVIF file: the picture and any tile."""
    meta = _boxes(data, 0, len(data)).get(b"meta")
    iprp = _boxes(data, meta[0] + 4, meta[1]).get(b"iprp") if meta else None  # meta is a full box
    ipco = _boxes(data, *iprp).get(b"ipco") if iprp else None
    sizes = []
    offset = ipco[0] if ipco else len(data)
    while ipco and offset + 8 <= ipco[1]:
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size < 8 or offset + size > ipco[1]:
            break
        if data[offset + 4 : offset + 8] == b"ispe" and size >= 20:
            sizes.append((int.from_bytes(data[offset + 12 : offset + 16], "big"),
                          int.from_bytes(data[offset + 16 : offset + 20], "big")))  # fmt: skip
        offset += size
    if not sizes:
        raise ValueError("the AVIF data has no image size")
    return max(width for width, _ in sizes), max(height for _, height in sizes)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, JPEG, WebP or AVIF image read from its header, without decoding it
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
    if data[4:12] == b"ftypavif":
        return _avif_size(data)
    raise ValueError("the image header is not PNG, JPEG, WebP or AVIF")


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
