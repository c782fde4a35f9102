"""Benchmarks: ``python -m bench rd|speed|tracking|soak|call|freeview|edits`` (see ``--help`` of each)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .codecs import Codec


#: Contender names for ``--codecs``.
CONTENDERS = ("h264", "frozen", "fvc-hold", "fvc-classical", "fvc-neural")
#: What ``bench rd`` measures unless told otherwise: H.264, the floor, and the product's default decoder.
DEFAULT_CONTENDERS = ("h264", "frozen", "fvc-neural")


def _found_clips(items: list[str], split: str | None) -> list[Path]:
    """:func:`_clip_list`, saying so on stderr when it finds none."""
    clips = _clip_list(items, split)
    if not clips:
        print("error: no clips found in " + " ".join(items), file=sys.stderr)
    return clips


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


def _duration(clip: Path) -> float:
    """Seconds of a video (0 when it cannot be read: the run then reports it by name)."""
    from codec.video import VideoError, VideoReader

    try:
        with VideoReader(clip) as reader:
            info = reader.info
    except VideoError:
        return 0.0
    if info.duration is not None:
        return info.duration
    return (info.frame_count or 0) / info.fps if info.fps > 0 else 0.0


def _clip_or_default(given: str | None) -> Path | None:
    """``--clip``, or d14.mp4 of ../shared/data/clips; None (with the error printed) when it is missing."""
    clip = Path(given) if given else Path(__file__).resolve().parents[2] / "shared/data/clips/d14.mp4"
    if not clip.is_file():
        print(f"error: {clip}: no such file (give a video with --clip)", file=sys.stderr)
        return None
    return clip


#: ``bench freeview``'s default clips: ../shared/data/clips beside this repository.
SHARED_CLIPS = Path(__file__).resolve().parents[2] / "shared/data/clips"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmarks of the talking-head codec.")
    commands = parser.add_subparsers(dest="command", required=True)
    rd = commands.add_parser("rd", help="bandwidth and quality of H.264, the frozen keyframe and this codec")
    rd.add_argument("--clips", nargs="+", required=True, help="video files and/or folders of videos")
    rd.add_argument("--split", default=None, help="only clips of this split (train/val) per manifest.csv")
    rd.add_argument("--out", required=True, help="output folder for rd.json, rd.md and the plots")
    rd.add_argument("--size", type=int, default=256, choices=(256, 512), help="crop size (default 256)")
    rd.add_argument(
        "--seconds", type=float, default=10.0, help="first N seconds of each clip (default 10; 0: the whole clip)"
    )
    rd.add_argument(
        "--min-seconds",
        type=float,
        default=0.0,
        help="only clips at least this long (the long-call table: --min-seconds 30 --seconds 0)",
    )
    rd.add_argument(
        "--codecs",
        nargs="+",
        default=list(DEFAULT_CONTENDERS),
        choices=CONTENDERS,
        help="contenders (default: " + " ".join(DEFAULT_CONTENDERS) + "); fvc-* = this codec, decoded by the "
        "default model (fvc-neural, the product's decoder), the classical warp, or by holding the keyframe",
    )
    rd.add_argument(
        "--model", default="mesh", help="released model of fvc-neural: a zoo name or a .pth file (default mesh)"
    )
    rd.add_argument(
        "--open-loop",
        action="store_true",
        help="fvc-* without the closed loop (by default the encoder checks the receiver's picture every 0.5 s "
        "and sends a keyframe into the reference bank when it falls short: codec.closed_loop)",
    )
    rd.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=None,
        help="quality knob levels of fvc-* (codec.quality; default: all, 1 to 5)",
    )
    rd.add_argument(
        "--h264-rates",
        type=int,
        nargs="+",
        default=None,
        help="H.264's target rates in kbps at --size (default: its sweep, 8 to 300 at 256x256)",
    )
    rd.add_argument(
        "--cvvdp",
        action="store_true",
        help="also score every point with ColorVideoVDP (JOD; the perceptual extra; slow on a CPU: ~0.4 s a frame "
        "on 2 cores, fast on a CUDA device)",
    )
    rd.add_argument(
        "--keep-other-settings",
        action="store_true",
        help="with --update: also keep the re-measured contenders' points at settings not measured now "
        "(re-measure one quality level)",
    )
    rd.add_argument(
        "--update",
        action="store_true",
        help="keep the other contenders' points from the rd.json already in --out (re-measure only --codecs)",
    )
    speed = commands.add_parser("speed", help="milliseconds per stage and frames per second on this machine")
    speed.add_argument("--clip", default=None, help="video to time (default: d14.mp4 of ../shared/data/clips)")
    speed.add_argument("--frames", type=int, default=100, help="frames to time (default 100)")
    speed.add_argument("--repeats", type=int, default=3, help="runs over the frames (default 3)")
    speed.add_argument("--out", default="bench/results/speed", help="output folder (default bench/results/speed)")
    speed.add_argument("--model", default="mesh", help="released receiver model to time, or 'none' (default mesh)")
    speed.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    soak = commands.add_parser("soak", help="a looped loopback call for N minutes with hostile bursts: memory, latency")
    soak.add_argument("--clip", default=None, help="video to loop (default: d14.mp4 of ../shared/data/clips)")
    soak.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    soak.add_argument("--burst-every", type=float, default=60.0, help="seconds between hostile bursts (default 60)")
    soak.add_argument("--model", default="mesh", help="the receiver's model (default mesh)")
    soak.add_argument("--out", default="bench/results/soak", help="output folder (default bench/results/soak)")
    call = commands.add_parser("call", help="a loopback call's bytes on the wire, per stream and direction")
    call.add_argument("clip", nargs="?", default=None, help="video to send (default: d14.mp4 of ../shared/data/clips)")
    call.add_argument("--seconds", type=float, default=20.0, help="length of the call (default 20)")
    call.add_argument("--model", default="mesh", help="the receiver's model (default mesh)")
    call.add_argument("--out", default="bench/results/call", help="output folder (default bench/results/call)")
    tracking = commands.add_parser("tracking", help="face found, per-stage speed on one core, motion bytes")
    tracking.add_argument("--clips", nargs="+", required=True, help="video files and/or folders of videos")
    tracking.add_argument("--split", default=None, help="only clips of this split (train/val) per manifest.csv")
    tracking.add_argument("--out", required=True, help="output folder for tracking.json, tracking.md and plots")
    tracking.add_argument("--seconds", type=float, default=10.0, help="first N seconds of each clip (default 10)")
    tracking.add_argument("--repeat", type=int, default=3, help="time each clip N times, keep the fastest (default 3)")
    tracking.add_argument("--plot", nargs="*", default=[], help="clip file names to plot head pose for")
    edits = commands.add_parser("edits", help="each face edit (codec.edits) on the val clips, measured by the tracker")
    edits.add_argument("--clips", nargs="+", default=[str(SHARED_CLIPS)],
                       help="video files and/or folders (default ../shared/data/clips)")  # fmt: skip
    edits.add_argument("--split", default="val", help="only clips of this split per manifest.csv (default val)")
    edits.add_argument("--seconds", type=float, default=5.0, help="first N seconds of each clip (default 5)")
    edits.add_argument("--model", default="mesh", help="the decoder's model (default mesh)")
    edits.add_argument("--every", type=int, default=2, help="paint every Nth frame (default 2)")
    edits.add_argument("--out", default="bench/results/edits", help="output folder (default bench/results/edits)")
    freeview = commands.add_parser(
        "freeview", help="free view at yaw +-10/+-20 and pitch +-10/+-15: face found, measured turn, identity"
    )
    freeview.add_argument(
        "--clips",
        nargs="+",
        default=[str(SHARED_CLIPS)],
        help="video files and/or folders (default ../shared/data/clips)",
    )
    freeview.add_argument("--split", default="val", help="only clips of this split per manifest.csv (default val)")
    freeview.add_argument("--seconds", type=float, default=5.0, help="first N seconds of each clip (default 5)")
    freeview.add_argument(
        "--model", default="mesh", help="the decoder's model: a zoo name, a .pth file or 'classical' (default mesh)"
    )
    freeview.add_argument("--every", type=int, default=2, help="paint every Nth frame at each view (default 2)")
    freeview.add_argument(
        "--identity-every", type=int, default=5, help="identity on every Nth painted frame (default 5)"
    )
    freeview.add_argument(
        "--threads", type=int, default=1, help="torch threads of the renderer (default 1: see bench/freeview.py)"
    )
    freeview.add_argument(
        "--out", default="bench/results/freeview", help="output folder (default bench/results/freeview)"
    )
    return parser


def _kept_from(previous: dict[str, Any], kept: list[str]) -> dict[str, Any]:
    """Where kept points came from: the previous run's date and command (or its own source)."""
    meta = previous.get("meta", {})
    source = meta.get("kept_from")
    if source and set(kept) <= set(source["codecs"]):
        return {**source, "codecs": kept}
    command = meta.get("command", "?")
    if source:  # some kept points are older still: name every run they come from
        command = f"{command}`, and before it `{source['command']}"
    return {"codecs": kept, "when": meta.get("when", "?"), "command": command}


def _model_meta(model: str, measured: list[str], previous: dict[str, Any] | None) -> dict[str, str]:
    """``{"model": weight file}`` of the fvc-neural points (measured now, or kept from before)."""
    if "fvc-neural" not in measured:
        kept = (previous or {}).get("meta", {}).get("model")
        return {"model": kept} if kept else {}
    from codec.zoo import ModelLoadError, weights_path

    try:
        return {"model": Path(model).name if Path(model).suffix else weights_path(model).name}
    except ModelLoadError:
        return {}  # the renderer fell back to the classical warp and said so


def _rd(args: argparse.Namespace, argv: list[str] | None) -> int:
    import platform
    import time

    from .codecs import H264, FrozenKeyframe, MotionCodec
    from .rd_bench import keep_previous, run_rd, summarize
    from .report import write_report

    clips = _clip_list(args.clips, args.split)
    if args.min_seconds > 0:
        clips = [clip for clip in clips if _duration(clip) >= args.min_seconds]
    if not clips:
        extra = f" at least {args.min_seconds:g} s long" if args.min_seconds > 0 else ""
        print("error: no clips" + extra + " found in " + " ".join(args.clips), file=sys.stderr)
        return 1
    seconds = args.seconds if args.seconds > 0 else None
    from codec.closed_loop import ClosedLoop
    from codec.quality import QUALITY_LEVELS, quality_level
    from codec.render import ClassicalRenderer, Renderer, create_renderer

    levels = tuple(args.levels or QUALITY_LEVELS)
    try:
        for level in levels:
            quality_level(level)
    except ValueError as exc:
        print(f"error: --levels: {exc}", file=sys.stderr)
        return 2

    def loop_of(make: Callable[[], Renderer]) -> Callable[[], ClosedLoop] | None:
        """The encoder's closed loop, painting with a renderer of its own (the decoder's kind)."""
        if args.open_loop:
            return None
        renderer = make()
        return lambda: ClosedLoop(renderer)

    available: dict[str, Callable[[], Codec]] = {
        "h264": lambda: H264(rates={args.size: tuple(args.h264_rates)}) if args.h264_rates else H264(),
        "frozen": FrozenKeyframe,
        "fvc-hold": lambda: MotionCodec(label="fvc-hold", levels=levels),
        "fvc-classical": lambda: MotionCodec(
            ClassicalRenderer(), "fvc-classical", levels=levels, closed_loop=loop_of(ClassicalRenderer)
        ),
        "fvc-neural": lambda: MotionCodec(
            create_renderer(args.model),
            "fvc-neural",
            levels=levels,
            closed_loop=loop_of(lambda: create_renderer(args.model)),
        ),
    }
    previous = None
    if args.update:
        import json

        previous_path = Path(args.out) / "rd.json"
        if not previous_path.is_file():
            print(f"error: --update: {previous_path} does not exist (run without --update first)", file=sys.stderr)
            return 1
        previous = json.loads(previous_path.read_text())
    meter = None
    if args.cvvdp:
        import torch

        from .perceptual import CvvdpMeter

        try:
            meter = CvvdpMeter("cuda" if torch.cuda.is_available() else "cpu")
        except RuntimeError as exc:
            print(f"error: --cvvdp: {exc}", file=sys.stderr)
            return 1
    codecs = [available[name]() for name in args.codecs]
    start = time.perf_counter()
    reports = run_rd(clips, codecs, size=args.size, seconds=seconds, cvvdp=meter)
    kept: list[str] = []
    if previous is not None:
        measured_settings = {c.name: set(c.settings(args.size)) for c in codecs} if args.keep_other_settings else None
        kept = keep_previous(reports, previous, [c.name for c in codecs], measured_settings)
    meta = {
        **_run_meta(argv, start),
        "size": args.size,
        "seconds": args.seconds,
        "codecs": kept + [c.name for c in codecs],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **({"kept_from": _kept_from(previous, kept)} if previous is not None and kept else {}),
        **_model_meta(args.model, args.codecs, previous),
    }
    summary = summarize(reports, meta)
    write_report(summary, Path(args.out))
    print((Path(args.out) / "rd.md").read_text().split("## Per clip")[0])
    return 0


def _run_meta(argv: list[str] | None, start: float) -> dict[str, object]:
    """The report's date, command line and minutes since ``start`` (``time.perf_counter()``)."""
    import time

    return {"when": time.strftime("%Y-%m-%d"),
            "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            "minutes": (time.perf_counter() - start) / 60}  # fmt: skip


def _nothing_measured(out: str) -> int:
    """No clip could be measured: say so and leave the results already in ``out`` as they were."""
    print(f"error: no clip could be measured; {out} left as it was", file=sys.stderr)
    return 1


def _edits(args: argparse.Namespace, argv: list[str] | None) -> int:
    import time

    import torch

    from codec.render import create_renderer

    from .edits import run_edits, summarize_edits, write_edits

    if args.every < 1 or args.seconds <= 0:
        print("error: --every must be >= 1, --seconds > 0", file=sys.stderr)
        return 1
    clips = _found_clips(args.clips, args.split)
    if not clips:
        return 1
    torch.set_num_threads(1)  # as bench freeview: one thread paints fastest here (see bench/freeview.py)
    renderer = create_renderer(args.model, "cpu")
    start = time.perf_counter()
    results = run_edits(clips, renderer, args.seconds, args.every)
    meta = {
        **_run_meta(argv, start),
        "seconds": args.seconds,
        "every": args.every,
        "clips": sum(r.error is None for r in results),
        "renderer": renderer.name,
        "model": _model_meta(args.model, ["fvc-neural"], None).get("model", "?")
        if renderer.name == "neural"
        else "no weights",
    }
    if not meta["clips"]:  # keep the results already in --out
        return _nothing_measured(args.out)
    summary = summarize_edits(results, meta)
    print(write_edits(summary, Path(args.out)).split("## Per clip")[0])
    return 0


def _freeview(args: argparse.Namespace, argv: list[str] | None) -> int:
    import platform
    import time

    from codec.images import DEFAULT_IMAGE_CODEC
    from codec.render import create_renderer

    from .freeview import KEYFRAME_QUALITY, run_freeview, summarize
    from .freeview_identity import load_identity_model
    from .freeview_report import write_freeview

    if min(args.every, args.identity_every, args.threads) < 1 or args.seconds <= 0:
        print("error: --every, --identity-every and --threads must be >= 1, --seconds > 0", file=sys.stderr)
        return 1
    clips = _found_clips(args.clips, args.split)
    if not clips:
        return 1
    import torch

    torch.set_num_threads(args.threads)
    renderer = create_renderer(args.model, "cpu")
    identity, identity_line = load_identity_model()
    if identity is None:
        print(f"warning: {identity_line}", file=sys.stderr)
    start = time.perf_counter()
    results = run_freeview(clips, renderer, identity, args.seconds, args.every, args.identity_every)
    meta = {
        **_run_meta(argv, start),
        "seconds": args.seconds,
        "every": args.every,
        "identity_every": args.identity_every,
        "keyframes": f"{DEFAULT_IMAGE_CODEC.upper()} {KEYFRAME_QUALITY}",
        "threads": args.threads,
        "renderer": renderer.name,
        "model": _model_meta(args.model, ["fvc-neural"], None).get("model", "?")
        if renderer.name == "neural"
        else "no weights",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "identity_measured": identity is not None,
        "identity": identity_line,
    }
    summary = summarize(results, meta)
    if not summary["overall"]["clips"]:  # keep the results already in --out
        return _nothing_measured(args.out)
    samples = {r.clip: r.samples for r in results if r.samples}
    print(write_freeview(summary, Path(args.out), samples).split("## Per clip")[0])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "rd":
        return _rd(args, argv)
    if args.command == "freeview":
        return _freeview(args, argv)
    if args.command == "edits":
        return _edits(args, argv)
    if args.command == "speed":
        from codec.video import VideoError

        from .speed import run_speed, write_speed

        clip = _clip_or_default(args.clip)
        if clip is None:
            return 1
        renderer = loop_renderer = None
        device = "cpu"
        if args.model != "none":
            import torch

            from codec.render import NeuralRenderer
            from codec.zoo import ModelLoadError, load_model

            device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                renderer = NeuralRenderer(load_model(args.model, device), device)
                loop_renderer = NeuralRenderer(load_model(args.model, "cpu"), "cpu")  # the sender's closed loop
            except ModelLoadError as exc:
                print(f"warning: the receiver stages and the closed loop are not timed: {exc}", file=sys.stderr)
        try:
            report = run_speed(clip, max_frames=args.frames, repeats=args.repeats, renderer=renderer, device=device,
                               loop_renderer=loop_renderer)  # fmt: skip
        except (VideoError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        write_speed(report, Path(args.out))
        return 0
    if args.command == "soak":
        from .soak import run_soak, write_soak

        clip = _clip_or_default(args.clip)
        if clip is None:
            return 1
        try:
            soaked = run_soak(clip, args.minutes, args.model, args.burst_every)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        write_soak(soaked, Path(args.out))
        return 0
    if args.command == "call":
        from .call import run_call, write_call

        clip = _clip_or_default(args.clip)
        if clip is None:
            return 1
        try:
            document = run_call(clip, args.seconds, args.model)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
        print("\n".join(write_call(document, Path(args.out), command)))
        return 0
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
