"""Self-supervised training: repaint a driving frame from a source frame of the same clip.

Each step takes B random (source, driving) pairs from the prepared training clips (random
horizontal flips, the keypoints perturbed by the packets' quantization noise), renders the
driving frame from the source with the driving keypoints, and minimises L1 + (1 - MS-SSIM)
of the output, L1 of the warped keyframe (guides the flow early), and after ``gan_start``
steps a multi-scale patch GAN (hinge) with feature matching.

Checkpoints (model, discriminator, both optimizers, step, random states) go to the run
folder outside the repository; resuming continues exactly where the checkpoint stopped.
"""

from __future__ import annotations

import json
import math
import random
import signal
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..geometry.body import body_field, measure_body_motion
from ..geometry.dense_expression import DenseExpressionMap
from ..geometry.inputs import GEOMETRY_CHANNELS, frame_maps, keyframe_geometry
from ..geometry.mesh import mirror_mesh
from ..models.build import build_model
from ..models.config import ModelConfig, load_config
from ..models.discriminator import MultiScaleDiscriminator
from ..motion.extract import MotionExtractor
from ..motion.params import MotionParams
from ..motion.rotation import euler_angles
from ..motion.schemes import KEYPOINT_NAMES
from ..ops.ssim import ms_ssim
from ..packets.body_coding import BODY_STEPS_PER_UNIT
from .data import ClipData
from .losses import discriminator_hinge, feature_matching, generator_hinge, reconstruction_losses, region_l1

__all__ = ["PairSampler", "TrainSettings", "Trainer", "batch_stream"]

#: keypoint order after a horizontal flip (the subject's right and left swap)
FLIP_ORDER = [
    KEYPOINT_NAMES.index(n.replace("right", "@").replace("left", "right").replace("@", "left")) for n in KEYPOINT_NAMES
]
_FLIP = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
#: a mouth this much (of its width) more open than the clip's median is a hard frame
OPEN_MOUTH = 0.1
#: eyes whose lid gap (over the eye's width) is under this share of the clip's median are a hard
#: frame: a blink, which a warp of open eyes cannot paint (the closed lid is hidden in the crease)
BLINK = 0.5
#: a head turned this many degrees (yaw or pitch) from the clip's median pose is a hard frame
TURNED_HEAD = 12.0
#: the geometry channels of the mouth, the eye whites and the irises (codec.geometry.inputs)
REGION_CHANNELS = [GEOMETRY_CHANNELS.index(name) for name in ("mouth", "eye", "iris")]


@dataclass
class TrainSettings:
    """Run settings (model sizes are in ``codec/models/sizes.json``)."""

    size: str = "tiny"
    steps: int = 20000
    batch: int = 4
    lr: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_decay_start: int = 0  # step where both learning rates start a linear decay (0: constant)
    lr_decay_steps: int = 10000  # the decay reaches ``lr_final`` times the rates after this many steps
    lr_final: float = 0.1
    gan_start: int = 3000
    weight_l1: float = 1.0
    weight_msssim: float = 1.0
    weight_warp: float = 0.25
    weight_region: float = 1.0  # L1 on the mouth and eyes (mesh model)
    hard_pairs: float = 0.0  # share of pairs driven by an open-mouth or turned-head frame
    body_motion: float = 0.0  # share of mesh pairs with the sender's body motion (the rest: still)
    weight_gan: float = 0.05
    weight_feature_matching: float = 1.0
    keypoint_noise: float = 1 / 256  # crop units: about the quantization step of the x/y deltas
    flip: bool = True
    seed: int = 0
    threads: int = 2
    device: str = "cpu"  # "cuda" on a GPU machine
    workers: int = 0  # processes that sample pairs (0: the training process itself)
    checkpoint_every: int = 250
    sample_every: int = 500
    validate_every: int = 1000
    extra: dict[str, Any] = field(default_factory=dict)


class PairSampler:
    """Random (source, driving) pairs from prepared clips, as model inputs.

    Args:
        clips: prepared clips; rng: the run's generator.
        noise: keypoint (or, for the mesh model, expression delta) noise, crop units.
        flip: mirror half the pairs.
        mesh_size: give the mesh model's ``geometry`` maps at this resolution instead of keypoints.
        dense_map: the expression map the receiver rebuilds meshes with (with ``mesh_size``).
        hard_pairs: the share of pairs whose driving frame is one of :meth:`hard_frames`.
        body_motion: the share of mesh pairs whose geometry moves the body and background as
            the sender measures and quantizes it (:mod:`codec.geometry.body`); the others keep
            them still, as for a sender that sends none.
    """

    def __init__(
        self,
        clips: list[ClipData],
        rng: np.random.Generator,
        noise: float = 0.0,
        flip: bool = False,
        mesh_size: int | None = None,
        dense_map: DenseExpressionMap | None = None,
        hard_pairs: float = 0.0,
        body_motion: float = 0.0,
    ) -> None:
        self.clips = [c for c in clips if len(c.valid_indices) >= 2]
        if not self.clips:
            raise ValueError("no prepared clip has two frames with a face")
        weights = np.array([len(c.valid_indices) for c in self.clips], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.rng = rng
        self.noise = noise
        self.flip = flip
        self.mesh_size = mesh_size
        if mesh_size is not None and dense_map is None:
            raise ValueError("the mesh model's pairs need a dense expression map")
        self.dense_map = dense_map
        self.extractor = MotionExtractor()
        self.hard_pairs = hard_pairs
        self.body_motion = body_motion
        self._hard: dict[str, np.ndarray] = {}

    def mesh_pair(self, clip: ClipData, source: int, driving: int, flip: bool = False) -> dict[str, torch.Tensor]:
        """One pair for the mesh model: the driving frame's motion as the sender extracts it
        (relative to the source's canonical face, expression deltas with quantization-sized
        noise), rebuilt into geometry maps and full-resolution detail maps around the eyes and
        the mouth as the receiver does; ``flip`` mirrors both pictures and meshes."""
        assert self.mesh_size is not None and self.dense_map is not None
        source_mesh = clip.landmarks[source].astype(np.float64)
        driving_mesh = clip.landmarks[driving].astype(np.float64)
        if flip:
            source_mesh, driving_mesh = mirror_mesh(source_mesh), mirror_mesh(driving_mesh)
        keyframe = keyframe_geometry(source_mesh, self.extractor)
        motion = self.extractor.extract(driving_mesh, keyframe.canonical)
        if self.noise:
            noise = self.rng.uniform(-self.noise, self.noise, motion.expression_delta.shape)
            motion = MotionParams(motion.head_pose, (motion.expression_delta + noise).astype(np.float32), motion.gaze)
        source_pixels, driving_pixels = np.array(clip.frames[source]), np.array(clip.frames[driving])
        if flip:
            source_pixels, driving_pixels = source_pixels[:, ::-1].copy(), driving_pixels[:, ::-1].copy()
        body = None
        if self.body_motion and self.rng.random() < self.body_motion:
            nodes = measure_body_motion(source_pixels, driving_pixels, driving_mesh)
            nodes = np.round(nodes * BODY_STEPS_PER_UNIT) / BODY_STEPS_PER_UNIT  # as quantized on the wire
            body = body_field(nodes, self.mesh_size)
        size = source_pixels.shape[0]  # detail maps as the receiver makes them
        geometry, detail = frame_maps(keyframe, motion, self.dense_map, self.mesh_size, size, body)
        assert detail is not None
        source_image = torch.from_numpy(source_pixels).permute(2, 0, 1).float() / 255
        driving_image = torch.from_numpy(driving_pixels).permute(2, 0, 1).float() / 255
        return {"source_image": source_image, "driving_image": driving_image, "geometry": torch.from_numpy(geometry),
                "detail": torch.from_numpy(detail)}  # fmt: skip

    def pair(self, clip: ClipData, source: int, driving: int, flip: bool = False) -> dict[str, torch.Tensor]:
        """One pair as (unbatched) tensors."""
        if self.mesh_size is not None:
            return self.mesh_pair(clip, source, driving, flip)

        def image(index: int) -> torch.Tensor:
            return torch.from_numpy(np.array(clip.frames[index])).permute(2, 0, 1).float() / 255

        kp_source = torch.from_numpy(clip.keypoints[source].copy())
        kp_driving = torch.from_numpy(clip.keypoints[driving].copy())
        if self.noise:
            kp_driving += torch.from_numpy(
                self.rng.uniform(-self.noise, self.noise, kp_driving.shape).astype(np.float32)
            )
        r_s = torch.from_numpy(clip.rotation[source].copy())
        r_d = torch.from_numpy(clip.rotation[driving].copy())
        jacobian = float(clip.scale[source] / clip.scale[driving]) * r_s @ r_d.T
        source_image, driving_image = image(source), image(driving)
        if flip:
            source_image, driving_image = source_image.flip(-1), driving_image.flip(-1)
            kp_source, kp_driving = kp_source[FLIP_ORDER] * _FLIP.diagonal(), kp_driving[FLIP_ORDER] * _FLIP.diagonal()
            jacobian = _FLIP @ jacobian @ _FLIP
        return {
            "source_image": source_image,
            "driving_image": driving_image,
            "kp_source": kp_source,
            "kp_driving": kp_driving,
            "jacobian": jacobian,
        }

    def hard_frames(self, clip: ClipData) -> np.ndarray:
        """The frames of ``clip`` that a warp of another frame gets wrong most: the mouth open
        wider than usual (its inner lips apart by :data:`OPEN_MOUTH` of its width more than the
        clip's median), the eyes closing (their lid gap under :data:`BLINK` of the clip's median)
        or the head turned (yaw or pitch :data:`TURNED_HEAD` degrees or more from the clip's
        median pose).  Computed once per clip."""
        cached = self._hard.get(clip.name)
        if cached is not None:
            return cached
        frames = clip.valid_indices
        kp = clip.keypoints[frames].astype(np.float64)
        K = {name: index for index, name in enumerate(KEYPOINT_NAMES)}
        width = np.linalg.norm(kp[:, K["mouth_right"], :2] - kp[:, K["mouth_left"], :2], axis=1)
        opening = np.linalg.norm(kp[:, K["upper_lip"], :2] - kp[:, K["lower_lip"], :2], axis=1)
        opening = opening / np.maximum(width, 1e-6)

        def eye_gap(side: str) -> np.ndarray:  # lid gap over eye width
            gap = np.linalg.norm(kp[:, K[f"{side}_upper_lid"], :2] - kp[:, K[f"{side}_lower_lid"], :2], axis=1)
            eye = np.linalg.norm(kp[:, K[f"{side}_eye_outer"], :2] - kp[:, K[f"{side}_eye_inner"], :2], axis=1)
            return np.asarray(gap / np.maximum(eye, 1e-6))

        lids = (eye_gap("right") + eye_gap("left")) / 2
        angles = np.array([euler_angles(r)[:2] for r in clip.rotation[frames].astype(np.float64)])
        turned = np.abs(angles - np.median(angles, axis=0)).max(axis=1) >= TURNED_HEAD
        blink = lids < BLINK * np.median(lids)
        hard = frames[(opening >= np.median(opening) + OPEN_MOUTH) | blink | turned]
        self._hard[clip.name] = hard
        return hard

    def batch(self, size: int) -> dict[str, torch.Tensor]:
        items = []
        for _ in range(size):
            clip = self.clips[int(self.rng.choice(len(self.clips), p=self.weights))]
            source, driving = self.rng.choice(clip.valid_indices, 2, replace=False)
            if self.hard_pairs and self.rng.random() < self.hard_pairs:
                hard = self.hard_frames(clip)
                candidates = hard[hard != source]
                if len(candidates):
                    driving = self.rng.choice(candidates)
            items.append(self.pair(clip, int(source), int(driving), self.flip and bool(self.rng.integers(2))))
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}


class _BatchStream(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
    """Endless batches from a :class:`PairSampler`, one sampler per worker process, each with
    its own random generator (seeded by the run's seed, the step it starts at and the worker)."""

    def __init__(self, sampler: PairSampler, batch: int, seed: int, start_step: int) -> None:
        self.sampler, self.batch, self.seed, self.start_step = sampler, batch, seed, start_step

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None:  # Ctrl-C reaches the whole process group: the trainer stops, saves, ends its workers
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        torch.set_num_threads(1)
        self.sampler.rng = np.random.default_rng([self.seed, self.start_step, worker])
        while True:
            yield self.sampler.batch(self.batch)


def batch_stream(
    sampler: PairSampler, settings: TrainSettings, start_step: int
) -> Generator[dict[str, torch.Tensor], None, None]:
    """Training batches: sampled in this process (``settings.workers`` 0, reproducible from the
    checkpoint's random state) or by that many worker processes (for a GPU that outruns one CPU)."""
    if settings.workers <= 0:
        while True:
            yield sampler.batch(settings.batch)
    stream = _BatchStream(sampler, settings.batch, settings.seed, start_step)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=settings.workers, prefetch_factor=4,
                                         pin_memory=settings.device.startswith("cuda"))  # fmt: skip
    yield from loader


class Trainer:
    """Model, discriminator, optimizers and the training step (on ``settings.device``)."""

    def __init__(self, settings: TrainSettings, config: ModelConfig | None = None) -> None:
        self.settings = settings
        self.config = config or load_config(settings.size)
        torch.manual_seed(settings.seed)
        self.device = torch.device(settings.device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.model = build_model(self.config).to(self.device)
        self.discriminator = MultiScaleDiscriminator().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=settings.lr, betas=(0.5, 0.999))
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=settings.lr_discriminator,
                                            betas=(0.5, 0.999))  # fmt: skip
        self.step = 0
        self.seconds = 0.0  # training wall time, accumulated over sessions
        self.rng = np.random.default_rng(settings.seed)
        self.history: list[dict[str, float]] = []
        self.train_clips = 0  #: clips the run trains on (for the model card)
        self.init = ""  #: the released weights the run started from (for the model card)
        self.data_note = ""  #: how the training data differs from the prepared cache (a pack), for the card

    def lr_factor(self, step: int) -> float:
        """Multiplier of both learning rates at ``step``: 1 until ``lr_decay_start``, then a
        linear ramp down to ``lr_final`` over ``lr_decay_steps`` steps, then ``lr_final``."""
        s = self.settings
        if s.lr_decay_start <= 0 or step < s.lr_decay_start:
            return 1.0
        progress = min(1.0, (step - s.lr_decay_start) / max(1, s.lr_decay_steps))
        return 1.0 + (s.lr_final - 1.0) * progress

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        s = self.settings
        factor = self.lr_factor(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = s.lr * factor
        for group in self.optimizer_d.param_groups:
            group["lr"] = s.lr_discriminator * factor
        self.model.train()
        batch = self._on_device(batch)
        output = self.model(batch)
        target = batch["driving_image"]
        losses = reconstruction_losses(output, target)
        total = s.weight_l1 * losses["l1"] + s.weight_msssim * losses["msssim"] + s.weight_warp * losses["warp_l1"]
        if "geometry" in batch:  # the mouth and the eyes weigh more (regions from the driving mesh)
            losses["region_l1"] = region_l1(output["image"], target, batch["geometry"][:, REGION_CHANNELS])
            total = total + s.weight_region * losses["region_l1"]
        use_gan = self.step >= s.gan_start
        if use_gan:
            fake = self.discriminator(output["image"])
            real = self.discriminator(target)
            losses["gan"] = generator_hinge(fake)
            losses["feature_matching"] = feature_matching(real, fake)
            total = total + s.weight_gan * losses["gan"] + s.weight_feature_matching * losses["feature_matching"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.optimizer.step()
        if use_gan:
            self.optimizer_d.zero_grad(set_to_none=True)
            loss_d = discriminator_hinge(self.discriminator(target), self.discriminator(output["image"].detach()))
            loss_d.backward()
            self.optimizer_d.step()
            losses["discriminator"] = loss_d
        self.step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        if not math.isfinite(values["total"]):
            raise FloatingPointError(f"the loss is {values['total']} at step {self.step}")
        return values

    @torch.no_grad()
    def validate(self, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Mean PSNR and MS-SSIM of the model, of the warped keyframe and of the source itself
        (the frozen-keyframe floor) on fixed validation pairs."""
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in batches:
            batch = self._on_device(batch)
            output = self.model(batch)
            target = batch["driving_image"]
            for name, image in (("model", output["image"]), ("warped", output["warped_image"]),
                                ("frozen", batch["source_image"])):  # fmt: skip
                mse = ((image - target) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-10)
                sums[f"{name}_psnr"] = sums.get(f"{name}_psnr", 0.0) + float((10 * torch.log10(1 / mse)).sum())
                sums[f"{name}_msssim"] = sums.get(f"{name}_msssim", 0.0) + float(ms_ssim(image, target).sum())
            count += len(target)
        return {k: v / count for k, v in sums.items()}

    @torch.no_grad()
    def sample_grid(self, batch: dict[str, torch.Tensor], path: Path) -> None:
        """PNG rows of (source, driving, warped keyframe, output) for the pairs of ``batch``."""
        import cv2

        self.model.eval()
        batch = self._on_device(batch)
        output = self.model(batch)
        columns = [batch["source_image"], batch["driving_image"], output["warped_image"], output["image"]]
        rows = [torch.cat([c[i] for c in columns], dim=2) for i in range(len(batch["source_image"]))]
        grid = (torch.cat(rows, dim=1).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.to(self.device, non_blocking=True) for key, value in batch.items()}

    def state(self) -> dict[str, Any]:
        return {
            "format": "facevc-train-1",
            "step": self.step,
            "seconds": self.seconds,
            "settings": asdict(self.settings),
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "rng": {
                "numpy": json.dumps(self.rng.bit_generator.state),
                "torch": torch.get_rng_state(),
                "python": json.dumps(random.getstate()),
            },
            "history": self.history,
            "train_clips": self.train_clips,
            "init": self.init,
            "data_note": self.data_note,
        }

    def save(self, path: Path) -> None:
        """Write a full checkpoint atomically (a crash never leaves half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        torch.save(self.state(), partial)
        partial.replace(path)

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("format") != "facevc-train-1":
            raise ValueError(f"{path} is not a facevc training checkpoint")
        self.model.load_state_dict(state["model"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.step = int(state["step"])
        self.seconds = float(state.get("seconds", 0.0))
        self.rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        python_state = json.loads(state["rng"]["python"])
        random.setstate((python_state[0], tuple(python_state[1]), python_state[2]))
        self.history = list(state.get("history", []))
        self.train_clips = int(state.get("train_clips", 0))
        self.init = str(state.get("init", ""))
        self.data_note = str(state.get("data_note", ""))

    def log(self, values: dict[str, float]) -> None:
        self.history.append({"step": float(self.step), "time": time.time(), **values})
