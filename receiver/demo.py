"""A loopback call in one process: receiver (with its viewer page) and a sender on a clip.

``python -m receiver demo --video FILE`` prints the page's URL and runs until the clip ends
(or forever with ``--loop``); ``--headless --out CALL.mp4`` needs no browser and writes the
received picture and sound to a file, then prints the call's measurements.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .server import ReceiverServer

__all__ = ["CallRecording", "DemoResult", "run_demo"]


@dataclass
class CallRecording:
    """What a headless receiver saw: rendered pictures and sound, with arrival times."""

    video: list[tuple[float, np.ndarray, int]] = field(default_factory=list)  # monotonic time, image, capture ms
    audio: list[tuple[float, Any]] = field(default_factory=list)  # monotonic arrival, av.AudioFrame

    def write(self, path: Path, fps: float) -> None:
        """Mux the pictures and the sound into an mp4 on the receiver's clock: the video is
        sampled at ``fps`` (each frame shows the newest picture rendered by then, as a screen
        would), the sound starts at its first frame's arrival."""
        from fractions import Fraction

        import av

        if not self.video:
            raise RuntimeError("nothing was rendered: the call produced no picture")
        start = min([t for t, _, _ in self.video] + [t for t, _ in self.audio])
        with av.open(str(path), "w") as container:
            rate = Fraction(fps).limit_denominator(1001)
            video = container.add_stream("libx264", rate=rate)
            video.height, video.width = self.video[0][1].shape[:2]
            video.pix_fmt = "yuv420p"
            audio = None
            if self.audio:
                first = self.audio[0][1]
                audio = container.add_stream("aac", rate=first.sample_rate)
                audio.layout = first.layout.name
            moments = np.array([t for t, _, _ in self.video])
            end = max(moments[-1], self.audio[-1][0] if self.audio else moments[-1])
            blank = np.zeros_like(self.video[0][1])
            for index in range(int((end - start) * float(rate)) + 1):
                shown = int(np.searchsorted(moments, start + index / float(rate), side="right")) - 1
                image = self.video[shown][1] if shown >= 0 else blank
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = index
                for packet in video.encode(frame):
                    container.mux(packet)
            for packet in video.encode():
                container.mux(packet)
            if audio is not None:
                samples = round((self.audio[0][0] - start) * self.audio[0][1].sample_rate)
                for _, frame in self.audio:
                    frame.pts = samples
                    frame.time_base = Fraction(1, frame.sample_rate)
                    samples += frame.samples
                    for packet in audio.encode(frame):
                        container.mux(packet)
                for packet in audio.encode():
                    container.mux(packet)


@dataclass
class DemoResult:
    seconds: float
    motion_kbps: float
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

    def lines(self) -> list[str]:
        sync = "n/a (no sound)" if self.av_offset_ms is None else f"{self.av_offset_ms:+.0f} ms"
        return [
            f"call of {self.seconds:.1f} s: motion {self.motion_kbps:.2f} kbps, {self.keyframes} keyframe(s) of "
            f"{self.keyframe_bytes / 1000:.1f} KB",
            f"latency packet sent -> frame rendered: median {self.latency_median_ms:.0f} ms, "
            f"p95 {self.latency_p95_ms:.0f} ms",
            f"receiver: {self.rendered} of {self.sent_frames} frames rendered, {self.receiver_fps:.1f} fps; "
            f"audio/video offset {sync}",
        ]


async def run_demo(
    video: Path,
    model: str = "tiny",
    port: int = 8080,
    headless: bool = False,
    out: Path | None = None,
    seconds: float | None = None,
    loop: bool = False,
    motion_loss: float = 0.0,
    print_url: bool = True,
) -> DemoResult:
    """Run a loopback call; see the module docstring."""
    from sender.call import SenderCall
    from sender.sources import VideoFileSource

    from .render import create_renderer

    source = VideoFileSource(video, loop=loop, max_seconds=seconds)
    clock_start: dict[str, float] = {}

    def clock(timestamp_ms: int) -> float:
        return clock_start.get("t", time.monotonic()) + timestamp_ms / 1000

    renderer = create_renderer(model)  # loaded once, reused by the call
    server = ReceiverServer(lambda: renderer, port=port, fps=source.fps, clock=clock)
    url = await server.start()
    if print_url:
        print(f"viewer page: {url}", flush=True)
    recording = CallRecording()
    audio_task: asyncio.Task[None] | None = None
    if headless:
        delay = server.video_delay  # shown as the viewer page shows it
        server.frame_listeners.append(lambda image, ts: recording.video.append((time.monotonic() + delay, image, ts)))
    call = SenderCall(source, motion_loss=motion_loss)
    try:
        await call.connect(f"http://127.0.0.1:{server.port}", server.token)
        if headless:
            audio_task = asyncio.get_running_loop().create_task(_collect_audio(server, recording))
        runner = asyncio.get_running_loop().create_task(call.run(seconds))
        while source.started_at is None and not runner.done():
            await asyncio.sleep(0.005)
        clock_start["t"] = source.started_at or time.monotonic()
        await runner
        await asyncio.sleep(0.3)  # let the last packets arrive and render
    finally:
        stats = server.stats()
        await call.close()
        await asyncio.wait_for(server.call_ended.wait(), 5)
        if audio_task is not None:
            audio_task.cancel()
            await asyncio.gather(audio_task, return_exceptions=True)
        await server.stop()
    session = server.session
    latencies = np.array(session.stats.latency_ms if session is not None and session.stats.latency_ms else [np.nan])
    elapsed = max(call.stats.frames / max(source.fps, 1e-6), 1e-6)
    times = [t for t, _, _ in recording.video]
    audio_latency = None
    av_offset = None
    if recording.audio and source.started_at is not None:
        # audio leaves the sender at started_at + t (t = its file time); the received frames are
        # consecutive from file time 0, so frame k left at started_at + (pts_k - pts_0) / rate
        first = recording.audio[0][1]
        delays = [arrival - (source.started_at + (frame.pts - first.pts) / frame.sample_rate)
                  for arrival, frame in recording.audio]  # fmt: skip
        audio_latency = float(np.median(delays) * 1000)
        av_offset = float(np.median(latencies)) + server.video_delay * 1000 - audio_latency
    result = DemoResult(
        seconds=elapsed,
        motion_kbps=call.stats.motion_bytes * 8 / elapsed / 1000,
        keyframes=call.stats.keyframes,
        keyframe_bytes=call.stats.keyframe_bytes / max(call.stats.keyframes, 1),
        latency_median_ms=float(np.median(latencies)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        receiver_fps=(len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float(stats.get("fps", 0.0)),
        rendered=session.stats.rendered if session is not None else 0,
        sent_frames=call.stats.motion_packets,
        audio_latency_ms=audio_latency,
        av_offset_ms=av_offset,
        stats=stats,
    )
    if headless and out is not None:
        recording.write(out, source.fps)
    return result


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
    from sender.call import CallError

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
            )
        )
    except (VideoError, CallError, RuntimeError) as exc:
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
    return 0
