"""Command line of the sender: ``python -m sender encode VIDEO -o FILE.fvc``."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    from codec.edits import add_edit_arguments
    from codec.images import DEFAULT_IMAGE_CODEC, DEFAULT_IMAGE_QUALITY, IMAGE_CODECS

    parser = argparse.ArgumentParser(prog="python -m sender", description="Talking-head codec: sending side.")
    commands = parser.add_subparsers(dest="command", required=True)
    encode = commands.add_parser("encode", help="write the packets of a video file to an .fvc file")
    encode.add_argument("video", help="input video file")
    encode.add_argument("-o", "--output", required=True, help="output .fvc packet file")
    encode.add_argument("--seconds", type=float, default=None, help="encode only the first N seconds")
    encode.add_argument(
        "--image-codec", choices=IMAGE_CODECS, default=DEFAULT_IMAGE_CODEC,
        help=f"keyframe image format (default {DEFAULT_IMAGE_CODEC})",
    )  # fmt: skip
    encode.add_argument(
        "--image-quality", type=int, default=None,
        help="keyframe quality 1-100 on the format's own scale (default: "
        + ", ".join(f"{codec} {quality}" for codec, quality in DEFAULT_IMAGE_QUALITY.items() if codec != "png") + ")",
    )  # fmt: skip
    encode.add_argument(
        "--quality", type=int, default=3, choices=range(1, 6), metavar="1-5",
        help="the quality knob (codec.quality): keyframe quality, body-motion interval (default 3)",
    )  # fmt: skip
    encode.add_argument("--crop-size", type=int, default=256, help="side of the face crop in pixels (default 256)")
    encode.add_argument(
        "--absolute-interval",
        type=int,
        default=120,
        help="an absolute motion packet at least every N packets (default 120; the receiver also asks "
        "for one after a loss)",
    )
    encode.add_argument(
        "--expression-basis",
        default=None,
        metavar="ID",
        help="code expressions in this shipped PCA basis (default: pca-k20m24-3384d501), or 'none' for raw "
        "deltas (about 20%% more motion bytes at the same keypoint error)",
    )
    encode.add_argument(
        "--tracker",
        choices=("mediapipe", "insightface"),
        default="mediapipe",
        help="face tracker backend (default mediapipe, built in)",
    )
    encode.add_argument("--quiet", action="store_true", help="no progress bar")
    add_edit_arguments(encode)
    call = commands.add_parser("call", help="call a receiver (python -m receiver serve) over WebRTC")
    source = call.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file, played at its real pace")
    source.add_argument("--camera", type=int, help="a camera number")
    call.add_argument("--loop", action="store_true", help="with --video: play it again and again")
    add_edit_arguments(call)
    call.add_argument("--receiver", required=True, help="the receiver's address, e.g. http://127.0.0.1:8080")
    call.add_argument("--token", required=True, help="the call's token the receiver printed")
    call.add_argument("--stun", action="append", default=[], help="STUN/TURN server URL (repeatable)")
    call.add_argument("--seconds", type=float, default=None, help="hang up after N seconds")
    call.add_argument(
        "--audio-kbps",
        type=float,
        default=11.0,
        help="bitrate of the sound, Opus mono speech in 60 ms packets (6 to 64, default 11, the lowest that libopus "
        "codes wideband; in-band FEC from about 17)",
    )
    call.add_argument(
        "--quality",
        type=int,
        default=3,
        choices=range(1, 6),
        metavar="1-5",
        help="the quality knob: keyframe quality and when the closed loop sends a new reference (default 3; "
        "1 is about 5 kbps of video payload on the bench clips, 5 about 20)",
    )
    call.add_argument(
        "--loop-model",
        default="mesh",
        help="the model the receiver paints with, which the closed loop runs to check the receiver's picture "
        "(default mesh, the receiver's default; 'none': no closed loop, no check)",
    )
    call.add_argument(
        "--no-audio",
        action="store_true",
        help="send no microphone or file sound (a silent audio track still carries the call)",
    )
    call.add_argument(
        "--status-json",
        action="store_true",
        help='print JSON lines on stdout for a program that runs this one: {"event": "started", "monotonic": '
        'T} when the first frame is sent (T on this machine\'s monotonic clock), then {"event": "ended", ...} '
        "with the call's counts",
    )
    return parser


def _call(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import json

    from codec.edits import edits_from_arguments
    from codec.video import VideoError

    from .call import CallError, SenderCall
    from .sources import CameraSource, FrameSource, VideoFileSource

    def status(event: str, **values: object) -> None:
        if args.status_json:
            print(json.dumps({"event": event, **values}), flush=True)

    async def announce_start(source: FrameSource) -> None:
        while source.started_at is None:
            await asyncio.sleep(0.002)
        status("started", monotonic=source.started_at)

    try:
        edits = edits_from_arguments(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def run() -> None:
        source: FrameSource = (
            VideoFileSource(args.video, loop=args.loop, max_seconds=args.seconds, audio=not args.no_audio)
            if args.video
            else CameraSource(args.camera, audio=not args.no_audio)
        )
        loop_model = None if args.loop_model == "none" else args.loop_model
        call = SenderCall(source, ice_servers=args.stun, audio_kbps=args.audio_kbps, quality=args.quality,
                          loop_model=loop_model, edits=edits)  # fmt: skip
        announcer = asyncio.get_running_loop().create_task(announce_start(source))
        try:
            await call.connect(args.receiver, args.token)
            print(f"in a call with {args.receiver}; Ctrl-C hangs up", file=sys.stderr)
            await call.run(args.seconds)
        finally:
            announcer.cancel()
            await call.close()
        stats = call.stats
        status("ended", frames=stats.frames, frames_with_face=stats.frames_with_face,
               motion_packets=stats.motion_packets, motion_bytes=stats.motion_bytes, body_packets=stats.body_packets,
               body_bytes=stats.body_bytes, keyframes=stats.keyframes,
               keyframe_bytes=stats.keyframe_bytes, seconds=stats.frames / max(source.fps, 1e-6),
               carrier=dataclasses.asdict(stats.carrier), audio_hold=dataclasses.asdict(stats.audio_hold),
               keyframe_reasons=stats.keyframe_reasons, checks=stats.checks, references=stats.references,
               reference_switches=stats.reference_switches)  # fmt: skip
        reasons = f" ({', '.join(stats.keyframe_reasons)})" if stats.keyframe_reasons else ""
        line = (f"sent {stats.frames} frames ({stats.frames_with_face} with a face), {stats.motion_packets} motion "
                f"packets, {stats.keyframes} keyframe(s){reasons}")  # fmt: skip
        print(line, file=sys.stderr if args.status_json else sys.stdout)

    try:
        asyncio.run(run())
    except (CallError, VideoError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # imports are lazy so that --help is instant
    from codec.packets import StreamConfig
    from codec.tracking import ModelAssetError
    from codec.video import VideoError

    from .encode import encode_video

    if args.command == "call":
        from .audio import check_audio_kbps

        try:
            check_audio_kbps(args.audio_kbps)
        except ValueError as exc:
            print(f"error: --audio-kbps: {exc}", file=sys.stderr)
            return 2
        return _call(args)
    if args.command == "encode":
        if args.image_quality is not None and not 1 <= args.image_quality <= 100:
            print("error: --image-quality must be in 1..100", file=sys.stderr)
            return 2
        try:
            from codec.edits import edits_from_arguments
            from codec.video import VideoReader

            with VideoReader(args.video) as probe:
                fps = probe.info.fps
            if args.expression_basis is None:
                args.expression_basis = StreamConfig().basis
            elif args.expression_basis == "none":
                args.expression_basis = None
            if args.expression_basis is not None:
                from codec.motion.basis import available_bases

                if args.expression_basis not in available_bases():
                    print(
                        f"error: unknown expression basis {args.expression_basis!r}; "
                        f"shipped: {', '.join(available_bases())}",
                        file=sys.stderr,
                    )
                    return 2
            config = StreamConfig(
                fps=fps, crop_size=args.crop_size, absolute_interval=args.absolute_interval, basis=args.expression_basis
            )
            summary = encode_video(
                args.video,
                args.output,
                config=config,
                max_seconds=args.seconds,
                image_codec=args.image_codec,
                image_quality=args.image_quality,
                quality=args.quality,
                tracker_backend=args.tracker,
                progress=not args.quiet,
                edits=edits_from_arguments(args),
            )
        except (VideoError, ModelAssetError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(summary.line())
        if summary.frames_with_face == 0:
            print(f"warning: no face found in {args.video}; the file holds no motion", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
