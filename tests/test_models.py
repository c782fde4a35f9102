"""The receiver networks, the trainer's resume and the zoo (tiny random weights: no release needed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from codec.models.config import available_sizes, load_config
from codec.models.motion_field import combine_motions, identity_grid, sparse_motions
from codec.models.talking_head import TalkingHeadModel, pose_jacobian
from codec.motion.rotation import rotation_matrix
from codec.train.data import ClipData
from codec.train.trainer import FLIP_ORDER, PairSampler, Trainer, TrainSettings

#: a small configuration for fast tests (64x64 images, 16x16 volume)
SMALL = dataclasses.replace(
    load_config("tiny"), name="small", image_size=64, volume_size=16, motion_size=8, encoder_channels=(8, 8, 8),
    motion_channels=8, generator_channels=(8, 8, 8),
)  # fmt: skip


def _inputs(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    kp = torch.rand(batch, 20, 3, generator=generator) * 0.8 - 0.4
    return {
        "source_image": torch.rand(batch, 3, 64, 64, generator=generator),
        "kp_source": kp,
        "kp_driving": kp + 0.05 * torch.randn(batch, 20, 3, generator=generator),
        "jacobian": torch.eye(3).expand(batch, 3, 3).clone(),
    }


def test_sizes() -> None:
    assert {"tiny", "base"} <= set(available_sizes())
    base = load_config("base")
    assert (base.volume_channels, base.volume_depth, base.volume_size) == (32, 16, 64)  # LivePortrait's volume
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        load_config("huge")


def test_forward_shapes_and_ranges() -> None:
    model = TalkingHeadModel(SMALL).eval()
    with torch.no_grad():
        out = model(_inputs())
    assert out["image"].shape == (2, 3, 64, 64) and 0 <= out["image"].min() and out["image"].max() <= 1
    assert out["flow"].shape == (2, SMALL.volume_depth, 16, 16, 3)
    assert out["masks"].shape == (2, 21, SMALL.volume_depth, 16, 16)
    np.testing.assert_allclose(out["masks"].sum(1), 1.0, atol=1e-5)
    assert out["occlusion"].shape == (2, 1, 16, 16)


def test_same_keypoints_give_the_identity_flow() -> None:
    model = TalkingHeadModel(SMALL).eval()
    inputs = _inputs()
    inputs["kp_driving"] = inputs["kp_source"]
    with torch.no_grad():
        out = model(inputs)
    grid = identity_grid(SMALL.volume_depth, 16, 16)
    np.testing.assert_allclose(out["flow"], grid.expand_as(out["flow"]), atol=1e-5)


def test_combined_flow_equals_the_mask_weighted_motions() -> None:
    grid = identity_grid(4, 6, 6)
    generator = torch.Generator().manual_seed(0)
    masks = torch.softmax(torch.randn(2, 6, 4, 6, 6, generator=generator), 1)
    kp_s, kp_d = torch.randn(2, 5, 3, generator=generator) * 0.3, torch.randn(2, 5, 3, generator=generator) * 0.3
    rotations = torch.from_numpy(rotation_matrix([10.0, -20.0], [5.0, 0.0], [0.0, 15.0])).float()
    jacobian = pose_jacobian(rotations, rotations.flip(0), torch.tensor([1.0, 1.1]), torch.tensor([0.9, 1.0]))
    explicit = (masks.unsqueeze(-1) * sparse_motions(grid, kp_s, kp_d, jacobian, 0.5)).sum(1)
    np.testing.assert_allclose(combine_motions(grid, masks, kp_s, kp_d, jacobian, 0.5), explicit, atol=1e-5)


def test_a_keypoint_motion_follows_the_head_rotation() -> None:
    """A point in front of a driving keypoint maps to the same offset, rotated back, from the source one."""
    r_s = torch.from_numpy(rotation_matrix(0.0, 0.0, 0.0)).float()[None]
    r_d = torch.from_numpy(rotation_matrix(30.0, 0.0, 0.0)).float()[None]
    jacobian = pose_jacobian(r_s, r_d, torch.ones(1), torch.ones(1))
    kp = torch.zeros(1, 1, 3)
    grid = torch.tensor([[[[0.1, 0.0, 0.0]]]])  # (1, 1, 1, 3): 0.1 to the right of the keypoint
    moved = sparse_motions(grid, kp, kp, jacobian, 1.0)[0, 1, 0, 0, 0]
    expected = r_s[0] @ r_d[0].T @ torch.tensor([0.1, 0.0, 0.0])
    np.testing.assert_allclose(moved, expected, atol=1e-6)


def _clips(count: int = 2, frames: int = 6) -> list[ClipData]:
    rng = np.random.default_rng(0)
    out = []
    for index in range(count):
        rotation = np.stack([rotation_matrix(float(y), 0.0, 0.0) for y in rng.uniform(-10, 10, frames)]).astype(
            np.float32
        )
        out.append(ClipData(f"clip{index}", rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8),
                            rng.uniform(-0.4, 0.4, (frames, 20, 3)).astype(np.float32), rotation,
                            np.ones(frames, np.float32), np.ones(frames, bool), 25.0,
                            np.zeros((frames, 478, 3), np.float16)))  # fmt: skip
    return out


def test_flip_swaps_left_and_right() -> None:
    from codec.motion.schemes import KEYPOINT_NAMES

    names = [KEYPOINT_NAMES[i] for i in FLIP_ORDER]
    assert names[KEYPOINT_NAMES.index("right_eye_outer")] == "left_eye_outer"
    assert names[KEYPOINT_NAMES.index("nose_tip")] == "nose_tip"
    clip = _clips(1)[0]
    sampler = PairSampler([clip], np.random.default_rng(0))
    plain, flipped = sampler.pair(clip, 0, 1), sampler.pair(clip, 0, 1, flip=True)
    np.testing.assert_allclose(flipped["source_image"], plain["source_image"].flip(-1))
    right_eye, left_eye = KEYPOINT_NAMES.index("right_eye_outer"), KEYPOINT_NAMES.index("left_eye_outer")
    assert flipped["kp_source"][right_eye, 0] == pytest.approx(-float(plain["kp_source"][left_eye, 0]))


def test_training_resumes_bit_for_bit(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    settings = TrainSettings(batch=2, gan_start=2, keypoint_noise=0.004, flip=True, seed=3, lr_decay_start=2,
                             lr_decay_steps=4)  # fmt: skip

    def make() -> tuple[Trainer, PairSampler]:
        trainer = Trainer(settings, SMALL)
        return trainer, PairSampler(_clips(), trainer.rng, settings.keypoint_noise, settings.flip)

    trainer, sampler = make()
    for _ in range(3):
        trainer.train_step(sampler.batch(2))
    trainer.save(tmp_path / "checkpoint.pt")
    straight = [trainer.train_step(sampler.batch(2)) for _ in range(2)]
    resumed, resumed_sampler = make()
    resumed.load(tmp_path / "checkpoint.pt")
    assert resumed.step == 3
    again = [resumed.train_step(resumed_sampler.batch(2)) for _ in range(2)]
    assert again == straight and resumed.step == trainer.step == 5
    for key, value in trainer.optimizer.state_dict()["state"].items():
        np.testing.assert_array_equal(value["exp_avg"], resumed.optimizer.state_dict()["state"][key]["exp_avg"])
    for name, parameter in trainer.model.state_dict().items():
        assert torch.equal(parameter, resumed.model.state_dict()[name]), name


def _open_jaw(mesh: np.ndarray, by: float) -> np.ndarray:
    """The mesh with its lower inner lip and everything beyond it moved ``by`` crop units away
    from the upper inner lip: the mouth opens without folding the lower lip over it."""
    away = np.sign(mesh[14, 1] - mesh[13, 1])
    opened = mesh.copy()
    opened[(mesh[:, 1] - mesh[[13, 14], 1].mean()) * away > 0, 1] += by * away
    return opened


def test_the_mesh_model_trains_on_geometry_pairs() -> None:
    """Pairs for the mesh model carry geometry maps rebuilt as the receiver does; a training
    step takes them, with the mouth and eyes weighing more."""
    from codec.geometry.inputs import GEOMETRY_CHANNELS
    from codec.models.mesh_head import MeshTalkingHeadModel
    from codec.motion.rotation import rotation_matrix

    from .synthetic import face_mesh
    from .test_geometry import identity_map

    torch.set_num_threads(1)
    config = dataclasses.replace(SMALL, arch="mesh")
    frames = 4
    meshes = np.stack([face_mesh() @ rotation_matrix(yaw, 0.0, 0.0).T for yaw in (0.0, 8.0, -8.0, 3.0)])
    meshes[:, :478] = [_open_jaw(mesh, 0.25) for mesh in meshes]  # 2 px at 16: the lips' edges cover a narrower one
    meshes[1, :478] = _open_jaw(meshes[1], 0.05)  # frame 1's wider
    clip = dataclasses.replace(_clips(1, frames)[0], landmarks=meshes.astype(np.float16))
    trainer = Trainer(TrainSettings(batch=2, gan_start=100), config)
    assert isinstance(trainer.model, MeshTalkingHeadModel)
    sampler = PairSampler([clip], trainer.rng, 1 / 256, flip=True, mesh_size=16, dense_map=identity_map())
    pair = sampler.pair(clip, 0, 1)
    assert set(pair) == {"source_image", "driving_image", "geometry", "detail"}
    assert pair["geometry"].shape == (len(GEOMETRY_CHANNELS), 16, 16)
    size = pair["source_image"].shape[-1]  # the eyes and mouth at the picture's resolution
    assert pair["detail"].shape == (3, size, size) and 0 < float(pair["detail"][2].mean()) < 0.5
    exact = PairSampler([clip], trainer.rng, mesh_size=16, dense_map=identity_map())  # no noise
    pair, mirrored = exact.pair(clip, 0, 1), exact.pair(clip, 0, 1, flip=True)
    assert torch.equal(mirrored["driving_image"], pair["driving_image"].flip(-1))
    # the mirrored pair's geometry is the mirror image of the pair's: regions flipped, x motion negated
    regions, mirrored_regions = pair["geometry"][3:7].flip(-1), mirrored["geometry"][3:7]
    assert (regions != mirrored_regions).float().mean() < 0.03  # edge pixels may rasterize differently
    same = (regions == mirrored_regions).all(dim=0) & (regions[0] == 1)  # skin on both
    gap = (mirrored["geometry"][0][same] + pair["geometry"][0].flip(-1)[same]).abs()
    assert (gap < 0.02).float().mean() > 0.95  # within 0.2 px at 16 (fp16 meshes, robust pose fits)
    values = trainer.train_step(sampler.batch(2))
    assert values["region_l1"] > 0 and np.isfinite(values["total"])
    with pytest.raises(ValueError, match="the mesh model's pairs need a dense expression map"):
        PairSampler([clip], trainer.rng, mesh_size=16)


def test_hard_pairs_drive_with_open_mouths_blinks_and_turned_heads() -> None:
    from codec.motion.rotation import rotation_matrix
    from codec.motion.schemes import KEYPOINT_NAMES

    frames = 40
    clip = _clips(1, frames)[0]
    keypoints = np.zeros((frames, 20, 3), np.float32)
    keypoints[:, KEYPOINT_NAMES.index("mouth_right"), 0] = -0.2
    keypoints[:, KEYPOINT_NAMES.index("mouth_left"), 0] = 0.2  # a mouth 0.4 wide
    keypoints[:, KEYPOINT_NAMES.index("lower_lip"), 1] = 0.01
    keypoints[[5, 6], KEYPOINT_NAMES.index("lower_lip"), 1] = 0.06  # open by 0.15 of its width more
    keypoints[7, KEYPOINT_NAMES.index("lower_lip"), 1] = 0.045  # only 0.0875 more: not hard
    for side, x in (("right", -0.3), ("left", 0.1)):  # eyes 0.2 wide, lids 0.06 apart
        keypoints[:, KEYPOINT_NAMES.index(f"{side}_eye_outer"), 0] = x
        keypoints[:, KEYPOINT_NAMES.index(f"{side}_eye_inner"), 0] = x + 0.2
        keypoints[:, KEYPOINT_NAMES.index(f"{side}_lower_lid"), 1] = 0.06
    keypoints[12, KEYPOINT_NAMES.index("right_upper_lid"), 1] = 0.05  # a blink: 0.01 and 0.0 apart
    keypoints[12, KEYPOINT_NAMES.index("left_upper_lid"), 1] = 0.06
    keypoints[13, KEYPOINT_NAMES.index("right_upper_lid"), 1] = 0.03  # half closed, both eyes: not hard
    keypoints[13, KEYPOINT_NAMES.index("left_upper_lid"), 1] = 0.025
    chin = KEYPOINT_NAMES.index("chin")
    keypoints[:, chin, 0] = np.arange(frames) * 0.01  # tells the frames apart
    rotation = np.stack([rotation_matrix(20.0 if i == 30 else 0.0, 0.0, 0.0) for i in range(frames)]).astype(np.float32)
    clip = dataclasses.replace(clip, keypoints=keypoints, rotation=rotation)
    sampler = PairSampler([clip], np.random.default_rng(0), hard_pairs=1.0)
    assert sampler.hard_frames(clip).tolist() == [5, 6, 12, 30]
    drivers = {round(float(sampler.batch(1)["kp_driving"][0, chin, 0]) / 0.01) for _ in range(20)}
    assert drivers <= {5, 6, 12, 30} and len(drivers) >= 2  # every driving frame is a hard one


def test_learning_rate_decay() -> None:
    trainer = Trainer(TrainSettings(lr=1e-3, lr_discriminator=4e-4, lr_decay_start=100, lr_decay_steps=50,
                                    lr_final=0.2), SMALL)  # fmt: skip
    factors = [trainer.lr_factor(step) for step in (0, 99, 100, 125, 150, 1000)]
    np.testing.assert_allclose(factors, [1.0, 1.0, 1.0, 0.6, 0.2, 0.2], rtol=1e-12)
    assert Trainer(TrainSettings(), SMALL).lr_factor(10**6) == 1.0  # no decay by default
    trainer.step = 125
    trainer.train_step(PairSampler(_clips(), trainer.rng).batch(2))
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(6e-4)
    assert trainer.optimizer_d.param_groups[0]["lr"] == pytest.approx(2.4e-4)


def test_release_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import codec.zoo as zoo
    from codec.train.release import release_run

    trainer = Trainer(TrainSettings(), SMALL)
    trainer.step = 7
    run = tmp_path / "run"
    trainer.save(run / "checkpoint.pt")
    folder = tmp_path / "zoo"
    (folder / "weights").mkdir(parents=True)
    (folder / "models.json").write_text("{}")
    monkeypatch.setattr("codec.models.config._sizes", lambda: {"small": dataclasses.asdict(SMALL) | {"name": None}})
    assert release_run(run, "small", zoo=folder) == 0
    table = json.loads((folder / "models.json").read_text())
    file = folder / "weights" / table["small"]["file"]
    fp32_bytes = sum(v.numel() * 4 for v in trainer.model.state_dict().values())
    assert file.name.startswith("small-1-") and file.stat().st_size < 0.6 * fp32_bytes + 20_000  # stored in fp16
    first_card = (folder / "weights" / table["small"]["card"]).read_text()
    assert "7 steps" in first_card and "h of training on 2 CPU cores." in first_card
    # a GPU run, warm-started, from a pack: its card says so
    gpu = Trainer(TrainSettings(device="cpu"), SMALL)
    gpu.settings.device = "cuda"  # as the checkpoint of a CUDA run records it
    gpu.step, gpu.init, gpu.data_note = 9, "small-1-ffffffff.pth", "packed (every 2nd frame)"
    gpu.save(run / "checkpoint.pt")
    assert release_run(run, "small", zoo=folder) == 0
    gpu_card = (folder / "weights" / json.loads((folder / "models.json").read_text())["small"]["card"]).read_text()
    assert "tracker crops at 256x256; packed (every 2nd frame)); never the `val` split" in gpu_card
    assert "h of training on a CUDA GPU, warm-started from `small-1-ffffffff.pth`." in gpu_card
    trainer.save(run / "checkpoint.pt")
    assert release_run(run, "small", zoo=folder) == 0
    table = json.loads((folder / "models.json").read_text())
    file = folder / "weights" / table["small"]["file"]
    state = zoo.load_weights(file)
    loaded = zoo.load_model(str(file))  # a weight file by path: its size comes from the file
    assert loaded.config.image_size == SMALL.image_size and not loaded.training
    for name, value in loaded.state_dict().items():
        np.testing.assert_allclose(value, trainer.model.state_dict()[name].half().float())
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": {}}, bare)
    with pytest.raises(zoo.ModelLoadError, match="bare.pth: does not say its model size"):
        zoo.load_model(str(bare))
    assert all(v.dtype == torch.float32 for v in state.values())
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_allclose(state[name], value.half().float())
    # the benchmark of this release goes on its card (and only a benchmark of this release)
    from codec.train.release import add_benchmark

    point = {
        "codec": "fvc-neural",
        "setting": 90.0,
        "kbps": 9.04,
        "metrics": {"psnr": 25.5, "msssim": 0.86, "akd": 1.6},
    }
    bench = tmp_path / "rd.json"
    bench.write_text(json.dumps({"meta": {"model": "small-1-ffffffff.pth"}, "overall": {"points": [point]}}))
    assert add_benchmark("small", bench, zoo=folder) == 1
    assert f"measured small-1-ffffffff.pth, not {file.name}" in capsys.readouterr().err
    bench.write_text(json.dumps({"meta": {"model": file.name, "when": "today"}, "overall": {"points": [point]}}))
    assert add_benchmark("small", bench, zoo=folder) == 0
    assert add_benchmark("small", bench, zoo=folder) == 0  # again: replaced, not appended
    card = (folder / "weights" / table["small"]["card"]).read_text()
    assert (
        card.count("## Benchmark") == 1 and "- fvc-neural 90: 9.0 kbps, PSNR 25.50, MS-SSIM 0.8600, AKD 1.60 px" in card
    )
    assert "7 steps" in card and card.rstrip().endswith("`torch.load(weights_only=True)`.")
    damaged = tmp_path / "small-1-00000000.pth"
    damaged.write_bytes(file.read_bytes())
    with pytest.raises(zoo.ModelLoadError, match="the file is damaged"):
        zoo.load_weights(damaged)
    with pytest.raises(zoo.ModelLoadError, match="no released model 'nope'"):
        zoo.weights_path("nope")


def test_training_curves_from_a_log(tmp_path: Path) -> None:
    from codec.train.curves import plot_curves, read_log

    log = tmp_path / "log.jsonl"
    lines = [json.dumps({"step": s, "l1": 0.1 / s, "gan": -0.2}) for s in range(20, 201, 20)]
    lines.append(json.dumps({"step": 100, "validation": {"model_psnr": 22.0, "frozen_psnr": 20.0}}))
    lines.append(json.dumps({"step": 200, "validation": {"model_psnr": 22.5, "frozen_psnr": 20.0}}))
    lines.append(json.dumps({"step": 200, "validation": {"model_psnr": 22.7, "frozen_psnr": 20.0}}))  # resumed
    lines.append('{"step": 220, "l1"')  # cut short by a crash
    log.write_text("\n".join(lines) + "\n")
    losses, validation = read_log(log)
    assert losses["l1"][0] == (20, pytest.approx(0.005)) and len(losses["l1"]) == 10
    assert validation["model_psnr"] == [(100, 22.0), (200, 22.7)]
    plot_curves(log, tmp_path / "curves.png", "test")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_geometric_view_keeps_the_generator_only_where_geometry_cannot_know() -> None:
    """Under a viewer's turn the picture is the warped keyframe wherever the keyframe saw the
    face (and outside it); the generator keeps the mouth and eyes with a margin, and the face's
    pixels the keyframe never saw; the weight blends."""
    from codec.geometry.inputs import GEOMETRY_CHANNELS
    from codec.models.mesh_head import FEATURE_MARGIN, GUIDE_CHANNELS, geometric_view

    size, volume = 64, 16
    guide = torch.zeros(1, GUIDE_CHANNELS, volume, volume)
    channel = {name: index - 3 for index, name in enumerate(GEOMETRY_CHANNELS)}
    guide[0, channel["skin"], 2:14, 2:14] = 1.0  # a face 12 cells wide (48 pixels)
    guide[0, channel["visible"], 2:14, 2:14] = 1.0
    guide[0, channel["skin"], 10:12, 6:10] = 0.0  # a mouth: cells (10-11, 6-9), pixels (40-47, 24-39)
    guide[0, channel["mouth"], 10:12, 6:10] = 1.0
    guide[0, channel["visible"], 2:8, 2:4] = 0.0  # a cheek the keyframe never saw: pixels y 8-31, x 8-15
    outputs = {"image": torch.full((1, 3, size, size), 0.2), "warped_image": torch.full((1, 3, size, size), 0.8)}
    assert geometric_view(outputs, guide, 0.0) is outputs
    image = geometric_view(outputs, guide, 1.0)["image"][0, 0]
    margin = round(FEATURE_MARGIN * size / 2)  # 2 pixels at 64
    assert float(image[20, 32]) == pytest.approx(0.8)  # seen skin: the warped keyframe
    assert float(image[2, 2]) == pytest.approx(0.8)  # outside the face: the warp's falloff
    assert float(image[44, 32]) == pytest.approx(0.2)  # the mouth: the generator
    # its margin: the generator's share fades over the margin and the maps' bilinear edge (4 pixels)
    edge = image[44, 24 - margin - 6 : 27]
    assert float(edge[0]) == pytest.approx(0.8) and float(edge[-1]) == pytest.approx(0.2)
    assert bool((edge[1:] <= edge[:-1] + 1e-6).all())
    assert float(image[44, 24 - margin]) > 0.3  # the generator still owns some of the margin
    assert float(image[20, 10]) == pytest.approx(0.2)  # the unseen cheek: the generator
    half = geometric_view(outputs, guide, 0.5)
    assert float(half["image"][0, 0, 20, 32]) == pytest.approx(0.5)
    assert float(half["geometric"][0, 0, 20, 32]) == pytest.approx(0.5)
    assert float(geometric_view(outputs, guide, 3.0)["image"][0, 0, 20, 32]) == pytest.approx(0.8)  # capped at 1
