"""Hostile peers against a running receiver server (loopback only, bounded in time): each attack
of issue 10, then a legitimate sender that must get in within 5 s and have its frames rendered."""

from __future__ import annotations

import asyncio
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec.decoder import Decoder
from codec.packets import encode_packet
from codec.render import ClassicalRenderer, Renderer
from receiver import signaling
from receiver.server import ReceiverServer
from receiver.session import ReceiverSession
from sender.call import SenderCall
from sender.sources import VideoFileSource

from .conftest import shared_clip
from .test_codec_api import _stream

pytestmark = pytest.mark.timeout(120)


async def _server() -> ReceiverServer:
    renderer = ClassicalRenderer()
    server = ReceiverServer(lambda: Decoder(renderer), port=0)
    await server.start()
    return server


async def _post(server: ReceiverServer, path: str, body: bytes, token: str | None = None) -> tuple[int, Any]:
    import aiohttp

    headers = {"X-Call-Token": server.token if token is None else token, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as client:
        async with client.post(f"http://127.0.0.1:{server.port}{path}", data=body, headers=headers) as response:
            return response.status, await response.json(content_type=None)


async def _raw(server: ReceiverServer, request: bytes, wait: float) -> bytes:
    """Send raw bytes, wait, return what came back (the connection is then dropped)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), wait)
    except TimeoutError:
        return b""
    finally:
        writer.close()


def _offer_head(server: ReceiverServer, length: int) -> bytes:
    return (f"POST /call/offer HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Call-Token: {server.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()  # fmt: skip


async def _legitimate_call(server: ReceiverServer, clip: Path) -> tuple[float, int]:
    """A real sender: (seconds to connect, frames rendered in 1 s of the clip)."""
    call = SenderCall(VideoFileSource(clip, max_seconds=1.0, audio=False), loop_model="classical")
    start = time.monotonic()
    await call.connect(f"http://127.0.0.1:{server.port}", server.token)
    connected = time.monotonic() - start
    await call.run(1.0)
    await asyncio.sleep(0.3)
    rendered = server.session.stats.rendered if server.session is not None else 0
    await call.close()
    await asyncio.wait_for(server.call_ended.wait(), 5)
    return connected, rendered


def test_failed_offers_never_lock_the_call_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad offer used to leave the slot taken: every later sender got 409 for minutes."""
    clip = shared_clip("grid_lbbc2a.mp4")
    monkeypatch.setattr(signaling, "READ_TIMEOUT", 0.5)

    async def scenario() -> None:
        server = await _server()
        bad = [
            (b'{"sdp": "garbage", "type": "offer"}', 400, "not a valid SDP offer (it has no m=application line)"),
            (b'{"sdp": 5, "type": "offer"}', 400, 'not a valid SDP offer (expected {"sdp": "...", "type": "offer"})'),
            (b"not json", 400, "not a valid SDP offer (the body is not JSON)"),
            (b'{"sdp": "v=0\\nm=application 9 x", "type": "offer"}', 400, None),  # aiortc cannot use it
            (b'{"sdp": "' + b"x" * 70_000 + b'", "type": "offer"}', 413, "the offer is larger than 65536 bytes"),
        ]
        for body, status, message in bad:
            code, reply = await _post(server, "/call/offer", body)
            assert code == status, (body[:40], code, reply)
            assert message is None or reply["error"] == message
        # a client that goes away mid-body, and one that stops sending
        await _raw(server, _offer_head(server, 5000) + b'{"sdp": "v=0', wait=0.05)
        stalled = await _raw(server, _offer_head(server, 5000) + b'{"sdp": "v=0', wait=2.0)
        assert stalled.startswith(b"HTTP/1.1 408"), stalled[:60]
        connected, rendered = await _legitimate_call(server, clip)
        assert connected < 5.0 and rendered > 10
        await server.stop()

    asyncio.run(scenario())


def test_an_offer_that_never_connects_is_replaced_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    clip = shared_clip("grid_lbbc2a.mp4")
    monkeypatch.setattr(signaling, "CONNECT_TIMEOUT", 1.0)

    async def scenario() -> None:
        from aiortc import RTCPeerConnection

        server = await _server()
        ghost = RTCPeerConnection()
        ghost.createDataChannel("motion")
        await ghost.setLocalDescription(await ghost.createOffer())
        offer = json.dumps({"sdp": ghost.localDescription.sdp, "type": "offer"}).encode()
        code, _ = await _post(server, "/call/offer", offer)
        assert code == 200  # accepted; the ghost never applies the answer
        assert (await _post(server, "/call/offer", offer))[0] == 409  # too soon to be called abandoned
        await asyncio.sleep(1.5)
        assert server.call_pc is not None and server.call_pc.connectionState == "closed"  # closed by the watchdog
        await ghost.close()
        # a ghost within the watchdog's time is replaced by the next sender after PENDING_GRACE
        monkeypatch.setattr(signaling, "CONNECT_TIMEOUT", 60.0)
        ghost = RTCPeerConnection()
        ghost.createDataChannel("motion")
        await ghost.setLocalDescription(await ghost.createOffer())
        offer = json.dumps({"sdp": ghost.localDescription.sdp, "type": "offer"}).encode()
        assert (await _post(server, "/call/offer", offer))[0] == 200
        await asyncio.sleep(signaling.PENDING_GRACE)
        connected, rendered = await _legitimate_call(server, clip)
        assert connected < 5.0 and rendered > 10
        await ghost.close()
        await server.stop()

    asyncio.run(scenario())


def test_bad_and_abandoned_viewer_offers_leave_nothing_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """300 bad viewer offers used to leave 302 viewers counted and +100 MB."""
    monkeypatch.setattr(signaling, "CONNECT_TIMEOUT", 1.0)

    async def scenario() -> None:
        from aiortc import RTCPeerConnection

        server = await _server()
        for _ in range(50):
            code, _ = await _post(server, "/viewer/offer", b'{"sdp": 5, "type": "offer"}')
            assert code == 400
        assert server.stats()["viewers"] == 0
        pages = []
        for _ in range(signaling.MAX_VIEWERS):
            page = RTCPeerConnection()
            page.addTransceiver("video", direction="recvonly")
            await page.setLocalDescription(await page.createOffer())
            offer = json.dumps({"sdp": page.localDescription.sdp, "type": "offer"}).encode()
            assert (await _post(server, "/viewer/offer", offer))[0] == 200  # answered, never connected
            pages.append(page)
        code, reply = await _post(server, "/viewer/offer", offer)
        assert code == 503 and reply["error"] == f"{signaling.MAX_VIEWERS} viewers are watching already"
        assert server.stats()["viewers"] == signaling.MAX_VIEWERS
        await asyncio.sleep(1.5)
        assert server.stats()["viewers"] == 0  # abandoned offers were closed and uncounted
        await asyncio.gather(*(page.close() for page in pages))
        await server.stop()

    asyncio.run(scenario())


def test_any_wrong_token_is_403() -> None:
    """A non-ASCII token gave 500 (str comparison raised)."""

    async def scenario() -> None:
        import aiohttp

        server = await _server()
        async with aiohttp.ClientSession() as client:
            for token in ("%C3%A9t%C3%A9", "x" * 5000, "", server.token[:-1]):
                async with client.get(f"http://127.0.0.1:{server.port}/stats?token={token}") as response:
                    assert response.status == 403, token
            async with client.get(f"http://127.0.0.1:{server.port}/stats?token={server.token}") as response:
                assert response.status == 200
        await server.stop()

    asyncio.run(scenario())


class _SlowRenderer(Renderer):
    """Preparing a keyframe takes a second (a big model on a slow machine)."""

    name = "slow"

    def _prepare(self) -> None:
        time.sleep(1.0)

    def _render(self, motion: Any) -> np.ndarray:
        assert self.keyframe_image is not None
        return self.keyframe_image


def test_keyframe_preparation_does_not_block_the_event_loop() -> None:
    """Image decoding and model preparation ran on the event loop: one keyframe stalled every
    call and HTTP request for its duration."""

    async def scenario() -> None:
        keyframe, motion = _stream(3)
        shown: list[int] = []
        session = ReceiverSession(Decoder(_SlowRenderer()), lambda data: None, lambda image, ts: shown.append(ts))
        session.start()
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, session.on_control_message, encode_packet(keyframe))  # arrives while we watch
        loop.call_later(0.1, session.on_motion_message, encode_packet(motion[0]))
        worst, start = 0.0, time.monotonic()
        while time.monotonic() - start < 1.5:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - before - 0.01)
        assert worst < 0.2, f"the event loop stalled for {worst * 1000:.0f} ms"
        assert shown == [0, 0] and session.stats.rendered == 1  # the keyframe, then the first frame
        await session.close()

    asyncio.run(scenario())


def test_a_flood_is_dropped_not_queued() -> None:
    async def scenario() -> None:
        session = ReceiverSession(Decoder(_SlowRenderer()), lambda data: None)
        for _ in range(10_000):
            session.on_motion_message(b"\x93\x01\x01")
        assert len(session._queue) == 256 and session.dropped_queued == 10_000 - 256
        await session.close()

    asyncio.run(scenario())


def test_a_message_over_the_announced_maximum_ends_that_call_only() -> None:
    """aiortc announced 256 KB but reassembled any size; a peer ignoring the announcement could
    make the receiver buffer without bound."""
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        from receiver.limits import MAX_MESSAGE_BYTES

        server = await _server()
        call = SenderCall(VideoFileSource(clip, max_seconds=1.0, audio=False), loop_model="classical")
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        seen: list[int] = []
        assert server.session is not None
        original = server.session.on_control_message
        server.session.on_control_message = lambda data: (seen.append(len(data)), original(data))[1]  # type: ignore[method-assign]
        call.control.transport._remote_max_message_size = 10**9  # ignore what the receiver announced
        call.control.send(b"\x00" * (4 * MAX_MESSAGE_BYTES))
        await asyncio.wait_for(server.call_ended.wait(), 10)  # the association was aborted, the call ended
        assert max(seen, default=0) <= MAX_MESSAGE_BYTES  # the oversized message was never delivered
        await call.close()
        connected, rendered = await _legitimate_call(server, clip)
        assert connected < 5.0 and rendered > 10
        await server.stop()

    asyncio.run(scenario())


async def _join_within(server: ReceiverServer, clip: Path, limit: float = 5.0) -> tuple[float, int]:
    """A legitimate sender that retries while the receiver answers 409: (seconds until it got in,
    frames rendered)."""
    from sender.call import CallError

    start = time.monotonic()
    while True:
        call = SenderCall(VideoFileSource(clip, max_seconds=1.0, audio=False), loop_model="classical")
        try:
            await call.connect(f"http://127.0.0.1:{server.port}", server.token)
            break
        except CallError as exc:
            await call.close()
            assert "a call is already in progress" in str(exc)
            assert time.monotonic() - start < limit, f"still refused after {limit} s"
            await asyncio.sleep(0.5)
    joined = time.monotonic() - start
    await call.run(1.0)
    await asyncio.sleep(0.3)
    rendered = server.session.stats.rendered if server.session is not None else 0
    await call.close()
    return joined, rendered


def test_a_sender_that_vanishes_without_bye_is_replaced() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server = await _server()
        ghost = SenderCall(VideoFileSource(clip, max_seconds=1.0, audio=False), loop_model="classical")
        await ghost.connect(f"http://127.0.0.1:{server.port}", server.token)
        await ghost.run(0.5)

        async def nothing(data: bytes, component: int) -> None:
            return None

        ghost.pc.sctp.transport.transport._connection.sendto = nothing  # gone: no bye, no close, no data
        joined, rendered = await _join_within(server, clip)
        assert joined < 5.0 and rendered > 10
        assert server.stats()["call"] and server.session is not None and server.session.stats.keyframes == 1
        await ghost.close()
        await server.stop()

    asyncio.run(scenario())


class _SlowPainter(Renderer):
    """Painting takes 100 ms: a receiver short of CPU (30 fps arrive, 10 fps can be painted)."""

    name = "slow-painter"

    def _prepare(self) -> None:
        pass

    def _render(self, motion: Any) -> np.ndarray:
        time.sleep(0.1)
        assert self.keyframe_image is not None
        return self.keyframe_image


def test_a_cpu_starved_receiver_drops_frames_and_stays_current() -> None:
    async def scenario() -> None:
        keyframe, motion = _stream(90)  # 3 s at 30 fps
        shown: list[int] = []
        session = ReceiverSession(Decoder(_SlowPainter()), lambda data: None, lambda image, ts: shown.append(ts))
        session.start()
        session.on_control_message(encode_packet(keyframe))
        start = time.monotonic()
        for index, packet in enumerate(motion):
            await asyncio.sleep(max(0.0, start + index / 30 - time.monotonic()))
            session.on_motion_message(encode_packet(packet))
            assert len(session._queue) <= 5  # the worker keeps up with the queue, not with painting
        await asyncio.sleep(0.3)
        stats = session.stats
        assert 18 <= stats.rendered <= 35, stats.rendered  # about 10 fps were painted ...
        assert stats.dropped_stale + stats.rendered == 90 and stats.undecodable == 0  # ... the rest skipped
        assert shown[-1] >= 40 * (len(motion) - 4)  # the picture is current, not a backlog (40 ms a frame)
        await session.close()

    asyncio.run(scenario())


def test_a_call_survives_datagram_loss_and_reordering() -> None:
    """20 % of the sender's datagrams lost and 10 % delayed by 40 ms (so reordered), both channels."""
    import random

    clip = shared_clip("dpe_s.mp4")

    async def scenario() -> None:
        server = await _server()
        rendered: list[float] = []
        server.frame_listeners.append(lambda image, ts: rendered.append(time.monotonic()))
        call = SenderCall(VideoFileSource(clip, max_seconds=3.0, audio=False), loop_model="classical")
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        connection = call.pc.sctp.transport.transport._connection
        send, rng = connection.sendto, random.Random(3)
        delayed: set[asyncio.Task[None]] = set()

        async def lossy(data: bytes, component: int) -> None:
            draw = rng.random()
            if draw < 0.2:
                return
            if draw < 0.3:
                task = asyncio.get_running_loop().create_task(_later(send, data, component))
                delayed.add(task)
                task.add_done_callback(delayed.discard)
                return
            await send(data, component)

        connection.sendto = lossy
        await call.run(3.0)
        await asyncio.sleep(0.5)
        stats = server.session.stats  # type: ignore[union-attr]
        gaps = np.diff(rendered[1:])
        assert stats.keyframes >= 1 and stats.bad_packets == 0
        assert stats.rendered > 0.5 * call.stats.motion_packets, (stats.rendered, call.stats.motion_packets)
        assert gaps.max() < 0.6, f"longest gap without a new frame: {gaps.max() * 1000:.0f} ms"
        await asyncio.gather(*delayed, return_exceptions=True)
        await call.close()
        await server.stop()

    asyncio.run(scenario())


async def _later(send: Any, data: bytes, component: int) -> None:
    await asyncio.sleep(0.04)
    await send(data, component)


def test_random_mutated_replayed_and_flooded_messages_on_every_channel() -> None:
    """A connected peer sends garbage, mutations of its own real messages, replays and a flood on
    both channels; /stats keeps answering within 200 ms, memory stays bounded, and afterwards a
    legitimate sender gets in and is rendered."""
    import gc
    import random

    import aiohttp

    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server = await _server()
        attacker = SenderCall(VideoFileSource(clip, max_seconds=1.0, audio=False), loop_model="classical")
        recorded: list[tuple[str, bytes]] = []
        send = attacker._send

        def record(packet: Any, data: bytes) -> None:
            recorded.append(("motion" if packet.__class__.__name__ == "MotionPacket" else "control", data))
            send(packet, data)

        attacker._send = record  # type: ignore[method-assign]
        await attacker.connect(f"http://127.0.0.1:{server.port}", server.token)
        await attacker.run(1.0)  # real messages first: a keyframe and 25 motion packets
        rng = random.Random(11)
        channels = {"motion": attacker.motion, "control": attacker.control}
        stats_ms: list[float] = []
        stop = asyncio.Event()

        async def poll_stats() -> None:
            async with aiohttp.ClientSession() as client:
                while not stop.is_set():
                    begin = time.monotonic()
                    async with client.get(f"http://127.0.0.1:{server.port}/stats?token={server.token}") as reply:
                        assert reply.status == 200
                    stats_ms.append((time.monotonic() - begin) * 1000)
                    await asyncio.sleep(0.05)

        poller = asyncio.get_running_loop().create_task(poll_stats())
        attacks = 0
        for _ in range(100):  # the attacker shares this event loop: it sends in small bursts
            for channel in channels.values():
                for _ in range(10):
                    kind = rng.random()
                    if kind < 0.3:  # random bytes
                        data = rng.randbytes(rng.randint(0, 300))
                    elif kind < 0.8:  # a real message, mutated
                        data = bytearray(rng.choice(recorded)[1])
                        for _ in range(rng.randint(1, 4)):
                            data[rng.randrange(len(data))] = rng.randrange(256)
                        data = bytes(data)
                    else:  # a replay
                        data = rng.choice(recorded)[1]
                    channel.send(data)
                    attacks += 1
            await asyncio.sleep(0.01)
        # a flood of tiny messages; not more: the attacker shares this loop, and aiortc's SCTP sender
        # abandons the chunks of a flooded unreliable channel in quadratic time (10,000 messages
        # stalled the loop for 0.7 s, the attacker's doing, not the receiver's)
        for _ in range(100):
            for _ in range(20):
                attacker.motion.send(b"\x93\x01\x01")
            await asyncio.sleep(0.002)
        await asyncio.sleep(1.0)
        stop.set()
        await poller
        stats = server.stats()
        assert attacks == 2000 and stats["bad_packets"] > 500, stats
        assert max(stats_ms) < 200, f"/stats took {max(stats_ms):.0f} ms"
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 1_200_000  # KB
        await attacker.close()
        await asyncio.wait_for(server.call_ended.wait(), 5)
        joined, rendered = await _join_within(server, clip)
        assert joined < 5.0 and rendered > 10
        await server.stop()

    # this process also holds every earlier test's objects: a full garbage collection of those can
    # pause the shared event loop for 300 ms, which is not the receiver's doing
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()


def test_a_request_that_trickles_in_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests trickling in slowly were held open with no timeout."""
    monkeypatch.setattr(signaling, "IDLE_TIMEOUT", 1.0)

    async def scenario() -> None:
        server = await _server()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        start = time.monotonic()

        async def trickle() -> None:
            for byte in b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"x" * 100:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

        sending = asyncio.get_running_loop().create_task(trickle())
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed by the server
        assert time.monotonic() - start < 2.0
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        writer.close()
        await server.stop()

    asyncio.run(scenario())


class _ClosingPeer:
    """aiortc's close(): a second close() waits for the first one to finish."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] | None = None

    async def close(self) -> None:
        if self.closed is not None:
            await self.closed
            return
        self.closed = asyncio.get_running_loop().create_future()
        await asyncio.sleep(0.2)  # transports stopping
        self.closed.set_result(None)


def test_stopping_the_server_while_a_call_is_ending_does_not_hang() -> None:
    """stop() cancels the task ending the call; its close() went on, or stop() waited forever."""

    async def scenario() -> None:
        server = await _server()
        peer = _ClosingPeer()
        server.call_pc = peer
        server._spawn(server._end_call(peer))
        await asyncio.sleep(0.05)  # the close has begun
        await asyncio.wait_for(server.stop(), 2.0)
        assert peer.closed is not None and peer.closed.done()

    asyncio.run(scenario())
