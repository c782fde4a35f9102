"""The sender's bank of references: the keyframes a receiver holds, and which one the motion
of a frame should animate.

A keyframe sent because the head turned away or because the closed loop found the picture
short (:mod:`codec.closed_loop`) joins the bank instead of replacing it: when the head comes
back, the motion switches back to the keyframe that saw it that way (a turned keyframe warped
back to frontal is worse than the frontal one).  Any other keyframe (the first, a requested
one, a new crop or lighting) starts the bank afresh.  A switch costs one absolute motion
message and one absolute body message.  With the closed loop, it happens when another reference
of the same crop painted a checked frame better (the loop renders the frame from each:
:data:`codec.closed_loop.SWITCH_GAIN`); without, when another is closer to the frame's head pose
by more than :data:`SWITCH_MARGIN` degrees.

The receiver holds the :data:`codec.packets.MotionDecoder` default of 4 keyframes, dropping
the oldest received; the bank holds fewer (:data:`BANK_SIZE`) and drops the oldest too, so
every reference it names is still held there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion.extract import CanonicalFace
from .motion.params import HeadPose
from .tracking import CropBox

__all__ = ["BANK_SIZE", "SWITCH_MARGIN", "Reference", "ReferenceBank", "turn_between"]

#: references kept (fewer than the 4 keyframes a receiver holds)
BANK_SIZE = 3
#: degrees by which another reference must be closer to the frame's pose than the current one
SWITCH_MARGIN = 5.0


@dataclass(frozen=True, eq=False)
class Reference:
    """A keyframe the receiver holds, as the sender needs it.

    Attributes:
        keyframe_id: its id on the wire.
        canonical: its canonical face (motion is extracted against it).
        crop: the crop box it was cut with.
        pixels: (S, S, 3) uint8 RGB crop, before compression (body motion is measured on it).
    """

    keyframe_id: int
    canonical: CanonicalFace
    crop: CropBox
    pixels: np.ndarray

    @property
    def head_pose(self) -> HeadPose:
        return self.canonical.head_pose


def turn_between(a: HeadPose, b: HeadPose) -> float:
    """Degrees between two head poses: the larger of the yaw and pitch differences."""
    return max(abs(a.yaw - b.yaw), abs(a.pitch - b.pitch))


class ReferenceBank:
    """The references, oldest first, and the one in use.

    Args:
        size: references kept.
        margin: degrees; see :data:`SWITCH_MARGIN`.
    """

    def __init__(self, size: int = BANK_SIZE, margin: float = SWITCH_MARGIN) -> None:
        if size < 1:
            raise ValueError(f"a reference bank holds at least 1 reference, got size={size}")
        self.size = size
        self.margin = margin
        self.references: list[Reference] = []
        self.current: Reference | None = None
        self.switches = 0  #: switches to an older reference so far
        self.pending: set[int] = set()  #: keyframe ids sent but not yet acknowledged (not used until they are)

    def __len__(self) -> int:
        return len(self.references)

    def add(self, reference: Reference, keep: bool, pending: bool = False) -> None:
        """A keyframe was sent: it is the reference in use; ``keep``: older references stay
        usable (else the bank starts afresh); ``pending``: it joins the bank but the current
        one stays in use until :meth:`acknowledge` (only with ``keep`` and a current one)."""
        if not keep:
            self.references.clear()
            self.pending.clear()
        self.references.append(reference)
        evicted = self.references[: -self.size]
        del self.references[: -self.size]
        self.pending -= {old.keyframe_id for old in evicted}
        if pending and keep and self.current is not None:
            self.pending.add(reference.keyframe_id)
        else:
            self.current = reference

    def acknowledge(self, keyframe_id: int) -> Reference | None:
        """The receiver holds keyframe ``keyframe_id``: the pending reference of that id, now
        usable (None when none was pending)."""
        if keyframe_id not in self.pending:
            return None
        self.pending.discard(keyframe_id)
        return next((r for r in reversed(self.references) if r.keyframe_id == keyframe_id), None)

    def clear(self) -> None:
        self.references.clear()
        self.pending.clear()
        self.current = None

    def others(self, crop: CropBox) -> list[Reference]:
        """The references other than the one in use that motion could animate now: cut with
        ``crop`` and not pending."""
        usable = [r for r in self.references if r is not self.current and r.crop == crop]
        return [r for r in usable if r.keyframe_id not in self.pending]

    def closer(self, pose: HeadPose, crop: CropBox) -> Reference | None:
        """Another reference to animate a frame of head pose ``pose`` cut with ``crop``, when one
        is closer than the current one by more than the margin (None: keep the current)."""
        current = self.current
        if current is None or len(self.references) < 2:
            return None
        best, best_turn = None, turn_between(pose, current.head_pose) - self.margin
        for reference in self.others(crop):
            turn = turn_between(pose, reference.head_pose)
            if turn < best_turn:
                best, best_turn = reference, turn
        return best

    def use(self, reference: Reference) -> None:
        """Animate the frames that follow from ``reference`` (one of the bank's)."""
        if not any(held is reference for held in self.references):
            raise ValueError(f"keyframe {reference.keyframe_id} is not in the bank")
        self.current = reference
        self.switches += 1
