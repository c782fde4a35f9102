"""A loopback call on one machine: this receiver (with its viewer page) and a sender on a clip.

The sender runs as a process of its own (``python -m sender call ... --status-json``), as a
real second peer would; its JSON status lines give its start time (for latency: both
processes read the same monotonic clock) and its counts.  ``python -m receiver demo --video
FILE`` prints the page's URL and runs until the clip ends (or forever with ``--loop``);
``--headless --out CALL.mp4`` needs no browser and writes the received picture and sound to
a file, then prints the call's measurements.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .playback import write_video
from .server import ReceiverServer
from .wire import snapshot_lines

__all__ = ["CallRecording", "DemoResult", "run_demo"]

#: the recording's picture quality: x264's own default
X264_DEFAULT_CRF = 23


@dataclass
class CallRecording:
    """What a headless receiver saw: rendered pictures and sound, with arrival times."""

    video: list[tuple[float, np.ndarray, int]] = field(default_factory=list)  # monotonic time, image, capture ms
    audio: list[tuple[float, Any]] = field(default_factory=list)  # monotonic arrival, av.AudioFrame

    def write(self, path: Path, fps: float) -> None:
        """Mux the pictures and the sound into an mp4 on the receiver's clock: the video is
        sampled at ``fps`` (each frame shows the newest picture rendered by then, as a screen
        would), the sound starts at its first frame's arrival."""
        if not self.video:
            raise RuntimeError("nothing was rendered: the call produced no picture")
        start = min([t for t, _, _ in self.video] + [t for t, _ in self.audio])
        rate = float(Fraction(fps).limit_denominator(1001))
        moments = np.array([t for t, _, _ in self.video])
        end = max(moments[-1], self.audio[-1][0] if self.audio else moments[-1])
        blank = np.zeros_like(self.video[0][1])

        def screen() -> Iterator[np.ndarray]:
            for index in range(int((end - start) * rate) + 1):
                shown = int(np.searchsorted(moments, start + index / rate, side="right")) - 1
                yield self.video[shown][1] if shown >= 0 else blank

        audio_delay = self.audio[0][0] - start if self.audio else 0.0
        write_video(screen(), path, fps, X264_DEFAULT_CRF, [frame for _, frame in self.audio], audio_delay)


@dataclass
class DemoResult:
    seconds: float
    motion_kbps: float
    body_kbps: float
    keyframes: int
    keyframe_bytes: float
    latency_median_ms: float
    latency_p95_ms: float
    receiver_fps: float
    rendered: int
    sent_frames: int
    audio_latency_ms: float | None
    av_offset_ms: float | None  #: picture's latency (render + display delay) minus the sound's; > 0: picture late
    stats: dict[str, Any]
    wire: dict[str, Any] = field(default_factory=dict)  #: the call's WireMeter.snapshot(), once it ended
    carrier: dict[str, Any] = field(default_factory=dict)  #: the sender's CarrierStats (motion on audio packets)
    audio_hold: dict[str, Any] = field(default_factory=dict)  #: the sender's HoldStats (packets waiting for motion)

    def lines(self) -> list[str]:
        sync = "n/a (no sound)" if self.av_offset_ms is None else f"{self.av_offset_ms:+.0f} ms"
        wire = snapshot_lines(self.wire) if self.wire else ["wire: not measured"]
        return [
            f"call of {self.seconds:.1f} s: motion {self.motion_kbps:.2f} kbps, body {self.body_kbps:.2f} kbps, "
            f"{self.keyframes} keyframe(s) of "
            f"{self.keyframe_bytes / 1000:.1f} KB",
            wire[0],
            f"latency packet sent -> frame rendered: median {self.latency_median_ms:.0f} ms, "
            f"p95 {self.latency_p95_ms:.0f} ms",
            f"receiver: {self.rendered} of {self.sent_frames} frames rendered, {self.receiver_fps:.1f} fps; "
            f"audio/video offset {sync}",
            *wire[1:],
        ]


async def run_demo(
    video: Path,
    model: str = "mesh",
    port: int = 8080,
    headless: bool = False,
    out: Path | None = None,
    seconds: float | None = None,
    loop: bool = False,
    print_url: bool = True,
    quality: int = 3,
    closed_loop: bool = True,
) -> DemoResult:
    """Run a loopback call; see the module docstring.  ``quality``: the sender's quality knob
    level; ``closed_loop``: the sender checks the receiver's picture with ``model``.

    Raises:
        codec.video.VideoError: the clip cannot be read.
        RuntimeError: the sender failed (its error is printed above) or nothing was rendered.
    """
    from codec.decoder import Decoder
    from codec.render import create_renderer
    from codec.video import VideoReader

    with VideoReader(video) as probe:  # raises VideoError with the file's name
        fps = probe.info.fps
    sender_started: dict[str, float] = {}

    def clock(timestamp_ms: int) -> float | None:
        start = sender_started.get("monotonic")
        return None if start is None else start + timestamp_ms / 1000

    renderer = create_renderer(model)  # loaded once, reused by the call
    server = ReceiverServer(lambda: Decoder(renderer), port=port, fps=fps, clock=clock)
    url = await server.start()
    if print_url:
        print(f"viewer page: {url}", flush=True)
    recording = CallRecording()
    if headless:
        delay = server.video_delay  # shown as the viewer page shows it
        server.frame_listeners.append(lambda image, ts: recording.video.append((time.monotonic() + delay, image, ts)))
    command = [sys.executable, "-m", "sender", "call", "--video", str(video), "--status-json",
               "--receiver", f"http://127.0.0.1:{server.port}", "--token", server.token]  # fmt: skip
    command += ["--seconds", f"{seconds:g}"] if seconds is not None else []
    command += ["--loop"] if loop else []
    command += ["--quality", str(quality), "--loop-model", model if closed_loop else "none"]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    summary: dict[str, Any] = {}
    status = asyncio.get_running_loop().create_task(_read_status(process, sender_started, summary))
    audio_task = asyncio.get_running_loop().create_task(_collect_audio(server, recording)) if headless else None
    try:
        await process.wait()
        await status
        if "frames" not in summary:
            raise RuntimeError(f"the sender failed (exit code {process.returncode}); its error is printed above")
        await asyncio.sleep(0.3)  # let the last frames render
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        stats = server.stats()
        try:
            await asyncio.wait_for(server.call_ended.wait(), 5)
        except TimeoutError:
            pass
        for task in (status, audio_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await server.stop()
    session = server.session
    latencies = np.array(session.stats.latency_ms if session is not None and session.stats.latency_ms else [np.nan])
    elapsed = max(float(summary["seconds"]), 1e-6)
    times = [t for t, _, _ in recording.video]
    audio_latency = None
    av_offset = None
    started_at = sender_started.get("monotonic")
    if recording.audio and started_at is not None:
        # audio leaves the sender at started_at + t (t = its file time); the received frames are
        # consecutive from file time 0, so frame k left at started_at + (pts_k - pts_0) / rate
        first = recording.audio[0][1]
        delays = [arrival - (started_at + (frame.pts - first.pts) / frame.sample_rate)
                  for arrival, frame in recording.audio]  # fmt: skip
        audio_latency = float(np.median(delays) * 1000)
        av_offset = float(np.median(latencies)) + server.video_delay * 1000 - audio_latency
    result = DemoResult(
        seconds=elapsed,
        motion_kbps=summary["motion_bytes"] * 8 / elapsed / 1000,
        body_kbps=summary.get("body_bytes", 0) * 8 / elapsed / 1000,
        keyframes=summary["keyframes"],
        keyframe_bytes=summary["keyframe_bytes"] / max(summary["keyframes"], 1),
        latency_median_ms=float(np.median(latencies)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        receiver_fps=(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float(stats.get("fps", 0.0)),
        rendered=session.stats.rendered if session is not None else 0,
        sent_frames=summary["motion_packets"],
        audio_latency_ms=audio_latency,
        av_offset_ms=av_offset,
        stats=stats,
        wire=server.wire.snapshot() if server.wire is not None else {},
        carrier=summary.get("carrier") or {},
        audio_hold=summary.get("audio_hold") or {},
    )
    if headless and out is not None:
        recording.write(out, fps)
    return result


async def _read_status(process: Any, started: dict[str, float], summary: dict[str, Any]) -> None:
    """The sender's JSON status lines: its start time, then its counts."""
    async for line in process.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("event") == "started":
            started["monotonic"] = float(event["monotonic"])
        elif event.get("event") == "ended":
            summary.update(event)


async def _collect_audio(server: ReceiverServer, recording: CallRecording) -> None:
    from aiortc.mediastreams import MediaStreamError

    while server.audio_track is None:
        await asyncio.sleep(0.01)
    track = server.relay.subscribe(server.audio_track) if server.relay is not None else server.audio_track
    try:
        while True:
            frame = await track.recv()
            recording.audio.append((time.monotonic(), frame))
    except MediaStreamError:
        return


def main_demo(args: Any) -> int:
    from codec.video import VideoError

    try:
        result = asyncio.run(
            run_demo(
                Path(args.video),
                args.model,
                args.port,
                args.headless,
                Path(args.out) if args.out else None,
                args.seconds,
                args.loop,
                quality=args.quality,
                closed_loop=not args.open_loop,
            )
        )
    except (VideoError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot listen on port {args.port} ({exc.strerror}); choose another with --port", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    print("\n".join(result.lines()))
    if args.out:
        print(f"wrote {args.out}")
    if getattr(args, "json", None):
        document = {"clip": str(args.video), "model": args.model, **dataclasses.asdict(result)}
        Path(args.json).write_text(json.dumps(document, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0
