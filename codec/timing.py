"""Timing hooks: the encoder and decoder wrap each stage of their work in ``timer(stage)``.

Stages: encoder ``track``, ``extract``, ``pack`` (every frame with a face) and ``keyframe``
(making one); decoder ``unpack`` (msgpack + prediction), ``warp`` and ``generate`` (the neural
renderer; other renderers time their whole work as ``warp``).  By default nothing is timed
(:func:`no_timer`); ``bench speed`` passes a :class:`StageTimer`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

__all__ = ["StageTimer", "Timer", "no_timer"]

#: ``timer(stage)`` returns a context manager that times its ``with`` block.
Timer = Callable[[str], AbstractContextManager[None]]


@contextlib.contextmanager
def no_timer(stage: str) -> Iterator[None]:
    """The default hook: times nothing."""
    yield


class StageTimer:
    """Records milliseconds per stage, on the CPU, or on a CUDA device with CUDA events::

        timer = StageTimer()
        with timer("track"):
            result = tracker.process(frame, t)
        timer.samples["track"]  # [ms, ...]

    ``recording = False`` skips recording (warm-up frames).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.samples: dict[str, list[float]] = {}
        self.recording = True

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        """Record the duration of the ``with`` block in milliseconds under ``stage``."""
        if self.device.startswith("cuda"):
            import torch

            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            torch.cuda.synchronize()
            elapsed = float(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            yield
            elapsed = (time.perf_counter() - begin) * 1000
        if self.recording:
            self.samples.setdefault(stage, []).append(elapsed)
