"""The rate a contender puts on the wire in a call: its payload plus every header of the packets
that carry it, as the call's transport (aiortc 1.16) sends them.

Every number here is bytes.  A contender says what it hands the transport as :class:`SentUnit`
s (when, by which :class:`Route`, how big); :func:`wire_cost` turns them into datagrams.

- **Motion** (:attr:`Route.AUDIO_EXTENSION`, ``sender/carrier.py``): the motion messages ride
  on the call's Opus RTP packets, one every :data:`AUDIO_PACKET_SECONDS` (sent anyway, for the
  sound), as one RFC 8285 header-extension element per packet: the messages captured during
  one packet interval are concatenated (``codec.packets.bundle.bundle_messages``) into the
  element of the packet that leaves at its end.  The cost is the packet's growth (the audio
  itself is not counted): the extension block's 4-byte header (the motion element is the
  audio's only extension), the element's header (1 byte in the one-byte form, used by aiortc
  when the data is at most 16 bytes; 2 bytes otherwise) and data, padded to 4 bytes.  A message
  that would make the element exceed :data:`MAX_BUNDLE_BYTES` or :data:`MAX_BUNDLE_MESSAGES`
  pushes the oldest waiting ones onto the data channel, as the carrier does.  No loss, so no
  redundant copies.
- **Keyframes and control messages** (:attr:`Route.DATA_CHANNEL`): a reliable SCTP data channel
  over DTLS 1.2.  aiortc splits a message into DATA chunks of at most
  :data:`SCTP_MAX_USER_DATA` bytes and sends each chunk in a datagram of its own: IPv4/UDP,
  the DTLS record (header, AES-128-GCM explicit nonce and tag), the SCTP common header, the
  DATA chunk header and the data padded to 4 bytes.  aiortc's receiver answers every datagram
  that holds DATA with a SACK datagram (``RTCSctpTransport._handle_data``): counted too, as the
  wire meter counts both directions.
- **H.264** (:attr:`Route.VIDEO_RTP`): each access unit (one frame) is packetized as aiortc's
  ``H264Encoder._packetize`` does (RFC 6184, packetization mode 1): start codes dropped, NAL
  units that fit aggregated into STAP-A packets (1-byte header + 2-byte length per NAL unit,
  at most 9), a NAL unit above :data:`H264_MAX_RTP_PAYLOAD` split into FU-A fragments of about
  equal size (its 1-byte NAL header replaced by 2 bytes per fragment).  Each RTP packet: IPv4/UDP,
  the RTP header, the extension block aiortc puts on every video packet (mid and abs-send-time,
  :data:`VIDEO_EXTENSION_BLOCK` bytes) and the SRTP tag of this call's profile (:data:`SRTP_TAG`,
  as an H.264 call on the same transport would have; a browser's tag is longer).

Not counted, for any contender: the audio stream itself (both kinds of call carry it), RTCP and
STUN (small, and about the same for both), the handshakes (ICE, DTLS, SCTP, data channels opening),
retransmissions and loss.

The constants were checked against the stack in ``.venv`` (aiortc 1.16): a loopback call of two
aiortc peers with ``receiver.wire.WireMeter`` on one of them measured exactly what
:func:`data_channel_datagrams` and :data:`SACK_DATAGRAM_BYTES` give, with a 37-byte DTLS record
overhead; ``tests/test_rd_wire.py`` checks the RTP side against aiortc's own packetizer and
extension writer, the carrier's extension writer and libsrtp's tag.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "AUDIO_PACKET_SECONDS",
    "DTLS_RECORD_OVERHEAD",
    "H264_MAX_RTP_PAYLOAD",
    "IP_UDP_HEADER",
    "SACK_DATAGRAM_BYTES",
    "SCTP_MAX_USER_DATA",
    "SRTP_TAG",
    "SRTP_TAG_MANDATORY",
    "VIDEO_EXTENSION_BLOCK",
    "VIDEO_RTP_OVERHEAD",
    "MotionSchedule",
    "Route",
    "SentUnit",
    "WireCost",
    "data_channel_datagrams",
    "h264_rtp_payloads",
    "motion_element_bytes",
    "schedule_motion",
    "wire_cost",
]

# --- IP and UDP ---------------------------------------------------------------------------------

#: IPv4 (20) + UDP (8) headers in front of every datagram (``receiver.datagrams.IP_UDP_HEADER[4]``)
IP_UDP_HEADER = 20 + 8

# --- RTP, SRTP and RFC 8285 header extensions -----------------------------------------------------

#: the fixed RTP header (RFC 3550), no CSRC
RTP_HEADER = 12
#: SRTP authentication tag of the call's profile, AES128_CM_HMAC_SHA1_32, which both ends of this
#: call ask for first (``sender.thin_link.SRTP_PREFERENCE``): 4 bytes.  An H.264 call on the same
#: transport gets it too; a browser's would have 10 (AES128_CM_HMAC_SHA1_80, WebRTC's mandatory
#: profile) or 16 (the AEAD-GCM ones, aiortc's own first choice)
SRTP_TAG = 4
#: the tag of WebRTC's mandatory profile, AES128_CM_HMAC_SHA1_80 (for the report's comparison)
SRTP_TAG_MANDATORY = 10
#: an RFC 8285 extension block's header: the profile (0xBEDE or 0x1000) and the length in words
EXTENSION_BLOCK_HEADER = 4
#: an element's header in the one-byte form (id and length in one byte) ...
ONE_BYTE_ELEMENT_HEADER = 1
#: ... and in the two-byte form (id, length)
TWO_BYTE_ELEMENT_HEADER = 2
#: the most data an element may have in the one-byte form (aiortc's ``pack_header_extensions``
#: uses it when every element of the block fits, and the id is at most 14: the motion element's
#: id is the smallest one aiortc leaves free, ``sender.carrier.register_motion_extension``)
ONE_BYTE_MAX_DATA = 16
#: an extension block is padded to whole 32-bit words
WORD = 4
#: data bytes of the elements aiortc puts on every video packet (``RTCRtpSender._run_rtp``):
#: mid (one character: "0" or "1") and abs-send-time (24 bits), both in the one-byte form
VIDEO_EXTENSION_DATA = (1, 3)

# --- the motion carrier (sender/carrier.py, codec/packets/bundle.py) --------------------------------

#: an audio packet leaves every 60 ms, silence included (``sender.audio``: Opus, 60 ms packets)
AUDIO_PACKET_SECONDS = 0.060
#: the largest element (``codec.packets.bundle.MAX_BUNDLE_BYTES``; a test checks the copy)
MAX_BUNDLE_BYTES = 255
#: the most messages one element holds (``codec.packets.bundle.MAX_BUNDLE_MESSAGES``)
MAX_BUNDLE_MESSAGES = 32
#: a message captured this close to a packet's departure counts as captured at it (float noise)
_TIME_EPSILON = 1e-9

# --- DTLS and SCTP (the data channels) ------------------------------------------------------------

#: DTLS 1.2 record header: type, version, epoch, sequence number, length
DTLS_RECORD_HEADER = 13
#: AES-128-GCM (aiortc's first DTLS cipher, ``ECDHE-ECDSA-AES128-GCM-SHA256``): explicit nonce ...
AES_GCM_EXPLICIT_NONCE = 8
#: ... and authentication tag
AES_GCM_TAG = 16
#: what DTLS adds to each SCTP packet (``receiver.wire`` measures 37 in a call)
DTLS_RECORD_OVERHEAD = DTLS_RECORD_HEADER + AES_GCM_EXPLICIT_NONCE + AES_GCM_TAG
#: SCTP common header: ports, verification tag, checksum (``receiver.datagrams.SCTP_COMMON_HEADER``)
SCTP_COMMON_HEADER = 12
#: a DATA chunk's header: type, flags, length, TSN, stream id, stream sequence number, PPID
SCTP_DATA_CHUNK_HEADER = 16
#: a SACK chunk without gap blocks or duplicates
SCTP_SACK_CHUNK = 16
#: aiortc's largest SCTP packet (``aiortc.rtcsctptransport.SCTP_MAX_PACKET_LENGTH``)
SCTP_MAX_PACKET = 1189
#: aiortc's largest DATA chunk payload: what is left of :data:`SCTP_MAX_PACKET`, rounded down to
#: words (``aiortc.rtcsctptransport.USERDATA_MAX_LENGTH``: 1160)
SCTP_MAX_USER_DATA = (SCTP_MAX_PACKET - SCTP_COMMON_HEADER - SCTP_DATA_CHUNK_HEADER) // WORD * WORD
#: SACK datagrams aiortc's receiver returns per datagram holding DATA (it acknowledges each at once)
SACKS_PER_DATA_DATAGRAM = 1
#: headers of a datagram that carries one SCTP chunk, the chunk's own header excluded
DATA_CHANNEL_DATAGRAM_HEADERS = IP_UDP_HEADER + DTLS_RECORD_OVERHEAD + SCTP_COMMON_HEADER
#: one SACK datagram on the wire: 93 bytes
SACK_DATAGRAM_BYTES = DATA_CHANNEL_DATAGRAM_HEADERS + SCTP_SACK_CHUNK

# --- H.264 over RTP (RFC 6184, aiortc.codecs.h264) -------------------------------------------------

#: the largest RTP payload aiortc's H.264 packetizer makes (``aiortc.codecs.h264.PACKET_MAX``)
H264_MAX_RTP_PAYLOAD = 1300
#: a NAL unit's own header (F, NRI, type)
NAL_HEADER = 1
#: FU indicator + FU header of each FU-A fragment (they replace the NAL header)
FU_A_HEADER = 2
#: a STAP-A packet's own NAL header ...
STAP_A_HEADER = 1
#: ... and the size field before each aggregated NAL unit
STAP_A_LENGTH_FIELD = 2
#: the most NAL units aiortc aggregates into one STAP-A packet
STAP_A_MAX_NAL_UNITS = 9


def _padded(size: int) -> int:
    """``size`` rounded up to whole 32-bit words."""
    return -(-size // WORD) * WORD


#: the video packets' extension block: 4 + (1 + 1) + (1 + 3) = 10, padded to 12 bytes
VIDEO_EXTENSION_BLOCK = _padded(
    EXTENSION_BLOCK_HEADER + sum(ONE_BYTE_ELEMENT_HEADER + data for data in VIDEO_EXTENSION_DATA)
)
#: what an H.264 RTP packet adds to its payload on the wire: 28 + 12 + 12 + 4 = 56 bytes
VIDEO_RTP_OVERHEAD = IP_UDP_HEADER + RTP_HEADER + VIDEO_EXTENSION_BLOCK + SRTP_TAG


class Route(enum.Enum):
    """How a unit travels in a call."""

    #: a motion message: in an element of the header extension of the call's audio RTP packets
    AUDIO_EXTENSION = "audio_extension"
    #: a message on a reliable SCTP data channel (keyframes, control messages)
    DATA_CHANNEL = "data_channel"
    #: an H.264 access unit: RTP packets of its own
    VIDEO_RTP = "video_rtp"


@dataclass(frozen=True)
class SentUnit:
    """One thing a contender hands the transport.

    Attributes:
        time: capture time of the frame it belongs to, in seconds.
        route: how it travels.
        sizes: bytes: ``(message,)`` for a message; for an H.264 access unit, each of its NAL
            units without its start code.
    """

    time: float
    route: Route
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class MotionSchedule:
    """Where the motion messages of a clip go.

    Attributes:
        elements: the data bytes of each audio packet's motion element (packets without one left out).
        to_data_channel: bytes of each message pushed onto the data channel (the element was full).
    """

    elements: tuple[int, ...]
    to_data_channel: tuple[int, ...]


@dataclass(frozen=True)
class WireCost:
    """A contender's bytes on the wire for one clip, headers included, both directions.

    Attributes:
        motion_extension_bytes: what the motion elements added to the audio packets.
        audio_packets_with_motion: audio packets that carried an element.
        data_channel_bytes: the datagrams that carried the data channel's messages.
        data_channel_datagrams: how many.
        ack_bytes: the SACK datagrams the receiver returned for them.
        acks: how many.
        video_rtp_bytes: the H.264 RTP packets.
        video_rtp_packets: how many.
    """

    motion_extension_bytes: int = 0
    audio_packets_with_motion: int = 0
    data_channel_bytes: int = 0
    data_channel_datagrams: int = 0
    ack_bytes: int = 0
    acks: int = 0
    video_rtp_bytes: int = 0
    video_rtp_packets: int = 0

    @property
    def total_bytes(self) -> int:
        """Everything on the wire, in bytes."""
        return self.motion_extension_bytes + self.data_channel_bytes + self.ack_bytes + self.video_rtp_bytes

    def kbps(self, duration: float) -> float:
        """The wire rate over ``duration`` seconds, in kbit/s."""
        return 8 * self.total_bytes / duration / 1000

    def info(self, duration: float) -> dict[str, float]:
        """The rate of each part (kbit/s) and the packet counts, for a point's ``info``."""

        def rate(size: int) -> float:
            return 8 * size / duration / 1000

        parts: dict[str, float] = {}
        if self.audio_packets_with_motion:
            parts["wire_motion_kbps"] = rate(self.motion_extension_bytes)
            parts["audio_packets_with_motion"] = float(self.audio_packets_with_motion)
        if self.data_channel_datagrams:
            parts["wire_data_channel_kbps"] = rate(self.data_channel_bytes)
            parts["wire_acks_kbps"] = rate(self.ack_bytes)
            parts["data_channel_datagrams"] = float(self.data_channel_datagrams)
        if self.video_rtp_packets:
            parts["wire_rtp_kbps"] = rate(self.video_rtp_bytes)
            parts["rtp_packets"] = float(self.video_rtp_packets)
        return parts


def motion_element_bytes(bundle_bytes: int) -> int:
    """How many bytes an element with ``bundle_bytes`` of data adds to an audio RTP packet that
    has no other header extension: the block header, the element header and data, the padding.
    0 for an empty bundle (no element)."""
    if bundle_bytes <= 0:
        return 0
    if bundle_bytes > MAX_BUNDLE_BYTES:
        raise ValueError(f"an element holds at most {MAX_BUNDLE_BYTES} bytes, got {bundle_bytes}")
    header = ONE_BYTE_ELEMENT_HEADER if bundle_bytes <= ONE_BYTE_MAX_DATA else TWO_BYTE_ELEMENT_HEADER
    return EXTENSION_BLOCK_HEADER + _padded(header + bundle_bytes)


def schedule_motion(
    messages: Iterable[tuple[float, int]], start: float = 0.0, interval: float = AUDIO_PACKET_SECONDS
) -> MotionSchedule:
    """Group motion messages ``(capture time in seconds, bytes)`` into the elements of the audio
    packets that leave every ``interval`` seconds from ``start``: a message captured in
    [start + k interval, start + (k + 1) interval) rides on the packet that leaves at the end.

    Within a packet interval the carrier's queue rules hold (``MotionCarrier.send``): a message
    that would make the element exceed :data:`MAX_BUNDLE_BYTES` or :data:`MAX_BUNDLE_MESSAGES`
    first pushes the oldest waiting messages onto the data channel; a message larger than an
    element goes there itself.
    """
    queues: dict[int, list[int]] = {}
    to_channel: list[int] = []
    for time, size in sorted(messages, key=lambda message: message[0]):
        queue = queues.setdefault(math.floor((time - start) / interval + _TIME_EPSILON), [])
        while queue and (sum(queue) + size > MAX_BUNDLE_BYTES or len(queue) >= MAX_BUNDLE_MESSAGES):
            to_channel.append(queue.pop(0))
        if size > MAX_BUNDLE_BYTES:
            to_channel.append(size)
        else:
            queue.append(size)
    elements = tuple(sum(queues[packet]) for packet in sorted(queues) if queues[packet])
    return MotionSchedule(elements, tuple(to_channel))


def data_channel_datagrams(message_bytes: int) -> list[int]:
    """The size on the wire of each datagram that carries one data-channel message of
    ``message_bytes`` (its acknowledgements not included: :data:`SACK_DATAGRAM_BYTES` each)."""
    chunks = [SCTP_MAX_USER_DATA] * (message_bytes // SCTP_MAX_USER_DATA)
    if message_bytes % SCTP_MAX_USER_DATA or not chunks:
        chunks.append(message_bytes % SCTP_MAX_USER_DATA)
    return [DATA_CHANNEL_DATAGRAM_HEADERS + SCTP_DATA_CHUNK_HEADER + _padded(chunk) for chunk in chunks]


def _fu_a_payloads(nal_bytes: int) -> list[int]:
    """FU-A fragments of one NAL unit, as aiortc cuts them (about equal: the first ones one byte
    larger), each with its 2-byte FU indicator and header."""
    data = nal_bytes - NAL_HEADER
    count = math.ceil(data / (H264_MAX_RTP_PAYLOAD - FU_A_HEADER))
    smaller, larger = divmod(data, count)
    return [FU_A_HEADER + smaller + (index < larger) for index in range(count)]


def h264_rtp_payloads(nal_sizes: Sequence[int]) -> list[int]:
    """The RTP payload sizes of one H.264 access unit (each NAL unit's bytes without its start
    code), following aiortc's ``H264Encoder._packetize``: a NAL unit above
    :data:`H264_MAX_RTP_PAYLOAD` is cut into FU-A fragments; from a smaller one on, the following
    NAL units are aggregated into one STAP-A packet while they fit in what is left (aiortc starts
    from :data:`H264_MAX_RTP_PAYLOAD` - 3 and takes 2 + size for each) and are at most
    :data:`STAP_A_MAX_NAL_UNITS`; a lone NAL unit goes as it is."""
    payloads: list[int] = []
    index = 0
    while index < len(nal_sizes):
        if nal_sizes[index] > H264_MAX_RTP_PAYLOAD:
            payloads.extend(_fu_a_payloads(nal_sizes[index]))
            index += 1
            continue
        room = H264_MAX_RTP_PAYLOAD - STAP_A_HEADER - STAP_A_LENGTH_FIELD
        aggregated: list[int] = []
        while (index + len(aggregated) < len(nal_sizes) and nal_sizes[index + len(aggregated)] <= room
               and len(aggregated) < STAP_A_MAX_NAL_UNITS):  # fmt: skip
            room -= STAP_A_LENGTH_FIELD + nal_sizes[index + len(aggregated)]
            aggregated.append(nal_sizes[index + len(aggregated)])
        if len(aggregated) > 1:
            payloads.append(STAP_A_HEADER + sum(STAP_A_LENGTH_FIELD + size for size in aggregated))
            index += len(aggregated)
        else:
            payloads.append(nal_sizes[index])
            index += 1
    return payloads


def wire_cost(units: Iterable[SentUnit], interval: float = AUDIO_PACKET_SECONDS) -> WireCost:
    """The bytes on the wire of everything a contender sent for one clip (see the module
    docstring); the audio packets' phase starts at the first unit's capture time."""
    units = list(units)
    start = min((unit.time for unit in units), default=0.0)
    motion = schedule_motion(
        ((unit.time, size) for unit in units if unit.route is Route.AUDIO_EXTENSION for size in unit.sizes),
        start,
        interval,
    )
    channel_messages = [size for unit in units if unit.route is Route.DATA_CHANNEL for size in unit.sizes]
    datagrams = [d for size in [*channel_messages, *motion.to_data_channel] for d in data_channel_datagrams(size)]
    rtp = [payload for unit in units if unit.route is Route.VIDEO_RTP for payload in h264_rtp_payloads(unit.sizes)]
    acks = SACKS_PER_DATA_DATAGRAM * len(datagrams)
    return WireCost(
        motion_extension_bytes=sum(motion_element_bytes(element) for element in motion.elements),
        audio_packets_with_motion=len(motion.elements),
        data_channel_bytes=sum(datagrams),
        data_channel_datagrams=len(datagrams),
        ack_bytes=acks * SACK_DATAGRAM_BYTES,
        acks=acks,
        video_rtp_bytes=sum(VIDEO_RTP_OVERHEAD + payload for payload in rtp),
        video_rtp_packets=len(rtp),
    )
