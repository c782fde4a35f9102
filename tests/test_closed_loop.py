"""The closed loop (:mod:`codec.closed_loop`) and the reference bank (:mod:`codec.references`)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from codec import Decoder, Encoder
from codec.closed_loop import MAX_PSNR, ClosedLoop, QualityTarget, face_mask, picture_psnr
from codec.images import encode_image
from codec.motion.extract import MotionExtractor
from codec.motion.params import HeadPose, MotionParams
from codec.packets import KeyframePacket, MotionEncoder, PacketKind, StreamConfig, encode_packet, packet_kind
from codec.references import BANK_SIZE, Reference, ReferenceBank
from codec.render import ClassicalRenderer, Renderer
from codec.tracking import CropBox

from .conftest import shared_frames
from .synthetic import person, pose_face


class ShiftedKeyframe(Renderer):
    """Paints the keyframe plus ``offset`` grey levels; counts its preparations."""

    name = "shifted"
    prepared_state = ("_level",)

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0
        self.prepares = 0
        self._level = 0

    def _prepare(self) -> None:
        assert self.keyframe is not None
        self.prepares += 1
        self._level = self.keyframe.keyframe_id

    def _render(self, motion: MotionParams) -> np.ndarray:
        assert self.keyframe_image is not None
        return np.clip(self.keyframe_image.astype(np.int16) + self.offset, 0, 255).astype(np.uint8)


def _keyframe(keyframe_id: int, level: int = 100) -> KeyframePacket:
    canonical = MotionExtractor().canonicalize(pose_face(person(1), 0.0, 0.0, 0.0))
    image = np.full((64, 64, 3), level, np.uint8)
    return KeyframePacket(keyframe_id, 0, "png", encode_image(image, "png"), 64, 64, canonical.keypoints,
                          canonical.head_pose.as_vector(), StreamConfig(crop_size=64))  # fmt: skip


def _motion(encoder: MotionEncoder, keyframe: KeyframePacket, time_ms: int) -> bytes:
    pose = HeadPose.from_vector(keyframe.head_pose)
    return encode_packet(encoder.encode(MotionParams(pose, np.zeros_like(keyframe.canonical_keypoints)), time_ms))


def test_picture_psnr_counts_the_masked_pixels_only() -> None:
    reference = np.full((8, 8, 3), 100, np.uint8)
    picture = reference.copy()
    assert picture_psnr(picture, reference) == MAX_PSNR
    picture[:4] += 10  # MSE over the whole: 50 levels^2
    assert picture_psnr(picture, reference) == pytest.approx(10 * np.log10(255**2 / 50), abs=1e-6)
    top = np.zeros((8, 8), bool)
    top[:4] = True
    assert picture_psnr(picture, reference, top) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-6)
    assert picture_psnr(picture, reference, ~top) == MAX_PSNR
    with pytest.raises(
        ValueError, match=re.escape("cannot compare a picture of (8, 8, 3) with a reference of (4, 8, 3)")
    ):
        picture_psnr(picture, reference[:4])
    with pytest.raises(ValueError, match="^the mask selects no pixel$"):
        picture_psnr(picture, reference, np.zeros((8, 8), bool))
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    mask = face_mask(square, 8)
    assert mask is not None and mask[2:7, 2:7].all() and mask.sum() == 25
    assert face_mask(square * np.nan, 8) is None


def test_quality_target_refuses_nonsense() -> None:
    message = (
        "a quality target needs patience >= 1, interval > 0, 0 <= min_gap <= max_gap and backoff >= 1, got patience=0"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        QualityTarget(patience=0)
    with pytest.raises(ValueError, match=re.escape("min_gap=4.0, max_gap=2.0")):
        QualityTarget(min_gap=4.0, max_gap=2.0)


def test_loop_waits_for_patience_and_the_gap_and_backs_off_when_keyframes_do_not_hold() -> None:
    renderer = ShiftedKeyframe()
    loop = ClosedLoop(renderer, QualityTarget(min_psnr=30.0, min_face_psnr=30.0, patience=2, interval=0.5, min_gap=2.0))
    keyframe = _keyframe(0)
    motion = MotionEncoder(keyframe.config)
    motion.start_keyframe(0, keyframe.canonical_keypoints)
    crop = np.full((64, 64, 3), 100, np.uint8)
    assert not loop.due(0.0)  # nothing to render yet
    loop.receive([encode_packet(keyframe), _motion(motion, keyframe, 0)])
    loop.keyframe_sent(0.0)
    assert not loop.due(0.4) and loop.due(0.5)
    check = loop.check(crop, None, 0.5)
    assert check is not None and check.psnr == MAX_PSNR and check.face_psnr is None
    renderer.offset = 20  # 22.1 dB: below the 30 dB target
    assert loop.check(crop, None, 1.0) is not None and loop.falls_short(1.0) is None  # one check is not enough
    assert loop.check(crop, None, 1.5) is not None and loop.falls_short(1.5) is None  # 2 s have not passed
    assert loop.falls_short(2.0) == "the receiver's picture fell to 22.1 dB"
    gaps = []
    for sent in (2.0, 10.0, 30.0):  # each keyframe it sends is still short at the next check
        loop.keyframe_sent(sent, by_loop=True)
        loop.check(crop, None, sent + 0.5)
        gaps.append(loop.gap)
    assert gaps == [8.0, 16.0, 16.0]  # backoff 4, at most max_gap
    renderer.offset = 4  # 36.1 dB: above the target, but 1 dB better is no keyframe that holds
    loop.check(crop, None, 47.0)
    assert loop.falls_short(47.0) is None
    renderer.offset = 20
    loop.check(crop, None, 47.5)
    loop.check(crop, None, 48.0)
    assert loop.falls_short(48.0) == "the receiver's picture fell to 22.1 dB"
    loop.keyframe_sent(48.0, by_loop=True)
    renderer.offset = 18  # 23.0 dB: 1 dB better than what called for it, still short
    loop.check(crop, None, 48.5)
    assert loop.gap == 16.0
    loop.keyframe_sent(70.0, by_loop=True)
    renderer.offset = 1  # 48.1 dB: held, back to the shortest gap
    loop.check(crop, None, 70.5)
    assert loop.gap == 2.0 and loop.checks == 11
    assert renderer.prepares == 1


def test_renderer_keeps_the_banks_keyframes_prepared_and_decoder_switches_between_them() -> None:
    renderer = ShiftedKeyframe()
    decoder = Decoder(renderer)
    keyframes = [_keyframe(i, level=50 * (i + 1)) for i in range(3)]
    motion = MotionEncoder(keyframes[0].config)
    for keyframe in keyframes:
        decoder.decode(encode_packet(keyframe))
    assert renderer.prepares == 3
    for step, index in enumerate([2, 0, 1, 0, 2]):  # motion names an older keyframe: an absolute packet
        motion.start_keyframe(index, keyframes[index].canonical_keypoints)
        picture = decoder.decode(_motion(motion, keyframes[index], 40 * step))
        assert picture is not None and int(picture[0, 0, 0]) == 50 * (index + 1)
    assert renderer.prepares == 3 and renderer._level == 2  # switching back prepared nothing again
    assert decoder.stats.bad_packets == 0 and decoder.stats.undecodable == 0
    # the viewer's statistics: 3 references held, their image bytes; 2 -> 0 -> 1 -> 0 -> 2 is 4 switches
    # (the first motion, naming the newest keyframe, is not one)
    assert decoder.stats.references == 3 and decoder.stats.reference_switches == 4
    assert decoder.stats.reference_bytes == sum(len(keyframe.image) for keyframe in keyframes)
    assert decoder.stats.as_dict()["references"] == 3


def _reference(keyframe_id: int, yaw: float, crop: CropBox) -> Reference:
    canonical = MotionExtractor().canonicalize(pose_face(person(1), yaw, 0.0, 0.0))
    return Reference(keyframe_id, canonical, crop, np.zeros((4, 4, 3), np.uint8))


def test_reference_bank_switches_to_a_closer_pose_beyond_the_margin() -> None:
    crop, other_crop = CropBox(0.0, 0.0, 100.0), CropBox(10.0, 0.0, 100.0)
    bank = ReferenceBank(margin=5.0)
    front = _reference(0, 0.0, crop)
    bank.add(front, keep=False)
    turned = _reference(1, 25.0, crop)
    bank.add(turned, keep=True)
    assert bank.current is turned and len(bank) == 2
    yaw_of = {r.keyframe_id: r.head_pose.yaw for r in bank.references}
    near_turned = HeadPose(yaw_of[1] - 12.0, 0.0, 0.0, (0.0, 0.0, 0.0), 1.0)
    assert bank.closer(near_turned, crop) is None  # 12 from the current, 13 from the front: stays
    back = HeadPose(yaw_of[0] + 2.0, 0.0, 0.0, (0.0, 0.0, 0.0), 1.0)
    assert bank.closer(back, crop) is front
    assert bank.closer(back, other_crop) is None  # another crop: its motion would not fit
    bank.use(front)
    assert bank.current is front and bank.switches == 1
    for i in range(2, 2 + BANK_SIZE):
        bank.add(_reference(i, 0.0, crop), keep=True)
    assert [r.keyframe_id for r in bank.references] == list(range(2, 2 + BANK_SIZE))  # oldest dropped
    with pytest.raises(ValueError, match="^keyframe 0 is not in the bank$"):
        bank.use(front)
    bank.add(front, keep=False)
    assert bank.references == [front]
    with pytest.raises(ValueError, match="^a reference bank holds at least 1 reference, got size=0$"):
        ReferenceBank(size=0)


@pytest.mark.shared
def test_encoder_closed_loop_sends_keyframes_into_the_bank_and_the_receiver_follows() -> None:
    """A target no picture meets: the loop sends a keyframe as soon as the gap allows, each one
    fails its first check, so the gaps double; the receiver decodes every frame from the bank."""
    frames = shared_frames("grid_lbbc2a.mp4", 100)
    target = QualityTarget(
        min_psnr=MAX_PSNR, min_face_psnr=MAX_PSNR, patience=1, interval=0.2, min_gap=0.4, backoff=2.0
    )
    loop = ClosedLoop(ClassicalRenderer(), target)
    encoder = Encoder(StreamConfig(fps=25.0), closed_loop=loop)
    decoder = Decoder(ClassicalRenderer())
    keyframe_times, reasons, checks = [], [], 0
    for index, frame in enumerate(frames):
        encoded = encoder.encode_frame(frame, index / 25.0)
        checks += encoded.check is not None
        if encoded.keyframe_reason is not None:
            keyframe_times.append(index / 25.0)
            reasons.append(encoded.keyframe_reason)
        for message in encoded.messages:
            decoder.decode(message)
            if packet_kind(message) is PacketKind.KEYFRAME:
                assert decoder.motion_decoder.keyframe_ids >= {r.keyframe_id for r in encoder.bank.references}
    assert reasons[0] == "first face"
    assert all(r.startswith("the receiver's picture fell to ") for r in reasons[1:])
    assert np.diff(keyframe_times).round(2).tolist()[:3] == [0.4, 0.8, 1.6]  # the gap doubles
    assert len(encoder.bank) == BANK_SIZE and checks == loop.checks >= 10
    assert (
        decoder.stats.rendered == len(frames) >= 70
        and decoder.stats.bad_packets == 0
        and decoder.stats.undecodable == 0
    )


@pytest.mark.shared
def test_a_bank_keyframe_is_animated_only_once_the_receiver_acknowledges_it() -> None:
    """With ``wait_for_acks`` (a call), the motion stays on the keyframe in use, afresh, while the loop's
    keyframe travels; the receiver's ``keyframe_ack`` moves it to the new one."""
    from codec.packets import ControlPacket, ControlType, MotionPacket, decode_packet

    frames = shared_frames("grid_lbbc2a.mp4", 40)
    target = QualityTarget(min_psnr=MAX_PSNR, min_face_psnr=MAX_PSNR, patience=1, interval=0.2, min_gap=0.4)
    encoder = Encoder(StreamConfig(fps=25.0), closed_loop=ClosedLoop(ClassicalRenderer(), target), wait_for_acks=True)
    receiver = Decoder(ClassicalRenderer())
    named: list[tuple[int, bool]] = []  # (keyframe id named, absolute) of each motion message
    for index, frame in enumerate(frames[:20]):
        for message in encoder.encode(frame, index / 25.0):
            packet = decode_packet(message)
            if isinstance(packet, MotionPacket):
                named.append((packet.keyframe_id, packet.absolute))
            receiver.decode(message)
        if index == 0:  # the first keyframe is acknowledged at once; the loop's are not, yet
            for request in receiver.requests():
                encoder.on_control(request)
    assert encoder.bank.current is not None and encoder.bank.current.keyframe_id == 0
    assert encoder.bank.pending == {1}  # the loop sent keyframe 1 at 0.4 s (and waits 0.8 s for the next)
    assert {kf for kf, absolute in named if absolute} == {0} and named[10] == (0, True)  # afresh on keyframe 0
    assert all(kf % 2 == 0 for kf, _ in named)  # predicted packets name keyframe 0's parity
    assert receiver.stats.undecodable == 0 and receiver.stats.rendered == 20  # no motion stopped
    encoder.on_control(encode_packet(ControlPacket(ControlType.KEYFRAME_ACK, 0, keyframe_id=1)))
    assert encoder.bank.pending == set()
    packets = [decode_packet(m) for m in encoder.encode(frames[20], 20 / 25.0)]
    motion = [p for p in packets if isinstance(p, MotionPacket)]
    assert encoder.bank.current.keyframe_id == 1 and motion[0].absolute and motion[0].keyframe_id == 1
    assert encoder.bank.acknowledge(7) is None  # an id never pending


@pytest.mark.shared
def test_a_deferred_check_runs_after_the_frame_and_is_dropped_when_not_run() -> None:
    frames = shared_frames("grid_lbbc2a.mp4", 16)
    loop = ClosedLoop(ClassicalRenderer(), QualityTarget(interval=0.2))
    encoder = Encoder(StreamConfig(fps=25.0), closed_loop=loop)
    checks = []
    for index, frame in enumerate(frames):
        encoded = encoder.encode_frame(frame, index / 25.0, defer_check=True)
        assert encoded.check is None  # nothing painted on the frame's path
        if index != 5:  # the check due at frame 5 (0.2 s) is not run: the next frame defers it again
            check = encoder.run_deferred_check()
            if check is not None:
                checks.append((index, round(check.time, 2)))
    assert checks == [(6, 0.24), (11, 0.44)] and loop.checks == 2
    assert encoder.run_deferred_check() is None  # each is run once


def test_a_check_finds_the_reference_that_paints_the_frame_better() -> None:
    """The loop paints the checked frame from the other references it is given too; one better
    by SWITCH_GAIN dB is handed out once (a new keyframe forgets it)."""
    from codec.closed_loop import SWITCH_GAIN

    renderer = ShiftedKeyframe()
    loop = ClosedLoop(renderer, QualityTarget())
    grey, light = _keyframe(0, level=100), _keyframe(1, level=140)
    motion = MotionEncoder(light.config)
    motion.start_keyframe(1, light.canonical_keypoints)
    loop.receive([encode_packet(grey), encode_packet(light), _motion(motion, light, 0)])
    crop = np.full((64, 64, 3), 100, np.uint8)  # the frame looks like the grey keyframe
    pose = HeadPose.from_vector(grey.head_pose)
    still = MotionParams(pose, np.zeros_like(grey.canonical_keypoints))
    check = loop.check(crop, None, 0.5, [(0, still), (7, still)])  # keyframe 7: not held, skipped
    assert check is not None and check.psnr == pytest.approx(10 * np.log10(255**2 / 40**2), abs=1e-6)
    assert loop.alternatives == 1 and loop.take_better() == 0 and loop.take_better() is None
    assert loop.decoder.motion is not None and loop.decoder.motion.keyframe.keyframe_id == 1  # its state untouched
    renderer.offset = 1  # the grey keyframe now paints 1 level off: 48.1 dB, against 16.0: still better
    loop.check(crop, None, 1.0, [(0, still)])
    loop.keyframe_sent(1.2)  # ... but a keyframe went out since: judged before it, forgotten
    assert loop.take_better() is None
    light_again = _keyframe(1, level=101)  # keyframe 1 sent again, nearly grey: 48.1 dB
    motion.start_keyframe(1, light_again.canonical_keypoints)
    loop.receive([encode_packet(light_again), _motion(motion, light_again, 1500)])
    renderer.offset = 0
    loop.check(crop, None, 1.5, [(0, still)])  # the grey one: 99 dB, far better
    assert loop.take_better() == 0
    renderer.offset = -1  # the one in use paints 100: exact; the grey one 99: worse
    loop.check(crop, None, 2.0, [(0, still)])
    assert loop.take_better() is None and loop.alternatives == 4
    renderer.offset = 0  # in use: 101, 48.1 dB; grey: 100, exact, 99 dB, but not given
    loop.check(crop, None, 2.5, [])
    assert loop.take_better() is None and SWITCH_GAIN == 0.5


@pytest.mark.shared
def test_the_encoder_gives_the_check_its_other_references_and_moves_to_the_better_one() -> None:
    from codec.packets import MotionPacket, decode_packet

    frames = shared_frames("grid_lbbc2a.mp4", 40)
    target = QualityTarget(min_psnr=MAX_PSNR, min_face_psnr=MAX_PSNR, patience=1, interval=0.2, min_gap=0.4)
    loop = ClosedLoop(ClassicalRenderer(), target)
    encoder = Encoder(StreamConfig(fps=25.0), closed_loop=loop)
    given: list[list[int]] = []
    check = loop.check

    def spy(crop: np.ndarray, landmarks: np.ndarray | None, time: float, alternatives=(), motion=None):  # type: ignore[no-untyped-def]
        assert motion is None  # no edit: the check paints the motion sent
        given.append([keyframe_id for keyframe_id, _ in alternatives])
        return check(crop, landmarks, time, alternatives)

    loop.check = spy  # type: ignore[method-assign]
    for index, frame in enumerate(frames[:30]):
        encoder.encode_frame(frame, index / 25.0)
    assert given[0] == [] and [0] in given  # nothing else at first; keyframe 0 once the loop sent keyframe 1
    assert encoder.bank.current is not None and encoder.bank.current.keyframe_id == 1 and len(encoder.bank) == 2
    loop._better = 0  # as if the last check had found keyframe 0 painting this frame better
    packets = [decode_packet(m) for m in encoder.encode(frames[30], 30 / 25.0)]
    motion = [p for p in packets if isinstance(p, MotionPacket)]
    assert encoder.bank.current.keyframe_id == 0 and encoder.bank.switches == 1
    assert motion[0].absolute and motion[0].keyframe_id == 0
    loop._better = 9  # an id the bank no longer holds: nothing happens
    encoder.encode(frames[31], 31 / 25.0)
    assert encoder.bank.current.keyframe_id == 0 and encoder.bank.switches == 1
