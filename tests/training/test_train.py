"""The trainer: crops on the token grid, per-step batches, the in-graph prior, a falling loss, resume, export."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED, needs_torch

pytestmark = needs_torch
CASES = SHARED / "data" / "cases"
LEGACY = SHARED / "data" / "brats2018"


@pytest.fixture(scope="module")
def case():
    if not CASES.is_dir():
        pytest.skip("../shared/data/cases is absent")
    from training.data import load_complete_case

    return load_complete_case(CASES / "TCGA-DU-7294", 99.5)


@pytest.fixture(scope="module")
def sampler(case):
    from brasyn_infer.constants import View
    from training.data import SliceSampler

    return SliceSampler([case], [View.SAGITTAL, View.AXIAL], seed=0, crop=128, tumor=0.5)


def test_crops_drop_one_channel_and_sit_on_the_token_grid(sampler):
    batch = sampler.batch(3, 6)
    assert batch["x"].shape == (6, 4, 128, 128) and batch["target"].shape == (6, 1, 128, 128)
    for i in range(6):
        m = int(batch["missing"][i])
        assert (batch["x"][i, m] == -1).all() and batch["mask"][i, m] == 0 and batch["mask"][i].sum() == 3
        available = [c for c in range(4) if c != m]
        assert (batch["background"][i, 0] == ((batch["x"][i, available] == -1).sum(0) >= 2)).all()
    assert batch["x"].min() >= -1 and batch["x"].max() <= 1
    assert batch["origin"].min() >= 0 and batch["origin"].max() <= (240 - 128) // 16
    assert not batch["background"].all(axis=(1, 2, 3)).any()  # every crop holds brain


def test_a_batch_depends_only_on_the_step(sampler):
    a, b, c = sampler.batch(7, 4), sampler.batch(7, 4), sampler.batch(8, 4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], c["x"])
    whole = sampler.batch(7, 2, whole=True)
    assert whole["x"].shape == (2, 4, 240, 240) and (whole["origin"] == 0).all()


def test_input_gamma_changes_the_inputs_contrast_and_keeps_the_target_and_background():
    from training.data import input_gamma

    x = np.full((4, 8, 8), -1, dtype=np.float32)
    x[:, 2:6, 2:6] = np.linspace(-0.9, 1, 16, dtype=np.float32).reshape(4, 4)
    y = input_gamma(x, 1, np.array([0.3, 0.3, -0.3, 0.0]))
    assert np.array_equal(y[1], x[1]) and np.allclose(y[3], x[3], atol=1e-6)  # the target; log-gamma 0
    assert (y[x == -1] == -1).all() and y.min() >= -1 and y.max() <= 1
    assert (y[0, 2:6, 2:6] <= x[0, 2:6, 2:6] + 1e-6).all() and (y[0, 2:6, 2:6] < x[0, 2:6, 2:6]).any()  # gamma > 1
    assert (y[2, 2:6, 2:6] >= x[2, 2:6, 2:6] - 1e-6).all() and (y[2, 2:6, 2:6] > x[2, 2:6, 2:6]).any()  # gamma < 1


def test_gamma_augments_the_inputs_only(case):
    from brasyn_infer.constants import View
    from training.data import SliceSampler

    plain = SliceSampler([case], [View.AXIAL], seed=0, crop=128).batch(5, 1)  # one sample: the same draws before
    gamma = SliceSampler([case], [View.AXIAL], seed=0, crop=128, gamma=0.3).batch(5, 1)
    assert np.array_equal(plain["target"], gamma["target"]) and np.array_equal(plain["missing"], gamma["missing"])
    assert np.array_equal(plain["x"] == -1, gamma["x"] == -1) and not np.array_equal(plain["x"], gamma["x"])


def test_an_untrained_model_is_the_linear_baseline(case):
    """The residual starts at zero: the model's output is the prior, which is evaluate's linear fit."""
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN
    from brasyn_infer.constants import MODALITIES, Modality, View
    from brasyn_infer.synthesis.linear import fit, predict, prior_table
    from brasyn_infer.synthesis.views import SliceGeometry

    coefs = {m: fit([case.stats[m]]) for m in MODALITIES}
    net = PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2), prior_table(coefs)).eval()
    x4 = case.x4.astype(np.float32)
    missing = Modality.T1C
    plane = SliceGeometry(View.AXIAL, x4.shape[1:]).take(x4, np.array([80]))  # (1, 4, 240, 240)
    plane[:, missing.index] = -1
    mask = torch.ones(1, 4)
    mask[0, missing.index] = 0
    with torch.no_grad():
        y, _ = net(torch.from_numpy(plane), mask, torch.tensor([float(missing.index)]), torch.zeros(1))
    expected = predict(plane[0][:, :, :, None], missing, coefs[missing])[:, :, 0]
    assert np.abs(y[0, 0].numpy() - expected).max() < 1e-4


def test_a_few_steps_decrease_the_loss(sampler):
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGANConfig
    from brasyn_infer.authoring.models.residual import PriorResidualHFGAN
    from training.losses import residual_loss
    from training.train import to_torch

    torch.manual_seed(0)
    net = PriorResidualHFGAN(HFGANConfig(dim=8, num_outputs=2)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    b = to_torch(sampler.batch(0, 2, augment=False))
    losses = []
    for _ in range(12):
        y, log_b = net(b["x"], b["mask"], b["missing"], b["view"], b["origin"])
        loss, _ = residual_loss(y, log_b, b["target"], b["background"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3]) and losses[-1] < losses[0], losses


def test_the_likelihood_prefers_a_scale_that_matches_the_error():
    import torch

    from training.losses import residual_loss

    target = torch.zeros(1, 1, 32, 32)
    y = torch.full_like(target, 0.1)  # |error| = 0.1 everywhere
    background = torch.zeros_like(target, dtype=torch.bool)
    nll = {b: float(residual_loss(y, torch.full_like(y, np.log(b)), target, background)[1]["nll"]) for b in (0.01, 0.1, 1.0)}
    assert nll[0.1] < nll[0.01] and nll[0.1] < nll[1.0]


def test_ssim_loss_is_one_for_identical_images():
    import torch

    from training.losses import ssim

    img = torch.rand(2, 1, 64, 64)
    assert float(ssim(img, img)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(img, torch.rand(2, 1, 64, 64))) < 0.5


def tiny_args(root, *extra):
    from training.train import parse_args

    return parse_args(["--cases", str(root / "cases"), "--holdout", "TCGA-DU-7294", "--dim", "8", "--views", "sagittal",
                       "axial", "--batch", "2", "--crop", "64", "--whole-from", "0.5", "--warmup", "1", "--threads", "1",
                       "--run-dir", str(root / "run"), "--out", str(root / "w"), "--name", "tiny", "--save-every", "1",
                       *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real (tiny) run of the trainer on a BraSyn-named and a BraTS 2018-named case: two steps, checkpoint only."""
    if not CASES.is_dir() or not LEGACY.is_dir():
        pytest.skip("../shared/data is absent")
    from training.train import train

    root = tmp_path_factory.mktemp("train")
    (root / "cases").mkdir()
    (root / "cases" / "TCGA-DU-7294").symlink_to((CASES / "TCGA-DU-7294").resolve())
    (root / "cases" / "Brats18_CBICA_ABM_1").symlink_to((LEGACY / "Brats18_CBICA_ABM_1").resolve())
    record = train(tiny_args(root, "--steps", "2", "--no-export"))
    return root, record


def test_no_export_writes_the_checkpoint_and_the_state(trained):
    root, record = trained
    assert record["steps"] == 2 and record["device"] == "cpu"
    assert record["data"] == {"train": ["Brats18_CBICA_ABM_1"], "holdout": ["TCGA-DU-7294"]}
    assert sorted(p.name for p in (root / "w").iterdir()) == ["tiny.safetensors"]
    assert (root / "run" / "state.pt").is_file()


def test_resume_continues_and_refuses_another_recipe(trained):
    from training.train import train

    root, _ = trained
    record = train(tiny_args(root, "--steps", "2", "--no-export", "--resume"))  # already done: no step is redone
    assert record["steps"] == 2
    with pytest.raises(SystemExit, match="another recipe"):
        train(tiny_args(root, "--steps", "3", "--no-export", "--resume"))


def test_a_checkpoint_exports_to_the_model_it_holds(trained, tmp_path):
    import onnxruntime as ort
    import torch

    from brasyn_infer.authoring.models.export import INPUT_NAMES, example_inputs
    from brasyn_infer.runtime.manifest import load_manifest
    from training.train import export_checkpoint, load_trained, refiner_block

    root, record = trained
    path = export_checkpoint(root / "w" / "tiny.safetensors", tmp_path, "tiny", refiner_block("tiny-refiner", False))
    manifest = load_manifest(path)
    assert [v.value for v in manifest.views] == ["sagittal", "axial"] and manifest.outputs == ("y", "log_scale")
    assert manifest.normalization["scheme"] == "percentile" and manifest.training["steps"] == record["steps"]
    assert manifest.refiner == {"weights": "tiny-refiner", "enabled": False}
    assert json.loads(path.read_text())["provenance"]["checkpoint"] == "tiny.safetensors"
    net, _ = load_trained(root / "w" / "tiny.safetensors")
    inputs = example_inputs(2, seed=3)
    with torch.no_grad():
        expected = [t.numpy() for t in net(*inputs)]
    session = ort.InferenceSession(str(manifest.onnx_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}  # config A's graph has no view input
    got = session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True) if n in names})
    assert all(np.abs(g - e).max() < 1e-4 for g, e in zip(got, expected, strict=True))


def test_a_foreign_checkpoint_is_refused_with_a_reason(tmp_path):
    import torch
    from safetensors.torch import save_file

    from training.train import export_checkpoint

    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(SystemExit, match="no export metadata"):
        export_checkpoint(tmp_path / "x.safetensors", tmp_path, "x")


def test_refine_by_default_needs_a_refiner():
    from training.train import refiner_block

    assert refiner_block(None, False) == {}
    with pytest.raises(SystemExit, match="--refiner"):
        refiner_block(None, True)


def test_init_starts_from_a_checkpoints_network_with_this_runs_prior(trained):
    import torch

    from training.train import load_trained, train

    root, _ = trained
    start, _ = load_trained(root / "w" / "tiny.safetensors")
    # trained on the other case: another linear fit, so another prior
    record = train(tiny_args(root, "--holdout", "Brats18_CBICA_ABM_1", "--steps", "0", "--no-export", "--name", "ft",
                             "--run-dir", str(root / "ft"), "--init", str(root / "w" / "tiny.safetensors")))
    assert record["recipe"]["init"] == str(root / "w" / "tiny.safetensors")
    tuned, _ = load_trained(root / "w" / "ft.safetensors")
    a, b = start.state_dict(), tuned.state_dict()
    assert not torch.equal(a["prior"], b["prior"])
    assert all(torch.equal(a[k], b[k]) for k in a if k != "prior")


def test_init_refuses_another_width_and_a_missing_file(trained):
    from training.train import train

    root, _ = trained
    with pytest.raises(SystemExit, match="config differs"):
        train(tiny_args(root, "--dim", "16", "--steps", "0", "--no-export", "--run-dir", str(root / "ft16"),
                        "--init", str(root / "w" / "tiny.safetensors")))
    with pytest.raises(SystemExit, match="no such checkpoint"):
        train(tiny_args(root, "--steps", "0", "--no-export", "--run-dir", str(root / "ft0"),
                        "--init", str(root / "w" / "absent.safetensors")))


def test_blend_block_keeps_the_graphs_prior_for_the_blended_modalities_only():
    from training.train import blend_block

    prior = {"t1c": [0.1, 0.2, 0.3, -0.4], "t2w": [0.5, 0.6, 0.7, 0.8]}
    assert blend_block(prior, {"t1c": 0.6, "t2w": 1.0}) == {"linear": {"t1c": prior["t1c"]}, "blend": {"t1c": 0.6}}
    assert blend_block(prior, {}) == {} and blend_block(prior, {"t2w": 1.0}) == {}
    with pytest.raises(SystemExit, match="0 to 1"):
        blend_block(prior, {"t1c": 1.5})
    with pytest.raises(SystemExit, match="no prior for t2f"):
        blend_block(prior, {"t2f": 0.5})


def test_an_exported_blend_is_the_manifests_trust_block(trained, tmp_path):
    from brasyn_infer.constants import Modality
    from brasyn_infer.runtime.manifest import load_manifest
    from brasyn_infer.synthesis.trust import Trust
    from training.export_checkpoint import main

    root, record = trained
    main([str(root / "w" / "tiny.safetensors"), "--out", str(tmp_path), "--name", "b", "--blend", "t1c=0.6"])
    trust = Trust.from_manifest(load_manifest(tmp_path / "b.json").trust)
    assert trust.blend == {Modality.T1C: 0.6}
    assert trust.linear[Modality.T1C].tolist() == record["prior"]["t1c"]
    with pytest.raises(SystemExit, match="MODALITY=ALPHA"):
        main([str(root / "w" / "tiny.safetensors"), "--out", str(tmp_path), "--name", "c", "--blend", "t1c:0.6"])


def test_the_lesion_plane_follows_the_crop_and_the_labels_numbering(case, sampler):
    """The classes come with each crop (the same flip and window as the inputs)."""
    import numpy as np

    assert case.classes is not None and set(np.unique(case.classes)) <= {0, 1, 2, 3}
    assert np.array_equal(case.classes > 0, case.tumor)
    batch = sampler.batch(11, 8)
    assert batch["lesion"].shape == (8, 1, 128, 128) and batch["lesion"].dtype == np.uint8
    assert (batch["lesion"] > 0).any()
    brain = ~batch["background"]
    assert not ((batch["lesion"] > 0) & ~brain).sum() > 0.01 * (batch["lesion"] > 0).sum()


def test_the_segmenters_input_comes_with_axial_crops(case):
    """With ``context``, each axial sample carries the segmenter's real z-scored 2.5D crop (the same window and flip
    as the generator's planes), the target's map to z-scores, and whether the term applies; other views do not."""
    from brasyn_infer.constants import View
    from training.data import SliceSampler, load_complete_case, to_zscore

    full = load_complete_case(CASES / "TCGA-DU-7294", 99.5, seg_inputs=True)
    assert full.zs.shape == full.x4.shape and full.z_affine.shape == (4, 2)
    with pytest.raises(ValueError, match="seg_inputs"):
        SliceSampler([case], [View.AXIAL], seed=0, context=1)
    sampler = SliceSampler([full], [View.AXIAL, View.SAGITTAL], seed=0, crop=128, tumor=0.5, context=1)
    batch = sampler.batch(5, 8)
    assert batch["seg_x"].shape == (8, 12, 128, 128) and batch["seg_affine"].shape == (8, 2)
    axial = batch["view"] == View.AXIAL.id
    assert np.array_equal(batch["seg_ok"] > 0, axial) and axial.any() and (~axial).any()
    assert (batch["seg_x"][~axial] == 0).all()
    for i in np.flatnonzero(axial):
        m = int(batch["missing"][i])
        assert np.allclose(batch["seg_affine"][i], full.z_affine[m])
        # the centre block's real channels sit where the generator's inputs are brain
        centre = batch["seg_x"][i, 4:8]
        brain = batch["x"][i, [c for c in range(4) if c != m]] > -1
        assert ((centre[[c for c in range(4) if c != m]] != 0) == brain).mean() > 0.99
    # the affine takes normalized units to the segmenter's z-scores (below the percentile's clip)
    raw = np.array([0.0, 100.0, 300.0, 200.0, 0.0], dtype=np.float32)
    a, b = to_zscore(400.0, 200.0, 50.0)
    normalized = 2 * raw / 400.0 - 1
    assert np.allclose(a * normalized + b, (raw - 200.0) / 50.0)


def test_the_seg_judge_is_loaded_frozen_and_refused_without_a_weight(tmp_path):
    from brasyn_infer.authoring.models.unet import UNet2D, UNetConfig
    from training.train import load_judge, parse_args
    from training.train_segmenter import save_checkpoint

    ckpt = save_checkpoint(UNet2D(UNetConfig(in_channels=16, widths=(4, 8))), tmp_path / "j.safetensors",
                           {"context": 1, "availability": True})
    judge, context, extra = load_judge(parse_args(["--seg-weight", "1", "--seg-judge", str(ckpt)]))
    assert context == 1 and extra == 4 and not any(p.requires_grad for p in judge.parameters())
    assert load_judge(parse_args([])) == (None, None, 0)
    with pytest.raises(SystemExit, match="without --seg-weight"):
        load_judge(parse_args(["--seg-judge", str(ckpt)]))
    with pytest.raises(SystemExit, match="needs --seg-judge"):
        load_judge(parse_args(["--seg-weight", "1"]))


def test_a_run_with_the_term_saves_and_resumes_the_discriminator(tmp_path):
    """--adv-weight: the tumor PatchGAN's state and optimizer go into the run's state and come back on resume; the
    term off is another recipe."""
    if not CASES.is_dir() or not LEGACY.is_dir():
        pytest.skip("../shared/data is absent")
    import torch

    from training.train import train

    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "TCGA-DU-7294").symlink_to((CASES / "TCGA-DU-7294").resolve())
    (tmp_path / "cases" / "Brats18_CBICA_ABM_1").symlink_to((LEGACY / "Brats18_CBICA_ABM_1").resolve())
    args = ["--no-export", "--adv-weight", "0.1", "--tumor", "1.0"]
    record = train(tiny_args(tmp_path, "--steps", "2", *args))
    assert record["recipe"]["adv_weight"] == 0.1 and "adv_g" in record["final"] and "adv_d" in record["final"]
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=False)
    assert set(state["extras"]) == {"discriminator", "discriminator_optimizer"}
    assert state["extras"]["discriminator_optimizer"]["state"]  # the discriminator took steps

    from training.losses import PatchDiscriminator
    from training.runstate import restore

    class Net(torch.nn.Module):  # stands in for the generator: restore loads what save_state saved
        def load_state_dict(self, *_):
            pass

    disc = PatchDiscriminator(9)
    opt_d = torch.optim.Adam(disc.parameters())
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1)
    opt.load_state_dict = lambda *_: None
    step, _, _ = restore(state, Net(), opt, {"discriminator": disc, "discriminator_optimizer": opt_d})
    assert step == 2
    assert all(torch.equal(v, state["extras"]["discriminator"][k]) for k, v in disc.state_dict().items())
    with pytest.raises(SystemExit, match="another recipe"):
        train(tiny_args(tmp_path, "--steps", "2", "--no-export", "--resume"))  # the term off is another recipe
