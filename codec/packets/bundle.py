"""Several messages in one transport unit (e.g. the motion of the frames that ride on one audio
RTP packet, see :data:`MOTION_EXTENSION_URI`).

Every message of this codec is one msgpack object, so a bundle is the plain concatenation of
its messages: no byte is spent on lengths, and :func:`split_bundle` finds the boundaries with
msgpack's own framing.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgpack

from .errors import PacketError

__all__ = ["MAX_BUNDLE_BYTES", "MOTION_EXTENSION_URI", "bundle_messages", "split_bundle"]

#: RFC 8285 header extension (two-byte form: at most 255 bytes) that carries motion messages on
#: the call's audio RTP packets; negotiated in the SDP under this URI.
MOTION_EXTENSION_URI = "urn:x-facevc:rtp-hdrext:motion"
#: largest bundle (the data of one two-byte-header extension element)
MAX_BUNDLE_BYTES = 255
#: most messages one bundle may hold (bounds a hostile bundle's work)
MAX_BUNDLE_MESSAGES = 32


def bundle_messages(messages: Sequence[bytes]) -> bytes:
    """Concatenate whole messages.

    Raises:
        ValueError: the bundle would exceed :data:`MAX_BUNDLE_BYTES` or hold more than
            :data:`MAX_BUNDLE_MESSAGES` messages (the caller chooses what to leave out).
    """
    if len(messages) > MAX_BUNDLE_MESSAGES:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_MESSAGES} messages, got {len(messages)}")
    data = b"".join(messages)
    if len(data) > MAX_BUNDLE_BYTES:
        raise ValueError(f"a bundle holds at most {MAX_BUNDLE_BYTES} bytes, got {len(data)}")
    return data


def split_bundle(data: bytes) -> list[bytes]:
    """The messages of a bundle, as bytes (each still to be decoded and validated).

    Raises:
        PacketError: the data is not a sequence of whole msgpack objects, or holds too many.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise PacketError(f"a bundle of {len(data)} bytes exceeds {MAX_BUNDLE_BYTES}")
    unpacker = msgpack.Unpacker(
        raw=True, max_buffer_size=MAX_BUNDLE_BYTES, max_array_len=64, max_map_len=32, max_str_len=255,
        max_bin_len=MAX_BUNDLE_BYTES, max_ext_len=MAX_BUNDLE_BYTES,
    )  # fmt: skip
    unpacker.feed(data)
    messages: list[bytes] = []
    start = 0
    try:
        for _ in unpacker:
            end = unpacker.tell()
            messages.append(bytes(data[start:end]))
            start = end
            if len(messages) > MAX_BUNDLE_MESSAGES:
                raise PacketError(f"a bundle holds more than {MAX_BUNDLE_MESSAGES} messages")
    except PacketError:
        raise
    except Exception as exc:  # msgpack's many error types: all mean "not a bundle"
        raise PacketError(f"bundle is not a sequence of msgpack messages ({type(exc).__name__})") from exc
    if start != len(data):
        raise PacketError(f"bundle ends inside a message ({len(data) - start} bytes left over)")
    return messages
