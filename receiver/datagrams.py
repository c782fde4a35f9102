"""What a WebRTC datagram is, read from its bytes without decrypting it: the parsing under
:class:`receiver.wire.WireMeter`.

- :func:`demux`: the protocol of a UDP payload by its first byte (RFC 7983): STUN 0-3, DTLS
  20-63, RTP/RTCP 128-191 (RTCP when the second byte, the packet type, is 192-223).
- :func:`parse_sctp`: the chunks of a plaintext SCTP packet (RFC 9260): a 12-byte common header,
  then chunks of type, flags and length (padded to 4 bytes); a DATA chunk (type 0) adds TSN,
  stream id, stream sequence number and payload protocol id before its user data.
- :func:`extension_element_bytes`: the bytes an RFC 8285 header-extension element costs an RTP
  packet (SRTP leaves the header and its extensions in the clear).

Every parser takes hostile bytes: truncation and nonsense end the parse, never an exception
other than the documented :class:`ValueError`.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple

__all__ = [
    "IP_UDP_HEADER",
    "SCTP_COMMON_HEADER",
    "SctpChunk",
    "demux",
    "extension_element_bytes",
    "parse_sctp",
]

Protocol = Literal["stun", "dtls", "rtp", "rtcp", "unknown"]

#: bytes of the IP and UDP headers in front of every datagram, by IP version
IP_UDP_HEADER = {4: 20 + 8, 6: 40 + 8}
#: source port, destination port, verification tag, checksum
SCTP_COMMON_HEADER = 12
_CHUNK_HEADER = 4
#: a DATA chunk's header: chunk header + TSN, stream id, stream sequence number, payload protocol id
DATA_CHUNK_HEADER = 16

# SCTP chunk types (RFC 9260 section 3.2, RFC 3758, RFC 6525)
DATA = 0
SACK = 3
HEARTBEAT = 4
HEARTBEAT_ACK = 5
FORWARD_TSN = 192
#: DATA chunk flags: the first and the last fragment of a message, unordered
FLAG_BEGIN, FLAG_END, FLAG_UNORDERED = 0x02, 0x01, 0x04
#: payload protocol id of the data-channel establishment protocol (RFC 8832): DCEP OPEN/ACK
PPID_DCEP = 50

# RFC 8285 extension profiles
_ONE_BYTE_PROFILE = 0xBEDE
_TWO_BYTE_PROFILE_MASK, _TWO_BYTE_PROFILE = 0xFFF0, 0x1000


def demux(data: bytes) -> Protocol:
    """The protocol of a UDP payload on a WebRTC 5-tuple (RFC 7983)."""
    if not data:
        return "unknown"
    first = data[0]
    if first <= 3:
        return "stun"
    if 20 <= first <= 63:
        return "dtls"
    if 128 <= first <= 191:
        return "rtcp" if len(data) > 1 and 192 <= data[1] <= 223 else "rtp"
    return "unknown"


class SctpChunk(NamedTuple):
    """One chunk; ``size`` counts its header, body and padding (what it occupies in the packet).
    The DATA fields are 0 and ``payload`` empty for other chunk types."""

    type: int
    flags: int
    size: int
    stream_id: int = 0
    ssn: int = 0
    ppid: int = 0
    payload: bytes = b""


def parse_sctp(packet: bytes) -> tuple[list[SctpChunk], bool]:
    """The chunks of a plaintext SCTP packet, and whether the whole packet parsed.

    A packet shorter than the common header, a chunk whose length is below its header or runs
    past the end, or a DATA chunk shorter than its header ends the parse: the chunks read so
    far are returned with ``False``.
    """
    chunks: list[SctpChunk] = []
    offset = SCTP_COMMON_HEADER
    if len(packet) < offset:
        return chunks, False
    while offset < len(packet):
        if offset + _CHUNK_HEADER > len(packet):
            return chunks, False
        kind, flags, length = struct.unpack_from("!BBH", packet, offset)
        if length < _CHUNK_HEADER or offset + length > len(packet):
            return chunks, False
        size = min(length + (-length % 4), len(packet) - offset)  # the last chunk's padding may be absent
        if kind == DATA:
            if length < DATA_CHUNK_HEADER:
                return chunks, False
            _, stream_id, ssn, ppid = struct.unpack_from("!IHHI", packet, offset + _CHUNK_HEADER)
            payload = packet[offset + DATA_CHUNK_HEADER : offset + length]
            chunks.append(SctpChunk(kind, flags, size, stream_id, ssn, ppid, payload))
        else:
            chunks.append(SctpChunk(kind, flags, size))
        offset += size
    return chunks, True


def _elements(block: bytes, two_byte: bool) -> list[tuple[int, int]]:
    """``(id, bytes it occupies: its header and data)`` of every element in an extension block's
    data, padding skipped.

    Raises:
        ValueError: an element runs past the block.
    """
    elements = []
    offset = 0
    while offset < len(block):
        if block[offset] == 0:  # padding between or after elements
            offset += 1
            continue
        if two_byte:
            if offset + 2 > len(block):
                raise ValueError("a two-byte extension element header runs past the block")
            element_id, length, header = block[offset], block[offset + 1], 2
        else:
            element_id, length, header = block[offset] >> 4, (block[offset] & 0x0F) + 1, 1
            if element_id == 15:  # reserved: stop parsing (RFC 8285 section 4.2)
                break
        if offset + header + length > len(block):
            raise ValueError(f"extension element {element_id} runs past the block")
        elements.append((element_id, header + length))
        offset += header + length
    return elements


def extension_element_bytes(packet: bytes, element_id: int) -> int:
    """Bytes of an RTP packet that are there because of header-extension element
    ``element_id``: the extension block's size minus what the block would be without that
    element (no block at all when it is alone: its 4-byte header and padding count too).
    0 when the packet has no extension block or no such element.

    Raises:
        ValueError: the packet is not RTP or its header or extension block is cut short.
    """
    if len(packet) < 12 or packet[0] >> 6 != 2:
        raise ValueError("not an RTP packet")
    if not packet[0] & 0x10:
        return 0
    start = 12 + 4 * (packet[0] & 0x0F)  # after the CSRC list
    if start + 4 > len(packet):
        raise ValueError("the RTP header extension is cut short")
    profile, words = struct.unpack_from("!HH", packet, start)
    block = packet[start + 4 : start + 4 + 4 * words]
    if len(block) < 4 * words:
        raise ValueError("the RTP header extension is cut short")
    if profile == _ONE_BYTE_PROFILE:
        elements = _elements(block, two_byte=False)
    elif profile & _TWO_BYTE_PROFILE_MASK == _TWO_BYTE_PROFILE:
        elements = _elements(block, two_byte=True)
    else:
        return 0  # a profile that is not RFC 8285: its contents are unknown
    if not any(eid == element_id for eid, _ in elements):
        return 0
    others = sum(size for eid, size in elements if eid != element_id)
    without = 4 + others + (-others % 4) if others else 0
    return 4 + 4 * words - without
