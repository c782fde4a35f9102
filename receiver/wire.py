"""The bytes a call really puts on the network, counted in the receiver's process.

A :class:`WireMeter` attached to the call's ``RTCPeerConnection`` counts every UDP datagram the
connection's sockets send and receive, with the IP and UDP headers (20 + 8 bytes for IPv4,
40 + 8 for IPv6), per direction (``received``: sent by the sender; ``sent``: sent back) and per
stream:

- ``stun`` (ICE consent checks), ``rtcp``, ``audio`` (RTP: header, Opus payload, SRTP tag);
- ``motion``, ``keyframe``, ``control`` (the data channels' messages), ``sctp_ack`` (SACK
  chunks), ``sctp_other`` (heartbeats, forward-TSN, data-channel open messages...): the SCTP
  packets inside DTLS, split by their chunks;
- ``dtls_other``: DTLS records that carried no SCTP packet (alerts, a late handshake flight),
  ``unknown``: a first byte outside RFC 7983's ranges.

Where it hooks (aiortc 1.16, aioice 0.13): once ICE gathering is complete (the
``icegatheringstatechange`` event, before any datagram can flow), each aioice
``StunProtocol`` of the ICE ``Connection`` (``RTCIceTransport._connection._protocols``) gets its
transport's ``sendto`` and its ``datagram_received`` wrapped: the socket layer.  The SCTP
plaintext is seen where aiortc hands it to DTLS: ``RTCDtlsTransport._send_data`` (outgoing,
in the same task as the ``sendto`` it causes: a context variable pairs them) and
``RTCSctpTransport._handle_data`` (incoming: paired with the datagram that
``RTCIceTransport._recv`` returned just before, in the same DTLS task).  A DATA chunk's stream
id is mapped to its data channel's label; on ``control``, :func:`codec.packets.packet_kind` on
a message's first fragment tells a picture (a keyframe, an open mouth) from a control message.
A chunk's bytes go to its stream; the packet's SCTP common header, DTLS record overhead and IP/UDP headers go to the
stream of its largest chunk; so the streams add up to the socket's counts exactly.

Motion carried in the audio RTP packets as an RFC 8285 header-extension element
(:data:`codec.packets.bundle.MOTION_EXTENSION_URI`, its id read from the SDP) counts as
``motion``: the extension block's growth due to that element; the packet stays an audio packet.

**Handshake**: everything before the call is established is counted apart and left out of the
streams and rates: ICE connectivity checks, the DTLS handshake, the SCTP association and the
data channels' opening.  The call is established by the first datagram that carries call
content: an RTP packet or an SCTP DATA chunk with a user message (not a data-channel open
message), either way; the datagram itself is the call's, except a received SCTP message (seen
only once decrypted, after its datagram was counted).  The call's duration runs from then to
the last datagram counted.

The meter only observes: nothing it does can raise into aiortc (a failure is counted in
``unparsed``).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from codec.packets import PacketError, PacketKind, packet_kind
from codec.packets.bundle import MOTION_EXTENSION_URI

from .datagrams import (
    DATA,
    FLAG_BEGIN,
    FLAG_END,
    IP_UDP_HEADER,
    PPID_DCEP,
    SACK,
    demux,
    extension_element_bytes,
    parse_sctp,
)
from .wire_hooks import hook_peer_connection

__all__ = [
    "AUDIO_STREAMS",
    "DIRECTIONS",
    "OTHER_STREAMS",
    "STREAMS",
    "VIDEO_STREAMS",
    "WireMeter",
    "snapshot_lines",
]

log = logging.getLogger(__name__)

Direction = Literal["received", "sent"]
DIRECTIONS: tuple[Direction, ...] = ("received", "sent")
AUDIO_STREAMS = ("audio", "rtcp")
VIDEO_STREAMS = ("motion", "keyframe", "control", "sctp_ack", "sctp_other", "dtls_other")
OTHER_STREAMS = ("stun", "unknown")
#: the messages on ``control`` counted as ``keyframe``: pictures (a keyframe, an open mouth)
PICTURE_KINDS = (PacketKind.KEYFRAME, PacketKind.MOUTH)
STREAMS = AUDIO_STREAMS + VIDEO_STREAMS + OTHER_STREAMS

#: fragmented messages whose kind is remembered until their last fragment
MAX_MESSAGES = 64


@dataclass
class Pending:
    """A received DTLS datagram, counted at the socket (as ``dtls_other`` during the call), whose
    SCTP plaintext may still come."""

    data: bytes
    wire: int  #: bytes on the wire: the datagram and its IP/UDP headers
    call: bool  #: counted in the call (else in the handshake)


class WireMeter:
    """Count a peer connection's datagrams; see the module docstring.

    Args:
        pc: an ``RTCPeerConnection`` to attach to before its offer is answered (or None: feed
            :meth:`on_datagram` and :meth:`on_sctp_received` by hand).
        clock: monotonic seconds.
    """

    def __init__(self, pc: Any | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        #: (stream, direction) -> [packets, bytes] of the call
        self.counts: dict[tuple[str, Direction], list[int]] = {(s, d): [0, 0] for s in STREAMS for d in DIRECTIONS}
        #: direction -> [packets, bytes] counted at the socket during the call, and during the handshake
        self.socket: dict[Direction, list[int]] = {d: [0, 0] for d in DIRECTIONS}
        self.handshake: dict[Direction, list[int]] = {d: [0, 0] for d in DIRECTIONS}
        #: RTP packets that carried the motion extension element, per direction
        self.motion_in_rtp: dict[Direction, int] = dict.fromkeys(DIRECTIONS, 0)
        #: DTLS datagram size minus its SCTP plaintext, per direction: how often each was seen
        self.overheads: dict[Direction, Counter[int]] = {d: Counter() for d in DIRECTIONS}
        #: SCTP stream id -> data channel label (filled from the peer connection as channels appear)
        self.channel_labels: dict[int, str] = {}
        #: the motion extension element's id in the RTP header extension (None: not negotiated)
        self.motion_extension_id: int | None = None
        self.unparsed = 0  #: datagrams or hooks that could not be parsed (or failed): never raised
        self.started_at: float | None = None  #: the first datagram
        self.established_at: float | None = None  #: the end of the handshake
        self.last_at: float | None = None  #: the last datagram
        self.pc = pc
        self.sctp: Any | None = None  #: the data channels' SCTP transport (for their labels)
        self._messages: dict[tuple[Direction, int, int], str] = {}
        self._extension_looked_up = pc is None
        if pc is not None:
            hook_peer_connection(self, pc)

    # --- counting --------------------------------------------------------------------------

    def safely(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, or None when it raises (counted in :attr:`unparsed`)."""
        try:
            return function(*args)
        except Exception:
            self.unparsed += 1
            log.debug("wire meter: %s failed", getattr(function, "__name__", function), exc_info=True)
            return None

    def on_datagram(
        self, data: bytes, direction: Direction, header: int = IP_UDP_HEADER[4], plaintext: bytes | None = None
    ) -> Pending | None:
        """Count a datagram at the socket; ``plaintext``: the SCTP packet a sent DTLS datagram
        carries.  Returns a received DTLS datagram's :class:`Pending` (for
        :meth:`on_sctp_received`)."""
        now = self.clock()
        self.started_at = now if self.started_at is None else self.started_at
        self.last_at = now
        wire = len(data) + header
        protocol = demux(data)
        shares: list[tuple[str, int]] = []
        if protocol == "rtp":
            self._establish(now)
            shares = self._rtp_shares(data, direction, wire)
        elif protocol == "dtls" and plaintext is not None:
            self.overheads[direction][len(data) - len(plaintext)] += 1
            shares = self._sctp_shares(plaintext, direction, wire)
        call = self.established_at is not None
        (self.socket if call else self.handshake)[direction][0] += 1
        (self.socket if call else self.handshake)[direction][1] += wire
        if call:
            self._add(shares or [({"dtls": "dtls_other"}.get(protocol, protocol), wire)], direction)
        return Pending(data, wire, call) if protocol == "dtls" and direction == "received" else None

    def on_sctp_received(self, pending: Pending | None, plaintext: bytes) -> None:
        """The SCTP packet aiortc decrypted from ``pending`` (None: its datagram is unknown)."""
        if pending is None:
            self._sctp_shares(plaintext, "received", len(plaintext))  # only to see the call begin
            return
        self.overheads["received"][len(pending.data) - len(plaintext)] += 1
        shares = self._sctp_shares(plaintext, "received", pending.wire)
        if pending.call:  # no longer dtls_other
            self.counts["dtls_other", "received"][0] -= 1
            self.counts["dtls_other", "received"][1] -= pending.wire
            self._add(shares, "received")

    def _add(self, shares: list[tuple[str, int]], direction: Direction) -> None:
        """One packet to the first share's stream (the packet's owner), each share's bytes to
        its stream."""
        self.counts[shares[0][0], direction][0] += 1
        for stream, size in shares:
            self.counts[stream, direction][1] += size

    def _establish(self, now: float) -> None:
        if self.established_at is None:
            self.established_at = now

    def _rtp_shares(self, data: bytes, direction: Direction, wire: int) -> list[tuple[str, int]]:
        element = self._extension_id()
        motion = 0
        if element is not None:
            try:
                motion = extension_element_bytes(data, element)
            except ValueError:
                self.unparsed += 1
        if motion:
            self.motion_in_rtp[direction] += 1
            return [("audio", wire - motion), ("motion", motion)]
        return [("audio", wire)]

    def _sctp_shares(self, plaintext: bytes, direction: Direction, wire: int) -> list[tuple[str, int]]:
        """Each chunk's bytes to its stream; the rest of ``wire`` (headers, DTLS, padding,
        anything unparsable) to the largest chunk's stream, which owns the packet (first)."""
        chunks, complete = parse_sctp(plaintext)
        if not complete:
            self.unparsed += 1
        shares = [(self._chunk_stream(chunk.type, chunk.flags, chunk.stream_id, chunk.ssn, chunk.ppid,
                                      chunk.payload, direction), chunk.size) for chunk in chunks]  # fmt: skip
        if not shares:
            return [("sctp_other", wire)]
        primary = max(shares, key=lambda share: share[1])[0]
        return [(primary, wire - sum(size for _, size in shares)), *shares]

    def _chunk_stream(
        self, kind: int, flags: int, stream_id: int, ssn: int, ppid: int, payload: bytes, direction: Direction
    ) -> str:
        if kind == SACK:
            return "sctp_ack"
        if kind != DATA or ppid == PPID_DCEP:
            return "sctp_other"
        self._establish(self.clock())  # a user message: the call is on
        label = self._label(stream_id)
        if label == "motion":
            return "motion"
        if label != "control":
            return "sctp_other"
        key = (direction, stream_id, ssn)
        if flags & FLAG_BEGIN:
            try:
                stream = "keyframe" if packet_kind(payload) in PICTURE_KINDS else "control"
            except PacketError:
                stream = "control"
            if not flags & FLAG_END:
                if len(self._messages) >= MAX_MESSAGES:
                    self._messages.pop(next(iter(self._messages)))
                self._messages[key] = stream
            return stream
        # a later fragment: only keyframes are large enough to be fragmented
        return self._messages.pop(key, "keyframe") if flags & FLAG_END else self._messages.get(key, "keyframe")

    def _label(self, stream_id: int) -> str | None:
        label = self.channel_labels.get(stream_id)
        if label is None and self.sctp is not None:
            channel = getattr(self.sctp, "_data_channels", {}).get(stream_id)
            if channel is not None:
                label = self.channel_labels[stream_id] = str(channel.label)
        return label

    def _extension_id(self) -> int | None:
        """The motion element's id, read once from the SDP (the answer's, else the offer's)."""
        if not self._extension_looked_up and self.pc is not None:
            self._extension_looked_up = True
            for description in (self.pc.localDescription, self.pc.remoteDescription):
                found = re.search(rf"^a=extmap:(\d+)(?:/\w+)? {re.escape(MOTION_EXTENSION_URI)}\s*$",
                                  getattr(description, "sdp", "") or "", re.MULTILINE)  # fmt: skip
                if found:
                    self.motion_extension_id = int(found.group(1))
                    break
        return self.motion_extension_id

    # --- results ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Per stream and direction: packets, bytes, packets/s, kbps; rates of the call (both
        directions, all headers, the handshake excluded); the handshake apart; the line."""
        seconds = (self.last_at or 0.0) - self.established_at if self.established_at is not None else 0.0

        def rate(size: float) -> float:
            return round(size * 8 / seconds / 1000, 2) if seconds > 0 else 0.0

        streams = {
            stream: {
                direction: {
                    "packets": self.counts[stream, direction][0],
                    "bytes": self.counts[stream, direction][1],
                    "packets_per_s": round(self.counts[stream, direction][0] / seconds, 2) if seconds > 0 else 0.0,
                    "kbps": rate(self.counts[stream, direction][1]),
                }
                for direction in DIRECTIONS
            }
            for stream in STREAMS
        }

        def kbps(names: tuple[str, ...]) -> float:
            return rate(sum(self.counts[s, d][1] for s in names for d in DIRECTIONS))

        total, audio, video = kbps(STREAMS), kbps(AUDIO_STREAMS), kbps(VIDEO_STREAMS)
        handshake_seconds = (
            self.established_at - self.started_at
            if self.established_at is not None and self.started_at is not None
            else 0.0
        )
        return {
            "line": f"wire: total {total:.1f} kbps (audio {audio:.1f}, video {video:.1f})",
            "seconds": round(seconds, 3),
            "total_kbps": total,
            "audio_kbps": audio,
            "video_kbps": video,
            "other_kbps": kbps(OTHER_STREAMS),
            "streams": streams,
            "socket": {d: {"packets": self.socket[d][0], "bytes": self.socket[d][1]} for d in DIRECTIONS},
            "handshake": {
                "seconds": round(handshake_seconds, 3),
                **{d: {"packets": self.handshake[d][0], "bytes": self.handshake[d][1]} for d in DIRECTIONS},
            },
            "dtls_record_overhead": {
                d: (self.overheads[d].most_common(1)[0][0] if self.overheads[d] else None) for d in DIRECTIONS
            },
            "motion_in_rtp_packets": dict(self.motion_in_rtp),
            "unparsed": self.unparsed,
        }

    def lines(self) -> list[str]:
        """:func:`snapshot_lines` of the snapshot now."""
        return snapshot_lines(self.snapshot())


def snapshot_lines(snap: dict[str, Any]) -> list[str]:
    """The ``wire:`` line of a :meth:`WireMeter.snapshot`, then one line per stream that saw
    traffic (packets/s and kbps each way), then the handshake."""
    lines = [snap["line"]]
    for stream, counts in snap["streams"].items():
        if not any(counts[d]["packets"] or counts[d]["bytes"] for d in DIRECTIONS):
            continue
        parts = [f"{d} {counts[d]['packets_per_s']:5.1f} pkt/s {counts[d]['kbps']:6.2f} kbps" for d in DIRECTIONS]
        lines.append(f"  {stream:10s} " + ", ".join(parts))
    shake = snap["handshake"]
    lines.append(
        f"  handshake (not counted above): {shake['seconds']:.2f} s, received {shake['received']['packets']} "
        f"packets / {shake['received']['bytes']} B, sent {shake['sent']['packets']} / {shake['sent']['bytes']} B"
    )
    return lines
