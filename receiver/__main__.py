"""Command line of the receiver.

python -m receiver inspect FILE.fvc                      # decode and summarize a packet file
python -m receiver render FILE.fvc -o OUT.mp4 [--original VIDEO] [--yaw 20]
python -m receiver sheet --clip VIDEO -o SHEET.png       # keyframe, frames, renders, free views [--edits]
python -m receiver serve [--host 0.0.0.0] [--port 8080]  # wait for a sender; serve the viewer page
python -m receiver demo --video FILE [--headless --out CALL.mp4] [--json CALL.json]   # loopback call
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    from codec.edits import add_edit_arguments

    parser = argparse.ArgumentParser(prog="python -m receiver", description="Talking-head codec: receiving side.")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="decode an .fvc packet file and summarize it")
    inspect.add_argument("file", help=".fvc file written by `python -m sender encode`")
    render = commands.add_parser("render", help="render an .fvc packet file into an mp4")
    render.add_argument("file", help=".fvc file written by `python -m sender encode`")
    render.add_argument("-o", "--output", required=True, help="output .mp4")
    render.add_argument("--original", default=None, help="the source video: shown side by side (its face crop)")
    sheet = commands.add_parser("sheet", help="a PNG of keyframe, driving frames, renders and +-20 deg views")
    sheet.add_argument("--clip", required=True, help="a video with a face (its first frame becomes the keyframe)")
    sheet.add_argument("-o", "--output", required=True, help="output .png")
    sheet.add_argument("--frames", type=int, default=4, help="driving frames shown (default 4)")
    sheet.add_argument("--edits", action="store_true", help="add a row per face edit (codec.edits)")
    for command in (render, sheet):
        command.add_argument("--model", default="mesh", help="released model, or 'classical' (default mesh)")
        command.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    serve = commands.add_parser("serve", help="wait for a sender and serve the viewer page")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the LAN)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--token", default=None, help="the call's secret (default: random, printed)")
    demo = commands.add_parser("demo", help="a loopback call: a sender on a clip, this receiver, the viewer page")
    demo.add_argument("--video", required=True, help="the clip the sender plays (at its real pace)")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--seconds", type=float, default=None, help="stop after N seconds of the clip")
    demo.add_argument("--loop", action="store_true", help="play the clip again and again")
    demo.add_argument("--headless", action="store_true", help="no browser: write the call to --out")
    demo.add_argument("--out", default=None, help="with --headless: the received picture and sound as .mp4")
    demo.add_argument("--json", default=None, help="write the call's measurements (bytes on the wire too) as JSON")
    demo.add_argument(
        "--quality", type=int, default=3, choices=range(1, 6), metavar="1-5",
        help="the sender's quality knob (default 3; 1 is about 5 kbps of video payload, 5 about 20)",
    )  # fmt: skip
    demo.add_argument(
        "--open-loop", action="store_true",
        help="the sender does not check the receiver's picture (by default it runs the same model on its own "
        "messages and sends a new reference when the picture falls short)",
    )  # fmt: skip
    for command in (serve, demo):
        command.add_argument("--model", default="mesh", help="released model, or 'classical' (default mesh)")
        command.add_argument("--stun", action="append", default=[], help="STUN/TURN server URL (repeatable)")
    for flag in ("yaw", "pitch", "roll"):
        render.add_argument(f"--{flag}", type=float, default=0.0, help=f"viewer {flag} in degrees (free view)")
    add_edit_arguments(render)
    return parser


def _render(args: argparse.Namespace) -> int:
    from codec.decoder import Decoder
    from codec.edits import edits_from_arguments
    from codec.facecrops import FaceCropError, extract_face_crops
    from codec.packets import KeyframePacket, PacketError, iter_packet_file, read_packet_records

    from .playback import render_stream, write_video

    try:
        packets = list(iter_packet_file(args.file))
    except PacketError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    keyframes = [p for p in packets if isinstance(p, KeyframePacket)]
    if not keyframes:
        print(f"error: {args.file} holds no keyframe: nothing to render", file=sys.stderr)
        return 1
    fps, size = keyframes[0].config.fps, keyframes[0].width
    try:
        edits = edits_from_arguments(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    decoder = Decoder(args.model, args.device)
    decoder.view(args.yaw, args.pitch, args.roll)
    if edits is not None:
        decoder.edit(edits)
    frames = render_stream(read_packet_records(args.file), decoder)
    originals = None
    if args.original:
        try:
            originals, times, _, _ = extract_face_crops(Path(args.original), size, None)
        except FaceCropError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    def images():  # type: ignore[no-untyped-def]
        import numpy as np

        for frame in frames:
            if originals is None:
                yield frame.image
                continue
            nearest = int(np.argmin(np.abs(times * 1000 - frame.timestamp_ms)))
            yield np.hstack([originals[nearest], frame.image])

    count = write_video(images(), Path(args.output), fps)
    print(f"{args.output}: {count} frames at {fps:g} fps, rendered by the {decoder.name} renderer")
    if decoder.stats.bad_packets:
        print(f"warning: {decoder.stats.bad_packets} message(s) dropped; the last: {decoder.stats.last_error}",
              file=sys.stderr)  # fmt: skip
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from codec.decoder import Decoder
    from codec.render import create_renderer

    from .server import ReceiverServer

    async def serve() -> None:
        renderer = create_renderer(args.model)  # loaded once, used by every call
        server = ReceiverServer(lambda: Decoder(renderer), args.host, args.port, args.token, args.stun)
        url = await server.start()
        print(f"viewer page: {url}")
        print(f"sender:      python -m sender call --video FILE --receiver http://{args.host}:{server.port} "
              f"--token {server.token}", flush=True)  # fmt: skip
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(
            f"error: cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port", file=sys.stderr
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "inspect":
        from .inspect import inspect_file

        try:
            report = inspect_file(args.file)
        except FileNotFoundError:
            print(f"error: {args.file}: no such file", file=sys.stderr)
            return 1
        print("\n".join(report.lines()))
        return 1 if report.file_error or report.bad_packets else 0
    if args.command == "render":
        if not Path(args.file).is_file():
            print(f"error: {args.file}: no such file", file=sys.stderr)
            return 1
        return _render(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        from .demo import main_demo

        if args.headless and not args.out and not args.json:
            print("error: --headless needs --out CALL.mp4 (or --json FILE)", file=sys.stderr)
            return 2
        return main_demo(args)
    if args.command == "sheet":
        import cv2

        from codec.decoder import Decoder
        from codec.video import VideoError

        from .sheet import make_sheet

        try:
            sheet = make_sheet(Path(args.clip), Decoder(args.model, args.device), args.frames, edits=args.edits)
        except (VideoError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        cv2.imwrite(args.output, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        print(f"{args.output}: {sheet.shape[1]}x{sheet.shape[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
