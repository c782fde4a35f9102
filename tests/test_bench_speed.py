"""bench speed: acknowledgements fed back as in a call, and the closed loop's check with the bank full."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.speed import SpeedReport, _time_sender, write_speed
from codec.closed_loop import MAX_PSNR, QualityTarget
from codec.references import BANK_SIZE
from codec.timing import StageTimer

from .conftest import shared_frames


def test_the_report_says_what_a_full_bank_costs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = SpeedReport("d14.mp4", "cpu", 100, 3, {"track": 5.0, "check": 3.9}, sender_fps=88.0, receiver_fps=29.0,
                         check_full_bank_ms=11.7, sender_fps_full_bank=55.3, full_bank_share=1.0,
                         meta={"when": "2026-11-22", "cpu": "x86_64", "pinned": "sender pinned to 0"})  # fmt: skip
    text = write_speed(report, tmp_path)
    assert (
        "With the bank full (3 references: the check also paints the frame from the other 2; 100% of that pass's "
        "checks did): check 11.700 ms a frame, sender 55 fps." in text
    )
    assert (tmp_path / "speed.md").read_text() == text and capsys.readouterr().out.strip() == text.strip()
    report.check_full_bank_ms = report.full_bank_share = None  # no closed loop timed: no such line
    assert "bank full" not in write_speed(report, tmp_path)


@pytest.mark.shared
def test_the_sender_pass_fills_the_bank_through_acknowledgements() -> None:
    """A target no picture meets makes the loop send a reference a second; the receiver's
    acknowledgements come back, so the bank fills and each check paints from all of it."""
    from codec.render import create_renderer

    frames = shared_frames("d14.mp4", 50)
    timer, messages = StageTimer(), []
    never_met = QualityTarget(min_psnr=MAX_PSNR, min_face_psnr=MAX_PSNR, min_gap=1.0, backoff=1.0)
    share = _time_sender(frames * 3, 25.0, timer, 1, len(frames) * 2, create_renderer("classical", "cpu"),
                         never_met, messages)  # fmt: skip
    assert share == 1.0 and BANK_SIZE == 3
    assert len(timer.samples["check"]) == 4  # the last 50 frames: a check every 0.5 s
    assert len(messages) == 150 and sum(len(sent) for sent in messages) > 150  # motion and keyframes
