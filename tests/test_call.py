"""The live call over a real aiortc connection on loopback (needs the real clips in ../shared)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from codec.decoder import Decoder
from codec.render import ClassicalRenderer
from receiver.server import ReceiverServer
from sender.call import CallError, SenderCall
from sender.sources import VideoFileSource

from .conftest import shared_clip

pytestmark = [pytest.mark.shared, pytest.mark.timeout(180)]


async def _call(
    clip: Path, seconds: float, motion_loss: float = 0.0, drop_keyframes: int = 0
) -> tuple[ReceiverServer, SenderCall, list[float]]:
    renderer = ClassicalRenderer()
    server = ReceiverServer(lambda: Decoder(renderer), port=0)
    await server.start()
    rendered: list[float] = []
    server.frame_listeners.append(lambda image, ts: rendered.append(time.monotonic()))
    call = SenderCall(VideoFileSource(clip, max_seconds=seconds), motion_loss=motion_loss,
                      drop_keyframes=drop_keyframes, seed=7, loop_model="classical")  # fmt: skip
    await call.connect(f"http://127.0.0.1:{server.port}", server.token)
    await call.run(seconds)
    await asyncio.sleep(0.3)
    return server, call, rendered


async def _hang_up(server: ReceiverServer, call: SenderCall) -> None:
    await call.close()
    await asyncio.wait_for(server.call_ended.wait(), 5)
    await server.stop()


def test_loopback_call_end_to_end() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server, call, _ = await _call(clip, 2.0)
        session = server.session
        assert session is not None
        stats = session.stats
        assert stats.keyframes == 1 and call.stats.keyframes == 1  # the keyframe arrived
        assert stats.motion_bytes == call.stats.motion_bytes  # every motion byte sent was received
        assert stats.motion_packets == call.stats.motion_packets == 50
        # every motion painted or, when a newer one came while the worker was busy, superseded (by
        # design: the newest is painted); most are painted, however busy the machine
        assert stats.rendered + stats.dropped_stale == call.stats.motion_packets
        assert stats.rendered >= 0.75 * call.stats.motion_packets
        assert stats.bad_packets == 0 and stats.undecodable == 0
        # the closed loop checked the picture every 0.5 s (2 s: the first at 0.5 s); the bank holds the keyframe
        assert call.stats.checks == 3 and call.stats.references == stats.references == 1
        assert 500 < stats.reference_bytes < call.stats.keyframe_bytes and stats.reference_switches == 0
        # no viewer listens, yet the sender's sound is read, not piled up (it grew 1 MB/s of receiver memory)
        assert server.audio_track is not None and server.audio_track._queue.qsize() <= 5
        await _hang_up(server, call)
        # closing the sender ended the receiver's side; no task is left behind
        assert server.call_pc.connectionState == "closed"
        await asyncio.sleep(0.1)
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
        assert not leftover, leftover

    asyncio.run(scenario())


def test_motion_loss_is_concealed_and_recovered() -> None:
    clip = shared_clip("dpe_s.mp4")

    async def scenario() -> None:
        server, call, rendered = await _call(clip, 4.0, motion_loss=0.2)
        session = server.session
        assert session is not None
        assert call.stats.dropped_by_test > 10  # about 20 % of 100 packets never left
        gaps = np.diff(rendered[1:])  # the first entry is the keyframe
        print(f"longest gap without a new frame: {gaps.max() * 1000:.0f} ms")
        assert gaps.max() < 0.2, f"longest gap without a new frame: {gaps.max() * 1000:.0f} ms"
        assert session.stats.requests_sent > 0  # refreshes were asked for
        assert rendered[-1] > time.monotonic() - 1.0  # still rendering at the end
        await _hang_up(server, call)

    asyncio.run(scenario())


def test_lost_keyframe_is_requested_again() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        server, call, _ = await _call(clip, 2.0, drop_keyframes=1)
        stats = server.session.stats  # type: ignore[union-attr]
        assert call.stats.keyframes == 1 and stats.keyframes == 1  # the second keyframe, sent on request
        assert stats.first_keyframe_at is not None and stats.first_motion_at is not None
        assert stats.first_keyframe_at - stats.first_motion_at < 1.0
        assert stats.rendered > 20
        await _hang_up(server, call)

    asyncio.run(scenario())


def test_bad_peers() -> None:
    clip = shared_clip("grid_lbbc2a.mp4")

    async def scenario() -> None:
        renderer = ClassicalRenderer()
        server = ReceiverServer(lambda: Decoder(renderer), port=0)
        await server.start()
        intruder = SenderCall(VideoFileSource(clip, max_seconds=1.0))
        with pytest.raises(CallError, match="the receiver refused the call: wrong call token"):
            await intruder.connect(f"http://127.0.0.1:{server.port}", "not-the-token")
        await intruder.close()
        assert server.refused == 1
        call = SenderCall(VideoFileSource(clip, max_seconds=1.0))
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        for garbage in (b"\x00\x01", b"\x93\x01\x01\x05", "text"):
            call.motion.send(garbage)
        await call.run(1.0)
        await asyncio.sleep(0.3)
        stats = server.session.stats  # type: ignore[union-attr]
        assert stats.bad_packets == 3 and stats.rendered > 10  # counted, dropped, and the call went on
        await _hang_up(server, call)

    asyncio.run(scenario())


def test_loopback_demo_runs_the_sender_as_a_process_of_its_own(tmp_path: Path) -> None:
    """``receiver demo`` starts ``python -m sender call --status-json``: its start time reaches the
    receiver (latency is measured), its counts come back, and the received call is written."""
    from receiver.demo import run_demo

    clip = shared_clip("grid_lbbc2a.mp4")
    out = tmp_path / "call.mp4"
    result = asyncio.run(run_demo(clip, "classical", port=0, headless=True, out=out, seconds=2.0, print_url=False))
    summary = "; ".join(result.lines()) + f"; stats {result.stats}"
    # one keyframe, or two when the sender's closed loop found the (classical) picture short
    assert result.sent_frames == 50 and result.keyframes in (1, 2) and 1000 < result.keyframe_bytes < 40000, summary
    assert abs(result.seconds - 2.0) < 0.05 and 1 < result.motion_kbps < 6, summary
    assert result.rendered >= 25 and result.stats["bad_packets"] == 0, summary
    assert 0 < result.latency_median_ms <= result.latency_p95_ms < 1000, summary  # the sender's clock was known
    import av

    with av.open(str(out)) as container:  # the received picture and sound
        assert container.streams.video[0].frames >= 45 and container.streams.audio[0].frames > 50
