"""The decoder: wire messages in, pictures out; the one receive loop of facevc.

Keyframes prepare the renderer; motion messages are decoded (prediction, concealment of lost
packets) and painted from the viewer's rotation (free view); body messages (the motion outside
the face) move the body and background of the frames that follow; a mouth message gives a
keyframe's pictures the inside of an open mouth (:mod:`codec.geometry.mouth_reference`);
control messages are noted.
What is missing is asked for: a ``keyframe_request`` while there is no keyframe (or none for
a motion message), a ``motion_refresh`` when the prediction chain broke or was concealed;
:meth:`Decoder.requests` hands these to the transport, at most one of a kind per
:data:`REQUEST_INTERVAL`.  A malformed message never raises: it is counted and dropped.

The call, ``receiver render``, ``receiver sheet``, ``sender encode``'s self-check and the
benchmark all use this loop.  A live call splits it in two (:meth:`Decoder.receive` as
messages arrive, :meth:`Decoder.render` for the newest one when the renderer is free);
everything else calls :meth:`Decoder.decode`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .edits import FaceEditor, FaceEdits
from .geometry.mouth_reference import MouthReference
from .images import decode_image
from .packets import (
    BodyDecoder,
    BodyPacket,
    ControlPacket,
    ControlType,
    DecodedMotion,
    KeyframePacket,
    MotionDecoder,
    MotionPacket,
    MouthPacket,
    PacketError,
    decode_packet,
    encode_packet,
)
from .render import DEFAULT_MODEL, Renderer, Vector3, create_renderer
from .timing import Timer, no_timer

__all__ = ["REQUEST_INTERVAL", "Decoder", "DecoderStats"]

log = logging.getLogger(__name__)

#: at most one request of a kind per this many seconds
REQUEST_INTERVAL = 0.1
#: requests kept for :meth:`Decoder.requests` (older ones are dropped when nobody collects them)
MAX_PENDING_REQUESTS = 8
#: frame rate assumed before the first keyframe tells the stream's
DEFAULT_FPS = 25.0
#: this many "stale" packets in a row mean the numbering really moved back: follow it
MAX_STALE_RUN = 30

Channel = Literal["motion", "control"]


@dataclass
class DecoderStats:
    """Counters of a stream; ``as_dict`` is what the viewer page shows."""

    started: float = field(default_factory=time.monotonic)
    motion_packets: int = 0
    motion_bytes: int = 0
    body_packets: int = 0  #: body messages (the motion outside the face), used or not
    body_bytes: int = 0
    keyframes: int = 0
    keyframe_bytes: int = 0
    mouth_packets: int = 0  #: open mouths accepted (:mod:`codec.geometry.mouth_reference`)
    mouth_bytes: int = 0
    control_packets: int = 0
    bad_packets: int = 0  #: malformed messages, or messages on the wrong channel
    undecodable: int = 0  #: motion that could not be decoded (no keyframe, lost reference)
    dropped_stale: int = 0  #: motion older than what was already received, or superseded before rendering
    rendered: int = 0
    requests_sent: int = 0
    lost_motion: int = 0  #: sequence numbers never seen
    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    render_times: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    #: packet sent -> picture shown; filled by a transport that knows the sender's clock
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    first_motion_at: float | None = None  #: monotonic arrival of the first motion packet
    first_keyframe_at: float | None = None  #: ... and of the first keyframe that was accepted
    last_error: str = ""
    references: int = 0  #: keyframes held (the bank the sender's motion may name)
    reference_bytes: int = 0  #: their image bytes
    reference_switches: int = 0  #: motion that moved to an older held keyframe than the previous motion's

    def as_dict(self) -> dict[str, float | int | str | None]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        recent = list(self.render_times)
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        seen = self.motion_packets + self.lost_motion
        return {
            "motion_kbps": round(self.motion_bytes * 8 / elapsed / 1000, 2),
            "body_kbps": round(self.body_bytes * 8 / elapsed / 1000, 2),
            "keyframe_kbps": round(self.keyframe_bytes * 8 / elapsed / 1000, 2),
            "mouth_kbps": round(self.mouth_bytes * 8 / elapsed / 1000, 2),
            "keyframes": self.keyframes,
            "mouths": self.mouth_packets,
            "references": self.references,
            "reference_bytes": self.reference_bytes,
            "reference_switches": self.reference_switches,
            "motion_packets": self.motion_packets,
            "fps": round(fps, 1),
            "render_ms": round(float(np.median(self.render_ms)), 1) if self.render_ms else 0.0,
            "latency_ms": round(float(np.median(self.latency_ms)), 1) if self.latency_ms else None,
            "latency_p95_ms": round(float(np.percentile(self.latency_ms, 95)), 1) if self.latency_ms else None,
            "max_gap_ms": round(float(np.diff(recent).max()) * 1000, 1) if len(recent) > 1 else None,
            "packet_loss": round(self.lost_motion / seen, 3) if seen else 0.0,
            "bad_packets": self.bad_packets,
            "undecodable": self.undecodable,
            "dropped_stale": self.dropped_stale,
            "rendered": self.rendered,
            "last_error": self.last_error,
        }


class Decoder:
    """Wire messages in, pictures out::

        decoder = Decoder()                      # the default released model
        picture = decoder.decode(message)        # (S, S, 3) uint8 RGB, or None
        decoder.view(yaw=15)                     # free view for the frames that follow
        for request in decoder.requests():       # control messages for the sender
            send_back(request)

    Args:
        model: a released model (zoo name or ``.pth`` file; the classical fallback, with a
            warning, when it does not load), ``"classical"``, a :class:`codec.render.Renderer`
            to use (e.g. one loaded once for many calls), or None: decode motion only and
            paint nothing (``decode`` then always returns None).
        device: ``cpu``, ``cuda`` or ``auto`` (for a model given by name).
        timer: timing hook (``unpack``, and the renderer's ``warp`` / ``generate``).
        clock: monotonic seconds, for rate limits and statistics.
        max_keyframes: keyframes held at once.
        in_order: every message comes, in sending order (the sender's own copy of its stream:
            :mod:`codec.closed_loop`): sequence numbers are followed as they come, not against
            the clock (messages handed over in batches would read as losses).
    """

    def __init__(
        self,
        model: str | Renderer | None = DEFAULT_MODEL,
        device: str = "auto",
        *,
        timer: Timer = no_timer,
        clock: Callable[[], float] = time.monotonic,
        max_keyframes: int = 4,
        in_order: bool = False,
    ) -> None:
        self.renderer: Renderer | None = create_renderer(model, device) if isinstance(model, str) else model
        if self.renderer is not None:
            self.renderer.timer = timer
        self.timer = timer
        self.clock = clock
        self.in_order = in_order
        self.motion_decoder = MotionDecoder(max_keyframes, conceal=True)
        self.body_decoder = BodyDecoder()
        self._body: tuple[KeyframePacket, np.ndarray] | None = None  # the newest keyframe's body field
        self._mouths: dict[int, tuple[KeyframePacket, MouthReference]] = {}  # by keyframe id
        self._newest_mouth: MouthReference | None = None  # of the newest mouth message
        self.stats = DecoderStats(started=clock())
        self.editor = FaceEditor()  #: live edits of the face (:meth:`edit`)
        self.rotation: Vector3 = (0.0, 0.0, 0.0)
        self.translation: Vector3 = (0.0, 0.0, 0.0)
        self.keyframe: KeyframePacket | None = None  #: the newest keyframe accepted
        self._new_keyframe: KeyframePacket | None = None  # accepted, no motion has named it yet
        self.motion: DecodedMotion | None = None  #: the newest motion decoded
        self.picture: np.ndarray | None = None  #: what a screen shows now (the keyframe before any motion)
        self.face_present = True  #: False after the sender's ``no_face``, until ``face_found``
        self.peer_left = False  #: the sender said bye
        self._requests: deque[bytes] = deque(maxlen=MAX_PENDING_REQUESTS)
        self._last_request: dict[ControlType, float] = {}
        self._last_seq_time: float | None = None
        self._stale_run = 0

    @property
    def name(self) -> str:
        """The renderer's name (``neural``, ``classical``), or ``none``."""
        return self.renderer.name if self.renderer is not None else "none"

    def view(
        self, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, translation: Vector3 = (0.0, 0.0, 0.0)
    ) -> None:
        """Free view for the frames that follow: the viewer's rotation in degrees (composed with
        the sent head pose) and translation in crop units."""
        self.rotation = (float(yaw), float(pitch), float(roll))
        self.translation = (float(translation[0]), float(translation[1]), float(translation[2]))

    # --- messages in ---------------------------------------------------------------------------

    def decode(self, message: bytes) -> np.ndarray | None:
        """One message in; the (S, S, 3) uint8 RGB picture it shows, or None when it shows
        nothing new (a keyframe or control message, motion that cannot be decoded yet, a
        malformed message, no renderer).  Never raises."""
        motion = self.receive(message)
        return None if motion is None else self.render(motion)

    def receive(self, message: bytes | str, channel: Channel | None = None) -> DecodedMotion | None:
        """Update the state with one message without painting; returns the decoded motion of a
        motion message (None otherwise).  ``channel``: the channel it came on (``motion``
        carries only motion, ``control`` only keyframes and control); a message on the wrong
        one is counted as bad.  Never raises."""
        if isinstance(message, str):
            self._bad("a text message is not a packet")
            return None
        with self.timer("unpack"):
            try:
                packet = decode_packet(message)
            except PacketError as exc:
                self._bad(str(exc))
                return None
            if isinstance(packet, MotionPacket):
                if channel == "control":
                    self._bad("a motion packet came on the control channel")
                    return None
                return self._on_motion(packet, len(message))
            if isinstance(packet, BodyPacket):
                if channel == "control":
                    self._bad("a body packet came on the control channel")
                else:
                    self._on_body(packet, len(message))
                return None
        if channel == "motion":
            self._bad("a non-motion packet came on the motion channel")
        elif isinstance(packet, KeyframePacket):
            self._on_keyframe(packet, len(message))
        elif isinstance(packet, MouthPacket):
            self._on_mouth(packet, len(message))
        else:
            self._on_control(packet)
        return None

    def _on_keyframe(self, keyframe: KeyframePacket, size: int) -> None:
        """A keyframe becomes current only once its image decodes and the renderer is ready;
        an unusable one is forgotten (with any older keyframe of its id) and asked for again."""
        try:
            self.motion_decoder.add_keyframe(keyframe)
            if self.renderer is not None:
                self.renderer.set_keyframe(keyframe)
        except Exception as exc:  # PacketError, ValueError, or a renderer bug: never the end of the call
            self.motion_decoder.forget_keyframe(keyframe.keyframe_id)
            self._bad(f"keyframe {keyframe.keyframe_id}: {exc}")
            self._request(ControlType.KEYFRAME_REQUEST, f"keyframe {keyframe.keyframe_id} is unusable")
            return
        # the numbering goes on: the sender keeps animating the previous keyframe until it
        # knows this one is here (a sender that started afresh is told apart in _on_motion)
        self.body_decoder.start_keyframe(keyframe.keyframe_id)
        self._body = None
        self._mouths.pop(keyframe.keyframe_id, None)  # the mouth of an older keyframe of this id
        self.keyframe = self._new_keyframe = keyframe
        self._count_references()
        # the sender animates a keyframe that joins its bank only once it knows it is here
        self._requests.append(encode_packet(ControlPacket(ControlType.KEYFRAME_ACK, 0, keyframe.keyframe_id)))
        self.stats.keyframes += 1
        self.stats.keyframe_bytes += size
        if self.stats.first_keyframe_at is None:
            self.stats.first_keyframe_at = self.clock()
        if self.renderer is not None:
            self.picture = self.renderer.keyframe_image

    def _on_mouth(self, packet: MouthPacket, size: int) -> None:
        """An open mouth for the pictures of a held keyframe (the newest one of its keyframe replaces it)."""
        keyframe = self.motion_decoder.keyframe(packet.keyframe_id)
        if keyframe is None:
            self._bad(f"a mouth for keyframe {packet.keyframe_id}, which is not held")
            return
        try:
            image = decode_image(packet.image, (packet.width, packet.height))
        except ValueError as exc:
            self._bad(f"the mouth for keyframe {packet.keyframe_id}: its image does not decode ({exc})")
            return
        self._newest_mouth = MouthReference(image, packet.ring)
        self._mouths[packet.keyframe_id] = (keyframe, self._newest_mouth)
        self.stats.mouth_packets += 1
        self.stats.mouth_bytes += size

    def mouth_of(self, keyframe: KeyframePacket) -> MouthReference | None:
        """The open mouth received for ``keyframe``'s pictures, or None."""
        held = self._mouths.get(keyframe.keyframe_id)
        return held[1] if held is not None and held[0] is keyframe else None

    def _on_body(self, packet: BodyPacket, size: int) -> None:
        self.stats.body_packets += 1
        self.stats.body_bytes += size
        try:
            used = self.body_decoder.decode(packet)
        except PacketError as exc:
            self._bad(str(exc))
            return
        field = self.body_decoder.field
        keyframe_id = self.body_decoder.keyframe_id
        keyframe = self.motion_decoder.keyframe(keyframe_id) if keyframe_id is not None else None
        if used and field is not None and keyframe is not None:
            self._body = (keyframe, field)

    def _on_control(self, control: ControlPacket) -> None:
        self.stats.control_packets += 1
        if control.type is ControlType.NO_FACE:
            self.face_present = False
        elif control.type is ControlType.FACE_FOUND:
            self.face_present = True
        elif control.type is ControlType.BYE:
            self.peer_left = True
        elif control.type is ControlType.MOUTH_REUSE and control.keyframe_id is not None:
            keyframe = self.motion_decoder.keyframe(control.keyframe_id)
            if keyframe is None or self._newest_mouth is None:
                self._bad(f"a mouth reuse for keyframe {control.keyframe_id}: no such keyframe, or no mouth to take")
            else:
                self._mouths[control.keyframe_id] = (keyframe, self._newest_mouth)

    def _on_motion(self, packet: MotionPacket, size: int) -> DecodedMotion | None:
        stats = self.stats
        stats.motion_packets += 1
        stats.motion_bytes += size
        now = self.clock()
        if stats.first_motion_at is None:
            stats.first_motion_at = now
        fps = self.keyframe.config.fps if self.keyframe is not None else DEFAULT_FPS
        elapsed = None if self._last_seq_time is None or self.in_order else (now - self._last_seq_time) * fps
        gap = self.motion_decoder.sequence_gap(packet.seq, elapsed)
        if gap is not None and gap <= 0 and self._starts_afresh(packet):
            self.motion_decoder.restart_sequence()
            gap = None
        if gap is not None and gap <= 0:  # duplicate or late: older than what we have ...
            self._stale_run += 1
            if self._stale_run <= MAX_STALE_RUN:
                stats.dropped_stale += 1
                return None
            self.motion_decoder.restart_sequence()  # ... unless it goes on: follow the numbering
            gap = None
        elif gap is not None:
            stats.lost_motion += gap - 1
        self._last_seq_time, self._stale_run = now, 0
        try:
            decoded = self.motion_decoder.decode(packet, gap)
        except PacketError as exc:
            self._bad(str(exc))
            return None
        if decoded is None:
            stats.undecodable += 1
            if self.motion_decoder.missing_keyframe:
                self._request(ControlType.KEYFRAME_REQUEST, "motion for a keyframe not received")
            else:
                self._request(ControlType.MOTION_REFRESH, "a motion packet lost its reference")
            return None
        if not self.motion_decoder.resynchronized:  # concealed: ask for an absolute packet to be exact again
            self._request(ControlType.MOTION_REFRESH, f"packet {decoded.seq} decoded approximately")
        previous = self.motion.keyframe if self.motion is not None else None
        if previous is not None and decoded.keyframe is not previous and decoded.keyframe is not self._new_keyframe:
            stats.reference_switches += 1  # not the move to a keyframe just received
        self._new_keyframe = None
        self.motion = decoded
        return decoded

    def _starts_afresh(self, packet: MotionPacket) -> bool:
        """Whether ``packet``, numbered as older than what came, is a restarted sender's first
        motion: absolute, naming a keyframe that came after the last motion decoded."""
        new = self._new_keyframe
        return packet.absolute and new is not None and packet.keyframe_id == new.keyframe_id

    def _count_references(self) -> None:
        held = [self.motion_decoder.keyframe(keyframe_id) for keyframe_id in self.motion_decoder.keyframe_ids]
        self.stats.references = len(held)
        self.stats.reference_bytes = sum(len(keyframe.image) for keyframe in held if keyframe is not None)

    def _bad(self, message: str) -> None:
        self.stats.bad_packets += 1
        self.stats.last_error = message
        log.warning("dropped a bad packet: %s", message)

    # --- pictures out --------------------------------------------------------------------------

    def edit(self, edits: FaceEdits) -> None:
        """Edit the face of the frames that follow (:mod:`codec.edits`: expression, eyes, gaze,
        eye contact); each edit ramps in and out over :data:`codec.edits.RAMP_SECONDS`."""
        self.editor.set(edits)

    def render(self, motion: DecodedMotion | None = None) -> np.ndarray | None:
        """Paint ``motion`` (default: the newest decoded) from the current view; None when
        there is nothing to paint or the renderer failed (counted as bad, the last picture
        stays).  Never raises."""
        if motion is None:
            motion = self.motion
        if motion is None or self.renderer is None:
            return None
        start = time.perf_counter()
        if self.editor.active:
            edited = self.editor.apply(motion.motion, motion.keyframe.canonical_keypoints, motion.timestamp_ms / 1000)
            motion = DecodedMotion(motion.seq, motion.timestamp_ms, motion.keyframe, edited)
        body = self._body
        self.renderer.body_nodes = body[1] if body is not None and body[0] is motion.keyframe else None
        self.renderer.mouth = self.mouth_of(motion.keyframe)
        try:
            picture = self.renderer.render(motion, self.rotation, self.translation)
        except Exception as exc:  # a renderer bug must not end the call
            self._bad(f"rendering failed: {exc}")
            return None
        self.stats.render_ms.append((time.perf_counter() - start) * 1000)
        self.stats.rendered += 1
        self.stats.render_times.append(self.clock())
        self.picture = picture
        return picture

    # --- messages back -------------------------------------------------------------------------

    def _request(self, kind: ControlType, reason: str) -> None:
        now = self.clock()
        if now - self._last_request.get(kind, -1e9) < REQUEST_INTERVAL:
            return
        self._last_request[kind] = now
        self.stats.requests_sent += 1
        self._requests.append(encode_packet(ControlPacket(kind, 0, reason=reason)))

    def requests(self) -> list[bytes]:
        """The control messages to send back to the encoder now (a keyframe request while
        there is no keyframe, refreshes after a loss, an acknowledgement of each keyframe
        accepted); each is handed out once."""
        if self.keyframe is None:
            self._request(ControlType.KEYFRAME_REQUEST, "no keyframe yet")
        out = list(self._requests)
        self._requests.clear()
        return out
