"""``python -m bench tracking --clips DIR_OR_FILES --out DIR``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _clip_list(items: list[str], split: str | None) -> list[Path]:
    """Files as given; folders expand to their videos (filtered by ``split`` through a
    manifest.csv next to the folder, when there is one)."""
    import csv

    clips: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".avi", ".webm"})
            manifest = path.parent / "manifest.csv"
            if split and manifest.is_file():
                with manifest.open() as file:
                    keep = {row["file"] for row in csv.DictReader(file) if row.get("split") == split}
                videos = [v for v in videos if v.name in keep]
            clips.extend(videos)
        else:
            clips.append(path)
    return clips


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the talking-head codec.")
    commands = parser.add_subparsers(dest="command", required=True)
    tracking = commands.add_parser("tracking", help="face found, per-stage speed on one core, motion bytes")
    tracking.add_argument("--clips", nargs="+", required=True, help="video files and/or folders of videos")
    tracking.add_argument("--split", default=None, help="only clips of this split (train/val) per manifest.csv")
    tracking.add_argument("--out", required=True, help="output folder for tracking.json, tracking.md and plots")
    tracking.add_argument("--seconds", type=float, default=10.0, help="first N seconds of each clip (default 10)")
    tracking.add_argument("--repeat", type=int, default=3, help="time each clip N times, keep the fastest (default 3)")
    tracking.add_argument("--plot", nargs="*", default=[], help="clip file names to plot head pose for")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "tracking":
        from .tracking import run_tracking_bench

        clips = _clip_list(args.clips, args.split)
        if not clips:
            print("error: no clips found in " + " ".join(args.clips), file=sys.stderr)
            return 1
        run_tracking_bench(clips, Path(args.out), args.seconds, args.plot, args.repeat)
        print((Path(args.out) / "tracking.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
