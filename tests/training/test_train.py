"""The trainer: a few steps on one batch of real slices lower the loss; the sampler drops channels right."""

import numpy as np
import pytest

from ..conftest import SHARED, needs_torch

pytestmark = needs_torch
CASES = SHARED / "data" / "cases"


@pytest.fixture(scope="module")
def sampler():
    if not CASES.is_dir():
        pytest.skip("../shared/data/cases is absent")
    from inference.constants import View
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

    from inference.models.hfgan import HFGAN, HFGANConfig
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
