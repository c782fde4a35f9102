"""``python -m bench speed``: milliseconds per stage of a call, and frames per second.

:class:`codec.Encoder` and :class:`codec.Decoder` run as in a call, with a
:class:`codec.timing.StageTimer` as their timing hook.  Sender: decode (the video file), track,
extract (pose and deltas), body (the motion outside the face, measured every 0.2 s), keyframe
(the AVIF image and the canonical face), check (the closed loop: the receiver's model paints
the newest frame every 0.5 s on the sender, :mod:`codec.closed_loop`), pack (quantize +
msgpack), pinned to one core (torch too: one thread); body, keyframe and check run on some
frames only: their time per frame is their total over all frames.  The receiver's
acknowledgements go back to the encoder as in a call, so references the loop sends join the
bank and a check also paints the frame from the bank's other references.  The check's cost
grows with them: a second sender pass keeps the bank full (a target no picture meets, so the
loop sends a reference every second) and reports the check with :data:`BANK_SIZE` references
and the sender's frame rate with it (the frames three times over, timed after the first time).  Receiver: unpack
(msgpack + prediction), warp (motion field + 3D warp of the cached volume), generate, on all
cores (or the GPU); the keyframe's one-off work is outside the stages.  Every stage runs over
the same frames several times after a warm-up; the median per frame is reported.  Stages on
a CUDA device are timed with CUDA events; CPU stages with ``time.perf_counter``.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from codec.closed_loop import MAX_PSNR, ClosedLoop, QualityTarget
from codec.decoder import Decoder
from codec.encoder import Encoder
from codec.references import BANK_SIZE
from codec.render import Renderer
from codec.timing import StageTimer

__all__ = ["STAGES", "SpeedReport", "run_speed", "write_speed"]

STAGES = ("decode", "track", "extract", "body", "keyframe", "mouth", "check", "pack", "unpack", "warp", "generate",
          "paint")  # fmt: skip
#: the sender's stages
SENDER_STAGES = ("track", "extract", "body", "keyframe", "mouth", "check", "pack")
#: the receiver's stages (``paint``: a mouth the sender sent, on pictures whose mouth is open)
RECEIVER_STAGES = ("unpack", "warp", "generate", "paint")
#: stages that run on some frames only (the body motion every 0.2 s, keyframes, the closed
#: loop's check every 0.5 s, a mouth cut once per open mouth and painted where a mouth is open):
#: their time per frame is the total over the frames, not a median of the frames that ran them
AMORTIZED = ("body", "keyframe", "mouth", "check", "paint")


@dataclass
class SpeedReport:
    clip: str
    device: str
    frames: int
    repeats: int
    stage_ms: dict[str, float | None] = field(default_factory=dict)  # median per frame; None = not available
    sender_fps: float = 0.0  # the SENDER_STAGES
    check_full_bank_ms: float | None = None  # the check per frame with the bank full (BANK_SIZE references)
    sender_fps_full_bank: float | None = None  # the sender with that check
    full_bank_share: float | None = None  # share of that pass's checks that painted from BANK_SIZE references
    receiver_fps: float | None = None  # the RECEIVER_STAGES
    meta: dict[str, str] = field(default_factory=dict)


def run_speed(
    clip: Path,
    max_frames: int = 100,
    repeats: int = 3,
    warmup: int = 10,
    renderer: Renderer | None = None,
    device: str = "cpu",
    loop_renderer: Renderer | None = None,
) -> SpeedReport:
    """Time every stage on the first ``max_frames`` frames of ``clip``; the receiver's warp and
    generate stages only when a ``renderer`` (on ``device``) is given; the sender's closed loop
    (stage ``check``) only with a ``loop_renderer`` (on the CPU: the sender's machine).

    Raises:
        codec.video.VideoError: the clip cannot be read.
    """
    import os

    from codec.video import VideoReader

    from .tracking import pin_to_one_core

    all_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = pin_to_one_core()  # the sender's stages: one core, as in a call
    timer = StageTimer()
    frames: list[np.ndarray] = []
    with VideoReader(clip, threads=1) as reader:
        iterator = iter(reader)
        while len(frames) < max_frames:
            with timer("decode"):
                frame = next(iterator, None)
            if frame is None:
                timer.samples["decode"].pop()
                break
            frames.append(frame.image)
        fps = reader.info.fps
    if not frames:
        raise ValueError(f"{clip}: no frame decoded")
    messages: list[list[bytes]] = []  # per frame, from the first run: the receiver's input
    import torch

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the closed loop's model on the sender's one core
    _time_sender(frames, fps, timer, repeats, warmup, loop_renderer, None, messages)
    full_bank: StageTimer | None = None
    full_share = None
    if loop_renderer is not None:  # the check's cost with the bank full
        full_bank = StageTimer()
        never_met = QualityTarget(min_psnr=MAX_PSNR, min_face_psnr=MAX_PSNR, min_gap=1.0, backoff=1.0)
        # one long run (the frames three times over), timed once the bank has filled (the first pass)
        full_share = _time_sender(frames * 3, fps, full_bank, 1, len(frames), loop_renderer, never_met, [])
    timer.recording = True
    torch.set_num_threads(torch_threads)
    # the receiver's stages run on a machine of their own: all cores (or the GPU)
    if all_cores is not None:
        os.sched_setaffinity(0, all_cores)
    gpu_timer = StageTimer(device)
    if renderer is not None:
        for repeat in range(repeats):
            decoder = Decoder(renderer, timer=gpu_timer)
            for index, sent in enumerate(messages):
                gpu_timer.recording = repeat > 0 or index >= warmup
                for message in sent:
                    decoder.decode(message)
    samples = {**gpu_timer.samples, **timer.samples}  # unpack: the sender machine's run
    stage_ms: dict[str, float | None] = {
        stage: round(statistics.median(samples[stage]), 3) if samples.get(stage) else None for stage in STAGES
    }
    for stage in AMORTIZED:  # over the frames of its side (every sender frame is tracked, every receiver one generated)
        every = "generate" if stage in RECEIVER_STAGES else "track"
        if samples.get(stage) and samples.get(every):
            stage_ms[stage] = round(sum(samples[stage]) / len(samples[every]), 3)
    sender = sum(stage_ms[s] or 0.0 for s in SENDER_STAGES)
    receiver_ms = [stage_ms[s] for s in ("unpack", "warp", "generate")] + [stage_ms["paint"] or 0.0]
    check_full = None
    if full_bank is not None and full_bank.samples.get("check") and samples.get("track"):
        check_full = round(sum(full_bank.samples["check"]) / len(full_bank.samples["track"]), 3)
    sender_full = sender - (stage_ms["check"] or 0.0) + check_full if check_full is not None else None
    return SpeedReport(
        clip=clip.name,
        device=device,
        frames=len(frames),
        repeats=repeats,
        stage_ms=stage_ms,
        sender_fps=round(1000 / sender, 1) if sender else 0.0,
        check_full_bank_ms=check_full,
        sender_fps_full_bank=round(1000 / sender_full, 1) if sender_full else None,
        full_bank_share=None if full_share is None else round(full_share, 2),
        receiver_fps=None if None in receiver_ms else round(1000 / sum(v or 0.0 for v in receiver_ms), 1),
        meta={
            "when": time.strftime("%Y-%m-%d"),
            "cpu": platform.machine(),
            "pinned": f"sender pinned to {pinned}, receiver on {len(all_cores or [0])} cores",
        },
    )


def _time_sender(
    frames: list[np.ndarray],
    fps: float,
    timer: StageTimer,
    repeats: int,
    warmup: int,
    loop_renderer: Renderer | None,
    target: QualityTarget | None,
    messages: list[list[bytes]],
) -> float | None:
    """The sender's stages over ``frames``, ``repeats`` times, the receiver's acknowledgements
    fed back; the first run's messages appended to ``messages``.  Returns the share of the timed
    checks that painted from a full bank (None without a loop)."""
    from codec.packets import StreamConfig
    from codec.tracking.mediapipe import MediaPipeTracker

    full, checks = 0, 0
    for repeat in range(repeats):
        loop = ClosedLoop(loop_renderer, target) if loop_renderer is not None else None
        encoder = Encoder(StreamConfig(fps=fps), tracker=MediaPipeTracker(num_threads=1), timer=timer,
                          closed_loop=loop)  # fmt: skip
        if loop is not None and target is not None:
            loop.set_target(target)  # over the quality level's own
        decoder = Decoder(None, timer=timer)
        for index, image in enumerate(frames):
            timer.recording = repeat > 0 or index >= warmup
            before = (loop.checks, loop.alternatives) if loop is not None else (0, 0)
            sent = encoder.encode(image, index / fps)
            for message in sent:
                decoder.receive(message)
            for request in decoder.requests():  # acknowledgements, as a call sends them back
                encoder.on_control(request)
            if loop is not None and timer.recording and loop.checks > before[0]:
                checks += 1
                full += loop.alternatives - before[1] >= BANK_SIZE - 1
            if repeat == 0:
                messages.append(sent)
    if loop_renderer is None:
        return None
    return full / checks if checks else 0.0


def write_speed(report: SpeedReport, out: Path) -> str:
    """``speed.json`` and ``speed.md`` into ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(asdict(report), indent=1))
    rows = [f"| {stage} | {'n/a (no model)' if ms is None else f'{ms:.3f}'} |"
            for stage, ms in report.stage_ms.items()]  # fmt: skip
    receiver = "n/a (no receiver model)" if report.receiver_fps is None else f"{report.receiver_fps:.0f}"
    text = "\n".join([
        "# Speed per stage",
        "",
        f"{report.meta['when']}, {report.meta['cpu']}, {report.meta['pinned']}, device {report.device}; clip "
        f"{report.clip}, {report.frames} frames x {report.repeats} runs, median ms per frame.",
        "",
        "| stage | ms |",
        "|---|---:|",
        *rows,
        "",
        f"Sender ({' + '.join(SENDER_STAGES)}): {report.sender_fps:.0f} fps. "
        f"Receiver ({' + '.join(RECEIVER_STAGES)}): {receiver} fps.",
        "",
        *([f"With the bank full ({BANK_SIZE} references: the check also paints the frame from the other "
           f"{BANK_SIZE - 1}; {report.full_bank_share:.0%} of that pass's checks did): check "
           f"{report.check_full_bank_ms:.3f} ms a frame, sender {report.sender_fps_full_bank:.0f} fps.", ""]
          if report.check_full_bank_ms is not None and report.full_bank_share is not None else []),
    ])  # fmt: skip
    (out / "speed.md").write_text(text)
    print(text, file=sys.stdout)
    return text
