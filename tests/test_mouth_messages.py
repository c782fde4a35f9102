"""Open mouths sent by the sender (codec.mouth_sender), carried as mouth messages and painted by
the receiver into the pictures whose rebuilt mesh opens its mouth (codec.geometry.mouth_reference)."""

from __future__ import annotations

import re

import msgpack
import numpy as np
import pytest

from codec import Decoder, Encoder
from codec.geometry.flow import MOUTH_RING
from codec.geometry.mouth_reference import (
    MOUTH_CORNER_IDS,
    PAINT_FROM_OPENING,
    PAINT_FULL_OPENING,
    MouthReference,
    cut_mouth,
    mouth_opening,
    paint_mouth,
    paint_open_mouth,
)
from codec.images import encode_image
from codec.motion.params import MotionParams
from codec.mouth_sender import MOUTH_MARGIN, MOUTH_MIN_GAP, WIDER_MARGIN, MouthSender
from codec.packets import (
    PACKET_VERSION,
    ControlPacket,
    ControlType,
    KeyframePacket,
    MouthPacket,
    PacketError,
    PacketKind,
    StreamConfig,
    decode_packet,
    encode_packet,
    packet_kind,
)
from codec.packets.messages import ring_on_wire
from codec.render.base import Renderer

from .conftest import shared_frames
from .test_codec_api import _stream

SIZE = 256


def _texture(seed: int) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    smooth = np.stack([np.sin(xs / 5.0 + seed), np.cos(ys / 4.0 - seed), np.sin((xs + ys) / 7.0)], -1) * 100 + 128
    return smooth.astype(np.uint8)


def _mouth(half_gap: float, centre: tuple[float, float] = (128.0, 160.0), half_width: float = 30.0) -> np.ndarray:
    """(478, 2) pixel landmarks: the inner lip line an ellipse, the corners 4 px beyond its ends
    (so the opening is ``2 * half_gap / (2 * half_width + 8)``), the rest at the centre."""
    points = np.tile(np.asarray(centre, np.float64), (478, 1))
    angles = np.linspace(np.pi, -np.pi, len(MOUTH_RING), endpoint=False)
    ring = np.stack([centre[0] + half_width * np.cos(angles), centre[1] + half_gap * np.sin(angles)], axis=1)
    points[list(MOUTH_RING)] = ring
    left, right = MOUTH_CORNER_IDS
    points[left] = (centre[0] - half_width - 4, centre[1])
    points[right] = (centre[0] + half_width + 4, centre[1])
    return points


def _units(pixels: np.ndarray) -> np.ndarray:
    return pixels / (SIZE / 2) - 1.0


def _packet(width: int = 40, height: int = 20) -> MouthPacket:
    window = _texture(1)[:height, :width]
    ring = np.stack([np.linspace(2, width - 2, 20), np.full(20, height / 2)], axis=1)
    ring[::2, 1] += 0.3
    return MouthPacket(3, "webp", encode_image(window, "webp", 80), width, height, ring_on_wire(ring, width, height))


def test_a_mouth_message_survives_the_wire_and_says_its_kind() -> None:
    packet = _packet()
    message = encode_packet(packet)
    assert packet_kind(message) is PacketKind.MOUTH
    assert decode_packet(message) == packet
    assert len(message) < 400  # the window's WebP and 40 bytes of lip line
    assert np.abs(packet.ring[:, 0] - np.linspace(2, 38, 20)).max() <= 40 / 255 / 2 + 1e-5  # half a step


def _tampered(without: str = "", **fields: object) -> bytes:
    """A mouth message with ``fields`` changed (or added) and the field ``without`` left out."""
    body = msgpack.unpackb(encode_packet(_packet()), raw=False)[2]
    body.update(fields)
    body.pop(without, None)
    return msgpack.packb([PACKET_VERSION, int(PacketKind.MOUTH), body], use_bin_type=True)


def test_damaged_mouth_messages_are_refused_with_what_is_wrong() -> None:
    cases = {
        "the inner lip line must be 20 x 2 bytes, got 39": _tampered(ring=b"\x00" * 39),
        "the webp image is 40x20, the mouth says 41x20": _tampered(w=41),
        "mouth has unknown field(s) extra": _tampered(extra=1),
        "mouth lacks field(s) ring": _tampered(without="ring"),
        "keyframe id=300 is outside [0, 255]": _tampered(kf=300),
    }
    for reason, message in cases.items():
        with pytest.raises(PacketError, match=f"^{re.escape(reason)}$"):
            decode_packet(message)


class _Recorder(Renderer):
    """Paints the keyframe image; notes the mouth it was given for each frame."""

    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.mouths: list[MouthReference | None] = []

    def _prepare(self) -> None:
        pass

    def _render(self, motion: MotionParams) -> np.ndarray:
        assert self.keyframe_image is not None
        self.mouths.append(self.mouth)
        return self.keyframe_image


def _keyframe_of(keyframe: KeyframePacket, keyframe_id: int) -> KeyframePacket:
    return KeyframePacket(keyframe_id, 0, keyframe.image_codec, keyframe.image, keyframe.width, keyframe.height,
                          keyframe.canonical_keypoints, keyframe.head_pose, StreamConfig())  # fmt: skip


def test_the_decoder_holds_a_keyframes_mouth_until_a_new_keyframe_of_its_id() -> None:
    keyframe, motion = _stream(4)
    renderer = _Recorder()
    decoder = Decoder(renderer)
    decoder.decode(encode_packet(_packet()))  # for keyframe 3, not held
    assert decoder.stats.bad_packets == 1 and decoder.stats.last_error == "a mouth for keyframe 3, which is not held"
    decoder.decode(encode_packet(keyframe))
    decoder.decode(encode_packet(motion[0]))
    mouth = _packet()
    decoder.decode(encode_packet(MouthPacket(0, mouth.image_codec, mouth.image, 40, 20, mouth.ring)))
    held = decoder.mouth_of(decoder.motion_decoder.keyframe(0))  # type: ignore[arg-type]
    assert held is not None and held.image.shape == (20, 40, 3) and np.array_equal(held.ring, mouth.ring)
    assert decoder.stats.mouth_packets == 1 and decoder.stats.as_dict()["mouths"] == 1
    decoder.decode(encode_packet(motion[1]))
    decoder.decode(encode_packet(_keyframe_of(keyframe, 0)))  # a new keyframe 0: the mouth was the old one's
    assert decoder.mouth_of(decoder.motion_decoder.keyframe(0)) is None  # type: ignore[arg-type]
    assert renderer.mouths == [None, held]  # painted without, then with it


def test_a_mouth_is_painted_where_the_frames_mesh_opens_and_fades_in() -> None:
    crop, picture = _texture(0), _texture(3)
    reference = cut_mouth(crop, _mouth(12.0))
    closed = _units(_mouth(0.0))
    assert paint_open_mouth(picture, reference, closed) is picture
    full_gap = PAINT_FULL_OPENING * 68 / 2 + 1  # an opening above the full strength's
    opened = _mouth(full_gap)
    painted = paint_open_mouth(picture, reference, _units(opened))
    assert np.array_equal(painted, paint_mouth(picture, reference, opened))
    assert mouth_opening(opened) > PAINT_FULL_OPENING
    halfway = _mouth((PAINT_FROM_OPENING + PAINT_FULL_OPENING) / 2 * 68 / 2)
    faded = paint_open_mouth(picture, reference, _units(halfway)).astype(float)
    full = paint_mouth(picture, reference, halfway).astype(float)
    changed = np.abs(full - picture).sum(axis=2) > 30
    assert changed.sum() > 50
    share = (faded - picture)[changed].sum() / (full - picture)[changed].sum()
    assert share == pytest.approx(0.5, abs=0.03)


def test_the_sender_sends_a_mouth_only_when_it_opens_wider_than_the_receiver_holds() -> None:
    crop = _texture(0)
    sender = MouthSender()
    closed, open_a_bit, open_wide = (_units(_mouth(opening * 34)) for opening in (0.03, 0.09, 0.2))
    assert not sender.wanted(5, open_wide, 0.0)  # no keyframe of that id was sent
    sender.keyframe_sent(5, closed)
    assert mouth_opening(open_a_bit) < mouth_opening(closed) + MOUTH_MARGIN < mouth_opening(open_wide)
    assert not sender.wanted(5, open_a_bit, 0.0)
    assert sender.wanted(5, open_wide, 0.0)
    packet = sender.packet(5, crop, open_wide, 0.0, "avif", 50)
    assert packet is not None and packet.keyframe_id == 5 and sender.sent == 1
    assert decode_packet(encode_packet(packet)) == packet  # the lip line on the wire's steps
    somewhat_wider, wider = (_units(_mouth(opening * 34)) for opening in (0.3, 0.4))
    assert mouth_opening(somewhat_wider) < mouth_opening(open_wide) + WIDER_MARGIN < mouth_opening(wider)
    assert not sender.wanted(5, somewhat_wider, MOUTH_MIN_GAP * 2)  # painted well from the one sent
    assert not sender.wanted(5, wider, MOUTH_MIN_GAP / 2)  # wider, but too soon
    assert sender.wanted(5, wider, MOUTH_MIN_GAP)
    sender.keyframe_sent(5, closed)  # a new keyframe 5: its mouth is closed again
    assert sender.wanted(5, open_wide, MOUTH_MIN_GAP)
    off_the_edge = _units(_mouth(0.2 * 34, centre=(20.0, 160.0)))
    assert sender.packet(5, crop, off_the_edge, MOUTH_MIN_GAP, "avif", 50) is None


def test_a_real_clip_sends_one_mouth_when_the_speaker_first_opens_wide() -> None:
    frames = shared_frames("d14.mp4", 30)
    for mouths, expected in ((True, 1), (False, 0)):
        encoder = Encoder(StreamConfig(fps=25.0), mouths=mouths)
        decoder = Decoder(None)
        sizes = []
        for frame in frames:
            for message in encoder.encode(frame):
                decoder.decode(message)
                if packet_kind(message) is PacketKind.MOUTH:
                    sizes.append(len(message))
        assert len(sizes) == expected and decoder.stats.mouth_packets == expected
        assert decoder.stats.bad_packets == 0
        assert all(200 < size < 1200 for size in sizes)


def test_a_keyframe_that_continues_the_talk_takes_the_newest_mouth() -> None:
    sender = MouthSender()
    closed, open_wide = _units(_mouth(0.03 * 34)), _units(_mouth(0.3 * 34))
    sender.keyframe_sent(0, closed)
    assert sender.packet(0, _texture(0), open_wide, 0.0, "webp", 80) is not None
    assert sender.keyframe_sent(1, closed, carry=True)  # the loop's keyframe, mouth closed again
    assert not sender.wanted(1, open_wide, MOUTH_MIN_GAP)  # the receiver holds that mouth for it
    assert not sender.keyframe_sent(2, closed, carry=False)  # a fresh start (light, request)
    assert sender.wanted(2, open_wide, MOUTH_MIN_GAP)
    assert not sender.keyframe_sent(3, open_wide, carry=True)  # its own mouth is as open

    keyframe = _stream(1)[0]
    decoder = Decoder(_Recorder())
    reuse = encode_packet(ControlPacket(ControlType.MOUTH_REUSE, 0, 1))
    decoder.decode(encode_packet(keyframe))
    decoder.decode(reuse)  # no keyframe 1, no mouth
    assert decoder.stats.last_error == "a mouth reuse for keyframe 1: no such keyframe, or no mouth to take"
    mouth = _packet()
    decoder.decode(encode_packet(MouthPacket(0, mouth.image_codec, mouth.image, 40, 20, mouth.ring)))
    decoder.decode(encode_packet(_keyframe_of(keyframe, 1)))
    decoder.decode(reuse)
    assert decoder.stats.bad_packets == 1
    held = decoder.mouth_of(decoder.motion_decoder.keyframe(1))  # type: ignore[arg-type]
    assert held is not None and held is decoder.mouth_of(decoder.motion_decoder.keyframe(0))  # type: ignore[arg-type]
