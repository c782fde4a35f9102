"""``python -m codec.export --model tiny --out DIR``: ONNX files of a released model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.export", description="Export the receiver to ONNX.")
    parser.add_argument("--model", default="tiny", help="released model name or a .pth file (default tiny)")
    parser.add_argument("--size", default=None, help="model size of a .pth file (default: from the zoo)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("error: ONNX export needs the onnx extra: pip install 'facevc[onnx]'", file=sys.stderr)
        return 1
    from codec.models.config import load_config
    from codec.models.talking_head import TalkingHeadModel
    from codec.zoo import ModelLoadError, load_model, load_weights

    from . import export_onnx

    try:
        if args.model.endswith(".pth"):
            model = TalkingHeadModel(load_config(args.size or "tiny"))
            model.load_state_dict(load_weights(args.model))
        else:
            loaded = load_model(args.model)
            if not isinstance(loaded, TalkingHeadModel):
                raise ValueError(f"{args.model}: ONNX export supports keypoint models, not {loaded.config.arch}")
            model = loaded
    except (ModelLoadError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in export_onnx(model, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
