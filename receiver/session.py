"""One call on the receiving side, transport aside: packets in, rendered frames out.

Motion packets are rendered as they arrive, newest first: when rendering falls behind, older
packets are dropped, never queued.  A packet that cannot be decoded is concealed by holding
the last picture, and the sender is asked for what is missing: a ``motion_refresh`` (an
absolute packet) when the prediction chain broke, a ``keyframe_request`` when there is no
keyframe for it.  Requests are rate-limited.  Malformed packets are counted and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from codec.packets import (
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionDecoder,
    MotionPacket,
    PacketError,
    decode_packet,
    encode_packet,
)

from .render import Renderer

__all__ = ["ReceiverSession", "ReceiverStats"]

log = logging.getLogger(__name__)

#: at most one request of a kind per this many seconds
REQUEST_INTERVAL = 0.1


@dataclass
class ReceiverStats:
    """Counters of a call; ``as_dict`` is what the viewer page shows."""

    started: float = field(default_factory=time.monotonic)
    motion_packets: int = 0
    motion_bytes: int = 0
    keyframes: int = 0
    keyframe_bytes: int = 0
    control_packets: int = 0
    bad_packets: int = 0
    undecodable: int = 0
    dropped_stale: int = 0
    rendered: int = 0
    requests_sent: int = 0
    lost_motion: int = 0  #: sequence numbers never seen
    render_ms: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    render_times: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    first_motion_at: float | None = None  #: monotonic arrival of the first motion packet
    first_keyframe_at: float | None = None  #: ... and of the first keyframe that was accepted
    last_error: str = ""

    def as_dict(self) -> dict[str, float | int | str | None]:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        recent = list(self.render_times)
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        seen = self.motion_packets + self.lost_motion
        return {
            "motion_kbps": round(self.motion_bytes * 8 / elapsed / 1000, 2),
            "keyframe_kbps": round(self.keyframe_bytes * 8 / elapsed / 1000, 2),
            "keyframes": self.keyframes,
            "motion_packets": self.motion_packets,
            "fps": round(fps, 1),
            "render_ms": round(float(np.median(self.render_ms)), 1) if self.render_ms else 0.0,
            "latency_ms": round(float(np.median(self.latency_ms)), 1) if self.latency_ms else None,
            "packet_loss": round(self.lost_motion / seen, 3) if seen else 0.0,
            "bad_packets": self.bad_packets,
            "undecodable": self.undecodable,
            "dropped_stale": self.dropped_stale,
            "rendered": self.rendered,
            "last_error": self.last_error,
        }


class ReceiverSession:
    """Decode, render and keep the newest picture.

    Args:
        renderer: paints the frames.
        send_control: sends a control message's bytes to the sender (reliable channel).
        on_frame: called with (image, capture timestamp in ms) for every rendered frame.
        clock: for latency statistics, maps a packet's capture timestamp (ms since the
            sender's start) to this process's monotonic time (None: no latency statistics).
    """

    def __init__(
        self,
        renderer: Renderer,
        send_control: Callable[[bytes], None],
        on_frame: Callable[[np.ndarray, int], None] | None = None,
        clock: Callable[[int], float] | None = None,
    ) -> None:
        self.renderer = renderer
        self.send_control = send_control
        self.on_frame = on_frame
        self.clock = clock
        self.decoder = MotionDecoder(conceal=True)
        self.stats = ReceiverStats()
        self.view: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self.image: np.ndarray | None = None  #: the newest rendered picture
        self.face_present = True
        self._latest: MotionPacket | None = None
        self._wake = asyncio.Event()
        self._last_request: dict[ControlType, float] = {}
        self._last_seq: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._have_keyframe = False
        self._last_decoded: object | None = None
        self._rerender = False

    # --- input ---------------------------------------------------------------------------------

    def on_control_message(self, data: bytes | str) -> None:
        """A message from the reliable channel: a keyframe or a control packet."""
        packet = self._decode(data)
        if isinstance(packet, KeyframePacket):
            try:
                self.decoder.add_keyframe(packet)
                self.renderer.set_keyframe(packet)
            except (PacketError, ValueError) as exc:
                self._bad(f"keyframe {packet.keyframe_id}: {exc}")
                return
            self._have_keyframe = True
            if self.stats.first_keyframe_at is None:
                self.stats.first_keyframe_at = time.monotonic()
            self.stats.keyframes += 1
            self.stats.keyframe_bytes += len(data)
            self.image = self.renderer.keyframe_image
            if self.image is not None and self.on_frame is not None:
                self.on_frame(self.image, packet.timestamp_ms)
        elif isinstance(packet, ControlPacket):
            self.stats.control_packets += 1
            if packet.type is ControlType.NO_FACE:
                self.face_present = False
            elif packet.type is ControlType.FACE_FOUND:
                self.face_present = True
        elif packet is not None:
            self._bad("a motion packet came on the control channel")

    def on_motion_message(self, data: bytes | str) -> None:
        """A message from the unreliable channel: keep only the newest motion packet."""
        packet = self._decode(data)
        if packet is None:
            return
        if not isinstance(packet, MotionPacket):
            self._bad("a non-motion packet came on the motion channel")
            return
        self.stats.motion_packets += 1
        self.stats.motion_bytes += len(data)
        if self.stats.first_motion_at is None:
            self.stats.first_motion_at = time.monotonic()
        if self._last_seq is not None:
            gap = (packet.seq - self._last_seq) % 2**32
            if 1 < gap < 2**31:
                self.stats.lost_motion += gap - 1
            if gap == 0 or gap >= 2**31:  # duplicate or late: older than what we have
                self.stats.dropped_stale += 1
                return
        self._last_seq = packet.seq
        if self._latest is not None:
            self.stats.dropped_stale += 1
            # a dropped packet still feeds the prediction chain
            self._decode_motion(self._latest)
        self._latest = packet
        self._wake.set()

    def _decode(self, data: bytes | str) -> object | None:
        if isinstance(data, str):
            self._bad("a text message is not a packet")
            return None
        try:
            return decode_packet(data)
        except PacketError as exc:
            self._bad(str(exc))
            return None

    def _bad(self, message: str) -> None:
        self.stats.bad_packets += 1
        self.stats.last_error = message
        log.warning("dropped a bad packet: %s", message)

    # --- requests ------------------------------------------------------------------------------

    def _request(self, kind: ControlType, reason: str) -> None:
        now = time.monotonic()
        if now - self._last_request.get(kind, -1e9) < REQUEST_INTERVAL:
            return
        self._last_request[kind] = now
        self.stats.requests_sent += 1
        self.send_control(encode_packet(ControlPacket(kind, 0, reason=reason)))

    def check_keyframe(self) -> None:
        """Ask for a keyframe when there is none yet (call periodically)."""
        if not self._have_keyframe:
            self._request(ControlType.KEYFRAME_REQUEST, "no keyframe yet")

    # --- rendering -----------------------------------------------------------------------------

    def _decode_motion(self, packet: MotionPacket) -> object | None:
        try:
            decoded = self.decoder.decode(packet)
        except PacketError as exc:
            self._bad(str(exc))
            return None
        if decoded is None:
            self.stats.undecodable += 1
            if packet.keyframe_id not in self.decoder.keyframe_ids:
                self._request(ControlType.KEYFRAME_REQUEST, f"no keyframe {packet.keyframe_id}")
            else:
                self._request(ControlType.MOTION_REFRESH, f"packet {packet.seq} lost its reference")
        elif not self.decoder.resynchronized:  # concealed: ask for an absolute packet to be exact again
            self._request(ControlType.MOTION_REFRESH, f"packet {packet.seq} decoded approximately")
        return decoded

    async def _render_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            packet, self._latest = self._latest, None
            if packet is not None:
                decoded = self._decode_motion(packet)
                if decoded is None:
                    continue  # concealment: the last picture stays on screen
                self._last_decoded = decoded
            elif self._rerender and self._last_decoded is not None:
                decoded = self._last_decoded  # the viewer turned the head: same motion, new view
            else:
                continue
            self._rerender = False
            start = time.perf_counter()
            try:
                image = await asyncio.to_thread(self.renderer.render, decoded, self.view)  # type: ignore[arg-type]
            except Exception as exc:  # a renderer bug must not end the call
                self._bad(f"rendering failed: {exc}")
                continue
            self.stats.render_ms.append((time.perf_counter() - start) * 1000)
            self.stats.rendered += 1
            now = time.monotonic()
            self.stats.render_times.append(now)
            timestamp = decoded.timestamp_ms  # type: ignore[attr-defined]
            if self.clock is not None and packet is not None:
                self.stats.latency_ms.append((now - self.clock(timestamp)) * 1000)
            self.image = image
            if self.on_frame is not None:
                self.on_frame(image, timestamp)

    def rerender(self) -> None:
        """Render the last motion again (the viewer's rotation changed)."""
        self._rerender = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._render_loop())

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
