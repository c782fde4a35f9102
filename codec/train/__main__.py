"""``python -m codec.train``: prepare data, train, release weights.

    python -m codec.train prepare --clips ../shared/data/clips            # crops + keypoints, cached
    python -m codec.train fit --run ~/.cache/facevc/runs/tiny --steps 20000  # resumes when the run exists
    python -m codec.train pack --out /tmp/pack     # the prepared splits, small enough to carry (pack.py)
    python -m codec.train fit --pack /tmp/pack --device cuda --workers 14 --batch 16 ...  # on a GPU box
    python -m codec.train release --run ~/.cache/facevc/runs/tiny         # fp16 weights into the zoo
    python -m codec.train curves --run ~/.cache/facevc/runs/tiny          # losses + validation, PNG
    python -m codec.train card --name tiny --bench bench/results/rd-256/rd.json  # its benchmark, on its card

Training runs in the background for hours on a CPU; every ``--checkpoint-every`` steps (and
on Ctrl-C or SIGTERM) the run folder gets a full checkpoint, so a later session resumes it.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

DEFAULT_CLIPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "clips"
DEFAULT_RUN = Path("~/.cache/facevc/runs/tiny").expanduser()


def _parser() -> argparse.ArgumentParser:
    from .trainer import TrainSettings

    parser = argparse.ArgumentParser(prog="python -m codec.train", description="Train the talking-head model.")
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="crop, track and cache the train and val clips")
    prepare.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of clips (with ../manifest.csv)")
    prepare.add_argument("--seconds", type=float, default=30.0, help="first N seconds of each clip (default 30)")
    pack = commands.add_parser("pack", help="pack the prepared splits small enough to carry to a GPU machine")
    pack.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of clips (with ../manifest.csv)")
    pack.add_argument("--seconds", type=float, default=30.0, help="first N seconds of each clip (default 30)")
    pack.add_argument("--out", type=Path, required=True, help="pack folder to write")
    pack.add_argument("--frame-step", type=int, default=2, help="keep every Nth frame (default 2)")
    fit = commands.add_parser("fit", help="train (or resume) a run")
    fit.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    fit.add_argument("--pack", type=Path, default=None, help="train from a pack (python -m codec.train pack)")
    fit.add_argument("--seconds", type=float, default=30.0)
    fit.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder (checkpoints, samples, log)")
    fit.add_argument("--init", default=None, help="warm start from released weights: a zoo name or a .pth file")
    defaults = TrainSettings()
    for item in dataclasses.fields(TrainSettings):
        if item.name == "extra":
            continue
        value = getattr(defaults, item.name)
        flag = "--" + item.name.replace("_", "-")
        if isinstance(value, bool):
            fit.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            fit.add_argument(flag, type=type(value), default=value)
    release = commands.add_parser("release", help="write a run's weights (fp16) and model card into the zoo")
    release.add_argument("--run", type=Path, default=DEFAULT_RUN)
    release.add_argument("--name", default=None, help="zoo name (default: the model size)")
    release.add_argument("--zoo", type=Path, default=None, help="another zoo folder, e.g. to try a checkpoint")
    curves = commands.add_parser("curves", help="plot a run's losses and validation metrics (PNG)")
    curves.add_argument("--run", type=Path, default=DEFAULT_RUN)
    curves.add_argument("-o", "--out", type=Path, default=None, help="PNG to write (default RUN/curves.png)")
    card = commands.add_parser("card", help="add `python -m bench rd` results to a released model's card")
    card.add_argument("--name", default="tiny", help="zoo name (default tiny)")
    card.add_argument("--bench", type=Path, required=True, help="rd.json that measured this release")
    return parser


def _fit(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .curves import plot_curves
    from .data import load_clip_data, prepare_split
    from .trainer import PairSampler, Trainer, TrainSettings, batch_stream

    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)
                                if f.name != "extra"})  # fmt: skip
    torch.set_num_threads(settings.threads)
    run: Path = args.run
    checkpoint = run / "checkpoint.pt"
    trainer = Trainer(settings)
    if checkpoint.is_file():
        trainer.load(checkpoint)
        print(f"resumed {checkpoint} at step {trainer.step}", file=sys.stderr)
    elif args.init:
        from ..zoo import load_weights, weights_path

        state = load_weights(args.init, trainer.config)
        own = trainer.model.state_dict()
        fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        trainer.model.load_state_dict(fitting, strict=False)  # another architecture: the parts that fit
        print(f"warm start from {args.init}: {len(fitting)} of {len(own)} tensors", file=sys.stderr)
        trainer.init = (Path(args.init) if Path(args.init).suffix else weights_path(args.init)).name
    if args.pack is not None:
        from .data import TRAIN_CACHE
        from .pack import pack_note, unpack

        try:
            folders = unpack(args.pack, TRAIN_CACHE.parent / "unpacked" / args.pack.resolve().name)
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    else:
        size = trainer.config.image_size
        folders = {split: prepare_split(args.clips, split, size, args.seconds) for split in ("train", "val")}
    if args.pack is not None:
        trainer.data_note = pack_note(args.pack)
    train = [load_clip_data(p) for p in folders["train"]]
    val = [load_clip_data(p) for p in folders["val"]]
    if not train:
        print(f"error: no training clip could be prepared from {args.clips}", file=sys.stderr)
        return 1
    trainer.train_clips = len(train)
    mesh: dict[str, Any] = {}
    if trainer.config.arch == "mesh":
        from ..geometry.dense_expression import load_dense_map

        mesh = {"mesh_size": trainer.config.volume_size, "dense_map": load_dense_map()}
    sampler = PairSampler(train, trainer.rng, settings.keypoint_noise, settings.flip, hard_pairs=settings.hard_pairs,
                          body_motion=settings.body_motion, **mesh)  # fmt: skip
    import numpy as np

    # the same validation pairs every time (with the body motion a sender sends, for the mesh model)
    fixed = PairSampler(val or train, np.random.default_rng(1234), body_motion=1.0 if mesh else 0.0, **mesh)
    val_batches = [fixed.batch(8) for _ in range(4)]
    sample_batch = fixed.batch(4)
    batches = batch_stream(sampler, settings, trainer.step)
    stop = {"now": False}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run.mkdir(parents=True, exist_ok=True)
    (run / "settings.json").write_text(__import__("json").dumps(dataclasses.asdict(settings), indent=1))
    bar = tqdm(total=settings.steps, initial=trainer.step, unit="step", file=sys.stderr, dynamic_ncols=True)
    log = (run / "log.jsonl").open("a")
    while trainer.step < settings.steps and not stop["now"]:
        start = time.perf_counter()
        try:
            values = trainer.train_step(next(batches))
        except Exception:  # workers ended by the signal that stops this run (SIGTERM to the process group)
            if stop["now"]:  # break their queue in one of several ways (RuntimeError, EOFError, reset)
                break
            raise
        trainer.seconds += time.perf_counter() - start
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k in ("l1", "msssim", "gan")})
        if trainer.step % 20 == 0:
            trainer.log(values)
            log.write(__import__("json").dumps({"step": trainer.step, **values}) + "\n")
            log.flush()
        if trainer.step % settings.validate_every == 0:
            metrics = trainer.validate(val_batches)
            trainer.log({f"val_{k}": v for k, v in metrics.items()})
            log.write(__import__("json").dumps({"step": trainer.step, "validation": metrics}) + "\n")
            log.flush()
            bar.write(f"step {trainer.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
            try:
                plot_curves(run / "log.jsonl", run / "curves.png", f"{run.name}: {settings.size}")
            except (OSError, ValueError) as exc:  # a plot must never stop a training run
                bar.write(f"warning: curves.png not written: {exc}")
        if trainer.step % settings.sample_every == 0:
            trainer.sample_grid(sample_batch, run / "samples" / f"step_{trainer.step:07d}.png")
        if trainer.step % settings.checkpoint_every == 0:
            trainer.save(checkpoint)
    try:
        batches.close()  # ends the workers (and their loader's watch on them) before the last save
    except Exception:
        if not stop["now"]:
            raise  # a worker already ended by the signal that stopped the run: nothing to end
    trainer.save(checkpoint)
    bar.close()
    print(f"saved {checkpoint} at step {trainer.step}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "prepare":
        from .data import prepare_split

        for split in ("train", "val"):
            prepared = prepare_split(args.clips, split, 256, args.seconds)
            print(f"{split}: {len(prepared)} clips ready")
        return 0
    if args.command == "pack":
        from .data import prepare_split
        from .pack import pack_splits

        folders = {split: prepare_split(args.clips, split, 256, args.seconds) for split in ("train", "val")}
        size = pack_splits(folders, args.out, args.frame_step)
        print(f"wrote {args.out}: {size / 2**20:.1f} MiB")
        return 0
    if args.command == "fit":
        return _fit(args)
    if args.command == "release":
        from .release import release_run

        if args.zoo is not None:
            return release_run(args.run, args.name, zoo=args.zoo)
        return release_run(args.run, args.name)
    if args.command == "curves":
        from .curves import plot_curves

        log = args.run / "log.jsonl"
        if not log.is_file():
            print(f"error: {log}: no such file (is {args.run} a training run?)", file=sys.stderr)
            return 1
        out = args.out or args.run / "curves.png"
        plot_curves(log, out, f"{args.run.name}")
        print(f"wrote {out}")
        return 0
    if args.command == "card":
        from .release import add_benchmark

        return add_benchmark(args.name, args.bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
