"""Release a training run: fp16 weights and a model card into ``codec/zoo``."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

__all__ = ["add_benchmark", "release_run"]

ZOO = Path(__file__).resolve().parents[1] / "zoo"


BENCH_HEADING = "## Benchmark"


def _bench_lines(bench: dict[str, Any]) -> list[str]:
    meta = bench.get("meta", {})
    lines = [
        f"{BENCH_HEADING} (`python -m bench rd`, val clips, first frame as keyframe)",
        "",
        f"Measured {meta.get('when', '?')} on {meta.get('machine', '?')}: `{meta.get('command', '?')}`.",
        "",
    ]
    for point in bench["overall"]["points"]:
        m = point["metrics"]
        lines.append(
            f"- {point['codec']} {point['setting']:g}: {point['kbps']:.1f} kbps, PSNR {m['psnr']:.2f}, "
            f"MS-SSIM {m['msssim']:.4f}, AKD {m['akd']:.2f} px"
        )
    return lines


def _decay_text(settings: dict[str, Any]) -> str:
    start = int(settings.get("lr_decay_start", 0))
    if start <= 0:
        return ""
    end = start + int(settings.get("lr_decay_steps", 0))
    return f" (decayed linearly from step {start} to {settings.get('lr_final', 0.1):g}x at step {end})"


def _card(name: str, file: str, state: dict[str, Any]) -> str:
    config = state["config"]
    settings = state["settings"]
    history = [h for h in state.get("history", []) if "val_model_psnr" in h]
    mesh = config.get("arch", "keypoints") == "mesh"
    parts = ("appearance encoder F, the warp from the tracker's mesh (codec.geometry) refined by R, 3D warp, "
             "generator G guided by the mesh's regions; around the eyes and the mouth the keyframe image is "
             "warped at full resolution, codec.geometry.detail") if mesh else (
             "appearance encoder F, motion field estimator M, 3D warp, generator G")  # fmt: skip
    clips = f"{state['train_clips']} " if state.get("train_clips") else ""
    losses = "L1 + MS-SSIM + warped-keyframe L1"
    if mesh:
        losses += f" + {settings.get('weight_region', 1.0):g} x L1 on the mouth and eyes"
    hard = float(settings.get("hard_pairs", 0.0))
    body = float(settings.get("body_motion", 0.0))
    notes = [f"{hard:.0%} of pairs driven by open-mouth or turned-head frames"] if hard else []
    if mesh and body:
        notes.append(f"{body:.0%} with the body motion a sender measures, in the run's last settings")
    pairs = f" ({'; '.join(notes)})" if notes else ""
    hardware = "a CUDA GPU" if str(settings.get("device", "cpu")).startswith("cuda") else "2 CPU cores"
    start = f", warm-started from `{state['init']}`" if state.get("init") else ""
    data_note = f"; {state['data_note']}" if state.get("data_note") else ""
    lines = [
        f"# Model card: {name} ({file})",
        "",
        f"- Architecture: face-vid2vid-style receiver ({parts}), size `{config['name']}`: feature volume "
        f"{config['volume_channels']}x{config['volume_depth']}x{config['volume_size']}x{config['volume_size']}, "
        f"{config['image_size']}x{config['image_size']} images.",
        f"- Parameters: {sum(v.numel() for v in state['model'].values()) / 1e6:.2f} M, stored in fp16.",
        f"- Data: the `train` split of `../shared/data` ({clips}talking-head clips, first 30 s of each, tracker "
        f"crops at 256x256{data_note}); never the `val` split. Third-party footage: the clips are not "
        "redistributed.",
        f"- Training: {state['step']} steps of batch {settings['batch']}{pairs}, Adam lr {settings['lr']}"
        f"{_decay_text(settings)}, {losses}, patch GAN + feature matching from step "
        f"{settings['gan_start']}{state.get('schedule_note', '')}; {state['seconds'] / 3600:.2f} h of training on "
        f"{hardware}{start}.",
        f"- Released: {time.strftime('%Y-%m-%d')}.",
    ]
    if history:
        last = history[-1]
        lines.append(
            "- Validation pairs at release (val clips, random source/driving frames"
            f"{', with the sender body motion' if mesh and body else ''}): "
            f"PSNR {last['val_model_psnr']:.2f} "
            f"dB (warped keyframe {last['val_warped_psnr']:.2f}, frozen keyframe {last['val_frozen_psnr']:.2f}), "
            f"MS-SSIM {last['val_model_msssim']:.4f} (frozen {last['val_frozen_msssim']:.4f})."
        )
    lines += ["", "Load with `codec.zoo.load_model(name)`; weights load with `torch.load(weights_only=True)`.", ""]
    return "\n".join(lines)


def release_run(run: Path, name: str | None = None, zoo: Path = ZOO) -> int:
    """Write ``{size}-{version}-{sha8}.pth`` (fp16) and its model card, and register it."""
    checkpoint = run / "checkpoint.pt"
    if not checkpoint.is_file():
        print(f"error: {checkpoint}: no checkpoint to release", file=sys.stderr)
        return 1
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    size = state["config"]["name"]
    name = name or size
    half = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    buffer = io.BytesIO()
    torch.save({"state_dict": half, "config": size, "step": state["step"]}, buffer)
    blob = buffer.getvalue()
    table_path = zoo / "models.json"
    table = json.loads(table_path.read_text()) if table_path.is_file() else {}
    version = int(table.get(name, {}).get("version", 0)) + 1
    file = f"{size}-{version}-{hashlib.sha256(blob).hexdigest()[:8]}.pth"
    (zoo / "weights").mkdir(parents=True, exist_ok=True)
    old = table.get(name, {}).get("file")
    (zoo / "weights" / file).write_bytes(blob)
    card = zoo / "weights" / (Path(file).stem + ".md")
    card.write_text(_card(name, file, state))
    table[name] = {"file": file, "config": size, "version": version, "step": state["step"], "card": card.name}
    table_path.write_text(json.dumps(table, indent=1) + "\n")
    if old and old != file:
        for stale in ((zoo / "weights" / old), (zoo / "weights" / (Path(old).stem + ".md"))):
            stale.unlink(missing_ok=True)
    print(f"released {name}: {file} ({len(blob) / 1e6:.2f} MB), card {card.name}")
    print(
        "next: python -m bench rd --clips ../shared/data/clips --split val --out bench/results/rd-256 "
        f"--codecs fvc-neural --model {name} --update, then python -m codec.train card --name {name} "
        "--bench bench/results/rd-256/rd.json"
    )
    return 0


def add_benchmark(name: str, bench: Path, zoo: Path = ZOO) -> int:
    """Put the ``python -m bench rd`` results in the model card of the released ``name``.

    The results must have measured exactly this release (``meta.model`` of ``rd.json``).
    """
    table = json.loads((zoo / "models.json").read_text())
    if name not in table:
        print(f"error: no released model {name!r} in {zoo / 'models.json'}", file=sys.stderr)
        return 1
    if not bench.is_file():
        print(f"error: {bench}: no such file (run python -m bench rd first)", file=sys.stderr)
        return 1
    results = json.loads(bench.read_text())
    file = table[name]["file"]
    measured = results.get("meta", {}).get("model")
    if measured != file:
        print(
            f"error: {bench} measured {measured or 'no released model'}, not {file}; re-measure it with "
            f"python -m bench rd ... --codecs fvc-neural --model {name} --update",
            file=sys.stderr,
        )
        return 1
    card = zoo / "weights" / table[name]["card"]
    text = card.read_text()
    footer = "Load with"
    body = text.split(BENCH_HEADING)[0] if BENCH_HEADING in text else text.split(footer)[0]
    tail = footer + text.split(footer, 1)[1] if footer in text else ""
    card.write_text(body.rstrip("\n") + "\n\n" + "\n".join(_bench_lines(results)) + "\n\n" + tail)
    print(f"{card}: benchmark of {bench} added")
    return 0
