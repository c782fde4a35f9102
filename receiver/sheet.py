"""A sample sheet to look at: keyframe, driving frames, reconstructions and free views.

``python -m receiver sheet --clip VIDEO -o sheet.png`` runs a clip through the encoder (its
first frame becomes the keyframe), renders chosen frames with the decoder, and lays out:
the originals, the reconstructions, and the reconstructions turned by -20 / +20 degrees of
yaw and of pitch; with ``--edits``, a row per face edit (:data:`EDIT_ROWS`, :mod:`codec.edits`).
The first column shows the keyframe.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from codec.decoder import Decoder
from codec.edits import FaceEditor, FaceEdits
from codec.encoder import Encoder
from codec.packets import DecodedMotion, KeyframePacket, StreamConfig
from codec.render import decode_keyframe_image
from codec.video import VideoReader

__all__ = ["EDIT_ROWS", "VIEWS", "make_sheet"]

#: rows of free views: (label, (yaw, pitch, roll))
VIEWS = (("yaw -20", (-20.0, 0.0, 0.0)), ("yaw +20", (20.0, 0.0, 0.0)),
         ("pitch -20", (0.0, -20.0, 0.0)), ("pitch +20", (0.0, 20.0, 0.0)))  # fmt: skip
#: rows of face edits: (label, edits)
EDIT_ROWS = (("smile", FaceEdits(expression="smile")), ("surprise", FaceEdits(expression="surprise")),
             ("neutral", FaceEdits(expression="neutral")), ("eyes closed", FaceEdits(eyes="closed")),
             ("eye contact", FaceEdits(eye_contact=True)))  # fmt: skip


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def make_sheet(clip: Path, decoder: Decoder, frames: int = 4, seconds: float = 10.0, edits: bool = False) -> np.ndarray:
    """(rows * S, (frames + 1) * S, 3) uint8 RGB sheet of the first keyframe's frames, painted
    by ``decoder`` (its view is changed); ``edits``: a row per :data:`EDIT_ROWS` (each edit at
    full strength from the first frame on).  Raises VideoError for a bad clip and ValueError
    when the clip has no face."""
    reader = VideoReader(clip, max_seconds=seconds)
    encoder = Encoder(StreamConfig(fps=reader.info.fps))
    originals: list[np.ndarray] = []
    decoded_frames: list[DecodedMotion] = []
    keyframe: KeyframePacket | None = None
    with reader:
        for frame in reader:
            out = encoder.encode_frame(frame.image, frame.time)
            for message in out.messages:
                decoded = decoder.receive(message)
                keyframe = keyframe or decoder.keyframe
                if decoded is not None and decoded.keyframe is keyframe and out.track.crop is not None:
                    decoded_frames.append(decoded)
                    originals.append(out.track.crop.extract(frame.image, decoded.keyframe.width))
    if keyframe is None or not decoded_frames:
        raise ValueError(f"{clip}: no face, nothing to render")
    chosen = np.linspace(len(decoded_frames) // (frames + 1), len(decoded_frames) - 1, frames).astype(int)

    def render(index: int, view: tuple[float, float, float] = (0.0, 0.0, 0.0),
               editor: FaceEditor | None = None) -> np.ndarray:  # fmt: skip
        decoder.view(*view)
        shown = decoded_frames[index]
        if editor is not None:
            motion = editor.apply(shown.motion, shown.keyframe.canonical_keypoints, shown.timestamp_ms / 1000)
            shown = DecodedMotion(shown.seq, shown.timestamp_ms, shown.keyframe, motion)
        picture = decoder.render(shown)
        if picture is None:
            raise ValueError(f"{clip}: the {decoder.name} renderer failed: {decoder.stats.last_error}")
        return picture

    keyframe_image = decode_keyframe_image(keyframe)
    blank = np.zeros_like(keyframe_image)
    rows = [[_label(keyframe_image, "keyframe")] + [_label(originals[i], f"driving #{i}") for i in chosen]]
    rows.append([_label(blank, decoder.name)] + [_label(render(i), "rendered") for i in chosen])
    for label, view in VIEWS:
        rows.append([_label(render(chosen[0], view), label)] + [_label(render(i, view), label) for i in chosen])
    decoder.view()
    for label, edit in EDIT_ROWS if edits else ():
        editor = FaceEditor(edit)
        rows.append([_label(blank, label)] + [_label(render(i, editor=editor), label) for i in chosen])
    return np.vstack([np.hstack(row) for row in rows])
