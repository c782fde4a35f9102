"""The wire meter: datagrams classified from their bytes, SCTP chunks, the RTP extension element
that carries motion, hostile input, and a real loopback call whose streams add up to its
sockets' counts."""

from __future__ import annotations

import asyncio
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from codec.packets import PACKET_VERSION, ControlPacket, ControlType, PacketKind, encode_packet
from receiver.datagrams import (
    DATA,
    FLAG_BEGIN,
    FLAG_END,
    FLAG_UNORDERED,
    HEARTBEAT,
    PPID_DCEP,
    SACK,
    demux,
    extension_element_bytes,
    parse_sctp,
)
from receiver.wire import DIRECTIONS, STREAMS, WireMeter
from receiver.wire_hooks import _Hooks

# --- handmade datagrams --------------------------------------------------------------------------

STUN = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + bytes(12)  # binding request
RTCP = bytes([0x81, 201]) + struct.pack("!H", 7) + bytes(28)  # a receiver report
DTLS_HEADER = bytes([23, 0xFE, 0xFD]) + bytes(10)  # application data record (its body: anything)
PPID_BINARY = 53


def rtp(payload: bytes = bytes(80), extension: bytes | None = None, profile: int = 0x1000) -> bytes:
    """An RTP packet (Opus, payload type 111), with a header extension block when given."""
    first = 0x90 if extension is not None else 0x80
    header = bytes([first, 111]) + struct.pack("!HII", 1, 960, 0x1234)
    if extension is not None:
        extension += bytes(-len(extension) % 4)
        header += struct.pack("!HH", profile, len(extension) // 4) + extension
    return header + payload + bytes(10)  # the SRTP authentication tag


def data_chunk(stream_id: int, payload: bytes, flags: int = FLAG_BEGIN | FLAG_END, ssn: int = 0,
               ppid: int = PPID_BINARY) -> bytes:  # fmt: skip
    chunk = struct.pack("!BBHIHHI", DATA, flags, 16 + len(payload), 1, stream_id, ssn, ppid) + payload
    return chunk + bytes(-len(chunk) % 4)


SACK_CHUNK = struct.pack("!BBHIIHH", SACK, 0, 16, 1, 65536, 0, 0)
HEARTBEAT_CHUNK = struct.pack("!BBHHH", HEARTBEAT, 0, 12, 1, 8) + bytes(4)


def sctp(*chunks: bytes) -> bytes:
    return struct.pack("!HHII", 5000, 5000, 0xABCD, 0) + b"".join(chunks)


def dtls_for(plaintext: bytes, overhead: int = 37) -> bytes:
    """A DTLS datagram the size aiortc's would be for ``plaintext`` (AES-GCM: 13 + 8 + 16)."""
    return DTLS_HEADER + bytes(len(plaintext) + overhead - len(DTLS_HEADER))


KEYFRAME_HEAD = bytes([0x95, PACKET_VERSION, int(PacketKind.KEYFRAME)])
CONTROL = encode_packet(ControlPacket(ControlType.KEYFRAME_REQUEST, 0))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def assert_streams_add_up(snapshot: dict[str, Any]) -> None:
    for direction in DIRECTIONS:
        streams = snapshot["streams"]
        for field in ("packets", "bytes"):
            total = sum(streams[s][direction][field] for s in STREAMS)
            assert total == snapshot["socket"][direction][field], (direction, field, snapshot)


# --- parsing ---------------------------------------------------------------------------------------


def test_datagrams_are_told_apart_by_their_first_byte() -> None:
    assert demux(STUN) == "stun"
    assert demux(rtp()) == "rtp"
    assert demux(RTCP) == "rtcp"
    assert demux(bytes([0x80, 200])) == "rtcp"  # a sender report
    assert demux(DTLS_HEADER) == "dtls" and demux(bytes([22, 0xFE, 0xFD])) == "dtls"  # application data, handshake
    assert demux(b"") == demux(b"\x40") == demux(b"\xff") == "unknown"


def test_sctp_chunks_are_parsed() -> None:
    packet = sctp(SACK_CHUNK, data_chunk(3, b"hello", FLAG_BEGIN | FLAG_UNORDERED, ssn=9), HEARTBEAT_CHUNK)
    chunks, complete = parse_sctp(packet)
    assert complete
    assert [c.type for c in chunks] == [SACK, DATA, HEARTBEAT]
    assert [c.size for c in chunks] == [16, 24, 12]  # the DATA chunk: 16 + 5, padded to 24
    data = chunks[1]
    assert (data.stream_id, data.ssn, data.ppid, data.payload) == (3, 9, PPID_BINARY, b"hello")
    assert data.flags & FLAG_BEGIN and not data.flags & FLAG_END
    assert 12 + sum(c.size for c in chunks) == len(packet)


def test_truncated_and_garbage_sctp_packets_do_not_crash() -> None:
    packet = sctp(data_chunk(1, bytes(50)), SACK_CHUNK)
    for end in range(len(packet)):
        chunks, complete = parse_sctp(packet[:end])
        assert not complete or end == 12 or 12 + 66 <= end <= 12 + 68, end  # between chunks (padding optional)
        assert len(chunks) <= 2
    assert parse_sctp(sctp(struct.pack("!BBH", DATA, 3, 8) + bytes(4))) == ([], False)  # DATA below its header
    assert parse_sctp(sctp(struct.pack("!BBH", 9, 0, 2))) == ([], False)  # length below the chunk header
    assert parse_sctp(sctp(struct.pack("!BBH", 9, 0, 400))) == ([], False)  # runs past the end


def test_the_motion_element_costs_the_growth_of_the_extension_block() -> None:
    mid = bytes([1, 1]) + b"0"  # two-byte header: id, length, data
    level = bytes([2, 1, 0x85])  # audio level: voice, -5 dBov
    motion = bytes([3, 40]) + bytes(range(40))
    packet = rtp(extension=mid + level + motion)
    # mid + level: 6 bytes -> a block of 4 + 8; with the motion element: 4 + 48
    assert len(packet) == 12 + 52 + 80 + 10
    assert extension_element_bytes(packet, 3) == 52 - 12  # its 42 bytes, less the padding they filled
    assert extension_element_bytes(packet, 7) == 0  # not there
    assert extension_element_bytes(rtp(extension=motion), 3) == 4 + 44  # alone: the whole block
    assert extension_element_bytes(rtp(), 3) == 0  # no block
    one_byte = bytes([0x10, ord("0"), 0x33]) + bytes(range(4))  # id 1: "0"; id 3: 4 bytes
    assert extension_element_bytes(rtp(extension=one_byte, profile=0xBEDE), 3) == 12 - 8  # 2 + 5 bytes; 2 alone
    with pytest.raises(ValueError, match="extension element 3 runs past the block"):
        extension_element_bytes(rtp(extension=bytes([3, 200, 0, 0])), 3)
    with pytest.raises(ValueError, match="the RTP header extension is cut short"):
        extension_element_bytes(packet[:20], 3)
    with pytest.raises(ValueError, match="not an RTP packet"):
        extension_element_bytes(STUN, 3)


# --- the meter ---------------------------------------------------------------------------------


def test_the_meter_splits_a_call_into_streams() -> None:
    clock = Clock()
    meter = WireMeter(clock=clock)
    meter.channel_labels.update({1: "motion", 3: "control"})
    dcep = sctp(data_chunk(1, b"\x03" + bytes(20), ppid=PPID_DCEP))
    # the handshake: ICE checks, DTLS, a data channel's open message
    meter.on_datagram(STUN, "received")
    meter.on_datagram(STUN, "sent")
    meter.on_datagram(DTLS_HEADER + bytes(100), "sent")
    meter.on_sctp_received(meter.on_datagram(dtls_for(dcep), "received"), dcep)
    clock.now += 0.5
    meter.on_datagram(rtp(), "received")  # the first RTP packet: the call is on
    clock.now += 10
    meter.on_datagram(STUN, "sent")
    meter.on_datagram(RTCP, "sent")
    motion = sctp(data_chunk(1, bytes(30), FLAG_BEGIN | FLAG_END | FLAG_UNORDERED))
    meter.on_sctp_received(meter.on_datagram(dtls_for(motion), "received"), motion)
    first = sctp(data_chunk(3, KEYFRAME_HEAD + bytes(1000), FLAG_BEGIN, ssn=4))
    last = sctp(data_chunk(3, bytes(500), FLAG_END, ssn=4))
    for fragment in (first, last):
        meter.on_sctp_received(meter.on_datagram(dtls_for(fragment), "received"), fragment)
    request = sctp(data_chunk(3, CONTROL, ssn=0))
    meter.on_datagram(dtls_for(request), "sent", plaintext=request)
    ack = sctp(SACK_CHUNK)
    meter.on_datagram(dtls_for(ack), "sent", plaintext=ack)
    heartbeat = sctp(HEARTBEAT_CHUNK)
    meter.on_sctp_received(meter.on_datagram(dtls_for(heartbeat), "received"), heartbeat)
    meter.on_datagram(DTLS_HEADER + bytes(20), "received")  # an alert: never decrypted into SCTP

    snap = meter.snapshot()
    streams = snap["streams"]
    wire = {name: len(dtls_for(packet)) + 28 for name, packet in [("motion", motion), ("ack", ack)]}
    assert streams["motion"]["received"] == {"packets": 1, "bytes": wire["motion"], "packets_per_s": 0.1,
                                             "kbps": round(wire["motion"] * 8 / 10 / 1000, 2)}  # fmt: skip
    assert streams["keyframe"]["received"]["packets"] == 2
    assert streams["keyframe"]["received"]["bytes"] == len(dtls_for(first)) + len(dtls_for(last)) + 56
    assert streams["control"]["sent"]["packets"] == 1 and streams["control"]["received"]["packets"] == 0
    assert streams["sctp_ack"]["sent"] == {"packets": 1, "bytes": wire["ack"], "packets_per_s": 0.1,
                                           "kbps": round(wire["ack"] * 8 / 10 / 1000, 2)}  # fmt: skip
    assert streams["sctp_other"]["received"]["packets"] == 1  # the heartbeat
    assert streams["dtls_other"]["received"]["packets"] == 1  # the alert
    assert streams["audio"]["received"]["packets"] == 1 and streams["rtcp"]["sent"]["packets"] == 1
    assert streams["stun"]["sent"]["packets"] == 1  # the other two were the handshake's
    assert snap["handshake"] == {"seconds": 0.5, "received": {"packets": 2, "bytes": 48 + len(dtls_for(dcep)) + 28},
                                 "sent": {"packets": 2, "bytes": 48 + 141}}  # fmt: skip
    assert snap["seconds"] == 10.0 and snap["dtls_record_overhead"] == {"received": 37, "sent": 37}
    assert_streams_add_up(snap)
    total = sum(v["bytes"] for s in streams.values() for v in s.values())
    assert snap["total_kbps"] == round(total * 8 / 10 / 1000, 2)
    assert snap["other_kbps"] == round((48 + 0) * 8 / 10 / 1000, 2)
    assert snap["unparsed"] == 0
    assert re.fullmatch(r"wire: total \d+\.\d kbps \(audio \d+\.\d, video \d+\.\d\)", snap["line"])
    assert meter.lines()[0] == snap["line"] and any(line.startswith("  keyframe") for line in meter.lines())


def test_chunks_bundled_in_one_packet_split_their_bytes() -> None:
    meter = WireMeter(clock=Clock())
    meter.channel_labels[1] = "motion"
    meter.on_datagram(rtp(), "received")
    packet = sctp(SACK_CHUNK, data_chunk(1, bytes(40)))
    meter.on_sctp_received(meter.on_datagram(dtls_for(packet), "received"), packet)
    streams = meter.snapshot()["streams"]
    assert streams["sctp_ack"]["received"] == {"packets": 0, "bytes": 16, "packets_per_s": 0.0, "kbps": 0.0}
    assert streams["motion"]["received"]["packets"] == 1  # the largest chunk's: it takes the headers
    assert streams["motion"]["received"]["bytes"] == len(dtls_for(packet)) + 28 - 16
    assert_streams_add_up(meter.snapshot())


def test_motion_in_the_audio_packets_counts_as_motion() -> None:
    meter = WireMeter()
    meter.motion_extension_id = 3
    packet = rtp(extension=bytes([1, 1]) + b"0" + bytes([2, 1, 0x85]) + bytes([3, 40]) + bytes(40))
    plain = rtp(extension=bytes([1, 1]) + b"0")  # no motion on this one
    meter.on_datagram(packet, "received")
    meter.on_datagram(plain, "received")
    snap = meter.snapshot()
    assert snap["streams"]["motion"]["received"]["bytes"] == 40
    assert snap["streams"]["motion"]["received"]["packets"] == 0  # the packet is the audio's
    assert snap["streams"]["audio"]["received"]["packets"] == 2
    assert snap["streams"]["audio"]["received"]["bytes"] == len(packet) + 28 - 40 + len(plain) + 28
    assert snap["motion_in_rtp_packets"] == {"received": 1, "sent": 0}
    assert_streams_add_up(snap)
    meter.on_datagram(rtp(payload=bytes(3), extension=bytes([3, 200]) + bytes(200)), "sent")  # mostly motion
    snap = meter.snapshot()
    assert snap["streams"]["audio"]["sent"]["packets"] == 1 and snap["streams"]["motion"]["sent"]["packets"] == 0
    assert snap["streams"]["motion"]["sent"]["bytes"] == 4 + 204 and snap["motion_in_rtp_packets"]["sent"] == 1
    assert_streams_add_up(snap)


def test_hostile_datagrams_are_counted_never_raised() -> None:
    meter = WireMeter()
    meter.channel_labels[3] = "control"
    meter.motion_extension_id = 3
    meter.on_datagram(rtp(), "received")
    for garbage in (b"", b"\x40" * 9, bytes([0x90, 111]) + bytes(10), rtp(extension=bytes([3, 200]))):
        meter.on_datagram(garbage, "received")
    for plaintext in (b"", bytes(5), sctp(struct.pack("!BBH", DATA, 3, 300)), sctp(data_chunk(3, b"\xff"))):
        meter.on_sctp_received(meter.on_datagram(dtls_for(plaintext), "received"), plaintext)
        meter.on_datagram(dtls_for(plaintext), "sent", plaintext=plaintext)
    meter.on_sctp_received(None, bytes(3))  # a plaintext whose datagram is unknown: nothing counted
    snap = meter.snapshot()
    assert snap["unparsed"] == 2 + 2 * 3 + 1  # the RTP packets cut short; the SCTP packets cut short
    assert snap["streams"]["unknown"]["received"]["packets"] == 2
    assert snap["streams"]["control"]["received"]["packets"] == 1  # a message that is not this codec's
    assert_streams_add_up(snap)


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def get_extra_info(self, name: str) -> None:
        return None

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.sent.append(data)


class FakeProtocol:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


def test_a_failing_meter_never_breaks_the_connection() -> None:
    meter = WireMeter()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug in the meter")

    meter.on_datagram = broken  # type: ignore[method-assign]
    meter.on_sctp_received = broken  # type: ignore[method-assign]
    hooks = _Hooks(meter, pc=None)
    protocol = FakeProtocol()
    hooks.hook_protocol(protocol)
    protocol.transport.sendto(STUN, ("127.0.0.1", 9))
    protocol.datagram_received(STUN, ("127.0.0.1", 9))
    handled: list[bytes] = []

    class Sctp:
        async def _handle_data(self, data: bytes) -> None:
            handled.append(data)

    transport = Sctp()
    hooks.hook_sctp(transport)
    asyncio.run(transport._handle_data(b"x"))
    assert protocol.transport.sent == [STUN] and protocol.received == [STUN] and handled == [b"x"]
    assert meter.unparsed == 3


# --- a real call ---------------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.timeout(120)
def test_a_loopback_call_adds_up_on_the_wire() -> None:
    from codec.decoder import Decoder
    from codec.render import ClassicalRenderer
    from receiver.server import ReceiverServer
    from sender.call import SenderCall
    from sender.sources import VideoFileSource

    from .conftest import shared_clip

    clip: Path = shared_clip("d14.mp4")

    async def scenario() -> dict[str, Any]:
        renderer = ClassicalRenderer()
        server = ReceiverServer(lambda: Decoder(renderer), port=0)
        await server.start()
        call = SenderCall(VideoFileSource(clip, max_seconds=3.0), seed=7, loop_model="classical")
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        await call.run(3.0)
        await asyncio.sleep(0.3)
        assert server.stats()["wire"]["total_kbps"] > 0  # live, in /stats
        await call.close()
        await asyncio.wait_for(server.call_ended.wait(), 5)
        await server.stop()
        assert server.wire is not None
        return server.wire.snapshot()

    snap = asyncio.run(scenario())
    detail = "\n".join([snap["line"], str(snap)])
    streams = snap["streams"]
    assert_streams_add_up(snap)
    for stream in ("motion", "keyframe", "audio", "sctp_ack"):
        assert streams[stream]["received"]["bytes"] > 0, detail
    assert streams["control"]["sent"]["packets"] > 0, detail  # the keyframe request
    assert streams["sctp_ack"]["sent"]["packets"] > 0, detail
    # RTCP every 2.5-7.5 s (RFC 3550, receiver/thin_link.py), not aiortc's 0.5-1.5 s: one at most here
    assert streams["rtcp"]["sent"]["packets"] <= 1 and streams["rtcp"]["received"]["packets"] <= 1, detail
    assert snap["handshake"]["received"]["packets"] > 0 and snap["handshake"]["sent"]["packets"] > 0, detail
    assert 2.5 < snap["seconds"] < 5, detail
    assert snap["unparsed"] == 0 and streams["dtls_other"]["received"]["packets"] <= 2, detail
    assert snap["dtls_record_overhead"]["received"] == snap["dtls_record_overhead"]["sent"] is not None, detail
    assert snap["audio_kbps"] > 0 and snap["video_kbps"] > 5 and snap["other_kbps"] >= 0, detail


# --- reports ---------------------------------------------------------------------------------------


def test_the_bench_table_knows_every_stream_of_the_meter() -> None:
    from bench.call import STREAMS as BENCH_STREAMS
    from bench.call import call_table

    assert set(BENCH_STREAMS) == set(STREAMS)  # bench may not import receiver: its own copy
    meter = WireMeter(clock=Clock())
    meter.channel_labels[1] = "motion"
    meter.on_datagram(rtp(), "received")
    meter.clock.now += 2  # type: ignore[attr-defined]
    motion = sctp(data_chunk(1, bytes(20)))
    meter.on_sctp_received(meter.on_datagram(dtls_for(motion), "received"), motion)
    table = call_table(meter.snapshot())
    assert table[2].startswith("| audio | 0.5 |") and table[3].startswith("| motion | 0.5 |")
    assert table[4].startswith("| **all** | 1.0 |") and table[6].startswith("wire: total ")


def test_the_bench_writes_the_table_with_the_calls_timing(tmp_path: Path) -> None:
    from bench.call import write_call

    meter = WireMeter(clock=Clock())
    meter.on_datagram(rtp(), "received")
    meter.clock.now += 2  # type: ignore[attr-defined]
    document = {"clip": "clips/d14.mp4", "seconds": 2.0, "motion_kbps": 2.5, "body_kbps": 0.75, "keyframes": 1,
                "keyframe_bytes": 3500.0, "latency_median_ms": 91.4, "latency_p95_ms": 130.6,
                "receiver_fps": 17.25, "av_offset_ms": 24.6, "wire": meter.snapshot()}  # fmt: skip
    table = write_call(document, tmp_path, "python -m bench call")
    markdown = (tmp_path / "call.md").read_text().splitlines()
    assert markdown[0] == "# Bytes on the wire: d14.mp4, 2.0 s"
    assert markdown[4] == "payload (the codec's own count): motion 2.50 kbps, body 0.75 kbps, 1 keyframe(s) of 3.5 KB"
    assert markdown[6] == ("latency capture -> rendered frame: median 91 ms, p95 131 ms; 17.2 frames/s rendered; "
                           "the picture trails the sound by 25 ms")  # fmt: skip
    assert markdown[8:] == table
    assert json.loads((tmp_path / "call.json").read_text())["latency_p95_ms"] == 130.6


def test_a_headless_demo_needs_somewhere_to_write(capsys: pytest.CaptureFixture[str]) -> None:
    from receiver.__main__ import main

    assert main(["demo", "--video", "clip.mp4", "--headless"]) == 2
    assert capsys.readouterr().err == "error: --headless needs --out CALL.mp4 (or --json FILE)\n"
