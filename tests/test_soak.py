"""``bench soak``'s summary: memory growth after the first minute, for both peers, and the bank."""

from __future__ import annotations

import pytest

from bench.soak import WARM_UP, _summary


def test_soak_summary_measures_growth_after_the_warm_up_for_both_processes() -> None:
    def sample(t: float, receiver: float, sender: float | None, references: int) -> dict[str, float | None]:
        return {"t": t, "rss_receiver_mb": receiver, "rss_sender_mb": sender, "references": references,
                "reference_bytes": 3000 * references}  # fmt: skip

    samples = [sample(1.0, 100.0, 50.0, 1), sample(WARM_UP, 400.0, 300.0, 3), sample(WARM_UP + 60, 404.0, 330.0, 4),
               sample(WARM_UP + 120, 402.0, None, 2)]  # fmt: skip
    summary = _summary(samples)
    assert summary["rss_growth_after_first_minute_percent"] == pytest.approx(0.5)  # 400 -> 402
    assert summary["rss_sender_growth_after_first_minute_percent"] == pytest.approx(10.0)  # 300 -> 330
    assert summary["rss_sender_peak_mb"] == 330.0 and summary["rss_receiver_peak_mb"] == 404.0
    assert summary["references_max"] == 4 and summary["reference_bytes_max"] == 12000
