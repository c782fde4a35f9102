"""Motion on the audio RTP packets (sender.carrier, receiver.carrier): the header-extension maps
through aiortc's own serialize and parse, the sender's queue (latency, fallback, overflow,
redundancy), the negotiation, the aiortc internals the hooks rely on, and real loopback calls:
one carrying its motion on the audio packets, one with an older peer (the data channel), one
losing 20 % of its datagrams both ways."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcpeerconnection import find_common_header_extensions
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtcpReceiverInfo, RtcpRrPacket, RtpPacket, pack_header_extensions, wrap_rtx

import receiver.carrier
import sender.carrier
from codec.decoder import Decoder
from codec.packets.bundle import MOTION_EXTENSION_URI
from codec.packets.stream import DecodedMotion
from codec.render import ClassicalRenderer
from receiver.carrier import MotionExtensionReader, MotionReceiver
from receiver.server import ReceiverServer
from sender.call import SenderCall
from sender.carrier import (
    AUDIO_STALL,
    MAX_AGE,
    SENDER_MAP_ATTRIBUTE,
    MotionCarrier,
    MotionExtensionWriter,
    redundancy_for,
)
from sender.sources import VideoFileSource

from .conftest import shared_clip

MOTION_ID = 4
PARAMETERS = RTCRtpParameters(headerExtensions=[
    RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
    RTCRtpHeaderExtensionParameters(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
    RTCRtpHeaderExtensionParameters(id=MOTION_ID, uri=MOTION_EXTENSION_URI),
])  # fmt: skip
PLAIN_AUDIO = [e for e in HEADER_EXTENSIONS["audio"] if e.uri != MOTION_EXTENSION_URI]


def message(seq: int, size: int = 8) -> bytes:
    """A whole msgpack object of ``size`` bytes (``seq`` < 128), as a motion message is."""
    data = msgpack.packb([seq, bytes(size - 4)])
    assert len(data) == size
    return data


def audio_packet(seq: int = 1) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=seq, timestamp=960 * seq, ssrc=1234, payload=b"\xf8\xff\xfe")
    packet.extensions.mid = "0"
    packet.extensions.audio_level = (False, 30)
    return packet


def reader_for(delivered: list[bytes]) -> tuple[MotionReceiver, MotionExtensionReader]:
    carrier = MotionReceiver(delivered.append, pace=False)
    reader = MotionExtensionReader(carrier.on_element)
    reader.configure(PARAMETERS)
    return carrier, reader


# --- the maps, through aiortc's serialize and parse ----------------------------------------------


@pytest.mark.parametrize(("sizes", "profile"), [([8, 8], 0xBEDE), ([100, 100], 0x1000), ([255], 0x1000)])
def test_an_element_round_trips_through_aiortc_serialize_and_parse(sizes: list[int], profile: int) -> None:
    messages = [message(i, size) for i, size in enumerate(sizes)]
    writer = MotionExtensionWriter(lambda: b"".join(messages))
    writer.configure(PARAMETERS)
    data = audio_packet().serialize(writer)
    assert int.from_bytes(data[12:14], "big") == profile  # one-byte form up to 16 bytes, two-byte above
    delivered: list[bytes] = []
    carrier, reader = reader_for(delivered)
    parsed = RtpPacket.parse(data, reader)
    assert (parsed.extensions.mid, parsed.extensions.audio_level, parsed.payload) == ("0", (False, 30), b"\xf8\xff\xfe")
    assert delivered == messages
    assert carrier.stats.elements == 1 and carrier.stats.messages == len(messages)
    # a peer without the extension parses the same packet and ignores the element
    plain = HeaderExtensionsMap()
    plain.configure(PARAMETERS)
    assert RtpPacket.parse(data, plain).extensions.mid == "0"


def test_no_motion_no_element_and_no_extension_no_element() -> None:
    writer = MotionExtensionWriter(lambda: b"")
    writer.configure(PARAMETERS)
    assert audio_packet().serialize(writer) == audio_packet().serialize(_plain())
    taken = []
    unnegotiated = MotionExtensionWriter(lambda: taken.append(1) or message(1))
    unnegotiated.configure(RTCRtpParameters(headerExtensions=PARAMETERS.headerExtensions[:2]))
    assert audio_packet().serialize(unnegotiated) == audio_packet().serialize(_plain())
    assert taken == []  # nothing taken from the queue while the extension is not negotiated


def _plain() -> HeaderExtensionsMap:
    plain = HeaderExtensionsMap()
    plain.configure(PARAMETERS)
    return plain


def test_a_retransmission_repeats_the_bundle_without_taking_the_queue_again() -> None:
    taken: list[bytes] = []

    def take() -> bytes:
        taken.append(message(len(taken)))
        return taken[-1]

    writer = MotionExtensionWriter(take)
    writer.configure(PARAMETERS)
    packet = audio_packet()
    first = packet.serialize(writer)
    assert packet.serialize(writer) == first  # what RTCRtpSender._retransmit does
    rtx = wrap_rtx(packet, payload_type=112, sequence_number=9, ssrc=99)
    delivered: list[bytes] = []
    RtpPacket.parse(rtx.serialize(writer), reader_for(delivered)[1])
    assert delivered == taken and len(taken) == 1
    audio_packet(2).serialize(writer)
    assert len(taken) == 2  # a new packet takes the queue


def test_malformed_elements_are_counted_and_dropped_never_raised() -> None:
    delivered: list[bytes] = []
    carrier, reader = reader_for(delivered)
    for element in (b"\xc1", b"\x92\x01", b"\x01" * 40, message(1)[:-1]):
        profile, value = pack_header_extensions([(1, b"0"), (MOTION_ID, element)])
        assert reader.get(profile, value).mid == "0"  # the packet itself goes on
    assert carrier.stats.malformed == 4 and delivered == []
    assert carrier.stats.last_error == "bundle ends inside a message (7 bytes left over)"

    def broken(data: bytes) -> None:
        raise RuntimeError("session gone")

    carrier.deliver = broken
    profile, value = pack_header_extensions([(MOTION_ID, message(2))])
    reader.get(profile, value)
    assert carrier.stats.errors == 1 and carrier.stats.last_error == "RuntimeError: session gone"


def test_repeated_copies_are_passed_on_once() -> None:
    delivered: list[bytes] = []
    carrier, reader = reader_for(delivered)
    for element in ([0, 1], [0, 1, 2, 3], [2, 3, 4]):
        reader.get(*pack_header_extensions([(MOTION_ID, b"".join(message(i) for i in element))]))
    assert delivered == [message(i) for i in range(5)]
    assert carrier.stats.duplicates == 4 and carrier.stats.messages == 5


def test_the_same_bytes_later_are_a_new_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A motion message carries its sequence number modulo 16: two messages 16 frames apart can
    be the same bytes.  Only a copy within 200 ms is a copy."""
    now = [100.0]
    monkeypatch.setattr(receiver.carrier, "time", SimpleNamespace(monotonic=lambda: now[0]))
    delivered: list[bytes] = []
    carrier, reader = reader_for(delivered)
    element = pack_header_extensions([(MOTION_ID, message(1))])
    reader.get(*element)
    now[0] += 0.12
    reader.get(*element)  # the copy two packets later
    now[0] += 0.4
    reader.get(*element)
    assert delivered == [message(1), message(1)] and carrier.stats.duplicates == 1


def test_paced_messages_are_spread_over_the_packet_interval() -> None:
    async def scenario() -> list[tuple[float, bytes]]:
        arrivals: list[tuple[float, bytes]] = []
        carrier = MotionReceiver(lambda data: arrivals.append((time.monotonic(), data)))
        carrier.on_element(message(0) + message(1))
        await asyncio.sleep(0.1)
        carrier.on_element(message(2) + message(3))
        carrier.on_element(message(4))  # a new element hands on what still waits first
        return arrivals

    arrivals = asyncio.run(scenario())
    assert [data for _, data in arrivals] == [message(i) for i in range(5)]
    assert 0.02 <= arrivals[1][0] - arrivals[0][0] <= 0.06  # about half the 60 ms interval


def test_a_renderer_too_slow_to_pace_gets_an_elements_messages_at_once() -> None:
    async def scenario(render_seconds: float | None) -> tuple[list[float], MotionReceiver]:
        arrivals: list[float] = []
        carrier = MotionReceiver(lambda data: arrivals.append(time.monotonic()), render_seconds=lambda: render_seconds)
        start = time.monotonic()
        carrier.on_element(message(0) + message(1) + message(2))
        await asyncio.sleep(0.08)
        return [t - start for t in arrivals], carrier

    slow, slow_carrier = asyncio.run(scenario(0.055))  # >= 0.8 x 60 ms: the newest is painted at once
    assert len(slow) == 3 and max(slow) < 0.01 and slow_carrier.stats.unpaced == 1
    fast, fast_carrier = asyncio.run(scenario(0.02))  # room for the paced frames: 20 ms apart
    assert len(fast) == 3 and 0.03 <= fast[2] <= 0.07 and fast_carrier.stats.unpaced == 0
    unknown, _ = asyncio.run(scenario(None))  # before the first render: paced
    assert len(unknown) == 3 and unknown[2] >= 0.03


# --- the sender's queue --------------------------------------------------------------------------


class FakeChannel:
    readyState = "open"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


class FakeSender:
    def __init__(self) -> None:
        setattr(self, SENDER_MAP_ATTRIBUTE, HeaderExtensionsMap())


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def carrier_with_clock(negotiated: bool = True) -> tuple[MotionCarrier, FakeChannel, Clock]:
    clock, channel = Clock(), FakeChannel()
    carrier = MotionCarrier(FakeSender(), channel, clock=clock)
    carrier._maybe_poll = lambda now: None  # type: ignore[method-assign]  # no RTCP in these tests
    if negotiated:
        carrier.writer.configure(PARAMETERS)
    return carrier, channel, clock


def test_motion_waits_for_the_next_audio_packet_and_falls_back_without_one() -> None:
    carrier, channel, clock = carrier_with_clock()
    assert carrier.stats.negotiated
    carrier.send(message(0))  # no audio packet has left yet: the data channel
    assert channel.sent == [message(0)]
    assert carrier.take() == b""
    clock.now += 0.02
    carrier.send(message(1))
    clock.now += 0.02
    carrier.send(message(2))
    clock.now += 0.02
    assert carrier.take() == message(1) + message(2)
    carrier.on_loss_report(0.0, clock.now)  # no loss: no copies
    clock.now += 0.03
    carrier.send(message(3))
    clock.now += 0.03
    assert carrier.take() == message(3)
    clock.now += AUDIO_STALL + 0.01  # the sound stalled: straight to the channel
    carrier.send(message(4))
    assert channel.sent == [message(0), message(4)]
    stats = carrier.stats
    assert (stats.carrier_messages, stats.channel_messages) == (3, 2)
    assert (stats.audio_packets, stats.packets_with_motion) == (3, 2)


def test_late_messages_are_dropped_and_a_stall_flushes_the_queue_to_the_channel() -> None:
    carrier, channel, clock = carrier_with_clock()
    carrier.on_loss_report(0.0, clock.now)
    carrier.take()
    carrier.send(message(0))
    clock.now += MAX_AGE + 0.01  # the packet came too late for it
    assert carrier.take() == b"" and carrier.stats.dropped_late == 1
    carrier.send(message(1))
    clock.now += AUDIO_STALL / 2
    carrier.send(message(2))
    clock.now += AUDIO_STALL / 2 + 0.01
    carrier.send(message(3))  # the sound stalled after 1 and 2 were queued: all three by the channel
    assert channel.sent == [message(1), message(2), message(3)]


def test_a_full_queue_sends_its_oldest_on_the_data_channel() -> None:
    carrier, channel, clock = carrier_with_clock()
    carrier.on_loss_report(0.0, clock.now)
    carrier.take()
    messages = [message(i, 30) for i in range(10)]
    for item in messages:
        carrier.send(item)
    assert channel.sent == messages[:2] and carrier.stats.overflow == 2  # 8 x 30 bytes fit 255
    assert carrier.take() == b"".join(messages[2:])


def test_redundancy_follows_the_reported_loss_and_fits_one_element() -> None:
    assert [redundancy_for(loss) for loss in (0.0, 0.01, 0.049, 0.05, 0.2, 1.0)] == [0, 1, 1, 2, 2, 2]
    carrier, _, clock = carrier_with_clock()
    carrier.take()
    bundles = []
    for packet in range(4):
        for item in (message(2 * packet), message(2 * packet + 1)):
            carrier.send(item)
            clock.now += 0.03
        if packet == 1:
            carrier.on_loss_report(0.2, clock.now)
        bundles.append(carrier.take())
    assert bundles[0] == message(0) + message(1)  # no copies before the first report
    assert bundles[1] == b"".join(message(i) for i in range(4))  # the previous packet's, then its own
    assert bundles[3] == b"".join(message(i) for i in range(2, 8))  # 20 % loss: the previous two packets'
    assert carrier.stats.redundancy == 2 and carrier.stats.loss == 0.2
    clock.now += 10.1  # no lossy report for 10 s: no copies
    carrier.on_loss_report(0.0, clock.now)
    carrier.take()
    carrier.send(message(8))
    assert carrier.take() == message(8) and carrier.stats.redundancy == 0
    carrier.on_loss_report(0.2, clock.now)
    for i in range(3):  # big messages: the copies that do not fit are left out, the new ones never
        carrier.send(message(20 + i, 120))
        clock.now += 0.03
        bundle = carrier.take()
    assert bundle == message(21, 120) + message(22, 120)


def test_a_failing_carrier_sends_the_packet_without_motion() -> None:
    carrier, _, _ = carrier_with_clock()

    def broken() -> bytes:
        raise ValueError("bug")

    carrier.take = broken  # type: ignore[method-assign]
    assert audio_packet().serialize(carrier.writer) == audio_packet().serialize(_plain())
    assert carrier.stats.hook_errors == 1


# --- negotiation and the aiortc internals the hooks use ------------------------------------------


def test_the_extension_is_registered_once_under_a_free_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(HEADER_EXTENSIONS, "audio", list(PLAIN_AUDIO))
    ids = {sender.carrier.register_motion_extension(), receiver.carrier.register_motion_extension()}
    assert len(ids) == 1
    (motion_id,) = ids
    others = {e.id for extensions in HEADER_EXTENSIONS.values() for e in extensions if e.uri != MOTION_EXTENSION_URI}
    assert 1 <= motion_id <= 14 and motion_id not in others
    assert [e.uri for e in HEADER_EXTENSIONS["audio"]].count(MOTION_EXTENSION_URI) == 1


async def _negotiate(offer_plain: bool, answer_plain: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    registered = [*PLAIN_AUDIO, RTCRtpHeaderExtensionParameters(id=MOTION_ID, uri=MOTION_EXTENSION_URI)]
    caller, callee = RTCPeerConnection(), RTCPeerConnection()
    caller.addTrack(AudioStreamTrack())
    caller.createDataChannel("motion")
    try:
        monkeypatch.setitem(HEADER_EXTENSIONS, "audio", list(PLAIN_AUDIO if offer_plain else registered))
        await caller.setLocalDescription(await caller.createOffer())
        monkeypatch.setitem(HEADER_EXTENSIONS, "audio", list(PLAIN_AUDIO if answer_plain else registered))
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        return caller.localDescription.sdp, callee.localDescription.sdp
    finally:
        await caller.close()
        await callee.close()


@pytest.mark.parametrize(("offer_plain", "answer_plain", "negotiated"),
                         [(False, False, True), (False, True, False), (True, False, False)])  # fmt: skip
def test_the_answer_keeps_the_extension_and_a_plain_peer_does_not_get_it(
    offer_plain: bool, answer_plain: bool, negotiated: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    offer, answer = asyncio.run(_negotiate(offer_plain, answer_plain, monkeypatch))
    line = f"a=extmap:{MOTION_ID} {MOTION_EXTENSION_URI}"
    assert (line in offer) is not offer_plain
    assert (line in answer) is negotiated


def test_aiortc_still_works_the_way_the_hooks_expect() -> None:
    """If this fails, aiortc moved what sender/carrier.py and receiver/carrier.py hook into."""
    for method in (RTCRtpSender._run_rtp, RTCRtpSender._retransmit):
        assert {"serialize", SENDER_MAP_ATTRIBUTE} <= set(method.__code__.co_names), method
    parse_rtp = RTCDtlsTransport._handle_rtp_data.__code__.co_names
    assert {"parse", receiver.carrier.TRANSPORT_MAP_ATTRIBUTE} <= set(parse_rtp)
    local = [RTCRtpHeaderExtensionParameters(id=MOTION_ID, uri=MOTION_EXTENSION_URI)]
    remote = [RTCRtpHeaderExtensionParameters(id=9, uri=MOTION_EXTENSION_URI)]
    assert find_common_header_extensions(local, remote) == remote  # the offer's id is the one used

    async def scenario() -> tuple[Any, Any]:
        pc = RTCPeerConnection()
        try:
            audio = pc.addTrack(AudioStreamTrack())
            installed = getattr(audio, SENDER_MAP_ATTRIBUTE)
            report = RtcpReceiverInfo(ssrc=audio._ssrc, fraction_lost=64, packets_lost=5, highest_sequence=100,
                                      jitter=0, lsr=0, dlsr=0)  # fmt: skip
            await audio._handle_rtcp_packet(RtcpRrPacket(ssrc=1, reports=[report]))
            stats = [s for s in (await audio.getStats()).values() if s.type == "remote-inbound-rtp"]
            return installed, stats
        finally:
            await pc.close()

    installed, stats = asyncio.run(scenario())
    assert type(installed) is HeaderExtensionsMap
    assert [s.fractionLost for s in stats] == [64]  # the RTCP field as it is: 64/256 = 25 %


def test_the_hooks_refuse_an_aiortc_that_moved() -> None:
    with pytest.raises(RuntimeError) as error:
        MotionCarrier(object(), FakeChannel())
    assert str(error.value) == ("aiortc's RTCRtpSender has no _RTCRtpSender__rtp_header_extensions_map any more: "
                                "motion cannot ride on the audio packets (see sender/carrier.py)")  # fmt: skip

    class Receiver:
        track = "audio"
        transport = object()

    class Transceiver:
        receiver = Receiver()

    class Pc:
        remoteDescription = None

        def getTransceivers(self) -> list[Any]:
            return [Transceiver()]

    with pytest.raises(RuntimeError) as error:
        MotionReceiver(lambda data: None).attach(Pc(), "audio")
    assert str(error.value) == ("aiortc's RTCDtlsTransport has no _rtp_header_extensions_map any more: motion "
                                "cannot be read from the audio packets (see receiver/carrier.py)")  # fmt: skip
    assert MotionReceiver(lambda data: None).attach(Pc(), "video") is False


# --- real calls on loopback ----------------------------------------------------------------------


class RecordingDecoder(Decoder):
    """Notes (arrival, sender timestamp) of every motion it decodes."""

    def __init__(self, renderer: Any) -> None:
        super().__init__(renderer)
        self.decoded: list[tuple[float, int]] = []

    def receive(self, message: bytes | str, channel: Any = None) -> DecodedMotion | None:
        motion = super().receive(message, channel)
        if motion is not None:
            self.decoded.append((time.monotonic(), motion.timestamp_ms))
        return motion


async def _start(clip: Path, seconds: float) -> tuple[ReceiverServer, SenderCall, list[RecordingDecoder]]:
    renderer = ClassicalRenderer()
    decoders: list[RecordingDecoder] = []
    server = ReceiverServer(lambda: decoders.append(RecordingDecoder(renderer)) or decoders[-1], port=0)
    await server.start()
    call = SenderCall(VideoFileSource(clip, max_seconds=seconds), seed=7, loop_model="classical")
    await call.connect(f"http://127.0.0.1:{server.port}", server.token)
    return server, call, decoders


async def _hang_up(server: ReceiverServer, call: SenderCall) -> None:
    await call.close()
    await asyncio.wait_for(server.call_ended.wait(), 5)
    await server.stop()


@pytest.mark.shared
@pytest.mark.timeout(180)
def test_a_call_carries_its_motion_on_the_audio_packets() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server, call, _ = await _start(clip, 3.0)
        await call.run(3.0)
        await asyncio.sleep(0.3)
        session, carrier, sent = server.session, server.carrier, call.stats.carrier
        assert session is not None and carrier is not None
        print(f"carrier: {sent}\nreceived: {carrier.stats}")
        assert sent.negotiated and sent.hook_errors == 0 and sent.dropped_late == 0
        # the first messages may leave before the first audio packet; the rest ride on the audio
        messages = call.stats.motion_packets + call.stats.body_packets  # the body messages ride with the motion
        assert sent.channel_messages <= 5 and sent.carrier_messages + sent.channel_messages == messages
        assert carrier.stats.messages == sent.carrier_messages and carrier.stats.malformed == 0
        assert sent.redundancy == 0  # loopback loses nothing: no copies once the receiver said so
        stats = session.stats
        assert stats.motion_packets == call.stats.motion_packets and stats.motion_bytes == call.stats.motion_bytes
        assert stats.bad_packets == 0 and stats.undecodable == 0
        assert stats.rendered >= 0.9 * call.stats.motion_packets  # paced: every frame painted
        assert session.image is not None
        print(f"motion on the carrier: {sent.carrier_bytes * 8 / 3000:.2f} kbps of messages, "
              f"{sent.element_bytes * 8 / 3000:.2f} kbps added to the audio packets")  # fmt: skip
        await _hang_up(server, call)

    asyncio.run(scenario())


@pytest.mark.shared
@pytest.mark.timeout(180)
def test_an_older_peer_gets_the_motion_on_the_data_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    clip = shared_clip("grid_lbbc2a.mp4")
    monkeypatch.setitem(HEADER_EXTENSIONS, "audio", list(HEADER_EXTENSIONS["audio"]))  # restored afterwards

    def older_receiver() -> int:
        """Both peers share aiortc's list here: the receiver's process never heard of the URI."""
        HEADER_EXTENSIONS["audio"][:] = PLAIN_AUDIO
        return 0

    monkeypatch.setattr(receiver.carrier, "register_motion_extension", older_receiver)

    async def scenario() -> None:
        server, call, _ = await _start(clip, 2.0)
        assert MOTION_EXTENSION_URI in call.pc.localDescription.sdp  # offered, not accepted
        await call.run(2.0)
        await asyncio.sleep(0.3)
        session, sent = server.session, call.stats.carrier
        assert session is not None
        assert not sent.negotiated and sent.carrier_messages == 0
        assert call.stats.motion_packets == session.stats.motion_packets
        assert sent.channel_messages == call.stats.motion_packets + call.stats.body_packets
        await _hang_up(server, call)

    asyncio.run(scenario())


def _drop_datagrams(pc: Any, rate: float, seed: int) -> dict[str, int]:
    """Drop ``rate`` of the datagrams ``pc``'s sockets receive and send, at random: the socket
    layer under ICE (aioice's protocols of the bundled transport).  One generator per direction:
    the n-th datagram of a direction meets the same fate in every run."""
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    counts = {"received": 0, "received_dropped": 0, "sent": 0, "sent_dropped": 0}
    ice = pc.getTransceivers()[0].receiver.transport.transport
    for protocol in list(ice._connection._protocols):
        received, sendto = protocol.datagram_received, protocol.transport.sendto

        def lossy_received(data: bytes, addr: Any, received: Any = received) -> None:
            counts["received"] += 1
            if rng_in.random() < rate:
                counts["received_dropped"] += 1
                return
            received(data, addr)

        def lossy_sendto(data: bytes, *args: Any, sendto: Any = sendto) -> None:
            counts["sent"] += 1
            if rng_out.random() < rate:
                counts["sent_dropped"] += 1
                return
            sendto(data, *args)

        protocol.datagram_received = lossy_received
        protocol.transport.sendto = lossy_sendto
    return counts


@pytest.mark.shared
@pytest.mark.timeout(240)
def test_20_percent_loss_both_ways_leaves_no_motion_gap_over_200_ms() -> None:
    clip = shared_clip("d14.mp4")
    seconds, warm_up = 9.0, 2.5  # the sender learns of the loss from refresh requests, then RTCP reports

    async def scenario() -> None:
        server, call, decoders = await _start(clip, seconds)
        sending = asyncio.ensure_future(call.run(seconds))
        while server.session is None or server.session.decoder.keyframe is None:
            await asyncio.sleep(0.01)
        counts = _drop_datagrams(server.call_pc, 0.2, seed=11)
        lossy_from = time.monotonic()
        assert server.relay is not None and server.audio_track is not None
        sound = server.relay.subscribe(server.audio_track)
        audio: list[tuple[float, Any]] = []

        async def listen() -> None:
            while True:
                audio.append((time.monotonic(), await sound.recv()))

        listening = asyncio.ensure_future(listen())
        await sending
        await asyncio.sleep(0.5)
        listening.cancel()
        (decoder,) = decoders
        sent, received = call.stats.carrier, server.carrier.stats if server.carrier else None
        print(f"datagrams: {counts}\ncarrier: {sent}\nreceived: {received}\nkeyframes: {call.stats.keyframe_reasons}")
        print(f"decoder: {decoder.stats.undecodable} undecodable, {decoder.stats.dropped_stale} stale, "
              f"{decoder.motion_decoder.concealed} concealed")  # fmt: skip
        decoded = np.array([(t, ts) for t, ts in decoder.decoded if t >= lossy_from + warm_up])
        assert len(decoded) > 0.7 * 30 * (seconds - warm_up - 1)
        stamp_gaps, arrival_gaps = np.diff(decoded[:, 1]), np.diff(decoded[:, 0]) * 1000
        early = np.array([ts for t, ts in decoder.decoded if lossy_from <= t < lossy_from + warm_up])
        print(f"decoded motion, sender time: longest gap {stamp_gaps.max():.0f} ms "
              f"(before the sender adapted: {np.diff(early).max() if len(early) > 1 else 0:.0f} ms); "
              f"arrival: longest gap {arrival_gaps.max():.0f} ms, "
              f"p99 {np.percentile(arrival_gaps, 99):.0f} ms")  # fmt: skip
        frames = [(t, f) for t, f in audio if t >= lossy_from + 0.5]
        holes = [b.pts + b.samples - a.pts for (_, a), (_, b) in itertools.pairwise(frames)
                 if b.pts != a.pts + a.samples]  # fmt: skip
        audio_arrival = np.diff([t for t, _ in frames]) * 1000
        print(f"sound: {len(frames)} frames, {len(holes)} holes; arrival: longest gap {audio_arrival.max():.0f} ms")
        # the receiver sends little (RTCP receiver reports, a few SACKs, STUN): some of it is lost too
        assert counts["received_dropped"] > 0.15 * counts["received"] and counts["sent_dropped"] >= 1
        assert sent.redundancy == 2 and sent.redundant_messages > 0 and received is not None and received.duplicates > 0
        assert stamp_gaps.max() <= 200, "a motion gap over 200 ms"
        assert holes == [], "a hole in the received sound"
        await _hang_up(server, call)

    asyncio.run(scenario())


def test_refresh_requests_add_copies_before_any_report() -> None:
    carrier, _, clock = carrier_with_clock()
    carrier.take()
    carrier.on_refresh_request(clock.now)
    assert carrier.redundancy(clock.now) == 1  # no RTCP report yet, the receiver lost motion
    carrier.on_refresh_request(clock.now + 0.1)  # the same loss asks again: no escalation
    assert carrier.redundancy(clock.now + 0.1) == 1
    carrier.on_refresh_request(clock.now + 0.6)  # lost again despite one copy
    assert carrier.redundancy(clock.now + 0.6) == 2
    carrier.on_refresh_request(clock.now + 1.2)
    assert carrier.redundancy(clock.now + 1.2) == 2  # MAX_REDUNDANCY
    assert carrier.redundancy(clock.now + 1.2 + 10.1) == 0  # held 10 s, like a report's
