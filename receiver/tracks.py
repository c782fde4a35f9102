"""The rendered talking head as a WebRTC video track (for the browser, or a recorder)."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque

import numpy as np

__all__ = ["RenderedVideoTrack"]

from aiortc import VideoStreamTrack

_CLOCK = 90_000


class RenderedVideoTrack(VideoStreamTrack):
    """Emits the newest rendered picture at a steady frame rate (holding it when no new one
    came: the viewer never waits for a stale frame to be queued).

    Args:
        fps: output frame rate; size: side of the square picture before the first frame.
        delay: seconds each picture waits before it is shown, to stay in step with the sound
            (whose jitter buffer delays it more than rendering delays the picture).
    """

    kind = "video"

    def __init__(self, fps: float = 25.0, size: int = 256, delay: float = 0.0) -> None:
        super().__init__()
        self.fps = fps
        self.delay = delay
        self._image = np.zeros((size, size, 3), np.uint8)
        self._pending: deque[tuple[float, np.ndarray]] = deque(maxlen=64)
        self._first: float | None = None
        self._count = 0
        self.sent = 0

    def update(self, image: np.ndarray, timestamp_ms: int = 0) -> None:
        """Show ``image`` once ``delay`` has passed."""
        if self.delay <= 0:
            self._image = image
        else:
            self._pending.append((time.monotonic() + self.delay, image))

    async def recv(self):  # type: ignore[no-untyped-def]
        import av

        if self._first is None:
            self._first = time.monotonic()
        due = self._first + self._count / self.fps
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            self._image = self._pending.popleft()[1]
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24")
        frame.pts = int(self._count * _CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, _CLOCK)
        self._count += 1
        self.sent += 1
        return frame
