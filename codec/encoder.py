"""The encoder: frames in, wire messages out (tracking, motion, keyframe decisions, packets).

No I/O: a transport (the call, a file writer, the benchmark) moves the bytes.  Messages come
in sending order: a keyframe before the motion that refers to it.  Motion messages go on a
fast unreliable channel, the others (keyframes, control) on a reliable one
(:func:`codec.packets.packet_kind` tells which is which).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .edits import FaceEditor, FaceEdits
from .encoded import EncodedFrame
from .images import DEFAULT_IMAGE_CODEC, default_quality, encode_image
from .keyframes import TURN_REASON, KeyframePolicy, crop_brightness
from .motion.extract import CanonicalFace, MotionExtractor
from .motion.params import HeadPose, MotionParams
from .mouth_sender import MOUTH_IMAGE_CODEC, MouthSender
from .packets import (
    BodyEncoder,
    BodyPacket,
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionEncoder,
    MouthPacket,
    PacketError,
    StreamConfig,
    decode_packet,
    encode_packet,
)
from .quality import DEFAULT_QUALITY, quality_level
from .references import Reference, ReferenceBank
from .timing import Timer, no_timer
from .tracking import CropBox, FaceTracker, TrackResult, create_tracker

if TYPE_CHECKING:
    from .closed_loop import ClosedLoop, PictureCheck

__all__ = ["Encoder"]

log = logging.getLogger(__name__)

#: absolute motion packets sent after a ``motion_refresh`` (more than one gets through a lossy link)
REFRESH_PACKETS = 3
#: seconds between ``no_face`` notices while there is no face (the receiver knows the sender is there)
NO_FACE_REPEAT = 1.0


class Encoder:
    """Frames in, wire messages out::

        encoder = Encoder()
        for frame in frames:                      # (H, W, 3) uint8 RGB, any size
            for message in encoder.encode(frame): # list[bytes], in sending order
                send(message)
        encoder.on_control(message_from_the_receiver)

    Args:
        config: stream settings, sent in each keyframe (default: 25 fps, 256x256 crop).
        tracker: face tracker (default: :func:`codec.tracking.create_tracker`).
        quality: the quality knob's level (:mod:`codec.quality`): keyframe quality, the closed
            loop's target, how often the body motion is measured.
        image_codec, image_quality: how keyframe images are compressed (quality on the
            format's own 1-100 scale; None: the level's for AVIF, else the format's
            :data:`codec.images.DEFAULT_IMAGE_QUALITY`).
        keyframe_policy: when to send keyframes besides the first and requested ones.
        timer: timing hook (see :mod:`codec.timing`).
        body_motion: measure the motion outside the face (body, background) every
            ``body_interval`` seconds of the quality level and send it when it changed
            (:mod:`codec.geometry.body`; a receiver without a use for it ignores it).
        closed_loop: run the receiver's decoder on the messages sent and send a keyframe
            when its picture falls short (:mod:`codec.closed_loop`; timed stage ``check``).
        edits: edit the face before it is sent (:mod:`codec.edits`; the receiver cannot tell).
            The closed loop judges the picture the unedited motion paints (the edited one
            differs from the camera on purpose).
        mouths: send the receiver the inside of a mouth that opens wider than any it holds
            for the keyframe in use (:mod:`codec.mouth_sender`; a receiver without a use for
            it ignores it).
        wait_for_acks: the receiver acknowledges keyframes (``keyframe_ack``, as a call's
            :class:`codec.Decoder` does): a keyframe that joins the reference bank (sent for a
            head turn or by the closed loop) is animated only once acknowledged, so that a
            keyframe still on its way (retransmitted on a lossy link) stops no motion.
    """

    def __init__(
        self,
        config: StreamConfig | None = None,
        *,
        tracker: FaceTracker | None = None,
        quality: int = DEFAULT_QUALITY,
        image_codec: str = DEFAULT_IMAGE_CODEC,
        image_quality: int | None = None,
        keyframe_policy: KeyframePolicy | None = None,
        timer: Timer = no_timer,
        body_motion: bool = True,
        closed_loop: ClosedLoop | None = None,
        wait_for_acks: bool = False,
        edits: FaceEdits | None = None,
        mouths: bool = True,
    ) -> None:
        self.quality = quality_level(quality)  # a bad level fails here
        self.config = config or StreamConfig()
        self.tracker = tracker or create_tracker()
        self.extractor = MotionExtractor(self.tracker.scheme)
        if self.extractor.scheme.name != self.config.scheme:
            self.config = dataclasses.replace(self.config, scheme=self.extractor.scheme.name)
        self.motion_encoder = MotionEncoder(self.config)
        self.policy = keyframe_policy or KeyframePolicy()
        default = default_quality(image_codec)  # a bad codec fails here, not at the first keyframe
        if image_quality is not None and not 1 <= image_quality <= 100:
            raise ValueError(f"image quality must be in 1..100, got {image_quality}")
        self.image_codec = image_codec
        if image_quality is None:
            image_quality = self.quality.image_quality if image_codec == "avif" else default
        self.image_quality = image_quality
        self.timer = timer
        self.frames = 0  #: frames encoded so far
        self.bad_controls = 0  #: control messages that could not be read
        self.peer_left = False  #: the receiver said bye
        self._canonical: CanonicalFace | None = None
        self._keyframe_id = -1
        self._had_face = False
        self._no_face_sent_at = float("-inf")
        self._keyframe_requested = False
        self.body_encoder: BodyEncoder | None = BodyEncoder() if body_motion else None
        self._keyframe_crop: tuple[CropBox, np.ndarray] | None = None  # the keyframe's crop box and pixels
        self.bank = ReferenceBank()  #: the keyframes the receiver holds (:mod:`codec.references`)
        self.mouths: MouthSender | None = MouthSender() if mouths else None  #: open mouths sent
        self._body_measured_at = float("-inf")
        self._frames_since_motion = 0  # frames since the last motion message (see QualityLevel.motion_every)
        self.wait_for_acks = wait_for_acks
        self._acknowledged: Reference | None = None  # a pending reference the receiver now holds
        # crop, landmarks, time, alternatives (see ClosedLoop.check)
        self._deferred_check: (
            tuple[
                np.ndarray,
                np.ndarray,
                float,
                list[tuple[int, MotionParams]],
                MotionParams | None,
            ]
            | None
        ) = None
        self.closed_loop = closed_loop
        self.editor = FaceEditor(edits)  #: sender-side edits (:meth:`edit`)
        if closed_loop is not None and not closed_loop.target_given:
            closed_loop.set_target(self.quality.target)

    # --- what the receiver asks for -----------------------------------------------------------

    def edit(self, edits: FaceEdits) -> None:
        """Edit the face of the frames that follow before sending them (:mod:`codec.edits`)."""
        self.editor.set(edits)

    def request_keyframe(self) -> None:
        """Send a keyframe with the next frame that has a face."""
        self._keyframe_requested = True

    def request_absolute(self, count: int = REFRESH_PACKETS) -> None:
        """Make the next ``count`` motion packets absolute (a refresh after a loss)."""
        self.motion_encoder.request_absolute(count)

    def on_control(self, message: bytes | str) -> ControlType | None:
        """A control message from the receiver (keyframe request, motion refresh, bye).

        Returns its type, or None when it is not a control message we can read (counted in
        ``bad_controls``; never raises).
        """
        try:
            packet = decode_packet(message) if isinstance(message, bytes) else None
        except PacketError as exc:
            packet = None
            log.warning("ignored a bad control message from the receiver: %s", exc)
        if not isinstance(packet, ControlPacket):
            self.bad_controls += 1
            return None
        if packet.type is ControlType.KEYFRAME_REQUEST:
            self.request_keyframe()
        elif packet.type is ControlType.MOTION_REFRESH:
            self.request_absolute()
        elif packet.type is ControlType.BYE:
            self.peer_left = True
        elif packet.type is ControlType.KEYFRAME_ACK and packet.keyframe_id is not None:
            acknowledged = self.bank.acknowledge(packet.keyframe_id)
            if acknowledged is not None:
                self._acknowledged = acknowledged  # the next frame animates it
        return packet.type

    # --- frames ------------------------------------------------------------------------------

    def encode(self, frame: np.ndarray, time: float | None = None) -> list[bytes]:
        """The messages to send for one (H, W, 3) uint8 RGB frame captured at ``time`` seconds
        (default: the frame's index / ``config.fps``)."""
        return self.encode_frame(frame, time).messages

    def _keyframe(self, frame: np.ndarray, track: TrackResult, timestamp_ms: int, keep_bank: bool) -> KeyframePacket:
        """The keyframe of this frame; it becomes the reference in use (``keep_bank``: next to
        the older ones; with ``wait_for_acks``, once the receiver acknowledges it)."""
        assert track.crop is not None
        canonical = self.extractor.canonicalize(track.crop_landmarks())
        self._keyframe_id = (self._keyframe_id + 1) % 256
        crop = track.crop.extract(frame, self.config.crop_size)
        reference = Reference(self._keyframe_id, canonical, track.crop, crop)
        current = self.bank.current
        pending = keep_bank and self.wait_for_acks and current is not None
        self.bank.add(reference, keep=keep_bank, pending=pending)
        # pending: the motion stays on the reference in use, afresh (absolute motion and body
        # messages naming it: the receiver restarts its sequences at every keyframe)
        self._start_reference(current if pending and current is not None else reference)
        return KeyframePacket(
            keyframe_id=self._keyframe_id,
            timestamp_ms=timestamp_ms,
            image_codec=self.image_codec,
            image=encode_image(crop, self.image_codec, self.image_quality),
            width=self.config.crop_size,
            height=self.config.crop_size,
            canonical_keypoints=canonical.keypoints,
            head_pose=canonical.head_pose.as_vector(),
            config=self.config,
        )

    def _start_reference(self, reference: Reference) -> None:
        """Motion and body messages refer to ``reference`` from now on (their next messages are
        absolute and name it)."""
        self._canonical = reference.canonical
        self.motion_encoder.start_keyframe(reference.keyframe_id, reference.canonical.keypoints)
        self._keyframe_crop = (reference.crop, reference.pixels)
        if self.body_encoder is not None:
            self.body_encoder.start_keyframe(reference.keyframe_id)
        self._body_measured_at = float("-inf")

    def _switch_to(self, reference: Reference, landmarks: np.ndarray) -> MotionParams:
        """Animate ``reference`` (one of the bank's) from this frame on; this frame's motion against it."""
        self.bank.use(reference)
        self._start_reference(reference)
        self.policy.use_reference(reference.head_pose)
        return self.extractor.extract(landmarks, reference.canonical)

    def encode_frame(self, frame: np.ndarray, time: float | None = None, defer_check: bool = False) -> EncodedFrame:
        """Like :meth:`encode`, with everything the frame produced (track, motion, packets).

        ``defer_check``: when the closed loop's check of the receiver's picture is due on this
        frame, leave it for :meth:`run_deferred_check` (a call sends the frame's messages first,
        so that the check, one receiver frame of painting, delays none of them).

        Raises:
            ValueError: ``frame`` is not an (H, W, 3) uint8 array.
        """
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            got = f"ndarray {frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"a frame must be an (H, W, 3) uint8 RGB array, got {got}")
        if time is None:
            time = self.frames / self.config.fps
        self.frames += 1
        with self.timer("track"):
            track = self.tracker.process(frame, time)
        timestamp_ms = max(0, round(time * 1000))
        output = EncodedFrame(track, time)
        if not track.has_face:
            if self._had_face or time - self._no_face_sent_at >= NO_FACE_REPEAT:
                output.add(ControlPacket(ControlType.NO_FACE, timestamp_ms, reason="face lost"))
                self._no_face_sent_at = time
            self._had_face = False
            if self.closed_loop is not None:
                self.closed_loop.receive(output.messages)
            return output
        if not self._had_face and self._canonical is not None:
            output.add(ControlPacket(ControlType.FACE_FOUND, timestamp_ms))
        self._had_face = True
        landmarks = track.crop_landmarks()
        motion = None
        if self._canonical is not None:
            with self.timer("extract"):
                motion = self.extractor.extract(landmarks, self._canonical)
        acknowledged, self._acknowledged = self._acknowledged, None
        if acknowledged is not None and motion is not None and acknowledged is not self.bank.current:
            if track.crop == acknowledged.crop:  # the reference sent for this picture is there now: use it
                motion = self._switch_to(acknowledged, landmarks)
                if self.closed_loop is not None:
                    self.closed_loop.reference_started(time)
        if motion is not None and track.crop is not None:
            # with the closed loop, to the reference it saw paint a checked frame better; without,
            # to an older one the head came back towards
            if self.closed_loop is not None:
                other = self._better_reference(track.crop)
            else:
                other = self.bank.closer(motion.head_pose, track.crop)
            if other is not None:
                motion = self._switch_to(other, landmarks)
        brightness = crop_brightness(frame, track.crop) if track.crop is not None else None
        head_pose = motion.head_pose if motion is not None else None
        reason = "requested" if self._keyframe_requested else self.policy.reason(track, head_pose, brightness)
        by_loop = False
        if reason is None and self.closed_loop is not None:
            reason = self.closed_loop.falls_short(time)
            by_loop = reason is not None
        if reason is not None:
            with self.timer("keyframe"):
                keep_bank = by_loop or reason.startswith(TURN_REASON)
                keyframe = self._keyframe(frame, track, timestamp_ms, keep_bank)
                output.add(keyframe)
                # a keyframe that continues the talk takes the newest open mouth the receiver has
                if self.mouths is not None and self.mouths.keyframe_sent(keyframe.keyframe_id, landmarks, keep_bank):
                    output.add(ControlPacket(ControlType.MOUTH_REUSE, timestamp_ms, keyframe.keyframe_id))
                assert self._canonical is not None
                # the policy measures turns from the keyframe just sent, in use or still pending
                self.policy.sent(time, HeadPose.from_vector(keyframe.head_pose), brightness)
                self._keyframe_requested = False
                output.keyframe_reason = reason
                if self.closed_loop is not None:
                    in_use = self.bank.current is not None and self.bank.current.keyframe_id == self._keyframe_id
                    self.closed_loop.keyframe_sent(time, by_loop, in_use)
                motion = self.extractor.extract(landmarks, self._canonical)
        assert motion is not None and self._canonical is not None
        output.canonical = self._canonical
        unedited = None
        if self.editor.active:
            unedited, motion = motion, self.editor.apply(motion, self._canonical.keypoints, time)
        output.motion = motion
        body_due = time - self._body_measured_at >= self.quality.body_interval - 1e-6
        if self.body_encoder is not None and reason is None and body_due:
            self._body_measured_at = time
            with self.timer("body"):
                body = self._body_packet(frame, track)
            if body is not None:  # before the motion: the receiver paints this frame with it
                output.add(body)
        if self.mouths is not None and reason is None and self.bank.current is not None:
            mouth = self._mouth_packet(frame, track, landmarks, time)
            if mouth is not None:  # before the motion: the receiver paints this frame with it
                output.add(mouth)
        self._frames_since_motion += 1
        if self._frames_since_motion >= self.quality.motion_every or self.motion_encoder.absolute_next:
            self._frames_since_motion = 0
            with self.timer("pack"):
                packet = self.motion_encoder.encode(motion, timestamp_ms)
                message = encode_packet(packet)
            output.add(packet, message)
        if self.closed_loop is not None:
            self._check(frame, track, landmarks, output, defer_check, unedited)
        return output

    def _better_reference(self, crop: CropBox) -> Reference | None:
        """The reference the closed loop's last check found painting better, if still usable."""
        assert self.closed_loop is not None
        keyframe_id = self.closed_loop.take_better()
        if keyframe_id is None:
            return None
        return next((r for r in self.bank.others(crop) if r.keyframe_id == keyframe_id), None)

    def run_deferred_check(self) -> PictureCheck | None:
        """Run the check :meth:`encode_frame` left for later (None when there is none): it
        measures the picture of that frame's messages, and decides the next keyframe."""
        check = self.take_deferred_check()
        return check() if check is not None else None

    def take_deferred_check(self) -> Callable[[], PictureCheck | None] | None:
        """The check :meth:`encode_frame` left for later, to run on any thread (the closed loop
        is thread-safe; a call runs it beside the next frames' encoding); None when there is none."""
        deferred, self._deferred_check = self._deferred_check, None
        loop = self.closed_loop
        if deferred is None or loop is None:
            return None
        crop, landmarks, time, alternatives, unedited = deferred

        def check() -> PictureCheck | None:
            with self.timer("check"):
                return loop.check(crop, landmarks, time, alternatives, unedited)

        return check

    def _check(
        self,
        frame: np.ndarray,
        track: TrackResult,
        landmarks: np.ndarray,
        output: EncodedFrame,
        defer: bool,
        unedited: MotionParams | None = None,
    ) -> None:
        """Hand the closed loop this frame's messages; check the receiver's picture when due
        (``defer``: keep what the check needs for :meth:`run_deferred_check`; ``unedited``:
        the frame's motion before a sender-side edit, which the check paints instead)."""
        loop = self.closed_loop
        assert loop is not None and track.crop is not None
        loop.receive(output.messages)
        self._deferred_check = None  # a check not run before the next frame is dropped
        if output.keyframe_reason is None and loop.due(output.time):
            crop = track.crop.extract(frame, self.config.crop_size)
            alternatives = [(r.keyframe_id, self.extractor.extract(landmarks, r.canonical))
                            for r in self.bank.others(track.crop)]  # fmt: skip
            if defer:
                self._deferred_check = (crop, landmarks, output.time, alternatives, unedited)
                return
            with self.timer("check"):
                output.check = loop.check(crop, landmarks, output.time, alternatives, unedited)

    def _mouth_packet(self, frame: np.ndarray, track: TrackResult, landmarks: np.ndarray,
                      time: float) -> MouthPacket | None:  # fmt: skip
        """The mouth message to send with this frame, if any (:mod:`codec.mouth_sender`)."""
        assert self.mouths is not None and self.bank.current is not None and track.crop is not None
        crop_box = track.crop

        def crop() -> np.ndarray:
            return crop_box.extract(frame, self.config.crop_size)

        with self.timer("mouth"):
            return self.mouths.offer(self.bank.current.keyframe_id, landmarks, time, crop, MOUTH_IMAGE_CODEC,
                                     self.quality.mouth_quality)  # fmt: skip

    def _body_packet(self, frame: np.ndarray, track: TrackResult) -> BodyPacket | None:
        """The body message of this frame, if the field changed (same crop as the keyframe's only)."""
        from .geometry.body import measure_body_motion

        assert self.body_encoder is not None
        if self._keyframe_crop is None or track.crop is None or track.crop != self._keyframe_crop[0]:
            return None
        keyframe_crop = self._keyframe_crop[1]
        crop = track.crop.extract(frame, keyframe_crop.shape[0])
        nodes = measure_body_motion(keyframe_crop, crop, track.crop_landmarks())
        return self.body_encoder.encode(nodes)
