"""Audio packets that wait for their motion (sender.av_sync): the hold ends when the frame
captured during the packet's sound is encoded, at MAX_HOLD at the latest, and never happens for
stalled video, a call whose motion does not ride on the audio, or frames inside a packet."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamTrack

from sender.av_sync import MAX_HOLD, STALE_VIDEO, MotionSyncedAudioTrack, VideoProgress
from sender.sources import PacedAudioTrack

FRAME_INTERVAL = 1 / 30
PACKET_SECONDS = 0.06


class InstantTrack(MediaStreamTrack):
    """20 ms frames of silence, at once (each frame's sound ends when it is handed over)."""

    kind = "audio"

    async def recv(self) -> Any:
        return PacedAudioTrack.silence()


def test_progress_covers_a_sound_once_its_last_frame_is_encoded() -> None:
    now = [10.0]
    progress = VideoProgress(FRAME_INTERVAL, clock=lambda: now[0])
    assert progress.covers(10.0)  # no video yet: nothing to wait for
    progress.frame_done(9.95)
    assert not progress.covers(10.0)  # the frame of 9.967-10.0 is not encoded yet
    progress.frame_done(9.90)  # an older frame never moves it back
    assert progress.captured_until == 9.95
    progress.frame_done(9.975)
    assert progress.covers(10.0) and not progress.covers(10.02)
    now[0] += STALE_VIDEO + 0.01  # the video stalled: no more waiting
    assert progress.covers(10.5)
    with pytest.raises(ValueError, match="the frame interval must be positive, not 0"):
        VideoProgress(0)


def test_the_packet_completing_frame_waits_for_its_motion() -> None:
    async def scenario() -> tuple[list[float], MotionSyncedAudioTrack]:
        progress = VideoProgress(FRAME_INTERVAL)
        track = MotionSyncedAudioTrack(InstantTrack(), progress, PACKET_SECONDS)
        start = time.monotonic()
        progress.frame_done(start - 0.05)  # the encoder is 50 ms behind the sound
        loop = asyncio.get_running_loop()
        loop.call_later(0.02, progress.frame_done, start + 0.01)  # the frame it waits for, 20 ms later
        took = []
        for _ in range(3):
            before = time.monotonic()
            await track.recv()
            took.append(time.monotonic() - before)
        return took, track

    took, track = asyncio.run(scenario())
    assert took[0] < 0.005 and took[1] < 0.005  # inside the packet: no wait
    assert 0.015 <= took[2] <= 0.04  # the third 20 ms completes the 60 ms packet: it waited for the frame
    assert track.stats.packets == 1 and track.stats.held == 1 and track.stats.timeouts == 0
    assert track.stats.held_seconds == pytest.approx(took[2], abs=0.01)


def test_a_hold_ends_at_max_hold_and_never_when_disabled() -> None:
    async def scenario(enabled: bool) -> tuple[float, MotionSyncedAudioTrack]:
        progress = VideoProgress(FRAME_INTERVAL)
        progress.frame_done(time.monotonic() - 0.1)  # far behind, and nothing more comes
        track = MotionSyncedAudioTrack(InstantTrack(), progress, PACKET_SECONDS, enabled=lambda: enabled)
        before = time.monotonic()
        frames = [await track.recv() for _ in range(6)]
        assert all(frame.samples == 960 for frame in frames)
        return time.monotonic() - before, track

    took, track = asyncio.run(scenario(True))
    assert 2 * MAX_HOLD - 0.005 <= took <= 2 * MAX_HOLD + 0.04  # two packets, each cut short
    assert track.stats.packets == 2 and track.stats.held == 2 and track.stats.timeouts == 2
    took, track = asyncio.run(scenario(False))
    assert took < 0.02 and track.stats.packets == 2 and track.stats.held == 0


def test_stopping_the_synced_track_stops_the_source() -> None:
    source = InstantTrack()
    track = MotionSyncedAudioTrack(source, VideoProgress(FRAME_INTERVAL), PACKET_SECONDS)
    track.stop()
    assert track.readyState == "ended" and source.readyState == "ended"
