"""The sending peer of a call (aiortc).

One RTCPeerConnection to the receiver:

- motion: on the audio packets, one RTP header-extension element each (:mod:`sender.carrier`);
  data channel ``motion`` (unordered, no retransmission: a late motion packet is worthless) when
  the receiver does not take them there or the sound stalls;
- data channel ``control``: reliable and ordered: keyframes and control messages, both ways;
- an Opus audio track: the source's sound, or silence when it has none (:mod:`sender.audio`:
  mono speech at ``audio_kbps``, 60 ms packets, DTX; one packet every 60 ms, silence included);
  each packet waits for the motion of its 60 ms (:mod:`sender.av_sync`).

Signaling: the sender POSTs its SDP offer to the receiver's ``/call/offer`` with the call's
token in the ``X-Call-Token`` header and gets the answer back (no third-party server).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from codec.closed_loop import ClosedLoop, PictureCheck
from codec.edits import FaceEdits
from codec.encoder import Encoder
from codec.packets import (
    BodyPacket,
    ControlPacket,
    ControlType,
    KeyframePacket,
    MotionPacket,
    MouthPacket,
    Packet,
    StreamConfig,
    encode_packet,
)
from codec.quality import DEFAULT_QUALITY, quality_level
from codec.render import DEFAULT_MODEL

from .audio import DEFAULT_AUDIO_KBPS, PACKET_MS, SpeechOpusEncoder, offer_opus_parameters, use_speech_encoder
from .av_sync import HoldStats, MotionSyncedAudioTrack, VideoProgress
from .carrier import CarrierStats, MotionCarrier, without_unused_audio_extensions
from .sources import FrameSource
from .thin_link import prefer_short_srtp_tag, space_rtcp_reports

__all__ = ["CallError", "SenderCall", "SenderStats"]

log = logging.getLogger(__name__)

#: motion packets are dropped (not queued) when this much is still waiting in the channel
MAX_BUFFERED = 64 * 1024


class CallError(RuntimeError):
    """The call could not be set up; the message says why (wrong token, no receiver, ...)."""


@dataclass
class SenderStats:
    frames: int = 0
    frames_with_face: int = 0
    motion_packets: int = 0
    motion_bytes: int = 0
    body_packets: int = 0  #: body messages (the motion outside the face), on the motion's path
    body_bytes: int = 0
    keyframes: int = 0
    keyframe_bytes: int = 0
    mouth_packets: int = 0  #: open mouths sent (:mod:`codec.mouth_sender`), on the control channel
    mouth_bytes: int = 0
    controls_received: int = 0
    dropped_by_test: int = 0
    dropped_backlog: int = 0
    carrier: CarrierStats = field(default_factory=CarrierStats)  #: motion on the audio packets vs the channel
    audio_hold: HoldStats = field(default_factory=HoldStats)  #: audio packets waiting for their motion
    keyframe_reasons: list[str] = field(default_factory=list)  #: why each keyframe was sent
    checks: int = 0  #: the receiver's pictures the closed loop checked
    references: int = 0  #: keyframes in the reference bank
    reference_switches: int = 0  #: motion moved to an older reference of the bank


class SenderCall:
    """Stream a source's motion to a receiver.

    Args:
        source: the camera or video file.
        config: stream settings (the frame rate is taken from the source).
        ice_servers: STUN/TURN URLs (none by default: loopback and LAN need none).
        motion_loss: test hook: drop this share of motion packets at random before sending.
        drop_keyframes: test hook: drop the first N keyframes.
        audio_kbps: the bitrate of the sound (Opus, 6 to 64 kbps).
        quality: the quality knob's level (:mod:`codec.quality`, 1 to 5).
        loop_model: the model the receiver paints with, run by the closed loop
            (:mod:`codec.closed_loop`) to check its picture; None: no closed loop.
        edits: edit the face before sending it (:mod:`codec.edits`); :meth:`edit` changes them.

    Raises:
        ValueError: ``audio_kbps`` or ``quality`` out of range.
    """

    def __init__(
        self,
        source: FrameSource,
        config: StreamConfig | None = None,
        ice_servers: list[str] | None = None,
        motion_loss: float = 0.0,
        drop_keyframes: int = 0,
        seed: int | None = None,
        audio_kbps: float = DEFAULT_AUDIO_KBPS,
        quality: int = DEFAULT_QUALITY,
        loop_model: str | None = DEFAULT_MODEL,
        edits: FaceEdits | None = None,
    ) -> None:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.audio_encoder = SpeechOpusEncoder(audio_kbps)  # first: a bad bitrate raises before a pc exists
        space_rtcp_reports()  # RFC 3550's 5 s, not aiortc's 1 s
        self.source = source
        base = config or StreamConfig()
        quality_level(quality)  # a bad level raises before the model loads
        closed_loop = ClosedLoop(loop_model) if loop_model is not None else None
        self.encoder = Encoder(StreamConfig(**{**base.__dict__, "fps": source.fps}), quality=quality,
                               closed_loop=closed_loop, wait_for_acks=True, edits=edits)  # fmt: skip
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(url) for url in ice_servers or []]))
        self.motion = self.pc.createDataChannel("motion", ordered=False, maxRetransmits=0)
        self.control = self.pc.createDataChannel("control", ordered=True)
        self.control.on("message", self._on_control)
        self.pc.on("connectionstatechange", self._on_state)
        self.stats = SenderStats()
        self.motion_loss = motion_loss
        self.drop_keyframes = drop_keyframes
        self._random = random.Random(seed)
        self.closed = asyncio.Event()
        self.started_at: float | None = None
        self.video_progress = VideoProgress(1 / source.fps)
        self.audio_track = MotionSyncedAudioTrack(
            source.call_audio_track(), self.video_progress, PACKET_MS / 1000, lambda: self.stats.carrier.negotiated
        )
        self.audio_track.stats = self.stats.audio_hold
        self.audio_sender = self.pc.addTrack(self.audio_track)
        use_speech_encoder(self.pc, self.audio_sender, self.audio_encoder)
        self.carrier = MotionCarrier(self.audio_sender, self.motion, self.stats.carrier)  # before the offer
        # one thread of its own encodes (and runs the closed loop's model): the default executor's
        # several threads each grow a malloc arena to the model's peak
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fvc-sender")
        self._checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fvc-sender-check")
        self._check_running: asyncio.Future[PictureCheck | None] | None = None

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.closed.set()

    def edit(self, edits: FaceEdits) -> None:
        """Edit the face the call sends from the next frame on (ramped: no jump)."""
        self.encoder.edit(edits)

    def _on_control(self, data: bytes | str) -> None:
        kind = self.encoder.on_control(data)
        if kind is None:
            return
        self.stats.controls_received += 1
        if kind is ControlType.MOTION_REFRESH:
            self.carrier.on_refresh_request(time.monotonic())
        if kind is ControlType.BYE:
            self.closed.set()

    async def connect(self, url: str, token: str, timeout: float = 15.0) -> None:
        """Offer/answer with the receiver at ``url`` (``http://host:port``).

        Raises:
            CallError: the receiver is unreachable, refused the token, or did not answer.
        """
        import aiohttp
        from aiortc import RTCSessionDescription

        await self.pc.setLocalDescription(await self.pc.createOffer())
        prefer_short_srtp_tag(self.pc)  # the transports exist now; the handshake starts after the answer
        sdp = without_unused_audio_extensions(
            offer_opus_parameters(self.pc.localDescription.sdp, self.audio_encoder.kbps)
        )
        offer = {"sdp": sdp, "type": self.pc.localDescription.type}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
                async with session.post(f"{url.rstrip('/')}/call/offer", json=offer,
                                        headers={"X-Call-Token": token}) as response:  # fmt: skip
                    body = await response.json(content_type=None)
                    if response.status != 200:
                        raise CallError(f"the receiver refused the call: {body.get('error', response.status)}")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise CallError(f"no receiver answers at {url} ({exc})") from exc
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        opened = asyncio.gather(self._wait_open(self.motion), self._wait_open(self.control))
        try:
            await asyncio.wait_for(opened, timeout)
        except TimeoutError as exc:
            raise CallError("the data channels did not open (is the receiver reachable?)") from exc

    @staticmethod
    async def _wait_open(channel: object) -> None:
        if getattr(channel, "readyState", "") == "open":
            return
        opened = asyncio.Event()
        channel.on("open", opened.set)  # type: ignore[attr-defined]
        await opened.wait()

    def _send(self, packet: Packet, data: bytes) -> None:
        if isinstance(packet, BodyPacket):  # with the motion, but not counted as motion frames
            self.stats.body_packets += 1
            self.stats.body_bytes += len(data)
            self.carrier.send(data)
        elif isinstance(packet, MotionPacket):
            if self.motion_loss and self._random.random() < self.motion_loss:
                self.stats.dropped_by_test += 1
                return
            if self.motion.bufferedAmount > MAX_BUFFERED:
                self.stats.dropped_backlog += 1
                return
            self.stats.motion_packets += 1
            self.stats.motion_bytes += len(data)
            self.carrier.send(data)  # on the next audio packet, or the data channel
        else:
            if isinstance(packet, KeyframePacket):
                if self.drop_keyframes > 0:
                    self.drop_keyframes -= 1
                    return
                self.stats.keyframes += 1
                self.stats.keyframe_bytes += len(data)
            elif isinstance(packet, MouthPacket):
                self.stats.mouth_packets += 1
                self.stats.mouth_bytes += len(data)
            self.control.send(data)

    async def run(self, max_seconds: float | None = None) -> None:
        """Send until the source ends, ``max_seconds`` pass, or the call closes."""
        self.started_at = time.monotonic()
        async for frame in self.source.frames():
            if self.closed.is_set() or (max_seconds is not None and frame.time >= max_seconds):
                break
            event_loop = asyncio.get_running_loop()
            encode = functools.partial(self.encoder.encode_frame, frame.image, frame.time, defer_check=True)
            output = await event_loop.run_in_executor(self._worker, encode)
            self.stats.frames += 1
            self.stats.frames_with_face += output.track.has_face
            if self.pc.connectionState in ("failed", "closed"):
                break
            if output.keyframe_reason is not None:
                self.stats.keyframe_reasons.append(output.keyframe_reason)
                log.info("keyframe at %.2f s: %s", frame.time, output.keyframe_reason)
            for packet, data in zip(output.packets, output.messages, strict=True):
                self._send(packet, data)
            if self.source.started_at is not None:  # its audio packet may leave now
                self.video_progress.frame_done(self.source.started_at + frame.time)
            # the closed loop's check (the receiver's model painting this frame) on a thread of its own, beside
            # the next frames (one at a time: a check due while one runs is dropped, the next frame defers another)
            check = self.encoder.take_deferred_check()
            if check is not None and (self._check_running is None or self._check_running.done()):
                self._check_running = event_loop.run_in_executor(self._checker, check)
            if self.encoder.closed_loop is not None:
                self.stats.checks = self.encoder.closed_loop.checks
            self.stats.references = len(self.encoder.bank)
            self.stats.reference_switches = self.encoder.bank.switches

    async def close(self) -> None:
        """Say goodbye and close the connection."""
        if self.control.readyState == "open":
            self.control.send(encode_packet(ControlPacket(ControlType.BYE, 0, reason="sender hung up")))
            await asyncio.sleep(0.05)
        self.source.close()
        await self.pc.close()
        self._worker.shutdown(wait=False, cancel_futures=True)
        self._checker.shutdown(wait=False, cancel_futures=True)
        self.closed.set()
