"""A thin wrapper around the LiteRT (TFLite) interpreter."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

__all__ = ["TFLiteModel"]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what native code writes to file descriptor 2 (LiteRT's one-line "INFO: Created
    TensorFlow Lite XNNPACK delegate" on every model load); Python's own stderr is untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (embedded interpreters): nothing to silence
        yield
        return
    try:
        sys.stderr.flush()
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class TFLiteModel:
    """One single-input TFLite network.

    Args:
        model_content: the ``.tflite`` flatbuffer.
        num_threads: CPU threads for the interpreter (1 keeps a core free for the rest of a call).
        output_names: names of the outputs to return from :meth:`run`, in that order
            (default: all, in the model's order).
    """

    def __init__(self, model_content: bytes, num_threads: int = 1, output_names: tuple[str, ...] = ()) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ImportError("the face tracker needs ai-edge-litert: pip install ai-edge-litert") from exc
        self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        with _native_stderr_silenced():
            self._interpreter.allocate_tensors()
        (self._input,) = self._interpreter.get_input_details()
        details = {d["name"]: d["index"] for d in self._interpreter.get_output_details()}
        names = output_names or tuple(details)
        missing = [name for name in names if name not in details]
        if missing:
            raise ValueError(f"model has no outputs {missing}; it has {sorted(details)}")
        self._outputs = [details[name] for name in names]
        self.input_shape: tuple[int, ...] = tuple(int(v) for v in self._input["shape"])

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run the network on ``tensor`` (shape :attr:`input_shape`, float32) and return copies
        of the selected outputs."""
        self._interpreter.set_tensor(self._input["index"], np.ascontiguousarray(tensor, dtype=np.float32))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(index).copy() for index in self._outputs]
