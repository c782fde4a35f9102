"""One call on the receiving side: the call's messages into a :class:`codec.Decoder`, rendered
frames out, requests back to the sender.

The event loop only queues the messages (a bounded queue: when it is full the oldest message
is dropped and counted).  One worker owns the decoder: in a thread, it takes every queued
message in order (keyframe images are decoded and the model prepared there, never on the event
loop), then renders the newest motion; older motion still feeds the prediction chain but is
not painted.  So HTTP, signaling and other peers stay responsive, and a receiver short of CPU
drops frames instead of queueing them.  Concealment, requests and the counting of bad
messages are the decoder's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import numpy as np

from codec.decoder import Decoder, DecoderStats
from codec.packets import DecodedMotion, KeyframePacket

from .limits import MAX_MESSAGE_BYTES

T = TypeVar("T")

__all__ = ["MAX_QUEUED", "ReceiverSession"]

#: messages waiting for the worker; beyond this the oldest is dropped
MAX_QUEUED = 256

Channel = Literal["motion", "control"]

#: weight of the newest render in the moving average of render times
RENDER_AVERAGING = 0.1


class ReceiverSession:
    """Decode, render and keep the newest picture.

    Args:
        decoder: the call's decoder (with its renderer); only the session's worker touches it.
        send_control: sends a control message's bytes to the sender (reliable channel).
        on_frame: called with (image, capture timestamp in ms) for every picture shown.
        clock: for latency statistics, maps a packet's capture timestamp (ms since the
            sender's start) to this process's monotonic time, or None while that is not
            known (None: no latency statistics at all).
        on_bye: called once when the sender says bye.
    """

    def __init__(
        self,
        decoder: Decoder,
        send_control: Callable[[bytes], None],
        on_frame: Callable[[np.ndarray, int], None] | None = None,
        clock: Callable[[int], float | None] | None = None,
        on_bye: Callable[[], None] | None = None,
    ) -> None:
        self.decoder = decoder
        self.send_control = send_control
        self.on_frame = on_frame
        self.clock = clock
        self.on_bye = on_bye
        self.dropped_queued = 0  #: messages dropped because the worker was behind
        self.oversized = 0  #: messages over MAX_MESSAGE_BYTES, dropped
        self.last_message_at = time.monotonic()  #: when the sender last sent anything (or the call began)
        self._queue: deque[tuple[bytes | str, Channel]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._rerender = False
        self._bye_seen = False
        self._working = False
        self._render_seconds: float | None = None
        # one thread of its own decodes and renders: the default executor's several threads each
        # grow a malloc arena of their own to the model's peak (+100 MB over a 10-minute call)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fvc-receiver")

    @property
    def stats(self) -> DecoderStats:
        return self.decoder.stats

    def render_seconds(self) -> float | None:
        """How long painting a frame takes now, in seconds (a moving average; None before the
        first frame)."""
        return self._render_seconds

    @property
    def image(self) -> np.ndarray | None:
        """The picture shown now."""
        return self.decoder.picture

    # --- input (event loop) --------------------------------------------------------------------

    def _enqueue(self, data: bytes | str, channel: Channel) -> None:
        self.last_message_at = time.monotonic()
        if len(data) > MAX_MESSAGE_BYTES:
            self.oversized += 1  # never queued, never parsed
            return
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped_queued += 1
        self._queue.append((data, channel))
        self._wake.set()

    def on_control_message(self, data: bytes | str) -> None:
        """A message from the reliable channel: a keyframe or a control packet."""
        self._enqueue(data, "control")

    def on_motion_message(self, data: bytes | str) -> None:
        """A message from the unreliable channel: a motion packet."""
        self._enqueue(data, "motion")

    def send_requests(self) -> None:
        """Send what the decoder asks for (call it periodically too: while there is no
        keyframe, the decoder keeps asking for one).  Nothing while the worker has messages in
        hand: the keyframe may be among them."""
        if self._queue or self._working:
            return
        for request in self.decoder.requests():
            self.send_control(request)

    def rerender(self) -> None:
        """Render the last motion again (the viewer's rotation changed)."""
        self._rerender = True
        self._wake.set()

    # --- the worker ----------------------------------------------------------------------------

    def _receive(self, batch: list[tuple[bytes | str, Channel]]) -> tuple[KeyframePacket | None, DecodedMotion | None]:
        """In the worker thread: every message in order; returns the newest keyframe accepted
        and the newest motion decoded."""
        keyframe = newest = None
        for data, channel in batch:
            before = self.decoder.keyframe
            motion = self.decoder.receive(data, channel)
            if self.decoder.keyframe is not before:
                keyframe, newest = self.decoder.keyframe, None
            if motion is not None:
                if newest is not None:
                    self.stats.dropped_stale += 1  # superseded before it could be painted
                newest = motion
        return keyframe, newest

    async def _work(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            batch = list(self._queue)
            self._queue.clear()
            self._working = True
            try:
                keyframe, motion = await self._in_worker(self._receive, batch) if batch else (None, None)
            finally:
                self._working = False
            self.send_requests()
            if self.decoder.peer_left and not self._bye_seen:
                self._bye_seen = True
                if self.on_bye is not None:
                    self.on_bye()
            if keyframe is not None and self.decoder.picture is not None and self.on_frame is not None:
                self.on_frame(self.decoder.picture, keyframe.timestamp_ms)
            rerendered = False
            if motion is None:  # the viewer turned the head: the same motion, a new view
                if not self._rerender or self.decoder.motion is None:
                    continue
                motion, rerendered = self.decoder.motion, True
            self._rerender = False
            started = time.perf_counter()
            image = await self._in_worker(self.decoder.render, motion)
            took = time.perf_counter() - started
            self._render_seconds = (
                took
                if self._render_seconds is None
                else (self._render_seconds + RENDER_AVERAGING * (took - self._render_seconds))
            )
            if image is None:
                continue  # rendering failed: the last picture stays on screen
            if self.clock is not None and not rerendered:
                sent = self.clock(motion.timestamp_ms)
                if sent is not None:
                    self.stats.latency_ms.append((time.monotonic() - sent) * 1000)
            if self.on_frame is not None:
                self.on_frame(image, motion.timestamp_ms)

    async def _in_worker(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._work())

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
        self._worker.shutdown(wait=False, cancel_futures=True)
