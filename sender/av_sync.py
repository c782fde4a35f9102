"""Audio packets that wait for their motion: picture and sound leave together.

The motion rides on the audio packets (:mod:`sender.carrier`), one every 60 ms.  Without care, a
packet leaves when its sound is complete, while the motion of the video frame captured at the end
of that sound is still being tracked (~20-30 ms): it waits for the *next* packet, 60 ms later,
and the receiver shows the picture late, behind the sound.  :class:`MotionSyncedAudioTrack` sits
between the call's audio track and aiortc: when a frame completes a packet (the speech encoder
packs 60 ms), its ``recv`` waits until the encoder has finished every video frame captured while
that sound was heard (:class:`VideoProgress`), at most :data:`MAX_HOLD`.  So each packet carries
the motion of its own 60 ms: the newest frame of a packet waits ~0 ms instead of 0-27 ms, the
picture is ~12 ms sooner at the receiver, and the sound ~10 ms later (closer to the picture).

No hold when the video is not moving on (the clip ended, the tracker stalls: :data:`STALE_VIDEO`)
or when the motion does not ride on the audio (``enabled`` says so): the sound never waits long.
Clocks: video frames are stamped with their capture time on ``time.monotonic()``; a sound frame
is complete when the source hands it over (the sources release each 20 ms frame when its sound
has been heard, as a microphone does).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

__all__ = ["MAX_HOLD", "STALE_VIDEO", "HoldStats", "MotionSyncedAudioTrack", "VideoProgress"]

#: the longest an audio packet waits for its motion (seconds)
MAX_HOLD = 0.05
#: no video frame encoded for this long (seconds): packets do not wait
STALE_VIDEO = 0.25
#: slack (seconds) when comparing a frame's capture time with the end of a sound
_EPSILON = 0.002


@dataclass
class HoldStats:
    """How long the audio packets waited for their motion (the sender's ``--status-json``)."""

    packets: int = 0  #: audio packets completed
    held: int = 0  #: ... that waited for a video frame
    held_seconds: float = 0.0  #: their waits, summed
    timeouts: int = 0  #: waits cut short at MAX_HOLD


class VideoProgress:
    """The capture time of the newest video frame the encoder has finished (monotonic seconds).

    Args:
        frame_interval: seconds between video frames (1 / fps).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, frame_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not frame_interval > 0:
            raise ValueError(f"the frame interval must be positive, not {frame_interval}")
        self.frame_interval = frame_interval
        self.clock = clock
        self.captured_until: float | None = None  #: the newest finished frame's capture time
        self.finished_at: float | None = None  #: when it was finished
        self._changed = asyncio.Event()

    def frame_done(self, captured_at: float) -> None:
        """The encoder finished the frame captured at ``captured_at`` (its messages are queued)."""
        if self.captured_until is None or captured_at > self.captured_until:
            self.captured_until = captured_at
        self.finished_at = self.clock()
        self._changed.set()

    def covers(self, sound_end: float) -> bool:
        """Whether every frame captured before ``sound_end`` is finished (or the video stalls)."""
        if self.captured_until is None or self.finished_at is None:
            return True  # no video yet: nothing to wait for
        if self.clock() - self.finished_at > STALE_VIDEO:
            return True
        return self.captured_until + self.frame_interval > sound_end - _EPSILON

    async def wait_covers(self, sound_end: float, timeout: float) -> bool:
        """Wait until :meth:`covers` ``sound_end``, at most ``timeout`` seconds; False on timeout."""
        deadline = self.clock() + timeout
        while not self.covers(sound_end):
            left = deadline - self.clock()
            if left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, STALE_VIDEO))
            except TimeoutError:
                pass
        return True


class MotionSyncedAudioTrack(MediaStreamTrack):
    """``track`` (an aiortc audio track) whose packet-completing frames wait for their motion.

    Args:
        track: the call's sound.
        progress: the encoder's video progress.
        packet_seconds: the speech encoder's packet duration.
        enabled: whether to wait now (the motion rides on the audio packets).
    """

    kind = "audio"

    def __init__(
        self,
        track: Any,
        progress: VideoProgress,
        packet_seconds: float,
        enabled: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__()
        self.track = track
        self.progress = progress
        self.packet_seconds = packet_seconds
        self.enabled = enabled
        self.stats = HoldStats()
        self._sound_seconds = 0.0  # of sound handed on

    async def recv(self) -> Any:
        frame = await self.track.recv()
        before = self._sound_seconds
        self._sound_seconds += frame.samples / frame.sample_rate
        if int(self._sound_seconds / self.packet_seconds + 1e-9) > int(before / self.packet_seconds + 1e-9):
            self.stats.packets += 1
            if self.enabled():
                sound_end = started = self.progress.clock()  # the frame was handed over once heard
                if not self.progress.covers(sound_end):
                    covered = await self.progress.wait_covers(sound_end, MAX_HOLD)
                    self.stats.held += 1
                    self.stats.held_seconds += self.progress.clock() - started
                    self.stats.timeouts += not covered
        return frame

    def stop(self) -> None:
        super().stop()
        self.track.stop()
