"""A sample sheet to look at: keyframe, driving frames, reconstructions and free views.

``python -m receiver sheet --clip VIDEO -o sheet.png`` runs a clip through the sender (its
first frame becomes the keyframe), renders chosen frames with the receiver, and lays out:
the originals, the reconstructions, and the reconstructions turned by -20 / +20 degrees of
yaw and of pitch.  The first column shows the keyframe.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from codec.packets import KeyframePacket, MotionDecoder, MotionPacket, StreamConfig
from codec.video import VideoReader

from .render import Renderer

__all__ = ["VIEWS", "make_sheet"]

#: rows of free views: (label, (yaw, pitch, roll))
VIEWS = (("yaw -20", (-20.0, 0.0, 0.0)), ("yaw +20", (20.0, 0.0, 0.0)),
         ("pitch -20", (0.0, -20.0, 0.0)), ("pitch +20", (0.0, 20.0, 0.0)))  # fmt: skip


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def make_sheet(clip: Path, renderer: Renderer, frames: int = 4, seconds: float = 10.0) -> np.ndarray:
    """(rows * 256, (frames + 1) * 256, 3) uint8 RGB sheet; raises VideoError for a bad clip
    and ValueError when the clip has no face."""
    from sender.pipeline import SenderPipeline

    reader = VideoReader(clip, max_seconds=seconds)
    sender = SenderPipeline(StreamConfig(fps=reader.info.fps))
    decoder = MotionDecoder()
    originals: list[np.ndarray] = []
    decoded_frames = []
    keyframe: KeyframePacket | None = None
    with reader:
        for frame in reader:
            out = sender.process(frame.image, frame.time)
            for packet in out.packets:
                if isinstance(packet, KeyframePacket) and keyframe is None:
                    keyframe = packet
                    decoder.add_keyframe(packet)
                elif (
                    isinstance(packet, MotionPacket)
                    and keyframe is not None
                    and packet.keyframe_id == keyframe.keyframe_id
                ):
                    decoded = decoder.decode(packet)
                    if decoded is not None and out.track.crop is not None:
                        decoded_frames.append(decoded)
                        originals.append(out.track.crop.extract(frame.image, keyframe.width))
    if keyframe is None or not decoded_frames:
        raise ValueError(f"{clip}: no face, nothing to render")
    chosen = np.linspace(len(decoded_frames) // (frames + 1), len(decoded_frames) - 1, frames).astype(int)
    renderer.set_keyframe(keyframe)
    assert renderer.keyframe_image is not None
    blank = np.zeros_like(renderer.keyframe_image)
    rows = [[_label(renderer.keyframe_image, "keyframe")] + [_label(originals[i], f"driving #{i}") for i in chosen]]
    rows.append(
        [_label(blank, renderer.name)] + [_label(renderer.render(decoded_frames[i]), "rendered") for i in chosen]
    )
    for label, view in VIEWS:
        rows.append([_label(renderer.render(decoded_frames[chosen[0]], view), label)]
                    + [_label(renderer.render(decoded_frames[i], view), label) for i in chosen])  # fmt: skip
    return np.vstack([np.hstack(row) for row in rows])
