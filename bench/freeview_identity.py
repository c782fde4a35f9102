"""Identity for ``bench freeview``: dlib's face-recognition ResNet, from the ``bench`` extra.

The network (``dlib_face_recognition_resnet_model_v1.dat``, 128-D descriptors) and dlib's
5-point shape predictor ship inside the PyPI package ``face_recognition_models`` (MIT; the
weights are dlib's, CC0); dlib itself comes from the ``dlib-bin`` wheel.  Nothing is
downloaded: without these packages :func:`load_identity_model` says why and the benchmark
reports identity as not measured.

The face box is dlib's own frontal face detector (HOG) on the frame, as in
``face_recognition``'s default pipeline; a frame where it finds no face gets no descriptor.
Two faces are compared by the Euclidean distance of their descriptors: dlib's documented
threshold is 0.6 (below: the same person).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IDENTITY_MISSING",
    "SAME_PERSON_DISTANCE",
    "IdentityModel",
    "descriptor_distance",
    "load_identity_model",
    "models_folder",
]

#: What the report says when the extra is not installed (never a made-up number instead).
IDENTITY_MISSING = "identity: not measured (pip install 'facevc[bench]')"
#: dlib's threshold on the descriptor distance: below it, the same person.
SAME_PERSON_DISTANCE = 0.6
#: Upsampling passes of dlib's HOG detector (it finds faces of 80 px and more; the face fills
#: about half of a 256-pixel crop, so none is needed).
DETECTOR_UPSAMPLE = 0
#: Descriptor length of dlib's ResNet.
DESCRIPTOR_SIZE = 128
RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILE = "shape_predictor_5_face_landmarks.dat"


def models_folder() -> Path | None:
    """The ``models`` folder of the installed ``face_recognition_models`` package, or None.

    Found without importing the package: its ``__init__`` imports ``pkg_resources``, which
    setuptools 81 and later no longer provide.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "models"
        if (folder / RECOGNITION_FILE).is_file() and (folder / SHAPE_FILE).is_file():
            return folder
    return None


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two (128,) float64 descriptors (dlib's measure; < 0.6: same person)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


class IdentityModel:
    """dlib's frontal detector + 5-point shape predictor + face-recognition ResNet.

    Args:
        dlib: the imported ``dlib`` module.
        folder: where the two ``.dat`` files are (see :func:`models_folder`).
    """

    def __init__(self, dlib: Any, folder: Path) -> None:
        self._detector = dlib.get_frontal_face_detector()
        self._shapes = dlib.shape_predictor(str(folder / SHAPE_FILE))
        self._network = dlib.face_recognition_model_v1(str(folder / RECOGNITION_FILE))
        self.version = str(getattr(dlib, "__version__", "?"))

    def descriptor(self, image: np.ndarray) -> np.ndarray | None:
        """(128,) float64 descriptor of the largest face dlib detects in ``image`` ((H, W, 3)
        uint8 RGB), or None when it detects none."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        boxes = list(self._detector(image, DETECTOR_UPSAMPLE))
        if not boxes:
            return None
        box = max(boxes, key=lambda b: b.width() * b.height())
        shape = self._shapes(image, box)
        return np.asarray(self._network.compute_face_descriptor(image, shape), dtype=np.float64)


def load_identity_model() -> tuple[IdentityModel | None, str]:
    """The identity model and a line describing it, or None and :data:`IDENTITY_MISSING`
    (with the reason after it) when ``dlib`` or ``face_recognition_models`` is missing."""
    try:
        dlib = importlib.import_module("dlib")
    except ImportError as exc:
        return None, f"{IDENTITY_MISSING}: dlib does not import ({exc})"
    folder = models_folder()
    if folder is None:
        return None, f"{IDENTITY_MISSING}: the package face_recognition_models (with {RECOGNITION_FILE}) is absent"
    model = IdentityModel(dlib, folder)
    description = (
        f"identity: dlib {model.version} face-recognition ResNet ({RECOGNITION_FILE} of face_recognition_models), "
        f"face box from dlib's frontal HOG detector, Euclidean distance of 128-D descriptors to the keyframe's "
        f"(lower is closer; dlib's threshold {SAME_PERSON_DISTANCE}: below it, the same person)"
    )
    return model, description
