"""Motion from the audio RTP packets: the receiving end of ``sender.carrier``.

The sender puts the motion messages of each 60 ms on the call's audio packets, as one RFC 8285
header-extension element (:data:`codec.packets.bundle.MOTION_EXTENSION_URI`); when the receiver
reports loss, an element also repeats the previous packets' messages.  :class:`MotionReceiver`
takes each element out as aiortc parses the packet, splits it
(:func:`codec.packets.bundle.split_bundle`), drops the copies it has already passed on, and
hands every other message to ``deliver``: the session's ``on_motion_message``, exactly as if it
had come on the ``motion`` data channel (which stays, for older senders and as the sender's
fallback).  A malformed element is counted and dropped.

**Pacing**: an element brings the motion of ~60 ms at once (two frames at 30 fps), and the
session paints only the newest of what it finds queued: handed on together, half the frames
would never be shown (17 fps).  So the first new message goes on at once and the others are
spread over the time until the next element is due (the elements' mean spacing, divided evenly);
an element that arrives first hands on what is still waiting.  The newest frame of an element is
shown ~30 ms later than without pacing, every frame is shown; ``pace=False`` turns it off.
Pacing only pays where the renderer can paint more than one frame per element: when painting a
frame takes :data:`UNPACED_RENDER_SHARE` of the elements' spacing or more (a CPU-bound receiver),
an element's messages go on together and the newest is painted at once (~30 ms sooner, about
as many frames shown).

Where it hooks (aiortc 1.16; ``tests/test_carrier.py`` fails if that moves):
``RTCDtlsTransport._handle_rtp_data`` parses every RTP packet (after SRTP has authenticated it)
with ``RtpPacket.parse(data, self._rtp_header_extensions_map)``, in the transport's task on the
event loop.  :meth:`MotionReceiver.attach` replaces that instance attribute of the audio track's
transport with :class:`MotionExtensionReader`, whose ``get`` also hands the motion element to the
receiver; it is called from ``pc.on("track")``, which aiortc emits once the offer's transports
are bundled and before any packet can flow.  The element's id comes from the transport's
``configure`` (the negotiated parameters) and, should that have run already, from the remote
description's ``a=extmap`` line.  Nothing here may raise into aiortc.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, unpack_header_extensions

from codec.packets import PacketError
from codec.packets.bundle import MOTION_EXTENSION_URI, split_bundle

__all__ = [
    "TRANSPORT_MAP_ATTRIBUTE",
    "CarrierReceiveStats",
    "MotionExtensionReader",
    "MotionReceiver",
    "register_motion_extension",
]

log = logging.getLogger(__name__)

#: the attribute where aiortc's RTCDtlsTransport keeps the map it parses RTP packets with
TRANSPORT_MAP_ATTRIBUTE = "_rtp_header_extensions_map"
#: seconds a message is remembered to drop its repeated copies: a copy comes at most two packets
#: (~120 ms) after the first.  No longer: a motion message carries its sequence number modulo 16,
#: so two different messages 16 frames apart (530 ms at 30 fps) can be the same bytes.  A copy
#: that comes later still is dropped by the decoder (an old sequence number).
SEEN_SECONDS = 0.2
#: the spacing of the elements (seconds) assumed before it is measured: one per 60 ms audio packet
ELEMENT_INTERVAL = 0.06
#: a renderer that takes this share of the elements' spacing (or more) per frame is not paced
UNPACED_RENDER_SHARE = 0.8
#: measured spacings outside this range (seconds) are a stall or a burst, not the packet rate
_INTERVAL_RANGE = (0.01, 0.12)


def register_motion_extension() -> int:
    """Accept (and offer) :data:`MOTION_EXTENSION_URI` on audio in this process's aiortc peer
    connections (before the answer is made); idempotent; returns its id (the smallest free
    one-byte-header id; an answer uses the offer's id anyway).  Same as
    ``sender.carrier.register_motion_extension``: the two sides do not import each other."""
    from aiortc.codecs import HEADER_EXTENSIONS

    for extension in HEADER_EXTENSIONS["audio"]:
        if extension.uri == MOTION_EXTENSION_URI:
            return extension.id
    used = {extension.id for extensions in HEADER_EXTENSIONS.values() for extension in extensions}
    free = min(set(range(1, 15)) - used)
    HEADER_EXTENSIONS["audio"].append(RTCRtpHeaderExtensionParameters(id=free, uri=MOTION_EXTENSION_URI))
    return free


@dataclass
class CarrierReceiveStats:
    """What came on the audio packets (the receiver's ``/stats`` ``carrier``)."""

    elements: int = 0  #: motion elements received
    element_bytes: int = 0
    messages: int = 0  #: messages passed on (first copies)
    bytes: int = 0
    duplicates: int = 0  #: copies of messages already passed on (the sender's redundancy)
    malformed: int = 0  #: elements that were not a bundle of messages (dropped whole)
    unpaced: int = 0  #: elements of several messages handed on together (the renderer is too slow to pace)
    errors: int = 0  #: failures inside the hook (the packet still went on)
    last_error: str = ""

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


class MotionExtensionReader(HeaderExtensionsMap):
    """aiortc's header-extension map that also hands the motion element's data to ``on_element``
    (never raising: ``on_element`` is called inside aiortc's RTP parsing)."""

    def __init__(self, on_element: Callable[[bytes], None], motion_id: int | None = None) -> None:
        super().__init__()
        self.on_element = on_element
        self.motion_id = motion_id

    def configure(self, parameters: RTCRtpParameters) -> None:
        super().configure(parameters)
        for extension in parameters.headerExtensions:
            if extension.uri == MOTION_EXTENSION_URI:
                self.motion_id = extension.id

    def get(self, extension_profile: int, extension_value: bytes) -> HeaderExtensions:
        values = super().get(extension_profile, extension_value)  # a truncated block raises: aiortc drops the packet
        if self.motion_id is not None:
            for x_id, x_value in unpack_header_extensions(extension_profile, extension_value):
                if x_id == self.motion_id:
                    self.on_element(bytes(x_value))
        return values


class MotionReceiver:
    """The motion elements of one call's audio packets, passed on as motion messages.

    Args:
        deliver: called (on the event loop) with each new message: the session's
            ``on_motion_message``.
        pace: spread the messages of an element over the time until the next (see the module).
        render_seconds: how long the session takes to paint a frame (None: not known yet); a
            renderer slower than :data:`UNPACED_RENDER_SHARE` of the elements' spacing is not paced.

    Creating one registers the extension (:func:`register_motion_extension`): make it before
    the call's answer.
    """

    def __init__(
        self,
        deliver: Callable[[bytes], None],
        pace: bool = True,
        render_seconds: Callable[[], float | None] | None = None,
    ) -> None:
        register_motion_extension()
        self.deliver = deliver
        self.pace = pace
        self.render_seconds = render_seconds
        self.stats = CarrierReceiveStats()
        self.readers: list[MotionExtensionReader] = []
        self.interval = ELEMENT_INTERVAL  #: the elements' mean spacing, seconds
        self._seen: dict[bytes, float] = {}  # message -> when it came
        self._order: deque[tuple[float, bytes]] = deque()
        self._last_element_at: float | None = None
        self._waiting: deque[bytes] = deque()  # paced messages not handed on yet
        self._timer: asyncio.TimerHandle | None = None
        self._step = ELEMENT_INTERVAL / 2  # seconds between paced messages of the current element

    def attach(self, pc: Any, track: Any) -> bool:
        """Read the motion on the packets of ``track``, a remote audio track of ``pc`` (call it
        from ``pc.on("track")``).  False when ``pc`` has no receiver for it (nothing changed).

        Raises:
            RuntimeError: aiortc's RTCDtlsTransport parses RTP with something else now.
        """
        for transceiver in pc.getTransceivers():
            if transceiver.receiver.track is not track:
                continue
            transport = transceiver.receiver.transport
            old = getattr(transport, TRANSPORT_MAP_ATTRIBUTE, None)
            if isinstance(old, MotionExtensionReader):  # bundled with an already attached track
                return True
            if not isinstance(old, HeaderExtensionsMap):
                raise RuntimeError(f"aiortc's RTCDtlsTransport has no {TRANSPORT_MAP_ATTRIBUTE} any more: motion "
                                   "cannot be read from the audio packets (see receiver/carrier.py)")  # fmt: skip
            reader = MotionExtensionReader(self.on_element, _offered_id(pc))
            vars(reader).update({k: v for k, v in vars(old).items() if k.startswith("_HeaderExtensionsMap")})
            setattr(transport, TRANSPORT_MAP_ATTRIBUTE, reader)
            self.readers.append(reader)
            return True
        return False

    def on_element(self, data: bytes) -> None:
        """One element's data: its new messages go to ``deliver``.  Never raises."""
        try:
            self.stats.elements += 1
            self.stats.element_bytes += len(data)
            try:
                messages = split_bundle(data)
            except PacketError as exc:
                self.stats.malformed += 1
                self.stats.last_error = str(exc)
                log.warning("dropped a malformed motion element: %s", exc)
                return
            self._forget(time.monotonic() - SEEN_SECONDS)
            new = []
            for message in messages:
                if message in self._seen:
                    self.stats.duplicates += 1
                    continue
                self._remember(message)
                self.stats.messages += 1
                self.stats.bytes += len(message)
                new.append(message)
            self._hand_on(new)
        except Exception as exc:  # never into aiortc's RTP parsing
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("motion carrier failed on an audio packet")

    def _hand_on(self, messages: list[bytes]) -> None:
        """The first at once, the others paced (what still waits from the last element goes first)."""
        self.flush()
        now = time.monotonic()
        spacing = None if self._last_element_at is None else now - self._last_element_at
        if spacing is not None and _INTERVAL_RANGE[0] <= spacing <= _INTERVAL_RANGE[1]:
            self.interval += 0.1 * (spacing - self.interval)
        self._last_element_at = now
        if len(messages) <= 1 or not self._pacing():
            for message in messages:
                self.deliver(message)
            return
        self.deliver(messages[0])
        self._waiting.extend(messages[1:])
        self._step = self.interval / len(messages)
        self._timer = asyncio.get_running_loop().call_later(self._step, self._next)

    def _pacing(self) -> bool:
        """Whether to pace now: asked for, and the renderer has time for the paced frames."""
        if not self.pace:
            return False
        render = self.render_seconds() if self.render_seconds is not None else None
        if render is not None and render >= UNPACED_RENDER_SHARE * self.interval:
            self.stats.unpaced += 1
            return False
        return True

    def _next(self) -> None:
        self._timer = None
        if self._waiting:
            self.deliver(self._waiting.popleft())
        if self._waiting:
            self._timer = asyncio.get_running_loop().call_later(self._step, self._next)

    def flush(self) -> None:
        """Hand on every paced message now (a new element came, or the call ends)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            self.deliver(self._waiting.popleft())

    def _remember(self, message: bytes) -> None:
        now = time.monotonic()
        self._seen[message] = now
        self._order.append((now, message))

    def _forget(self, before: float) -> None:
        while self._order and self._order[0][0] < before:
            seen_at, message = self._order.popleft()
            if self._seen.get(message) == seen_at:
                del self._seen[message]


def _offered_id(pc: Any) -> int | None:
    """The motion element's id in the remote description's ``a=extmap`` lines, if any."""
    description = getattr(pc, "remoteDescription", None)
    sdp = getattr(description, "sdp", None) or ""
    found = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(MOTION_EXTENSION_URI)}\s*$", sdp, flags=re.MULTILINE)
    return int(found.group(1)) if found else None
