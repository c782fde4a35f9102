"""The call's sound at the receiver: Opus decoding that conceals lost packets.

aiortc decodes Opus with FFmpeg's libopus wrapper, which knows nothing of a lost packet: a lost
60 ms packet is 60 ms missing from the sound, two in a row 120 ms. And its audio jitter buffer
(16 packets, 4 prefetched) stalls on a missing packet until 16 later ones are in, then throws
a lump away: at 20 % random loss it hands on about 4 in 10 of the packets that did arrive,
with ~14 packets (840 ms) of delay. Here instead:

- :class:`ConcealingOpusDecoder` calls libopus itself (:mod:`codec.opus`): it finds a loss from
  the RTP timestamps of the frames it gets and fills it, rebuilding the last lost packet from
  the next one's in-band FEC when the sender coded some (from about 17 kbps), and by packet
  loss concealment (PLC) otherwise, so the sound has no holes; a damaged packet is counted and
  concealed like a lost one;
- :class:`PassingJitterBuffer` hands each packet on as it comes, dropping only late and
  repeated ones: the decoder's concealment is the loss handling, and no packet waits.

Hooks into aiortc 1.16 (``tests/test_audio.py`` checks that they still hold):

- the decoder: aiortc's decoder thread (``aiortc.rtcrtpreceiver.decoder_worker``) makes its
  decoder with the module-level ``get_decoder(codec)`` of ``aiortc.rtcrtpreceiver``; there is
  no per-receiver hook, so :func:`install_concealing_decoder` replaces that name (that module's
  only) with one that returns :class:`ConcealingOpusDecoder` for Opus and aiortc's decoders
  for the rest: every Opus receiver of the process uses it from then on;
- the jitter buffer: per receiver, its private ``__jitter_buffer``
  (``_RTCRtpReceiver__jitter_buffer``), made in its constructor and read on every packet.

:func:`conceal_audio_loss` does both for one remote audio track of a peer connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.utils import uint16_add

from codec.opus import SAMPLE_RATE, OpusDecoderState, OpusError, packet_has_fec, packet_samples

__all__ = [
    "AudioReceiveStats",
    "ConcealingOpusDecoder",
    "PassingJitterBuffer",
    "conceal_audio_loss",
    "install_concealing_decoder",
]

log = logging.getLogger(__name__)

#: a gap in the timestamps longer than this is a pause of the sender, not a loss: not filled
MAX_CONCEAL_SAMPLES = SAMPLE_RATE  # 1 s
#: libopus conceals in steps of 2.5 ms
_PLC_STEP = SAMPLE_RATE // 400
#: a packet this far behind the newest is a restarted stream, not a late one (as aiortc's buffer)
MAX_MISORDER = 100
RECEIVER_JITTER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"

_TIME_BASE = Fraction(1, SAMPLE_RATE)


@dataclass
class AudioReceiveStats:
    packets: int = 0
    #: packets rebuilt from the next packet's in-band FEC
    fec_recovered: int = 0
    #: sound made up by PLC, in samples (48 kHz)
    concealed_samples: int = 0
    #: packets libopus could not decode (concealed like lost ones)
    invalid: int = 0
    #: packets older than what was already played (dropped)
    late: int = 0
    #: gaps too long to fill (the output jumps ahead)
    pauses: int = 0


class ConcealingOpusDecoder(Decoder):
    """aiortc's audio decoder interface over libopus, with FEC and loss concealment.

    ``decode(JitterFrame(data, timestamp))`` returns one s16 stereo 48 kHz ``av.AudioFrame``
    (pts in 1/48000, the RTP timestamp) or none: when frames go missing, the returned frame
    starts where the previous one ended and holds the made-up sound before the packet's own, so
    the pts run on without gaps (but over a gap of more than ``max_conceal`` samples: a pause).
    It never raises on bad input: aiortc's decoder thread would die of anything but FFmpeg's
    errors. ``stats`` counts what happened.
    """

    def __init__(self, max_conceal: int = MAX_CONCEAL_SAMPLES) -> None:
        self.opus = OpusDecoderState(channels=2)
        self.max_conceal = max_conceal
        self.stats = AudioReceiveStats()
        self._next: int | None = None  # timestamp where the sound played so far ends

    def decode(self, encoded_frame: JitterFrame) -> list[Any]:
        data, timestamp = encoded_frame.data, encoded_frame.timestamp
        self.stats.packets += 1
        try:
            duration = packet_samples(data)
        except OpusError:
            self.stats.invalid += 1
            return []
        start = timestamp if self._next is None else self._next
        gap = timestamp - start
        if gap < 0:
            self.stats.late += 1
            return []
        pieces: list[np.ndarray] = []
        if gap > self.max_conceal:
            self.stats.pauses += 1
            start = timestamp
        elif gap >= _PLC_STEP:
            try:
                pieces.append(self._conceal(data, gap - gap % _PLC_STEP))
            except OpusError as exc:  # not expected: libopus takes any multiple of 2.5 ms
                log.warning("Opus loss concealment failed at %d: %s", timestamp, exc)
                start = timestamp
        try:
            pieces.append(self.opus.decode(data))
        except OpusError as exc:  # a packet with a valid header and a damaged body
            self.stats.invalid += 1
            log.debug("undecodable Opus packet at %d: %s", timestamp, exc)
            duration = 0
        self._next = timestamp + duration
        return [self._frame(pieces, start)] if pieces else []

    def _conceal(self, data: bytes, samples: int) -> np.ndarray:
        """``samples`` of sound for the packets lost before ``data``: the last one rebuilt from
        ``data``'s FEC when it has some, PLC for the rest."""
        if packet_has_fec(data) and samples >= packet_samples(data):
            try:
                pcm = self.opus.decode(data, samples, fec=True)
                self.stats.fec_recovered += 1
                self.stats.concealed_samples += samples - packet_samples(data)
                return pcm
            except OpusError:
                pass
        self.stats.concealed_samples += samples
        return self.opus.decode(None, samples)

    @staticmethod
    def _frame(pieces: list[np.ndarray], pts: int) -> Any:
        pcm = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = pts
        frame.time_base = _TIME_BASE
        return frame


class PassingJitterBuffer:
    """A stand-in for aiortc's audio ``JitterBuffer``: each packet goes on at once as a
    ``JitterFrame``; a packet older than one already passed on (late, repeated) is dropped.

    Same interface as aiortc's: ``add(packet) -> (pli_flag, frame or None)``.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self.late = 0

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        sequence = packet.sequence_number
        if self._last is not None:
            ahead = uint16_add(sequence, -self._last)
            behind = uint16_add(self._last, -sequence)
            if behind <= ahead and behind < MAX_MISORDER:  # at or before the last one passed on
                self.late += 1
                return False, None
        self._last = sequence
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


def install_concealing_decoder() -> None:
    """Make aiortc's receivers decode Opus with :class:`ConcealingOpusDecoder` (all of them, in
    this process; other codecs keep aiortc's decoders). Idempotent.

    Raises:
        RuntimeError: aiortc's decoder thread does not make its decoder with the module's
            ``get_decoder`` any more (a new aiortc): the hook would do nothing.
    """
    import aiortc.rtcrtpreceiver as module

    if getattr(module.get_decoder, "facevc_concealing", False):
        return
    if "get_decoder" not in module.decoder_worker.__code__.co_names:
        raise RuntimeError("aiortc's decoder_worker no longer calls get_decoder: the concealing Opus decoder "
                           "cannot be installed (see receiver/audio.py)")  # fmt: skip
    original = module.get_decoder

    def get_decoder(codec: Any) -> Decoder:
        if codec.mimeType.lower() == "audio/opus":
            return ConcealingOpusDecoder()
        return original(codec)

    get_decoder.facevc_concealing = True  # type: ignore[attr-defined]
    module.get_decoder = get_decoder


def conceal_audio_loss(pc: Any, track: Any) -> bool:
    """Loss concealment for the sound of ``track``, a remote audio track of ``pc`` (call it from
    ``pc.on("track")``, before packets flow): :func:`install_concealing_decoder`, and a
    :class:`PassingJitterBuffer` for that track's receiver. False when ``pc`` has no receiver
    for ``track`` (nothing changed).

    Raises:
        RuntimeError: aiortc's receiver keeps its jitter buffer elsewhere now (a new aiortc).
    """
    install_concealing_decoder()
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is track:
            if not hasattr(receiver, RECEIVER_JITTER_BUFFER_ATTRIBUTE):
                raise RuntimeError(f"aiortc's RTCRtpReceiver has no {RECEIVER_JITTER_BUFFER_ATTRIBUTE} any more: "
                                   "the audio jitter buffer cannot be replaced (see receiver/audio.py)")  # fmt: skip
            setattr(receiver, RECEIVER_JITTER_BUFFER_ATTRIBUTE, PassingJitterBuffer())
            return True
    return False
