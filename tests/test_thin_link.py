"""The call's settings for a thin link: RTCP every 5 s (RFC 3550), the short SRTP tag, no unused
RTP header extensions on the audio; and the aiortc internals they rely on."""

from __future__ import annotations

import asyncio
import inspect
import random

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import AudioStreamTrack

import receiver.thin_link
import sender.thin_link
from codec.decoder import Decoder
from codec.packets.bundle import MOTION_EXTENSION_URI
from codec.render import ClassicalRenderer
from receiver.server import ReceiverServer
from sender.call import SenderCall
from sender.carrier import UNUSED_AUDIO_EXTENSIONS, register_motion_extension, without_unused_audio_extensions
from sender.sources import VideoFileSource

from .conftest import shared_clip

RTCP_WAIT = "await asyncio.sleep(0.5 + random.random())"


def test_aiortc_still_waits_between_reports_the_way_the_hook_expects() -> None:
    for loop in (RTCRtpSender._run_rtcp, RTCRtpReceiver._run_rtcp):
        assert RTCP_WAIT in inspect.getsource(loop)
    for module in (aiortc.rtcrtpsender, aiortc.rtcrtpreceiver):  # `random` is used for nothing else
        assert inspect.getsource(module).count("random.") == 1


@pytest.mark.parametrize("side", [sender.thin_link, receiver.thin_link])
def test_reports_are_spaced_over_half_to_one_and_a_half_intervals(
    side: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = aiortc.rtcrtpsender if side is sender.thin_link else aiortc.rtcrtpreceiver
    monkeypatch.setattr(module, "random", random)  # put back after the test
    side.space_rtcp_reports(5.0)  # type: ignore[attr-defined]
    waits = np.array([0.5 + module.random.random() for _ in range(4000)])  # what aiortc sleeps
    assert waits.min() >= 2.5 and waits.max() <= 7.5
    assert waits.mean() == pytest.approx(5.0, abs=0.1)
    with pytest.raises(ValueError, match=r"^an RTCP interval of 0.8 s is below aiortc's own 1 s$"):
        side.space_rtcp_reports(0.8)  # type: ignore[attr-defined]


def test_the_offer_keeps_the_motion_extension_and_drops_the_unused_ones() -> None:
    async def scenario() -> str:
        register_motion_extension()
        pc = RTCPeerConnection()
        pc.addTrack(AudioStreamTrack())
        pc.createDataChannel("control")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    offer = asyncio.run(scenario())
    assert all(uri in offer for uri in UNUSED_AUDIO_EXTENSIONS)
    pruned = without_unused_audio_extensions(offer)
    assert not any(uri in pruned for uri in UNUSED_AUDIO_EXTENSIONS)
    assert MOTION_EXTENSION_URI in pruned
    removed = set(offer.split("\r\n")) - set(pruned.split("\r\n"))
    assert len(removed) == 2 and all(line.startswith("a=extmap:") for line in removed)
    assert without_unused_audio_extensions(pruned) == pruned


def test_the_preference_refuses_an_aiortc_that_moved() -> None:
    class Moved:
        class sender:
            transport = object()

    pc = type("PC", (), {"getTransceivers": lambda self: [Moved()], "sctp": None})()
    with pytest.raises(RuntimeError, match=r"^aiortc's RTCDtlsTransport has no _srtp_profiles any more"):
        sender.thin_link.prefer_short_srtp_tag(pc)


@pytest.mark.shared
@pytest.mark.timeout(120)
def test_a_call_uses_the_short_tag_and_only_the_motion_extension_on_its_audio() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server = ReceiverServer(lambda: Decoder(ClassicalRenderer()), port=0)
        await server.start()
        call = SenderCall(VideoFileSource(clip, max_seconds=1.0), loop_model="classical")
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        await call.run(1.0)
        for pc in (call.pc, server.call_pc):
            assert pc is not None
            transport = pc.sctp.transport
            assert transport._ssl.get_selected_srtp_profile() == b"SRTP_AES128_CM_SHA1_32"
        assert server.call_pc is not None
        answer = server.call_pc.localDescription.sdp
        extmaps = [line for line in answer.split("\r\n") if line.startswith("a=extmap:")]
        assert len(extmaps) == 1 and extmaps[0].endswith(" " + MOTION_EXTENSION_URI), extmaps
        wire = server.wire.snapshot() if server.wire is not None else {}
        audio = wire["streams"]["audio"]["received"]
        per_packet = audio["bytes"] / audio["packets"]
        # IPv4 20 + UDP 8 + RTP 12 + 32-bit tag 4, then Opus at 11 kbps (~82 bytes per 60 ms)
        assert 44 + 60 < per_packet < 44 + 100, per_packet
        await call.close()
        await asyncio.wait_for(server.call_ended.wait(), 5)
        await server.stop()

    asyncio.run(scenario())


def test_both_ends_ask_for_the_same_settings() -> None:
    """The two copies (sender and receiver never import each other) must not drift apart: the
    DTLS server's order decides the profile, and both ends space their reports alike."""
    assert sender.thin_link.SRTP_PREFERENCE == receiver.thin_link.SRTP_PREFERENCE
    assert sender.thin_link.RTCP_INTERVAL == receiver.thin_link.RTCP_INTERVAL
    body = [
        inspect.getsource(module.prefer_short_srtp_tag).split('"""')[2]
        for module in (sender.thin_link, receiver.thin_link)
    ]
    assert body[0] == body[1]
