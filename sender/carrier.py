"""Motion on the audio RTP packets: one RFC 8285 header-extension element per packet.

A motion message on the ``motion`` data channel costs ~93 bytes of IP/UDP/DTLS/SCTP headers for
~8 bytes of motion, 30 times a second, and a SACK comes back for each.  The call's Opus track
sends a packet every 60 ms, silence included, so :class:`MotionCarrier` queues the motion
messages and every outgoing audio packet takes the queue as one header-extension element
(:data:`codec.packets.bundle.MOTION_EXTENSION_URI`, :func:`codec.packets.bundle.bundle_messages`):
a few bytes instead of a datagram.

- **Latency**: a message waits for the next audio packet (60 ms at most); one older than
  :data:`MAX_AGE` when its packet leaves is dropped (late motion is worthless).
- **Fallback**: while no audio packet has left for :data:`AUDIO_STALL` (the extension is not
  negotiated: an older receiver; the sound stalled), messages go on the data channel, the
  waiting ones with them.  When a message would make the queue exceed one element (255 bytes,
  32 messages), the oldest waiting ones go on the data channel: they are still fresh and the
  channel delivers them at once, where dropping them would cost the decoder a loss and a refresh.
- **Loss**: a lost audio packet takes its motion with it.  When the receiver's RTCP reports say
  audio packets are lost (``getStats()``'s ``remote-inbound-rtp``, every 2.5-7.5 s: see
  ``sender.thin_link``), each element also repeats the messages of the previous one or two
  packets (:func:`redundancy_for`), so a message is lost only when 2 or 3 packets in a row are;
  the receiver drops the copies it already has.  The receiver's refresh requests (it lost
  motion) tell of a loss sooner: each adds a copy (:meth:`MotionCarrier.on_refresh_request`).
  Without loss, no copies: bytes matter.

Where it hooks (aiortc 1.16; ``tests/test_carrier.py`` fails if that moves): an
``RTCRtpSender`` serializes each packet with ``packet.serialize(self.__rtp_header_extensions_map)``
(``_run_rtp``, and ``_retransmit`` for NACKs); that private attribute
(``_RTCRtpSender__rtp_header_extensions_map``, a ``HeaderExtensionsMap``) is replaced, for the
audio sender of this call only, by :class:`MotionExtensionWriter`, whose ``configure`` learns
the negotiated id and whose ``set`` appends the element.  The bundle is remembered on the
packet's ``extensions`` object, so a retransmission (RTX keeps that object) repeats it instead
of taking the queue again.  Nothing here may raise into aiortc: its RTP task would stop the
sound; a failure is counted in ``hook_errors`` and the packet leaves without motion.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, pack_header_extensions, unpack_header_extensions

from codec.packets.bundle import MAX_BUNDLE_BYTES, MAX_BUNDLE_MESSAGES, MOTION_EXTENSION_URI, bundle_messages

__all__ = [
    "AUDIO_STALL",
    "MAX_AGE",
    "SENDER_MAP_ATTRIBUTE",
    "CarrierStats",
    "MotionCarrier",
    "MotionExtensionWriter",
    "redundancy_for",
    "register_motion_extension",
    "without_unused_audio_extensions",
]

log = logging.getLogger(__name__)

#: a message older than this (seconds) when its audio packet leaves is dropped
MAX_AGE = 0.15
#: no audio packet for this long (seconds): messages go on the data channel
AUDIO_STALL = 0.10
#: previous packets whose messages an element may repeat
MAX_REDUNDANCY = 2
#: copies before the first loss report
INITIAL_REDUNDANCY = 0
#: a loss keeps its redundancy this long (seconds) after the report that showed it
LOSS_HOLD = 10.0
#: how often (seconds, at most) the sender's RTCP statistics are read
POLL_INTERVAL = 0.25
#: header extensions aiortc sends on every audio packet that this call's receiver has no use for:
#: the media id (it routes by the SSRC the offer signals, as libwebrtc does once the first report
#: came) and the audio level (for mixers); 4 bytes a packet, 0.5 kbps at 60 ms
UNUSED_AUDIO_EXTENSIONS = ("urn:ietf:params:rtp-hdrext:sdes:mid", "urn:ietf:params:rtp-hdrext:ssrc-audio-level")
#: a refresh request (the receiver lost motion) adds one copy at most this often (seconds): one
#: loss sends several requests
ESCALATION_INTERVAL = 0.5
#: the private attribute where aiortc's RTCRtpSender keeps its header-extension map
SENDER_MAP_ATTRIBUTE = "_RTCRtpSender__rtp_header_extensions_map"
#: where the bundle of a packet is remembered (on its HeaderExtensions object)
_BUNDLE_ATTRIBUTE = "facevc_motion_bundle"


def register_motion_extension() -> int:
    """Offer and accept :data:`MOTION_EXTENSION_URI` on audio in this process's aiortc peer
    connections (call it before an offer or answer is made); idempotent.  Returns its id: the
    smallest one-byte-header id no aiortc extension uses (ids are shared by audio and video
    under BUNDLE).  A peer that does not offer or accept the URI simply does not get it."""
    from aiortc.codecs import HEADER_EXTENSIONS

    for extension in HEADER_EXTENSIONS["audio"]:
        if extension.uri == MOTION_EXTENSION_URI:
            return extension.id
    used = {extension.id for extensions in HEADER_EXTENSIONS.values() for extension in extensions}
    free = min(set(range(1, 15)) - used)
    HEADER_EXTENSIONS["audio"].append(RTCRtpHeaderExtensionParameters(id=free, uri=MOTION_EXTENSION_URI))
    return free


def without_unused_audio_extensions(sdp: str) -> str:
    """``sdp`` (this call's offer) without the ``a=extmap`` lines of
    :data:`UNUSED_AUDIO_EXTENSIONS` in its audio section: the answer then does not accept them,
    and aiortc's sender leaves them out of every packet (it writes only negotiated extensions)."""
    sections = re.split(r"\r\n(?=m=)", sdp)
    for index, section in enumerate(sections):
        if not section.startswith("m=audio"):
            continue
        for uri in UNUSED_AUDIO_EXTENSIONS:
            section = re.sub(rf"\r\na=extmap:\d+(?:/\w+)? {re.escape(uri)}(?=\r\n|$)", "", section)
        sections[index] = section
    return "\r\n".join(sections)


def redundancy_for(loss: float) -> int:
    """Previous packets to repeat at this fraction of audio packets lost: none without loss,
    one below 5 % (a message is then lost with two packets in a row: < 0.25 %), two above."""
    if loss <= 0:
        return 0
    return 1 if loss < 0.05 else MAX_REDUNDANCY


@dataclass
class CarrierStats:
    """What the carrier did (the sender's ``SenderStats.carrier``, in ``--status-json``)."""

    negotiated: bool = False  #: the receiver accepted the extension
    carrier_messages: int = 0  #: motion messages sent on audio packets (first copies)
    carrier_bytes: int = 0  #: ... their bytes
    carrier_wait: float = 0.0  #: seconds those messages waited for their audio packet, summed
    redundant_messages: int = 0  #: copies repeated for loss
    redundant_bytes: int = 0
    element_bytes: int = 0  #: what the elements added to the audio packets (element headers, padding)
    audio_packets: int = 0  #: audio packets that left while the extension was negotiated
    packets_with_motion: int = 0
    channel_messages: int = 0  #: motion messages sent on the data channel (fallback, overflow)
    channel_bytes: int = 0
    overflow: int = 0  #: of those, sent there because the queue would have exceeded one element
    dropped_late: int = 0  #: older than MAX_AGE before a packet could take them
    dropped_closed: int = 0  #: no audio packet and the data channel not open
    redundancy: int = INITIAL_REDUNDANCY  #: previous packets repeated now
    loss: float | None = None  #: fraction of audio packets lost in the latest RTCP report
    hook_errors: int = 0  #: failures inside the hook (the packet left without motion)


class MotionExtensionWriter(HeaderExtensionsMap):
    """aiortc's header-extension map plus the motion element: ``take()`` gives the bundle for a
    new packet (``b""``: none); the negotiated id comes from ``configure``."""

    def __init__(
        self,
        take: Callable[[], bytes],
        on_negotiated: Callable[[int], None] | None = None,
        on_element: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.take = take
        self.on_negotiated = on_negotiated
        self.on_element = on_element  #: called with the bytes each element added to its packet
        self.motion_id: int | None = None

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for extension in parameters.headerExtensions:
            if extension.uri == MOTION_EXTENSION_URI:
                self.motion_id = extension.id
                if self.on_negotiated is not None:
                    self.on_negotiated(extension.id)

    def set(self, values: HeaderExtensions) -> tuple[int, bytes]:
        profile, value = super().set(values)
        if self.motion_id is None:
            return profile, value
        bundle = getattr(values, _BUNDLE_ATTRIBUTE, None)
        if bundle is None:  # a new packet (a retransmission keeps its extensions object: the same bundle)
            bundle = self.take()
            setattr(values, _BUNDLE_ATTRIBUTE, bundle)
        if not bundle:
            return profile, value
        elements = unpack_header_extensions(profile, value)
        profile, extended = pack_header_extensions([*elements, (self.motion_id, bundle)])
        if self.on_element is not None:  # + the extension block's 4-byte header when the element made it
            self.on_element(len(extended) + 4 * (not value) - len(value))
        return profile, extended


class MotionCarrier:
    """Send motion messages on the audio packets of ``audio_sender`` (an ``RTCRtpSender``),
    falling back to ``channel`` (the ``motion`` data channel).  Create it before the offer.

    Args:
        audio_sender: what ``pc.addTrack(audio)`` returned; its map is replaced now.
        channel: the unreliable ``motion`` data channel.
        stats: where to count (default: a new :class:`CarrierStats`).
        clock: monotonic seconds (tests pass their own).

    Raises:
        RuntimeError: aiortc's RTCRtpSender keeps its header-extension map elsewhere now.
    """

    def __init__(
        self,
        audio_sender: Any,
        channel: Any,
        stats: CarrierStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        register_motion_extension()
        old = getattr(audio_sender, SENDER_MAP_ATTRIBUTE, None)
        if not isinstance(old, HeaderExtensionsMap):
            raise RuntimeError(f"aiortc's RTCRtpSender has no {SENDER_MAP_ATTRIBUTE} any more: motion cannot ride "
                               "on the audio packets (see sender/carrier.py)")  # fmt: skip
        self.sender = audio_sender
        self.channel = channel
        self.stats = stats if stats is not None else CarrierStats()
        self.clock = clock
        self.writer = MotionExtensionWriter(self._take_safely, self._on_negotiated, self._on_element)
        vars(self.writer).update({k: v for k, v in vars(old).items() if k.startswith("_HeaderExtensionsMap")})
        setattr(audio_sender, SENDER_MAP_ATTRIBUTE, self.writer)
        self._queue: deque[tuple[float, bytes]] = deque()  # (queued at, message)
        self._queued_bytes = 0
        self._history: deque[list[bytes]] = deque(maxlen=MAX_REDUNDANCY)  # fresh messages of the last packets
        self._last_packet_at: float | None = None
        self._lossy: deque[tuple[float, int]] = deque()  # (report time, redundancy it asked for)
        self._reported = False
        self._report_stamp: Any = None
        self._polled_at = -POLL_INTERVAL
        self._escalated_at = -ESCALATION_INTERVAL
        self._poll: asyncio.Task[None] | None = None

    def _on_negotiated(self, _: int) -> None:
        self.stats.negotiated = True

    def _on_element(self, size: int) -> None:
        self.stats.element_bytes += size

    # --- messages in (event loop) --------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Queue ``message`` for the next audio packet, or send it on the data channel now."""
        now = self.clock()
        if self._last_packet_at is None or now - self._last_packet_at > AUDIO_STALL:
            self._flush_to_channel(now)
            self._to_channel(message)
            return
        while self._queue and (self._queued_bytes + len(message) > MAX_BUNDLE_BYTES
                               or len(self._queue) >= MAX_BUNDLE_MESSAGES):  # fmt: skip
            _, oldest = self._queue.popleft()
            self._queued_bytes -= len(oldest)
            self.stats.overflow += 1
            self._to_channel(oldest)
        if len(message) > MAX_BUNDLE_BYTES:  # never fits an element
            self.stats.overflow += 1
            self._to_channel(message)
            return
        self._queue.append((now, message))
        self._queued_bytes += len(message)

    def _flush_to_channel(self, now: float) -> None:
        while self._queue:
            queued_at, message = self._queue.popleft()
            if now - queued_at > MAX_AGE:
                self.stats.dropped_late += 1
            else:
                self._to_channel(message)
        self._queued_bytes = 0

    def _to_channel(self, message: bytes) -> None:
        if getattr(self.channel, "readyState", "open") != "open":
            self.stats.dropped_closed += 1
            return
        self.channel.send(message)
        self.stats.channel_messages += 1
        self.stats.channel_bytes += len(message)

    # --- the audio packets (aiortc's RTP task, event loop) -------------------------------------

    def _take_safely(self) -> bytes:
        try:
            return self.take()
        except Exception:  # a bug here must not stop the sound
            self.stats.hook_errors += 1
            log.exception("motion carrier failed; this audio packet leaves without motion")
            return b""

    def take(self) -> bytes:
        """The element of the packet that leaves now: the copies of the previous packets' messages
        (as many as the redundancy asks and fit), then the waiting messages; ``b""`` when none."""
        now = self.clock()
        self._last_packet_at = now
        self.stats.audio_packets += 1
        self._maybe_poll(now)
        fresh: list[bytes] = []
        for queued_at, message in self._queue:
            if now - queued_at > MAX_AGE:
                self.stats.dropped_late += 1
            else:
                fresh.append(message)
                self.stats.carrier_wait += now - queued_at
        self._queue.clear()
        self._queued_bytes = 0
        level = self.redundancy(now)
        self.stats.redundancy = level
        room, count = MAX_BUNDLE_BYTES - sum(map(len, fresh)), MAX_BUNDLE_MESSAGES - len(fresh)
        copies: list[bytes] = []
        older = [message for previous in list(self._history)[len(self._history) - level :] for message in previous]
        for message in reversed(older):  # the newest copies first, as many as fit; then in sending order
            if len(message) > room or count == 0:
                break
            copies.append(message)
            room, count = room - len(message), count - 1
        copies.reverse()
        self._history.append(fresh)
        if not fresh and not copies:
            return b""
        self.stats.packets_with_motion += 1
        self.stats.carrier_messages += len(fresh)
        self.stats.carrier_bytes += sum(map(len, fresh))
        self.stats.redundant_messages += len(copies)
        self.stats.redundant_bytes += sum(map(len, copies))
        return bundle_messages([*copies, *fresh])

    # --- loss and redundancy -------------------------------------------------------------------

    def redundancy(self, now: float) -> int:
        """Previous packets to repeat now: the most any report of the last :data:`LOSS_HOLD`
        seconds asked for; :data:`INITIAL_REDUNDANCY` before the first report."""
        while self._lossy and now - self._lossy[0][0] > LOSS_HOLD:
            self._lossy.popleft()
        if not self._reported and not self._lossy:
            return INITIAL_REDUNDANCY
        return max((level for _, level in self._lossy), default=0)

    def on_loss_report(self, fraction_lost: float, now: float) -> None:
        """An RTCP receiver report on the audio: ``fraction_lost`` of its packets since the last."""
        self._reported = True
        self.stats.loss = fraction_lost
        level = redundancy_for(fraction_lost)
        if level:
            self._lossy.append((now, level))

    def on_refresh_request(self, now: float) -> None:
        """The receiver asked for a motion refresh: it lost motion despite the copies sent now.
        That is a loss report that needs no RTCP (reports come every 2.5-7.5 s): one more copy
        per element (up to :data:`MAX_REDUNDANCY`), held like a report's, at most once per
        :data:`ESCALATION_INTERVAL`."""
        if now - self._escalated_at < ESCALATION_INTERVAL:
            return
        self._escalated_at = now
        self._lossy.append((now, min(self.redundancy(now) + 1, MAX_REDUNDANCY)))

    def _maybe_poll(self, now: float) -> None:
        if self._poll is not None or now - self._polled_at < POLL_INTERVAL:
            return
        self._polled_at = now
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in aiortc's RTP task (a test serializing by hand): nothing to read
            return
        self._poll = loop.create_task(self._read_report())
        self._poll.add_done_callback(self._polled)

    def _polled(self, _: asyncio.Task[None]) -> None:
        self._poll = None

    async def _read_report(self) -> None:
        """The latest receiver report, from the sender's ``getStats()``.  aiortc 1.16 stores the
        report's 8-bit fixed-point ``fraction lost`` as it is (0-255) in ``fractionLost``."""
        try:
            report = await self.sender.getStats()
            for stats in report.values():
                if getattr(stats, "type", None) == "remote-inbound-rtp" and stats.timestamp != self._report_stamp:
                    self._report_stamp = stats.timestamp
                    self.on_loss_report(float(stats.fractionLost) / 256, self.clock())
        except Exception:
            self.stats.hook_errors += 1
            log.exception("could not read the audio sender's loss statistics")
