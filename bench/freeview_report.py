"""``bench freeview``'s outputs: ``freeview.json``, ``freeview.md``, ``freeview.png`` (the
per-view numbers, no picture of anyone) and ``freeview_grid.png`` (sample frames of every
clip: kept out of git by ``.gitignore``, never committed)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .freeview import ANGLES, Angle
from .freeview_identity import IDENTITY_MISSING, SAME_PERSON_DISTANCE

__all__ = ["GRID_FILE", "PLOT_FILE", "markdown", "write_freeview", "write_grid", "write_plot"]

PLOT_FILE = "freeview.png"
#: Holds clip frames: ignored by git (``bench/results/freeview/*grid*.png``).
GRID_FILE = "freeview_grid.png"
#: Side of a thumbnail in the grid, pixels.
THUMBNAIL = 128
#: Height of the grid's header row and width of its clip-name column, pixels.
HEADER = 24
LABEL_WIDTH = 150
PERCENT = 100.0

#: the per-view columns: (key of the stats, header, format of the value times scale, scale)
_COLUMNS = (
    ("face_found", "face found %", ".1f", PERCENT),
    ("measured_yaw", "measured yaw", "+.1f", 1.0),
    ("measured_pitch", "measured pitch", "+.1f", 1.0),
    ("error", "error vs requested", "+.1f", 1.0),
    ("abs_error", "mean abs error", ".1f", 1.0),
    ("identity_distance", "identity distance", ".3f", 1.0),
    ("identity_same", f"same person (< {SAME_PERSON_DISTANCE}) %", ".1f", PERCENT),
)
_IDENTITY_KEYS = ("identity_distance", "identity_same")


def _cell(value: Any, spec: str, scale: float = 1.0) -> str:
    """``value * scale`` formatted with ``spec``; ``n/a`` for None or a non-finite value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    text = format(value * scale, spec)
    return format(0.0, spec) if float(text) == 0 else text  # no "-0.0"


def _requested(angle: Angle) -> str:
    return f"{angle.axis} {angle.requested:+g}" if angle.axis else "0"


def _table(stats: dict[str, dict[str, Any] | None], input_identity: dict[str, Any] | None, identity: bool) -> list[str]:
    columns = [c for c in _COLUMNS if identity or c[0] not in _IDENTITY_KEYS]
    lines = ["| view | requested | " + " | ".join(c[1] for c in columns) + " |", "|---|---|" + "---:|" * len(columns)]
    for angle in ANGLES:
        row = stats.get(angle.name) or {}
        cells = [_cell(row.get(key), spec, scale) for key, _, spec, scale in columns]
        lines.append(f"| {angle.name} | {_requested(angle)} | " + " | ".join(cells) + " |")
    if identity and input_identity is not None:
        cells = [_cell(input_identity.get(k), d, s) if k in _IDENTITY_KEYS else "" for k, _, d, s in columns]
        lines.append("| input (real frames) | | " + " | ".join(cells) + " |")
    return lines


def markdown(summary: dict[str, Any]) -> str:
    """``freeview.md``: how it was measured, the per-view table over all clips, then per clip."""
    meta = summary["meta"]
    overall = summary["overall"]
    identity = bool(meta.get("identity_measured"))
    lines = [
        "# Free view: `python -m bench freeview`",
        "",
        f"{meta.get('when', '?')}, `{meta.get('command', '?')}`, renderer {meta.get('renderer', '?')} "
        f"({meta.get('model', '?')}), {overall['clips']} clip(s), first {meta.get('seconds', '?'):g} s, every "
        f"{meta.get('every', 1)} frame(s) painted at each view, {meta.get('machine', '?')}, "
        f"{meta.get('minutes', 0):.1f} min.",
        "",
        "Each clip is coded as `bench rd` codes fvc-neural (the tracker's stable 256x256 crop, `codec.Encoder` to "
        f"`codec.Decoder`, keyframes {meta.get('keyframes', 'WebP 70')}) and each decoded frame is painted by the "
        "decoder from every view "
        "(`Decoder.view`: the renderer composes `R_u R_d`). **face found**: the tracker finds a face on the painted "
        "frame. **measured yaw / pitch**: the head pose that the tracker and `MotionExtractor` measure on the "
        "rotated picture, relative to the same measure on the front view of the same frame (the angles of "
        "`R_view R_front^T`), mean over frames with a face on both, degrees; **error vs requested**: its mean "
        "minus the requested angle on the turned axis; **mean abs error**: per frame, then averaged. Means over "
        "clips, each clip weighing the same. The measure has a gain of its own (the tracker infers depth from the "
        "picture): `--model classical`, a warp that puts every landmark where the turned pose says, gives the "
        "reference to compare a model with.",
        "",
        meta.get("identity", IDENTITY_MISSING) + ".",
    ]
    if identity:
        lines.append(
            f"Identity is measured on every {meta.get('identity_every', '?')}th painted frame against the first "
            f"keyframe as the decoder holds it ({meta.get('keyframes', 'WebP 70')}); the *input* row is the real "
            "frames against that keyframe: what the person's own motion costs."
        )
    lines += [
        "",
        f"## All clips ({overall['clips']})",
        "",
        *_table(overall["angles"], overall["input_identity"], identity),
    ]
    lines += ["", "## Per clip", ""]
    for clip in summary["clips"]:
        if clip["error"]:
            lines += [f"### {clip['clip']}", "", f"error: {clip['error']}", ""]
            continue
        lines += [f"### {clip['clip']} ({clip['frames']} frames, {clip['fps']:g} fps)", ""]
        lines += [*_table(clip["angles"], clip["input_identity"], identity), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_plot(summary: dict[str, Any], path: Path) -> None:
    """Per view: face found, measured against requested angle, identity distance (per clip and mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips = [c for c in summary["clips"] if not c["error"]]
    overall = summary["overall"]["angles"]
    names = [a.name for a in ANGLES]
    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    x = np.arange(len(names))
    axes[0].bar(x, [PERCENT * (overall[n]["face_found"] or 0) for n in names], color="tab:blue")
    axes[0].set(xticks=x, ylabel="face found (% of frames)", ylim=(0, 105), title="tracker finds a face")
    axes[0].set_xticklabels(names, rotation=45)
    limit = max(max(abs(a.yaw), abs(a.pitch)) for a in ANGLES) + 5
    axes[1].plot([-limit, limit], [-limit, limit], color="0.6", lw=1, label="measured = requested")
    for axis, marker, color in (("yaw", "o", "tab:orange"), ("pitch", "s", "tab:green")):
        turned = [a for a in ANGLES if a.axis == axis]
        for clip in clips:
            values = [clip["angles"][a.name][f"measured_{axis}"] for a in turned]
            axes[1].scatter([a.requested for a in turned], [np.nan if v is None else v for v in values],
                            marker=marker, color=color, alpha=0.25, s=14)  # fmt: skip
        means = [overall[a.name][f"measured_{axis}"] for a in turned]
        axes[1].plot([a.requested for a in turned], [np.nan if v is None else v for v in means], marker=marker,
                     color=color, label=f"{axis}: mean (dots: clips)")  # fmt: skip
    axes[1].set(xlabel="requested (degrees)", ylabel="measured on the output (degrees)", title="measured turn")
    axes[1].legend(fontsize=8)
    if summary["meta"].get("identity_measured"):
        for clip in clips:
            values = [clip["angles"][n]["identity_distance"] for n in names]
            axes[2].scatter(x, [np.nan if v is None else v for v in values], color="tab:purple", alpha=0.25, s=14)
        axes[2].bar(x, [overall[n]["identity_distance"] or 0 for n in names], color="tab:purple", alpha=0.6)
        axes[2].axhline(SAME_PERSON_DISTANCE, color="tab:red", lw=1, ls="--", label="dlib's threshold")
        axes[2].set(ylabel="dlib distance to the keyframe", title="identity (lower: closer)")
        axes[2].legend(fontsize=8)
    else:
        axes[2].text(0.5, 0.5, IDENTITY_MISSING, ha="center", va="center", wrap=True, transform=axes[2].transAxes)
    axes[2].set_xticks(x)
    axes[2].set_xticklabels(names, rotation=45)
    figure.suptitle(f"bench freeview: {summary['meta'].get('renderer', '?')}, {summary['overall']['clips']} clips")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_grid(samples: dict[str, dict[str, np.ndarray]], path: Path) -> bool:
    """One row per clip (its middle frame), columns: the keyframe, then every view.

    Args:
        samples: per clip name, (S, S, 3) uint8 RGB pictures keyed ``keyframe`` and view names.

    Returns:
        False (nothing written) when there is no sample.
    """
    import cv2

    rows = {name: pictures for name, pictures in samples.items() if pictures}
    if not rows:
        return False
    columns = ["keyframe", *(a.name for a in ANGLES)]
    grid = np.full((HEADER + THUMBNAIL * len(rows), LABEL_WIDTH + THUMBNAIL * len(columns), 3), 255, np.uint8)
    font, scale, ink = cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0)
    for col, name in enumerate(columns):
        cv2.putText(grid, name, (LABEL_WIDTH + col * THUMBNAIL + 4, HEADER - 8), font, scale, ink, 1, cv2.LINE_AA)
    for row, (clip, pictures) in enumerate(rows.items()):
        top = HEADER + row * THUMBNAIL
        cv2.putText(grid, Path(clip).stem[:20], (4, top + THUMBNAIL // 2), font, scale, ink, 1, cv2.LINE_AA)
        for col, name in enumerate(columns):
            if name in pictures:
                thumb = cv2.resize(pictures[name], (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)
                left = LABEL_WIDTH + col * THUMBNAIL
                grid[top : top + THUMBNAIL, left : left + THUMBNAIL] = thumb
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return True


def write_freeview(summary: dict[str, Any], out: Path, samples: dict[str, dict[str, np.ndarray]] | None = None) -> str:
    """Write ``freeview.json``, ``freeview.md``, the plot and (with ``samples``) the grid into
    ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "freeview.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    text = markdown(summary)
    (out / "freeview.md").write_text(text)
    if summary["overall"]["clips"]:
        write_plot(summary, out / PLOT_FILE)
    if samples is not None:
        write_grid(samples, out / GRID_FILE)
    return text
