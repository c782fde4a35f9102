"""What every contender in the benchmark implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..inputs import ClipInput
from ..wire_rate import SentUnit, WireCost, wire_cost

__all__ = ["Codec", "CodecOutput"]


@dataclass(frozen=True)
class CodecOutput:
    """One coded clip.

    Attributes:
        frames: (N, S, S, 3) uint8 frames as the receiver shows them.
        bits: everything the receiver needed, in bits (what is counted is the codec's to say).
        setting: the operating point (e.g. target kbps), for labels.
        info: extra numbers worth reporting (keyframe bytes, target rate, ...).
        sent: what the contender handed the transport, in order (for its rate on the wire,
            :mod:`bench.wire_rate`); None when it does not say.
    """

    frames: np.ndarray
    bits: int
    setting: float
    info: dict[str, float] = field(default_factory=dict)
    sent: tuple[SentUnit, ...] | None = None

    def kbps(self, duration: float) -> float:
        """The payload rate over ``duration`` seconds, in kbit/s."""
        return self.bits / duration / 1000

    def wire(self) -> WireCost | None:
        """Its bytes on the wire in a call (None without :attr:`sent`)."""
        return None if self.sent is None else wire_cost(self.sent)


class Codec(ABC):
    """A contender: codes a clip at one of its settings."""

    #: short name used in tables and plots
    name: str

    @abstractmethod
    def settings(self, size: int) -> list[float]:
        """The operating points to measure for crops of ``size`` pixels."""

    @abstractmethod
    def run(self, clip: ClipInput, setting: float) -> CodecOutput:
        """Code ``clip`` at ``setting`` and return what the receiver would show."""
