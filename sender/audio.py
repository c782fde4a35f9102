"""The call's sound on the wire: an Opus encoder for speech at a few kilobits per second.

aiortc's own ``OpusEncoder`` sends 96 kbps stereo in 20 ms packets (50 packets a second,
83.5 kbps on the wire). :class:`SpeechOpusEncoder` sends mono speech (VoIP application, VBR)
at 11 kbps by default (the lowest rate libopus codes wideband; at 10 it falls to narrowband)
in 60 ms packets, with DTX: while nothing is said, libopus emits 1-byte
packets (a comfort-noise update every 420 ms or so). A payload still leaves every 60 ms, silence
included: the motion rides on these RTP packets. In-band FEC is asked for, but libopus only codes
it when the bitrate leaves room: from about 17 kbps at 20 % expected loss (16 kbps at 25 %);
at 11 kbps it is off and the receiver conceals a loss by extrapolation (``receiver.audio``).

It talks to libopus directly (:mod:`codec.opus`): FFmpeg's libopus wrapper in PyAV has no DTX.

Installed per call, not globally: :func:`use_speech_encoder` limits the audio transceiver to
Opus and hands its :class:`RTCRtpSender` this encoder before aiortc makes its own.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc.codecs.base import Encoder
from aiortc.mediastreams import convert_timebase

from codec.opus import SAMPLE_RATE, OpusEncoderState

__all__ = [
    "AUDIO_KBPS_RANGE",
    "DEFAULT_AUDIO_KBPS",
    "AudioSendStats",
    "SpeechOpusEncoder",
    "check_audio_kbps",
    "offer_opus_parameters",
    "use_speech_encoder",
]

DEFAULT_AUDIO_KBPS = 11.0
#: the bitrates the call accepts, in kbps (Opus goes from 6; 64 is plenty for mono speech)
AUDIO_KBPS_RANGE = (6.0, 64.0)
PACKET_MS = 60
#: the loss, in percent, that the encoder prepares its FEC for (the call's design point is 20 %)
EXPECTED_LOSS = 20
#: packets kept back when an input frame yields several (more are dropped, counted)
MAX_BACKLOG = 3
#: the private attribute where aiortc's RTCRtpSender keeps its encoder (see use_speech_encoder)
SENDER_ENCODER_ATTRIBUTE = "_RTCRtpSender__encoder"

_TIME_BASE = Fraction(1, SAMPLE_RATE)


def check_audio_kbps(kbps: float) -> float:
    """``kbps`` if the call accepts it.

    Raises:
        ValueError: outside :data:`AUDIO_KBPS_RANGE`.
    """
    low, high = AUDIO_KBPS_RANGE
    if not low <= kbps <= high:
        raise ValueError(f"the audio bitrate must be {low:g} to {high:g} kbps, not {kbps:g}")
    return kbps


@dataclass
class AudioSendStats:
    packets: int = 0
    bytes: int = 0
    #: packets of 1 or 2 bytes: DTX (nothing said) or a frame with no content
    dtx_packets: int = 0
    #: packets dropped because input frames came faster than packets could leave (one per frame)
    dropped_backlog: int = 0


class SpeechOpusEncoder(Encoder):
    """aiortc's audio encoder interface over libopus, tuned for speech at low bitrates.

    ``encode(frame)`` takes any aiortc audio frame (any rate, layout, size), resamples it to
    48 kHz mono and returns at most one payload with its RTP timestamp (48 kHz clock, from 0 at
    the first sample; aiortc adds its random origin): aiortc sends all the payloads of one call
    under a single timestamp, so the packets of an input frame longer than 60 ms are handed out
    on the next calls. Sources give 20 ms frames (``sender.sources``), so it never waits.

    Args:
        kbps: the target bitrate (VBR), :data:`AUDIO_KBPS_RANGE`.
        packet_ms: the duration of a packet: 10, 20, 40 or 60 ms.
        expected_loss: percent of packets the FEC is sized for.
        fec, dtx: in-band FEC and discontinuous transmission.
    """

    def __init__(
        self,
        kbps: float = DEFAULT_AUDIO_KBPS,
        packet_ms: int = PACKET_MS,
        expected_loss: int = EXPECTED_LOSS,
        fec: bool = True,
        dtx: bool = True,
    ) -> None:
        check_audio_kbps(kbps)
        if packet_ms not in (10, 20, 40, 60):
            raise ValueError(f"an Opus packet lasts 10, 20, 40 or 60 ms, not {packet_ms}")
        self.kbps = kbps
        self.samples_per_packet = SAMPLE_RATE * packet_ms // 1000
        self.opus = OpusEncoderState(round(kbps * 1000), channels=1, fec=fec, packet_loss=expected_loss, dtx=dtx)
        self.resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                           frame_size=self.samples_per_packet)  # fmt: skip
        self.stats = AudioSendStats()
        self._pending: collections.deque[tuple[bytes, int]] = collections.deque()
        self._timestamp = 0  # of the next packet, in samples
        self._toc = 0x18  # TOC of the latest packet, for a stand-in if libopus ever returned nothing

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        """``([payload], timestamp)``, or ``([], timestamp)`` while a packet's worth is not in yet."""
        for chunk in self.resampler.resample(frame):
            payload = self.opus.encode(chunk.to_ndarray())
            if payload:
                self._toc = payload[0]
            else:  # libopus always writes a TOC byte; should it not, a packet still leaves on time
                payload = bytes([self._toc & 0xFC])
            self._pending.append((payload, self._timestamp))
            self._timestamp += chunk.samples
        while len(self._pending) > MAX_BACKLOG + 1:
            self._pending.popleft()
            self.stats.dropped_backlog += 1
        if not self._pending:
            return [], self._timestamp
        payload, timestamp = self._pending.popleft()
        self.stats.packets += 1
        self.stats.bytes += len(payload)
        self.stats.dtx_packets += len(payload) <= 2
        return [payload], timestamp

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        """An already encoded Opus packet (a track that yields packets) goes out as it is."""
        return [bytes(packet)], convert_timebase(packet.pts, packet.time_base, _TIME_BASE)


def use_speech_encoder(pc: Any, sender: Any, encoder: Encoder) -> None:
    """Make the audio ``sender`` of ``pc`` (what ``pc.addTrack(track)`` returned) send through
    ``encoder``, for this call only.

    Two things, before the offer is made:

    - its transceiver offers Opus only (``setCodecPreferences``), so that the negotiated codec is
      the one ``encoder`` makes;
    - aiortc creates a sender's encoder lazily: ``RTCRtpSender._next_encoded_frame`` calls
      ``get_encoder(codec)`` when its private ``__encoder`` (``_RTCRtpSender__encoder``) is None,
      and keeps what is there otherwise. Setting that attribute first is the only per-sender hook
      aiortc 1.16 has; ``tests/test_audio.py`` checks that aiortc still works this way.

    Raises:
        RuntimeError: aiortc's RTCRtpSender keeps its encoder elsewhere now (a new aiortc).
        ValueError: ``sender`` is not one of ``pc``'s.
    """
    from aiortc import RTCRtpSender

    if not hasattr(sender, SENDER_ENCODER_ATTRIBUTE):
        raise RuntimeError(f"aiortc's RTCRtpSender has no {SENDER_ENCODER_ATTRIBUTE} any more: the speech encoder "
                           "cannot be installed (see sender/audio.py, use_speech_encoder)")  # fmt: skip
    transceiver = next((t for t in pc.getTransceivers() if t.sender is sender), None)
    if transceiver is None:
        raise ValueError("the audio sender is not one of this peer connection's")
    opus = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
    transceiver.setCodecPreferences(opus)
    setattr(sender, SENDER_ENCODER_ATTRIBUTE, encoder)


def offer_opus_parameters(sdp: str, kbps: float, packet_ms: int = PACKET_MS) -> str:
    """``sdp`` with the Opus format parameters of :class:`SpeechOpusEncoder` (RFC 7587):
    ``useinbandfec=1;usedtx=1;maxaveragebitrate=...;stereo=0``, and ``a=ptime``.

    aiortc offers Opus with none; they tell a receiver what is coming (aiortc's ignores them, a
    browser uses them). A media section that already has them for Opus is left as it is.
    """
    sections = re.split(r"\r\n(?=m=)", sdp)
    for index, section in enumerate(sections):
        match = re.search(r"^a=rtpmap:(\d+) opus/48000(?:/2)?(?=\r\n|$)", section, flags=re.IGNORECASE | re.MULTILINE)
        if match is None:
            continue
        payload_type, line = match.group(1), match.group(0)
        extra = []
        if f"\r\na=fmtp:{payload_type} " not in section:
            bitrate = round(kbps * 1000)
            extra.append(f"a=fmtp:{payload_type} useinbandfec=1;usedtx=1;maxaveragebitrate={bitrate};stereo=0")
        if "\r\na=ptime:" not in section:
            extra.append(f"a=ptime:{packet_ms}")
        sections[index] = section.replace(line, "\r\n".join([line, *extra]), 1)
    return "\r\n".join(sections)
