"""One call on the receiving side: the call's messages into a :class:`codec.Decoder`, rendered
frames out, requests back to the sender.

Motion is rendered newest first: a message is decoded as it arrives (cheap: it keeps the
prediction chain), and the renderer, in a thread of its own, paints the newest one when it is
free; older ones are dropped, never queued.  Concealment, requests and the counting of bad
messages are the decoder's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from codec.decoder import Decoder, DecoderStats
from codec.packets import DecodedMotion

__all__ = ["ReceiverSession"]


class ReceiverSession:
    """Decode, render and keep the newest picture.

    Args:
        decoder: the call's decoder (with its renderer).
        send_control: sends a control message's bytes to the sender (reliable channel).
        on_frame: called with (image, capture timestamp in ms) for every picture shown.
        clock: for latency statistics, maps a packet's capture timestamp (ms since the
            sender's start) to this process's monotonic time, or None while that is not
            known (None: no latency statistics at all).
    """

    def __init__(
        self,
        decoder: Decoder,
        send_control: Callable[[bytes], None],
        on_frame: Callable[[np.ndarray, int], None] | None = None,
        clock: Callable[[int], float | None] | None = None,
    ) -> None:
        self.decoder = decoder
        self.send_control = send_control
        self.on_frame = on_frame
        self.clock = clock
        self._pending: DecodedMotion | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._rerender = False

    @property
    def stats(self) -> DecoderStats:
        return self.decoder.stats

    @property
    def image(self) -> np.ndarray | None:
        """The picture shown now."""
        return self.decoder.picture

    # --- input ---------------------------------------------------------------------------------

    def on_control_message(self, data: bytes | str) -> None:
        """A message from the reliable channel: a keyframe or a control packet."""
        before = self.decoder.keyframe
        self.decoder.receive(data, channel="control")
        keyframe = self.decoder.keyframe
        if keyframe is not before and keyframe is not None:
            image = self.decoder.picture
            if image is not None and self.on_frame is not None:
                self.on_frame(image, keyframe.timestamp_ms)
        self.send_requests()

    def on_motion_message(self, data: bytes | str) -> None:
        """A message from the unreliable channel: decode it, keep it if it is the newest."""
        motion = self.decoder.receive(data, channel="motion")
        self.send_requests()
        if motion is None:
            return
        if self._pending is not None:
            self.decoder.stats.dropped_stale += 1
        self._pending = motion
        self._wake.set()

    def send_requests(self) -> None:
        """Send what the decoder asks for (call it periodically too: while there is no
        keyframe, the decoder keeps asking for one)."""
        for request in self.decoder.requests():
            self.send_control(request)

    # --- rendering -----------------------------------------------------------------------------

    async def _render_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            motion, self._pending = self._pending, None
            rerendered = False
            if motion is None:  # the viewer turned the head: the same motion, a new view
                if not self._rerender or self.decoder.motion is None:
                    continue
                motion, rerendered = self.decoder.motion, True
            self._rerender = False
            image = await asyncio.to_thread(self.decoder.render, motion)
            if image is None:
                continue  # rendering failed: the last picture stays on screen
            if self.clock is not None and not rerendered:
                sent = self.clock(motion.timestamp_ms)
                if sent is not None:
                    self.stats.latency_ms.append((time.monotonic() - sent) * 1000)
            if self.on_frame is not None:
                self.on_frame(image, motion.timestamp_ms)

    def rerender(self) -> None:
        """Render the last motion again (the viewer's rotation changed)."""
        self._rerender = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._render_loop())

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
