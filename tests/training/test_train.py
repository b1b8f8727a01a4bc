"""The trainer: a few steps on one batch of real slices lower the loss; the sampler drops channels right."""

import numpy as np
import pytest

from tests.conftest import SHARED, needs_torch

pytestmark = needs_torch
CASES = SHARED / "data" / "cases"


@pytest.fixture(scope="module")
def sampler():
    if not CASES.is_dir():
        pytest.skip("../shared/data/cases is absent")
    from brasyn_infer.constants import View
    from training.data import SliceSampler, load_complete_case

    return SliceSampler([load_complete_case(CASES / "TCGA-DU-7294", 99.5)], [View.SAGITTAL], seed=0)


def test_sampler_drops_one_channel(sampler):
    batch = sampler.batch(6)
    assert batch["x"].shape == (6, 4, 240, 240) and batch["target"].shape == (6, 1, 240, 240)
    for i in range(6):
        m = int(batch["missing"][i])
        assert (batch["x"][i, m] == -1).all() and batch["mask"][i, m] == 0 and batch["mask"][i].sum() == 3
    assert batch["x"].min() >= -1 and batch["x"].max() <= 1


def test_a_few_steps_decrease_the_loss(sampler):
    import torch

    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
    from training.losses import synthesis_loss
    from training.train import to_torch

    torch.manual_seed(0)
    net = HFGAN(HFGANConfig(dim=8)).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batch = to_torch(sampler.batch(2, augment=False))
    losses = []
    for _ in range(12):
        loss, _ = synthesis_loss(net(batch["x"], batch["mask"], batch["missing"], batch["view"]), batch["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-3:]) < 0.95 * np.mean(losses[:3]) and losses[-1] < losses[0], losses


def test_ssim_loss_is_one_for_identical_images():
    import torch

    from training.losses import ssim

    img = torch.rand(2, 1, 64, 64)
    assert float(ssim(img, img)) == pytest.approx(1.0, abs=1e-5)
    assert float(ssim(img, torch.rand(2, 1, 64, 64))) < 0.5


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real (tiny) run of the trainer: two steps, checkpoint only, as on a GPU machine."""
    if not CASES.is_dir():
        pytest.skip("../shared/data/cases is absent")
    from training.train import parse_args, train

    root = tmp_path_factory.mktemp("train")
    (root / "cases").mkdir()
    (root / "cases" / "TCGA-DU-7294").symlink_to((CASES / "TCGA-DU-7294").resolve())
    args = parse_args(["--cases", str(root / "cases"), "--dim", "8", "--views", "sagittal", "axial", "--batch", "1",
                       "--steps", "2", "--threads", "1", "--out", str(root / "w"), "--checkpoint-dir", str(root / "w"),
                       "--name", "tiny", "--no-export"])
    record = train(args)
    return root / "w", record


def test_no_export_writes_only_the_checkpoint(trained):
    folder, record = trained
    assert record["steps"] == 2 and record["device"] == "cpu"
    assert sorted(p.name for p in folder.iterdir()) == ["tiny.safetensors"]


def test_a_checkpoint_exports_to_the_model_it_holds(trained, tmp_path):
    import json

    import onnxruntime as ort
    import torch
    from safetensors.torch import load_file

    from brasyn_infer.authoring.models.export import INPUT_NAMES, example_inputs
    from brasyn_infer.authoring.models.hfgan import HFGAN, HFGANConfig
    from brasyn_infer.runtime.manifest import load_manifest
    from training.train import export_checkpoint, refiner_block

    folder, record = trained
    path = export_checkpoint(folder / "tiny.safetensors", tmp_path, "tiny", refiner_block("tiny-refiner", False))
    manifest = load_manifest(path)
    assert [v.value for v in manifest.views] == ["sagittal", "axial"]
    assert manifest.normalization["scheme"] == "percentile" and manifest.training["steps"] == record["steps"]
    assert manifest.refiner == {"weights": "tiny-refiner", "enabled": False}
    assert json.loads(path.read_text())["provenance"]["checkpoint"] == "tiny.safetensors"
    # The ONNX file computes what the checkpoint's weights compute.
    net = HFGAN(HFGANConfig(dim=8)).eval()
    net.load_state_dict(load_file(str(folder / "tiny.safetensors")))
    inputs = example_inputs(2, seed=3)
    with torch.no_grad():
        expected = net(*inputs).numpy()
    session = ort.InferenceSession(str(manifest.onnx_path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    got = session.run(None, {n: t.numpy() for n, t in zip(INPUT_NAMES, inputs, strict=True) if n in names})[0]
    assert np.abs(got - expected).max() < 1e-4


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
