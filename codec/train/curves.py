"""Training curves of a run: the losses and the validation metrics, as one PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["plot_curves", "read_log"]

#: training losses drawn, in the log's names
LOSSES = ("l1", "msssim", "warp_l1", "gan", "feature_matching", "discriminator")


def read_log(path: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    """(losses, validation) series from a run's ``log.jsonl``: name -> [(step, value)].

    A line that is not JSON (a log cut short by a crash) is skipped; when a resumed run logs a
    step again, the later value wins.
    """
    losses: dict[str, dict[int, float]] = {}
    validation: dict[str, dict[int, float]] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or "step" not in entry:
            continue
        step = int(entry["step"])
        if isinstance(entry.get("validation"), dict):
            for name, value in entry["validation"].items():
                validation.setdefault(name, {})[step] = float(value)
        else:
            for name in LOSSES:
                if name in entry:
                    losses.setdefault(name, {})[step] = float(entry[name])

    def series(table: dict[str, dict[int, float]]) -> dict[str, list[tuple[int, float]]]:
        return {name: sorted(values.items()) for name, values in table.items()}

    return series(losses), series(validation)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_curves(log: Path, out: Path, title: str = "") -> None:
    """Write ``out`` (PNG): validation PSNR and MS-SSIM of the model, of the warped keyframe
    and of the frozen keyframe against steps, and the smoothed training losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses, validation = read_log(log)
    figure, (psnr_axes, msssim_axes, loss_axes) = plt.subplots(1, 3, figsize=(15, 4.2))
    for source, style in (("model", "-o"), ("warped", "--s"), ("frozen", ":")):
        for axes, metric in ((psnr_axes, "psnr"), (msssim_axes, "msssim")):
            points = validation.get(f"{source}_{metric}", [])
            if points:
                steps, values = zip(*points, strict=True)
                axes.plot(steps, values, style, markersize=3, label=source)
    psnr_axes.set(title="validation PSNR (dB)", xlabel="step")
    msssim_axes.set(title="validation MS-SSIM", xlabel="step")
    for name, points in losses.items():
        steps_array = np.array([s for s, _ in points])
        values_array = np.array([v for _, v in points])
        window = max(1, len(points) // 50)
        smoothed = _smooth(values_array, window)
        loss_axes.plot(steps_array[len(steps_array) - len(smoothed) :], smoothed, label=name)
    loss_axes.set(title="training losses (smoothed)", xlabel="step")
    loss_axes.set_yscale("symlog", linthresh=0.01)  # the generator's hinge loss can be negative
    for axes in (psnr_axes, msssim_axes, loss_axes):
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)
    plt.close(figure)
