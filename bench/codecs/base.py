"""What every contender in the benchmark implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from ..inputs import ClipInput

__all__ = ["Codec", "CodecOutput"]


@dataclass(frozen=True)
class CodecOutput:
    """One coded clip.

    Attributes:
        frames: (N, S, S, 3) uint8 frames as the receiver shows them.
        bits: everything the receiver needed, in bits (what is counted is the codec's to say).
        setting: the operating point (e.g. target kbps), for labels.
        info: extra numbers worth reporting (keyframe bytes, target rate, ...).
    """

    frames: np.ndarray
    bits: int
    setting: float
    info: dict[str, float] = field(default_factory=dict)

    def kbps(self, duration: float) -> float:
        return self.bits / duration / 1000


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
