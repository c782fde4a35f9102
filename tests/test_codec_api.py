"""``codec.Encoder`` and ``codec.Decoder``: the API other code is written against."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from codec import Decoder, Encoder
from codec.images import encode_image
from codec.models.config import load_config
from codec.models.talking_head import TalkingHeadModel
from codec.motion.extract import MotionExtractor
from codec.motion.params import HeadPose, MotionParams
from codec.packets import (
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionEncoder,
    MotionPacket,
    PacketError,
    PacketKind,
    StreamConfig,
    decode_packet,
    encode_packet,
    packet_kind,
)
from codec.render import NeuralRenderer

from .conftest import ROOT, nan_generator, shared_clip, shared_frames
from .synthetic import person, pose_face


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stream(frames: int = 12) -> tuple[KeyframePacket, list[MotionPacket]]:
    """A keyframe (synthetic face keypoints, a textured PNG) and motion packets turning the head."""
    canonical = MotionExtractor().canonicalize(pose_face(person(1), 0.0, 0.0, 0.0))
    ys, xs = np.mgrid[0:256, 0:256]
    image = (np.stack([np.sin(xs / 9.0), np.cos(ys / 7.0), np.sin((xs - ys) / 13.0)], -1) * 100 + 128).astype(np.uint8)
    config = StreamConfig(absolute_interval=8)
    keyframe = KeyframePacket(0, 0, "png", encode_image(image, "png"), 256, 256, canonical.keypoints,
                              canonical.head_pose.as_vector(), config)  # fmt: skip
    encoder = MotionEncoder(config)
    encoder.start_keyframe(0, canonical.keypoints)
    pose, still = canonical.head_pose, np.zeros_like(canonical.keypoints)
    turns = [HeadPose(2.0 * i, -i, 0.0, pose.translation, pose.scale) for i in range(frames)]
    return keyframe, [encoder.encode(MotionParams(turn, still), 40 * i) for i, turn in enumerate(turns)]


def _requests(decoder: Decoder) -> list[tuple[str, str]]:
    out = []
    for data in decoder.requests():
        packet = decode_packet(data)
        assert isinstance(packet, ControlPacket)
        out.append((packet.type.value, packet.reason))
    return out


@pytest.fixture(scope="module")
def neural() -> NeuralRenderer:
    torch.manual_seed(0)
    return NeuralRenderer(TalkingHeadModel(load_config("tiny")).eval())


def test_packet_kind_reads_the_header_only() -> None:
    keyframe, motion = _stream(1)
    assert packet_kind(encode_packet(keyframe)) is PacketKind.KEYFRAME
    assert packet_kind(encode_packet(motion[0])) is PacketKind.MOTION
    assert packet_kind(encode_packet(ControlPacket(ControlType.BYE, 0))) is PacketKind.CONTROL
    message = "not a facevc message (its header is not [version, kind, ...])"
    for garbage in (b"", b"\x93\x02", b"\x93\x01\x01", b"\x93\x02\x07", b"\xc0\x01\x01", b"\xc4\x01\x10", b"{}"):
        with pytest.raises(PacketError, match=f"^{re.escape(message)}$"):
            packet_kind(garbage)


def test_decoder_counts_bad_messages_and_never_raises() -> None:
    decoder = Decoder("classical")
    keyframe, motion = _stream(1)
    for bad in (b"", b"\x92\x01", b"\xff" * 40, "text", encode_packet(keyframe)[:50]):
        assert decoder.decode(bad) is None  # type: ignore[arg-type]
    assert decoder.stats.bad_packets == 5
    assert decoder.stats.last_error == "packet is truncated (incomplete msgpack)"
    assert decoder.receive(encode_packet(motion[0]), channel="control") is None
    assert decoder.stats.last_error == "a motion packet came on the control channel"
    assert decoder.receive(encode_packet(keyframe), channel="motion") is None
    assert decoder.stats.last_error == "a non-motion packet came on the motion channel"
    assert decoder.stats.bad_packets == 7 and decoder.keyframe is None and decoder.picture is None
    broken = KeyframePacket(1, 0, "png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 256, 256, keyframe.canonical_keypoints,
                            keyframe.head_pose, keyframe.config)  # fmt: skip
    assert decoder.decode(encode_packet(broken)) is None
    assert decoder.stats.last_error == "png image: the PNG data has no image header"
    assert decoder.keyframe is None


def test_decoder_pictures_and_free_view(neural: NeuralRenderer) -> None:
    decoder = Decoder(neural)
    keyframe, motion = _stream(3)
    assert decoder.decode(encode_packet(keyframe)) is None  # a keyframe shows nothing new by itself ...
    assert decoder.picture is not None and decoder.picture.shape == (256, 256, 3)  # ... but the screen has it
    first = decoder.decode(encode_packet(motion[0]))
    assert first is not None and first.shape == (256, 256, 3) and first.dtype == np.uint8
    assert decoder.picture is first and decoder.motion is not None and decoder.motion.seq == motion[0].seq
    again = decoder.render()  # the newest motion again, same view: the same picture
    assert again is not None
    np.testing.assert_array_equal(again, first)
    decoder.view(yaw=20)
    turned = decoder.render()
    assert turned is not None and np.abs(turned.astype(int) - first).mean() > 1.0
    decoder.view()
    np.testing.assert_array_equal(decoder.render(), first)  # type: ignore[arg-type]
    assert decoder.stats.rendered == 4 and decoder.stats.bad_packets == 0 and decoder.name == "neural"


def test_a_renderer_failure_keeps_the_last_picture(neural: NeuralRenderer) -> None:
    decoder = Decoder(neural)
    keyframe, motion = _stream(2)
    decoder.decode(encode_packet(keyframe))
    first = decoder.decode(encode_packet(motion[0]))
    with nan_generator(neural):
        assert decoder.decode(encode_packet(motion[1])) is None
    assert decoder.picture is first
    assert decoder.stats.last_error == "rendering failed: the model produced non-finite pixels (NaN or inf)"


def test_decoder_requests_what_it_lacks() -> None:
    clock = FakeClock()
    decoder = Decoder(None, clock=clock)
    keyframe, motion = _stream(20)  # absolute packets: 0, 8, 16
    assert _requests(decoder) == [("keyframe_request", "no keyframe yet")]
    assert _requests(decoder) == []  # at most one of a kind per REQUEST_INTERVAL
    clock.now += 0.15
    assert decoder.receive(encode_packet(motion[0])) is None  # motion before its keyframe
    assert _requests(decoder) == [("keyframe_request", "motion for a keyframe not received")]
    decoder.receive(encode_packet(keyframe))
    assert decoder.receive(encode_packet(motion[1])) is None  # predicted from packet 0, which never decoded
    # the keyframe is acknowledged (the sender animates a bank keyframe once it knows it is here)
    assert _requests(decoder) == [("keyframe_ack", ""), ("motion_refresh", "a motion packet lost its reference")]
    assert decoder.stats.undecodable == 2
    assert decoder.receive(encode_packet(motion[8])) is not None  # absolute: decodes
    assert decoder.decode(encode_packet(motion[9])) is None  # a motion-only decoder paints nothing ...
    assert decoder.motion is not None and decoder.motion.seq == 9  # ... but decodes
    clock.now += 0.15
    decoded = decoder.receive(encode_packet(motion[11]))  # packet 10 was lost: concealed, and a refresh asked for
    assert decoded is not None and decoder.motion_decoder.concealed == 1 and not decoder.motion_decoder.resynchronized
    assert _requests(decoder) == [("motion_refresh", "packet 11 decoded approximately")]
    assert decoder.receive(encode_packet(motion[11])) is None  # a duplicate is stale
    assert decoder.receive(encode_packet(motion[9])) is None  # and so is a late one
    assert decoder.stats.dropped_stale == 2
    assert decoder.receive(encode_packet(motion[16])) is not None and decoder.motion_decoder.resynchronized
    assert decoder.stats.lost_motion == 6 + 1 + 4  # 2-7, 10, 12-15
    assert decoder.stats.requests_sent == 4 and decoder.stats.bad_packets == 0


def test_encoder_refuses_what_is_not_a_frame() -> None:
    encoder = Encoder()
    message = "a frame must be an (H, W, 3) uint8 RGB array, got ndarray (4, 4) uint8"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encoder.encode(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match=re.escape("got ndarray (4, 4, 3) float32")):
        encoder.encode(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=re.escape("got list")):
        encoder.encode([[0, 0, 0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="image codec must be one of"):
        Encoder(image_codec="gif")
    assert encoder.on_control(b"\x00garbage") is None and encoder.on_control("text") is None
    assert encoder.on_control(encode_packet(keyframe_of_no_use())) is None
    assert encoder.bad_controls == 3
    assert encoder.on_control(encode_packet(ControlPacket(ControlType.BYE, 0))) is ControlType.BYE
    assert encoder.peer_left


def keyframe_of_no_use() -> KeyframePacket:
    return _stream(1)[0]


@pytest.mark.shared
def test_encoder_and_decoder_close_the_loop_through_a_loss() -> None:
    """Frames -> Encoder -> (a lost motion message) -> Decoder -> requests -> Encoder: the
    decoder asks for a refresh, the encoder sends absolute packets, the decoder is exact again."""
    frames = shared_frames("grid_lbbc2a.mp4", 30)
    encoder = Encoder(StreamConfig(fps=25.0, absolute_interval=100))  # no periodic refresh: only the asked one
    decoder = Decoder("classical")
    kinds: list[list[PacketKind]] = []
    pictures = 0
    for index, frame in enumerate(frames):
        messages = encoder.encode(frame)
        kinds.append([packet_kind(m) for m in messages])
        for message in messages:
            if index == 10 and packet_kind(message) is PacketKind.MOTION:
                continue  # lost on the way
            pictures += decoder.decode(message) is not None
        expected = ControlType.KEYFRAME_ACK if index == 0 else ControlType.MOTION_REFRESH  # after the loss
        for request in decoder.requests():
            assert encoder.on_control(request) is expected
    assert kinds[0] == [PacketKind.KEYFRAME, PacketKind.MOTION]
    # the motion outside the face: a body message before the motion, measured every 0.2 s, sent when it changed
    assert all(k in ([PacketKind.MOTION], [PacketKind.BODY, PacketKind.MOTION]) for k in kinds[1:])
    body_frames = [i for i, k in enumerate(kinds) if PacketKind.BODY in k]
    assert body_frames and all(i % 5 == 1 for i in body_frames)  # measured at frames 1, 6, 11, ...: 0.2 s apart
    assert decoder.stats.body_packets == len(body_frames)
    assert pictures == 29 and decoder.stats.lost_motion == 1 and decoder.motion_decoder.concealed == 1
    assert decoder.motion_decoder.resynchronized  # the refresh arrived
    assert decoder.picture is not None and decoder.picture.shape == (256, 256, 3)
    assert encoder.frames == 30 and decoder.stats.bad_packets == 0


@pytest.mark.shared
def test_readme_library_example_runs_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """The "Use it as a library" snippet of README.md, run from the repository root."""
    shared_clip("d14.mp4")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "README.md has no python block under 'Use it as a library'"
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    decoder = namespace["dec"]
    assert isinstance(decoder, Decoder) and decoder.name == "neural"
    picture = namespace["picture"]
    assert isinstance(picture, np.ndarray) and picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    assert decoder.stats.rendered >= 45 and decoder.stats.bad_packets == 0  # 2 s of a 25 fps clip
    assert decoder.rotation == (15.0, 0.0, 0.0)


def test_encoder_says_no_face_every_second_while_there_is_none() -> None:
    encoder = Encoder(StreamConfig(fps=25.0))
    black = np.zeros((120, 160, 3), np.uint8)
    notices = [
        decode_packet(message).timestamp_ms  # type: ignore[union-attr]
        for index in range(60)  # 2.4 s
        for message in encoder.encode(black)
    ]
    assert notices == [0, 1000, 2000]
