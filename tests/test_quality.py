"""The quality knob (:mod:`codec.quality`): what a level sets, and what it costs on a real clip."""

from __future__ import annotations

import numpy as np
import pytest

from codec import Decoder, Encoder
from codec.closed_loop import ClosedLoop, QualityTarget
from codec.images import DEFAULT_IMAGE_QUALITY
from codec.packets import PacketKind, QuantSteps, StreamConfig, packet_kind
from codec.quality import DEFAULT_QUALITY, QUALITY_LEVELS, quality_level
from codec.render import ClassicalRenderer

from .conftest import shared_frames


def test_quality_level_refuses_unknown_levels() -> None:
    for bad in (0, 6, True, 2.5):
        with pytest.raises(ValueError, match=rf"^quality must be one of 1, 2, 3, 4, 5, got {bad!r}$"):
            quality_level(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^quality must be one of 1, 2, 3, 4, 5, got 9$"):
        Encoder(quality=9)


def test_levels_rise_in_keyframe_quality_loop_target_and_body_rate() -> None:
    levels = [QUALITY_LEVELS[level] for level in sorted(QUALITY_LEVELS)]
    assert [level.image_quality for level in levels] == sorted({level.image_quality for level in levels})
    assert [level.target.min_psnr for level in levels] == sorted({level.target.min_psnr for level in levels})
    assert [level.body_interval for level in levels] == sorted((level.body_interval for level in levels), reverse=True)
    assert [level.motion_every for level in levels] == sorted((level.motion_every for level in levels), reverse=True)
    assert QUALITY_LEVELS[DEFAULT_QUALITY].image_quality == DEFAULT_IMAGE_QUALITY["avif"]


def test_encoder_takes_keyframe_quality_and_loop_target_from_its_level() -> None:
    low = Encoder(quality=1)
    assert low.image_codec == "avif" and low.image_quality == QUALITY_LEVELS[1].image_quality
    assert low.config.steps == QuantSteps() and Encoder().image_quality == 50
    assert Encoder(quality=1, image_codec="webp").image_quality == 75  # levels set AVIF's scale only
    assert Encoder(quality=5, image_quality=33).image_quality == 33
    loop = ClosedLoop(ClassicalRenderer())
    Encoder(quality=4, closed_loop=loop)
    assert loop.target == QUALITY_LEVELS[4].target and loop.gap == QUALITY_LEVELS[4].target.min_gap
    mine = QualityTarget(min_psnr=30.0, min_face_psnr=30.0)
    given = ClosedLoop(ClassicalRenderer(), mine)
    Encoder(quality=1, closed_loop=given)
    assert given.target is mine  # a target given to the loop wins over the level's


@pytest.mark.shared
def test_a_lower_level_sends_fewer_keyframe_motion_and_body_bytes_and_the_receiver_decodes_it() -> None:
    frames = shared_frames("grid_lbbc2a.mp4", 40)
    sizes: dict[int, dict[PacketKind, int]] = {}
    counts: dict[int, dict[PacketKind, int]] = {}
    poses: dict[int, np.ndarray] = {}
    for level in (1, 5):
        encoder = Encoder(StreamConfig(fps=25.0), quality=level)
        decoder = Decoder(model=None)
        sizes[level] = dict.fromkeys(PacketKind, 0)
        counts[level] = dict.fromkeys(PacketKind, 0)
        decoded = []
        for index, frame in enumerate(frames):
            for message in encoder.encode(frame, index / 25.0):
                sizes[level][packet_kind(message)] += len(message)
                counts[level][packet_kind(message)] += 1
                decoder.decode(message)
                if packet_kind(message) is PacketKind.MOTION and decoder.motion is not None:
                    decoded.append(decoder.motion.motion.head_pose.as_vector()[:3])
        assert decoder.stats.bad_packets == 0 and len(decoded) == len(frames) // QUALITY_LEVELS[level].motion_every
        poses[level] = np.array(decoded)
    assert sizes[1][PacketKind.KEYFRAME] < 0.6 * sizes[5][PacketKind.KEYFRAME]
    # motion every other frame at level 1, every frame at 5
    assert counts[1][PacketKind.MOTION] == 20 and counts[5][PacketKind.MOTION] == 40
    assert sizes[1][PacketKind.MOTION] < 0.75 * sizes[5][PacketKind.MOTION]  # bigger differences over 2 frames
    # body motion measured every 0.6 s instead of 0.2 s (40 frames: 1.6 s)
    assert 1 <= counts[1][PacketKind.BODY] <= 3 < counts[5][PacketKind.BODY] <= 8
    # the same steps: the frames both sent decode to the same head, within one step (a value keeps its
    # integer within 0.75 steps of it, and the two streams saw different previous frames)
    difference = np.abs(poses[1] - poses[5][::2])
    assert difference.max() <= 0.25 + 1e-6 and (difference == 0).mean() > 0.9
