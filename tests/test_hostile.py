"""Hostile input to the decoder: messages a peer can send to take a receiver down or poison
its state.  Each test is one attack; each ends with the decoder still rendering a legitimate
stream."""

from __future__ import annotations

import resource
import struct
import time
import zlib
from dataclasses import replace

import numpy as np
import pytest

from codec import Decoder
from codec.images import encode_image, image_size
from codec.packets import KeyframePacket, PacketError, decode_packet, encode_packet

from .data.make_packets import flat_png
from .test_codec_api import FakeClock, _stream


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` (1 bit per pixel, all zeros)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 200_000, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _with_image(keyframe: KeyframePacket, image: bytes, codec: str = "png", keyframe_id: int = 0) -> KeyframePacket:
    return KeyframePacket(keyframe_id, 0, codec, image, 256, 256, keyframe.canonical_keypoints, keyframe.head_pose,
                          keyframe.config)  # fmt: skip


def test_image_sizes_are_read_from_the_header() -> None:
    rng = np.random.default_rng(1)
    for width, height in ((256, 256), (4000, 16), (1, 1)):
        picture = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for codec in ("png", "jpeg", "webp", "avif"):
            assert image_size(encode_image(picture, codec)) == (width, height), codec
    extended = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x10\x00\x00\x00"
        + (299).to_bytes(3, "little")
        + (19).to_bytes(3, "little")
    )
    assert image_size(extended) == (300, 20)
    assert image_size(png_claiming(20000, 20000)) == (20000, 20000)
    for bad, message in ((b"\x89PNG\r\n\x1a\n", "the PNG data has no image header"),
                         (b"\xff\xd8\xff\xd9", "the JPEG data has no frame header"),
                         (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "the WebP data has no frame header"),
                         (b"\x00\x00\x00\x10ftypavif\x00\x00\x00\x00", "the AVIF data has no image size"),
                         (b"GIF89a", "the image header is not PNG, JPEG, WebP or AVIF")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^{message}$"):
            image_size(bad)


def test_a_small_keyframe_claiming_a_huge_picture_is_refused_before_decoding() -> None:
    """A 49 KB keyframe whose PNG header said 20000x20000 made the receiver allocate 3 GB."""
    keyframe, motion = _stream(3)
    bomb = encode_packet(_with_image(keyframe, png_claiming(20000, 20000)))
    assert len(bomb) < 2000
    with pytest.raises(PacketError, match=r"^the png image is 20000x20000, the keyframe says 256x256$"):
        decode_packet(bomb)
    decoder = Decoder("classical")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    assert decoder.decode(bomb) is None
    assert time.perf_counter() - start < 0.5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KB: nothing was decoded
    assert decoder.stats.bad_packets == 1 and decoder.keyframe is None
    # the legitimate stream still plays
    decoder.decode(encode_packet(keyframe))
    assert decoder.decode(encode_packet(motion[0])) is not None


@pytest.mark.parametrize(("width", "height"), [(1, 1), (4000, 16), (128, 128)])
def test_a_keyframe_image_must_have_the_keyframes_size(width: int, height: int) -> None:
    keyframe, _ = _stream(1)
    image = encode_image(np.full((height, width, 3), 90, np.uint8), "webp")
    with pytest.raises(PacketError, match=f"^the webp image is {width}x{height}, the keyframe says 256x256$"):
        decode_packet(encode_packet(_with_image(keyframe, image, "webp")))


def test_keyframe_sides_are_bounded() -> None:
    keyframe, _ = _stream(1)
    big = KeyframePacket(0, 0, "png", png_claiming(2048, 2048), 2048, 2048, keyframe.canonical_keypoints,
                         keyframe.head_pose, keyframe.config)  # fmt: skip
    with pytest.raises(PacketError, match=r"^image width=2048 is outside \[16, 1024\]$"):
        decode_packet(encode_packet(big))


def test_a_corrupt_keyframe_is_not_used_and_is_asked_for_again() -> None:
    """Its image failed to decode, yet motion naming it was rendered against the previous face
    (same id) and no keyframe was requested."""
    clock = FakeClock()
    decoder = Decoder("classical", clock=clock)
    good, motion = _stream(9)
    decoder.decode(encode_packet(good))
    first = decoder.decode(encode_packet(motion[0]))
    assert first is not None
    decoder.requests()
    png = bytearray(flat_png(256, 256, 40))
    png[60:120] = b"\xff" * 60  # the header says 256x256; the pixels are garbage
    clock.now += 1.0
    assert decoder.decode(encode_packet(_with_image(good, bytes(png)))) is None
    assert decoder.stats.bad_packets == 1
    assert decoder.stats.last_error.startswith("keyframe 0: its png image does not decode")
    assert decoder.keyframe is not None and decoder.keyframe.image == good.image  # not replaced ...
    assert decoder.decode(encode_packet(motion[1])) is None  # ... but motion naming id 0 is not painted on it
    requests = [decode_packet(r) for r in decoder.requests()]
    assert [(r.type.value, r.reason) for r in requests] == [("keyframe_request", "keyframe 0 is unusable")]
    # the sender's new keyframe recovers the stream
    replacement = _with_image(good, flat_png(256, 256, 200))
    decoder.decode(encode_packet(replacement))
    picture = decoder.decode(encode_packet(motion[8]))  # the next absolute packet
    assert picture is not None and int(picture.mean()) == 200


def test_a_keyframe_that_comes_mid_stream_does_not_stop_the_motion_on_the_previous_one() -> None:
    """The sender animates the previous keyframe until it knows the new one is here, and its
    numbering goes on across keyframes: a new keyframe must not restart the receiver's."""
    clock = FakeClock()
    decoder = Decoder(None, clock=clock)
    keyframe, motion = _stream(24)
    decoder.receive(encode_packet(keyframe))
    stamps = []
    for index, packet in enumerate(motion):
        if index == 18:  # numbers 0-17 came: beyond one wrap of the 16 sequence numbers
            decoder.receive(encode_packet(replace(keyframe, keyframe_id=1)))
        decoded = decoder.receive(encode_packet(packet))
        assert decoded is not None, f"motion packet {index} was refused"
        stamps.append(decoded.timestamp_ms)
        clock.now += 0.04
    assert stamps == [40 * index for index in range(24)]
    assert decoder.stats.undecodable == decoder.stats.dropped_stale == decoder.motion_decoder.concealed == 0


def test_the_senders_own_decoder_reads_batches_in_order_not_as_losses() -> None:
    """The closed loop hands its decoder the messages in batches: with the clock, a batch 0.6 s
    after the last would read as 16 packets lost (sequence numbers wrap at 16)."""
    clock = FakeClock()
    decoders = {"in order": Decoder(None, clock=clock, in_order=True), "clocked": Decoder(None, clock=clock)}
    keyframe, motion = _stream(24)
    for decoder in decoders.values():
        decoder.receive(encode_packet(keyframe))
    for start in (0, 12):
        clock.now += 0.6
        for packet in motion[start : start + 12]:
            for decoder in decoders.values():
                decoder.receive(encode_packet(packet))
    in_order, clocked = decoders["in order"], decoders["clocked"]
    assert in_order.stats.lost_motion == 0 and in_order.motion is not None and in_order.motion.timestamp_ms == 40 * 23
    assert clocked.stats.lost_motion == 16  # what the flag is for


def test_stray_sequence_numbers_do_not_freeze_the_stream() -> None:
    """A duplicate or late packet is dropped; a new keyframe starts the numbering afresh."""
    clock = FakeClock()
    decoder = Decoder(None, clock=clock)
    keyframe, motion = _stream(48)
    decoder.receive(encode_packet(keyframe))
    for packet in motion[:4]:
        assert decoder.receive(encode_packet(packet)) is not None
        clock.now += 0.04
    assert decoder.receive(encode_packet(motion[3])) is None and decoder.stats.dropped_stale == 1  # duplicate
    assert decoder.receive(encode_packet(motion[1])) is None and decoder.stats.dropped_stale == 2  # late
    for packet in motion[4:8]:
        assert decoder.receive(encode_packet(packet)) is not None  # the stream goes on
        clock.now += 0.04
    decoder.receive(encode_packet(keyframe))
    assert decoder.receive(encode_packet(motion[0])) is not None
